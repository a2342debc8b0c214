//! Sonatype Nexus IQ raw application report: one package finding per security issue of each
//! component, keyed by component and issue reference. `matchSummary` is about the whole
//! application, not this file, and is never counted.

use serde::Deserialize;

use crate::error::ImportError;
use crate::fingerprint;
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "sonatype";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let report: Report = json::parse_slice(Format::Sonatype, input)?;
    let mut findings = Vec::new();
    for component in &report.components {
        let issues = component
            .security_data
            .iter()
            .flat_map(|data| &data.security_issues);
        findings.extend(issues.map(|issue| finding(component, issue)));
    }
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    package_url: Option<String>,
    display_name: Option<String>,
    component_identifier: Option<ComponentIdentifier>,
    #[serde(default)]
    pathnames: Vec<String>,
    security_data: Option<SecurityData>,
}

#[derive(Deserialize)]
struct ComponentIdentifier {
    #[serde(default)]
    coordinates: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityData {
    #[serde(default)]
    security_issues: Vec<SecurityIssue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecurityIssue {
    reference: String,
    severity: Option<Scalar>,
    threat_category: Option<String>,
    status: Option<String>,
}

fn finding(component: &Component, issue: &SecurityIssue) -> RawFinding {
    let (name, version) = identity(component);
    let fingerprint = fingerprint::from_package(TOOL, None, &name, &issue.reference);
    let cvss_score = issue.severity.as_ref().and_then(Scalar::number);
    let severity = issue
        .threat_category
        .as_deref()
        .and_then(severity::sonatype_threat_category)
        .or_else(|| cvss_score.map(domain::Severity::from_cvss))
        .unwrap_or(severity::UNRECOGNIZED);
    let not_applicable = issue
        .status
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("not applicable"));

    RawFinding {
        vendor_severity: issue.threat_category.clone(),
        status_hint: not_applicable.then_some(Suppression::FalsePositive),
        file_path: component.pathnames.first().cloned(),
        package_name: Some(name.clone()),
        package_version: version,
        purl: component.package_url.clone(),
        vulnerability_ids: vec![issue.reference.clone()],
        cvss_score,
        ..RawFinding::new(
            fingerprint,
            issue.reference.clone(),
            format!("{} in {name}", issue.reference),
            severity,
            FindingKind::Sca,
        )
    }
}

/// Name and version of a component: Maven `groupId:artifactId`, else the coordinates' name,
/// else the package URL without its version, else the display name.
fn identity(component: &Component) -> (String, Option<String>) {
    let coordinates = component
        .component_identifier
        .as_ref()
        .map(|c| &c.coordinates);
    let field = |key: &str| {
        coordinates
            .and_then(|c| c.get(key)?.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let version = field("version");
    let name = match (field("groupId"), field("artifactId")) {
        (Some(group), Some(artifact)) => Some(format!("{group}:{artifact}")),
        _ => field("name").or_else(|| field("packageId")),
    };
    let from_purl = || {
        let purl = component.package_url.as_deref()?;
        Some(purl.split('@').next().unwrap_or(purl).to_owned())
    };
    let name = name
        .or_else(from_purl)
        .or_else(|| component.display_name.clone());
    (name.unwrap_or_default(), version)
}
