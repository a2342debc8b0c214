//! Scanner result files in, normalized findings out: one module per scanner format.
//!
//! This crate owns reading SARIF, Checkmarx One and SAST, Snyk, Sonatype, Prisma Cloud, Fortify,
//! Black Duck, Trivy and Grype output, mapping each vendor's severity words onto the one
//! normalized scale, and computing the fingerprints that identify a problem across scans. It is
//! pure: it reads only the bytes (or reader) it is given and never touches a database, the
//! network, the clock or the log, and it never logs the content of a scan. Hostile input ends in
//! an [`ImportError`], never a panic, with memory bounded by the size of the input.

mod blackduck;
mod checkmarx_one;
mod checkmarx_sast;
mod detect;
mod error;
pub mod fingerprint;
mod format;
mod fortify;
mod grype;
mod json;
mod prisma;
mod sarif;
pub mod severity;
mod snyk;
mod sonatype;
mod trivy;
mod xml;

use std::io::Read;

use domain::Severity;
use serde::{Deserialize, Serialize};

pub use detect::detect;
pub use error::{ImportError, Position};
pub use format::{Format, UnknownFormat};
pub use severity::apply_severity_map;

/// Largest input the buffered parsers accept, and largest entry read out of a Fortify FPR.
pub const MAX_INPUT_BYTES: u64 = 512 * 1024 * 1024;

/// Deepest JSON or XML nesting accepted; real scanner output stays far below it.
pub const MAX_DEPTH: usize = 128;

/// The findings of one result file, one per problem at the format's counting grain, each with
/// its own fingerprint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParsedScan {
    pub tool: String,
    pub tool_version: Option<String>,
    pub findings: Vec<RawFinding>,
    /// How many results were folded into another one as repeats of the same problem (see
    /// [`fingerprint`]).
    pub duplicates_merged: usize,
}

/// One problem as the scanner reported it, with its severity already normalized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RawFinding {
    /// Hex SHA-256 that identifies the same problem across scans (see [`fingerprint`]).
    pub fingerprint: String,
    /// The scanner's own identity for the result, when it has one.
    pub tool_fingerprint: Option<String>,
    pub rule_id: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    /// The vendor's raw severity word (or number) before mapping.
    pub vendor_severity: Option<String>,
    /// Set when the scanner itself marks the result as suppressed.
    pub status_hint: Option<Suppression>,
    pub file_path: Option<String>,
    pub line: Option<i64>,
    pub package_name: Option<String>,
    pub package_version: Option<String>,
    pub purl: Option<String>,
    pub vulnerability_ids: Vec<String>,
    pub cvss_score: Option<f64>,
    pub kind: FindingKind,
    /// What sets this result apart from others of the same fingerprint in one scan; used up by
    /// [`fingerprint`]'s occurrence pass and not part of the finding.
    #[serde(skip)]
    pub(crate) grain: fingerprint::Grain,
}

/// A status the scanner itself gave the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suppression {
    AcceptedRisk,
    FalsePositive,
}

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A weakness in source code.
    Sast,
    /// A vulnerable open-source dependency.
    Sca,
    /// A vulnerable operating-system package in a container image.
    Container,
    /// A misconfiguration in infrastructure code or a container build file.
    Iac,
    /// A leaked credential.
    Secret,
    /// A license policy violation of a dependency.
    License,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Sast => "sast",
            FindingKind::Sca => "sca",
            FindingKind::Container => "container",
            FindingKind::Iac => "iac",
            FindingKind::Secret => "secret",
            FindingKind::License => "license",
        }
    }

    /// Package findings are keyed by package and vulnerability, never by location.
    pub fn is_package(self) -> bool {
        matches!(
            self,
            FindingKind::Sca | FindingKind::Container | FindingKind::License
        )
    }
}

impl RawFinding {
    /// A finding with only its identity, severity and kind; parsers fill in the rest.
    pub(crate) fn new(
        fingerprint: String,
        rule_id: String,
        title: String,
        severity: Severity,
        kind: FindingKind,
    ) -> RawFinding {
        RawFinding {
            fingerprint,
            tool_fingerprint: None,
            rule_id,
            title,
            description: None,
            severity,
            vendor_severity: None,
            status_hint: None,
            file_path: None,
            line: None,
            package_name: None,
            package_version: None,
            purl: None,
            vulnerability_ids: Vec::new(),
            cvss_score: None,
            kind,
            grain: fingerprint::Grain::EachResult,
        }
    }
}

/// Parses a whole result file held in memory.
///
/// The content is checked against `format` first: a file that is recognizably another format
/// is refused as [`ImportError::WrongFormat`] rather than half-understood.
pub fn parse(format: Format, input: &[u8]) -> Result<ParsedScan, ImportError> {
    if input.is_empty() {
        return Err(ImportError::Empty);
    }
    check_format(format, input)?;

    let scan = match format {
        Format::Sarif => sarif::parse_slice(input),
        Format::CheckmarxOne => checkmarx_one::parse(input),
        Format::CheckmarxSast => checkmarx_sast::parse(input),
        Format::Snyk => snyk::parse(input),
        Format::Sonatype => sonatype::parse(input),
        Format::PrismaCloud => prisma::parse(input),
        Format::Fortify => fortify::parse(input),
        Format::Blackduck => blackduck::parse(input),
        Format::Trivy => trivy::parse(input),
        Format::Grype => grype::parse(input),
    }?;
    Ok(fingerprint::finish(scan))
}

/// Parses a result file from a reader.
///
/// SARIF is streamed: results are deserialized one at a time into findings, so a very large
/// log is never held as a document tree. The other formats are read into memory first (up to
/// [`MAX_INPUT_BYTES`]) and parsed like [`parse`].
pub fn parse_reader(format: Format, input: impl Read) -> Result<ParsedScan, ImportError> {
    if format == Format::Sarif {
        let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
        let mut head = peek_head(&mut input)?;
        if head.starts_with(b"\xef\xbb\xbf") {
            head.drain(..3);
        }
        if head.is_empty() {
            return Err(ImportError::Empty);
        }
        check_format(format, &head)?;
        let scan = sarif::parse_stream(head.as_slice().chain(input))?;
        return Ok(fingerprint::finish(scan));
    }

    let mut buffer = Vec::new();
    input
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut buffer)
        .map_err(|source| ImportError::Io { format, source })?;
    if buffer.len() as u64 > MAX_INPUT_BYTES {
        return Err(ImportError::TooLarge {
            format,
            limit_bytes: MAX_INPUT_BYTES,
        });
    }
    parse(format, &buffer)
}

/// How much of the content [`detect`] looks at.
const HEAD_BYTES: usize = 8 * 1024;

fn peek_head(input: &mut impl Read) -> Result<Vec<u8>, ImportError> {
    let mut head = Vec::with_capacity(HEAD_BYTES);
    input
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|source| ImportError::Io {
            format: Format::Sarif,
            source,
        })?;
    Ok(head)
}

fn check_format(expected: Format, input: &[u8]) -> Result<(), ImportError> {
    let head = &input[..input.len().min(HEAD_BYTES)];
    match detect(head) {
        Some(detected) if detected != expected => Err(ImportError::WrongFormat {
            expected,
            detected: Some(detected),
        }),
        _ => Ok(()),
    }
}
