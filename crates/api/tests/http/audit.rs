//! The audit window, the rejection limiter, the platform-event log and the metrics.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::spawn;

use crate::support::{
    SECRET, assert_error, get_json, github_signature, post, post_github, push_body, wait_processed,
};

#[tokio::test]
async fn a_flood_of_forgeries_neither_sweeps_good_events_nor_grows_the_audit() {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    for n in 0..5 {
        let (status, _) = post_github(&app, &id, &format!("good-{n}"), &push_body("main")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }

    let body = push_body("main");
    let path = format!("/api/v1/webhooks/ci/github/{id}");
    let started = std::time::Instant::now();
    let forged = 400;
    let mut tasks = Vec::new();
    for n in 0..forged {
        let client = app.client.clone();
        let url = app.url(&path);
        let sig = github_signature("wrong", &body);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("x-github-event", "push")
                .header("x-github-delivery", format!("forged-{n}"))
                .header("x-hub-signature-256", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    let seconds = started.elapsed().as_secs() + 2;

    // The limiter writes counts about once a second; wait until every forgery is accounted for.
    let mut audit = Vec::new();
    for _ in 0..100 {
        audit = app.audit(&id).await.unwrap();
        let counted: i64 = audit
            .iter()
            .filter(|e| e["action_taken"] == "rejected_signature")
            .map(|e| 1 + e["repeat_count"].as_i64().unwrap())
            .sum();
        if counted == forged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let rejected: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action_taken"] == "rejected_signature")
        .collect();
    let counted: i64 = rejected
        .iter()
        .map(|e| 1 + e["repeat_count"].as_i64().unwrap())
        .sum();
    assert_eq!(counted, forged, "every forgery is counted on a row");
    assert!(
        rejected.len() as u64 <= seconds,
        "{} rejected rows in about {seconds} s",
        rejected.len()
    );
    let good = audit
        .iter()
        .filter(|e| e["signature_valid"] == true)
        .count();
    assert_eq!(good, 5, "good events stay in the window");

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pmap_webhooks_rejected_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pmap_webhooks_accepted_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_audit_is_the_newest_200_newest_first() {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    for n in 0..205 {
        let (status, _) = post_github(&app, &id, &format!("d-{n:03}"), &push_body("main")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let audit = wait_processed(&app, &id).await;
    assert_eq!(audit.len(), 200);
    assert_eq!(audit[0]["delivery_id"], "d-204");
    assert_eq!(audit[199]["delivery_id"], "d-005");
    for field in [
        "id",
        "received_at",
        "vendor_event",
        "event_type",
        "action",
        "repo",
        "branch",
        "commit_sha",
        "pr_number",
        "action_taken",
        "signature_valid",
        "delivery_id",
    ] {
        assert!(audit[0].get(field).is_some(), "audit rows carry {field}");
    }
}

#[tokio::test]
async fn every_ci_event_emits_ci_event_received_exactly_once() {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    for n in 0..3 {
        post_github(&app, &id, &format!("e-{n}"), &push_body("release/1")).await;
    }
    post_github(&app, &id, "e-0", &push_body("release/1")).await;
    let audit = wait_processed(&app, &id).await;
    assert_eq!(audit.len(), 3);

    let (status, log) = get_json(&app, "/api/v1/events?after=0&limit=100").await;
    assert_eq!(status, StatusCode::OK);
    let received: Vec<&Value> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ci_event_received")
        .collect();
    assert_eq!(received.len(), 3);
    for event in &audit {
        let matching = received
            .iter()
            .filter(|e| e["payload"]["id"] == event["id"])
            .count();
        assert_eq!(matching, 1);
    }
    assert_eq!(received[0]["payload"]["branch"], "release/1");
    assert_eq!(received[0]["payload"]["action_taken"], "runbook_only");
}

#[tokio::test]
async fn admins_emit_platform_events() {
    let app = spawn().await.unwrap();
    let emit = |body: Value| app.admin(Method::POST, "/api/v1/events").json(&body).send();
    let accepted = emit(json!({"type": "scan_finished", "payload": {"critical_count": 2}}))
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let accepted: Value = accepted.json().await.unwrap();
    assert!(accepted["id"].as_str().is_some());

    let unknown = emit(json!({"type": "coffee_brewed", "payload": {}}))
        .await
        .unwrap();
    let status = unknown.status();
    assert_error(
        status,
        &unknown.json().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (_, log) = get_json(&app, "/api/v1/events").await;
    assert_eq!(log["items"][0]["type"], "scan_finished");
    assert_eq!(log["items"][0]["payload"]["critical_count"], 2);
    let _ = post(&app, "/healthz", &[], Vec::new()).await;
}
