//! Runbooks end to end: CRUD with JSON and YAML and validation details; events firing
//! executions against a fake receiver; the breaker, throttle, concurrency, signals; and two
//! servers on one database never running a runbook twice for one event.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::{TestApp, spawn_with};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LOOPBACK: &[(&str, &str)] = &[("PMAP_EGRESS_ALLOW", "127.0.0.1/32")];

pub(crate) async fn app() -> TestApp {
    spawn_with(LOOPBACK).await.unwrap()
}

pub(crate) async fn create(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let response = app
        .admin(Method::POST, "/api/v1/runbooks")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get(app: &TestApp, path: &str) -> Value {
    app.admin(Method::GET, path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) async fn emit(app: &TestApp, event: &str, payload: Value) {
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(&json!({"type": event, "payload": payload}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

/// Polls the runbook's executions until `done` holds (at most 20 s).
pub(crate) async fn executions_until(
    app: &TestApp,
    id: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    for _ in 0..400 {
        let list = get(app, &format!("/api/v1/runbooks/{id}/executions?limit=500")).await;
        let items = list["items"].as_array().cloned().unwrap_or_default();
        if done(&items) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("executions never settled");
}

pub(crate) fn finished(items: &[Value]) -> usize {
    items
        .iter()
        .filter(|e| e["finished_at"].is_string())
        .count()
}

fn http_runbook(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "triggers": [{"event": "scan_finished",
            "conditions": {"op": "and", "conditions": [
                {"field": "critical_count", "operator": "gt", "value": 0}]}}],
        "actions": [{"type": "http_request",
            "config": {"url": url, "method": "POST",
                       "body": {"repo": "{{ repo_url }}", "n": "{{ critical_count }}"}}}]
    })
}

fn details(body: &Value) -> String {
    body["error"]["details"].to_string()
}

#[tokio::test]
async fn runbook_crud_with_json_and_yaml_and_versions() {
    let app = app().await;
    let (status, created) = create(&app, &http_runbook("notify", "http://127.0.0.1:9/x")).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"], 1);
    assert_eq!(created["is_active"], true);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, _) = create(&app, &http_runbook("notify", "http://127.0.0.1:9/x")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    let patched: Value = app
        .admin(Method::PATCH, &format!("/api/v1/runbooks/{id}"))
        .json(&json!({"throttle_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["throttle_seconds"], 60);

    let yaml = "name: from yaml\ntriggers:\n  - event: finding_created\n    conditions:\n      op: and\n      conditions:\n        - field: finding.severity\n          operator: gte\n          value: high\nactions:\n  - type: gate\n    config:\n      conditions: {op: or, conditions: []}\n";
    let response = app
        .admin(Method::PUT, &format!("/api/v1/runbooks/{id}"))
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["version"], 3);
    assert_eq!(replaced["name"], "from yaml");

    let list = get(&app, "/api/v1/runbooks").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let catalog = get(&app, "/api/v1/runbooks/catalog").await;
    assert_eq!(catalog["triggers"].as_array().unwrap().len(), 16);
    assert_eq!(catalog["actions"].as_array().unwrap().len(), 22);
    assert_eq!(catalog["operators"].as_array().unwrap().len(), 12);

    let response = app
        .admin(Method::DELETE, &format!("/api/v1/runbooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .admin(Method::GET, &format!("/api/v1/runbooks/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

fn nested(levels: usize) -> Value {
    let mut group = json!({"op": "and", "conditions": [
        {"field": "critical_count", "operator": "gt", "value": 0}]});
    for _ in 1..levels {
        group = json!({"op": "or", "conditions": [group]});
    }
    group
}

#[tokio::test]
async fn bad_runbooks_are_422_with_the_field_named() {
    let app = app().await;
    let base = http_runbook("bad", "http://127.0.0.1:9/x");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut doc = base.clone();
        f(&mut doc);
        doc
    };
    let cases: Vec<(Value, &str)> = vec![
        (with(&|d| d["colour"] = json!("red")), "colour"),
        (
            with(&|d| d["throttle_seconds"] = json!("soon")),
            "throttle_seconds",
        ),
        (
            with(&|d| d["triggers"][0]["event"] = json!("scan_exploded")),
            "scan_exploded",
        ),
        (
            with(&|d| d["actions"][0]["type"] = json!("launch_rocket")),
            "launch_rocket",
        ),
        (
            with(&|d| d["actions"][0]["config"] = json!({"method": "POST"})),
            "config.url",
        ),
        (
            with(&|d| d["triggers"][0]["conditions"]["conditions"][0]["field"] = json!("nope")),
            "nope",
        ),
        (
            with(&|d| d["actions"][0]["config"]["url"] = json!("http://x/{{ finding.nope }}")),
            "repo_url",
        ),
        (
            with(&|d| d["actions"][0]["config"]["url"] = json!("http://x/{{ unknown_thing }}")),
            "unknown_thing",
        ),
        (
            with(&|d| d["actions"][0]["config"]["url"] = json!("http://x/{{ oops")),
            "parse",
        ),
        (
            with(&|d| d["actions"][0]["retry"] = json!({"max_attempts": 0})),
            "max_attempts",
        ),
        (
            with(&|d| d["actions"][0]["retry"] = json!({"max_attempts": 50})),
            "max_attempts",
        ),
        (
            with(&|d| d["actions"] = json!(vec![d["actions"][0].clone(); 101])),
            "actions",
        ),
        (
            with(&|d| d["actions"] = json!(vec![d["actions"][0].clone(); 10_000])),
            "too large",
        ),
        (with(&|d| d["triggers"][0]["conditions"] = nested(20)), "16"),
        (
            with(&|d| d["triggers"][0]["conditions"] = nested(100)),
            "recursion",
        ),
        (
            with(&|d| {
                d["actions"][0]["config"]["url"] = json!(
                    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}"
                )
            }),
            "http_request",
        ),
    ];
    for (doc, fragment) in cases {
        let started = std::time::Instant::now();
        let (status, body) = create(&app, &doc).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "slow: {fragment}"
        );
        if fragment == "recursion" {
            // Deeper than the JSON parser's own limit: refused before any validation.
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            continue;
        }
        if fragment == "too large" {
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
            continue;
        }
        if fragment == "http_request" {
            // A runaway loop reads no unknown field: it is accepted, and bounded when it runs
            // (runbook_reliability).
            assert_eq!(status, StatusCode::CREATED, "{body}");
            continue;
        }
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{fragment}: {body}"
        );
        let text = details(&body);
        if fragment == "repo_url" {
            assert!(text.contains("finding.nope"), "{text}");
        } else {
            assert!(text.contains(fragment), "{fragment}: {text}");
        }
    }
}

#[tokio::test]
async fn an_event_fires_an_http_request_and_records_the_execution() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": 1})))
        .mount(&target)
        .await;
    let (_, created) = create(
        &app,
        &http_runbook("hook", &format!("{}/hook", target.uri())),
    )
    .await;
    let id = created["id"].as_str().unwrap();

    emit(
        &app,
        "scan_finished",
        json!({"critical_count": 0, "repo_url": "r"}),
    )
    .await;
    emit(
        &app,
        "scan_finished",
        json!({"critical_count": 2, "repo_url": "https://git/x"}),
    )
    .await;
    let items = executions_until(&app, id, |items| finished(items) == 1).await;
    let run = &items[0];
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger_event"], "scan_finished");
    assert_eq!(run["action_results"][0]["attempts"], 1);
    assert_eq!(run["action_results"][0]["output"]["body"]["ok"], 1);
    let requests = target.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let sent: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(sent, json!({"repo": "https://git/x", "n": "2"}));

    let one = get(
        &app,
        &format!("/api/v1/runbook-executions/{}", run["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(one["id"], run["id"]);
}

#[tokio::test]
async fn send_webhook_is_signed_per_standard_webhooks() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&target)
        .await;
    let doc = json!({"name": "signed", "triggers": [{"event": "asset_created"}],
        "actions": [{"type": "send_webhook",
            "config": {"url": format!("{}/in", target.uri()), "secret": "whsec_c2VjcmV0"}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap();
    emit(&app, "asset_created", json!({"asset": {"name": "web"}})).await;
    let runs = executions_until(&app, id, |items| finished(items) == 1).await;
    let execution = runs[0]["id"].as_str().unwrap().replace('-', "");

    let request = &target.received_requests().await.unwrap()[0];
    let header = |name: &str| {
        request
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (msg_id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    // The same on every attempt of this action of this run: receivers de-duplicate by it.
    assert_eq!(msg_id, format!("msg_{execution}_0"));
    let body = String::from_utf8(request.body.clone()).unwrap();
    let expected =
        engine::runbooks::actions::sign_webhook("whsec_c2VjcmV0", &msg_id, &timestamp, &body);
    assert_eq!(header("webhook-signature"), format!("v1,{expected}"));
    let sent: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(sent["type"], "asset_created");
}

#[tokio::test]
async fn ten_failures_trip_the_breaker_skips_do_not_count_and_reset_re_enables() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&target)
        .await;
    let doc = json!({"name": "flaky", "triggers": [{"event": "integration_sync_failed"}],
        "actions": [
            {"type": "gate", "config": {"conditions": {"op": "and", "conditions": [
                {"field": "error", "operator": "neq", "value": "skip me"}]}}},
            {"type": "http_request", "config": {"url": format!("{}/x", target.uri())}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap().to_owned();

    for i in 0..9 {
        emit(
            &app,
            "integration_sync_failed",
            json!({"error": format!("e{i}")}),
        )
        .await;
    }
    executions_until(&app, &id, |items| finished(items) == 9).await;
    emit(&app, "integration_sync_failed", json!({"error": "skip me"})).await;
    let items = executions_until(&app, &id, |items| finished(items) == 10).await;
    assert_eq!(items[0]["status"], "skipped");
    let runbook = get(&app, &format!("/api/v1/runbooks/{id}")).await;
    assert_eq!(runbook["consecutive_failures"], 9);
    assert_eq!(runbook["is_active"], true);

    emit(&app, "integration_sync_failed", json!({"error": "last"})).await;
    executions_until(&app, &id, |items| finished(items) == 11).await;
    let runbook = get(&app, &format!("/api/v1/runbooks/{id}")).await;
    assert_eq!(runbook["consecutive_failures"], 10);
    assert_eq!(runbook["is_active"], false);
    assert!(runbook["breaker_tripped_at"].is_string());
    let events = get(&app, "/api/v1/events?limit=50").await;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "runbook_breaker_tripped"
                && e["payload"]["runbook_id"] == json!(id))
    );

    let reset: Value = app
        .admin(
            Method::POST,
            &format!("/api/v1/runbooks/{id}/reset-breaker"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["is_active"], true);
    assert_eq!(reset["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_fire_within_the_throttle_window_is_skipped() {
    let app = app().await;
    let doc = json!({"name": "calm", "throttle_seconds": 3600,
        "triggers": [{"event": "integration_sync_completed"}],
        "actions": [{"type": "gate", "config": {"conditions": {"op": "and", "conditions": []}}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap();
    emit(
        &app,
        "integration_sync_completed",
        json!({"scans_imported": 1}),
    )
    .await;
    emit(
        &app,
        "integration_sync_completed",
        json!({"scans_imported": 2}),
    )
    .await;
    let items = executions_until(&app, id, |items| finished(items) == 2).await;
    let statuses: Vec<&str> = items
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["skipped", "succeeded"]);
    assert_eq!(items[0]["skip_reason"], "throttled");
}

#[tokio::test]
async fn max_concurrency_one_runs_a_key_one_at_a_time_in_order() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(150)))
        .mount(&target)
        .await;
    let doc = json!({"name": "serial", "concurrency_key": "{{ integration_id }}",
        "max_concurrency": 1,
        "triggers": [{"event": "integration_sync_completed"}],
        "actions": [{"type": "http_request",
            "config": {"url": format!("{}/x", target.uri()), "body": "{{ scans_imported }}"}}]});
    let (_, created) = create(&app, &doc).await;
    let id = created["id"].as_str().unwrap();
    for i in 0..5 {
        emit(
            &app,
            "integration_sync_completed",
            json!({"integration_id": "same", "scans_imported": i}),
        )
        .await;
    }
    let mut items = executions_until(&app, id, |items| finished(items) == 5).await;
    items.reverse();
    assert!(items.iter().all(|e| e["status"] == "succeeded"));
    for pair in items.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let end: chrono::DateTime<chrono::Utc> =
            a["finished_at"].as_str().unwrap().parse().unwrap();
        let start: chrono::DateTime<chrono::Utc> =
            b["started_at"].as_str().unwrap().parse().unwrap();
        assert!(start >= end, "runs overlapped: {a} {b}");
    }
    let bodies: Vec<String> = target
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap())
        .collect();
    assert_eq!(bodies, ["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn await_signal_parks_and_a_signal_resumes() {
    let app = app().await;
    let doc = json!({"name": "approval", "triggers": [{"event": "sbom_imported"}],
        "actions": [{"type": "await_signal", "config": {"name": "approve", "timeout": "1h"}},
            {"type": "gate", "config": {"conditions": {"op": "and", "conditions": [
                {"field": "signals.approve.ok", "operator": "eq", "value": true}]}}}]});
    let (status, created) = create(&app, &doc).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    emit(&app, "sbom_imported", json!({"sbom": {}})).await;
    let items = executions_until(&app, id, |items| {
        items.first().is_some_and(|e| e["status"] == "waiting")
    })
    .await;
    let run = items[0]["id"].as_str().unwrap().to_owned();

    let wrong = app
        .admin(
            Method::POST,
            &format!("/api/v1/runbook-executions/{run}/signals/other"),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::CONFLICT);
    let ok = app
        .admin(
            Method::POST,
            &format!("/api/v1/runbook-executions/{run}/signals/approve"),
        )
        .json(&json!({"payload": {"ok": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);
    let items = executions_until(&app, id, |items| finished(items) == 1).await;
    assert_eq!(items[0]["status"], "succeeded", "{}", items[0]);
    let again = app
        .admin(
            Method::POST,
            &format!("/api/v1/runbook-executions/{run}/signals/approve"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn dry_run_traces_conditions_and_renders_actions() {
    let app = app().await;
    let (_, created) = create(
        &app,
        &http_runbook("dry", "http://127.0.0.1:9/{{ repo_url }}"),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let answer: Value = app
        .admin(Method::POST, &format!("/api/v1/runbooks/{id}/dry-run"))
        .json(&json!({"event": "scan_finished", "payload": {"critical_count": 3, "repo_url": "r"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["matched"], true);
    assert_eq!(answer["trace"][0]["field"], "critical_count");
    assert_eq!(answer["trace"][0]["actual"], 3);
    assert_eq!(
        answer["rendered_actions"][0]["config"]["url"],
        "http://127.0.0.1:9/r"
    );
    let executions = get(&app, &format!("/api/v1/runbooks/{id}/executions")).await;
    assert!(executions["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn two_servers_on_one_database_fire_once_per_event() {
    let mut first = app().await;
    let mut config = first.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let second = api::start(&config).await.unwrap();

    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    let doc = json!({"name": "once", "triggers": [{"event": "integration_sync_completed"}],
        "actions": [{"type": "http_request", "config": {"url": format!("{}/x", target.uri()),
            "body": "{{ scans_imported }}"}}]});
    let (_, created) = create(&first, &doc).await;
    let id = created["id"].as_str().unwrap();
    for i in 0..20 {
        emit(
            &first,
            "integration_sync_completed",
            json!({"scans_imported": i}),
        )
        .await;
    }
    let items = executions_until(&first, id, |items| finished(items) == 20).await;
    assert!(items.iter().all(|e| e["status"] == "succeeded"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut bodies: Vec<i64> = target
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(r.body.clone()).unwrap().parse().unwrap())
        .collect();
    bodies.sort();
    assert_eq!(bodies, (0..20).collect::<Vec<_>>());
    second.stop().await.unwrap();
    first.stop().await.unwrap();
}
