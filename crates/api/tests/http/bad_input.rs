//! Hostile and broken deliveries: each gets the SPEC's error shape and loses nothing stored.

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha1::Sha1;
use test_support::app::{TestApp, spawn};

use crate::support::{
    SECRET, admin_json, assert_error, github_signature, post, post_github, push_body,
    wait_processed,
};

/// Header pairs as the support helpers take them.
type Headers = Vec<(&'static str, String)>;

fn github_headers(signature: String, delivery: &str) -> Headers {
    vec![
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", signature),
    ]
}

async fn setup() -> (TestApp, String, String) {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    let (status, _) = post_github(&app, &id, "good-1", &push_body("main")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let path = format!("/api/v1/webhooks/ci/github/{id}");
    (app, id, path)
}

/// The one good delivery is still there, processed, exactly once.
async fn assert_good_event_intact(app: &TestApp, id: &str) {
    let audit = wait_processed(app, id).await;
    let good: Vec<&Value> = audit
        .iter()
        .filter(|e| e["delivery_id"] == "good-1")
        .collect();
    assert_eq!(good.len(), 1);
    assert_eq!(good[0]["action_taken"], "runbook_only");
}

#[tokio::test]
async fn forged_signatures_are_401() {
    let (app, id, path) = setup().await;
    let body = push_body("main");
    let sha1 = {
        let mut mac = Hmac::<Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&body);
        format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
    };
    let reserialized = {
        let value: Value = serde_json::from_slice(&body).unwrap();
        serde_json::to_vec_pretty(&value).unwrap()
    };
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "wrong secret",
            github_headers(github_signature("other", &body), "f1"),
            body.clone(),
        ),
        (
            "all zeros",
            github_headers(format!("sha256={}", "0".repeat(64)), "f2"),
            body.clone(),
        ),
        (
            "sha1 on a sha256 route",
            github_headers(sha1, "f3"),
            body.clone(),
        ),
        (
            "hex too short",
            github_headers(github_signature(SECRET, &body)[..40].to_owned(), "f4"),
            body.clone(),
        ),
        (
            "re-serialized body",
            github_headers(github_signature(SECRET, &body), "f5"),
            reserialized,
        ),
        (
            "missing header",
            vec![
                ("x-github-event", "push".into()),
                ("x-github-delivery", "f6".into()),
            ],
            body.clone(),
        ),
    ];
    for (name, headers, body) in cases {
        let (status, answer) = post(&app, &path, &headers, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{name}");
    }
    let audit = crate::policy::wait_for_rows(&app, &id, 2).await;
    let rejected: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action_taken"] == "rejected_signature")
        .collect();
    assert!(!rejected.is_empty());
    assert!(rejected.iter().all(|e| e["signature_valid"] == false));
    assert_good_event_intact(&app, &id).await;
}

#[tokio::test]
async fn unparseable_bodies_are_400_and_sparse_ones_are_accepted() {
    let (app, id, path) = setup().await;
    for (name, body) in [
        ("not json", b"{\"ref\": ".to_vec()),
        ("not an object", b"[1,2]".to_vec()),
    ] {
        let headers = github_headers(github_signature(SECRET, &body), name);
        let (status, answer) = post(&app, &path, &headers, body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_payload");
    }

    let body = b"{}".to_vec();
    let headers = github_headers(github_signature(SECRET, &body), "sparse");
    let (status, answer) = post(&app, &path, &headers, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let audit = wait_processed(&app, &id).await;
    let sparse = audit.iter().find(|e| e["delivery_id"] == "sparse").unwrap();
    assert_eq!(sparse["event_type"], "push");
    assert_eq!(sparse["branch"], Value::Null);
    assert_eq!(sparse["commit_sha"], Value::Null);
    assert_good_event_intact(&app, &id).await;
}

#[tokio::test]
async fn wrong_routes_are_404() {
    let (app, id, _) = setup().await;
    let body = push_body("main");
    let gitlab = app
        .create_integration("gitlab", Some(SECRET))
        .await
        .unwrap();
    let deleted = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    app.admin(Method::DELETE, &format!("/api/v1/integrations/{deleted}"))
        .send()
        .await
        .unwrap();

    let cases = [
        (
            format!("/api/v1/webhooks/ci/circleci/{id}"),
            "unknown_vendor",
        ),
        (format!("/api/v1/webhooks/ci/slack/{id}"), "unknown_vendor"),
        (format!("/api/v1/webhooks/ci/github/{gitlab}"), "not_found"),
        (format!("/api/v1/webhooks/ci/gitlab/{id}"), "not_found"),
        (
            "/api/v1/webhooks/ci/github/0190a0b4-8d5e-7c3a-9f00-000000000001".into(),
            "not_found",
        ),
        ("/api/v1/webhooks/ci/github/not-a-uuid".into(), "not_found"),
        (format!("/api/v1/webhooks/ci/github/{deleted}"), "not_found"),
    ];
    for (path, code) in cases {
        let headers = github_headers(github_signature(SECRET, &body), "x");
        let (status, answer) = post(&app, &path, &headers, body.clone()).await;
        assert_error(status, &answer, StatusCode::NOT_FOUND, code);
    }
    let bearer = [(
        "authorization",
        format!("Bearer {}", test_support::app::ADMIN_TOKEN),
    )];
    let (status, _) = post(
        &app,
        &format!("/api/v1/webhooks/ci/github/{id}"),
        &bearer,
        body,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "receivers never accept API tokens"
    );
    assert_good_event_intact(&app, &id).await;
}

#[tokio::test]
async fn oversize_bodies_are_413() {
    let (app, id, path) = setup().await;
    let mut body = b"{\"pad\": \"".to_vec();
    body.resize(25 * 1024 * 1024 + 16, b'a');
    body.extend_from_slice(b"\"}");
    let headers = github_headers(github_signature(SECRET, &body), "big");
    let (status, answer) = post(&app, &path, &headers, body).await;
    assert_error(
        status,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    );
    assert_good_event_intact(&app, &id).await;
}

#[tokio::test]
async fn redeliveries_answer_200_with_the_original_event() {
    let (app, id, _) = setup().await;
    let audit = wait_processed(&app, &id).await;
    let original = audit[0]["id"].clone();
    let (status, answer) = post_github(&app, &id, "good-1", &push_body("main")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(answer["event_id"], original);
    assert_good_event_intact(&app, &id).await;
}

#[tokio::test]
async fn a_briefly_unavailable_database_is_503_and_nothing_is_half_written() {
    let (app, id, _) = setup().await;
    wait_processed(&app, &id).await;
    let hold = hold_write_lock(&app.db.url).await;
    let (status, answer) = post_github(&app, &id, "during-outage", &push_body("main")).await;
    assert_error(
        status,
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    drop(hold);

    let (status, _) = post_github(&app, &id, "during-outage", &push_body("main")).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the retry is accepted, not a duplicate"
    );
    let audit = wait_processed(&app, &id).await;
    let rows = audit
        .iter()
        .filter(|e| e["delivery_id"] == "during-outage")
        .count();
    assert_eq!(rows, 1);
    assert_good_event_intact(&app, &id).await;
}

/// Keeps the CI event table write-locked from another connection until dropped.
async fn hold_write_lock(url: &str) -> tokio::sync::oneshot::Sender<()> {
    use sqlx::Connection;
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let (locked, is_locked) = tokio::sync::oneshot::channel::<()>();
    let url = url.to_owned();
    tokio::spawn(async move {
        if url.starts_with("sqlite") {
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut conn)
                .await
                .unwrap();
            let _ = locked.send(());
            let _ = released.await;
            sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("LOCK TABLE ci_events IN ACCESS EXCLUSIVE MODE")
                .execute(&mut *tx)
                .await
                .unwrap();
            let _ = locked.send(());
            let _ = released.await;
            tx.rollback().await.unwrap();
        }
    });
    is_locked.await.unwrap();
    release
}

/// Bodies held at once are bounded: while ten deliveries that declare the largest body are
/// still sending it, the next is answered 429 with `Retry-After`, and once they are gone
/// deliveries are taken again.
#[tokio::test]
async fn a_flood_of_large_bodies_is_answered_429_not_buffered() {
    use tokio::io::AsyncWriteExt;

    let (app, id, path) = setup().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for n in 0..10 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: push\r\nX-GitHub-Delivery: slow-{n}\r\n\
             X-Hub-Signature-256: sha256={}\r\nContent-Length: {}\r\n\r\n{{\"pad\": \"",
            "0".repeat(64),
            25 * 1024 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        slow.push(stream);
    }

    let body = push_body("main");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut attempt = 0;
    let refused = loop {
        attempt += 1;
        let delivery = format!("one-too-many-{attempt}");
        let headers = github_headers(github_signature(SECRET, &body), &delivery);
        let response = app
            .client
            .post(app.url(&path))
            .header("content-type", "application/json")
            .headers(
                headers
                    .iter()
                    .map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap()))
                    .collect(),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            break response;
        }
        // The slow requests may not have reached the handler yet.
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::task::yield_now().await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let answer: Value = refused.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "rate_limited");

    drop(slow);
    let headers = github_headers(github_signature(SECRET, &body), "after-the-flood");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = post(&app, &path, &headers, body.clone()).await;
        if status == StatusCode::ACCEPTED {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the budget was not given back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_good_event_intact(&app, &id).await;
}

/// U+0000 is text no PostgreSQL column holds: a delivery that spells one is stored with U+FFFD
/// in its place (the other deliveries of its group commit are not refused with it), and an
/// emitted event that carries one is a 422, on both backends.
#[tokio::test]
async fn a_spelled_nul_is_replaced_in_deliveries_and_refused_in_events() {
    let (app, id, _) = setup().await;
    let body = br#"{"ref": "refs/heads/a\u0000b", "repository": {"full_name": "acme/app"}}"#;
    let (status, answer) = post_github(&app, &id, "nul-1", body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let audit = wait_processed(&app, &id).await;
    let stored = audit.iter().find(|e| e["delivery_id"] == "nul-1").unwrap();
    assert_eq!(stored["branch"], "a\u{FFFD}b");

    let event = serde_json::json!({"type": "scan_started", "payload": {"scan_id": "a\u{0}b"}});
    let (status, answer) = admin_json(&app, Method::POST, "/api/v1/events", &event).await;
    assert_error(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(answer["error"]["details"][0]["field"], "payload");
    assert_good_event_intact(&app, &id).await;
}
