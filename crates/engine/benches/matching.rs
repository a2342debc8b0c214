//! The matcher's per-event cost: one enriched `finding_created` event against 1,000 active,
//! validated runbooks whose triggers carry five conditions each (one nested group), as the
//! matcher meets it for every event of the log.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use engine::runbooks::matcher::matches;
use engine::runbooks::{Runbook, validate};
use serde_json::{Value, json};

const RUNBOOKS: usize = 1_000;
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
const BRANCHES: [&str; 4] = ["main", "master", "develop", "release"];

/// A `finding_created` payload after enrichment: the finding, its scan and its asset.
fn payload() -> Value {
    json!({
        "scan_id": "0190a8c2-7d7e-7b3a-9f1e-000000000002",
        "finding": {
            "id": "0190a8c2-7d7e-7b3a-9f1e-2c4d5e6f7a8b",
            "fingerprint": "b1946ac92492d2347c6235b4d2611184",
            "severity": "high",
            "status": "open",
            "tool": "trivy",
            "rule_id": "CVE-2024-3094",
            "title": "xz backdoor",
            "file_path": "Dockerfile",
            "package_name": "xz-utils",
            "package_version": "5.6.0",
            "vulnerability_ids": ["CVE-2024-3094"],
            "tags": ["supply-chain", "pci"],
            "cvss_score": 10.0,
            "first_seen_at": "2025-05-30T08:00:00Z",
            "last_seen_at": "2025-06-01T08:00:00Z",
        },
        "scan": {"branch_name": "main", "pr_number": 42, "tool": "trivy",
            "commit_sha": "2222222222222222222222222222222222222222",
            "repo_url": "https://git.example.com/shop/checkout"},
        "asset": {"criticality": 4, "name": "checkout", "kind": "repository",
            "repo_url": "https://git.example.com/shop/checkout", "tags": ["internet-facing"]},
    })
}

/// Runbook `i`: five conditions with values that vary, so that some runbooks match and the
/// others fail at different conditions.
fn runbook(i: usize) -> Runbook {
    let document = json!({
        "name": format!("runbook {i}"),
        "triggers": [{"event": "finding_created", "conditions": {"op": "and", "conditions": [
            {"field": "finding.severity", "operator": "gte", "value": SEVERITIES[i % 5]},
            {"field": "scan.branch_name", "operator": "in", "value": [BRANCHES[i % 4], "main"]},
            {"op": "or", "conditions": [
                {"field": "finding.tags", "operator": "contains", "value": "pci"},
                {"field": "asset.criticality", "operator": "gt", "value": i % 6},
            ]},
            {"field": "finding.first_seen_at", "operator": "within_last",
                "value": format!("{}d", i % 9 + 1)},
        ]}}],
        "actions": [{"type": "http_request",
            "config": {"url": "https://hooks.example.com/{{ finding.id }}"}}],
    });
    validate(&document).unwrap_or_else(|issues| panic!("runbook {i} is invalid: {issues:?}"))
}

fn bench(c: &mut Criterion) {
    let runbooks: Vec<Runbook> = (0..RUNBOOKS).map(runbook).collect();
    let payload = payload();
    let now: DateTime<Utc> = "2025-06-01T12:00:00Z".parse().expect("valid timestamp");
    let matching = |event: &str| {
        runbooks
            .iter()
            .filter(|r| matches(r, black_box(event), black_box(&payload), black_box(now)))
            .count()
    };

    let matched = matching("finding_created");
    assert!(
        matched > 0 && matched < RUNBOOKS,
        "{matched} of {RUNBOOKS} matched"
    );
    assert_eq!(matching("scan_finished"), 0);

    c.bench_function("match 1 event against 1000 runbooks of 5 conditions", |b| {
        b.iter(|| matching("finding_created"))
    });
    c.bench_function("match 1 event of another type against 1000 runbooks", |b| {
        b.iter(|| matching("scan_finished"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
