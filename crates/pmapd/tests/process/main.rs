//! The `pmapd` binary as an operator runs it: separate processes, signals, kill -9.

mod cli;
mod durability;
mod lifecycle;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use test_support::app::ADMIN_TOKEN;
use test_support::db::FreshDatabase;
use tokio::process::{Child, Command};

pub const SECRET: &str = "process-test-secret";

/// A `pmapd` command with the environment of a fresh database.
pub fn pmapd(db: &FreshDatabase, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pmapd"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PMAP_LISTEN", format!("127.0.0.1:{port}"))
        .env("PMAP_DATA_DIR", &db.data_dir)
        .env("PMAP_DATABASE_URL", &db.url)
        .env("PMAP_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `pmapd serve` and waits until it is ready.
pub async fn serve(db: &FreshDatabase, port: u16) -> Child {
    let mut child = pmapd(db, port)
        .arg("serve")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    for _ in 0..1000 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            && r.status().is_success()
        {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("pmapd exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("pmapd never became ready");
}

pub async fn create_github_integration(port: u16) -> String {
    let created: Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/v1/integrations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "gh", "vendor": "github", "secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_owned()
}
