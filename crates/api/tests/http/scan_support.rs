//! Helpers for the scan tests: importing a body with query parameters, and small SARIF logs
//! built in the test so each one shows exactly what it is about.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::TestApp;

pub const REPO: &str = "https://git.example.test/acme/shop";

/// Posts a scan body to the import endpoint; `query` is appended as given.
pub async fn import(app: &TestApp, query: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = app
        .admin(Method::POST, &format!("/api/v1/scans/import?{query}"))
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("import request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Imports and insists on 201; returns the scan.
pub async fn import_ok(app: &TestApp, query: &str, body: Vec<u8>) -> Value {
    let (status, answer) = import(app, query, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["scan"].clone()
}

/// One SARIF result of rule `rule` in `src/app.py` at `line`.
pub fn result(rule: &str, line: i64, message: &str) -> Value {
    json!({
        "ruleId": rule,
        "level": "error",
        "message": {"text": message},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "src/app.py"},
            "region": {"startLine": line}
        }}]
    })
}

/// A SARIF 2.1.0 log of the `PyLint` tool with these results.
pub fn sarif(results: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {"name": "PyLint", "rules": [
                {"id": "R1", "defaultConfiguration": {"level": "error"}},
                {"id": "R2", "defaultConfiguration": {"level": "warning"}}
            ]}},
            "results": results
        }]
    }))
    .unwrap()
}

/// Every platform event of a type, oldest first.
pub async fn events_of(app: &TestApp, event_type: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = 0i64;
    loop {
        let path = format!("/api/v1/events?after={after}&limit=500");
        let body: Value = app
            .admin(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = body["items"].as_array().cloned().unwrap_or_default();
        let Some(last) = items.last() else {
            return found;
        };
        after = last["seq"].as_i64().unwrap();
        found.extend(items.into_iter().filter(|e| e["type"] == event_type));
    }
}

/// Every item of a paged list.
pub async fn all_items(app: &TestApp, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
            None => format!("{path}{sep}limit=500"),
        };
        let response = app.admin(Method::GET, &url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let body: Value = response.json().await.unwrap();
        items.extend(body["items"].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}
