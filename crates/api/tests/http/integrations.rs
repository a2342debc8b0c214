//! Integration CRUD: validation with details, write-only secrets, roles, cursor lists.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::{Role, TokenRecord};
use test_support::app::{TestApp, spawn};

use crate::support::{assert_error, get_json};

async fn token(app: &TestApp, role: Role) -> String {
    let store = store::connect(&app.db.url).await.unwrap();
    let token = api::auth::generate_token();
    store
        .insert_token(&TokenRecord {
            id: domain::ids::TokenId::new(),
            name: format!("{} bot", role.as_str()),
            role,
            token_hash: api::auth::hash_token(&token),
            created_at: Utc::now(),
        })
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn create_get_patch_delete_with_secrets_never_returned() {
    let app = spawn().await.unwrap();
    let body = json!({"name": "gitlab.example", "vendor": "gitlab", "secret": "first-secret",
        "config": {"api_base_url": "https://gitlab.example.com", "auth": {"token": "glpat-xyz"},
                   "auto_scan": {"enabled": true, "branches": ["main"]}}});
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let text = response.text().await.unwrap();
    assert!(
        !text.contains("first-secret") && !text.contains("glpat-xyz"),
        "{text}"
    );
    let created: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(created["archetype"], "ci_webhook");
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["config"]["auth"]["token"], "********");
    assert_eq!(created["config"]["auto_scan"]["branches"], json!(["main"]));
    let id = created["id"].as_str().unwrap();

    let path = format!("/api/v1/integrations/{id}");
    let (status, got) = get_json(&app, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "gitlab.example");

    let patch = json!({"name": "renamed", "secrets": []});
    let patched: Value = app
        .admin(Method::PATCH, &path)
        .json(&patch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["has_secret"], false);
    assert_eq!(
        patched["config"]["auth"]["token"], "********",
        "auth kept when config is not sent"
    );

    let deleted = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, body) = get_json(&app, &path).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let again = app.admin(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_configs_answer_422_with_every_field_named() {
    let app = spawn().await.unwrap();
    let body = json!({"name": "gh", "vendor": "github",
        "config": {"auto_scan": {"gate": {"block_on_new": ["urgent"]}}, "min_severity": "x"}});
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&body)
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
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "config.min_severity",
            "config.auto_scan.gate.block_on_new[0]"
        ]
    );

    for (body, field) in [
        (json!({"name": "x", "vendor": "circleci"}), "vendor"),
        (
            json!({"name": "x", "vendor": "github", "secret": ""}),
            "secret",
        ),
        (
            json!({"name": "x", "vendor": "github", "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "x", "vendor": "github", "secrets": ["long-enough", "tiny"]}),
            "secrets[1]",
        ),
        (
            json!({"name": "x", "vendor": "github", "secrets": ["aaaaaaaa", "bbbbbbbb", "cccccccc"]}),
            "secrets",
        ),
        (
            json!({"name": "x", "vendor": "github", "colour": "red"}),
            "colour",
        ),
        (json!({"vendor": "github"}), "name"),
    ] {
        let response = app
            .admin(Method::POST, "/api/v1/integrations")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap();
        assert_error(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(answer["error"]["details"][0]["field"], field, "{body}");
    }

    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_error(
        status,
        &response.json().await.unwrap(),
        StatusCode::BAD_REQUEST,
        "malformed_json",
    );
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .body("name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn roles_decide_what_a_token_may_do() {
    let app = spawn().await.unwrap();
    let viewer = token(&app, Role::Viewer).await;
    let operator = token(&app, Role::Operator).await;
    let list = app.url("/api/v1/integrations");
    let body = json!({"name": "x", "vendor": "github"});

    let none = app.client.get(&list).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let unknown = app
        .client
        .get(&list)
        .bearer_auth("pmap_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    let read = app
        .client
        .get(&list)
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    for token in [&viewer, &operator] {
        let write = app
            .client
            .post(&list)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), StatusCode::FORBIDDEN);
        let answer: Value = write.json().await.unwrap();
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    let events = app.url("/api/v1/events");
    let emit = json!({"type": "scan_finished", "payload": {}});
    let denied = app
        .client
        .post(&events)
        .bearer_auth(&operator)
        .json(&emit)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn lists_page_with_a_cursor() {
    let app = spawn().await.unwrap();
    let mut ids = Vec::new();
    for vendor in ["github", "gitlab", "jenkins"] {
        ids.push(app.create_integration(vendor, None).await.unwrap());
    }
    let (_, first) = get_json(&app, "/api/v1/integrations?limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = get_json(
        &app,
        &format!("/api/v1/integrations?limit=2&cursor={cursor}"),
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let (status, body) = get_json(&app, "/api/v1/integrations?limit=501").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_limit");
}

#[tokio::test]
async fn service_endpoints_answer() {
    let app = spawn().await.unwrap();
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let doc: Value = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/integrations",
        "/api/v1/integrations/{id}",
        "/api/v1/integrations/{id}/ci/events",
        "/api/v1/webhooks/ci/{vendor}/{integration_id}",
        "/api/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap().to_owned();
            assert!(
                ids.insert(id.clone()),
                "{method} {path}: operationId {id} repeats"
            );
            for name in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pmap_webhooks_accepted_total"),
        "series exist before traffic"
    );

    let (status, body) = get_json(&app, "/api/v1/nothing-here").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// A server whose master key cannot open the stored secrets refuses to start, rather than
/// answering every delivery to those integrations with an error; the right key starts it.
#[tokio::test]
async fn a_master_key_that_cannot_open_the_stored_secrets_is_refused_at_start() {
    let mut app = spawn().await.unwrap();
    app.create_integration("github", Some("a-long-random-secret"))
        .await
        .unwrap();
    app.stop().await.unwrap();

    let mut config = app.config.clone();
    config.master_key = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    ));
    let refused = api::start(&config).await.err().expect("start must fail");
    assert!(
        format!("{refused:#}").contains("master key does not open"),
        "{refused:#}"
    );

    let running = api::start(&app.config).await.unwrap();
    running.stop().await.unwrap();
}
