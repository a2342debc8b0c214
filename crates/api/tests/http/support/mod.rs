//! Shared helpers for the HTTP tests: signing and posting deliveries, waiting for the queue.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use test_support::app::TestApp;

pub const SECRET: &str = "it-is-a-secret-0123";

pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", webhooks::sign_hex(secret.as_bytes(), body))
}

/// Posts a delivery and returns the status and JSON body.
pub async fn post(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url(path)).body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, json)
}

/// A signed GitHub push delivery with its own delivery id.
pub async fn post_github(
    app: &TestApp,
    integration: &str,
    delivery: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let headers = [
        ("x-github-event", "push".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        ("x-hub-signature-256", github_signature(SECRET, body)),
        ("content-type", "application/json".to_owned()),
    ];
    post(
        app,
        &format!("/api/v1/webhooks/ci/github/{integration}"),
        &headers,
        body.to_vec(),
    )
    .await
}

pub fn push_body(branch: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "repository": {"full_name": "acme/app", "html_url": "https://github.com/acme/app"},
        "sender": {"login": "dev"}
    }))
    .unwrap()
}

/// Waits until the orchestrator has processed every queued event of the integration.
pub async fn wait_processed(app: &TestApp, integration: &str) -> Vec<Value> {
    for _ in 0..500 {
        let audit = app.audit(integration).await.unwrap();
        if audit.iter().all(|e| e["action_taken"] != "queued") {
            return audit;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("events of {integration} were never processed");
}

pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

pub async fn get_json(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let response = app.admin(Method::GET, path).send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Sends `body` as JSON with the admin token; the status and the answer.
pub async fn admin_json(
    app: &TestApp,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let response = app.admin(method, path).json(body).send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}
