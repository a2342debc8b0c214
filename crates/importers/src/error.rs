//! The one error type of the crate: every failure names the format and, where it can, the place
//! in the input where reading stopped. It never carries scan content beyond a short message.

use std::fmt;

use crate::format::Format;

/// Why a result file could not be imported. Nothing of a failed file is returned.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the scan body is empty")]
    Empty,

    #[error("{format}: malformed input at {at}: {message}")]
    Malformed {
        format: Format,
        at: Position,
        message: String,
    },

    #[error("{format}: invalid UTF-8 at {at}")]
    InvalidUtf8 { format: Format, at: Position },

    #[error("expected {expected} content but it looks like {}", detected_name(*.detected))]
    WrongFormat {
        expected: Format,
        detected: Option<Format>,
    },

    #[error("{format}: version {version} is not supported ({supported})")]
    UnsupportedVersion {
        format: Format,
        version: String,
        supported: &'static str,
    },

    #[error("{format}: nesting deeper than {limit} levels at {at}")]
    TooDeep {
        format: Format,
        at: Position,
        limit: usize,
    },

    #[error("{format}: input larger than {limit_bytes} bytes")]
    TooLarge { format: Format, limit_bytes: u64 },

    #[error("{format}: reading the input failed")]
    Io {
        format: Format,
        #[source]
        source: std::io::Error,
    },
}

impl ImportError {
    /// The format the error is about, when there is one.
    pub fn format(&self) -> Option<Format> {
        match self {
            ImportError::Empty => None,
            ImportError::WrongFormat { expected, .. } => Some(*expected),
            ImportError::Malformed { format, .. }
            | ImportError::InvalidUtf8 { format, .. }
            | ImportError::UnsupportedVersion { format, .. }
            | ImportError::TooDeep { format, .. }
            | ImportError::TooLarge { format, .. }
            | ImportError::Io { format, .. } => Some(*format),
        }
    }

    pub(crate) fn malformed(format: Format, at: Position, message: impl Into<String>) -> Self {
        ImportError::Malformed {
            format,
            at,
            message: message.into(),
        }
    }
}

fn detected_name(detected: Option<Format>) -> &'static str {
    detected.map_or("an unknown format", Format::as_str)
}

/// Where in the input an error was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// 1-based line and column of a text document.
    LineColumn { line: u64, column: u64 },
    /// 1-based record number of a CSV file (the header is record 1).
    Record(u64),
    /// A named part of the input: a zip entry or a field path.
    Path(String),
    /// The whole input rather than one place in it.
    Document,
}

impl Position {
    /// The line and column of a byte offset into `text`.
    pub(crate) fn of_offset(text: &[u8], offset: usize) -> Position {
        let before = &text[..offset.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = (before.len() - line_start) as u64 + 1;
        Position::LineColumn { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::LineColumn { line, column } => write!(f, "line {line}, column {column}"),
            Position::Record(record) => write!(f, "record {record}"),
            Position::Path(path) => f.write_str(path),
            Position::Document => f.write_str("the document"),
        }
    }
}
