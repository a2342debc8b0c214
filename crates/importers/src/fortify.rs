//! Fortify: the FPR archive (its `audit.fvdl`, with suppressions from `audit.xml`), a bare
//! FVDL file, and the SSC / Audit Workbench report XML.
//!
//! FVDL stores no priority, so it is derived from the rule's impact and the likelihood
//! (accuracy × confidence × probability / 25); the report XML carries it as `Friority`.
//! Findings are keyed by Fortify's instance id. Archive entries are read with a size cap, so a
//! zip bomb fails with [`ImportError::TooLarge`] instead of exhausting memory.

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};

use domain::Severity;

use crate::error::{ImportError, Position};
use crate::fingerprint::{self, Grain};
use crate::format::Format;
use crate::severity;
use crate::xml::{Node, XmlReader, local_name};
use crate::{FindingKind, MAX_INPUT_BYTES, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "fortify";

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    if input.starts_with(b"PK\x03\x04") {
        return parse_fpr(input);
    }
    let mut xml = XmlReader::new(Format::Fortify, input, None)?;
    match root(&mut xml)?.as_deref() {
        Some("FVDL") => parse_fvdl(xml, &HashSet::new()),
        Some("ReportDefinition") => parse_report(xml),
        other => Err(xml.error_here(&format!(
            "expected an FVDL or ReportDefinition document, found {}",
            other.unwrap_or("no element")
        ))),
    }
}

fn root(xml: &mut XmlReader<'_>) -> Result<Option<String>, ImportError> {
    match xml.next()? {
        Node::Open(element) => Ok(Some(
            String::from_utf8_lossy(&local_name(&element)).into_owned(),
        )),
        _ => Ok(None),
    }
}

fn parse_fpr(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let zip_error = |err: zip::result::ZipError| {
        ImportError::malformed(
            Format::Fortify,
            Position::Path("FPR archive".to_owned()),
            err.to_string(),
        )
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(input)).map_err(zip_error)?;
    let fvdl = read_entry(&mut archive, "audit.fvdl")?.ok_or_else(|| {
        ImportError::malformed(
            Format::Fortify,
            Position::Path("audit.fvdl".to_owned()),
            "the FPR has no audit.fvdl",
        )
    })?;
    let suppressed = match read_entry(&mut archive, "audit.xml")? {
        Some(audit) => suppressed_instances(&audit)?,
        None => HashSet::new(),
    };

    let mut xml = XmlReader::new(Format::Fortify, &fvdl, Some("audit.fvdl"))?;
    match root(&mut xml)?.as_deref() {
        Some("FVDL") => parse_fvdl(xml, &suppressed),
        _ => Err(xml.error_here("audit.fvdl is not an FVDL document")),
    }
}

/// Reads one archive entry into memory, refusing entries that inflate past the input cap.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &'static str,
) -> Result<Option<Vec<u8>>, ImportError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(err) => {
            return Err(ImportError::malformed(
                Format::Fortify,
                Position::Path(name.to_owned()),
                err.to_string(),
            ));
        }
    };
    let too_large = ImportError::TooLarge {
        format: Format::Fortify,
        limit_bytes: MAX_INPUT_BYTES,
    };
    if entry.size() > MAX_INPUT_BYTES {
        return Err(too_large);
    }
    let mut content = Vec::new();
    entry
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|err| {
            ImportError::malformed(
                Format::Fortify,
                Position::Path(name.to_owned()),
                err.to_string(),
            )
        })?;
    if content.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large);
    }
    Ok(Some(content))
}

/// Instance ids that an auditor suppressed in `audit.xml`.
fn suppressed_instances(audit: &[u8]) -> Result<HashSet<String>, ImportError> {
    let mut xml = XmlReader::new(Format::Fortify, audit, Some("audit.xml"))?;
    let mut suppressed = HashSet::new();
    loop {
        match xml.next()? {
            Node::Open(element) if local_name(&element).as_ref() == b"Issue" => {
                let is_suppressed = xml
                    .attribute(&element, "suppressed")?
                    .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if let Some(id) = xml
                    .attribute(&element, "instanceId")?
                    .filter(|_| is_suppressed)
                {
                    suppressed.insert(id);
                }
            }
            Node::Eof => return Ok(suppressed),
            _ => {}
        }
    }
}

/// One `Vulnerability` of an FVDL document.
#[derive(Default)]
struct Vulnerability {
    class_id: String,
    category: Vec<String>,
    instance_id: String,
    instance_severity: Option<String>,
    confidence: Option<f64>,
    file_path: Option<String>,
    line: Option<i64>,
}

/// The rule metadata that the priority is derived from.
#[derive(Default)]
struct RuleMeta {
    impact: Option<f64>,
    accuracy: Option<f64>,
    probability: Option<f64>,
}

fn parse_fvdl(
    mut xml: XmlReader<'_>,
    suppressed: &HashSet<String>,
) -> Result<ParsedScan, ImportError> {
    let mut vulnerabilities = Vec::new();
    let mut current: Option<Vulnerability> = None;
    let mut rules: HashMap<String, RuleMeta> = HashMap::new();
    let mut rule_id: Option<String> = None;
    let mut group: Option<String> = None;
    let mut tool_version = None;

    loop {
        match xml.next()? {
            Node::Open(element) => match local_name(&element).as_ref() {
                b"Vulnerability" => current = Some(Vulnerability::default()),
                b"SourceLocation" => {
                    let Some(vulnerability) = current.as_mut().filter(|v| v.file_path.is_none())
                    else {
                        continue;
                    };
                    vulnerability.file_path = xml
                        .attribute(&element, "path")?
                        .map(|p| fingerprint::normalize_path(&p));
                    vulnerability.line = xml
                        .attribute(&element, "line")?
                        .and_then(|l| l.parse().ok());
                }
                b"Rule" => rule_id = xml.attribute(&element, "id")?,
                b"Group" => group = xml.attribute(&element, "name")?,
                _ => {}
            },
            Node::Close { name, text } => {
                let text = text.trim();
                if let Some(vulnerability) = current.as_mut() {
                    match name.as_slice() {
                        b"ClassID" => vulnerability.class_id = text.to_owned(),
                        b"Type" | b"Subtype" => vulnerability.category.push(text.to_owned()),
                        b"InstanceID" => vulnerability.instance_id = text.to_owned(),
                        b"InstanceSeverity" => {
                            vulnerability.instance_severity = Some(text.to_owned())
                        }
                        b"Confidence" => vulnerability.confidence = text.parse().ok(),
                        b"Vulnerability" => vulnerabilities.extend(current.take()),
                        _ => {}
                    }
                    continue;
                }
                match name.as_slice() {
                    b"Group" => {
                        let (Some(rule), Some(group)) = (&rule_id, group.take()) else {
                            continue;
                        };
                        let meta = rules.entry(rule.clone()).or_default();
                        let value = text.parse().ok();
                        match group.as_str() {
                            "Impact" => meta.impact = value,
                            "Accuracy" => meta.accuracy = value,
                            "Probability" => meta.probability = value,
                            _ => {}
                        }
                    }
                    b"Rule" => rule_id = None,
                    b"EngineVersion" => tool_version = Some(text.to_owned()),
                    _ => {}
                }
            }
            Node::Eof => break,
        }
    }

    let findings = vulnerabilities
        .into_iter()
        .map(|v| {
            let severity = derived_severity(&v, rules.get(&v.class_id));
            let hint = suppressed
                .contains(&v.instance_id)
                .then_some(Suppression::AcceptedRisk);
            fvdl_finding(v, severity, hint)
        })
        .collect();
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version,
        findings,
        duplicates_merged: 0,
    })
}

/// The Fortify priority from rule impact and likelihood; the legacy instance severity (5 down
/// to 1) only when the rule's metadata is missing.
fn derived_severity(vulnerability: &Vulnerability, rule: Option<&RuleMeta>) -> Severity {
    let inputs = rule.and_then(|r| {
        Some((
            r.impact?,
            r.accuracy?,
            r.probability?,
            vulnerability.confidence?,
        ))
    });
    if let Some((impact, accuracy, probability, confidence)) = inputs {
        return severity::fortify_derived(impact, accuracy * confidence * probability / 25.0);
    }
    let legacy = vulnerability
        .instance_severity
        .as_deref()
        .and_then(|s| s.parse::<f64>().ok());
    match legacy {
        Some(s) if s >= 5.0 => Severity::Critical,
        Some(s) if s >= 4.0 => Severity::High,
        Some(s) if s >= 3.0 => Severity::Medium,
        Some(s) if s >= 2.0 => Severity::Low,
        Some(_) => Severity::Info,
        None => severity::UNRECOGNIZED,
    }
}

fn fvdl_finding(
    vulnerability: Vulnerability,
    severity: Severity,
    hint: Option<Suppression>,
) -> RawFinding {
    let file = vulnerability.file_path.as_deref();
    let fingerprint = fingerprint::from_tool(
        TOOL,
        &vulnerability.class_id,
        file,
        &vulnerability.instance_id,
    );
    let title = vulnerability.category.join(": ");
    let title = if title.is_empty() {
        vulnerability.class_id.clone()
    } else {
        title
    };

    RawFinding {
        tool_fingerprint: Some(vulnerability.instance_id),
        vendor_severity: vulnerability.instance_severity,
        status_hint: hint,
        file_path: vulnerability.file_path,
        line: vulnerability.line,
        // One instance id is one finding wherever it is listed.
        grain: Grain::Key(Vec::new()),
        ..RawFinding::new(
            fingerprint,
            vulnerability.class_id,
            title,
            severity,
            FindingKind::Sast,
        )
    }
}

/// One `Issue` of a report; the same issue may be listed in several report sections.
#[derive(Default)]
struct Issue {
    iid: String,
    rule_id: String,
    category: Option<String>,
    abstract_text: Option<String>,
    friority: Option<String>,
    file_path: Option<String>,
    file_name: Option<String>,
    line: Option<i64>,
}

fn parse_report(mut xml: XmlReader<'_>) -> Result<ParsedScan, ImportError> {
    let mut findings = Vec::new();
    let mut current: Option<Issue> = None;
    loop {
        match xml.next()? {
            Node::Open(element) if local_name(&element).as_ref() == b"Issue" => {
                current = Some(Issue {
                    iid: xml.attribute(&element, "iid")?.unwrap_or_default(),
                    rule_id: xml.attribute(&element, "ruleID")?.unwrap_or_default(),
                    ..Issue::default()
                });
            }
            Node::Close { name, text } => {
                let Some(issue) = current.as_mut() else {
                    continue;
                };
                let text = text.trim().to_owned();
                match name.as_slice() {
                    b"Category" => issue.category = Some(text),
                    b"Abstract" => issue.abstract_text = Some(text),
                    b"Friority" => issue.friority = Some(text),
                    b"FilePath" => issue.file_path = Some(fingerprint::normalize_path(&text)),
                    b"FileName" => issue.file_name = Some(text),
                    b"LineStart" => issue.line = text.parse().ok(),
                    b"Issue" => findings.extend(current.take().map(report_finding)),
                    _ => {}
                }
            }
            Node::Eof => break,
            Node::Open(_) => {}
        }
    }
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version: None,
        findings,
        duplicates_merged: 0,
    })
}

fn report_finding(issue: Issue) -> RawFinding {
    let file_path = issue.file_path.or(issue.file_name);
    let fingerprint =
        fingerprint::from_tool(TOOL, &issue.rule_id, file_path.as_deref(), &issue.iid);
    let severity = issue
        .friority
        .as_deref()
        .and_then(severity::fortify_friority)
        .unwrap_or(severity::UNRECOGNIZED);
    let title = issue.category.unwrap_or_else(|| issue.rule_id.clone());

    RawFinding {
        tool_fingerprint: Some(issue.iid),
        description: issue.abstract_text,
        vendor_severity: issue.friority,
        file_path,
        line: issue.line,
        // A report lists one issue in every section it belongs to: one finding per iid.
        grain: Grain::Key(Vec::new()),
        ..RawFinding::new(
            fingerprint,
            issue.rule_id,
            title,
            severity,
            FindingKind::Sast,
        )
    }
}
