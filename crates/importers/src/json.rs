//! Safe JSON reading shared by the JSON formats: nesting depth and UTF-8 are checked on the raw
//! bytes before (or while) serde sees them, and serde errors become [`ImportError`]s that name
//! the format and the line and column. This module never builds a document tree.

use std::fmt;
use std::io::{self, Read};

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::MAX_DEPTH;
use crate::error::{ImportError, Position};
use crate::format::Format;

/// Deserializes a whole JSON document held in memory into typed structs.
pub(crate) fn parse_slice<T: DeserializeOwned>(
    format: Format,
    input: &[u8],
) -> Result<T, ImportError> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    check_slice(format, input)?;
    serde_json::from_slice(input).map_err(|err| from_serde(format, err))
}

/// Checks nesting depth and UTF-8 of a whole document held in memory.
pub(crate) fn check_slice(format: Format, input: &[u8]) -> Result<(), ImportError> {
    let mut scanner = Scanner::default();
    scanner
        .feed(input)
        .map_err(|failure| failure.into_error(format))?;
    scanner
        .finish()
        .map_err(|failure| failure.into_error(format))
}

/// Maps a serde_json error onto the crate's error, recovering guard failures from IO errors.
pub(crate) fn from_serde(format: Format, err: serde_json::Error) -> ImportError {
    if err.is_io() {
        let io_err = io::Error::from(err);
        return match io_err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Failure>())
        {
            Some(failure) => failure.clone().into_error(format),
            None => ImportError::Io {
                format,
                source: io_err,
            },
        };
    }

    let at = if err.line() == 0 {
        Position::Document
    } else {
        Position::LineColumn {
            line: err.line() as u64,
            column: err.column() as u64,
        }
    };
    let text = err.to_string();
    let message = text
        .rfind(" at line ")
        .map_or(text.as_str(), |end| &text[..end]);
    if message.starts_with("recursion limit exceeded") {
        return ImportError::TooDeep {
            format,
            at,
            limit: MAX_DEPTH,
        };
    }
    if err.is_eof() {
        return ImportError::malformed(
            format,
            at,
            "unexpected end of input; the file looks truncated",
        );
    }
    ImportError::malformed(format, at, message)
}

/// A field that vendors fill with a string in one version and a number in another.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
    Other(IgnoredAny),
}

impl Scalar {
    /// The value as text; `None` for null, empty strings, arrays and objects.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Scalar::Text(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
            Scalar::Number(number) => Some(number.to_string()),
            Scalar::Bool(value) => Some(value.to_string()),
            _ => None,
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        match self {
            Scalar::Number(number) => number.as_f64(),
            Scalar::Text(text) => text.trim().parse().ok(),
            _ => None,
        }
        .filter(|value: &f64| value.is_finite())
    }
}

/// The first non-whitespace byte of a document, to tell an array from an object.
pub(crate) fn first_byte(input: &[u8]) -> Option<u8> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    input.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// A reader that checks nesting depth and UTF-8 of the JSON passing through it, so that a
/// streamed document fails fast with a precise error instead of exhausting the stack or memory.
pub(crate) struct Guarded<R> {
    inner: R,
    scanner: Scanner,
}

impl<R: Read> Guarded<R> {
    pub(crate) fn new(inner: R) -> Self {
        Guarded {
            inner,
            scanner: Scanner::default(),
        }
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let result = if read == 0 {
            self.scanner.finish()
        } else {
            self.scanner.feed(&buf[..read])
        };
        result.map_err(|failure| io::Error::new(io::ErrorKind::InvalidData, failure))?;
        Ok(read)
    }
}

/// Why the guard stopped reading.
#[derive(Clone, Debug)]
enum Failure {
    TooDeep { line: u64, column: u64 },
    InvalidUtf8 { line: u64, column: u64 },
}

impl Failure {
    fn into_error(self, format: Format) -> ImportError {
        match self {
            Failure::TooDeep { line, column } => ImportError::TooDeep {
                format,
                at: Position::LineColumn { line, column },
                limit: MAX_DEPTH,
            },
            Failure::InvalidUtf8 { line, column } => ImportError::InvalidUtf8 {
                format,
                at: Position::LineColumn { line, column },
            },
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TooDeep { .. } => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            Failure::InvalidUtf8 { .. } => f.write_str("invalid UTF-8"),
        }
    }
}

impl std::error::Error for Failure {}

/// Byte-level JSON state: inside a string or not, bracket depth, position, and the bytes of a
/// UTF-8 character split across two reads.
#[derive(Default)]
struct Scanner {
    depth: usize,
    in_string: bool,
    escaped: bool,
    line: u64,
    column: u64,
    split_char: Vec<u8>,
}

impl Scanner {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        self.check_utf8(chunk)?;
        for &byte in chunk {
            self.column += 1;
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(Failure::TooDeep {
                            line: self.line + 1,
                            column: self.column,
                        });
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b'\n' => {
                    self.line += 1;
                    self.column = 0;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Failure> {
        if self.split_char.is_empty() {
            return Ok(());
        }
        let carried = self.split_char.len() as u64;
        Err(self.utf8_failure(0, carried))
    }

    fn check_utf8(&mut self, chunk: &[u8]) -> Result<(), Failure> {
        let joined;
        let carried = self.split_char.len() as u64;
        let bytes = if carried == 0 {
            chunk
        } else {
            joined = [std::mem::take(&mut self.split_char).as_slice(), chunk].concat();
            &joined
        };
        let Err(err) = std::str::from_utf8(bytes) else {
            return Ok(());
        };
        let tail = &bytes[err.valid_up_to()..];
        if err.error_len().is_none() && tail.len() < 4 {
            self.split_char = tail.to_vec();
            return Ok(());
        }
        let line_start = bytes[..err.valid_up_to()].iter().rposition(|&b| b == b'\n');
        let newlines = bytes[..err.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        Err(match line_start {
            Some(start) => Failure::InvalidUtf8 {
                line: self.line + newlines + 1,
                column: (err.valid_up_to() - start) as u64,
            },
            None => self.utf8_failure(err.valid_up_to() as u64, carried),
        })
    }

    /// The failure at `offset` into the bytes being checked, which start `carried` bytes
    /// before the current read (the start of a character split across reads).
    fn utf8_failure(&self, offset: u64, carried: u64) -> Failure {
        let column = self.column + offset + 1 - carried;
        Failure::InvalidUtf8 {
            line: self.line + 1,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &[u8], expected: &str) {
        let actual = match check_slice(Format::Trivy, input) {
            Ok(()) => "ok".to_owned(),
            Err(err) => err.to_string(),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn guards_depth_and_utf8() {
        check(br#"{"a": "[[[[ not nesting"}"#, "ok");
        check(
            &[b'['; 200],
            "trivy: nesting deeper than 128 levels at line 1, column 129",
        );
        check(
            b"{\n\"a\": \"\xff\"}",
            "trivy: invalid UTF-8 at line 2, column 7",
        );
        check("{\"é\": 1}".as_bytes(), "ok");
    }

    #[test]
    fn characters_split_across_reads_are_fine() {
        let text = "[\"ééééé\"]".as_bytes();
        let mut reader = Guarded::new(io::Cursor::new(text));
        let mut out = Vec::new();
        let mut small = [0u8; 3];
        loop {
            let read = reader.read(&mut small).unwrap();
            if read == 0 {
                break;
            }
            out.extend_from_slice(&small[..read]);
        }
        assert_eq!(out, text);
    }
}
