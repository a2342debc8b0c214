//! The unsigned-hook policy and secret rotation.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::{spawn, spawn_with};

use crate::support::{SECRET, assert_error, post, post_github, push_body, wait_processed};

async fn post_unsigned(app: &test_support::app::TestApp, integration: &str) -> (StatusCode, Value) {
    let headers = [
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", "u-1".to_owned()),
    ];
    let path = format!("/api/v1/webhooks/ci/github/{integration}");
    post(app, &path, &headers, push_body("main")).await
}

#[tokio::test]
async fn production_without_a_secret_fails_closed() {
    let app = spawn().await.unwrap();
    let id = app.create_integration("github", None).await.unwrap();
    let (status, body) = post_unsigned(&app, &id).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unsigned_rejected");
    let audit = wait_for_rows(&app, &id, 1).await;
    assert_eq!(audit[0]["action_taken"], "rejected_unsigned");
    assert_eq!(audit[0]["signature_valid"], false);
}

#[tokio::test]
async fn development_or_the_override_accepts_unsigned_deliveries() {
    for env in [
        &[("PMAP_ENV", "development")][..],
        &[("CI_WEBHOOK_ALLOW_UNSIGNED", "true")][..],
    ] {
        let app = spawn_with(env).await.unwrap();
        let id = app.create_integration("github", None).await.unwrap();
        let (status, body) = post_unsigned(&app, &id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{env:?}: {body}");
        let audit = wait_processed(&app, &id).await;
        assert_eq!(audit[0]["signature_valid"], false);
        assert_eq!(audit[0]["branch"], "main");
    }
}

#[tokio::test]
async fn a_secret_always_requires_a_valid_signature_even_in_development() {
    let app = spawn_with(&[("PMAP_ENV", "development")]).await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    let (status, body) = post_unsigned(&app, &id).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_signature");
}

#[tokio::test]
async fn rotation_keeps_the_previous_secret_valid_and_says_which_matched() {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("github", Some(SECRET))
        .await
        .unwrap();
    let path = format!("/api/v1/integrations/{id}");
    let rotated = app
        .admin(Method::PATCH, &path)
        .json(&json!({"secret": "the-next-secret-456"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::OK);

    let body = push_body("main");
    let (old, _) = post_github(&app, &id, "old-secret", &body).await;
    assert_eq!(old, StatusCode::ACCEPTED, "previous secret still valid");
    let new_sig = crate::support::github_signature("the-next-secret-456", &body);
    let headers = [
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", "new-secret".to_owned()),
        ("x-hub-signature-256", new_sig),
    ];
    let (new, _) = post(
        &app,
        &format!("/api/v1/webhooks/ci/github/{id}"),
        &headers,
        body,
    )
    .await;
    assert_eq!(new, StatusCode::ACCEPTED);

    let audit = wait_processed(&app, &id).await;
    let slot = |delivery: &str| {
        audit
            .iter()
            .find(|e| e["delivery_id"] == delivery)
            .map(|e| e["secret_slot"].clone())
    };
    assert_eq!(slot("new-secret"), Some(json!(0)));
    assert_eq!(slot("old-secret"), Some(json!(1)));

    // A second rotation drops the oldest secret.
    app.admin(Method::PATCH, &path)
        .json(&json!({"secret": "a-third-secret-789"}))
        .send()
        .await
        .unwrap();
    let (status, _) = post_github(&app, &id, "too-old", &push_body("main")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Rejections are written in the background; waits until `n` rows are visible.
pub async fn wait_for_rows(app: &test_support::app::TestApp, id: &str, n: usize) -> Vec<Value> {
    for _ in 0..300 {
        let audit = app.audit(id).await.unwrap();
        if audit.len() >= n {
            return audit;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the audit never reached {n} rows");
}

#[tokio::test]
async fn bitbucket_server_test_connection_is_answered_and_stores_nothing() {
    let app = spawn().await.unwrap();
    let id = app
        .create_integration("bitbucket", Some(SECRET))
        .await
        .unwrap();
    let body = br#"{"test": true}"#.to_vec();
    let signature = format!("sha256={}", webhooks::sign_hex(SECRET.as_bytes(), &body));
    let headers = [
        ("x-event-key", "diagnostics:ping".to_owned()),
        ("x-request-id", "ping-1".to_owned()),
        ("x-hub-signature", signature),
    ];
    let (status, answer) = post(
        &app,
        &format!("/api/v1/webhooks/ci/bitbucket/{id}"),
        &headers,
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "ignored");
    assert!(answer.get("event_id").is_none(), "{answer}");
    assert!(app.audit(&id).await.unwrap().is_empty());
}
