//! Safe XML reading shared by the XML formats, on top of quick-xml.
//!
//! Only the five predefined entities and character references are understood: a document that
//! declares entities (the way to external-entity and billion-laughs attacks) is refused before
//! any element is read, and a reference to an undeclared entity is an error. Nothing is ever
//! fetched or expanded, nesting depth is bounded, and errors carry a line and column. Element
//! names are compared by local name, so namespace prefixes do not matter.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;

use crate::MAX_DEPTH;
use crate::error::{ImportError, Position};
use crate::format::Format;

/// What the formats' parsers see of a document.
pub(crate) enum Node<'a> {
    /// An element opens; empty elements are reported as an open and a close.
    Open(BytesStart<'a>),
    /// An element closes, with its text content since the last open or close.
    Close {
        name: Vec<u8>,
        text: String,
    },
    Eof,
}

pub(crate) struct XmlReader<'a> {
    reader: Reader<&'a [u8]>,
    input: &'a [u8],
    format: Format,
    depth: usize,
    text: String,
    /// Which part of the input this document is, for errors (`audit.fvdl` in an FPR).
    part: Option<&'static str>,
}

impl<'a> XmlReader<'a> {
    pub(crate) fn new(
        format: Format,
        input: &'a [u8],
        part: Option<&'static str>,
    ) -> Result<Self, ImportError> {
        let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
        if let Err(err) = std::str::from_utf8(input) {
            let at = Position::of_offset(input, err.valid_up_to());
            return Err(ImportError::InvalidUtf8 { format, at });
        }
        let mut reader = Reader::from_reader(input);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        Ok(XmlReader {
            reader,
            input,
            format,
            depth: 0,
            text: String::new(),
            part,
        })
    }

    pub(crate) fn next(&mut self) -> Result<Node<'a>, ImportError> {
        loop {
            let event = self.reader.read_event().map_err(|err| {
                let offset = self.reader.error_position() as usize;
                self.error_at(offset, &err.to_string())
            })?;
            match event {
                Event::Start(start) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        let at = self.position(self.reader.buffer_position() as usize);
                        return Err(ImportError::TooDeep {
                            format: self.format,
                            at,
                            limit: MAX_DEPTH,
                        });
                    }
                    self.text.clear();
                    return Ok(Node::Open(start));
                }
                Event::End(end) => {
                    self.depth = self.depth.saturating_sub(1);
                    let text = std::mem::take(&mut self.text);
                    return Ok(Node::Close {
                        name: end.local_name().as_ref().to_vec(),
                        text,
                    });
                }
                Event::Text(text) => {
                    let text = text
                        .decode()
                        .map_err(|err| self.error_here(&err.to_string()))?;
                    self.text.push_str(&text);
                }
                Event::CData(data) => {
                    let data = data
                        .decode()
                        .map_err(|err| self.error_here(&err.to_string()))?;
                    self.text.push_str(&data);
                }
                Event::GeneralRef(reference) => self.push_reference(&reference)?,
                Event::DocType(doctype) => {
                    let declares_entities = doctype
                        .windows(8)
                        .any(|w| w.eq_ignore_ascii_case(b"<!ENTITY"));
                    if declares_entities {
                        return Err(self.error_here("entity declarations are not accepted"));
                    }
                }
                Event::Eof => {
                    if self.depth > 0 {
                        return Err(self.error_here(
                            "the document ends inside an element; it looks truncated",
                        ));
                    }
                    return Ok(Node::Eof);
                }
                Event::Empty(_) | Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
    }

    /// The value of an attribute by local name, with predefined entities resolved.
    pub(crate) fn attribute(
        &self,
        element: &BytesStart<'_>,
        name: &str,
    ) -> Result<Option<String>, ImportError> {
        for attribute in element.attributes() {
            let attribute = attribute.map_err(|err| self.error_here(&err.to_string()))?;
            if local(attribute.key) != name.as_bytes() {
                continue;
            }
            let value = attribute
                .unescape_value()
                .map_err(|err| self.error_here(&err.to_string()))?;
            return Ok(Some(value.into_owned()));
        }
        Ok(None)
    }

    pub(crate) fn error_here(&self, message: &str) -> ImportError {
        self.error_at(self.reader.buffer_position() as usize, message)
    }

    fn error_at(&self, offset: usize, message: &str) -> ImportError {
        let message = match self.part {
            Some(part) => format!("{part}: {message}"),
            None => message.to_owned(),
        };
        ImportError::malformed(self.format, self.position(offset), message)
    }

    fn position(&self, offset: usize) -> Position {
        Position::of_offset(self.input, offset)
    }

    fn push_reference(
        &mut self,
        reference: &quick_xml::events::BytesRef<'_>,
    ) -> Result<(), ImportError> {
        if let Some(character) = reference
            .resolve_char_ref()
            .map_err(|err| self.error_here(&err.to_string()))?
        {
            self.text.push(character);
            return Ok(());
        }
        let name = reference
            .decode()
            .map_err(|err| self.error_here(&err.to_string()))?;
        let resolved = match name.as_ref() {
            "lt" => "<",
            "gt" => ">",
            "amp" => "&",
            "apos" => "'",
            "quot" => "\"",
            other => return Err(self.error_here(&format!("undefined entity &{other};"))),
        };
        self.text.push_str(resolved);
        Ok(())
    }
}

/// The local part of a possibly prefixed name.
pub(crate) fn local(name: QName<'_>) -> &[u8] {
    let bytes = name.into_inner();
    bytes
        .iter()
        .rposition(|&b| b == b':')
        .map_or(bytes, |colon| &bytes[colon + 1..])
}

/// The local name of an opening element.
pub(crate) fn local_name<'e>(element: &'e BytesStart<'_>) -> Cow<'e, [u8]> {
    Cow::Borrowed(element.local_name().into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(input: &str) -> Result<Vec<String>, String> {
        let mut reader = XmlReader::new(Format::Fortify, input.as_bytes(), None).unwrap();
        let mut out = Vec::new();
        loop {
            match reader.next().map_err(|e| e.to_string())? {
                Node::Open(_) => {}
                Node::Close { text, .. } => out.push(text),
                Node::Eof => return Ok(out),
            }
        }
    }

    #[test]
    fn predefined_entities_only() {
        assert_eq!(
            texts("<a>x &amp; &#65; <![CDATA[<y>]]></a>").unwrap(),
            ["x & A <y>"]
        );
        let undefined = texts("<a>&secret;</a>").unwrap_err();
        assert!(
            undefined.contains("undefined entity &secret;"),
            "{undefined}"
        );
        let declared = texts("<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>").unwrap_err();
        assert!(
            declared.contains("entity declarations are not accepted"),
            "{declared}"
        );
        assert!(texts("<a><b></a>").is_err());
        assert!(texts("<a><b>").unwrap_err().contains("truncated"));
    }
}
