//! The webhook corpus: manifest loading, signing each payload the vendor's way, and
//! comparing a stored CI event with the manifest's `expect` block.
//!
//! Expected values only ever come from the manifest. This module never reads what the code
//! under test produced to decide what is right, and never writes into the corpus.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use domain::Vendor;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;

/// One payload of the corpus and what it must normalize to.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    /// Path of the payload, relative to the `webhooks` folder of the corpus.
    pub file: String,
    /// `github`, `gitlab`, `azure-devops`, `bitbucket-cloud`, `bitbucket-server`, `jenkins`,
    /// `bamboo`.
    pub vendor: String,
    #[serde(default)]
    pub event_header: Option<EventHeader>,
    #[serde(default)]
    pub other_headers: Map<String, Value>,
    pub expect: Value,
    #[serde(default)]
    pub notes: Option<String>,
}

/// The header that names the event; `name` is null for vendors without one and starts with
/// `(body)` where the name is in the payload.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EventHeader {
    pub name: Option<String>,
    pub value: Option<String>,
}

impl Entry {
    /// The payload's path under a corpus directory.
    pub fn path(&self, corpus: &Path) -> PathBuf {
        corpus.join("webhooks").join(&self.file)
    }

    /// The payload's bytes, exactly as stored.
    pub fn body(&self, corpus: &Path) -> anyhow::Result<Vec<u8>> {
        let path = self.path(corpus);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The corpus root (holding `webhooks/manifest.json`): `PMAP_CORPUS_DIR`, else the shared
/// folder beside the repository. `None` when it is not there, so tests can say they skipped.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PMAP_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    dir.join("webhooks/manifest.json").is_file().then_some(dir)
}

/// Every entry of `webhooks/manifest.json` under the corpus root.
pub fn load_manifest(corpus: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = corpus.join("webhooks/manifest.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The receiver an entry is posted to: both Bitbucket editions share one.
pub fn route_vendor(entry: &Entry) -> Vendor {
    match entry.vendor.as_str() {
        "bitbucket-cloud" | "bitbucket-server" => Vendor::Bitbucket,
        other => other
            .parse()
            .unwrap_or_else(|_| panic!("manifest names unknown vendor {other:?}")),
    }
}

/// The headers a correctly configured vendor would send with `body`: its credential for
/// `secret`, the manifest's event and other headers, and a fresh delivery id where the vendor
/// sends one (it replaces any id the manifest recorded, so repeated posts are not duplicates).
pub fn signed_headers(entry: &Entry, secret: &str, body: &[u8]) -> Vec<(String, String)> {
    let signature = format!("sha256={}", hmac_hex(secret.as_bytes(), body));
    let (auth, delivery_header): ((&str, String), Option<&str>) = match entry.vendor.as_str() {
        "github" => (
            ("X-Hub-Signature-256", signature),
            Some("X-GitHub-Delivery"),
        ),
        "gitlab" => (
            ("X-Gitlab-Token", secret.to_owned()),
            Some("X-Gitlab-Event-UUID"),
        ),
        "azure-devops" => {
            let basic = format!("Basic {}", BASE64.encode(format!("pmap:{secret}")));
            (("Authorization", basic), None)
        }
        "bitbucket-cloud" => (("X-Hub-Signature", signature), Some("X-Request-UUID")),
        "bitbucket-server" => (("X-Hub-Signature", signature), Some("X-Request-Id")),
        "jenkins" => (("X-Jenkins-Token", secret.to_owned()), None),
        "bamboo" => (("X-Bamboo-Token", secret.to_owned()), None),
        other => panic!("manifest names unknown vendor {other:?}"),
    };

    let mut headers = vec![(auth.0.to_owned(), auth.1)];
    if let Some(EventHeader {
        name: Some(name),
        value: Some(value),
    }) = &entry.event_header
        && !name.starts_with('(')
    {
        headers.push((name.clone(), value.clone()));
    }
    for (name, value) in &entry.other_headers {
        let replaced = delivery_header.is_some_and(|d| d.eq_ignore_ascii_case(name));
        if let (false, Some(value)) = (replaced, value.as_str()) {
            headers.push((name.clone(), value.to_owned()));
        }
    }
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), "application/json".into()));
    }
    if let Some(name) = delivery_header {
        headers.push((name.to_owned(), fresh_delivery_id()));
    }
    headers
}

/// Compares a normalized event (as `serde_json::to_value(NormalizedEvent)`) with an `expect`
/// block and returns one line per mismatch.
pub fn check_expect(expect: &Value, event: &Value) -> Vec<String> {
    let Some(expect) = expect.as_object() else {
        return vec!["expect block is not an object".into()];
    };
    let kind = expect.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut problems = Vec::new();
    for (key, wanted) in expect {
        let (label, actual, wanted) = match key.as_str() {
            "kind" => {
                let wanted = if kind == "deployment" { "other" } else { kind };
                (
                    "event_type".to_owned(),
                    field(event, &["event_type"]),
                    Value::from(wanted),
                )
            }
            "action" => match expected_action(kind, wanted) {
                Some((path, wanted)) => (path.join("."), field(event, &path), wanted),
                None => continue,
            },
            "commit" => (
                "commit_sha".into(),
                field(event, &["commit_sha"]),
                wanted.clone(),
            ),
            "before" => (
                "before_sha".into(),
                field(event, &["before_sha"]),
                wanted.clone(),
            ),
            "build_number" => {
                let wanted = as_text(wanted);
                (
                    "build.number".into(),
                    field(event, &["build", "number"]),
                    wanted,
                )
            }
            "pipeline" => (
                "build.pipeline_name".into(),
                field(event, &["build", "pipeline_name"]),
                wanted.clone(),
            ),
            "repo" | "repo_url" | "branch" | "target_branch" | "tag" | "pr_number" | "actor"
            | "merge_commit" => (key.clone(), field(event, &[key.as_str()]), wanted.clone()),
            _ => (
                format!("details.{key}"),
                field(event, &["details", key.as_str()]),
                wanted.clone(),
            ),
        };
        if !same(&actual, &wanted) {
            problems.push(format!("{label}: expected {wanted}, got {actual}"));
        }
    }
    problems
}

/// Where an expected `action` is compared, and with what.
fn expected_action(kind: &str, wanted: &Value) -> Option<(Vec<&'static str>, Value)> {
    match kind {
        // Builds keep the vendor's own result word; the verb is derived from it.
        "build" => Some((vec!["build", "status"], wanted.clone())),
        // A ping has no verb, whatever the manifest calls it.
        "ping" => Some((vec!["action"], Value::Null)),
        "pull_request" => {
            let verb = match wanted.as_str()? {
                "opened" => "opened",
                "synchronize" | "updated" | "modified" => "updated",
                "declined" | "closed" => "closed",
                "merged" => "merged",
                "reopened" => "reopened",
                other => other,
            };
            Some((vec!["action"], Value::from(verb)))
        }
        "deployment" => Some((vec!["details", "deployment_status"], wanted.clone())),
        _ => Some((vec!["action"], wanted.clone())),
    }
}

fn field(event: &Value, path: &[&str]) -> Value {
    let mut at = event;
    for key in path {
        match at.get(key) {
            Some(next) => at = next,
            None => return Value::Null,
        }
    }
    at.clone()
}

fn as_text(value: &Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.to_string()),
        other => other.clone(),
    }
}

/// JSON equality where numbers compare by value (`3` equals `3.0` and `3u64` equals `3i64`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        _ => a == b,
    }
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// A delivery id unique within the process and across runs.
fn fresh_delivery_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        n & 0xffff,
        nanos & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn matching_event_has_no_problems() {
        let expect = json!({
            "kind": "build", "action": "SUCCESS", "build_number": 18, "job": "asgard",
            "pipeline": "asgard", "commit": "abc", "pr_number": null
        });
        let event = json!({
            "event_type": "build", "action": "succeeded", "commit_sha": "abc", "pr_number": null,
            "build": {"status": "SUCCESS", "number": "18", "pipeline_name": "asgard"},
            "details": {"job": "asgard"}
        });
        assert_eq!(check_expect(&expect, &event), Vec::<String>::new());
    }

    #[test]
    fn mismatches_are_named() {
        let expect = json!({"kind": "pull_request", "action": "declined", "hook_id": 7});
        let event = json!({"event_type": "pull_request", "action": "merged", "details": {}});
        let problems = check_expect(&expect, &event);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("action:") || problems[1].starts_with("action:"));
    }

    #[test]
    fn ping_action_must_be_null() {
        let expect = json!({"kind": "ping", "action": "ping"});
        let ok = json!({"event_type": "ping", "action": null});
        let bad = json!({"event_type": "ping", "action": "other"});
        assert!(check_expect(&expect, &ok).is_empty());
        assert_eq!(check_expect(&expect, &bad).len(), 1);
    }

    #[test]
    fn delivery_ids_differ() {
        assert_ne!(fresh_delivery_id(), fresh_delivery_id());
    }
}
