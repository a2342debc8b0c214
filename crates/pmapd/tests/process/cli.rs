//! The client commands a pipeline runs: `pmapd import` against a running server, and
//! `pmapd runbook validate` / `apply` on definition files.

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use test_support::app::ADMIN_TOKEN;
use test_support::db::{FreshDatabase, fresh_database};

use crate::{free_port, pmapd, serve};

const REPO: &str = "https://git.example.test/acme/cli";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `pmapd import FILE` against the server on `port` with a branch push's context.
async fn import(db: &FreshDatabase, port: u16, file: &str, token: &str) -> Output {
    pmapd(db, port)
        .arg("import")
        .arg(fixture(file))
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .args(["--token", token, "--repo-url", REPO, "--branch", "main"])
        .args(["--commit-sha", "c0ffee0000000000000000000000000000000001"])
        .output()
        .await
        .unwrap()
}

async fn get(port: u16, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn import_prints_the_counts_of_the_file_and_exits_zero() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let _server = serve(&db, port).await;
    let created = pmapd(&db, port)
        .args([
            "token", "create", "--name", "pipeline", "--role", "operator",
        ])
        .output()
        .await
        .unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_owned();

    let output = import(&db, port, "cli-import.sarif", &token).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    // The fixture's six results: CC4's rule security-severity 9.8 outranks its level; CC2 and
    // CC3 take their rules' default levels; CC1's `none` is info.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    assert_eq!(
        lines[1],
        "findings: 6 (critical 1, high 1, medium 2, low 1, info 1)"
    );
    assert_eq!(lines[2], "filtered: 0");
    assert_eq!(
        lines[3],
        "new:      6 (critical 1, high 1, medium 2, low 1, info 1)"
    );
    assert_eq!(lines[4], "fixed:    0");
    assert_eq!(lines[5], "baseline: none");

    // The printed id is the stored scan, with the context given on the command line.
    let id = lines[0].strip_prefix("scan ").expect(&stdout);
    let scan = get(port, &format!("/api/v1/scans/{id}")).await;
    assert_eq!(scan["status"], "completed", "{scan}");
    assert_eq!(scan["repo_url"], REPO);
    assert_eq!(scan["branch_name"], "main");
    assert_eq!(scan["tool"], "CliCheck");
    assert_eq!(scan["counts"]["total"], 6);
    assert_eq!(scan["triggered_by"], "api:pipeline");
}

#[tokio::test]
async fn import_exits_non_zero_naming_a_bad_token_or_a_malformed_file() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let _server = serve(&db, port).await;

    let output = import(&db, port, "cli-import.sarif", "pmap_not-a-token").await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the server refused the scan (401 Unauthorized)"),
        "{stderr}"
    );

    let output = import(&db, port, "cli-malformed.sarif", ADMIN_TOKEN).await;
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the server refused the scan (422 Unprocessable Entity)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sarif: malformed input at line 8"),
        "names the format and the place: {stderr}"
    );
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));

    let scans = get(port, "/api/v1/scans").await;
    assert_eq!(scans["items"], serde_json::json!([]), "nothing stored");
}

#[tokio::test]
async fn runbook_validate_passes_a_good_file_and_names_the_problem_of_a_bad_one() {
    let db = fresh_database().await.unwrap();
    let good = pmapd(&db, free_port())
        .args(["runbook", "validate"])
        .arg(fixture("runbook-notify.yaml"))
        .output()
        .await
        .unwrap();
    assert!(good.status.success(), "{}", text(&good.stderr));
    assert!(text(&good.stdout).ends_with("runbook-notify.yaml: ok\n"));

    let bad = pmapd(&db, free_port())
        .args(["runbook", "validate"])
        .arg(fixture("runbook-notify.yaml"))
        .arg(fixture("runbook-unknown-event.yaml"))
        .output()
        .await
        .unwrap();
    assert!(!bad.status.success());
    let stdout = text(&bad.stdout);
    assert!(stdout.contains("runbook-notify.yaml: ok"), "{stdout}");
    assert!(
        stdout.contains("runbook-unknown-event.yaml: invalid:"),
        "{stdout}"
    );
    assert!(stdout.contains("triggers[0].event"), "{stdout}");
    assert!(stdout.contains("scan_exploded"), "{stdout}");
    assert!(
        text(&bad.stderr).contains("1 of 2 files are invalid"),
        "{}",
        text(&bad.stderr)
    );
}

#[tokio::test]
async fn runbook_apply_creates_by_name_then_updates_the_same_runbook() {
    let db = fresh_database().await.unwrap();
    let port = free_port();
    let _server = serve(&db, port).await;
    let file = db.data_dir.join("notify.yaml");
    let original = std::fs::read_to_string(fixture("runbook-notify.yaml")).unwrap();
    std::fs::write(&file, &original).unwrap();
    let apply = || {
        let mut command = pmapd(&db, port);
        command
            .args(["runbook", "apply"])
            .arg(&file)
            .args(["--server", &format!("http://127.0.0.1:{port}")])
            .args(["--token", ADMIN_TOKEN]);
        command
    };

    let first = apply().output().await.unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(
        text(&first.stdout).ends_with("cli notify is at version 1\n"),
        "{}",
        text(&first.stdout)
    );
    let listed = get(port, "/api/v1/runbooks").await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    let id = items[0]["id"].clone();
    assert_eq!(items[0]["version"], 1, "{listed}");
    assert_ne!(items[0]["throttle_seconds"], 60, "{listed}");

    std::fs::write(&file, format!("{original}throttle_seconds: 60\n")).unwrap();
    let second = apply().output().await.unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).ends_with("cli notify is at version 2\n"),
        "{}",
        text(&second.stdout)
    );
    let listed = get(port, "/api/v1/runbooks").await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "updated, not added: {listed}");
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["version"], 2);
    assert_eq!(items[0]["throttle_seconds"], 60);
}
