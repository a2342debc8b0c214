//! Each vendor client against a wiremock server answering as the vendor documents: the paths,
//! methods, auth headers and bodies it must send, and what it does with 401, 404, 422, 429 with
//! `Retry-After`, and 5xx answers.

use connectors::http::Credential;
use connectors::pipelines::{self, TriggerRequest};
use connectors::scm::{self, CommentOutcome, PrTarget, ScmKind, StatusReport};
use connectors::{CallError, EgressPolicy};
use domain::Vendor;
use domain::gate::GateState;
use serde_json::{Map, json};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn http(server: &MockServer) -> reqwest::Client {
    EgressPolicy::new(&[])
        .unwrap()
        .with_base_url(Some(&server.uri()))
        .client()
}

fn token() -> Credential {
    Credential::Token("tok".into())
}

fn target(repo: &str) -> PrTarget {
    PrTarget {
        repo: repo.into(),
        repo_url: Some("https://dev.azure.com/org/proj/_git/app".into()),
        commit_sha: SHA.into(),
        pr_number: 7,
    }
}

fn report(state: GateState) -> StatusReport {
    StatusReport {
        state,
        description: "1 new high — blocking".into(),
        target_url: "https://pmap.example/api/v1/scans/1".into(),
    }
}

fn client(kind: ScmKind, server: &MockServer, credential: Credential) -> Box<dyn scm::ScmClient> {
    scm::client(kind, http(server), Some(&server.uri()), credential)
}

#[tokio::test]
async fn github_status_and_comment() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/repos/acme/app/statuses/{SHA}")))
        .and(header("authorization", "Bearer tok"))
        .and(header("accept", "application/vnd.github+json"))
        .and(body_json(
            json!({"state": "failure", "context": "pmap/security",
            "description": "1 new high — blocking",
            "target_url": "https://pmap.example/api/v1/scans/1"}),
        ))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/app/issues/7/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "body": "looks good"},
            {"id": 2, "body": "<!-- pmap:gate -->\nold"}])))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/app/issues/comments/2"))
        .and(body_json(json!({"body": "<!-- pmap:gate -->\nnew"})))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let github = client(ScmKind::Github, &server, token());
    github
        .post_status(&target("acme/app"), &report(GateState::Failure))
        .await
        .unwrap();
    let outcome = github
        .upsert_comment(&target("acme/app"), "<!-- pmap:gate -->\nnew")
        .await
        .unwrap();
    assert_eq!(outcome, CommentOutcome::Updated("2".into()));
}

#[tokio::test]
async fn gitlab_status_and_new_note() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v4/projects/group%2Fapp/statuses/{SHA}")))
        .and(header("private-token", "tok"))
        .and(body_json(
            json!({"state": "failed", "name": "pmap/security",
            "description": "1 new high — blocking",
            "target_url": "https://pmap.example/api/v1/scans/1"}),
        ))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/projects/group%2Fapp/merge_requests/7/notes"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/group%2Fapp/merge_requests/7/notes"))
        .and(body_json(json!({"body": "<!-- pmap:gate -->"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 55})))
        .expect(1)
        .mount(&server)
        .await;

    let gitlab = client(ScmKind::Gitlab, &server, token());
    let pr = target("group/app");
    gitlab
        .post_status(&pr, &report(GateState::Error))
        .await
        .unwrap();
    let outcome = gitlab
        .upsert_comment(&pr, "<!-- pmap:gate -->")
        .await
        .unwrap();
    assert_eq!(outcome, CommentOutcome::Created("55".into()));
}

#[tokio::test]
async fn bitbucket_cloud_status_and_comment_with_basic_auth() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/2.0/repositories/ws/app/commit/{SHA}/statuses/build"
        )))
        .and(header("authorization", "Basic dTpw"))
        .and(body_json(
            json!({"state": "INPROGRESS", "key": "pmap/security",
            "name": "PMAP security gate", "description": "1 new high — blocking",
            "url": "https://pmap.example/api/v1/scans/1"}),
        ))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/ws/app/pullrequests/7/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": [
            {"id": 9, "content": {"raw": "<!-- pmap:gate --> old"}}]})))
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/2.0/repositories/ws/app/pullrequests/7/comments/9"))
        .and(body_json(
            json!({"content": {"raw": "<!-- pmap:gate --> new"}}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let basic = Credential::Basic {
        username: "u".into(),
        password: "p".into(),
    };
    let bitbucket = client(ScmKind::BitbucketCloud, &server, basic);
    let pr = target("ws/app");
    bitbucket
        .post_status(&pr, &report(GateState::Pending))
        .await
        .unwrap();
    let outcome = bitbucket
        .upsert_comment(&pr, "<!-- pmap:gate --> new")
        .await
        .unwrap();
    assert_eq!(outcome, CommentOutcome::Updated("9".into()));
}

#[tokio::test]
async fn bitbucket_server_status_and_comment_edit_with_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/rest/build-status/1.0/commits/{SHA}")))
        .and(body_json(
            json!({"state": "SUCCESSFUL", "key": "pmap/security",
            "name": "PMAP security gate", "description": "1 new high — blocking",
            "url": "https://pmap.example/api/v1/scans/1"}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let pr = "/rest/api/1.0/projects/PRJ/repos/app/pull-requests/7";
    Mock::given(method("GET"))
        .and(path(format!("{pr}/activities")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"isLastPage": true,
            "values": [{"action": "COMMENTED",
                        "comment": {"id": 31, "version": 4, "text": "<!-- pmap:gate -->"}}]})),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(format!("{pr}/comments/31")))
        .and(body_json(
            json!({"text": "<!-- pmap:gate --> again", "version": 4}),
        ))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;

    let bitbucket = client(ScmKind::BitbucketServer, &server, token());
    let target = target("PRJ/app");
    bitbucket
        .post_status(&target, &report(GateState::Success))
        .await
        .unwrap();
    let outcome = bitbucket
        .upsert_comment(&target, "<!-- pmap:gate --> again")
        .await
        .unwrap();
    assert_eq!(outcome, CommentOutcome::Updated("31".into()));
}

#[tokio::test]
async fn azure_devops_status_and_new_thread() {
    let server = MockServer::start().await;
    let pr = "/org/proj/_apis/git/repositories/app/pullRequests/7";
    Mock::given(method("POST"))
        .and(path(format!("{pr}/statuses")))
        .and(query_param("api-version", "7.1"))
        .and(header("authorization", "Basic OnRvaw=="))
        .and(body_json(
            json!({"state": "failed", "description": "1 new high — blocking",
            "context": {"genre": "pmap", "name": "security"},
            "targetUrl": "https://pmap.example/api/v1/scans/1"}),
        ))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("{pr}/threads")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"value": [
            {"id": 3, "comments": [{"id": 1, "content": "someone else"}]}]})))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{pr}/threads")))
        .and(body_json(json!({"status": 1, "comments": [
            {"parentCommentId": 0, "content": "<!-- pmap:gate -->", "commentType": 1}]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 12})))
        .expect(1)
        .mount(&server)
        .await;

    let azure = client(ScmKind::AzureDevops, &server, token());
    let pr_target = target("app");
    azure
        .post_status(&pr_target, &report(GateState::Failure))
        .await
        .unwrap();
    let outcome = azure
        .upsert_comment(&pr_target, "<!-- pmap:gate -->")
        .await
        .unwrap();
    assert_eq!(outcome, CommentOutcome::Created("12".into()));
}

fn request(repo: &str, pipeline: &str) -> TriggerRequest {
    let mut variables = Map::new();
    variables.insert("sha".into(), json!(SHA));
    TriggerRequest {
        repo: repo.into(),
        pipeline: pipeline.into(),
        git_ref: "main".into(),
        variables,
    }
}

async fn trigger(vendor: Vendor, server: &MockServer, req: &TriggerRequest) {
    pipelines::trigger(vendor, http(server), Some(&server.uri()), token(), req)
        .await
        .unwrap();
}

#[tokio::test]
async fn pipeline_triggers_use_each_vendors_api() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(
            "/repos/acme/app/actions/workflows/scan.yml/dispatches",
        ))
        .and(body_json(json!({"ref": "main", "inputs": {"sha": SHA}})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v4/projects/group%2Fapp/pipeline"))
        .and(header("private-token", "tok"))
        .and(body_json(
            json!({"ref": "main", "variables": [{"key": "sha", "value": SHA}]}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 5})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/crumbIssuer/api/json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"crumb": "c-1", "crumbRequestField": "Jenkins-Crumb"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/job/team/job/scan/buildWithParameters"))
        .and(header("jenkins-crumb", "c-1"))
        .and(query_param("sha", SHA))
        .and(query_param("ref", "main"))
        .respond_with(ResponseTemplate::new(201).insert_header("location", "/queue/item/9/"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/org/proj/_apis/pipelines/42/runs"))
        .and(query_param("api-version", "7.1"))
        .and(body_json(json!({
            "resources": {"repositories": {"self": {"refName": "refs/heads/main"}}},
            "variables": {"sha": {"value": SHA}}})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/api/latest/queue/PROJ-PLAN"))
        .and(query_param("bamboo.variable.sha", SHA))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"buildResultKey": "PROJ-PLAN-3"})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/2.0/repositories/ws/app/pipelines/"))
        .and(body_json(json!({
            "target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                       "selector": {"type": "custom", "pattern": "security"}},
            "variables": [{"key": "sha", "value": SHA}]})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"uuid": "{u}"})))
        .expect(1)
        .mount(&server)
        .await;

    trigger(Vendor::Github, &server, &request("acme/app", "scan.yml")).await;
    trigger(Vendor::Gitlab, &server, &request("group/app", "")).await;
    trigger(Vendor::Jenkins, &server, &request("", "team/scan")).await;
    trigger(Vendor::AzureDevops, &server, &request("org/proj", "42")).await;
    trigger(Vendor::Bamboo, &server, &request("", "PROJ-PLAN")).await;
    trigger(Vendor::Bitbucket, &server, &request("ws/app", "security")).await;
}

/// Posts a GitHub status to a server that answers `status` (with `Retry-After: 1` for 429).
async fn status_against(status: u16) -> (Result<(), CallError>, usize) {
    let server = MockServer::start().await;
    let mut answer = ResponseTemplate::new(status).set_body_json(json!({"message": "no"}));
    if status == 429 {
        answer = answer.insert_header("retry-after", "1");
    }
    Mock::given(method("POST"))
        .respond_with(answer)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(if status >= 500 {
            status
        } else {
            201
        }))
        .mount(&server)
        .await;
    let result = client(ScmKind::Github, &server, token())
        .post_status(&target("acme/app"), &report(GateState::Success))
        .await;
    let calls = server.received_requests().await.unwrap().len();
    (result, calls)
}

#[tokio::test]
async fn errors_are_final_or_retried_by_kind() {
    for status in [401, 404, 422] {
        let (result, calls) = status_against(status).await;
        let err = result.unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert!(!err.is_transient());
        assert!(err.to_string().contains(&status.to_string()), "{err}");
        assert_eq!(calls, 1, "a {status} is not retried");
    }

    let started = std::time::Instant::now();
    let (result, calls) = status_against(429).await;
    result.unwrap();
    assert_eq!(calls, 2, "a 429 is retried once its Retry-After has passed");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));

    let (result, calls) = status_against(503).await;
    let err = result.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());
    assert_eq!(calls, 3, "server errors are retried, boundedly");
}

#[tokio::test]
async fn jenkins_without_csrf_protection_triggers_without_a_crumb() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/crumbIssuer/api/json"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/job/scan/buildWithParameters"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&server)
        .await;
    trigger(Vendor::Jenkins, &server, &request("", "scan")).await;
}
