//! `pmapd runbook validate` and `pmapd runbook apply`: runbooks as code. Validation is the
//! engine's, the same the API applies, and runs offline; `apply` creates or updates each
//! runbook by name through the API. This module holds no validation rules of its own.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;
use engine::runbooks::{Format, parse_document, validate};
use serde_json::Value;

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// Check runbook files (YAML or JSON) offline.
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Create or update runbooks by name on a server.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The server's base URL, such as `http://127.0.0.1:8080`.
        #[arg(long, env = "PMAP_SERVER")]
        server: String,
        /// An API token with the admin role.
        #[arg(long, env = "PMAP_TOKEN", hide_env_values = true)]
        token: String,
    },
}

pub async fn run(command: RunbookCommand) -> anyhow::Result<()> {
    match command {
        RunbookCommand::Validate { files } => {
            let mut bad = 0;
            for file in &files {
                match load(file) {
                    Ok(_) => println!("{}: ok", file.display()),
                    Err(err) => {
                        bad += 1;
                        println!("{}: {err:#}", file.display());
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} of {} files are invalid", files.len());
            }
            Ok(())
        }
        RunbookCommand::Apply {
            files,
            server,
            token,
        } => {
            let documents: Vec<(PathBuf, Value, String)> = files
                .iter()
                .map(|f| load(f).map(|(doc, name)| (f.clone(), doc, name)))
                .collect::<anyhow::Result<_>>()?;
            let client = reqwest::Client::new();
            let base = server.trim_end_matches('/');
            let existing = list(&client, base, &token).await?;
            for (file, document, name) in documents {
                let id = existing.iter().find(|r| r["name"] == name.as_str());
                let request = match id.and_then(|r| r["id"].as_str()) {
                    Some(id) => client.put(format!("{base}/api/v1/runbooks/{id}")),
                    None => client.post(format!("{base}/api/v1/runbooks")),
                };
                let response = request.bearer_auth(&token).json(&document).send().await?;
                let status = response.status();
                let body: Value = response.json().await.unwrap_or_default();
                if !status.is_success() {
                    bail!("{}: the server answered {status}: {body}", file.display());
                }
                println!(
                    "{}: {name} is at version {}",
                    file.display(),
                    body["version"]
                );
            }
            Ok(())
        }
    }
}

/// Reads and validates one file; returns the document and the runbook's name.
fn load(file: &Path) -> anyhow::Result<(Value, String)> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let format = match file.extension().and_then(|e| e.to_str()) {
        Some("json") => Format::Json,
        _ => Format::Yaml,
    };
    let document = parse_document(&bytes, format).map_err(|i| anyhow::anyhow!(i.message))?;
    match validate(&document) {
        Ok(runbook) => Ok((document, runbook.name)),
        Err(issues) => {
            let lines: Vec<String> = issues
                .iter()
                .map(|i| format!("  {}: {}", i.field, i.message))
                .collect();
            bail!("invalid:\n{}", lines.join("\n"))
        }
    }
}

async fn list(client: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Vec<Value>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v1/runbooks?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(items),
        }
    }
}
