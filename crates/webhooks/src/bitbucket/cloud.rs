//! Bitbucket Cloud payloads: `repo:push`, `pullrequest:*` and `repo:commit_status_*`.
//!
//! Cloud pull request payloads carry only 12-character commit hashes; they are kept as sent,
//! never padded or looked up.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::common;
use crate::{Delivery, ParseError, Parsed};

pub(super) fn parse(delivery: &Delivery<'_>, key: &str) -> Result<Parsed, ParseError> {
    let p: Payload = common::from_json(delivery.body)?;
    let mut e = match key {
        "repo:push" => push(p),
        k if k.starts_with("pullrequest:") => pull_request(k, p),
        "repo:commit_status_created" | "repo:commit_status_updated" => commit_status(p),
        _ => base(EventType::Other, p.repository, p.actor),
    };
    e.vendor_event = if key.is_empty() {
        "unknown".into()
    } else {
        key.into()
    };
    e.delivery_id = common::header(delivery.headers, "x-request-uuid").map(Into::into);
    Ok(Parsed::Event(Box::new(e)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Payload {
    repository: Option<Repository>,
    actor: Option<User>,
    push: Option<Push>,
    pullrequest: Option<PullRequest>,
    commit_status: Option<CommitStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Repository {
    full_name: Option<String>,
    links: Option<Links>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Links {
    html: Option<Href>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Href {
    href: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    username: Option<String>,
    nickname: Option<String>,
    display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Push {
    changes: Vec<Change>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Change {
    old: Option<RefState>,
    new: Option<RefState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RefState {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    target: Option<Commit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Commit {
    hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PullRequest {
    id: Option<i64>,
    source: Option<Endpoint>,
    destination: Option<Endpoint>,
    merge_commit: Option<Commit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Endpoint {
    branch: Option<Named>,
    commit: Option<Commit>,
    repository: Option<Repository>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CommitStatus {
    #[serde(deserialize_with = "common::loose_string")]
    key: Option<String>,
    state: Option<String>,
    name: Option<String>,
    refname: Option<String>,
    url: Option<String>,
    commit: Option<Commit>,
}

/// Cloud no longer shows user names everywhere: the nickname stands in, then the display name.
fn actor_name(user: Option<User>) -> Option<String> {
    let user = user?;
    common::non_empty(user.username)
        .or(common::non_empty(user.nickname))
        .or(common::non_empty(user.display_name))
}

fn base(event_type: EventType, repo: Option<Repository>, actor: Option<User>) -> NormalizedEvent {
    let mut e = NormalizedEvent::new(String::new(), event_type);
    if let Some(repo) = repo {
        e.repo = repo.full_name;
        e.repo_url = repo.links.and_then(|l| l.html).and_then(|h| h.href);
    }
    e.actor = actor_name(actor);
    e
}

/// A push may change several refs; the event describes the first, and counts the rest.
fn push(p: Payload) -> NormalizedEvent {
    let changes = p.push.map(|push| push.changes).unwrap_or_default();
    let change_count = changes.len();
    let change = changes.into_iter().next().unwrap_or_default();
    let named = change.new.as_ref().or(change.old.as_ref());
    let is_tag = named.and_then(|r| r.kind.as_deref()) == Some("tag");
    let name = named.and_then(|r| r.name.clone());
    let event_type = if is_tag {
        EventType::Tag
    } else {
        EventType::Push
    };

    let mut e = base(event_type, p.repository, p.actor);
    if is_tag {
        e.tag = name;
    } else {
        e.branch = name;
    }
    e.action = Some(match (&change.old, &change.new) {
        (None, Some(_)) => Action::Created,
        (Some(_), None) => Action::Deleted,
        _ => Action::Updated,
    });
    e.commit_sha = change.new.and_then(|r| r.target).and_then(|c| c.hash);
    e.before_sha = change.old.and_then(|r| r.target).and_then(|c| c.hash);
    if change_count > 1 {
        e.details
            .insert("ref_count".into(), Value::from(change_count));
    }
    e
}

fn pull_request(key: &str, p: Payload) -> NormalizedEvent {
    let action = match key {
        "pullrequest:created" => Action::Opened,
        "pullrequest:updated" => Action::Updated,
        "pullrequest:fulfilled" => Action::Merged,
        "pullrequest:rejected" => Action::Closed,
        _ => Action::Other,
    };
    let pr = p.pullrequest.unwrap_or_default();
    let mut e = base(EventType::PullRequest, p.repository, p.actor);
    e.action = Some(action);
    e.pr_number = pr.id;
    let source = pr.source.unwrap_or_default();
    e.branch = source.branch.and_then(|b| b.name);
    e.commit_sha = source.commit.and_then(|c| c.hash);
    if let Some(name) = source.repository.and_then(|r| r.full_name) {
        e.details.insert("head_repo".into(), Value::from(name));
    }
    e.target_branch = pr.destination.and_then(|d| d.branch).and_then(|b| b.name);
    if action == Action::Merged {
        e.merge_commit = pr.merge_commit.and_then(|c| c.hash);
    }
    e
}

fn commit_status(p: Payload) -> NormalizedEvent {
    let status = p.commit_status.unwrap_or_default();
    let mut e = base(EventType::Build, p.repository, p.actor);
    e.action = Some(
        status
            .state
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    e.build = Some(BuildInfo {
        status: status.state,
        url: status.url,
        number: None,
        pipeline_name: status.name,
    });
    e.branch = status.refname;
    e.commit_sha = status.commit.and_then(|c| c.hash);
    if let Some(key) = status.key {
        e.details.insert("status_key".into(), Value::from(key));
    }
    e
}
