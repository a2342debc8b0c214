//! Scan import end to end: the real-world corpus through the HTTP endpoint, fingerprints that
//! survive line shifts, new and fixed against the right baseline, suppressions, reopening.

use reqwest::StatusCode;
use serde_json::Value;
use test_support::app::spawn;
use test_support::scan_corpus::{corpus_dir, counts_by_severity, expected, load_manifest};

use crate::scan_support::{REPO, all_items, events_of, import, import_ok, result, sarif};

#[tokio::test]
async fn every_corpus_file_imports_as_the_manifest_says() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("skipped: the scan corpus is not on this machine (set PMAP_CORPUS_DIR)");
        return;
    };
    let entries = load_manifest(&corpus).unwrap();
    assert!(entries.len() >= 40, "manifest shrank to {}", entries.len());
    let app = spawn().await.unwrap();

    let mut failures = Vec::new();
    for entry in &entries {
        let body = entry.body(&corpus).unwrap();
        let query = format!(
            "format={}&repo_url=https://git.example.test/{}&branch=main&commit_sha=abc",
            entry.format(),
            entry.file
        );
        let (status, answer) = import(&app, &query, body).await;
        if status != StatusCode::CREATED {
            failures.push(format!("{}: answered {status} {answer}", entry.file));
            continue;
        }
        let scan = &answer["scan"];
        let want = expected(entry);
        let stored = all_items(
            &app,
            &format!("/api/v1/scans/{}/findings", scan["id"].as_str().unwrap()),
        )
        .await;
        if stored.len() as i64 != want.findings || scan["counts"]["total"] != want.findings {
            failures.push(format!(
                "{}: {} stored, counts.total {}, expected {}",
                entry.file,
                stored.len(),
                scan["counts"]["total"],
                want.findings
            ));
        }
        if let Some(severities) = want.severities {
            let got = counts_by_severity(&scan["counts"]);
            if got != severities {
                failures.push(format!(
                    "{}: severities {got:?}, expected {severities:?}",
                    entry.file
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_moved_result_is_not_new_but_a_second_message_on_the_same_line_is() {
    let app = spawn().await.unwrap();
    let base = format!("repo_url={REPO}&branch=main");
    let first = import_ok(
        &app,
        &base,
        sarif(&[result("R1", 10, "eval of request data")]),
    )
    .await;
    assert_eq!(first["new_counts"]["total"], 1);
    assert_eq!(first["baseline_scan_id"], Value::Null);

    let moved = import_ok(
        &app,
        &base,
        sarif(&[result("R1", 14, "eval of request data")]),
    )
    .await;
    assert_eq!(moved["baseline_scan_id"], first["id"]);
    assert_eq!(moved["new_counts"]["total"], 0, "{moved}");
    assert_eq!(moved["fixed_count"], 0);

    let second = sarif(&[
        result("R1", 14, "eval of request data"),
        result("R1", 14, "exec of request data"),
    ]);
    let head = import_ok(&app, &base, second).await;
    assert_eq!(head["new_counts"]["total"], 1, "{head}");
    assert_eq!(head["new_counts"]["high"], 1);
    assert_eq!(head["counts"]["total"], 2);

    let new = all_items(
        &app,
        &format!(
            "/api/v1/scans/{}/findings?new=true",
            head["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(new.len(), 1);
    assert_eq!(
        new[0]["title"].as_str().map(|t| t.contains("exec")),
        Some(true),
        "{}",
        new[0]
    );
}

#[tokio::test]
async fn a_pull_request_is_compared_with_its_target_branch() {
    let app = spawn().await.unwrap();
    let main = sarif(&[
        result("R1", 1, "a"),
        result("R1", 2, "b"),
        result("R2", 3, "c"),
    ]);
    let on_main = import_ok(&app, &format!("repo_url={REPO}&branch=main"), main).await;
    // A later scan of another branch must not become the PR's baseline.
    import_ok(
        &app,
        &format!("repo_url={REPO}&branch=develop"),
        sarif(&[result("R1", 1, "a")]),
    )
    .await;

    let pr = sarif(&[
        result("R1", 1, "a"),
        result("R2", 3, "c"),
        result("R2", 9, "d"),
        result("R1", 5, "e"),
    ]);
    let query =
        format!("repo_url={REPO}&branch=feature&pr_number=7&target_branch=main&commit_sha=f00");
    let scan = import_ok(&app, &query, pr.clone()).await;
    assert_eq!(scan["baseline_scan_id"], on_main["id"]);
    assert_eq!(scan["new_counts"]["total"], 2, "{scan}");
    assert_eq!(scan["new_counts"]["high"], 2);
    assert_eq!(scan["fixed_count"], 1);
    assert_eq!(scan["pr_number"], 7);
    assert_eq!(scan["triggered_by"], "api:admin-token");

    // Without a target branch the default branch is assumed.
    let fallback = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=feature&pr_number=8"),
        pr,
    )
    .await;
    assert_eq!(fallback["baseline_scan_id"], on_main["id"]);
    assert_eq!(fallback["new_counts"]["total"], 2);

    // A PR reports what it would fix; the finding on main stays open.
    let open = all_items(
        &app,
        &format!("/api/v1/findings?repo_url={REPO}&status=fixed"),
    )
    .await;
    assert!(open.is_empty(), "{open:?}");

    let finished = events_of(&app, "scan_finished").await;
    let last = &finished.last().unwrap()["payload"];
    assert_eq!(last["new_total_count"], 2);
    assert_eq!(last["pr_number"], 8);
    assert_eq!(last["branch_name"], "feature");
    assert_eq!(last["total_count"], 4);

    let listed = all_items(&app, &format!("/api/v1/scans?repo_url={REPO}&pr_number=7")).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[tokio::test]
async fn without_a_baseline_every_unsuppressed_finding_is_new() {
    let app = spawn().await.unwrap();
    let mut suppressed = result("R2", 4, "tool says no");
    suppressed["suppressions"] = serde_json::json!([{"kind": "inSource"}]);
    let body = sarif(&[result("R1", 1, "a"), suppressed]);
    let scan = import_ok(&app, &format!("repo_url={REPO}&branch=main"), body.clone()).await;
    assert_eq!(scan["counts"]["total"], 2);
    assert_eq!(scan["new_counts"]["total"], 1, "{scan}");

    let findings = all_items(&app, &format!("/api/v1/findings?repo_url={REPO}")).await;
    let statuses: Vec<&str> = findings
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"open") && statuses.iter().any(|s| *s != "open"),
        "{statuses:?}"
    );

    // A suppressed result stays out of new_counts on a PR too.
    let pr = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=x&pr_number=3&target_branch=main"),
        body,
    )
    .await;
    assert_eq!(pr["new_counts"]["total"], 0, "{pr}");
}

#[tokio::test]
async fn a_finding_accepted_for_the_repository_is_never_new() {
    let app = spawn().await.unwrap();
    let base = format!("repo_url={REPO}&branch=main");
    import_ok(&app, &base, sarif(&[result("R1", 1, "a")])).await;
    let finding = &all_items(&app, "/api/v1/findings").await[0];
    let path = format!("/api/v1/findings/{}", finding["id"].as_str().unwrap());
    let response = app
        .admin(reqwest::Method::PATCH, &path)
        .json(&serde_json::json!({"status": "accepted_risk"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Gone, then back: still accepted, not new, not reopened.
    import_ok(&app, &base, sarif(&[])).await;
    let back = import_ok(
        &app,
        &format!("repo_url={REPO}&branch=other"),
        sarif(&[result("R1", 1, "a")]),
    )
    .await;
    assert_eq!(back["new_counts"]["total"], 0, "{back}");
    assert!(events_of(&app, "finding_reopened").await.is_empty());
}

#[tokio::test]
async fn a_fixed_finding_that_returns_is_reopened() {
    let app = spawn().await.unwrap();
    let base = format!("repo_url={REPO}&branch=main");
    import_ok(
        &app,
        &base,
        sarif(&[result("R1", 1, "a"), result("R1", 2, "b")]),
    )
    .await;
    let fixed = import_ok(&app, &base, sarif(&[result("R1", 1, "a")])).await;
    assert_eq!(fixed["fixed_count"], 1);
    let gone = all_items(
        &app,
        &format!("/api/v1/findings?repo_url={REPO}&status=fixed"),
    )
    .await;
    assert_eq!(gone.len(), 1);

    let again = import_ok(
        &app,
        &base,
        sarif(&[result("R1", 1, "a"), result("R1", 2, "b")]),
    )
    .await;
    assert_eq!(again["new_counts"]["total"], 1);
    let reopened = events_of(&app, "finding_reopened").await;
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["payload"]["finding"]["id"], gone[0]["id"]);
    assert_eq!(reopened[0]["payload"]["finding"]["status"], "open");
    assert_eq!(events_of(&app, "finding_created").await.len(), 2);
    assert_eq!(events_of(&app, "asset_created").await.len(), 1);

    let path = format!(
        "/api/v1/findings/{}/history",
        gone[0]["id"].as_str().unwrap()
    );
    let history = all_items(&app, &path).await;
    let statuses: Vec<&Value> = history.iter().map(|h| &h["new_value"]).collect();
    assert_eq!(statuses, ["open", "fixed", "open"], "{history:?}");
}
