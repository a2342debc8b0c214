//! Matching one enriched event against 1,000 compiled five-condition groups, the load of one
//! platform event meeting a large runbook catalogue.

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use domain::condition::{CompiledGroup, ConditionGroup, evaluate};
use serde_json::{Value, json};

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
const BRANCHES: [&str; 4] = ["main", "master", "develop", "release"];

fn payload() -> Value {
    json!({
        "finding": {
            "id": "0190a8c2-7d7e-7b3a-9f1e-2c4d5e6f7a8b",
            "severity": "high",
            "status": "open",
            "tool": "trivy",
            "rule_id": "CVE-2024-3094",
            "title": "xz backdoor",
            "tags": ["supply-chain", "pci"],
            "cvss": 10.0,
            "first_seen_at": "2025-05-30T08:00:00Z",
        },
        "asset": {"criticality": "critical", "repo_url": "https://git.example.com/shop/checkout"},
        "scan": {"branch_name": "main", "pr_number": 42, "critical_count": 3},
    })
}

/// Runbook `i` of the catalogue: five conditions, nested one level, with values that vary so
/// that some groups match and most fail at different conditions.
fn group(i: usize) -> CompiledGroup {
    let source = json!({"op": "and", "conditions": [
        {"field": "finding.severity", "operator": "gte", "value": SEVERITIES[i % 5]},
        {"field": "scan.branch_name", "operator": "in", "value": [BRANCHES[i % 4], "main"]},
        {"op": "or", "conditions": [
            {"field": "finding.tags", "operator": "contains", "value": "pci"},
            {"field": "scan.critical_count", "operator": "gt", "value": i % 7},
        ]},
        {"field": "finding.first_seen_at", "operator": "within_last", "value": format!("{}d", i % 9)},
    ]});
    let group: ConditionGroup = serde_json::from_value(source).expect("group parses");
    group.compile().expect("group is valid")
}

fn bench(c: &mut Criterion) {
    let groups: Vec<CompiledGroup> = (0..1_000).map(group).collect();
    let payload = payload();
    let now: DateTime<Utc> = "2025-06-01T12:00:00Z".parse().expect("valid timestamp");

    let matched = groups.iter().filter(|g| evaluate(g, &payload, now)).count();
    assert!(
        matched > 0 && matched < groups.len(),
        "{matched} of 1000 matched"
    );

    c.bench_function("match 1 event against 1000 runbooks of 5 conditions", |b| {
        b.iter(|| {
            groups
                .iter()
                .filter(|g| evaluate(g, black_box(&payload), black_box(now)))
                .count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
