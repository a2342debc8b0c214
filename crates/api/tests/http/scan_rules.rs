//! Severity at import: an integration's `severity_map` and `min_severity`, then finding rules
//! recorded in each finding's history; and the asset every repository gets.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::spawn;

use crate::scan_support::{REPO, all_items, events_of, import_ok, result, sarif};

#[tokio::test]
async fn severity_map_overrides_and_min_severity_filters() {
    let app = spawn().await.unwrap();
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&json!({"name": "scanner", "vendor": "snyk",
            "config": {"severity_map": {"error": "critical"}, "min_severity": "medium"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let integration: Value = response.json().await.unwrap();
    let id = integration["id"].as_str().unwrap();

    let mut note = result("R2", 5, "minor");
    note["level"] = json!("note");
    let body = sarif(&[result("R1", 1, "a"), note]);
    let scan = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=main&integration_id={id}"),
        body,
    )
    .await;
    assert_eq!(scan["counts"]["critical"], 1, "{scan}");
    assert_eq!(scan["counts"]["total"], 1);
    assert_eq!(scan["counts"]["filtered"], 1);
    assert_eq!(scan["integration_id"], id);
    let findings = all_items(&app, "/api/v1/findings").await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["vendor_severity"], "error");
}

#[tokio::test]
async fn a_finding_rule_changes_severity_and_the_history_names_it() {
    let app = spawn().await.unwrap();
    let rule = json!({
        "name": "critical repos escalate",
        "priority": 1,
        "conditions": {"op": "and", "conditions": [
            {"field": "finding.rule_id", "operator": "eq", "value": "R1"},
            {"field": "asset.criticality", "operator": "gte", "value": 3}]},
        "changes": {"set_severity": "critical", "add_tags": ["escalated"], "assign": "sec-team"}
    });
    let response = app
        .admin(Method::POST, "/api/v1/finding-rules")
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let bad = json!({"name": "x", "conditions": {"op": "xor", "conditions": []}, "changes": {}});
    let response = app
        .admin(Method::POST, "/api/v1/finding-rules")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let scan = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=main"),
        sarif(&[result("R1", 1, "a"), result("R2", 2, "b")]),
    )
    .await;
    assert_eq!(scan["counts"]["critical"], 1, "{scan}");
    assert_eq!(scan["new_counts"]["critical"], 1);

    let findings = all_items(&app, "/api/v1/findings?severity=critical").await;
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0]["tags"], json!(["escalated"]));
    assert_eq!(findings[0]["assignee"], "sec-team");
    let path = format!("/api/v1/findings/{}", findings[0]["id"].as_str().unwrap());
    let finding: Value = app
        .admin(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let severity_change = finding["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["field"] == "severity")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(
        severity_change["actor"], "rule:critical repos escalate",
        "{finding}"
    );
    assert_eq!(severity_change["old_value"], "high");
    assert_eq!(severity_change["new_value"], "critical");

    // A person's edit is recorded and emitted too.
    let response = app
        .admin(Method::PATCH, &path)
        .json(&json!({"severity": "low", "status": "in_progress", "assignee": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for kind in [
        "finding_severity_changed",
        "finding_status_changed",
        "finding_assigned",
    ] {
        assert_eq!(events_of(&app, kind).await.len(), 1, "{kind}");
    }
    let comment = app
        .admin(Method::POST, &format!("{path}/comments"))
        .json(&json!({"body": "looking into it"}))
        .send()
        .await
        .unwrap();
    assert_eq!(comment.status(), StatusCode::CREATED);
    assert_eq!(all_items(&app, &format!("{path}/comments")).await.len(), 1);
}

#[tokio::test]
async fn a_repository_gets_one_asset_with_a_criticality() {
    let app = spawn().await.unwrap();
    import_ok(
        &app,
        &format!("repo_url={REPO}&branch=main"),
        sarif(&[result("R1", 1, "a")]),
    )
    .await;
    import_ok(
        &app,
        &format!("repo_url={REPO}&branch=dev"),
        sarif(&[result("R1", 1, "a")]),
    )
    .await;
    let assets = all_items(&app, "/api/v1/assets").await;
    assert_eq!(assets.len(), 1);
    assert_eq!(assets[0]["criticality"], 3);
    assert_eq!(assets[0]["repo_url"], REPO);

    let path = format!("/api/v1/assets/{}", assets[0]["id"].as_str().unwrap());
    let response = app
        .admin(Method::PATCH, &path)
        .json(&json!({"criticality": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = app
        .admin(Method::PATCH, &path)
        .json(&json!({"criticality": 5, "tags": ["pci"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let asset: Value = app
        .admin(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asset["criticality"], 5);
    assert_eq!(asset["tags"], json!(["pci"]));

    let findings = all_items(
        &app,
        &format!(
            "/api/v1/findings?asset_id={}",
            asset["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(findings.len(), 1);
    assert_eq!(events_of(&app, "asset_created").await.len(), 1);
}
