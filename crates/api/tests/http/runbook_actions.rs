//! Runbook actions against fake receivers: retries and the attempts they record, Slack and
//! Teams messages, one action's output read by a later one, and time-window conditions on
//! emitted events.
//!
//! The operators themselves (every operator against every kind of value, missing fields,
//! severities, durations) are covered by the table tests in `domain::condition`; here only
//! one runbook checks that they reach the matcher.

use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::runbooks::{app, create, emit, executions_until, finished};

/// A runbook that fires on every `integration_sync_completed` and runs `actions`.
fn on_sync(name: &str, actions: Value) -> Value {
    json!({"name": name, "triggers": [{"event": "integration_sync_completed"}],
        "actions": actions})
}

fn fast_retry(max_attempts: u32) -> Value {
    json!({"max_attempts": max_attempts, "initial_backoff": "10ms", "max_backoff": "50ms",
        "factor": 2.0})
}

/// Creates the runbook, emits one event and returns its finished execution.
async fn run_once(app: &test_support::app::TestApp, doc: &Value, payload: Value) -> Value {
    let (status, created) = create(app, doc).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let event = doc["triggers"][0]["event"].as_str().unwrap().to_owned();
    emit(app, &event, payload).await;
    executions_until(app, &id, |items| finished(items) == 1).await[0].clone()
}

#[tokio::test]
async fn a_503_is_retried_and_every_attempt_is_counted() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&target)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&target)
        .await;
    let doc = on_sync(
        "retried",
        json!([{"type": "http_request", "config": {"url": format!("{}/x", target.uri())},
            "retry": fast_retry(5)}]),
    );
    let run = run_once(&app, &doc, json!({"scans_imported": 1})).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    let result = &run["action_results"][0];
    assert_eq!(result["attempts"], 3, "{result}");
    assert_eq!(result["status"], "succeeded");
    assert!(result["error"].is_null(), "{result}");
    assert_eq!(result["output"]["status"], 200);
    assert_eq!(target.received_requests().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_400_is_not_retried_and_retries_that_run_out_fail_the_run() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(path("/bad"))
        .respond_with(ResponseTemplate::new(400))
        .mount(&target)
        .await;
    Mock::given(path("/down"))
        .respond_with(ResponseTemplate::new(502))
        .mount(&target)
        .await;

    let doc = on_sync(
        "refused",
        json!([{"type": "http_request", "config": {"url": format!("{}/bad", target.uri())},
            "retry": fast_retry(5)}]),
    );
    let run = run_once(&app, &doc, json!({"scans_imported": 1})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let result = &run["action_results"][0];
    assert_eq!(result["attempts"], 1, "{result}");
    assert_eq!(result["status"], "failed");
    assert!(
        result["error"].as_str().unwrap().contains("400"),
        "{result}"
    );

    let doc = json!({"name": "exhausted", "triggers": [{"event": "integration_sync_failed"}],
        "actions": [{"type": "http_request",
            "config": {"url": format!("{}/down", target.uri())}, "retry": fast_retry(3)}]});
    let run = run_once(&app, &doc, json!({"error": "x"})).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["action_results"][0]["attempts"], 3, "{run}");
    assert!(
        run["action_results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("502")
    );

    let requests = target.received_requests().await.unwrap();
    let count = |p: &str| requests.iter().filter(|r| r.url.path() == p).count();
    assert_eq!((count("/bad"), count("/down")), (1, 3));
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_asks() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .mount(&target)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    let doc = on_sync(
        "patient",
        json!([{"type": "http_request", "config": {"url": format!("{}/x", target.uri())},
            "retry": fast_retry(3)}]),
    );
    let run = run_once(&app, &doc, json!({"scans_imported": 1})).await;

    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["action_results"][0]["attempts"], 2, "{run}");
    // The policy alone would wait at most 10 ms; the target asked for a second.
    let waited = run["duration_ms"].as_i64().unwrap();
    assert!(waited >= 1_000, "retried after {waited} ms");
    assert_eq!(target.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn slack_through_an_incoming_webhook_and_through_chat_post_message() {
    let app = app().await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T0/B0/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .and(header("authorization", "Bearer xoxb-test-token"))
        .and(body_partial_json(json!({"channel": "#security"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "ts": "1.2"})))
        .mount(&slack)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
        )
        .mount(&slack)
        .await;

    let doc = on_sync(
        "slack",
        json!([
            {"type": "send_slack_message", "config": {
                "webhook_url": format!("{}/services/T0/B0/abc", slack.uri()),
                "text": "{{ scans_imported }} scans imported"}},
            {"type": "send_slack_message", "config": {
                "token": "xoxb-test-token", "channel": "#security",
                "api_base_url": format!("{}/api/", slack.uri()),
                "text": "sync of {{ integration_id }} done"}},
        ]),
    );
    let run = run_once(
        &app,
        &doc,
        json!({"integration_id": "gh-1", "scans_imported": 4}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["action_results"][1]["output"]["body"]["ts"], "1.2");

    let requests = slack.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let hook: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(hook, json!({"text": "4 scans imported"}));
    let api = &requests[1];
    assert_eq!(api.url.path(), "/api/chat.postMessage");
    assert_eq!(api.headers["authorization"], "Bearer xoxb-test-token");
    assert!(
        api.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(
        body,
        json!({"channel": "#security", "text": "sync of gh-1 done"})
    );

    // Slack answers 200 with `ok: false` for a request it refuses: that is a failure.
    let doc = json!({"name": "slack refused", "triggers": [{"event": "integration_sync_failed"}],
        "actions": [{"type": "send_slack_message", "config": {
            "token": "xoxb-other", "channel": "#nowhere",
            "api_base_url": format!("{}/api", slack.uri()), "text": "{{ error }}"}}]});
    let run = run_once(&app, &doc, json!({"error": "boom"})).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["action_results"][0]["error"].as_str().unwrap();
    assert!(error.contains("channel_not_found"), "{error}");
}

#[tokio::test]
async fn teams_gets_a_message_card() {
    let app = app().await;
    let teams = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/webhookb2/abc"))
        .respond_with(ResponseTemplate::new(200).set_body_string("1"))
        .mount(&teams)
        .await;
    let url = format!("{}/webhookb2/abc", teams.uri());
    let doc = on_sync(
        "teams",
        json!([
            {"type": "send_teams_message", "config": {"webhook_url": url,
                "title": "Sync {{ integration_id }}", "text": "{{ scans_imported }} scans"}},
            {"type": "send_teams_message", "config": {"webhook_url": url, "text": "no title"}},
        ]),
    );
    let run = run_once(
        &app,
        &doc,
        json!({"integration_id": "gl-2", "scans_imported": 7}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let requests = teams.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let card: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        card,
        json!({"@type": "MessageCard", "@context": "https://schema.org/extensions",
            "title": "Sync gl-2", "text": "7 scans"})
    );
    // A card without a title carries no `title` key rather than a null one.
    let untitled: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(
        untitled,
        json!({"@type": "MessageCard", "@context": "https://schema.org/extensions",
            "text": "no title"})
    );
}

#[tokio::test]
async fn a_later_action_reads_an_earlier_actions_output() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(path("/tickets"))
        .respond_with(
            ResponseTemplate::new(201).set_body_json(json!({"key": "SEC-42", "links": [7, 8]})),
        )
        .mount(&target)
        .await;
    Mock::given(path("/notify"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&target)
        .await;
    let doc = on_sync(
        "chained",
        json!([
            {"type": "http_request", "config": {"url": format!("{}/tickets", target.uri())}},
            {"type": "gate", "config": {"conditions": {"op": "and", "conditions": [
                {"field": "actions.0.output.status", "operator": "eq", "value": 201}]}}},
            {"type": "http_request", "config": {
                "url": format!("{}/notify", target.uri()),
                "headers": {"x-ticket": "{{ actions.0.output.body.key }}"},
                "body": {"ticket": "{{ actions.0.output.body.key }}",
                    "gate": "{{ actions.1.output.open }}",
                    "first_link": "{{ actions.0.output.body.links[0] }}"}}},
        ]),
    );
    let run = run_once(&app, &doc, json!({"scans_imported": 1})).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let requests = target.received_requests().await.unwrap();
    let notify = requests.iter().find(|r| r.url.path() == "/notify").unwrap();
    assert_eq!(notify.headers["x-ticket"], "SEC-42");
    let body: Value = serde_json::from_slice(&notify.body).unwrap();
    assert_eq!(
        body,
        json!({"ticket": "SEC-42", "gate": "true", "first_link": "7"})
    );
}

fn finding(title: &str, severity: &str, first_seen_ago: chrono::Duration) -> Value {
    let first_seen = chrono::Utc::now() - first_seen_ago;
    json!({"finding": {"id": uuid::Uuid::now_v7().to_string(), "title": title,
        "severity": severity, "first_seen_at": first_seen.to_rfc3339()}})
}

/// The titles of the findings whose events fired the runbook.
fn titles(items: &[Value]) -> Vec<String> {
    let mut titles: Vec<String> = items
        .iter()
        .map(|e| {
            e["trigger_payload"]["finding"]["title"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn time_windows_and_severity_order_select_the_emitted_events() {
    let app = app().await;
    let rule = |name: &str, operator: &str, window: &str| {
        json!({"name": name, "triggers": [{"event": "finding_created",
            "conditions": {"op": "and", "conditions": [
                {"field": "finding.severity", "operator": "gte", "value": "high"},
                {"field": "finding.first_seen_at", "operator": operator, "value": window}]}}],
            "actions": [{"type": "gate", "config": {"conditions": {"op": "and", "conditions": []}}}]})
    };
    let (_, fresh) = create(&app, &rule("fresh", "within_last", "1h")).await;
    let (_, stale) = create(&app, &rule("stale", "older_than", "7d")).await;
    let day = chrono::Duration::days(1);
    let minutes = chrono::Duration::minutes(5);

    for event in [
        finding("critical now", "critical", minutes),
        finding("high now", "high", minutes),
        finding("medium now", "medium", minutes),
        finding("high last week", "high", day * 8),
        finding("low last week", "low", day * 8),
        finding("high yesterday", "high", day),
        json!({"finding": {"id": uuid::Uuid::now_v7().to_string(), "title": "undated",
            "severity": "critical"}}),
    ] {
        emit(&app, "finding_created", event).await;
    }
    // A marker event both runbooks match, emitted last: once it has run, every earlier
    // event has been matched (events are matched in order).
    emit(
        &app,
        "finding_created",
        finding("marker", "critical", minutes),
    )
    .await;
    let fresh_id = fresh["id"].as_str().unwrap();
    let stale_id = stale["id"].as_str().unwrap();
    let marker = |items: &[Value]| titles(items).iter().any(|t| t == "marker");
    let fresh_runs = executions_until(&app, fresh_id, marker).await;
    assert_eq!(titles(&fresh_runs), ["critical now", "high now", "marker"]);

    emit(
        &app,
        "finding_created",
        finding("old marker", "critical", day * 30),
    )
    .await;
    let old_marker = |items: &[Value]| titles(items).iter().any(|t| t == "old marker");
    let stale_runs = executions_until(&app, stale_id, old_marker).await;
    assert_eq!(titles(&stale_runs), ["high last week", "old marker"]);
}

#[tokio::test]
async fn retry_waits_do_not_hold_other_runs_back() {
    let app = app().await;
    let target = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&target)
        .await;
    Mock::given(path("/fast"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    let slow = on_sync(
        "slow",
        json!([{"type": "http_request", "config": {"url": format!("{}/slow", target.uri())},
            "retry": {"max_attempts": 2, "initial_backoff": "2s", "max_backoff": "2s"}}]),
    );
    let fast = json!({"name": "fast", "triggers": [{"event": "integration_sync_failed"}],
        "actions": [{"type": "http_request",
            "config": {"url": format!("{}/fast", target.uri())}}]});
    let (_, slow) = create(&app, &slow).await;
    let (_, fast) = create(&app, &fast).await;
    emit(
        &app,
        "integration_sync_completed",
        json!({"scans_imported": 1}),
    )
    .await;
    emit(&app, "integration_sync_failed", json!({"error": "x"})).await;

    let fast_run = executions_until(&app, fast["id"].as_str().unwrap(), |items| {
        finished(items) == 1
    })
    .await;
    let slow_id = slow["id"].as_str().unwrap();
    let slow_now = executions_until(&app, slow_id, |items| items.len() == 1).await;
    assert_eq!(fast_run[0]["status"], "succeeded");
    assert!(
        slow_now[0]["finished_at"].is_null(),
        "the fast run waited for the slow one's backoff"
    );
    let slow_run = executions_until(&app, slow_id, |items| finished(items) == 1).await;
    assert_eq!(slow_run[0]["status"], "failed");
    assert_eq!(slow_run[0]["action_results"][0]["attempts"], 2);
}
