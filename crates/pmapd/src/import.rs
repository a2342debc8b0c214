//! `pmapd import`: sends one result file to a running server's import endpoint with its CI
//! context and prints what the server counted. It streams the file, never parses it, and never
//! opens the database itself.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct ImportArgs {
    /// The scanner's result file.
    file: PathBuf,
    /// The server's base URL, such as `http://127.0.0.1:8080`.
    #[arg(long, env = "PMAP_SERVER")]
    server: String,
    /// An API token with the operator role.
    #[arg(long, env = "PMAP_TOKEN", hide_env_values = true)]
    token: String,
    #[arg(long)]
    repo_url: String,
    #[arg(long)]
    branch: Option<String>,
    #[arg(long)]
    commit_sha: Option<String>,
    #[arg(long)]
    pr_number: Option<i64>,
    /// The branch a pull request merges into (its baseline).
    #[arg(long)]
    target_branch: Option<String>,
    /// Detected by the server when absent.
    #[arg(long)]
    format: Option<String>,
    #[arg(long)]
    tool: Option<String>,
    #[arg(long)]
    integration_id: Option<String>,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(&args.file)
        .await
        .with_context(|| format!("opening {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let body =
        reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));

    let mut query: Vec<(&str, String)> = vec![("repo_url", args.repo_url)];
    let optional = [
        ("branch", args.branch),
        ("commit_sha", args.commit_sha),
        ("pr_number", args.pr_number.map(|n| n.to_string())),
        ("target_branch", args.target_branch),
        ("format", args.format),
        ("tool", args.tool),
        ("integration_id", args.integration_id),
    ];
    query.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));

    let url = format!("{}/api/v1/scans/import", args.server.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&args.token)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .query(&query)
        .body(body)
        .send()
        .await
        .with_context(|| format!("sending the scan to {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer["error"]["message"]
            .as_str()
            .unwrap_or("no error message");
        bail!("the server refused the scan ({status}): {message}");
    }
    print_counts(&answer["scan"]);
    Ok(())
}

fn print_counts(scan: &Value) {
    let counts = |c: &Value| {
        format!(
            "{} (critical {}, high {}, medium {}, low {}, info {})",
            c["total"], c["critical"], c["high"], c["medium"], c["low"], c["info"]
        )
    };
    println!("scan {}", scan["id"].as_str().unwrap_or("?"));
    println!("findings: {}", counts(&scan["counts"]));
    println!("filtered: {}", scan["counts"]["filtered"]);
    println!("new:      {}", counts(&scan["new_counts"]));
    println!("fixed:    {}", scan["fixed_count"]);
    match scan["baseline_scan_id"].as_str() {
        Some(baseline) => println!("baseline: {baseline}"),
        None => println!("baseline: none"),
    }
}
