//! Kill -9 in the middle of a burst: every delivery that got a 2xx is stored exactly once and
//! processed exactly once after the restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use test_support::app::ADMIN_TOKEN;
use test_support::db::fresh_database;
use tokio::sync::Mutex;

use crate::{SECRET, create_github_integration, free_port, serve};

const SENDERS: usize = 16;
/// Stays under the audit window of 200 so every row can be checked through the API.
const MAX_DELIVERIES: usize = 190;
const KILL_AFTER_ACKS: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_delivery_survives_kill_9_exactly_once() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let mut server = serve(&db, port).await;
    let integration = create_github_integration(port).await;

    let body = br#"{"ref":"refs/heads/main","after":"2222222222222222222222222222222222222222","repository":{"full_name":"acme/app"}}"#.to_vec();
    let signature = format!("sha256={}", webhooks::sign_hex(SECRET.as_bytes(), &body));
    let url = format!("http://127.0.0.1:{port}/api/v1/webhooks/ci/github/{integration}");
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked_count = Arc::new(AtomicUsize::new(0));

    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        let (next, acked, acked_count) = (next.clone(), acked.clone(), acked_count.clone());
        let (url, body, signature) = (url.clone(), body.clone(), signature.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= MAX_DELIVERIES {
                    return;
                }
                let delivery = format!("burst-{n}");
                let sent = client
                    .post(&url)
                    .header("x-github-event", "push")
                    .header("x-github-delivery", &delivery)
                    .header("x-hub-signature-256", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().await.push(delivery);
                        acked_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }

    while acked_count.load(Ordering::SeqCst) < KILL_AFTER_ACKS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    for sender in senders {
        sender.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() >= KILL_AFTER_ACKS);

    let _server = serve(&db, port).await;
    let client = reqwest::Client::new();
    let audit_url = format!("http://127.0.0.1:{port}/api/v1/integrations/{integration}/ci/events");
    let mut audit = Vec::new();
    for _ in 0..1000 {
        let body: Value = client
            .get(&audit_url)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        audit = body["items"].as_array().unwrap().clone();
        if audit.iter().all(|e| e["action_taken"] == "runbook_only") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut rows: HashMap<String, usize> = HashMap::new();
    for event in &audit {
        *rows
            .entry(event["delivery_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(
            event["action_taken"], "runbook_only",
            "processed after the restart"
        );
    }
    for delivery in &acked {
        assert_eq!(rows.get(delivery), Some(&1), "{delivery} was acknowledged");
    }

    let log: Value = client
        .get(format!(
            "http://127.0.0.1:{port}/api/v1/events?after=0&limit=500"
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut emitted: HashMap<String, usize> = HashMap::new();
    for event in log["items"].as_array().unwrap() {
        if event["type"] == "ci_event_received" {
            *emitted
                .entry(event["payload"]["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    for event in &audit {
        let id = event["id"].as_str().unwrap();
        assert_eq!(emitted.get(id), Some(&1), "event {id} emitted exactly once");
    }
    eprintln!(
        "{} acknowledged before kill -9, {} stored",
        acked.len(),
        audit.len()
    );
}
