//! The real server on port 0 against a fresh database, and a client that knows its address and
//! an admin token. Tests wait on `/readyz`, never on a sleep.

use std::collections::HashMap;

use anyhow::Context;
use api::Config;
use serde_json::{Value, json};

use crate::db::{FreshDatabase, fresh_database};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub running: Option<api::Running>,
    pub config: Config,
    pub db: FreshDatabase,
}

/// Starts a server with the given environment overrides (`PMAP_ENV`, …).
pub async fn spawn_with(env: &[(&str, &str)]) -> anyhow::Result<TestApp> {
    let db = fresh_database().await?;
    let mut vars: HashMap<String, String> = HashMap::from([
        ("PMAP_LISTEN".into(), "127.0.0.1:0".into()),
        ("PMAP_DATA_DIR".into(), db.data_dir.display().to_string()),
        ("PMAP_DATABASE_URL".into(), db.url.clone()),
        ("PMAP_ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
    ]);
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let config = Config::load_from(None, |k| vars.get(k).cloned())?;
    let running = api::start(&config).await?;
    let base = format!("http://{}", running.addr);
    let client = reqwest::Client::new();
    wait_ready(&client, &base).await?;
    Ok(TestApp {
        base,
        client,
        running: Some(running),
        config,
        db,
    })
}

pub async fn spawn() -> anyhow::Result<TestApp> {
    spawn_with(&[]).await
}

async fn wait_ready(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    anyhow::bail!("server at {base} never became ready")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An authenticated request with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// Creates an integration and returns its id.
    pub async fn create_integration(
        &self,
        vendor: &str,
        secret: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut body = json!({"name": format!("{vendor} test"), "vendor": vendor});
        if let Some(secret) = secret {
            body["secret"] = json!(secret);
        }
        let response = self
            .admin(reqwest::Method::POST, "/api/v1/integrations")
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status() == 201,
            "create answered {}",
            response.status()
        );
        let created: Value = response.json().await?;
        Ok(created["id"].as_str().context("id")?.to_owned())
    }

    /// The integration's CI event audit (newest first).
    pub async fn audit(&self, integration: &str) -> anyhow::Result<Vec<Value>> {
        let path = format!("/api/v1/integrations/{integration}/ci/events");
        let body: Value = self
            .admin(reqwest::Method::GET, &path)
            .send()
            .await?
            .json()
            .await?;
        Ok(body["items"].as_array().cloned().unwrap_or_default())
    }

    /// Stops the server gracefully.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(running) = self.running.take() {
            running.stop().await?;
        }
        Ok(())
    }
}
