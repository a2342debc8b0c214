//! Black Duck: the REST `vulnerable-bom-components` items (a bare array or a page with
//! `items`), the version report's security CSV, and the Binary Analysis (BDBA) CSV, which has
//! only CVSS scores. Every item or row is one package finding keyed by component and
//! vulnerability id; the same vulnerability in another version or binary is another occurrence
//! of that key.

use serde::Deserialize;

use crate::error::{ImportError, Position};
use crate::fingerprint;
use crate::format::Format;
use crate::json::{self, Scalar};
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "blackduck";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let findings = match json::first_byte(input) {
        Some(b'[') => {
            let items: Vec<Item> = json::parse_slice(Format::Blackduck, input)?;
            items.iter().map(api_finding).collect()
        }
        Some(b'{') => {
            let page: Page = json::parse_slice(Format::Blackduck, input)?;
            page.items.iter().map(api_finding).collect()
        }
        _ => csv_findings(input)?,
    };
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    component_name: String,
    component_version_name: Option<String>,
    #[serde(default)]
    ignored: bool,
    vulnerability_with_remediation: Vulnerability,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vulnerability {
    vulnerability_name: String,
    description: Option<String>,
    severity: Option<String>,
    base_score: Option<Scalar>,
    overall_score: Option<Scalar>,
    remediation_status: Option<String>,
    related_vulnerability: Option<String>,
}

fn api_finding(item: &Item) -> RawFinding {
    let vulnerability = &item.vulnerability_with_remediation;
    let id = &vulnerability.vulnerability_name;
    let cvss_score = vulnerability
        .base_score
        .as_ref()
        .or(vulnerability.overall_score.as_ref())
        .and_then(Scalar::number);
    let severity = vulnerability
        .severity
        .as_deref()
        .and_then(severity::blackduck);
    let ignored = item.ignored
        || vulnerability
            .remediation_status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("IGNORED"));
    let mut ids = vec![id.clone()];
    // The related vulnerability is a link whose last segment is the NVD id of a BDSA entry.
    let related = vulnerability
        .related_vulnerability
        .as_deref()
        .and_then(|link| link.rsplit('/').next());
    ids.extend(related.filter(|r| r != id).map(str::to_owned));

    RawFinding {
        description: vulnerability.description.clone(),
        vendor_severity: vulnerability.severity.clone(),
        status_hint: ignored.then_some(Suppression::AcceptedRisk),
        package_version: item.component_version_name.clone(),
        vulnerability_ids: ids,
        cvss_score,
        ..package_finding(
            &item.component_name,
            id,
            severity.or_else(|| cvss_score.map(domain::Severity::from_cvss)),
        )
    }
}

fn package_finding(component: &str, id: &str, severity: Option<domain::Severity>) -> RawFinding {
    let fingerprint = fingerprint::from_package(TOOL, None, component, id);
    RawFinding {
        package_name: Some(component.to_owned()),
        vulnerability_ids: vec![id.to_owned()],
        ..RawFinding::new(
            fingerprint,
            id.to_owned(),
            format!("{id} in {component}"),
            severity.unwrap_or(severity::UNRECOGNIZED),
            FindingKind::Sca,
        )
    }
}

/// Column positions of the two CSV exports, found by header name.
struct Columns {
    component: usize,
    version: Option<usize>,
    vulnerability: usize,
    description: Option<usize>,
    risk: Option<usize>,
    cvss3: Option<usize>,
    cvss: Option<usize>,
    base_score: Option<usize>,
    path: Option<usize>,
    remediation: Option<usize>,
}

impl Columns {
    fn find(headers: &csv::StringRecord) -> Option<Columns> {
        let at = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(name))
        };
        Some(Columns {
            component: at("Component").or_else(|| at("Project name"))?,
            version: at("Version"),
            vulnerability: at("CVE").or_else(|| at("Vulnerability id"))?,
            description: at("Summary").or_else(|| at("Description")),
            risk: at("Security Risk"),
            cvss3: at("CVSS3"),
            cvss: at("CVSS"),
            base_score: at("Base score"),
            path: at("Object full path"),
            remediation: at("Remediation status"),
        })
    }
}

fn csv_findings(input: &[u8]) -> Result<Vec<RawFinding>, ImportError> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    if let Err(err) = std::str::from_utf8(input) {
        let at = Position::of_offset(input, err.valid_up_to());
        return Err(ImportError::InvalidUtf8 {
            format: Format::Blackduck,
            at,
        });
    }
    // Every record has the header's fields: a row cut short (a truncated upload, an unclosed
    // quote running to the end) is refused rather than read as fewer findings, which would
    // mark the rest fixed.
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader.headers().map_err(csv_error)?.clone();
    let columns = Columns::find(&headers).ok_or_else(|| {
        let message = "the CSV header has no component and vulnerability columns";
        ImportError::malformed(Format::Blackduck, Position::Record(1), message)
    })?;

    let mut findings = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let cell = |index: Option<usize>| {
            index
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let (Some(component), Some(id)) = (
            cell(Some(columns.component)),
            cell(Some(columns.vulnerability)),
        ) else {
            continue;
        };
        findings.push(csv_finding(&columns, &cell, component, id));
    }
    Ok(findings)
}

fn csv_finding<'r>(
    columns: &Columns,
    cell: &impl Fn(Option<usize>) -> Option<&'r str>,
    component: &str,
    id: &str,
) -> RawFinding {
    let risk = cell(columns.risk);
    // Binary analysis has no severity word: CVSS3 banded, else CVSS (v2), which is often 0.0.
    let score = |column| cell(column).and_then(|v| v.parse::<f64>().ok());
    let cvss_score = score(columns.cvss3)
        .or_else(|| score(columns.base_score))
        .or_else(|| score(columns.cvss));
    let severity = risk
        .and_then(severity::blackduck)
        .or_else(|| cvss_score.map(domain::Severity::from_cvss));
    let vendor_severity = risk.or_else(|| cell(columns.cvss3)).map(str::to_owned);
    let ignored = cell(columns.remediation).is_some_and(|s| s.eq_ignore_ascii_case("IGNORED"));

    RawFinding {
        description: cell(columns.description).map(str::to_owned),
        vendor_severity,
        status_hint: ignored.then_some(Suppression::AcceptedRisk),
        file_path: cell(columns.path).map(str::to_owned),
        package_version: cell(columns.version).map(str::to_owned),
        cvss_score,
        ..package_finding(component, id, severity)
    }
}

fn csv_error(err: csv::Error) -> ImportError {
    let at = err
        .position()
        .map_or(Position::Document, |p| Position::Record(p.record() + 1));
    let message = match err.kind() {
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8 in a field".to_owned(),
        _ => err.to_string(),
    };
    ImportError::malformed(Format::Blackduck, at, message)
}
