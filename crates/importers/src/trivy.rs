//! Trivy JSON: vulnerabilities, failed misconfigurations and secrets of every result, in the
//! current (`SchemaVersion` 2), legacy (top-level array) and cluster (`ClusterName`) shapes.
//!
//! Vulnerabilities are package findings keyed by package and vulnerability id; in a cluster
//! report the workload scopes that key, since one file covers many assets. Misconfigurations
//! and secrets are keyed by rule, target and what they say. Passed checks are never findings.

use std::collections::HashMap;

use serde::Deserialize;

use crate::error::ImportError;
use crate::fingerprint;
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding};

const TOOL: &str = "trivy";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let mut findings = Vec::new();
    if json::first_byte(input) == Some(b'[') {
        let results: Vec<TrivyResult> = json::parse_slice(Format::Trivy, input)?;
        collect(&results, None, &mut findings);
    } else {
        let report: Report = json::parse_slice(Format::Trivy, input)?;
        collect(&report.results, None, &mut findings);
        let workloads = report
            .vulnerabilities
            .iter()
            .chain(&report.misconfigurations);
        for workload in workloads.chain(&report.resources) {
            let scope = format!("{}/{}/{}", workload.namespace, workload.kind, workload.name);
            collect(&workload.results, Some(&scope), &mut findings);
        }
    }
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    #[serde(default, deserialize_with = "null_as_empty")]
    results: Vec<TrivyResult>,
    #[serde(default, deserialize_with = "null_as_empty")]
    vulnerabilities: Vec<Workload>,
    #[serde(default, deserialize_with = "null_as_empty")]
    misconfigurations: Vec<Workload>,
    #[serde(default, deserialize_with = "null_as_empty")]
    resources: Vec<Workload>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Workload {
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    results: Vec<TrivyResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyResult {
    #[serde(default)]
    target: String,
    class: Option<String>,
    #[serde(rename = "Type")]
    target_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    vulnerabilities: Vec<Vulnerability>,
    #[serde(default, deserialize_with = "null_as_empty")]
    misconfigurations: Vec<Misconfiguration>,
    #[serde(default, deserialize_with = "null_as_empty")]
    secrets: Vec<Secret>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    installed_version: Option<String>,
    severity: Option<String>,
    title: Option<String>,
    description: Option<String>,
    pkg_identifier: Option<PkgIdentifier>,
    #[serde(rename = "CVSS", default)]
    cvss: HashMap<String, Cvss>,
}

#[derive(Deserialize)]
struct PkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(rename = "V3Score")]
    v3: Option<Scalar>,
    #[serde(rename = "V2Score")]
    v2: Option<Scalar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Misconfiguration {
    #[serde(rename = "ID")]
    id: String,
    title: Option<String>,
    description: Option<String>,
    message: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    cause_metadata: Option<CauseMetadata>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CauseMetadata {
    resource: Option<String>,
    start_line: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    title: Option<String>,
    severity: Option<String>,
    start_line: Option<i64>,
    #[serde(rename = "Match")]
    matched: Option<String>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

fn collect(results: &[TrivyResult], scope: Option<&str>, findings: &mut Vec<RawFinding>) {
    for result in results {
        let kind = package_kind(result);
        findings.extend(
            result
                .vulnerabilities
                .iter()
                .map(|v| vulnerability(v, scope, kind, result)),
        );
        let failed = result.misconfigurations.iter().filter(|m| {
            m.status
                .as_deref()
                .is_none_or(|status| status.eq_ignore_ascii_case("fail"))
        });
        findings.extend(failed.map(|m| misconfiguration(m, scope, &result.target)));
        findings.extend(result.secrets.iter().map(|s| secret(s, &result.target)));
    }
}

/// Operating-system packages of an image are container findings; language packages are SCA.
fn package_kind(result: &TrivyResult) -> FindingKind {
    const OS_TYPES: [&str; 10] = [
        "alpine", "debian", "ubuntu", "redhat", "centos", "rocky", "alma", "amazon", "oracle",
        "suse",
    ];
    let os_type = result
        .target_type
        .as_deref()
        .is_some_and(|t| OS_TYPES.iter().any(|os| t.contains(os)));
    match result.class.as_deref() {
        Some("os-pkgs") => FindingKind::Container,
        None if os_type => FindingKind::Container,
        _ => FindingKind::Sca,
    }
}

/// Trivy leaves severity out of some legacy entries; that is its UNKNOWN.
fn severity_of(word: Option<&str>) -> domain::Severity {
    severity::trivy(word.unwrap_or("UNKNOWN")).unwrap_or(severity::UNRECOGNIZED)
}

fn vulnerability(
    vulnerability: &Vulnerability,
    scope: Option<&str>,
    kind: FindingKind,
    result: &TrivyResult,
) -> RawFinding {
    let id = &vulnerability.vulnerability_id;
    let package = &vulnerability.pkg_name;
    let fingerprint = fingerprint::from_package(TOOL, scope, package, id);
    let title = vulnerability
        .title
        .clone()
        .unwrap_or_else(|| format!("{id} in {package}"));
    let cvss = vulnerability
        .cvss
        .get("nvd")
        .into_iter()
        .chain(vulnerability.cvss.values());
    let cvss_score = cvss.clone().find_map(|c| c.v3.as_ref()?.number());
    let cvss_score = cvss_score.or_else(|| cvss.clone().find_map(|c| c.v2.as_ref()?.number()));

    RawFinding {
        description: vulnerability.description.clone(),
        vendor_severity: vulnerability.severity.clone(),
        file_path: Some(result.target.clone()),
        package_name: Some(package.clone()),
        package_version: vulnerability.installed_version.clone(),
        purl: vulnerability
            .pkg_identifier
            .as_ref()
            .and_then(|p| p.purl.clone()),
        vulnerability_ids: vec![id.clone()],
        cvss_score,
        ..RawFinding::new(
            fingerprint,
            id.clone(),
            title,
            severity_of(vulnerability.severity.as_deref()),
            kind,
        )
    }
}

fn misconfiguration(
    misconfiguration: &Misconfiguration,
    scope: Option<&str>,
    target: &str,
) -> RawFinding {
    let cause = misconfiguration.cause_metadata.as_ref();
    let resource = cause
        .and_then(|c| c.resource.as_deref())
        .unwrap_or_default();
    let message = misconfiguration.message.as_deref().unwrap_or_default();
    let key = format!(
        "{}\u{1f}{resource}\u{1f}{message}",
        scope.unwrap_or_default()
    );
    let fingerprint =
        fingerprint::from_content(TOOL, &misconfiguration.id, Some(target), &key, None);
    let title = misconfiguration
        .title
        .clone()
        .unwrap_or_else(|| misconfiguration.id.clone());

    RawFinding {
        description: misconfiguration
            .description
            .clone()
            .or(misconfiguration.message.clone()),
        vendor_severity: misconfiguration.severity.clone(),
        file_path: Some(target.to_owned()),
        line: cause.and_then(|c| c.start_line),
        ..RawFinding::new(
            fingerprint,
            misconfiguration.id.clone(),
            title,
            severity_of(misconfiguration.severity.as_deref()),
            FindingKind::Iac,
        )
    }
}

fn secret(secret: &Secret, target: &str) -> RawFinding {
    let title = secret
        .title
        .clone()
        .unwrap_or_else(|| secret.rule_id.clone());
    let matched = secret.matched.as_deref();
    let fingerprint =
        fingerprint::from_content(TOOL, &secret.rule_id, Some(target), &title, matched);

    RawFinding {
        vendor_severity: secret.severity.clone(),
        file_path: Some(target.to_owned()),
        line: secret.start_line,
        ..RawFinding::new(
            fingerprint,
            secret.rule_id.clone(),
            title,
            severity_of(secret.severity.as_deref()),
            FindingKind::Secret,
        )
    }
}
