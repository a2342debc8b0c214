//! Checkmarx SAST (CxSAST 8.x/9.x) XML report: one finding per `Result` of every `Query`.
//!
//! Results are keyed by the query and Checkmarx's own path `SimilarityId`. False positives and
//! "not exploitable" results are imported with that status, never dropped. Results are not
//! aggregated by query and file. The file's UTF-8 byte order mark is accepted.

use crate::error::ImportError;
use crate::fingerprint;
use crate::format::Format;
use crate::severity;
use crate::xml::{Node, XmlReader, local_name};
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const TOOL: &str = "checkmarx-sast";

/// The result being read, from its `Result` element and first path node.
#[derive(Default)]
struct Pending {
    file_path: Option<String>,
    line: Option<i64>,
    severity: Option<String>,
    false_positive: bool,
    similarity_id: Option<String>,
    path_nodes: usize,
    node_name: Option<String>,
    snippet: Option<String>,
}

#[derive(Default)]
struct Query {
    name: String,
    severity: Option<String>,
}

pub(crate) fn parse(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let mut xml = XmlReader::new(Format::CheckmarxSast, input, None)?;
    let mut tool_version = None;
    let mut query = Query::default();
    let mut pending: Option<Pending> = None;
    let mut findings = Vec::new();

    loop {
        match xml.next()? {
            Node::Open(element) => match local_name(&element).as_ref() {
                b"CxXMLResults" => tool_version = xml.attribute(&element, "CheckmarxVersion")?,
                b"Query" => {
                    let name = xml.attribute(&element, "name")?;
                    let id = xml.attribute(&element, "id")?;
                    let name = name.or(id).unwrap_or_default();
                    query = Query {
                        name,
                        severity: xml.attribute(&element, "Severity")?,
                    };
                }
                b"Result" => pending = Some(open_result(&xml, &element)?),
                b"Path" => {
                    if let Some(result) = pending.as_mut() {
                        result.similarity_id = xml.attribute(&element, "SimilarityId")?;
                    }
                }
                b"PathNode" => {
                    if let Some(result) = pending.as_mut() {
                        result.path_nodes += 1;
                    }
                }
                _ => {}
            },
            Node::Close { name, text } => {
                let Some(result) = pending.as_mut() else {
                    continue;
                };
                let first_node = result.path_nodes == 1;
                match name.as_slice() {
                    b"Name" if first_node && result.node_name.is_none() => {
                        result.node_name = Some(text)
                    }
                    b"Code" if first_node && result.snippet.is_none() => {
                        result.snippet = Some(text)
                    }
                    b"Result" => {
                        if let Some(result) = pending.take() {
                            findings.push(finding(&query, result));
                        }
                    }
                    _ => {}
                }
            }
            Node::Eof => break,
        }
    }
    Ok(ParsedScan {
        tool: TOOL.to_owned(),
        tool_version,
        findings,
        duplicates_merged: 0,
    })
}

fn open_result(
    xml: &XmlReader<'_>,
    element: &quick_xml::events::BytesStart<'_>,
) -> Result<Pending, ImportError> {
    let false_positive = xml
        .attribute(element, "FalsePositive")?
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // State 1 is "Not Exploitable"; 4 ("Proposed Not Exploitable") is not yet decided.
    let not_exploitable = xml
        .attribute(element, "state")?
        .is_some_and(|v| v.trim() == "1");
    Ok(Pending {
        file_path: xml
            .attribute(element, "FileName")?
            .map(|p| fingerprint::normalize_path(&p)),
        line: xml
            .attribute(element, "Line")?
            .and_then(|l| l.trim().parse().ok()),
        severity: xml.attribute(element, "Severity")?,
        false_positive: false_positive || not_exploitable,
        ..Pending::default()
    })
}

fn finding(query: &Query, result: Pending) -> RawFinding {
    let file = result.file_path.as_deref();
    let fingerprint = match &result.similarity_id {
        Some(id) => fingerprint::from_tool(TOOL, &query.name, file, id),
        None => {
            let message = result.node_name.as_deref().unwrap_or_default();
            fingerprint::from_content(TOOL, &query.name, file, message, result.snippet.as_deref())
        }
    };
    let word = result.severity.clone().or_else(|| query.severity.clone());
    let severity = word
        .as_deref()
        .and_then(severity::checkmarx)
        .unwrap_or(severity::UNRECOGNIZED);
    let description = match (&result.node_name, file) {
        (Some(node), Some(file)) => Some(format!("{node} in {file}")),
        _ => None,
    };

    RawFinding {
        tool_fingerprint: result.similarity_id,
        description,
        vendor_severity: word,
        status_hint: result.false_positive.then_some(Suppression::FalsePositive),
        file_path: result.file_path,
        line: result.line,
        ..RawFinding::new(
            fingerprint,
            query.name.clone(),
            query.name.replace('_', " "),
            severity,
            FindingKind::Sast,
        )
    }
}
