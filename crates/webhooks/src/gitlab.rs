//! GitLab: the `X-Gitlab-Token` shared token or the signing token (Standard Webhooks
//! headers), and the push, tag push, merge request, pipeline and job events, from project and
//! system hooks alike.
//!
//! The event kind comes from the body's `object_kind` (system hooks: `event_name`), falling
//! back to the `X-Gitlab-Event` header. This module never trusts the human `project_name` for
//! the repository path: that is `path_with_namespace` or the path of the project's homepage.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, Check};
use crate::common::{self, GitRef, Loose};
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    let headers = delivery.headers;
    let token = match common::header_bytes(headers, "x-gitlab-token") {
        Some(value) => auth::token(value, secrets),
        None => Check::Absent,
    };
    let signed = match common::header_bytes(headers, "webhook-signature") {
        Some(signature) => {
            let id = common::header_bytes(headers, "webhook-id");
            let timestamp = common::header_bytes(headers, "webhook-timestamp");
            match (id, timestamp) {
                (Some(id), Some(ts)) => {
                    auth::standard_webhooks(id, ts, signature, delivery.body, secrets)
                }
                _ => Check::Failed,
            }
        }
        None => Check::Absent,
    };
    Check::combine(&[token, signed])
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    // A kind this module does not know may reuse a field name with another type; it is then
    // read through the smallest shape so that it is still accepted as `other`.
    let (p, full_shape) = match common::from_json::<Payload>(delivery.body) {
        Ok(p) => (p, true),
        Err(first) => {
            let minimal: Minimal = common::from_json(delivery.body).map_err(|_| first)?;
            (minimal.into(), false)
        }
    };
    let header_event = common::header(delivery.headers, "x-gitlab-event");
    let kind = common::non_empty(p.object_kind.clone())
        .or_else(|| common::non_empty(p.event_name.clone()))
        .or_else(|| header_event.and_then(kind_from_header).map(Into::into))
        .unwrap_or_default();
    let vendor_event = header_event
        .map(Into::into)
        .or_else(|| common::non_empty(Some(kind.clone())))
        .unwrap_or_else(|| "unknown".into());

    let mut e = match kind.as_str() {
        _ if !full_shape => other(p),
        "push" | "tag_push" => push(p),
        "merge_request" => merge_request(p),
        "pipeline" => pipeline(p),
        "build" => job(p),
        _ => other(p),
    };
    e.vendor_event = vendor_event;
    e.delivery_id = ["idempotency-key", "x-gitlab-event-uuid", "webhook-id"]
        .iter()
        .find_map(|name| common::header(delivery.headers, name))
        .map(Into::into);
    Ok(Parsed::Event(Box::new(e)))
}

fn kind_from_header(header: &str) -> Option<&'static str> {
    Some(match header {
        "Push Hook" => "push",
        "Tag Push Hook" => "tag_push",
        "Merge Request Hook" => "merge_request",
        "Pipeline Hook" => "pipeline",
        "Job Hook" => "build",
        _ => return None,
    })
}

/// The union of the fields the supported events carry; each event reads its own.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Payload {
    object_kind: Option<String>,
    event_name: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    tag: Option<bool>,
    before: Option<String>,
    after: Option<String>,
    sha: Option<String>,
    user_username: Option<String>,
    user: Option<User>,
    project: Option<Project>,
    repository: Option<Repository>,
    object_attributes: Option<Attributes>,
    merge_request: Option<MergeRequestRef>,
    build_id: Loose,
    build_name: Option<String>,
    build_status: Option<String>,
    pipeline_id: Loose,
}

/// The fields of any event, for kinds the full shape cannot read.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Minimal {
    object_kind: Option<String>,
    event_name: Option<String>,
    user_username: Option<String>,
}

impl From<Minimal> for Payload {
    fn from(m: Minimal) -> Self {
        Payload {
            object_kind: m.object_kind,
            event_name: m.event_name,
            user_username: m.user_username,
            ..Payload::default()
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct User {
    username: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Project {
    path_with_namespace: Option<String>,
    web_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Repository {
    homepage: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Attributes {
    id: Loose,
    iid: Loose,
    action: Option<String>,
    state: Option<String>,
    source_branch: Option<String>,
    target_branch: Option<String>,
    last_commit: Option<Commit>,
    merge_commit_sha: Option<String>,
    url: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    tag: Option<bool>,
    sha: Option<String>,
    status: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Commit {
    #[serde(deserialize_with = "common::loose_string")]
    id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct MergeRequestRef {
    iid: Loose,
}

/// Repository name and URL: the project block when present (push, merge request,
/// pipeline), else the repository homepage (job events have no project block).
fn locate(e: &mut NormalizedEvent, project: Option<Project>, repository: Option<Repository>) {
    let homepage = repository.and_then(|r| common::non_empty(r.homepage));
    let project = project.unwrap_or_default();
    e.repo = common::non_empty(project.path_with_namespace)
        .or_else(|| homepage.as_deref().and_then(path_of_url));
    e.repo_url = common::non_empty(project.web_url).or(homepage);
}

/// `group/sub/project` from `https://host/group/sub/project`.
fn path_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let (_, path) = rest.split_once('/')?;
    let path = path.trim_matches('/');
    (!path.is_empty()).then(|| path.to_owned())
}

fn set_ref(e: &mut NormalizedEvent, git_ref: Option<String>, is_tag: bool) {
    let Some(name) = git_ref else { return };
    match common::git_ref(&name) {
        GitRef::Tag(tag) => e.tag = Some(tag),
        GitRef::Branch(_) if is_tag => e.tag = Some(name),
        GitRef::Branch(branch) => e.branch = Some(branch),
    }
}

fn actor(p_user: Option<User>, username: Option<String>) -> Option<String> {
    common::non_empty(username).or_else(|| p_user.and_then(|u| common::non_empty(u.username)))
}

fn push(p: Payload) -> NormalizedEvent {
    let is_tag = p.object_kind.as_deref() == Some("tag_push")
        || p.git_ref
            .as_deref()
            .is_some_and(|r| r.starts_with("refs/tags/"));
    let event_type = if is_tag {
        EventType::Tag
    } else {
        EventType::Push
    };
    let mut e = NormalizedEvent::new(String::new(), event_type);
    locate(&mut e, p.project, p.repository);
    set_ref(&mut e, p.git_ref, is_tag);
    e.action = Some(common::push_action(p.before.as_deref(), p.after.as_deref()));
    e.commit_sha = common::real_sha(p.after);
    e.before_sha = common::non_empty(p.before);
    e.actor = actor(p.user, p.user_username);
    e
}

fn merge_request(p: Payload) -> NormalizedEvent {
    let attrs = p.object_attributes.unwrap_or_default();
    let action = match attrs.action.as_deref().or(attrs.state.as_deref()) {
        Some("open" | "opened") => Action::Opened,
        Some("update") => Action::Updated,
        Some("close" | "closed") => Action::Closed,
        Some("merge" | "merged") => Action::Merged,
        Some("reopen") => Action::Reopened,
        _ => Action::Other,
    };
    let mut e = NormalizedEvent::new(String::new(), EventType::PullRequest);
    locate(&mut e, p.project, p.repository);
    e.action = Some(action);
    e.branch = attrs.source_branch;
    e.target_branch = attrs.target_branch;
    e.commit_sha = attrs.last_commit.and_then(|c| c.id);
    e.pr_number = attrs.iid.to_i64();
    if action == Action::Merged {
        e.merge_commit = common::non_empty(attrs.merge_commit_sha);
    }
    if let Some(action) = attrs.action {
        e.details
            .insert("vendor_action".into(), Value::from(action));
    }
    e.actor = actor(p.user, p.user_username);
    e
}

fn build_event(status: Option<String>) -> NormalizedEvent {
    let mut e = NormalizedEvent::new(String::new(), EventType::Build);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    e.build = Some(BuildInfo {
        status,
        ..BuildInfo::default()
    });
    e
}

fn pipeline(p: Payload) -> NormalizedEvent {
    let attrs = p.object_attributes.unwrap_or_default();
    let mut e = build_event(attrs.status);
    locate(&mut e, p.project, p.repository);
    set_ref(&mut e, attrs.git_ref, attrs.tag == Some(true));
    e.commit_sha = attrs.sha;
    e.pr_number = p.merge_request.and_then(|mr| mr.iid.to_i64());
    if let Some(build) = e.build.as_mut() {
        build.number = attrs.id.to_text();
        build.url = attrs.url;
        build.pipeline_name = common::non_empty(attrs.name);
    }
    if let Some(id) = attrs.id.to_json() {
        e.details.insert("pipeline_id".into(), id);
    }
    e.actor = actor(p.user, None);
    e
}

fn job(p: Payload) -> NormalizedEvent {
    let mut e = build_event(p.build_status);
    locate(&mut e, p.project, p.repository);
    set_ref(&mut e, p.git_ref, p.tag == Some(true));
    e.commit_sha = p.sha;
    if let Some(build) = e.build.as_mut() {
        build.number = p.build_id.to_text();
        build.pipeline_name = p.build_name;
    }
    for (key, value) in [("job_id", &p.build_id), ("pipeline_id", &p.pipeline_id)] {
        if let Some(v) = value.to_json() {
            e.details.insert(key.into(), v);
        }
    }
    e.actor = actor(p.user, None);
    e
}

fn other(p: Payload) -> NormalizedEvent {
    let mut e = NormalizedEvent::new(String::new(), EventType::Other);
    locate(&mut e, p.project, p.repository);
    e.actor = actor(p.user, p.user_username);
    e
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use domain::Vendor;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;
    use crate::testkit::{self, fixture};

    fn standard_signature(key: &str, id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        let encoded = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("v1,{encoded}")
    }

    #[test]
    fn shared_token() {
        let body = fixture("gitlab-mr-update.json");
        let verify = |pairs: &[(&str, &str)], configured: &[&str]| {
            testkit::verify_with(Vendor::Gitlab, pairs, None, &body, configured)
        };
        assert_eq!(
            verify(&[("x-gitlab-token", "tok")], &["tok"]),
            Verification::Valid { slot: 0 }
        );
        assert_eq!(
            verify(&[("x-gitlab-token", "tok")], &["new", "tok"]),
            Verification::Valid { slot: 1 }
        );
        assert_eq!(
            verify(&[("x-gitlab-token", "nope")], &["tok"]),
            Verification::Invalid
        );
        assert_eq!(
            verify(&[("x-gitlab-token", "")], &[""]),
            Verification::Invalid
        );
        assert_eq!(verify(&[], &["tok"]), Verification::Missing);
    }

    #[test]
    fn signing_token() {
        let body = fixture("gitlab-mr-update.json");
        let (id, ts) = ("msg_1", "1700000000");
        let good = standard_signature("signing", id, ts, &body);
        let stale = standard_signature("retired", id, ts, &body);
        let several = format!("{stale} {good}");
        let verify = |sig: &str, body: &[u8]| {
            let pairs = [
                ("webhook-id", id),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ];
            testkit::verify_with(Vendor::Gitlab, &pairs, None, body, &["signing"])
        };
        assert_eq!(verify(&good, &body), Verification::Valid { slot: 0 });
        assert_eq!(verify(&several, &body), Verification::Valid { slot: 0 });
        assert_eq!(verify(&stale, &body), Verification::Invalid);
        assert_eq!(verify(&good, b"{}"), Verification::Invalid);
        assert_eq!(verify("v1,AAAA", &body), Verification::Invalid);
        let no_id = [
            ("webhook-timestamp", ts),
            ("webhook-signature", good.as_str()),
        ];
        let missing_id = testkit::verify_with(Vendor::Gitlab, &no_id, None, &body, &["signing"]);
        assert_eq!(missing_id, Verification::Invalid);
    }

    #[test]
    fn merge_request_update() {
        let pairs = [
            ("x-gitlab-event", "Merge Request Hook"),
            ("idempotency-key", "idem-1"),
        ];
        let e = testkit::event(Vendor::Gitlab, &pairs, &fixture("gitlab-mr-update.json"));
        assert_eq!(
            (e.event_type, e.action),
            (EventType::PullRequest, Some(Action::Updated))
        );
        assert_eq!(e.vendor_event, "Merge Request Hook");
        assert_eq!(e.repo.as_deref(), Some("team/sub/widgets"));
        assert_eq!(e.pr_number, Some(8));
        assert_eq!(
            e.commit_sha.as_deref(),
            Some("4444444444444444444444444444444444444444")
        );
        assert_eq!(e.delivery_id.as_deref(), Some("idem-1"));
    }

    #[test]
    fn system_hook_push_without_object_kind() {
        let pairs = [
            ("x-gitlab-event", "System Hook"),
            ("x-gitlab-event-uuid", "uuid-1"),
        ];
        let e = testkit::event(Vendor::Gitlab, &pairs, &fixture("gitlab-system-push.json"));
        assert_eq!(
            (e.event_type, e.action),
            (EventType::Push, Some(Action::Created))
        );
        assert_eq!(e.branch.as_deref(), Some("release"));
        assert_eq!(e.actor.as_deref(), Some("dev3"));
        assert_eq!(e.delivery_id.as_deref(), Some("uuid-1"));
    }

    #[test]
    fn unknown_and_odd_shapes_are_other() {
        let body = br#"{"object_kind": "note", "object_attributes": {"tag": "not-a-bool"}}"#;
        let e = testkit::event(Vendor::Gitlab, &[("x-gitlab-event", "Note Hook")], body);
        assert_eq!(
            (e.event_type, e.vendor_event.as_str()),
            (EventType::Other, "Note Hook")
        );
        let empty = testkit::event(
            Vendor::Gitlab,
            &[("x-gitlab-event", "Pipeline Hook")],
            b"{}",
        );
        assert_eq!(
            (empty.event_type, empty.action),
            (EventType::Build, Some(Action::Other))
        );
        let array = testkit::parse_with(Vendor::Gitlab, &[], b"[]");
        assert_eq!(array, Err(ParseError::NotAnObject));
    }

    #[test]
    fn repository_path_from_homepage() {
        let cases = [
            ("https://gitlab.com/a/b", Some("a/b")),
            ("http://host:3005/g/sub/p/", Some("g/sub/p")),
            ("https://gitlab.com", None),
        ];
        for (url, expected) in cases {
            assert_eq!(path_of_url(url).as_deref(), expected, "{url}");
        }
    }
}
