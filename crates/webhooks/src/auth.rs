//! Credential checks shared by the vendor modules: shared tokens, HTTP Basic and Bearer
//! credentials, hex HMAC-SHA256 signature headers and the Standard Webhooks signature.
//!
//! Every comparison here runs in constant time over the bytes as received. This module never
//! parses a body, never logs, and never lets an empty configured secret match anything: a
//! secret that is empty is skipped as if its slot were unset.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::common;
use crate::{Delivery, Secret, Verification};

type HmacSha256 = Hmac<Sha256>;

/// The outcome of one credential a delivery carried, before the vendor combines them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// The delivery did not carry this kind of credential.
    Absent,
    /// It did, and it matched the secret in this slot.
    Matched(u8),
    /// It did, and it matched no secret (or was malformed).
    Failed,
}

impl Check {
    /// Folds several credentials of one delivery: any match wins, then any failure, else
    /// nothing was presented at all.
    pub(crate) fn combine(checks: &[Check]) -> Verification {
        if let Some(slot) = checks.iter().find_map(|c| match c {
            Check::Matched(slot) => Some(*slot),
            _ => None,
        }) {
            return Verification::Valid { slot };
        }
        if checks.contains(&Check::Failed) {
            Verification::Invalid
        } else {
            Verification::Missing
        }
    }
}

/// The configured secrets that may be used, with their slot number.
fn usable(secrets: &[Secret]) -> impl Iterator<Item = (u8, &[u8])> {
    secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.0.is_empty())
        .filter_map(|(i, s)| u8::try_from(i).ok().map(|slot| (slot, s.0.as_slice())))
}

/// Compares a presented token with each secret. Both sides are hashed first so that the
/// comparison takes the same time whatever their lengths.
pub(crate) fn token(presented: &[u8], secrets: &[Secret]) -> Check {
    let presented = Sha256::digest(presented);
    let mut matched = None;
    for (slot, secret) in usable(secrets) {
        let expected = Sha256::digest(secret);
        if bool::from(presented.as_slice().ct_eq(expected.as_slice())) && matched.is_none() {
            matched = Some(slot);
        }
    }
    matched.map_or(Check::Failed, Check::Matched)
}

/// Checks a `sha256=<hex>` header value: HMAC-SHA256 of the body under each secret.
///
/// The prefix must be exactly `sha256=`; anything else (notably `sha1=`) fails rather than
/// falling back to a weaker algorithm. The hex may be in either case, must decode to 32 bytes
/// and must not be all zeros.
pub(crate) fn hex_hmac_sha256(header: &[u8], body: &[u8], secrets: &[Secret]) -> Check {
    let Some(hex_part) = header.trim_ascii().strip_prefix(b"sha256=") else {
        return Check::Failed;
    };
    let mut signature = [0u8; 32];
    if hex_part.len() != 64 || hex::decode_to_slice(hex_part, &mut signature).is_err() {
        return Check::Failed;
    }
    mac_matches(&signature, secrets, |mac| mac.update(body))
}

/// Checks a Standard Webhooks `webhook-signature` header: space-separated `v1,<base64>`
/// entries, each an HMAC-SHA256 of `<id>.<timestamp>.<body>`. Any one matching entry suffices.
pub(crate) fn standard_webhooks(
    id: &[u8],
    timestamp: &[u8],
    header: &[u8],
    body: &[u8],
    secrets: &[Secret],
) -> Check {
    for entry in header.split(|b| *b == b' ').filter(|e| !e.is_empty()) {
        let Some(encoded) = entry.strip_prefix(b"v1,") else {
            continue;
        };
        let Ok(decoded) = BASE64.decode(encoded) else {
            continue;
        };
        let Ok(signature) = <[u8; 32]>::try_from(decoded.as_slice()) else {
            continue;
        };
        let check = mac_matches(&signature, secrets, |mac| {
            mac.update(id);
            mac.update(b".");
            mac.update(timestamp);
            mac.update(b".");
            mac.update(body);
        });
        if let Check::Matched(_) = check {
            return check;
        }
    }
    Check::Failed
}

/// Checks an `Authorization` header: `Bearer <secret>`, or `Basic base64(user:secret)` with any
/// user. Other schemes fail.
pub(crate) fn authorization(header: &[u8], secrets: &[Secret], allow_basic: bool) -> Check {
    let header = header.trim_ascii();
    let Some(space) = header.iter().position(|b| *b == b' ') else {
        return Check::Failed;
    };
    let (scheme, credential) = (&header[..space], header[space + 1..].trim_ascii());
    if scheme.eq_ignore_ascii_case(b"bearer") {
        return token(credential, secrets);
    }
    if allow_basic && scheme.eq_ignore_ascii_case(b"basic") {
        let Ok(decoded) = BASE64.decode(credential) else {
            return Check::Failed;
        };
        let Some(colon) = decoded.iter().position(|b| *b == b':') else {
            return Check::Failed;
        };
        return token(&decoded[colon + 1..], secrets);
    }
    Check::Failed
}

/// The credentials a CI server without its own signing can be set up to send: a token header,
/// a Bearer token, a `token` query parameter, or an HMAC signature header of our convention.
pub(crate) fn ci_server(
    delivery: &Delivery<'_>,
    secrets: &[Secret],
    token_header: &str,
    signature_header: &str,
) -> Verification {
    let headers = delivery.headers;
    let header_token = match common::header_bytes(headers, token_header) {
        Some(value) => token(value.trim_ascii(), secrets),
        None => Check::Absent,
    };
    let bearer = match common::header_bytes(headers, "authorization") {
        Some(value) => authorization(value, secrets, false),
        None => Check::Absent,
    };
    let query = match delivery
        .query
        .and_then(|q| common::form_field(q.as_bytes(), "token"))
    {
        Some(raw) => query_token(raw, secrets),
        None => Check::Absent,
    };
    let signature = match common::header_bytes(headers, signature_header) {
        Some(value) => hex_hmac_sha256(value, delivery.body, secrets),
        None => Check::Absent,
    };
    Check::combine(&[header_token, bearer, query, signature])
}

/// A percent-encoded query token. A literal `+` is tried both as a space (form encoding) and as
/// itself, since tokens pasted into URLs by hand are often left unencoded.
fn query_token(raw: &[u8], secrets: &[Secret]) -> Check {
    let Ok(decoded) = common::form_decode(raw) else {
        return Check::Failed;
    };
    let check = token(&decoded, secrets);
    if check != Check::Failed || !raw.contains(&b'+') {
        return check;
    }
    let plus_kept: Vec<u8> = raw
        .split(|b| *b == b'+')
        .map(common::form_decode)
        .collect::<Result<Vec<_>, _>>()
        .map(|parts| parts.join(&b'+'))
        .unwrap_or_default();
    token(&plus_kept, secrets)
}

/// Computes the HMAC under each usable secret and verifies it against `signature` in constant
/// time. An all-zero signature never matches.
fn mac_matches(signature: &[u8; 32], secrets: &[Secret], feed: impl Fn(&mut HmacSha256)) -> Check {
    if signature.iter().all(|b| *b == 0) {
        return Check::Failed;
    }
    for (slot, secret) in usable(secrets) {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            continue;
        };
        feed(&mut mac);
        if mac.verify_slice(signature).is_ok() {
            return Check::Matched(slot);
        }
    }
    Check::Failed
}

/// HMAC-SHA256 of `data` under `key`, as lower-case hex. Used by tests and the bench to sign
/// deliveries the way vendors do.
pub fn sign_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values
            .iter()
            .map(|v| Secret(v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn token_reports_the_matching_slot() {
        let s = secrets(&["current", "previous"]);
        assert_eq!(token(b"current", &s), Check::Matched(0));
        assert_eq!(token(b"previous", &s), Check::Matched(1));
        assert_eq!(token(b"other", &s), Check::Failed);
        assert_eq!(token(b"", &secrets(&[""])), Check::Failed);
    }

    #[test]
    fn hex_signature_rules() {
        let s = secrets(&["k"]);
        let good = format!("sha256={}", sign_hex(b"k", b"body"));
        assert_eq!(
            hex_hmac_sha256(good.as_bytes(), b"body", &s),
            Check::Matched(0)
        );
        let upper = format!("sha256={}", sign_hex(b"k", b"body").to_uppercase());
        assert_eq!(
            hex_hmac_sha256(upper.as_bytes(), b"body", &s),
            Check::Matched(0)
        );
        let zeros = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            hex_hmac_sha256(zeros.as_bytes(), b"body", &s),
            Check::Failed
        );
        assert_eq!(
            hex_hmac_sha256(&good.as_bytes()[..70], b"body", &s),
            Check::Failed
        );
        let wrong_prefix = good.replacen("sha256=", "sha1=", 1);
        assert_eq!(
            hex_hmac_sha256(wrong_prefix.as_bytes(), b"body", &s),
            Check::Failed
        );
    }

    #[test]
    fn combine_prefers_a_match_then_a_failure() {
        use Check::*;
        assert_eq!(
            Check::combine(&[Failed, Matched(1)]),
            Verification::Valid { slot: 1 }
        );
        assert_eq!(Check::combine(&[Absent, Failed]), Verification::Invalid);
        assert_eq!(Check::combine(&[Absent, Absent]), Verification::Missing);
    }

    #[test]
    fn authorization_schemes() {
        let s = secrets(&["tok"]);
        assert_eq!(authorization(b"Bearer tok", &s, true), Check::Matched(0));
        let basic = format!("Basic {}", BASE64.encode("anyone:tok"));
        assert_eq!(authorization(basic.as_bytes(), &s, true), Check::Matched(0));
        assert_eq!(authorization(basic.as_bytes(), &s, false), Check::Failed);
        assert_eq!(authorization(b"Token tok", &s, true), Check::Failed);
    }
}
