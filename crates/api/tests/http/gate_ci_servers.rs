//! The gate of a Jenkins or Bamboo integration, which has no pull requests of its own: a scan
//! imported with its id and PR context is reported as a commit status through the GitHub
//! integration its `config.scm_integration_id` names, to a fake GitHub.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::spawn;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::gate::{TOKEN, create, json_of, statuses};
use crate::scan_support::{events_of, import_ok, result, sarif};

const REPO_URL: &str = "https://github.com/acme/shop";
const SHA: &str = "5e1f0c1a2b3c4d5e6f708192a3b4c5d6e7f80912";

fn is_status(path: &str) -> bool {
    path.contains("/statuses/")
}

/// One SARIF result of rule `rule` at `level`.
fn at_level(rule: &str, level: &str, line: i64) -> Value {
    let mut value = result(rule, line, &format!("{rule} here"));
    value["level"] = json!(level);
    value
}

async fn gate_through_scm_integration(vendor: &str) {
    let app = spawn().await.unwrap();
    let fake = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({})))
        .mount(&fake)
        .await;
    let (status, github) = create(
        &app,
        "github",
        json!({"api_base_url": fake.uri(), "auth": {"token": TOKEN}}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{github}");
    let config = json!({"scm_integration_id": github["id"],
        "auto_scan": {"gate": {"block_on_new": ["critical", "high"], "warn_on_new": ["medium"],
                               "pr_comment": false}}});
    let (status, ci) = create(&app, vendor, config).await;
    assert_eq!(status, StatusCode::CREATED, "{ci}");
    let ci_id = ci["id"].as_str().unwrap();

    // The target branch has A; the pull request keeps A and adds B (high) and C (medium).
    import_ok(
        &app,
        &format!("repo_url={REPO_URL}&branch=main&commit_sha=0001"),
        sarif(&[at_level("A", "error", 10)]),
    )
    .await;
    let query = format!(
        "repo_url={REPO_URL}&branch=feature/x&target_branch=main&pr_number=7&commit_sha={SHA}\
         &integration_id={ci_id}"
    );
    let results = [
        at_level("A", "error", 10),
        at_level("B", "error", 20),
        at_level("C", "warning", 30),
    ];
    let scan = import_ok(&app, &query, sarif(&results)).await;
    let scan_id = scan["id"].as_str().unwrap();
    let expected = |request: &Request| {
        assert_eq!(request.method.as_str(), "POST", "{vendor}");
        assert_eq!(
            request.url.path(),
            format!("/repos/acme/shop/statuses/{SHA}"),
            "{vendor}"
        );
        let body = json_of(request);
        assert_eq!(body["state"], "failure", "{vendor}: {body}");
        assert_eq!(body["context"], "pmap/security", "{vendor}: {body}");
        assert_eq!(
            body["description"], "1 new high, 1 new medium — blocking",
            "{vendor}: {body}"
        );
        let link = body["target_url"].as_str().unwrap();
        assert!(
            link.ends_with(&format!("/api/v1/scans/{scan_id}")),
            "{link}"
        );
        let auth = request.headers.get("authorization").unwrap();
        assert_eq!(auth.to_str().unwrap(), format!("Bearer {TOKEN}"));
    };

    // The gate worker reports the imported scan: one status and nothing else.
    let received = statuses(&fake, is_status, 1).await;
    expected(&received[0]);
    assert_eq!(fake.received_requests().await.unwrap().len(), 1);
    let mut gates = Vec::new();
    for _ in 0..1000 {
        gates = events_of(&app, "pr_gate_evaluated").await;
        if !gates.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gates.len(), 1, "{gates:?}");
    let payload = &gates[0]["payload"];
    assert_eq!(payload["integration_id"], ci["id"], "{payload}");
    assert_eq!(payload["repo"], "acme/shop", "{payload}");
    assert_eq!(payload["state"], "failure", "{payload}");
    assert_eq!(payload["posted"], true, "{payload}");

    // On demand, through the CI integration's own endpoint: the same status again.
    let response = app
        .admin(
            Method::POST,
            &format!("/api/v1/integrations/{ci_id}/ci/pr-status"),
        )
        .json(&json!({"scan_id": scan_id}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["state"], "failure", "{answer}");
    assert_eq!(answer["posted"], true, "{answer}");
    let received = statuses(&fake, is_status, 2).await;
    expected(&received[1]);
}

#[tokio::test]
async fn gate_jenkins_reports_through_its_scm_integration() {
    gate_through_scm_integration("jenkins").await;
}

#[tokio::test]
async fn gate_bamboo_reports_through_its_scm_integration() {
    gate_through_scm_integration("bamboo").await;
}

#[tokio::test]
async fn gate_jenkins_without_an_scm_integration_is_422_naming_the_key() {
    let app = spawn().await.unwrap();
    let (_, ci) = create(&app, "jenkins", json!({"auto_scan": {"gate": {}}})).await;
    let ci_id = ci["id"].as_str().unwrap();
    let query = format!(
        "repo_url={REPO_URL}&branch=feature/x&pr_number=7&commit_sha={SHA}&integration_id={ci_id}"
    );
    let scan = import_ok(&app, &query, sarif(&[at_level("A", "error", 10)])).await;
    let response = app
        .admin(
            Method::POST,
            &format!("/api/v1/integrations/{ci_id}/ci/pr-status"),
        )
        .json(&json!({"scan_id": scan["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["details"][0]["message"].as_str().unwrap();
    assert!(message.contains("config.scm_integration_id"), "{body}");
}
