//! Broken and hostile result files: each is refused with 422 naming the format, nothing of it is
//! stored, and the branch's baseline is untouched.

use std::path::PathBuf;

use reqwest::StatusCode;
use test_support::app::spawn;

use crate::scan_support::{REPO, all_items, import, import_ok, result, sarif};
use crate::support::assert_error;

fn importer_fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../importers/tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[tokio::test]
async fn bad_files_are_refused_and_store_nothing() {
    let app = spawn().await.unwrap();
    let branch = format!("repo_url={REPO}&branch=main");
    let baseline = import_ok(
        &app,
        &branch,
        sarif(&[result("R1", 1, "a"), result("R1", 2, "b")]),
    )
    .await;

    let good = sarif(&[result("R1", 1, "a")]);
    let deep = format!(
        "{{\"version\":\"2.1.0\",\"runs\":[{}{}]}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let mut invalid_utf8 = sarif(&[result("R1", 1, "caf\u{e9}")]);
    let at = invalid_utf8
        .windows(2)
        .position(|w| w == "é".as_bytes())
        .unwrap();
    invalid_utf8[at] = 0xff;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "truncated JSON",
            "format=sarif",
            good[..good.len() / 2].to_vec(),
        ),
        (
            "truncated Trivy",
            "format=trivy",
            importer_fixture("truncated-trivy.json"),
        ),
        (
            "XXE",
            "format=checkmarx-sast",
            importer_fixture("xxe-checkmarx.xml"),
        ),
        (
            "billion laughs",
            "format=fortify",
            importer_fixture("billion-laughs.fvdl"),
        ),
        (
            "SARIF 1.0",
            "format=sarif",
            importer_fixture("sarif-version-1.sarif"),
        ),
        ("wrong format", "format=trivy", good.clone()),
        ("empty body", "format=sarif", Vec::new()),
        ("empty body, no format", "", Vec::new()),
        ("deep nesting", "format=sarif", deep.into_bytes()),
        ("invalid UTF-8", "format=sarif", invalid_utf8),
    ];
    for (what, format, body) in cases {
        let (status, answer) = import(&app, &format!("{branch}&{format}"), body).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::PAYLOAD_TOO_LARGE,
            "{what}: {status} {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: {answer}");
        if !format.is_empty() && what != "empty body" {
            let name = format.trim_start_matches("format=");
            assert!(
                message.contains(name) || message.contains("sarif"),
                "{what}: {message}"
            );
        }
    }

    let (status, answer) = import(&app, &format!("{branch}&format=cobol"), good.clone()).await;
    assert_error(
        status,
        &answer,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, _) = import(&app, "branch=main", good.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let scans = all_items(&app, &format!("/api/v1/scans?repo_url={REPO}")).await;
    assert_eq!(scans.len(), 1, "{scans:?}");
    assert_eq!(all_items(&app, "/api/v1/findings").await.len(), 2);

    let next = import_ok(&app, &branch, good).await;
    assert_eq!(next["baseline_scan_id"], baseline["id"]);
    assert_eq!(next["fixed_count"], 1);
}

#[tokio::test]
async fn viewers_may_not_import() {
    let app = spawn().await.unwrap();
    let response = app
        .client
        .post(app.url(&format!("/api/v1/scans/import?repo_url={REPO}")))
        .body(sarif(&[]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
