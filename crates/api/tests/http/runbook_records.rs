//! Runbook actions that change the platform's own records: findings (status, severity, tags,
//! assignee, comments, each with a history entry naming the runbook) and assets (criticality,
//! tags), fired by the events of a real scan import.

use reqwest::Method;
use serde_json::{Value, json};

use crate::runbooks::{app, create, executions_until, finished, get};
use crate::scan_support::{REPO, all_items, events_of, import_ok};

const SARIF: &[u8] = include_bytes!("../fixtures/runbook-findings.sarif");

/// Triages every high-or-worse new finding; the comment reads the severity action's output.
fn triage() -> Value {
    json!({
        "name": "triage",
        "triggers": [{"event": "finding_created", "conditions": {"op": "and", "conditions": [
            {"field": "finding.severity", "operator": "gte", "value": "high"}]}}],
        "actions": [
            {"type": "change_finding_status", "config": {"status": "in_progress"}},
            {"type": "change_finding_severity", "config": {"severity": "critical"}},
            {"type": "add_finding_tags",
                "config": {"tags": ["triaged", "{{ finding.tool }}"]}},
            {"type": "assign_finding", "config": {"assignee": "appsec@example.test"}},
            {"type": "append_comment", "config": {
                "body": "Raised to {{ actions.1.output.severity }} in {{ finding.file_path }}"}},
        ]
    })
}

fn classify() -> Value {
    json!({
        "name": "classify",
        "triggers": [{"event": "asset_created"}],
        "actions": [
            {"type": "update_asset_criticality", "config": {"criticality": 5}},
            {"type": "add_asset_tags", "config": {"tags": ["internet-facing", "{{ asset.kind }}"]}},
        ]
    })
}

#[tokio::test]
async fn finding_and_asset_actions_change_records_and_leave_history() {
    let app = app().await;
    let (status, triage) = create(&app, &triage()).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{triage}");
    let (status, classify) = create(&app, &classify()).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{classify}");

    let scan = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=main"),
        SARIF.to_vec(),
    )
    .await;
    let triage_id = triage["id"].as_str().unwrap();
    let runs = executions_until(&app, triage_id, |items| finished(items) == 1).await;
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);
    assert_eq!(runs[0]["action_results"].as_array().unwrap().len(), 5);
    let classify_id = classify["id"].as_str().unwrap();
    let runs = executions_until(&app, classify_id, |items| finished(items) == 1).await;
    assert_eq!(runs[0]["status"], "succeeded", "{}", runs[0]);

    let findings = all_items(
        &app,
        &format!("/api/v1/scans/{}/findings", scan["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(findings.len(), 2);
    let id_of = |rule: &str| {
        let finding = findings.iter().find(|f| f["rule_id"] == rule).unwrap();
        finding["id"].as_str().unwrap().to_owned()
    };
    let (sqli, debug) = (id_of("python.sqli"), id_of("python.debug-enabled"));

    let finding = get(&app, &format!("/api/v1/findings/{sqli}")).await;
    assert_eq!(finding["status"], "in_progress", "{finding}");
    assert_eq!(finding["severity"], "critical");
    assert_eq!(finding["assignee"], "appsec@example.test");
    let tags = finding["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("triaged")), "{finding}");
    assert!(tags.contains(&finding["tool"]), "{finding}");

    let history = get(&app, &format!("/api/v1/findings/{sqli}/history")).await;
    let by_runbook: Vec<(String, Value, Value)> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["actor"] == "runbook:triage")
        .map(|h| {
            let field = h["field"].as_str().unwrap().to_owned();
            (field, h["old_value"].clone(), h["new_value"].clone())
        })
        .collect();
    let fields: Vec<&str> = by_runbook.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        ["status", "severity", "tags", "assignee"],
        "{history}"
    );
    assert_eq!(by_runbook[0].1, "open");
    assert_eq!(by_runbook[0].2, "in_progress");
    assert_eq!(by_runbook[1].1, "high");
    assert_eq!(by_runbook[1].2, "critical");

    let comments = get(&app, &format!("/api/v1/findings/{sqli}/comments")).await;
    let comment = &comments["items"][0];
    assert_eq!(comment["author"], "runbook:triage");
    assert_eq!(comment["body"], "Raised to critical in shop/orders.py");

    // The low finding did not match: untouched, no history from the runbook.
    let untouched = get(&app, &format!("/api/v1/findings/{debug}")).await;
    assert_eq!(untouched["status"], "open");
    assert!(untouched["assignee"].is_null());
    let history = get(&app, &format!("/api/v1/findings/{debug}/history")).await;
    assert!(
        !history["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["actor"] == "runbook:triage")
    );

    // The changes are platform events of their own, carrying the runbook's values.
    let changed = events_of(&app, "finding_status_changed").await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["payload"]["new_status"], "in_progress");
    assert_eq!(changed[0]["payload"]["finding"]["id"], json!(sqli));
    let severity = events_of(&app, "finding_severity_changed").await;
    assert_eq!(severity[0]["payload"]["old_severity"], "high");
    let assigned = events_of(&app, "finding_assigned").await;
    assert_eq!(assigned[0]["payload"]["assignee"], "appsec@example.test");

    let assets = all_items(&app, "/api/v1/assets").await;
    let asset = assets.iter().find(|a| a["repo_url"] == REPO).unwrap();
    assert_eq!(asset["criticality"], 5, "{asset}");
    let tags = asset["tags"].as_array().unwrap();
    assert!(tags.contains(&json!("internet-facing")), "{asset}");
    assert!(tags.contains(&asset["kind"]), "{asset}");
}

#[tokio::test]
async fn rerunning_changes_nothing_and_a_second_import_does_not_triage_again() {
    let app = app().await;
    let (_, triage) = create(&app, &triage()).await;
    let marker = json!({"name": "marker", "triggers": [{"event": "scan_finished"}],
        "actions": [{"type": "gate", "config": {"conditions": {"op": "and", "conditions": []}}}]});
    let (_, marker) = create(&app, &marker).await;
    let query = format!("repo_url={REPO}&branch=main");
    import_ok(&app, &query, SARIF.to_vec()).await;
    let id = triage["id"].as_str().unwrap();
    executions_until(&app, id, |items| finished(items) == 1).await;

    // An event for the same finding: the actions find nothing left to change.
    let findings = all_items(&app, "/api/v1/findings").await;
    let finding = findings
        .iter()
        .find(|f| f["rule_id"] == "python.sqli")
        .unwrap();
    let response = app
        .admin(Method::POST, "/api/v1/events")
        .json(&json!({"type": "finding_created", "payload": {"finding_id": finding["id"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    let runs = executions_until(&app, id, |items| finished(items) == 2).await;
    let again = &runs[0];
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["trigger_payload"]["finding"]["severity"], "critical");
    for index in 0..4 {
        assert_eq!(
            again["action_results"][index]["output"]["changed"], false,
            "{again}"
        );
    }

    // The same findings imported again are not new: no `finding_created`, no third run. The
    // marker's run shows that the import's events have been matched.
    import_ok(&app, &query, SARIF.to_vec()).await;
    let marker_id = marker["id"].as_str().unwrap();
    executions_until(&app, marker_id, |items| finished(items) == 2).await;
    let runs = executions_until(&app, id, |items| finished(items) == 2).await;
    assert_eq!(runs.len(), 2);
}
