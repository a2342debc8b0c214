//! The webhook crate's one integration-test binary: every payload of the real-world corpus,
//! signed the vendor's way, goes through the public `verify` and `parse` exactly as the HTTP
//! receiver calls them, and must match the manifest's `expect` block. Bad inputs are covered
//! by each vendor module's unit tests, over fixtures of our own.

use http::{HeaderMap, HeaderName, HeaderValue};
use test_support::webhook_corpus::{self, Entry};
use webhooks::{Delivery, Parsed, Secret, Verification};

const SECRET: &str = "corpus-secret-3f9a";

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        headers.append(name, HeaderValue::from_str(value).expect("header value"));
    }
    headers
}

/// Signs, verifies and parses one entry; returns its mismatches against the manifest.
fn run_entry(corpus: &std::path::Path, entry: &Entry) -> Vec<String> {
    let body = entry.body(corpus).expect("corpus payload");
    let headers = header_map(&webhook_corpus::signed_headers(entry, SECRET, &body));
    let delivery = Delivery {
        headers: &headers,
        query: None,
        body: &body,
    };
    let vendor = webhook_corpus::route_vendor(entry);
    let secrets = [Secret(SECRET.as_bytes().to_vec())];

    let verification = webhooks::verify(vendor, &delivery, &secrets);
    if verification != (Verification::Valid { slot: 0 }) {
        return vec![format!(
            "verification: expected slot 0, got {verification:?}"
        )];
    }
    match webhooks::parse(vendor, &delivery) {
        Ok(Parsed::Event(event)) => {
            let json = serde_json::to_value(&*event).expect("event serializes");
            webhook_corpus::check_expect(&entry.expect, &json)
        }
        Ok(Parsed::Diagnostic) => vec!["parsed as a diagnostic".into()],
        Err(e) => vec![format!("parse failed: {e}")],
    }
}

#[test]
fn corpus_conforms_to_manifest() {
    let Some(corpus) = webhook_corpus::corpus_dir() else {
        eprintln!("skipped: webhook corpus not found (set PMAP_CORPUS_DIR)");
        return;
    };
    let entries = webhook_corpus::load_manifest(&corpus).expect("manifest loads");
    assert!(!entries.is_empty(), "manifest lists no entries");

    let mut failures = Vec::new();
    for entry in &entries {
        let problems = run_entry(&corpus, entry);
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", entry.file, problems.join("\n    ")));
        }
    }
    let passed = entries.len() - failures.len();
    eprintln!("webhook corpus: {passed}/{} entries conform", entries.len());
    assert!(
        failures.is_empty(),
        "{} entries differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_rejects_a_wrong_secret() {
    let Some(corpus) = webhook_corpus::corpus_dir() else {
        eprintln!("skipped: webhook corpus not found (set PMAP_CORPUS_DIR)");
        return;
    };
    let entries = webhook_corpus::load_manifest(&corpus).expect("manifest loads");
    for entry in &entries {
        let body = entry.body(&corpus).expect("corpus payload");
        let headers = header_map(&webhook_corpus::signed_headers(
            entry,
            "not-the-secret",
            &body,
        ));
        let delivery = Delivery {
            headers: &headers,
            query: None,
            body: &body,
        };
        let secrets = [Secret(SECRET.as_bytes().to_vec())];
        let verification =
            webhooks::verify(webhook_corpus::route_vendor(entry), &delivery, &secrets);
        assert_eq!(verification, Verification::Invalid, "{}", entry.file);
    }
}
