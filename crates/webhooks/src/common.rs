//! Helpers every vendor module uses: header access, decoding a body into a typed payload,
//! form decoding, git ref names, and the vendor-neutral verb mappings.
//!
//! Nothing here knows a vendor's field names, and nothing here builds a JSON tree of a whole
//! body: payloads are deserialized straight into the vendor's typed structs.

use std::fmt;

use domain::Action;
use http::HeaderMap;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::ParseError;

/// A header's value as text, if present and readable.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)?
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A header's value as raw bytes, if present.
pub(crate) fn header_bytes<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    headers.get(name).map(|v| v.as_bytes())
}

/// Deserializes a body into the vendor's payload type, telling apart bodies that are not
/// JSON at all from JSON that is not an object.
pub(crate) fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ParseError> {
    let starts_as_object = body.trim_ascii_start().first() == Some(&b'{');
    if !starts_as_object {
        return match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => Err(ParseError::NotAnObject),
            Err(e) => Err(ParseError::InvalidJson(e.to_string())),
        };
    }
    serde_json::from_slice(body).map_err(|e| ParseError::InvalidJson(e.to_string()))
}

/// Decodes `application/x-www-form-urlencoded` bytes (`+` is a space).
pub(crate) fn form_decode(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let pair = input.get(i + 1..i + 3).ok_or("truncated percent escape")?;
                let mut byte = [0u8; 1];
                hex::decode_to_slice(pair, &mut byte).map_err(|_| "bad percent escape")?;
                out.push(byte[0]);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(out)
}

/// The first value of `name` in a form-encoded string (a query string or a form body), raw.
pub(crate) fn form_field<'a>(input: &'a [u8], name: &str) -> Option<&'a [u8]> {
    input.split(|b| *b == b'&').find_map(|pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
    })
}

/// What a git ref names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GitRef {
    Branch(String),
    Tag(String),
}

/// Classifies a full ref (`refs/heads/x`, `refs/tags/v1`); a bare name is taken as a branch.
pub(crate) fn git_ref(full: &str) -> GitRef {
    if let Some(tag) = full.strip_prefix("refs/tags/") {
        GitRef::Tag(tag.to_owned())
    } else {
        GitRef::Branch(full.strip_prefix("refs/heads/").unwrap_or(full).to_owned())
    }
}

/// A branch name without `refs/heads/`.
pub(crate) fn branch_name(full: &str) -> String {
    full.strip_prefix("refs/heads/").unwrap_or(full).to_owned()
}

/// Git's null object id (any length of zeros) marks a ref that did not or no longer exists.
pub(crate) fn is_zero_sha(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// A SHA unless it is absent or git's null id.
pub(crate) fn real_sha(sha: Option<String>) -> Option<String> {
    sha.filter(|s| !s.is_empty() && !is_zero_sha(s))
}

/// The verb of a push or tag from its old and new ids.
pub(crate) fn push_action(before: Option<&str>, after: Option<&str>) -> Action {
    match (before, after) {
        (Some(b), _) if is_zero_sha(b) => Action::Created,
        (_, Some(a)) if is_zero_sha(a) => Action::Deleted,
        _ => Action::Updated,
    }
}

/// Maps a vendor's build result or state word onto the build verbs.
///
/// Only clear outcomes are mapped; states that are neither running nor finished (created,
/// pending, queued, waiting) and unrendered templates are `other`.
pub(crate) fn build_action(status: &str) -> Action {
    let word: String = status
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    match word.as_str() {
        "success" | "successful" | "succeeded" | "passed" | "fixed" | "ok" => Action::Succeeded,
        "failure" | "failed" | "fail" | "error" | "errored" | "broken" | "unstable"
        | "timedout" | "startupfailure" | "partiallysucceeded" => Action::Failed,
        "aborted" | "canceled" | "cancelled" | "stopped" | "cancelling" | "canceling" => {
            Action::Cancelled
        }
        "started" | "running" | "inprogress" => Action::Started,
        _ => Action::Other,
    }
}

/// A scalar the vendor may send as a number or as a string (ids, build numbers). Anything
/// else, including objects and arrays, is skipped without building a tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Loose {
    #[default]
    Null,
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Skipped,
}

impl Loose {
    /// The value as JSON, for `details` (numbers stay numbers).
    pub(crate) fn to_json(&self) -> Option<Value> {
        match self {
            Loose::Int(i) => Some(Value::from(*i)),
            Loose::Float(f) => Some(Value::from(*f)),
            Loose::Str(s) => Some(Value::from(s.clone())),
            Loose::Bool(b) => Some(Value::from(*b)),
            Loose::Null | Loose::Skipped => None,
        }
    }

    /// The value as text (`18`, `"ConsumerAddressModule_20150407.1"`).
    pub(crate) fn to_text(&self) -> Option<String> {
        match self {
            Loose::Int(i) => Some(i.to_string()),
            Loose::Float(f) => Some(f.to_string()),
            Loose::Str(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// The value as an integer, when it is one or a string holding one.
    pub(crate) fn to_i64(&self) -> Option<i64> {
        match self {
            Loose::Int(i) => Some(*i),
            Loose::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Loose, E> {
        Ok(Loose::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose, E> {
        Ok(Loose::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose, E> {
        Ok(i64::try_from(v).map_or(Loose::Float(v as f64), Loose::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Loose, E> {
        Ok(Loose::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Loose, E> {
        Ok(Loose::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Loose, E> {
        Ok(Loose::Str(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Loose, E> {
        Ok(Loose::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Loose, D::Error> {
        d.deserialize_any(LooseVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Loose::Skipped)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Loose::Skipped)
    }
}

/// Deserializes a string field leniently: a number becomes its text, anything else `None`.
pub(crate) fn loose_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Loose::deserialize(d)?.to_text())
}

/// Empty strings are as good as absent.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_words() {
        let cases = [
            ("success", Action::Succeeded),
            ("SUCCESSFUL", Action::Succeeded),
            ("succeeded", Action::Succeeded),
            ("FAILED", Action::Failed),
            ("failure", Action::Failed),
            ("ABORTED", Action::Cancelled),
            ("canceled", Action::Cancelled),
            ("INPROGRESS", Action::Started),
            ("in_progress", Action::Started),
            ("created", Action::Other),
            ("pending", Action::Other),
            ("${bamboo.buildState}", Action::Other),
        ];
        for (word, expected) in cases {
            assert_eq!(build_action(word), expected, "{word}");
        }
    }

    #[test]
    fn push_verbs() {
        let zeros = "0".repeat(40);
        assert_eq!(push_action(Some(&zeros), Some("abc")), Action::Created);
        assert_eq!(push_action(Some("abc"), Some(&zeros)), Action::Deleted);
        assert_eq!(push_action(Some("abc"), Some("def")), Action::Updated);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode(b"a%2Bb+c").unwrap(), b"a+b c");
        assert!(form_decode(b"%zz").is_err());
        assert!(form_decode(b"%4").is_err());
        assert_eq!(
            form_field(b"x=1&payload=%7B%7D", "payload"),
            Some(&b"%7B%7D"[..])
        );
        assert_eq!(form_field(b"x=1", "payload"), None);
    }

    #[test]
    fn refs() {
        assert_eq!(git_ref("refs/heads/a/b"), GitRef::Branch("a/b".into()));
        assert_eq!(git_ref("refs/tags/v1"), GitRef::Tag("v1".into()));
        assert_eq!(git_ref("main"), GitRef::Branch("main".into()));
    }
}
