//! GitHub: `X-Hub-Signature-256` verification and the push, pull request, ping, workflow,
//! check and status events.
//!
//! The legacy SHA-1 `X-Hub-Signature` header is never looked at. Deliveries configured as
//! `application/x-www-form-urlencoded` carry the JSON in a `payload` field; the signature covers
//! the form bytes, so the form is only decoded here, after verification.

use domain::{Action, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

mod builds;

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
        "workflow_run" => builds::workflow_run(common::from_json(body)?),
        "workflow_job" => builds::workflow_job(common::from_json(body)?),
        "check_suite" => builds::check_suite(common::from_json(body)?),
        "check_run" => builds::check_run(common::from_json(body)?),
        "status" => builds::status(common::from_json(body)?),
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
pub(super) struct Repository {
    pub(super) full_name: Option<String>,
    pub(super) html_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct User {
    pub(super) login: Option<String>,
    pub(super) name: Option<String>,
}

/// The fields every event shares.
pub(super) fn base(
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
mod tests;
