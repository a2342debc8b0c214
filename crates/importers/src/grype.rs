//! Grype JSON: package findings keyed by package and vulnerability id. The same vulnerability
//! matched at several locations of one package version is one finding; another version of the
//! package is another occurrence of the same key.

use serde::Deserialize;

use crate::error::ImportError;
use crate::fingerprint::{self, Grain};
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding};

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let report: Report = json::parse_slice(Format::Grype, input)?;
    let descriptor = report.descriptor.unwrap_or_default();
    let tool = descriptor.name.unwrap_or_else(|| "grype".to_owned());
    let findings = report.matches.iter().map(|m| finding(&tool, m)).collect();
    Ok(ParsedScan {
        tool,
        tool_version: descriptor.version,
        findings,
        duplicates_merged: 0,
    })
}

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    matches: Vec<Match>,
    descriptor: Option<Descriptor>,
}

#[derive(Deserialize, Default)]
struct Descriptor {
    name: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vulnerability,
    #[serde(default)]
    related_vulnerabilities: Vec<Vulnerability>,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    id: String,
    severity: Option<String>,
    description: Option<String>,
    #[serde(default)]
    cvss: Vec<Cvss>,
    cvss_v3: Option<Metrics>,
    cvss_v2: Option<Metrics>,
}

#[derive(Deserialize)]
struct Cvss {
    version: Option<String>,
    metrics: Option<Metrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    base_score: Option<Scalar>,
}

#[derive(Deserialize)]
struct Artifact {
    name: String,
    version: Option<String>,
    #[serde(rename = "type")]
    artifact_type: Option<String>,
    purl: Option<String>,
    #[serde(default)]
    locations: Vec<ArtifactLocation>,
}

#[derive(Deserialize)]
struct ArtifactLocation {
    path: Option<String>,
}

fn finding(tool: &str, found: &Match) -> RawFinding {
    let vulnerability = &found.vulnerability;
    let artifact = &found.artifact;
    let fingerprint = fingerprint::from_package(tool, None, &artifact.name, &vulnerability.id);
    let severity = match vulnerability.severity.as_deref() {
        // Grype writes null where it has no rating: its "Unknown".
        None => severity::grype("unknown"),
        Some(word) => severity::grype(word),
    };

    let mut ids = vec![vulnerability.id.clone()];
    for related in &found.related_vulnerabilities {
        if !ids.contains(&related.id) {
            ids.push(related.id.clone());
        }
    }
    let description = vulnerability.description.clone().or_else(|| {
        found
            .related_vulnerabilities
            .iter()
            .find_map(|related| related.description.clone())
    });
    let cvss_score = cvss_score(vulnerability)
        .or_else(|| found.related_vulnerabilities.iter().find_map(cvss_score));
    let title = format!("{} in {}", vulnerability.id, artifact.name);

    RawFinding {
        description,
        vendor_severity: vulnerability.severity.clone(),
        file_path: artifact.locations.first().and_then(|l| l.path.clone()),
        package_name: Some(artifact.name.clone()),
        package_version: artifact.version.clone(),
        purl: artifact.purl.clone().filter(|purl| !purl.is_empty()),
        vulnerability_ids: ids,
        cvss_score,
        grain: Grain::Key(vec![artifact.version.clone().unwrap_or_default()]),
        ..RawFinding::new(
            fingerprint,
            vulnerability.id.clone(),
            title,
            severity.unwrap_or(severity::UNRECOGNIZED),
            kind_of(artifact.artifact_type.as_deref()),
        )
    }
}

/// The highest CVSS version's base score: the `cvss` list of current Grype, or the
/// `cvssV3`/`cvssV2` objects of older releases.
fn cvss_score(vulnerability: &Vulnerability) -> Option<f64> {
    let mut listed: Vec<&Cvss> = vulnerability.cvss.iter().collect();
    listed.sort_by(|a, b| b.version.cmp(&a.version));
    let from_list = listed
        .iter()
        .find_map(|c| c.metrics.as_ref()?.base_score.as_ref()?.number());
    let legacy = [&vulnerability.cvss_v3, &vulnerability.cvss_v2];
    from_list.or_else(|| {
        legacy
            .iter()
            .find_map(|m| m.as_ref()?.base_score.as_ref()?.number())
    })
}

/// Distribution packages of an image are container findings; language packages are SCA.
fn kind_of(artifact_type: Option<&str>) -> FindingKind {
    match artifact_type {
        Some("deb" | "rpm" | "apk" | "alpm" | "portage") => FindingKind::Container,
        _ => FindingKind::Sca,
    }
}
