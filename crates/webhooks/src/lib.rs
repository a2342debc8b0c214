//! Inbound CI webhooks: raw bytes and headers in, a verified, normalized CI event out.
//!
//! One module per vendor. Everything here is pure: no database, no network, no clock, no
//! logging of secrets. Verification always runs over the raw body as received, in constant
//! time, before any parsing.
//!
//! Only vendors of the `ci_webhook` archetype send webhooks here. For any other vendor
//! [`verify`] answers [`Verification::Invalid`] and [`parse`] an event of type `other`, so a
//! misrouted delivery can never be accepted as authentic.

mod auth;
mod azure_devops;
mod bamboo;
mod bitbucket;
mod common;
mod github;
mod gitlab;
mod jenkins;
#[cfg(test)]
mod testkit;

use domain::{EventType, NormalizedEvent, Vendor};
use http::HeaderMap;

pub use auth::sign_hex;

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
///
/// `secrets[0]` is the current secret and `secrets[1]` the previous one; empty secrets never
/// match. The answer says which slot matched.
pub fn verify(vendor: Vendor, delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    match vendor {
        Vendor::Github => github::verify(delivery, secrets),
        Vendor::Gitlab => gitlab::verify(delivery, secrets),
        Vendor::AzureDevops => azure_devops::verify(delivery, secrets),
        Vendor::Bitbucket => bitbucket::verify(delivery, secrets),
        Vendor::Jenkins => jenkins::verify(delivery, secrets),
        Vendor::Bamboo => bamboo::verify(delivery, secrets),
        _ => Verification::Invalid,
    }
}

/// Parses a verified delivery into a normalized CI event.
///
/// Call it only after [`verify`] (or the unsigned-hook policy) accepted the delivery: GitHub's
/// form-encoded bodies, for one, are decoded here, after their signature was checked.
pub fn parse(vendor: Vendor, delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    match vendor {
        Vendor::Github => github::parse(delivery),
        Vendor::Gitlab => gitlab::parse(delivery),
        Vendor::AzureDevops => azure_devops::parse(delivery),
        Vendor::Bitbucket => bitbucket::parse(delivery),
        Vendor::Jenkins => jenkins::parse(delivery),
        Vendor::Bamboo => bamboo::parse(delivery),
        other => {
            let event = NormalizedEvent::new(other.as_str(), EventType::Other);
            Ok(Parsed::Event(Box::new(event)))
        }
    }
}

/// What the headers alone say about a delivery: the vendor's event name and delivery id, for
/// recording a rejected delivery without reading its body. Vendors that name neither in
/// headers (Azure DevOps, Jenkins, Bamboo) give `None`.
pub fn peek(vendor: Vendor, headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    let (event, ids): (&str, &[&str]) = match vendor {
        Vendor::Github => ("x-github-event", &["x-github-delivery"]),
        Vendor::Gitlab => (
            "x-gitlab-event",
            &["idempotency-key", "x-gitlab-event-uuid"],
        ),
        Vendor::Bitbucket => ("x-event-key", &["x-request-uuid", "x-request-id"]),
        _ => return (None, None),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    (header(event), ids.iter().find_map(|name| header(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_reads_event_and_delivery_headers_only() {
        let headers = testkit::headers(&[("x-event-key", "pr:opened"), ("x-request-id", "r-1")]);
        assert_eq!(
            peek(Vendor::Bitbucket, &headers),
            (Some("pr:opened"), Some("r-1"))
        );
        assert_eq!(peek(Vendor::Github, &headers), (None, None));
        assert_eq!(peek(Vendor::Jenkins, &headers), (None, None));
    }

    #[test]
    fn only_ci_vendors_are_accepted() {
        let headers = testkit::headers(&[("authorization", "Bearer s"), ("x-gitlab-token", "s")]);
        let delivery = Delivery {
            headers: &headers,
            query: Some("token=s"),
            body: b"{}",
        };
        let secrets = testkit::secrets(&["s"]);
        for vendor in Vendor::ALL {
            let verification = verify(*vendor, &delivery, &secrets);
            let is_ci = vendor.archetype() == domain::Archetype::CiWebhook;
            assert_eq!(verification == Verification::Invalid, !is_ci, "{vendor}");
            assert!(parse(*vendor, &delivery).is_ok(), "{vendor}");
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret(b"hunter2".to_vec())), "[redacted]");
    }
}
