//! Prisma Cloud Compute (twistcli) scan JSON: one container package finding per vulnerability
//! of each scanned image, keyed by package and vulnerability id. Compliance checks are a
//! separate class of result and are not imported as findings.

use serde::Deserialize;

use crate::error::ImportError;
use crate::fingerprint;
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding};

const TOOL: &str = "prisma-cloud";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let report: Report = json::parse_slice(Format::PrismaCloud, input)?;
    let vulnerabilities = report
        .results
        .iter()
        .flat_map(|result| &result.vulnerabilities);
    let findings = vulnerabilities.map(finding).collect();
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
    results: Vec<ImageResult>,
}

#[derive(Deserialize)]
struct ImageResult {
    #[serde(default, deserialize_with = "null_as_empty")]
    vulnerabilities: Vec<Vulnerability>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Vulnerability>, D::Error> {
    Ok(Option::<Vec<Vulnerability>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    id: String,
    severity: Option<String>,
    cvss: Option<Scalar>,
    description: Option<String>,
    package_name: String,
    package_version: Option<String>,
}

fn finding(vulnerability: &Vulnerability) -> RawFinding {
    let package = &vulnerability.package_name;
    let fingerprint = fingerprint::from_package(TOOL, None, package, &vulnerability.id);
    let cvss_score = vulnerability.cvss.as_ref().and_then(Scalar::number);
    let severity = vulnerability
        .severity
        .as_deref()
        .and_then(severity::prisma)
        .or_else(|| cvss_score.map(domain::Severity::from_cvss))
        .unwrap_or(severity::UNRECOGNIZED);

    RawFinding {
        description: vulnerability.description.clone(),
        vendor_severity: vulnerability.severity.clone(),
        package_name: Some(package.clone()),
        package_version: vulnerability.package_version.clone(),
        vulnerability_ids: vec![vulnerability.id.clone()],
        cvss_score,
        ..RawFinding::new(
            fingerprint,
            vulnerability.id.clone(),
            format!("{} in {package}", vulnerability.id),
            severity,
            FindingKind::Container,
        )
    }
}
