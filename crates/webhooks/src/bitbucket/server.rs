//! Bitbucket Server / Data Center payloads: `repo:refs_changed`, `pr:*`, and the
//! `diagnostics:ping` a "Test connection" sends, which is answered but never stored.
//!
//! Repositories are named `PROJECTKEY/slug` (personal ones `~user/slug`); their URL is the
//! HTTP clone link when the payload has one.

use domain::{Action, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{self, GitRef};
use crate::{Delivery, ParseError, Parsed};

pub(super) fn parse(delivery: &Delivery<'_>, key: &str) -> Result<Parsed, ParseError> {
    if key == "diagnostics:ping" {
        return Ok(Parsed::Diagnostic);
    }
    let p: Payload = common::from_json(delivery.body)?;
    let key = if key.is_empty() {
        p.event_key.clone().unwrap_or_default()
    } else {
        key.into()
    };
    if key == "diagnostics:ping" {
        return Ok(Parsed::Diagnostic);
    }
    let mut e = match key.as_str() {
        "repo:refs_changed" => refs_changed(p),
        k if k.starts_with("pr:") => pull_request(k, p),
        _ => {
            let mut e = NormalizedEvent::new(String::new(), EventType::Other);
            locate(&mut e, p.repository);
            e.actor = p.actor.and_then(|a| a.name);
            e
        }
    };
    e.vendor_event = if key.is_empty() {
        "unknown".into()
    } else {
        key
    };
    e.delivery_id = common::header(delivery.headers, "x-request-id").map(Into::into);
    Ok(Parsed::Event(Box::new(e)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Payload {
    event_key: Option<String>,
    actor: Option<User>,
    repository: Option<Repository>,
    changes: Vec<Change>,
    pull_request: Option<PullRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Repository {
    slug: Option<String>,
    project: Option<Project>,
    links: Option<Links>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Project {
    key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Links {
    clone: Vec<Link>,
    #[serde(rename = "self")]
    self_links: Vec<Link>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Link {
    href: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Change {
    ref_id: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<Ref>,
    from_hash: Option<String>,
    to_hash: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Ref {
    id: Option<String>,
    display_id: Option<String>,
    latest_commit: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    repository: Option<Repository>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct PullRequest {
    id: Option<i64>,
    from_ref: Option<Ref>,
    to_ref: Option<Ref>,
    properties: Option<Properties>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Properties {
    merge_commit: Option<MergeCommit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MergeCommit {
    id: Option<String>,
}

fn full_name(repo: &Repository) -> Option<String> {
    let key = repo.project.as_ref()?.key.as_deref()?;
    Some(format!("{key}/{}", repo.slug.as_deref()?))
}

fn locate(e: &mut NormalizedEvent, repo: Option<Repository>) {
    let Some(repo) = repo else { return };
    e.repo = full_name(&repo);
    let links = repo.links.unwrap_or_default();
    let http_clone = links
        .clone
        .into_iter()
        .find(|l| matches!(l.name.as_deref(), Some("http" | "https")))
        .and_then(|l| l.href);
    e.repo_url = http_clone.or_else(|| links.self_links.into_iter().find_map(|l| l.href));
}

/// A push may change several refs; the event describes the first, and counts the rest.
fn refs_changed(p: Payload) -> NormalizedEvent {
    let change_count = p.changes.len();
    let change = p.changes.into_iter().next().unwrap_or_default();
    let git_ref = change.git_ref.unwrap_or_default();
    let full = change.ref_id.or(git_ref.id);
    let is_tag = git_ref.kind.as_deref() == Some("TAG")
        || full.as_deref().is_some_and(|r| r.starts_with("refs/tags/"));
    let short = git_ref.display_id.or_else(|| {
        full.as_deref().map(|r| match common::git_ref(r) {
            GitRef::Branch(name) | GitRef::Tag(name) => name,
        })
    });

    let mut e = NormalizedEvent::new(
        String::new(),
        if is_tag {
            EventType::Tag
        } else {
            EventType::Push
        },
    );
    locate(&mut e, p.repository);
    if is_tag {
        e.tag = short;
    } else {
        e.branch = short;
    }
    e.action = Some(match change.kind.as_deref() {
        Some("ADD") => Action::Created,
        Some("DELETE") => Action::Deleted,
        _ => common::push_action(change.from_hash.as_deref(), change.to_hash.as_deref()),
    });
    e.commit_sha = match e.action {
        Some(Action::Deleted) => None,
        _ => common::real_sha(change.to_hash),
    };
    e.before_sha = common::non_empty(change.from_hash);
    if change_count > 1 {
        e.details
            .insert("ref_count".into(), Value::from(change_count));
    }
    e.actor = p.actor.and_then(|a| a.name);
    e
}

fn pull_request(key: &str, p: Payload) -> NormalizedEvent {
    let action = match key {
        "pr:opened" => Action::Opened,
        // New commits on the source, and a changed target, both call for a fresh gate.
        "pr:from_ref_updated" | "pr:modified" => Action::Updated,
        "pr:merged" => Action::Merged,
        "pr:declined" | "pr:deleted" => Action::Closed,
        "pr:reopened" => Action::Reopened,
        _ => Action::Other,
    };
    let pr = p.pull_request.unwrap_or_default();
    let from = pr.from_ref.unwrap_or_default();
    let to = pr.to_ref.unwrap_or_default();

    let mut e = NormalizedEvent::new(String::new(), EventType::PullRequest);
    if let Some(name) = from.repository.as_ref().and_then(full_name) {
        e.details.insert("head_repo".into(), Value::from(name));
    }
    locate(&mut e, to.repository.or(from.repository));
    e.action = Some(action);
    e.pr_number = pr.id;
    e.branch = from
        .display_id
        .or(from.id.as_deref().map(common::branch_name));
    e.target_branch = to.display_id.or(to.id.as_deref().map(common::branch_name));
    e.commit_sha = from.latest_commit;
    if action == Action::Merged {
        e.merge_commit = pr
            .properties
            .and_then(|p| p.merge_commit)
            .and_then(|m| m.id);
    }
    e.actor = p.actor.and_then(|a| a.name);
    e
}
