//! The pull-request gate end to end, per SCM vendor: a real PR delivery from the corpus, a
//! baseline and three PR scans imported, and the statuses and the one comment a fake SCM
//! (wiremock, answering in the vendor's shapes) received. Then the orchestrator's fan-out and
//! the gate's bad input.

use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use test_support::app::{TestApp, spawn};
use test_support::webhook_corpus::{self, Entry};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::scan_support::{events_of, import_ok};
use crate::support::{SECRET, assert_error, get_json};

pub(crate) const TOKEN: &str = "scm-token-123";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/gate/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fake SCM: statuses are accepted; comments are kept so a later run can find and edit its
/// own, and listed in the vendor's shape.
struct FakeScm {
    vendor: &'static str,
    comments: Mutex<Vec<(u64, String)>>,
}

impl FakeScm {
    fn is_status(&self, path: &str) -> bool {
        match self.vendor {
            "bitbucket-cloud" => path.ends_with("/statuses/build"),
            "bitbucket-server" => path.starts_with("/rest/build-status/1.0/commits/"),
            "azure-devops" => path.ends_with("/statuses"),
            _ => path.contains("/statuses/"),
        }
    }

    fn listing(&self) -> Value {
        let comments = self.comments.lock().unwrap();
        let each = comments.iter();
        match self.vendor {
            "bitbucket-cloud" => {
                json!({"values": each.map(|(id, body)| json!({"id": id, "content": {"raw": body}}))
                    .collect::<Vec<_>>()})
            }
            "bitbucket-server" => json!({"isLastPage": true, "values": each
                .map(|(id, body)| json!({"action": "COMMENTED",
                    "comment": {"id": id, "version": 3, "text": body}}))
                .collect::<Vec<_>>()}),
            "azure-devops" => json!({"value": each
                .map(|(id, body)| json!({"id": id, "comments": [{"id": 1, "content": body}]}))
                .collect::<Vec<_>>()}),
            _ => json!(
                each.map(|(id, body)| json!({"id": id, "body": body}))
                    .collect::<Vec<_>>()
            ),
        }
    }

    fn comment_body(&self, body: &Value) -> String {
        let text = match self.vendor {
            "bitbucket-cloud" => &body["content"]["raw"],
            "bitbucket-server" => &body["text"],
            "azure-devops" if body["comments"].is_array() => &body["comments"][0]["content"],
            "azure-devops" => &body["content"],
            _ => &body["body"],
        };
        text.as_str().unwrap_or_default().to_owned()
    }
}

impl Respond for FakeScm {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match request.method.as_str() {
            "POST" if self.is_status(path) => ResponseTemplate::new(201).set_body_json(json!({})),
            "GET" => ResponseTemplate::new(200).set_body_json(self.listing()),
            "POST" => {
                let mut comments = self.comments.lock().unwrap();
                let id = 100 + comments.len() as u64;
                comments.push((id, self.comment_body(&body)));
                ResponseTemplate::new(201).set_body_json(json!({"id": id}))
            }
            _ => {
                let mut comments = self.comments.lock().unwrap();
                if let Some(last) = comments.last_mut() {
                    last.1 = self.comment_body(&body);
                }
                ResponseTemplate::new(200).set_body_json(json!({}))
            }
        }
    }
}

struct Vendor {
    entry: &'static str,
    status_path: &'static str,
    /// The state words for failure, pending, success.
    states: [&'static str; 3],
}

fn vendor(name: &str) -> Vendor {
    match name {
        "github" => Vendor {
            entry: "github/pull_request-opened.json",
            status_path: "/repos/Codertocat/Hello-World/statuses/",
            states: ["failure", "pending", "success"],
        },
        "gitlab" => Vendor {
            entry: "gitlab/merge_request-open.json",
            status_path: "/api/v4/projects/gitlab-org%2Fhello-world/statuses/",
            states: ["failed", "pending", "success"],
        },
        "bitbucket-cloud" => Vendor {
            entry: "bitbucket-cloud/pullrequest-created.json",
            status_path: "/2.0/repositories/brydzewski/foo/commit/",
            states: ["FAILED", "INPROGRESS", "SUCCESSFUL"],
        },
        "bitbucket-server" => Vendor {
            entry: "bitbucket-server/pr-opened.json",
            status_path: "/rest/build-status/1.0/commits/",
            states: ["FAILED", "INPROGRESS", "SUCCESSFUL"],
        },
        "azure-devops" => Vendor {
            entry: "azure-devops/pullrequest-created.json",
            status_path: "/fabrikam/DefaultCollection/_apis/git/repositories/Fabrikam/pullRequests/1/statuses",
            states: ["failed", "pending", "succeeded"],
        },
        other => panic!("no vendor {other}"),
    }
}

pub(crate) fn corpus_entry(file: &str) -> Option<(std::path::PathBuf, Entry)> {
    let dir = webhook_corpus::corpus_dir()?;
    let entry = webhook_corpus::load_manifest(&dir)
        .unwrap()
        .into_iter()
        .find(|e| e.file == file)?;
    Some((dir, entry))
}

pub(crate) async fn create(app: &TestApp, vendor: &str, config: Value) -> (StatusCode, Value) {
    let body = json!({"name": format!("{vendor} scm"), "vendor": vendor, "secret": SECRET,
                      "config": config});
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn gate_config(base: &str) -> Value {
    json!({"api_base_url": base, "auth": {"token": TOKEN},
           "auto_scan": {"branches": ["master", "release/*"],
             "gate": {"block_on_new": ["critical", "high"], "warn_on_new": ["medium"],
                      "pr_comment": true}}})
}

pub(crate) async fn deliver(app: &TestApp, dir: &std::path::Path, entry: &Entry, id: &str) {
    let body = entry.body(dir).unwrap();
    let vendor = webhook_corpus::route_vendor(entry);
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/webhooks/ci/{vendor}/{id}")))
        .body(body.clone());
    for (name, value) in webhook_corpus::signed_headers(entry, SECRET, &body) {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED, "{}", entry.file);
}

/// The audit row of the only delivery, once processed.
pub(crate) async fn processed(app: &TestApp, id: &str) -> Value {
    for _ in 0..1000 {
        let audit = app.audit(id).await.unwrap();
        if let Some(row) = audit.first()
            && row["action_taken"] != "queued"
        {
            return row.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the delivery was never processed");
}

/// The status requests the fake received, once there are `n`.
pub(crate) async fn statuses(
    fake: &MockServer,
    is_status: impl Fn(&str) -> bool,
    n: usize,
) -> Vec<Request> {
    for _ in 0..1000 {
        let found: Vec<Request> = fake
            .received_requests()
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && is_status(r.url.path()))
            .collect();
        if found.len() >= n {
            assert_eq!(found.len(), n, "more statuses than expected");
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fake SCM never received {n} statuses");
}

pub(crate) fn json_of(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn gate_story(name: &'static str) {
    let v = vendor(name);
    let Some((dir, entry)) = corpus_entry(v.entry) else {
        eprintln!("webhook corpus not found; skipped");
        return;
    };
    let app = spawn().await.unwrap();
    let fake = MockServer::start().await;
    let scm = FakeScm {
        vendor: name,
        comments: Mutex::new(Vec::new()),
    };
    Mock::given(wiremock::matchers::any())
        .respond_with(scm)
        .mount(&fake)
        .await;
    let route = webhook_corpus::route_vendor(&entry).to_string();
    let (status, created) = create(&app, &route, gate_config(&fake.uri())).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();

    deliver(&app, &dir, &entry, &id).await;
    let row = processed(&app, &id).await;
    assert_eq!(row["action_taken"], "gate_evaluated", "{row}");
    assert_eq!(row["errors"], json!([]), "{row}");
    let is_status = |path: &str| {
        FakeScm {
            vendor: name,
            comments: Mutex::default(),
        }
        .is_status(path)
    };
    let first = statuses(&fake, is_status, 1).await;
    assert_eq!(
        json_of(&first[0])["description"],
        "waiting for scan results"
    );

    let sha = row["commit_sha"].as_str().unwrap().to_owned();
    let pr = row["pr_number"].as_i64().unwrap();
    let repo_url = row["repo_url"]
        .as_str()
        .unwrap_or("https://bitbucket.example.test/scm/PRJ/my-repo")
        .to_owned();
    let source = row["branch"].as_str().unwrap().to_owned();
    let target = row["target_branch"].as_str().unwrap().to_owned();
    let base = format!("repo_url={repo_url}&tool=gatecheck");
    import_ok(
        &app,
        &format!("{base}&branch={target}"),
        fixture("baseline.sarif"),
    )
    .await;
    let pr_query = format!(
        "{base}&branch={source}&target_branch={target}&pr_number={pr}&commit_sha={sha}\
         &integration_id={id}"
    );

    let expected = [
        (
            "pr-high-medium.sarif",
            v.states[0],
            "1 new high, 1 new medium — blocking",
        ),
        (
            "pr-medium.sarif",
            v.states[1],
            "1 new medium — review needed",
        ),
        ("pr-clean.sarif", v.states[2], "no new findings — passing"),
    ];
    for (n, (file, state, description)) in expected.into_iter().enumerate() {
        let scan = import_ok(&app, &pr_query, fixture(file)).await;
        let received = statuses(&fake, is_status, n + 2).await;
        let last = received.last().unwrap();
        assert!(
            last.url.path().starts_with(v.status_path),
            "{name}: {}",
            last.url.path()
        );
        let body = json_of(last);
        assert_eq!(body["state"], state, "{name} {file}: {body}");
        assert_eq!(body["description"], description, "{name} {file}: {body}");
        let link = body["target_url"]
            .as_str()
            .or(body["url"].as_str())
            .or(body["targetUrl"].as_str());
        assert!(
            link.unwrap()
                .ends_with(&format!("/api/v1/scans/{}", scan["id"].as_str().unwrap()))
        );
        check_auth(name, last);
    }

    // One comment, created by the first scan and edited in place by the next two.
    let is_comment_write = |r: &Request| r.method.as_str() != "GET" && !is_status(r.url.path());
    let mut requests = Vec::new();
    for _ in 0..1000 {
        requests = fake.received_requests().await.unwrap();
        if requests.iter().filter(|r| is_comment_write(r)).count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let comment_writes: Vec<&Request> = requests.iter().filter(|r| is_comment_write(r)).collect();
    let methods: Vec<&str> = comment_writes.iter().map(|r| r.method.as_str()).collect();
    let edit = if matches!(name, "github" | "azure-devops") {
        "PATCH"
    } else {
        "PUT"
    };
    assert_eq!(methods, ["POST", edit, edit], "{name}");
    let last_comment = FakeScm {
        vendor: name,
        comments: Mutex::default(),
    }
    .comment_body(&json_of(comment_writes[2]));
    assert!(
        last_comment.starts_with("<!-- pmap:gate -->"),
        "{last_comment}"
    );
    assert!(
        last_comment.contains("| low | 0 | 0 | 1 |"),
        "{last_comment}"
    );
    let first_comment = FakeScm {
        vendor: name,
        comments: Mutex::default(),
    }
    .comment_body(&json_of(comment_writes[0]));
    assert!(
        first_comment.contains("SQL built from request input"),
        "{first_comment}"
    );
    assert!(first_comment.contains("src/app.py:42"), "{first_comment}");

    let mut gates = Vec::new();
    for _ in 0..1000 {
        gates = events_of(&app, "pr_gate_evaluated").await;
        if gates.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let states: Vec<&str> = gates
        .iter()
        .map(|e| e["payload"]["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states,
        ["pending", "failure", "pending", "success"],
        "{name}"
    );

    // On demand: the status from the PR's coordinates, the comment from the PR (edited again).
    let path = format!("/api/v1/integrations/{id}/ci/pr-status");
    let request = json!({"repo": repo_url, "commit_sha": sha, "pr_number": pr});
    let (status, answer) = post_json(&app, &path, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["state"], "success");
    assert_eq!(answer["description"], "no new findings — passing");
    assert_eq!(answer["posted"], true);
    assert_eq!(answer["new_counts"]["total"], 0);
    let path = format!("/api/v1/integrations/{id}/ci/pr-comment");
    let request = json!({"repo": repo_url, "pr_number": pr});
    let (status, answer) = post_json(&app, &path, request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["created"], false, "{answer}");
    assert_eq!(answer["updated"], true, "{answer}");
    assert_eq!(answer["comment_id"], "100", "{answer}");
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .admin(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

fn check_auth(name: &str, request: &Request) {
    let header = |n: &str| {
        request
            .headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    match name {
        "gitlab" => assert_eq!(header("private-token").as_deref(), Some(TOKEN)),
        "azure-devops" => {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(":{TOKEN}"));
            assert_eq!(header("authorization"), Some(format!("Basic {basic}")));
        }
        _ => assert_eq!(header("authorization"), Some(format!("Bearer {TOKEN}"))),
    }
}

#[tokio::test]
async fn gate_github() {
    gate_story("github").await;
}

#[tokio::test]
async fn gate_gitlab() {
    gate_story("gitlab").await;
}

#[tokio::test]
async fn gate_bitbucket_cloud() {
    gate_story("bitbucket-cloud").await;
}

#[tokio::test]
async fn gate_bitbucket_server() {
    gate_story("bitbucket-server").await;
}

#[tokio::test]
async fn gate_azure_devops() {
    gate_story("azure-devops").await;
}

#[tokio::test]
async fn gate_config_with_an_unknown_severity_is_422() {
    let app = spawn().await.unwrap();
    let config = json!({"auto_scan": {"gate": {"block_on_new": ["severe"]}}});
    let (status, body) = create(&app, "github", config).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(
        body["error"]["details"][0]["field"],
        "config.auto_scan.gate.block_on_new[0]"
    );
}

#[tokio::test]
async fn gate_pr_status_of_a_scan_without_pr_context_is_422() {
    let app = spawn().await.unwrap();
    let (_, created) = create(&app, "github", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let scan = import_ok(
        &app,
        "repo_url=https://github.com/acme/app&branch=main",
        fixture("baseline.sarif"),
    )
    .await;
    let response = app
        .admin(
            Method::POST,
            &format!("/api/v1/integrations/{id}/ci/pr-status"),
        )
        .json(&json!({"scan_id": scan["id"]}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(
        body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("pr_number")
    );

    let response = app
        .admin(
            Method::POST,
            &format!("/api/v1/integrations/{id}/ci/pr-status"),
        )
        .json(&json!({"repo": "acme/app"}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["commit_sha", "pr_number"], "{body}");
}

#[tokio::test]
async fn gate_an_scm_answering_404_is_recorded_on_the_audit_and_the_event() {
    let Some((dir, entry)) = corpus_entry("github/pull_request-opened.json") else {
        return;
    };
    let app = spawn().await.unwrap();
    let fake = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})))
        .mount(&fake)
        .await;
    let (_, created) = create(&app, "github", gate_config(&fake.uri())).await;
    let id = created["id"].as_str().unwrap();
    deliver(&app, &dir, &entry, id).await;
    let row = processed(&app, id).await;
    assert_eq!(row["action_taken"], "gate_evaluated");
    let errors = row["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{row}");
    assert!(errors[0].as_str().unwrap().contains("404"), "{row}");
    assert_eq!(row["steps"][0]["state"], "failed", "{row}");

    let gates = events_of(&app, "pr_gate_evaluated").await;
    assert_eq!(gates.len(), 1);
    assert_eq!(gates[0]["payload"]["posted"], false);
    assert!(
        gates[0]["payload"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("404")
    );
    // A 404 is final: one attempt, no retries.
    assert_eq!(fake.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn gate_fan_out_starts_pipelines_queues_scans_and_records_a_deleted_target() {
    let Some((dir, entry)) = corpus_entry("github/push.json") else {
        return;
    };
    let app = spawn().await.unwrap();
    let fake = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(204))
        .mount(&fake)
        .await;
    let (_, live) = create(
        &app,
        "github",
        json!({"api_base_url": fake.uri(), "auth": {"token": TOKEN},
               "repository": "acme/pipelines"}),
    )
    .await;
    let (_, gone) = create(&app, "gitlab", json!({})).await;
    let (_, snyk) = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&json!({"name": "snyk", "vendor": "snyk", "config": {}}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let snyk: Value = snyk.json().await.unwrap();
    let config = json!({"auto_scan": {"branches": ["master"],
        "pipeline_triggers": [
            {"integration_id": live["id"], "pipeline": "security.yml", "ref": "{{ branch }}",
             "variables": {"sha": "{{ commit_sha }}"}},
            {"integration_id": gone["id"], "pipeline": "scan"}],
        "scans": [{"integration_id": snyk["id"], "project_id": "p-1"}]}});
    let (status, source) = create(&app, "github", config).await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let source_id = source["id"].as_str().unwrap();
    let gone_id = gone["id"].as_str().unwrap();
    let deleted = app
        .admin(Method::DELETE, &format!("/api/v1/integrations/{gone_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

    deliver(&app, &dir, &entry, source_id).await;
    let row = processed(&app, source_id).await;
    assert_eq!(row["action_taken"], "scans_triggered", "{row}");
    let errors = row["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{row}");
    assert!(
        errors[0].as_str().unwrap().starts_with("trigger:1:"),
        "{row}"
    );
    assert!(
        errors[0].as_str().unwrap().contains("does not exist"),
        "{row}"
    );

    let requests = fake.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].url.path(),
        "/repos/acme/pipelines/actions/workflows/security.yml/dispatches"
    );
    let body = json_of(&requests[0]);
    assert_eq!(body["ref"], "master");
    assert_eq!(body["inputs"]["sha"], row["commit_sha"]);

    let (_, scans) = get_json(&app, "/api/v1/scans?status=queued").await;
    let scans = scans["items"].as_array().unwrap();
    assert_eq!(scans.len(), 1);
    assert_eq!(
        scans[0]["triggered_by"],
        format!("ci_event:{}", row["id"].as_str().unwrap())
    );
    assert_eq!(scans[0]["commit_sha"], row["commit_sha"]);
    assert_eq!(scans[0]["branch_name"], "master");

    let received = events_of(&app, "ci_event_received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["payload"]["action_taken"], "scans_triggered");
}

#[tokio::test]
async fn gate_branch_filter_and_disabled_auto_scan_still_emit_the_event() {
    let Some((dir, entry)) = corpus_entry("github/push.json") else {
        return;
    };
    let app = spawn().await.unwrap();
    for (config, action) in [
        (
            json!({"auto_scan": {"branches": ["release/*"]}}),
            "filtered_branch",
        ),
        (
            json!({"auto_scan": {"enabled": false, "branches": ["mas*"]}}),
            "auto_scan_disabled",
        ),
    ] {
        let (_, created) = create(&app, "github", config).await;
        let id = created["id"].as_str().unwrap();
        deliver(&app, &dir, &entry, id).await;
        assert_eq!(processed(&app, id).await["action_taken"], action);
    }
    let received = events_of(&app, "ci_event_received").await;
    let actions: Vec<&str> = received
        .iter()
        .map(|e| e["payload"]["action_taken"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["filtered_branch", "auto_scan_disabled"]);
}
