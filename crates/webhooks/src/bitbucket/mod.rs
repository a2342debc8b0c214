//! Bitbucket, Cloud and Server/Data Center behind one receiver: `X-Hub-Signature: sha256=<hex>`
//! for both (Server may instead be set up with HTTP Basic, whose password is the secret).
//!
//! This module only decides which edition sent a delivery, from the event key and the request
//! id header; each edition's payloads are read by its own submodule. It never accepts the
//! SHA-1 form of the signature header that GitHub once used under the same name.

mod cloud;
mod server;

use crate::auth::{self, Check};
use crate::common;
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    let signature = match common::header_bytes(delivery.headers, "x-hub-signature") {
        Some(value) => auth::hex_hmac_sha256(value, delivery.body, secrets),
        None => Check::Absent,
    };
    let basic = match common::header_bytes(delivery.headers, "authorization") {
        Some(value) if is_basic(value) => auth::authorization(value, secrets, true),
        // Other schemes (Connect apps' JWTs) are not a webhook credential.
        _ => Check::Absent,
    };
    Check::combine(&[signature, basic])
}

fn is_basic(value: &[u8]) -> bool {
    let value = value.trim_ascii_start();
    value.len() > 6 && value[..6].eq_ignore_ascii_case(b"basic ")
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let key = common::header(delivery.headers, "x-event-key").unwrap_or("");
    match edition(delivery, key) {
        Edition::Cloud => cloud::parse(delivery, key),
        Edition::Server => server::parse(delivery, key),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Edition {
    Cloud,
    Server,
}

/// The event keys of the two editions barely overlap; where they do (or the key is missing),
/// the request id header tells, and last the Server-only `eventKey` field in the body.
fn edition(delivery: &Delivery<'_>, key: &str) -> Edition {
    let (family, _) = key.split_once(':').unwrap_or((key, ""));
    match family {
        "pullrequest" | "issue" | "project" => return Edition::Cloud,
        "pr" | "diagnostics" | "mirror" => return Edition::Server,
        _ => {}
    }
    match key {
        "repo:push" | "repo:commit_status_created" | "repo:commit_status_updated" => {
            return Edition::Cloud;
        }
        "repo:refs_changed" => return Edition::Server,
        _ => {}
    }
    let headers = delivery.headers;
    if headers.contains_key("x-request-uuid") || headers.contains_key("x-hook-uuid") {
        return Edition::Cloud;
    }
    if headers.contains_key("x-request-id") {
        return Edition::Server;
    }
    let body_names_key = delivery.body.windows(10).any(|w| w == b"\"eventKey\"");
    if body_names_key {
        Edition::Server
    } else {
        Edition::Cloud
    }
}

#[cfg(test)]
mod tests {
    use domain::{Action, EventType, Vendor};

    use super::*;
    use crate::testkit::{self, fixture, signature};

    #[test]
    fn signature_header_is_sha256_only() {
        let body = fixture("bitbucket-cloud-declined.json");
        let good = signature("bb", &body);
        let verify = |sig: &str| {
            testkit::verify_with(
                Vendor::Bitbucket,
                &[("x-hub-signature", sig)],
                None,
                &body,
                &["bb"],
            )
        };
        assert_eq!(verify(&good), Verification::Valid { slot: 0 });
        assert_eq!(
            verify(&good.to_uppercase().replacen("SHA256=", "sha256=", 1)),
            Verification::Valid { slot: 0 }
        );
        let sha1_mac = format!("sha1={}", &crate::sign_hex(b"bb", &body)[..40]);
        assert_eq!(verify(&sha1_mac), Verification::Invalid);
        assert_eq!(
            verify(&format!("sha256={}", "0".repeat(64))),
            Verification::Invalid
        );
        let none = testkit::verify_with(Vendor::Bitbucket, &[], None, &body, &["bb"]);
        assert_eq!(none, Verification::Missing);
    }

    #[test]
    fn server_ping_is_a_diagnostic() {
        let body = fixture("bitbucket-server-ping.json");
        let pairs = [("x-event-key", "diagnostics:ping"), ("x-request-id", "r-1")];
        assert_eq!(
            testkit::parse_with(Vendor::Bitbucket, &pairs, &body),
            Ok(Parsed::Diagnostic)
        );
        let not_json = testkit::parse_with(Vendor::Bitbucket, &pairs, b"ping");
        assert_eq!(not_json, Ok(Parsed::Diagnostic));
    }

    #[test]
    fn server_new_commits_update_the_pull_request() {
        let pairs = [
            ("x-event-key", "pr:from_ref_updated"),
            ("x-request-id", "r-2"),
        ];
        let body = fixture("bitbucket-server-from-ref-updated.json");
        let e = testkit::event(Vendor::Bitbucket, &pairs, &body);
        assert_eq!(
            (e.event_type, e.action),
            (EventType::PullRequest, Some(Action::Updated))
        );
        assert_eq!(e.repo.as_deref(), Some("WID/widgets"));
        assert_eq!(
            e.repo_url.as_deref(),
            Some("https://bb.example/scm/wid/widgets.git")
        );
        assert_eq!(e.branch.as_deref(), Some("feature/axles"));
        assert_eq!(e.actor.as_deref(), Some("dev5"));
        assert_eq!(e.delivery_id.as_deref(), Some("r-2"));
    }

    #[test]
    fn cloud_declined_is_closed() {
        let pairs = [
            ("x-event-key", "pullrequest:rejected"),
            ("x-request-uuid", "u-1"),
        ];
        let e = testkit::event(
            Vendor::Bitbucket,
            &pairs,
            &fixture("bitbucket-cloud-declined.json"),
        );
        assert_eq!(
            (e.event_type, e.action),
            (EventType::PullRequest, Some(Action::Closed))
        );
        assert_eq!(e.commit_sha.as_deref(), Some("0123456789ab"));
        assert_eq!(e.actor.as_deref(), Some("dev6"));
        assert_eq!(e.delivery_id.as_deref(), Some("u-1"));
    }

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn edition_comes_from_key_then_headers_then_body() {
        let cases: [(Pairs, &[u8], Edition); 5] = [
            (&[("x-event-key", "pr:opened")], b"{}", Edition::Server),
            (&[("x-event-key", "repo:push")], b"{}", Edition::Cloud),
            (
                &[("x-event-key", "repo:modified"), ("x-request-id", "r")],
                b"{}",
                Edition::Server,
            ),
            (
                &[("x-event-key", "repo:modified"), ("x-hook-uuid", "h")],
                b"{}",
                Edition::Cloud,
            ),
            (
                &[("x-event-key", "repo:modified")],
                br#"{"eventKey": "repo:modified"}"#,
                Edition::Server,
            ),
        ];
        for (pairs, body, expected) in cases {
            let headers = testkit::headers(pairs);
            let delivery = Delivery {
                headers: &headers,
                query: None,
                body,
            };
            let key = common::header(&headers, "x-event-key").unwrap();
            assert_eq!(edition(&delivery, key), expected, "{pairs:?}");
        }
    }

    #[test]
    fn empty_bodies_parse_for_both_editions() {
        for key in [
            "repo:push",
            "pullrequest:created",
            "repo:commit_status_updated",
            "repo:refs_changed",
            "pr:merged",
        ] {
            let e = testkit::event(Vendor::Bitbucket, &[("x-event-key", key)], b"{}");
            assert_eq!(e.vendor_event, key);
            assert_eq!(e.repo, None);
        }
        let bad = testkit::parse_with(Vendor::Bitbucket, &[("x-event-key", "repo:push")], b"[]");
        assert_eq!(bad, Err(ParseError::NotAnObject));
    }
}
