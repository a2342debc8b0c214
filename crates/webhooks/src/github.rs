//! GitHub: `X-Hub-Signature-256` verification and the push, pull request, ping, workflow,
//! check and status events.
//!
//! The legacy SHA-1 `X-Hub-Signature` header is never looked at. Deliveries configured as
//! `application/x-www-form-urlencoded` carry the JSON in a `payload` field; the signature covers
//! the form bytes, so the form is only decoded here, after verification.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, Check};
use crate::common::{self, GitRef, Loose};
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    let check = match common::header_bytes(delivery.headers, "x-hub-signature-256") {
        Some(value) => auth::hex_hmac_sha256(value, delivery.body, secrets),
        None => Check::Absent,
    };
    Check::combine(&[check])
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let is_form = common::header(delivery.headers, "content-type").is_some_and(|ct| {
        ct.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if is_form {
        let raw =
            common::form_field(delivery.body, "payload").ok_or(ParseError::MissingFormPayload)?;
        let json = common::form_decode(raw).map_err(ParseError::InvalidForm)?;
        return parse_json(delivery, &json);
    }
    parse_json(delivery, delivery.body)
}

fn parse_json(delivery: &Delivery<'_>, body: &[u8]) -> Result<Parsed, ParseError> {
    let event = common::header(delivery.headers, "x-github-event").unwrap_or("unknown");
    let mut normalized = match event {
        "push" => push(common::from_json(body)?),
        "pull_request" => pull_request(common::from_json(body)?),
        "ping" => ping(common::from_json(body)?),
        "workflow_run" => workflow_run(common::from_json(body)?),
        "workflow_job" => workflow_job(common::from_json(body)?),
        "check_suite" => check_suite(common::from_json(body)?),
        "check_run" => check_run(common::from_json(body)?),
        "status" => status(common::from_json(body)?),
        _ => other(common::from_json(body)?),
    };
    normalized.vendor_event = match normalized
        .details
        .get("vendor_action")
        .and_then(Value::as_str)
    {
        Some(action) if normalized.event_type != EventType::Ping => format!("{event}.{action}"),
        _ => event.to_owned(),
    };
    normalized.delivery_id = common::header(delivery.headers, "x-github-delivery").map(Into::into);
    Ok(Parsed::Event(Box::new(normalized)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Repository {
    full_name: Option<String>,
    html_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    login: Option<String>,
    name: Option<String>,
}

/// The fields every event shares.
fn base(
    event_type: EventType,
    action: Option<String>,
    repo: Option<Repository>,
) -> NormalizedEvent {
    let mut e = NormalizedEvent::new(String::new(), event_type);
    if let Some(repo) = repo {
        e.repo = repo.full_name;
        e.repo_url = repo.html_url;
    }
    if let Some(action) = common::non_empty(action) {
        e.details
            .insert("vendor_action".into(), Value::from(action));
    }
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PushPayload {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    before: Option<String>,
    after: Option<String>,
    created: bool,
    deleted: bool,
    repository: Option<Repository>,
    sender: Option<User>,
    pusher: Option<User>,
}

fn push(p: PushPayload) -> NormalizedEvent {
    let git_ref = p.git_ref.as_deref().map(common::git_ref);
    let event_type = match git_ref {
        Some(GitRef::Tag(_)) => EventType::Tag,
        _ => EventType::Push,
    };
    let mut e = base(event_type, None, p.repository);
    match git_ref {
        Some(GitRef::Tag(t)) => e.tag = Some(t),
        Some(GitRef::Branch(b)) => e.branch = Some(b),
        None => {}
    }
    e.action = Some(if p.created {
        Action::Created
    } else if p.deleted {
        Action::Deleted
    } else {
        common::push_action(p.before.as_deref(), p.after.as_deref())
    });
    e.commit_sha = common::real_sha(p.after);
    e.before_sha = common::non_empty(p.before);
    e.actor = p
        .sender
        .and_then(|s| s.login)
        .or(p.pusher.and_then(|u| u.name));
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PullRequestPayload {
    action: Option<String>,
    number: Option<i64>,
    pull_request: Option<PullRequest>,
    changes: Option<PrChanges>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PullRequest {
    number: Option<i64>,
    merged: Option<bool>,
    merge_commit_sha: Option<String>,
    head: Option<PrRef>,
    base: Option<PrRef>,
    user: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PrRef {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: Option<String>,
    repo: Option<Repository>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PrChanges {
    base: Option<serde::de::IgnoredAny>,
}

fn pull_request(p: PullRequestPayload) -> NormalizedEvent {
    let pr = p.pull_request.unwrap_or_default();
    let merged = pr.merged == Some(true);
    let base_changed = p.changes.is_some_and(|c| c.base.is_some());
    let action = match p.action.as_deref() {
        Some("opened") => Action::Opened,
        Some("synchronize") => Action::Updated,
        Some("edited") if base_changed => Action::Updated,
        Some("closed") if merged => Action::Merged,
        Some("closed") => Action::Closed,
        Some("reopened") => Action::Reopened,
        _ => Action::Other,
    };
    let mut e = base(EventType::PullRequest, p.action, p.repository);
    e.action = Some(action);
    e.pr_number = p.number.or(pr.number);
    if let Some(head) = pr.head {
        e.branch = head.git_ref;
        e.commit_sha = head.sha;
        if let Some(name) = head.repo.and_then(|r| r.full_name) {
            e.details.insert("head_repo".into(), Value::from(name));
        }
    }
    e.target_branch = pr.base.and_then(|b| b.git_ref);
    if merged {
        e.merge_commit = pr.merge_commit_sha;
    }
    e.actor = p
        .sender
        .and_then(|s| s.login)
        .or(pr.user.and_then(|u| u.login));
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PingPayload {
    hook_id: Loose,
    repository: Option<Repository>,
    sender: Option<User>,
}

fn ping(p: PingPayload) -> NormalizedEvent {
    let mut e = base(EventType::Ping, None, p.repository);
    if let Some(id) = p.hook_id.to_json() {
        e.details.insert("hook_id".into(), id);
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Numbered {
    number: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkflowRunPayload {
    action: Option<String>,
    workflow_run: Option<WorkflowRun>,
    workflow: Option<Named>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkflowRun {
    id: Loose,
    name: Option<String>,
    head_branch: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    html_url: Option<String>,
    run_number: Loose,
    pull_requests: Vec<Numbered>,
}

/// A finished run reports its conclusion, a running one its status.
fn outcome(conclusion: Option<String>, status: Option<String>) -> Option<String> {
    common::non_empty(conclusion).or(common::non_empty(status))
}

fn build(status: Option<String>, url: Option<String>, number: &Loose) -> BuildInfo {
    BuildInfo {
        status,
        url,
        number: number.to_text(),
        pipeline_name: None,
    }
}

fn workflow_run(p: WorkflowRunPayload) -> NormalizedEvent {
    let run = p.workflow_run.unwrap_or_default();
    let mut e = base(EventType::Build, p.action, p.repository);
    let status = outcome(run.conclusion, run.status);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    let mut info = build(status, run.html_url, &run.run_number);
    info.pipeline_name = common::non_empty(run.name).or(p.workflow.and_then(|w| w.name));
    e.build = Some(info);
    e.branch = run.head_branch;
    e.commit_sha = run.head_sha;
    e.pr_number = run.pull_requests.first().and_then(|pr| pr.number);
    if let Some(id) = run.id.to_json() {
        e.details.insert("run_id".into(), id);
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkflowJobPayload {
    action: Option<String>,
    workflow_job: Option<WorkflowJob>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WorkflowJob {
    id: Loose,
    run_id: Loose,
    name: Option<String>,
    workflow_name: Option<String>,
    head_branch: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    html_url: Option<String>,
}

fn workflow_job(p: WorkflowJobPayload) -> NormalizedEvent {
    let job = p.workflow_job.unwrap_or_default();
    let mut e = base(EventType::Build, p.action, p.repository);
    let status = outcome(job.conclusion, job.status);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    let mut info = build(status, job.html_url, &job.run_id);
    info.pipeline_name = job.workflow_name;
    e.build = Some(info);
    e.branch = job.head_branch;
    e.commit_sha = job.head_sha;
    for (key, value) in [("job_id", &job.id), ("run_id", &job.run_id)] {
        if let Some(v) = value.to_json() {
            e.details.insert(key.into(), v);
        }
    }
    if let Some(name) = job.name {
        e.details.insert("job".into(), Value::from(name));
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckSuitePayload {
    action: Option<String>,
    check_suite: Option<CheckSuite>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckSuite {
    id: Loose,
    head_branch: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    pull_requests: Vec<Numbered>,
    app: Option<Named>,
}

fn check_suite(p: CheckSuitePayload) -> NormalizedEvent {
    let suite = p.check_suite.unwrap_or_default();
    let mut e = base(EventType::Build, p.action, p.repository);
    let status = outcome(suite.conclusion, suite.status);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    let mut info = build(status, None, &Loose::Null);
    info.pipeline_name = suite.app.and_then(|a| a.name);
    e.build = Some(info);
    e.branch = suite.head_branch;
    e.commit_sha = suite.head_sha;
    e.pr_number = suite.pull_requests.first().and_then(|pr| pr.number);
    if let Some(id) = suite.id.to_json() {
        e.details.insert("check_suite_id".into(), id);
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckRunPayload {
    action: Option<String>,
    check_run: Option<CheckRun>,
    repository: Option<Repository>,
    sender: Option<User>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CheckRun {
    id: Loose,
    name: Option<String>,
    head_sha: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    html_url: Option<String>,
    check_suite: Option<CheckSuite>,
    pull_requests: Vec<Numbered>,
}

fn check_run(p: CheckRunPayload) -> NormalizedEvent {
    let run = p.check_run.unwrap_or_default();
    let mut e = base(EventType::Build, p.action, p.repository);
    let status = outcome(run.conclusion, run.status);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    let mut info = build(status, run.html_url, &Loose::Null);
    info.pipeline_name = run.name;
    e.build = Some(info);
    e.commit_sha = run.head_sha;
    e.branch = run.check_suite.and_then(|s| s.head_branch);
    e.pr_number = run.pull_requests.first().and_then(|pr| pr.number);
    if let Some(id) = run.id.to_json() {
        e.details.insert("check_run_id".into(), id);
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StatusPayload {
    sha: Option<String>,
    state: Option<String>,
    context: Option<String>,
    target_url: Option<String>,
    branches: Vec<Named>,
    repository: Option<Repository>,
    sender: Option<User>,
}

/// A commit status names no branch: the branches whose head is the commit are only
/// candidates, so they go to `details` and `branch` stays null.
fn status(p: StatusPayload) -> NormalizedEvent {
    let mut e = base(EventType::Build, None, p.repository);
    e.action = Some(
        p.state
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    e.build = Some(BuildInfo {
        status: p.state,
        url: p.target_url,
        number: None,
        pipeline_name: p.context.clone(),
    });
    e.commit_sha = p.sha;
    let candidates: Vec<Value> = p
        .branches
        .into_iter()
        .filter_map(|b| b.name)
        .map(Value::from)
        .collect();
    e.details
        .insert("branch_candidates".into(), Value::Array(candidates));
    if let Some(context) = p.context {
        e.details.insert("context".into(), Value::from(context));
    }
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OtherPayload {
    action: Option<String>,
    repository: Option<Repository>,
    sender: Option<User>,
}

fn other(p: OtherPayload) -> NormalizedEvent {
    let mut e = base(EventType::Other, p.action, p.repository);
    e.actor = p.sender.and_then(|s| s.login);
    e
}

#[cfg(test)]
mod tests {
    use domain::Vendor;

    use super::*;
    use crate::testkit::{self, fixture, signature};

    const KEY: &str = "gh-secret";

    fn verify_sig(sig: &str, body: &[u8], configured: &[&str]) -> Verification {
        let pairs = [("x-hub-signature-256", sig)];
        testkit::verify_with(Vendor::Github, &pairs, None, body, configured)
    }

    #[test]
    fn signature_cases() {
        let body = fixture("github-push.json");
        let good = signature(KEY, &body);
        let sha1_mac = format!("sha1={}", &crate::sign_hex(KEY.as_bytes(), &body)[..40]);
        let cases = [
            ("correct", good.clone(), Verification::Valid { slot: 0 }),
            (
                "upper-case hex",
                good.to_uppercase().replacen("SHA256=", "sha256=", 1),
                Verification::Valid { slot: 0 },
            ),
            (
                "wrong secret",
                signature("other", &body),
                Verification::Invalid,
            ),
            (
                "all zeros",
                format!("sha256={}", "0".repeat(64)),
                Verification::Invalid,
            ),
            ("sha1 prefix", sha1_mac, Verification::Invalid),
            (
                "sha1 prefix, sha256 mac",
                good.replacen("sha256=", "sha1=", 1),
                Verification::Invalid,
            ),
            (
                "short hex",
                good[..good.len() - 2].to_owned(),
                Verification::Invalid,
            ),
            ("long hex", format!("{good}00"), Verification::Invalid),
            (
                "not hex",
                format!("sha256={}", "zz".repeat(32)),
                Verification::Invalid,
            ),
        ];
        for (name, sig, expected) in cases {
            assert_eq!(verify_sig(&sig, &body, &[KEY]), expected, "{name}");
        }
    }

    #[test]
    fn body_changed_after_signing_fails() {
        let body = fixture("github-push.json");
        let sig = signature(KEY, &body);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let reserialized = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialized, body);
        assert_eq!(
            verify_sig(&sig, &reserialized, &[KEY]),
            Verification::Invalid
        );
    }

    #[test]
    fn missing_and_legacy_only_headers_are_missing() {
        let body = fixture("github-push.json");
        let none = testkit::verify_with(Vendor::Github, &[], None, &body, &[KEY]);
        assert_eq!(none, Verification::Missing);
        let legacy = format!("sha1={}", "ab".repeat(20));
        let pairs = [("x-hub-signature", legacy.as_str())];
        let legacy_only = testkit::verify_with(Vendor::Github, &pairs, None, &body, &[KEY]);
        assert_eq!(legacy_only, Verification::Missing);
    }

    #[test]
    fn empty_secret_never_validates() {
        let body = fixture("github-push.json");
        assert_eq!(
            verify_sig(&signature("", &body), &body, &[""]),
            Verification::Invalid
        );
        assert_eq!(
            verify_sig(&signature("", &body), &body, &["", KEY]),
            Verification::Invalid
        );
    }

    #[test]
    fn previous_secret_matches_slot_one() {
        let body = fixture("github-push.json");
        let sig = signature("old-secret", &body);
        assert_eq!(
            verify_sig(&sig, &body, &[KEY, "old-secret"]),
            Verification::Valid { slot: 1 }
        );
    }

    #[test]
    fn push_is_normalized() {
        let pairs = [("x-github-event", "push"), ("x-github-delivery", "d-1")];
        let e = testkit::event(Vendor::Github, &pairs, &fixture("github-push.json"));
        assert_eq!(
            (e.event_type, e.action),
            (EventType::Push, Some(Action::Updated))
        );
        assert_eq!(e.vendor_event, "push");
        assert_eq!(e.repo.as_deref(), Some("pmap-test/widgets"));
        assert_eq!(e.branch.as_deref(), Some("main"));
        assert_eq!(
            e.commit_sha.as_deref(),
            Some("2222222222222222222222222222222222222222")
        );
        assert_eq!(
            e.before_sha.as_deref(),
            Some("1111111111111111111111111111111111111111")
        );
        assert_eq!(e.actor.as_deref(), Some("dev-one"));
        assert_eq!(e.delivery_id.as_deref(), Some("d-1"));
    }

    #[test]
    fn synchronize_is_an_update_without_merge_commit() {
        let pairs = [("x-github-event", "pull_request")];
        let e = testkit::event(
            Vendor::Github,
            &pairs,
            &fixture("github-pr-synchronize.json"),
        );
        assert_eq!(e.action, Some(Action::Updated));
        assert_eq!(e.vendor_event, "pull_request.synchronize");
        assert_eq!(e.pr_number, Some(17));
        assert_eq!(
            (e.branch.as_deref(), e.target_branch.as_deref()),
            (Some("feature/gears"), Some("main"))
        );
        assert_eq!(e.merge_commit, None);
    }

    #[test]
    fn form_encoded_delivery_is_verified_then_decoded() {
        let json = fixture("github-push.json");
        let encoded: String = json
            .iter()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (*b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let form = format!("payload={encoded}");
        let sig = signature(KEY, form.as_bytes());
        let pairs = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-hub-signature-256", sig.as_str()),
            ("x-github-event", "push"),
        ];
        let verified = testkit::verify_with(Vendor::Github, &pairs, None, form.as_bytes(), &[KEY]);
        assert_eq!(verified, Verification::Valid { slot: 0 });
        let e = testkit::event(Vendor::Github, &pairs, form.as_bytes());
        assert_eq!(
            e.commit_sha.as_deref(),
            Some("2222222222222222222222222222222222222222")
        );

        let form_pairs = [("content-type", "application/x-www-form-urlencoded")];
        let missing = testkit::parse_with(Vendor::Github, &form_pairs, b"other=1");
        assert_eq!(missing, Err(ParseError::MissingFormPayload));
        let broken = testkit::parse_with(Vendor::Github, &form_pairs, b"payload=%7");
        assert!(
            matches!(broken, Err(ParseError::InvalidForm(_))),
            "{broken:?}"
        );
    }

    #[test]
    fn bodies_that_are_not_objects_are_rejected() {
        let pairs = [("x-github-event", "push")];
        let not_json = testkit::parse_with(Vendor::Github, &pairs, b"{\"ref\": ");
        assert!(
            matches!(not_json, Err(ParseError::InvalidJson(_))),
            "{not_json:?}"
        );
        let garbage = testkit::parse_with(Vendor::Github, &pairs, b"hello");
        assert!(
            matches!(garbage, Err(ParseError::InvalidJson(_))),
            "{garbage:?}"
        );
        let array = testkit::parse_with(Vendor::Github, &pairs, b" [1, 2]");
        assert_eq!(array, Err(ParseError::NotAnObject));
        let string = testkit::parse_with(Vendor::Github, &pairs, b"\"push\"");
        assert_eq!(string, Err(ParseError::NotAnObject));
    }

    #[test]
    fn every_event_accepts_an_empty_object() {
        let body = fixture("github-empty-object.json");
        for event in [
            "push",
            "pull_request",
            "ping",
            "workflow_run",
            "workflow_job",
            "check_suite",
            "check_run",
            "status",
            "issues",
        ] {
            let e = testkit::event(Vendor::Github, &[("x-github-event", event)], &body);
            assert_eq!(e.repo, None, "{event}");
            assert_eq!(e.commit_sha, None, "{event}");
        }
        let unknown = testkit::event(Vendor::Github, &[("x-github-event", "issues")], &body);
        assert_eq!(
            (unknown.event_type, unknown.vendor_event.as_str()),
            (EventType::Other, "issues")
        );
    }

    #[test]
    fn ping_has_no_action() {
        let body = br#"{"zen": "z", "hook_id": 5, "action": "odd"}"#;
        let e = testkit::event(Vendor::Github, &[("x-github-event", "ping")], body);
        assert_eq!((e.event_type, e.action), (EventType::Ping, None));
        assert_eq!(e.details.get("hook_id"), Some(&Value::from(5)));
    }
}
