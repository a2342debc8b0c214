//! Queued scans completed by their import: a CI event's auto-scan queues a scan for a pull-only
//! integration, and the import of its result (same integration, repository, commit, branch and
//! pull request) finishes that scan instead of adding one. Imports that differ in any of those
//! make new scans, and concurrent imports complete a queued scan once.

use reqwest::Method;
use serde_json::{Value, json};
use test_support::app::{TestApp, spawn};

use crate::gate::{corpus_entry, create, deliver, processed};
use crate::scan_support::{all_items, events_of, import_ok};
use crate::support::get_json;

/// One SARIF result of rule `rule` at `level` in `src/app.py`.
fn result(rule: &str, level: &str, line: i64) -> Value {
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": format!("{rule} at line {line}")},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "src/app.py"},
            "region": {"startLine": line}
        }}]
    })
}

/// A SARIF 2.1.0 log of the `QueueCheck` tool with these results.
fn sarif(results: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "QueueCheck"}}, "results": results}]
    }))
    .unwrap()
}

/// Delivers a corpus event to a GitHub integration whose auto-scan queues one scan for a new
/// Snyk integration. Returns the processed audit row, the Snyk integration's id and the
/// queued scan; `None` without the webhook corpus.
async fn queue_one(app: &TestApp, file: &str) -> Option<(Value, String, Value)> {
    let (dir, entry) = corpus_entry(file)?;
    let response = app
        .admin(Method::POST, "/api/v1/integrations")
        .json(&json!({"name": "snyk", "vendor": "snyk", "config": {}}))
        .send()
        .await
        .unwrap();
    let snyk: Value = response.json().await.unwrap();
    let snyk = snyk["id"].as_str().unwrap().to_owned();
    let config = json!({"auto_scan": {"branches": ["master"],
        "scans": [{"integration_id": snyk, "project_id": "p-1"}]}});
    let (_, source) = create(app, "github", config).await;
    let source = source["id"].as_str().unwrap().to_owned();

    deliver(app, &dir, &entry, &source).await;
    let row = processed(app, &source).await;
    assert_eq!(row["action_taken"], "scans_triggered", "{row}");
    assert_eq!(row["errors"], json!([]), "{row}");
    let queued = queued_scans(app).await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    Some((row, snyk, queued[0].clone()))
}

async fn queued_scans(app: &TestApp) -> Vec<Value> {
    all_items(app, "/api/v1/scans?status=queued").await
}

#[tokio::test]
async fn a_pull_request_scan_queued_by_a_ci_event_is_completed_by_its_import() {
    let app = spawn().await.unwrap();
    let Some((row, snyk, queued)) = queue_one(&app, "github/pull_request-opened.json").await else {
        eprintln!("webhook corpus not found; skipped");
        return;
    };
    let repo_url = "https://github.com/Codertocat/Hello-World";
    let sha = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";
    let trigger = format!("ci_event:{}", row["id"].as_str().unwrap());
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["triggered_by"], trigger);
    assert_eq!(queued["integration_id"], snyk.as_str());
    assert_eq!(queued["repo_url"], repo_url);
    assert_eq!(queued["commit_sha"], sha);
    assert_eq!(queued["branch_name"], "changes");
    assert_eq!(queued["pr_number"], 2);
    assert_eq!(queued["finished_at"], Value::Null);

    // The target branch's baseline: A (high) and B (medium).
    let baseline = import_ok(
        &app,
        &format!("repo_url={repo_url}&branch=master&commit_sha=0001"),
        sarif(&[result("A", "error", 10), result("B", "warning", 20)]),
    )
    .await;

    // The pull request's result: B again, C (high) and D (low) new, A fixed.
    let query = format!(
        "repo_url={repo_url}&branch=changes&commit_sha={sha}&pr_number=2&integration_id={snyk}"
    );
    let results = [
        result("B", "warning", 20),
        result("C", "error", 30),
        result("D", "note", 40),
    ];
    let scan = import_ok(&app, &query, sarif(&results)).await;
    assert_eq!(scan["id"], queued["id"], "{scan}");
    assert_eq!(scan["status"], "completed");
    assert_eq!(scan["triggered_by"], trigger);
    assert_eq!(
        scan["target_branch"], "master",
        "the CI event's target branch"
    );
    assert_eq!(scan["started_at"], queued["started_at"]);
    assert!(scan["finished_at"].is_string(), "{scan}");
    assert_eq!(scan["tool"], "QueueCheck");
    assert_eq!(scan["format"], "sarif");
    assert_eq!(scan["baseline_scan_id"], baseline["id"]);
    let counts = |c: &Value| {
        ["critical", "high", "medium", "low", "info", "total"].map(|k| c[k].as_u64().unwrap())
    };
    assert_eq!(counts(&scan["counts"]), [0, 1, 1, 1, 0, 3]);
    assert_eq!(counts(&scan["new_counts"]), [0, 1, 0, 1, 0, 2]);
    assert_eq!(scan["fixed_count"], 1);

    // Stored as answered, and no scan row besides the baseline and this one.
    let id = scan["id"].as_str().unwrap();
    let (_, stored) = get_json(&app, &format!("/api/v1/scans/{id}")).await;
    for field in [
        "status",
        "triggered_by",
        "counts",
        "new_counts",
        "fixed_count",
        "tool",
    ] {
        assert_eq!(stored[field], scan[field], "{field}");
    }
    assert!(queued_scans(&app).await.is_empty());
    assert_eq!(all_items(&app, "/api/v1/scans").await.len(), 2);
    let new = all_items(&app, &format!("/api/v1/scans/{id}/findings?new=true")).await;
    let mut rules: Vec<&str> = new.iter().map(|f| f["rule_id"].as_str().unwrap()).collect();
    rules.sort_unstable();
    assert_eq!(rules, ["C", "D"]);
    let finished = events_of(&app, "scan_finished").await;
    let last = &finished.last().unwrap()["payload"];
    assert_eq!(last["scan_id"], queued["id"]);
    assert_eq!(last["triggered_by"], trigger);

    // Nothing is left queued: the same upload again is a scan of its own.
    let again = import_ok(&app, &query, sarif(&results)).await;
    assert_ne!(again["id"], queued["id"]);
    assert_eq!(again["triggered_by"], "api:admin-token");
    assert_eq!(all_items(&app, "/api/v1/scans").await.len(), 3);
}

#[tokio::test]
async fn only_an_import_of_the_same_context_completes_a_queued_push_scan() {
    let app = spawn().await.unwrap();
    let Some((_, snyk, queued)) = queue_one(&app, "github/push.json").await else {
        eprintln!("webhook corpus not found; skipped");
        return;
    };
    let repo_url = "https://github.com/ailisp/gcbapp-buildconfig-example";
    let sha = "a21683865c088b5fe1906cf6552d15a285a4986d";
    assert_eq!(queued["pr_number"], Value::Null);
    let matching = format!("repo_url={repo_url}&branch=master&commit_sha={sha}");
    let body = || sarif(&[result("A", "error", 10)]);

    let other_snyk = app.create_integration("snyk", None).await.unwrap();
    let mismatches = [
        ("no integration", matching.clone()),
        (
            "another integration",
            format!("{matching}&integration_id={other_snyk}"),
        ),
        (
            "another commit",
            format!("repo_url={repo_url}&branch=master&commit_sha=ffff&integration_id={snyk}"),
        ),
        (
            "no commit",
            format!("repo_url={repo_url}&branch=master&integration_id={snyk}"),
        ),
        (
            "another branch",
            format!("repo_url={repo_url}&branch=dev&commit_sha={sha}&integration_id={snyk}"),
        ),
        (
            "no branch",
            format!("repo_url={repo_url}&commit_sha={sha}&integration_id={snyk}"),
        ),
        (
            "a pull request",
            format!("{matching}&pr_number=7&integration_id={snyk}"),
        ),
        (
            "another repository",
            format!("repo_url={repo_url}.git&branch=master&commit_sha={sha}&integration_id={snyk}"),
        ),
    ];
    for (n, (what, query)) in mismatches.iter().enumerate() {
        let scan = import_ok(&app, query, body()).await;
        assert_ne!(scan["id"], queued["id"], "{what}");
        assert_eq!(scan["triggered_by"], "api:admin-token", "{what}");
        assert_eq!(queued_scans(&app).await.len(), 1, "{what}");
        assert_eq!(
            all_items(&app, "/api/v1/scans").await.len(),
            n + 2,
            "{what}"
        );
    }

    let scan = import_ok(&app, &format!("{matching}&integration_id={snyk}"), body()).await;
    assert_eq!(scan["id"], queued["id"]);
    assert_eq!(scan["status"], "completed");
    assert_eq!(scan["counts"]["high"], 1);
    assert!(queued_scans(&app).await.is_empty());
    assert_eq!(
        all_items(&app, "/api/v1/scans").await.len(),
        mismatches.len() + 1
    );
}

#[tokio::test]
async fn concurrent_imports_complete_a_queued_scan_once() {
    let app = spawn().await.unwrap();
    let Some((_, snyk, queued)) = queue_one(&app, "github/push.json").await else {
        eprintln!("webhook corpus not found; skipped");
        return;
    };
    let base = "repo_url=https://github.com/ailisp/gcbapp-buildconfig-example&branch=master\
                &commit_sha=a21683865c088b5fe1906cf6552d15a285a4986d";
    // Each under its own tool, so PostgreSQL's per-repository-and-tool import lock does not
    // put them in line: only the queued row's claim stands between them.
    let queries: Vec<String> = (0..4)
        .map(|i| format!("{base}&integration_id={snyk}&tool=tool-{i}"))
        .collect();
    let imports = queries
        .iter()
        .map(|query| import_ok(&app, query, sarif(&[result("A", "error", 10)])));
    let scans = futures_util::future::join_all(imports).await;

    let completing: Vec<&Value> = scans.iter().filter(|s| s["id"] == queued["id"]).collect();
    assert_eq!(completing.len(), 1, "{scans:?}");
    assert_eq!(completing[0]["status"], "completed");
    let mut ids: Vec<&str> = scans.iter().map(|s| s["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "{scans:?}");
    assert!(queued_scans(&app).await.is_empty());
    assert_eq!(all_items(&app, "/api/v1/scans").await.len(), 4);
}
