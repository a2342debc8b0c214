//! Snyk: CLI JSON (`snyk test --json`, one project or an array of them) and the REST issues
//! API page. Package findings are keyed by package and issue id. The CLI repeats an issue once
//! per dependency path: those entries of one project and package version are one finding, and
//! each further version or project is another occurrence of the same key.

use serde::Deserialize;

use crate::error::{ImportError, Position};
use crate::fingerprint::{self, Grain};
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "snyk";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let documents: Vec<Document> = if json::first_byte(input) == Some(b'[') {
        json::parse_slice(Format::Snyk, input)?
    } else {
        vec![json::parse_slice(Format::Snyk, input)?]
    };

    let mut findings = Vec::new();
    for document in &documents {
        // A failed CLI run still prints JSON; importing it as "no findings" would look like
        // every open finding had been fixed.
        if let Some(error) = document
            .error
            .as_deref()
            .filter(|_| document.ok == Some(false))
        {
            let message = format!("the Snyk output reports a failed run: {error}");
            return Err(ImportError::malformed(
                Format::Snyk,
                Position::Document,
                message,
            ));
        }
        let kind = project_kind(document);
        let project = document.project();
        findings.extend(
            document
                .vulnerabilities
                .iter()
                .map(|v| cli_finding(v, kind, project)),
        );
        findings.extend(document.data.iter().map(rest_finding));
    }
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

/// A CLI project or a REST page; each has only its own fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    vulnerabilities: Vec<CliVulnerability>,
    package_manager: Option<String>,
    project_name: Option<String>,
    target_file: Option<String>,
    display_target_file: Option<String>,
    path: Option<String>,
    #[serde(default)]
    data: Vec<RestIssue>,
    ok: Option<bool>,
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliVulnerability {
    id: String,
    title: Option<String>,
    description: Option<String>,
    severity: Option<String>,
    package_name: String,
    version: Option<String>,
    cvss_score: Option<Scalar>,
    #[serde(rename = "type")]
    issue_type: Option<String>,
    identifiers: Option<Identifiers>,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct Identifiers {
    #[serde(default)]
    cve: Vec<String>,
    #[serde(default)]
    ghsa: Vec<String>,
}

#[derive(Deserialize)]
struct RestIssue {
    id: String,
    attributes: RestAttributes,
}

#[derive(Deserialize)]
struct RestAttributes {
    key: Option<String>,
    title: Option<String>,
    description: Option<String>,
    effective_severity_level: Option<String>,
    #[serde(rename = "type")]
    issue_type: Option<String>,
    #[serde(default)]
    ignored: bool,
    #[serde(default)]
    problems: Vec<Problem>,
    #[serde(default)]
    coordinates: Vec<Coordinate>,
    #[serde(default)]
    severities: Vec<RestSeverity>,
}

#[derive(Deserialize)]
struct Problem {
    id: String,
}

#[derive(Deserialize)]
struct Coordinate {
    #[serde(default)]
    representations: Vec<Representation>,
}

#[derive(Deserialize)]
struct Representation {
    dependency: Option<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    package_name: String,
    package_version: Option<String>,
}

#[derive(Deserialize)]
struct RestSeverity {
    score: Option<Scalar>,
}

impl Document {
    /// The project a CLI entry belongs to: its target file, else what names the project.
    fn project(&self) -> &str {
        [
            &self.target_file,
            &self.display_target_file,
            &self.project_name,
            &self.path,
        ]
        .into_iter()
        .find_map(|name| name.as_deref())
        .unwrap_or_default()
    }
}

/// Container projects scan operating-system packages.
fn project_kind(document: &Document) -> FindingKind {
    let os_manager = matches!(
        document.package_manager.as_deref(),
        Some("deb" | "apk" | "rpm")
    );
    let image = document
        .project_name
        .as_deref()
        .is_some_and(|n| n.starts_with("docker-image|"));
    if os_manager || image {
        FindingKind::Container
    } else {
        FindingKind::Sca
    }
}

fn severity_of(word: Option<&str>) -> domain::Severity {
    word.and_then(severity::snyk)
        .unwrap_or(severity::UNRECOGNIZED)
}

fn cli_finding(
    vulnerability: &CliVulnerability,
    project_kind: FindingKind,
    project: &str,
) -> RawFinding {
    let kind = match vulnerability.issue_type.as_deref() {
        Some("license") => FindingKind::License,
        _ => project_kind,
    };
    let package = &vulnerability.package_name;
    let fingerprint = fingerprint::from_package(TOOL, None, package, &vulnerability.id);
    let mut ids = vec![vulnerability.id.clone()];
    if let Some(identifiers) = &vulnerability.identifiers {
        ids.extend(identifiers.cve.iter().chain(&identifiers.ghsa).cloned());
    }
    let title = vulnerability
        .title
        .clone()
        .unwrap_or_else(|| vulnerability.id.clone());

    RawFinding {
        description: vulnerability.description.clone(),
        vendor_severity: vulnerability.severity.clone(),
        package_name: Some(package.clone()),
        package_version: vulnerability.version.clone(),
        vulnerability_ids: ids,
        cvss_score: vulnerability.cvss_score.as_ref().and_then(Scalar::number),
        grain: Grain::Key(vec![
            project.to_owned(),
            vulnerability.version.clone().unwrap_or_default(),
        ]),
        ..RawFinding::new(
            fingerprint,
            vulnerability.id.clone(),
            title,
            severity_of(vulnerability.severity.as_deref()),
            kind,
        )
    }
}

fn rest_finding(issue: &RestIssue) -> RawFinding {
    let attributes = &issue.attributes;
    let key = attributes.key.clone().unwrap_or_else(|| issue.id.clone());
    let dependency = attributes
        .coordinates
        .iter()
        .flat_map(|c| &c.representations)
        .find_map(|r| r.dependency.as_ref());
    let (fingerprint, kind) = match dependency {
        Some(dependency) => {
            let fingerprint = fingerprint::from_package(TOOL, None, &dependency.package_name, &key);
            (fingerprint, FindingKind::Sca)
        }
        None => {
            let kind = match attributes.issue_type.as_deref() {
                Some("code") => FindingKind::Sast,
                Some("license") => FindingKind::License,
                _ => FindingKind::Sca,
            };
            (fingerprint::from_tool(TOOL, &key, None, &issue.id), kind)
        }
    };
    let mut ids = vec![key.clone()];
    ids.extend(
        attributes
            .problems
            .iter()
            .map(|p| p.id.clone())
            .filter(|id| *id != key),
    );
    let level = attributes.effective_severity_level.clone();

    RawFinding {
        tool_fingerprint: Some(issue.id.clone()),
        description: attributes.description.clone(),
        vendor_severity: level.clone(),
        status_hint: attributes.ignored.then_some(Suppression::AcceptedRisk),
        package_name: dependency.map(|d| d.package_name.clone()),
        package_version: dependency.and_then(|d| d.package_version.clone()),
        vulnerability_ids: ids,
        cvss_score: attributes
            .severities
            .iter()
            .find_map(|s| s.score.as_ref()?.number()),
        ..RawFinding::new(
            fingerprint,
            key.clone(),
            attributes.title.clone().unwrap_or(key),
            severity_of(level.as_deref()),
            kind,
        )
    }
}
