//! Runbook reliability end to end: templates that hit their limits when they run, the
//! breaker's count and its reset, the throttle window, and the version an execution ran.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::TestApp;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runbooks::{app, create, emit, executions_until, finished, get};

/// A receiver that answers `/ok` with 200 and `/fail` with 500.
async fn receiver() -> MockServer {
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    Mock::given(method("POST"))
        .and(path("/fail"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&target)
        .await;
    target
}

/// A runbook on `integration_sync_failed` whose one request goes to the path named by the
/// event's `error`, tried once: `{"error": "fail"}` makes a failed run, `"ok"` a successful one.
async fn by_error(app: &TestApp, target: &MockServer) -> String {
    let doc = json!({"name": "by error", "triggers": [{"event": "integration_sync_failed"}],
        "actions": [{"type": "http_request",
            "config": {"url": format!("{}/{{{{ error }}}}", target.uri())}}]});
    let (status, created) = create(app, &doc).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn fire(app: &TestApp, outcome: &str) {
    emit(app, "integration_sync_failed", json!({"error": outcome})).await;
}

async fn runbook(app: &TestApp, id: &str) -> Value {
    get(app, &format!("/api/v1/runbooks/{id}")).await
}

#[tokio::test]
async fn a_template_past_its_limits_fails_its_execution_and_the_server_stays_up() {
    let app = app().await;
    let wide = "x".repeat(15_000);
    let cases = [
        (
            "loops",
            "{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}"
                .to_owned(),
            "fuel",
        ),
        (
            "gigabytes",
            format!("{{{{ range(1000) | join('{wide}') }}}}"),
            "exceeds 65536 bytes",
        ),
        (
            "items",
            "{{ range(100000) | join(',') }}".to_owned(),
            "more than 1000 items",
        ),
    ];
    let mut ids = Vec::new();
    for (name, template, _) in &cases {
        let doc = json!({"name": name, "triggers": [{"event": "asset_created"}],
            "actions": [{"type": "http_request",
                "config": {"url": "http://127.0.0.1:9/x", "method": "POST", "body": template}}]});
        let (status, created) = create(&app, &doc).await;
        // Saving parses a template and checks its fields; it does not run it.
        assert_eq!(status, StatusCode::CREATED, "{name}: {created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }

    emit(&app, "asset_created", json!({"asset": {"name": "web"}})).await;
    for ((name, _, expected), id) in cases.iter().zip(&ids) {
        let items = executions_until(&app, id, |items| finished(items) == 1).await;
        let run = &items[0];
        assert_eq!(run["status"], "failed", "{name}: {run}");
        let error = run["action_results"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(error.contains("template"), "{name}: {error}");
        assert!(error.contains(expected), "{name}: {error}");
    }

    let response = app
        .admin(Method::GET, "/api/v1/runbooks")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let list = get(&app, "/api/v1/runbooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), cases.len());
}

#[tokio::test]
async fn a_successful_execution_resets_the_failure_count() {
    let app = app().await;
    let target = receiver().await;
    let id = by_error(&app, &target).await;

    for _ in 0..3 {
        fire(&app, "fail").await;
    }
    let items = executions_until(&app, &id, |items| finished(items) == 3).await;
    assert!(items.iter().all(|e| e["status"] == "failed"), "{items:?}");
    assert_eq!(runbook(&app, &id).await["consecutive_failures"], 3);

    fire(&app, "ok").await;
    let items = executions_until(&app, &id, |items| finished(items) == 4).await;
    assert_eq!(items[0]["status"], "succeeded", "{}", items[0]);
    let after = runbook(&app, &id).await;
    assert_eq!(after["consecutive_failures"], 0);
    assert_eq!(after["is_active"], true);
}

#[tokio::test]
async fn after_reset_breaker_a_new_event_fires_the_runbook_again() {
    let app = app().await;
    let target = receiver().await;
    let id = by_error(&app, &target).await;

    for _ in 0..10 {
        fire(&app, "fail").await;
    }
    executions_until(&app, &id, |items| finished(items) == 10).await;
    let tripped = runbook(&app, &id).await;
    assert_eq!(tripped["is_active"], false, "{tripped}");

    let reset = app
        .admin(
            Method::POST,
            &format!("/api/v1/runbooks/{id}/reset-breaker"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::OK);
    fire(&app, "ok").await;
    let items = executions_until(&app, &id, |items| finished(items) == 11).await;
    assert_eq!(items[0]["status"], "succeeded", "{}", items[0]);
    assert_eq!(items[0]["trigger_payload"]["error"], "ok");
    let after = runbook(&app, &id).await;
    assert_eq!(after["is_active"], true);
    assert_eq!(after["consecutive_failures"], 0);
    assert!(after["breaker_tripped_at"].is_null(), "{after}");
}

#[tokio::test]
async fn a_fire_after_the_throttle_window_runs() {
    let app = app().await;
    let doc = json!({"name": "once a second", "throttle_seconds": 1,
        "triggers": [{"event": "integration_sync_completed"}],
        "actions": [{"type": "gate", "config": {"conditions": {"op": "and", "conditions": []}}}]});
    let (status, created) = create(&app, &doc).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let sync = |n: i64| json!({"scans_imported": n});

    emit(&app, "integration_sync_completed", sync(1)).await;
    emit(&app, "integration_sync_completed", sync(2)).await;
    let items = executions_until(&app, id, |items| finished(items) == 2).await;
    assert_eq!(items[0]["status"], "skipped", "{}", items[0]);
    assert_eq!(items[0]["skip_reason"], "throttled");
    assert_eq!(items[1]["status"], "succeeded", "{}", items[1]);

    // The window is time itself: wait it out.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    emit(&app, "integration_sync_completed", sync(3)).await;
    let items = executions_until(&app, id, |items| finished(items) == 3).await;
    assert_eq!(items[0]["trigger_payload"]["scans_imported"], 3);
    assert_eq!(items[0]["status"], "succeeded", "{}", items[0]);
    assert!(items[0]["skip_reason"].is_null(), "{}", items[0]);
}

#[tokio::test]
async fn an_execution_records_the_runbook_version_it_ran() {
    let app = app().await;
    let doc = json!({"name": "versioned", "triggers": [{"event": "asset_created"}],
        "actions": [{"type": "gate", "config": {"conditions": {"op": "and", "conditions": []}}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["version"], 1);
    emit(&app, "asset_created", json!({"asset": {"name": "a"}})).await;
    executions_until(&app, id, |items| finished(items) == 1).await;

    let patched = app
        .admin(Method::PATCH, &format!("/api/v1/runbooks/{id}"))
        .json(&json!({"max_concurrency": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let version = runbook(&app, id).await["version"].clone();
    assert_eq!(version, 2);
    emit(&app, "asset_created", json!({"asset": {"name": "b"}})).await;
    let items = executions_until(&app, id, |items| finished(items) == 2).await;

    assert_eq!(items[0]["trigger_payload"]["asset"]["name"], "b");
    assert_eq!(items[0]["runbook_version"], version);
    assert_eq!(items[1]["runbook_version"], 1);
}
