//! Helpers for this crate's unit tests: deliveries built from our own fixtures under
//! `tests/fixtures/`, signed the way each vendor signs. Test-only; never part of the library.

use domain::{NormalizedEvent, Vendor};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{Delivery, Parsed, Secret, Verification};

/// A fixture's bytes.
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()))
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        map.append(name, HeaderValue::from_str(value).expect("header value"));
    }
    map
}

pub(crate) fn secrets(values: &[&str]) -> Vec<Secret> {
    values
        .iter()
        .map(|v| Secret(v.as_bytes().to_vec()))
        .collect()
}

/// `sha256=<hex>` of `body` under `key`.
pub(crate) fn signature(key: &str, body: &[u8]) -> String {
    format!("sha256={}", crate::sign_hex(key.as_bytes(), body))
}

pub(crate) fn verify_with(
    vendor: Vendor,
    pairs: &[(&str, &str)],
    query: Option<&str>,
    body: &[u8],
    configured: &[&str],
) -> Verification {
    let headers = headers(pairs);
    let delivery = Delivery {
        headers: &headers,
        query,
        body,
    };
    crate::verify(vendor, &delivery, &secrets(configured))
}

pub(crate) fn parse_with(
    vendor: Vendor,
    pairs: &[(&str, &str)],
    body: &[u8],
) -> Result<Parsed, crate::ParseError> {
    let headers = headers(pairs);
    crate::parse(
        vendor,
        &Delivery {
            headers: &headers,
            query: None,
            body,
        },
    )
}

/// Parses a delivery that must become an event.
pub(crate) fn event(vendor: Vendor, pairs: &[(&str, &str)], body: &[u8]) -> NormalizedEvent {
    match parse_with(vendor, pairs, body) {
        Ok(Parsed::Event(e)) => *e,
        other => panic!("expected an event, got {other:?}"),
    }
}
