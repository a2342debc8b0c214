//! Commands and signals: migrate, token create, graceful shutdown on SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use test_support::db::fresh_database;

use crate::{free_port, pmapd, serve};

#[tokio::test]
async fn migrate_then_token_create_prints_a_working_token() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let migrated = pmapd(&db, port).arg("migrate").output().await.unwrap();
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let created = pmapd(&db, port)
        .args(["token", "create", "--name", "pipeline", "--role", "viewer"])
        .output()
        .await
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("pmap_") && token.len() > 40, "{token}");

    let _server = serve(&db, port).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/integrations");
    let read = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let write = client
        .post(&url)
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "x", "vendor": "github"}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);

    let bad_role = pmapd(&db, port)
        .args(["token", "create", "--name", "x", "--role", "root"])
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(!bad_role.status.success());
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let mut server = serve(&db, port).await;
    let pid = server.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(20), server.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn a_bad_configuration_is_refused_naming_the_key() {
    let db = fresh_database().await.unwrap();
    let output = pmapd(&db, free_port())
        .env("PMAP_ENV", "staging")
        .arg("migrate")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PMAP_ENV"), "{stderr}");
}
