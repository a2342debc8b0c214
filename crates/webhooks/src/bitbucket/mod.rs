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
