//! The import path between the request body and the store: the body spooled to a temporary
//! file under a size limit, parsed by `importers`, then each result taken through the
//! integration's `severity_map` and `min_severity` and the finding rules (SPEC §5.2).
//!
//! This module owns no rule of its own: severities come from the importers' tables and the
//! integration's config, changes from `domain::finding_rule`. It never writes to the store and
//! never keeps a copy of the body in memory.

use std::collections::HashMap;
use std::io::Write;

use axum::body::Body;
use chrono::{DateTime, Utc};
use domain::Severity;
use domain::condition::ConditionGroup;
use domain::finding_rule::{Rule, RuleTarget, apply_rules};
use domain::scan::FindingStatus;
use futures_util::StreamExt;
use http::StatusCode;
use importers::{Format, ImportError, ParsedScan, RawFinding, Suppression};
use serde_json::{Value, json};
use store::{AssetRecord, FindingRuleRecord, NewFinding};

use crate::error::ApiError;

/// The largest result file the import endpoint takes.
pub const MAX_IMPORT_BYTES: u64 = 256 * 1024 * 1024;

/// How much of the file format detection looks at.
const DETECT_BYTES: usize = 8 * 1024;

/// Writes the request body to a temporary file, refusing more than [`MAX_IMPORT_BYTES`].
pub async fn spool(body: Body) -> Result<tempfile::NamedTempFile, ApiError> {
    let file = tempfile::NamedTempFile::new().map_err(io_failed)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, file.reopen().map_err(io_failed)?);
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("body_read_failed", "the request body could not be read")
        })?;
        written += chunk.len() as u64;
        if written > MAX_IMPORT_BYTES {
            return Err(too_large());
        }
        // Small synchronous writes into a buffered file: the page cache absorbs them.
        writer.write_all(&chunk).map_err(io_failed)?;
    }
    writer.flush().map_err(io_failed)?;
    Ok(file)
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("scan files are limited to {MAX_IMPORT_BYTES} bytes"),
    )
}

fn io_failed(err: std::io::Error) -> ApiError {
    tracing::error!(error = %err, "spooling a scan body failed");
    ApiError::internal()
}

/// Parses the spooled file, detecting the format from its first bytes when none is named.
pub fn parse(
    file: &tempfile::NamedTempFile,
    format: Option<Format>,
) -> Result<(Format, ParsedScan), ApiError> {
    let format = match format {
        Some(format) => format,
        None => detect(file)?,
    };
    let reader = file.reopen().map_err(io_failed)?;
    let scan = importers::parse_reader(format, reader).map_err(import_error)?;
    Ok((format, scan))
}

fn detect(file: &tempfile::NamedTempFile) -> Result<Format, ApiError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(DETECT_BYTES);
    file.reopen()
        .map_err(io_failed)?
        .take(DETECT_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(io_failed)?;
    if head.is_empty() {
        return Err(import_error(ImportError::Empty));
    }
    importers::detect(&head).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_format",
            "the scan format could not be recognized; name it with ?format=",
        )
    })
}

/// An importer's failure as the API reports it: 413 for size, else 422 naming the format and
/// the place where reading stopped.
pub fn import_error(err: ImportError) -> ApiError {
    match err {
        ImportError::TooLarge { .. } => too_large(),
        ImportError::Io { .. } => {
            tracing::error!(error = %err, "reading a spooled scan failed");
            ApiError::internal()
        }
        err => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unparseable_scan",
            err.to_string(),
        ),
    }
}

/// The severity settings of an integration's config.
#[derive(Clone, Debug, Default)]
pub struct SeverityPolicy {
    pub map: HashMap<String, String>,
    pub min: Option<Severity>,
}

impl SeverityPolicy {
    /// Reads `severity_map` and `min_severity` (already validated when the config was stored).
    pub fn from_config(config: &Value) -> SeverityPolicy {
        let map = config
            .get("severity_map")
            .and_then(Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let min = config
            .get("min_severity")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        SeverityPolicy { map, min }
    }
}

/// The active rules, compiled. A stored rule that no longer compiles is skipped and logged.
pub fn compile_rules(records: Vec<FindingRuleRecord>) -> Vec<Rule> {
    records
        .into_iter()
        .filter(|r| r.is_active)
        .filter_map(|r| {
            let group: ConditionGroup = serde_json::from_value(r.conditions.clone()).ok()?;
            match group.compile() {
                Ok(conditions) => Some(Rule {
                    name: r.name,
                    conditions,
                    changes: r.changes,
                }),
                Err(_) => {
                    tracing::warn!(finding_rule.id = %r.id, "stored finding rule does not compile");
                    None
                }
            }
        })
        .collect()
}

/// What the import context adds to each finding's rule payload.
pub struct Context<'a> {
    pub tool: &'a str,
    pub repo_url: &'a str,
    pub branch_name: Option<&'a str>,
    pub asset: &'a AssetRecord,
    pub now: DateTime<Utc>,
}

/// Maps, filters and runs rules over every result. Returns the findings and how many results
/// `min_severity` dropped.
pub fn prepare(
    findings: Vec<RawFinding>,
    policy: &SeverityPolicy,
    rules: &[Rule],
    context: &Context<'_>,
) -> (Vec<NewFinding>, u64) {
    let asset = json!(context.asset);
    let mut filtered = 0;
    let mut out = Vec::with_capacity(findings.len());
    for raw in findings {
        let severity = if policy.map.is_empty() {
            raw.severity
        } else {
            importers::apply_severity_map(&policy.map, raw.vendor_severity.as_deref(), raw.severity)
        };
        if policy.min.is_some_and(|min| severity < min) {
            filtered += 1;
            continue;
        }
        out.push(to_new(raw, severity, rules, &asset, context));
    }
    (out, filtered)
}

fn to_new(
    raw: RawFinding,
    severity: Severity,
    rules: &[Rule],
    asset: &Value,
    context: &Context<'_>,
) -> NewFinding {
    let tool_status = raw.status_hint.map(|s| match s {
        Suppression::AcceptedRisk => FindingStatus::AcceptedRisk,
        Suppression::FalsePositive => FindingStatus::FalsePositive,
    });
    let mut target = RuleTarget {
        severity,
        tags: Vec::new(),
        status: None,
        assignee: None,
    };
    let mut rule_changes = Vec::new();
    if !rules.is_empty() {
        let mut payload = json!({
            "finding": {
                "fingerprint": raw.fingerprint,
                "tool": context.tool,
                "repo_url": context.repo_url,
                "branch_name": context.branch_name,
                "rule_id": raw.rule_id,
                "title": raw.title,
                "severity": severity,
                "vendor_severity": raw.vendor_severity,
                "status": tool_status.unwrap_or(FindingStatus::Open),
                "kind": raw.kind.as_str(),
                "file_path": raw.file_path,
                "line": raw.line,
                "package_name": raw.package_name,
                "package_version": raw.package_version,
                "purl": raw.purl,
                "vulnerability_ids": raw.vulnerability_ids,
                "cvss_score": raw.cvss_score,
                "tags": [],
                "assignee": null,
            },
            "asset": asset,
        });
        rule_changes = apply_rules(rules, &mut target, &mut payload, context.now)
            .into_iter()
            .map(|c| (c.rule, c.field.to_owned(), c.old_value, c.new_value))
            .collect();
    }
    NewFinding {
        fingerprint: raw.fingerprint,
        rule_id: raw.rule_id,
        title: raw.title,
        description: raw.description,
        severity: target.severity,
        vendor_severity: raw.vendor_severity,
        tool_status,
        rule_status: target.status,
        kind: raw.kind.as_str().to_owned(),
        file_path: raw.file_path,
        line: raw.line,
        package_name: raw.package_name,
        package_version: raw.package_version,
        purl: raw.purl,
        vulnerability_ids: raw.vulnerability_ids,
        cvss_score: raw.cvss_score,
        tags: target.tags,
        assignee: target.assignee,
        rule_changes,
    }
}
