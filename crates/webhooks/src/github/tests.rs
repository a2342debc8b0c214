//! GitHub verification and normalization against our own fixtures.

use domain::Vendor;

use super::*;
use crate::testkit::{self, fixture, signature};

const KEY: &str = "gh-secret";

fn verify_sig(sig: &str, body: &[u8], configured: &[&str]) -> Verification {
    let pairs = [("x-hub-signature-256", sig)];
    testkit::verify_with(Vendor::Github, &pairs, None, body, configured)
}

#[test]
fn signature_cases() {
    let body = fixture("github-push.json");
    let good = signature(KEY, &body);
    let sha1_mac = format!("sha1={}", &crate::sign_hex(KEY.as_bytes(), &body)[..40]);
    let cases = [
        ("correct", good.clone(), Verification::Valid { slot: 0 }),
        (
            "upper-case hex",
            good.to_uppercase().replacen("SHA256=", "sha256=", 1),
            Verification::Valid { slot: 0 },
        ),
        (
            "wrong secret",
            signature("other", &body),
            Verification::Invalid,
        ),
        (
            "all zeros",
            format!("sha256={}", "0".repeat(64)),
            Verification::Invalid,
        ),
        ("sha1 prefix", sha1_mac, Verification::Invalid),
        (
            "sha1 prefix, sha256 mac",
            good.replacen("sha256=", "sha1=", 1),
            Verification::Invalid,
        ),
        (
            "short hex",
            good[..good.len() - 2].to_owned(),
            Verification::Invalid,
        ),
        ("long hex", format!("{good}00"), Verification::Invalid),
        (
            "not hex",
            format!("sha256={}", "zz".repeat(32)),
            Verification::Invalid,
        ),
    ];
    for (name, sig, expected) in cases {
        assert_eq!(verify_sig(&sig, &body, &[KEY]), expected, "{name}");
    }
}

#[test]
fn body_changed_after_signing_fails() {
    let body = fixture("github-push.json");
    let sig = signature(KEY, &body);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialized = serde_json::to_vec(&value).unwrap();
    assert_ne!(reserialized, body);
    assert_eq!(
        verify_sig(&sig, &reserialized, &[KEY]),
        Verification::Invalid
    );
}

#[test]
fn missing_and_legacy_only_headers_are_missing() {
    let body = fixture("github-push.json");
    let none = testkit::verify_with(Vendor::Github, &[], None, &body, &[KEY]);
    assert_eq!(none, Verification::Missing);
    let legacy = format!("sha1={}", "ab".repeat(20));
    let pairs = [("x-hub-signature", legacy.as_str())];
    let legacy_only = testkit::verify_with(Vendor::Github, &pairs, None, &body, &[KEY]);
    assert_eq!(legacy_only, Verification::Missing);
}

#[test]
fn empty_secret_never_validates() {
    let body = fixture("github-push.json");
    assert_eq!(
        verify_sig(&signature("", &body), &body, &[""]),
        Verification::Invalid
    );
    assert_eq!(
        verify_sig(&signature("", &body), &body, &["", KEY]),
        Verification::Invalid
    );
}

#[test]
fn previous_secret_matches_slot_one() {
    let body = fixture("github-push.json");
    let sig = signature("old-secret", &body);
    assert_eq!(
        verify_sig(&sig, &body, &[KEY, "old-secret"]),
        Verification::Valid { slot: 1 }
    );
}

#[test]
fn push_is_normalized() {
    let pairs = [("x-github-event", "push"), ("x-github-delivery", "d-1")];
    let e = testkit::event(Vendor::Github, &pairs, &fixture("github-push.json"));
    assert_eq!(
        (e.event_type, e.action),
        (EventType::Push, Some(Action::Updated))
    );
    assert_eq!(e.vendor_event, "push");
    assert_eq!(e.repo.as_deref(), Some("pmap-test/widgets"));
    assert_eq!(e.branch.as_deref(), Some("main"));
    assert_eq!(
        e.commit_sha.as_deref(),
        Some("2222222222222222222222222222222222222222")
    );
    assert_eq!(
        e.before_sha.as_deref(),
        Some("1111111111111111111111111111111111111111")
    );
    assert_eq!(e.actor.as_deref(), Some("dev-one"));
    assert_eq!(e.delivery_id.as_deref(), Some("d-1"));
}

#[test]
fn synchronize_is_an_update_without_merge_commit() {
    let pairs = [("x-github-event", "pull_request")];
    let e = testkit::event(
        Vendor::Github,
        &pairs,
        &fixture("github-pr-synchronize.json"),
    );
    assert_eq!(e.action, Some(Action::Updated));
    assert_eq!(e.vendor_event, "pull_request.synchronize");
    assert_eq!(e.pr_number, Some(17));
    assert_eq!(
        (e.branch.as_deref(), e.target_branch.as_deref()),
        (Some("feature/gears"), Some("main"))
    );
    assert_eq!(e.merge_commit, None);
}

#[test]
fn form_encoded_delivery_is_verified_then_decoded() {
    let json = fixture("github-push.json");
    let encoded: String = json
        .iter()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (*b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let form = format!("payload={encoded}");
    let sig = signature(KEY, form.as_bytes());
    let pairs = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-hub-signature-256", sig.as_str()),
        ("x-github-event", "push"),
    ];
    let verified = testkit::verify_with(Vendor::Github, &pairs, None, form.as_bytes(), &[KEY]);
    assert_eq!(verified, Verification::Valid { slot: 0 });
    let e = testkit::event(Vendor::Github, &pairs, form.as_bytes());
    assert_eq!(
        e.commit_sha.as_deref(),
        Some("2222222222222222222222222222222222222222")
    );

    let form_pairs = [("content-type", "application/x-www-form-urlencoded")];
    let missing = testkit::parse_with(Vendor::Github, &form_pairs, b"other=1");
    assert_eq!(missing, Err(ParseError::MissingFormPayload));
    let broken = testkit::parse_with(Vendor::Github, &form_pairs, b"payload=%7");
    assert!(
        matches!(broken, Err(ParseError::InvalidForm(_))),
        "{broken:?}"
    );
}

#[test]
fn bodies_that_are_not_objects_are_rejected() {
    let pairs = [("x-github-event", "push")];
    let not_json = testkit::parse_with(Vendor::Github, &pairs, b"{\"ref\": ");
    assert!(
        matches!(not_json, Err(ParseError::InvalidJson(_))),
        "{not_json:?}"
    );
    let garbage = testkit::parse_with(Vendor::Github, &pairs, b"hello");
    assert!(
        matches!(garbage, Err(ParseError::InvalidJson(_))),
        "{garbage:?}"
    );
    let array = testkit::parse_with(Vendor::Github, &pairs, b" [1, 2]");
    assert_eq!(array, Err(ParseError::NotAnObject));
    let string = testkit::parse_with(Vendor::Github, &pairs, b"\"push\"");
    assert_eq!(string, Err(ParseError::NotAnObject));
}

#[test]
fn every_event_accepts_an_empty_object() {
    let body = fixture("github-empty-object.json");
    for event in [
        "push",
        "pull_request",
        "ping",
        "workflow_run",
        "workflow_job",
        "check_suite",
        "check_run",
        "status",
        "issues",
    ] {
        let e = testkit::event(Vendor::Github, &[("x-github-event", event)], &body);
        assert_eq!(e.repo, None, "{event}");
        assert_eq!(e.commit_sha, None, "{event}");
    }
    let unknown = testkit::event(Vendor::Github, &[("x-github-event", "issues")], &body);
    assert_eq!(
        (unknown.event_type, unknown.vendor_event.as_str()),
        (EventType::Other, "issues")
    );
}

#[test]
fn ping_has_no_action() {
    let body = br#"{"zen": "z", "hook_id": 5, "action": "odd"}"#;
    let e = testkit::event(Vendor::Github, &[("x-github-event", "ping")], body);
    assert_eq!((e.event_type, e.action), (EventType::Ping, None));
    assert_eq!(e.details.get("hook_id"), Some(&Value::from(5)));
}
