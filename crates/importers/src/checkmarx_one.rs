//! Checkmarx One results API JSON: SAST, KICS (infrastructure as code), SCA and container
//! results share one `results` array, told apart by `type`.
//!
//! SAST and KICS results are keyed by Checkmarx's own `similarityId`; SCA and container
//! results by package and vulnerability id. `NOT_EXPLOITABLE` results are imported as false
//! positives, never dropped. `totalCount` is the server's total, not a count of this page.

use serde::Deserialize;

use crate::error::ImportError;
use crate::fingerprint;
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "checkmarx-one";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let page: Page = json::parse_slice(Format::CheckmarxOne, input)?;
    let findings = page.results.iter().map(finding).collect();
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

#[derive(Deserialize)]
struct Page {
    results: Vec<CxResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CxResult {
    #[serde(rename = "type")]
    result_type: String,
    id: Scalar,
    similarity_id: Option<Scalar>,
    state: Option<String>,
    severity: Option<String>,
    description: Option<String>,
    #[serde(default)]
    data: Data,
    #[serde(default)]
    vulnerability_details: Details,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Data {
    query_id: Option<Scalar>,
    query_name: Option<String>,
    file_name: Option<String>,
    line: Option<Scalar>,
    #[serde(default)]
    nodes: Vec<Node>,
    package_identifier: Option<String>,
    package_name: Option<String>,
    package_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    file_name: Option<String>,
    line: Option<Scalar>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Details {
    cvss_score: Option<Scalar>,
    cve_name: Option<String>,
}

fn finding(result: &CxResult) -> RawFinding {
    let kind = match result.result_type.as_str() {
        "sast" => FindingKind::Sast,
        "kics" => FindingKind::Iac,
        "sca" => FindingKind::Sca,
        "sca-container" | "containers" => FindingKind::Container,
        other if other.contains("secret") => FindingKind::Secret,
        _ => FindingKind::Sast,
    };
    let mut finding = if kind.is_package() {
        package(result, kind)
    } else {
        code(result, kind)
    };

    finding.description = result.description.clone().filter(|d| !d.trim().is_empty());
    finding.vendor_severity = result.severity.clone();
    finding.cvss_score = result
        .vulnerability_details
        .cvss_score
        .as_ref()
        .and_then(Scalar::number)
        .filter(|s| *s > 0.0);
    let not_exploitable = result
        .state
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("NOT_EXPLOITABLE"));
    finding.status_hint = not_exploitable.then_some(Suppression::FalsePositive);
    finding
}

fn severity_of(result: &CxResult) -> domain::Severity {
    result
        .severity
        .as_deref()
        .and_then(severity::checkmarx)
        .unwrap_or(severity::UNRECOGNIZED)
}

fn code(result: &CxResult, kind: FindingKind) -> RawFinding {
    let data = &result.data;
    let first_node = data.nodes.first();
    let file_path = data
        .file_name
        .clone()
        .or_else(|| first_node.and_then(|n| n.file_name.clone()))
        .map(|path| fingerprint::normalize_path(&path));
    let line = data
        .line
        .as_ref()
        .or_else(|| first_node.and_then(|n| n.line.as_ref()));
    let rule_id = data
        .query_name
        .clone()
        .or_else(|| data.query_id.as_ref().and_then(Scalar::text))
        .unwrap_or_else(|| result.result_type.clone());
    let tool_id = result.similarity_id.as_ref().and_then(Scalar::text);
    let fingerprint = match &tool_id {
        Some(id) => fingerprint::from_tool(TOOL, &rule_id, file_path.as_deref(), id),
        None => {
            let id = result.id.text().unwrap_or_default();
            fingerprint::from_tool(TOOL, &rule_id, file_path.as_deref(), &id)
        }
    };

    RawFinding {
        tool_fingerprint: tool_id,
        line: line.and_then(Scalar::number).map(|line| line as i64),
        file_path,
        ..RawFinding::new(
            fingerprint,
            rule_id.clone(),
            rule_id,
            severity_of(result),
            kind,
        )
    }
}

fn package(result: &CxResult, kind: FindingKind) -> RawFinding {
    let data = &result.data;
    let (name, version) = match (&data.package_name, &data.package_identifier) {
        (Some(name), _) => (name.clone(), data.package_version.clone()),
        (None, Some(identifier)) => split_identifier(identifier),
        (None, None) => (String::new(), None),
    };
    let vulnerability = result.id.text().unwrap_or_default();
    let fingerprint = fingerprint::from_package(TOOL, None, &name, &vulnerability);
    let mut ids = vec![vulnerability.clone()];
    let cve = result
        .vulnerability_details
        .cve_name
        .clone()
        .filter(|c| c.starts_with("CVE-"));
    ids.extend(cve.filter(|c| *c != vulnerability));

    RawFinding {
        package_name: Some(name.clone()).filter(|n| !n.is_empty()),
        package_version: version,
        vulnerability_ids: ids,
        ..RawFinding::new(
            fingerprint,
            vulnerability.clone(),
            format!("{vulnerability} in {name}"),
            severity_of(result),
            kind,
        )
    }
}

/// Splits `Manager-name-version` (`Npm-lodash-es-4.17.21`) into name and version: the version
/// starts at the first dash followed by a digit after the manager prefix.
fn split_identifier(identifier: &str) -> (String, Option<String>) {
    let rest = identifier
        .split_once('-')
        .map_or(identifier, |(_, rest)| rest);
    let bytes = rest.as_bytes();
    let dash = (1..bytes.len()).find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit());
    match dash {
        Some(start) => (rest[..start - 1].to_owned(), Some(rest[start..].to_owned())),
        None => (rest.to_owned(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(identifier: &str, name: &str, version: Option<&str>) {
        assert_eq!(
            split_identifier(identifier),
            (name.to_owned(), version.map(str::to_owned))
        );
    }

    #[test]
    fn package_identifiers() {
        check("Npm-bluebird-3.7.2", "bluebird", Some("3.7.2"));
        check("Npm-lodash-es-4.17.21", "lodash-es", Some("4.17.21"));
        check(
            "Maven-com.thoughtworks.xstream:xstream-1.4.5",
            "com.thoughtworks.xstream:xstream",
            Some("1.4.5"),
        );
        check("Npm-left-pad", "left-pad", None);
    }
}
