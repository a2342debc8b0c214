//! Every delivery of the real-world webhook corpus, signed the vendor's way, posted to the
//! running server and checked through the audit against the manifest's `expect`.

use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::Value;
use test_support::webhook_corpus::{
    check_expect, corpus_dir, load_manifest, route_vendor, signed_headers,
};

use crate::support::{SECRET, post, wait_processed};

#[tokio::test]
async fn every_manifest_entry_is_normalized_as_expected() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("skipped: the webhook corpus is not on this machine (set PMAP_CORPUS_DIR)");
        return;
    };
    let entries = load_manifest(&corpus).unwrap();
    assert!(entries.len() >= 45, "manifest shrank to {}", entries.len());
    let app = test_support::app::spawn().await.unwrap();

    let mut integrations: HashMap<String, String> = HashMap::new();
    let mut failures = Vec::new();
    let mut posted = Vec::new();
    for entry in &entries {
        let vendor = route_vendor(entry);
        let integration = match integrations.get(vendor.as_str()) {
            Some(id) => id.clone(),
            None => {
                let id = app
                    .create_integration(vendor.as_str(), Some(SECRET))
                    .await
                    .unwrap();
                integrations.insert(vendor.as_str().to_owned(), id.clone());
                id
            }
        };
        let body = entry.body(&corpus).unwrap();
        let headers = signed_headers(entry, SECRET, &body);
        let headers: Vec<(&str, String)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        let path = format!("/api/v1/webhooks/ci/{vendor}/{integration}");
        let (status, answer) = post(&app, &path, &headers, body).await;
        if status != StatusCode::ACCEPTED {
            failures.push(format!("{}: answered {status} {answer}", entry.file));
            continue;
        }
        posted.push((
            entry,
            integration,
            answer["event_id"].as_str().unwrap().to_owned(),
        ));
    }

    for (entry, integration, event_id) in &posted {
        let audit = wait_processed(&app, integration).await;
        let Some(event) = audit.iter().find(|e| e["id"] == event_id.as_str()) else {
            failures.push(format!(
                "{}: event {event_id} missing from the audit",
                entry.file
            ));
            continue;
        };
        assert_eq!(
            event["signature_valid"],
            Value::Bool(true),
            "{}",
            entry.file
        );
        assert_eq!(event["action_taken"], "runbook_only", "{}", entry.file);
        for mismatch in check_expect(&entry.expect, event) {
            failures.push(format!("{}: {mismatch}", entry.file));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} of {} manifest entries conform",
        posted.len(),
        entries.len()
    );
}
