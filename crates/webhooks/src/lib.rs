//! Inbound CI webhooks: raw bytes and headers in, a verified, normalized CI event out.
//!
//! One module per vendor. Everything here is pure: no database, no network, no clock, no
//! logging of secrets. Verification always runs over the raw body as received, in constant
//! time, before any parsing.

use domain::{NormalizedEvent, Vendor};
use http::HeaderMap;

/// One inbound request, as received.
#[derive(Clone, Copy, Debug)]
pub struct Delivery<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string, without the `?` (it may carry a `token=` for Jenkins/Bamboo).
    pub query: Option<&'a str>,
    pub body: &'a [u8],
}

/// A configured secret. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret(pub Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The result of checking a delivery against the integration's active secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// A credential matched the secret in this slot (0 = current, 1 = previous).
    Valid { slot: u8 },
    /// The delivery carried no credential this vendor could send.
    Missing,
    /// It carried one, and it matched none of the secrets (or was malformed).
    Invalid,
}

/// What a verified delivery turns out to be.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    /// A CI event to store.
    Event(Box<NormalizedEvent>),
    /// A vendor diagnostic (Bitbucket Server's `diagnostics:ping`): answer 200, store nothing.
    Diagnostic,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("body is JSON but not an object")]
    NotAnObject,
    #[error("form-encoded body has no `payload` field")]
    MissingFormPayload,
    #[error("form-encoded `payload` is not valid: {0}")]
    InvalidForm(String),
}

/// Checks the delivery with the vendor's own mechanism against each active secret.
pub fn verify(vendor: Vendor, delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    let _ = (vendor, delivery, secrets);
    unimplemented!("vendor modules")
}

/// Parses a verified delivery into a normalized CI event.
pub fn parse(vendor: Vendor, delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let _ = (vendor, delivery);
    unimplemented!("vendor modules")
}
