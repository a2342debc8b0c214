//! Verify and parse of a ~10 KB GitHub push, the receiver's hot path.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::Vendor;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use webhooks::{Delivery, Secret};

const SECRET: &[u8] = b"bench-secret-0123456789abcdef";

/// A push of several commits to a repository with a full `repository` block, as GitHub sends.
fn push_body() -> Vec<u8> {
    let sha = |i: u32| format!("{:040x}", u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let user = json!({"name": "dev-one", "email": "dev-one@users.example", "username": "dev-one"});
    let commits: Vec<Value> = (0..10)
        .map(|i| {
            json!({
                "id": sha(i), "tree_id": sha(i + 100), "distinct": true,
                "message": format!("Change number {i}: adjust the widget tolerances and tests"),
                "timestamp": "2025-03-01T10:11:12Z",
                "url": format!("https://github.example/acme/payments/commit/{}", sha(i)),
                "author": user, "committer": user,
                "added": ["src/new_module.rs"], "removed": [],
                "modified": ["src/lib.rs", "src/widgets/tolerance.rs", "tests/widgets.rs"]
            })
        })
        .collect();
    let mut repository = serde_json::Map::new();
    repository.insert("full_name".into(), json!("acme/payments"));
    repository.insert(
        "html_url".into(),
        json!("https://github.example/acme/payments"),
    );
    for key in [
        "forks",
        "hooks",
        "events",
        "tags",
        "languages",
        "contributors",
        "merges",
    ] {
        let url = format!("https://api.github.example/repos/acme/payments/{key}");
        repository.insert(format!("{key}_url"), Value::from(url));
    }
    let body = json!({
        "ref": "refs/heads/main", "before": sha(900), "after": sha(7),
        "created": false, "deleted": false, "forced": false,
        "repository": repository, "pusher": {"name": "dev-one"},
        "sender": {"login": "dev-one", "id": 4242, "type": "User"},
        "commits": commits, "head_commit": commits.last().cloned(),
    });
    serde_json::to_vec_pretty(&body).expect("serializes")
}

fn bench(c: &mut Criterion) {
    let body = push_body();
    let signature = format!("sha256={}", webhooks::sign_hex(SECRET, &body));
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", HeaderValue::from_static("push"));
    headers.insert(
        "x-github-delivery",
        HeaderValue::from_static("bench-delivery"),
    );
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_str(&signature).expect("ascii"),
    );
    let delivery = Delivery {
        headers: &headers,
        query: None,
        body: &body,
    };
    let secrets = [Secret(SECRET.to_vec())];

    let mut group = c.benchmark_group("github_push");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify", |b| {
        b.iter(|| webhooks::verify(Vendor::Github, black_box(&delivery), &secrets))
    });
    group.bench_function("parse", |b| {
        b.iter(|| webhooks::parse(Vendor::Github, black_box(&delivery)).expect("parses"))
    });
    group.bench_function("verify_and_parse", |b| {
        b.iter(|| {
            let verified = webhooks::verify(Vendor::Github, black_box(&delivery), &secrets);
            (
                verified,
                webhooks::parse(Vendor::Github, &delivery).expect("parses"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
