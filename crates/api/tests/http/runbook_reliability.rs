//! Runbook reliability end to end: templates that hit their limits when they run, the
//! breaker's count and its reset, the throttle window, and the version an execution ran.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::runbooks::{app, create, emit, executions_until, finished, get};

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
