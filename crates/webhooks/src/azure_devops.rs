//! Azure DevOps service hooks: HTTP Basic (the password is the secret) or a configured
//! `Authorization: Bearer` header, and the git push, pull request, build and pipeline
//! run/stage/job state events.
//!
//! Azure DevOps cannot sign, so this module only compares credentials; it never treats a
//! delivery without them as anything but `Missing`. The event name is the body's `eventType`.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{self, Check};
use crate::common::{self, GitRef, Loose};
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    let check = match common::header_bytes(delivery.headers, "authorization") {
        Some(value) => auth::authorization(value, secrets, true),
        None => Check::Absent,
    };
    Check::combine(&[check])
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let (p, full_shape) = match common::from_json::<Payload>(delivery.body) {
        Ok(p) => (p, true),
        Err(first) => {
            let minimal: Minimal = common::from_json(delivery.body).map_err(|_| first)?;
            let p = Payload {
                id: minimal.id,
                event_type: minimal.event_type,
                subscription_id: minimal.subscription_id,
                ..Payload::default()
            };
            (p, false)
        }
    };
    let event_type = common::non_empty(p.event_type.clone()).unwrap_or_else(|| "unknown".into());
    let delivery_id = match (common::non_empty(p.subscription_id.clone()), p.id.to_text()) {
        (Some(subscription), Some(id)) => Some(format!("{subscription}:{id}")),
        (None, id) => id,
        (Some(_), None) => None,
    };
    let resource = p.resource.unwrap_or_default();

    let mut e = match event_type.as_str() {
        _ if !full_shape => NormalizedEvent::new(String::new(), EventType::Other),
        "git.push" => push(resource),
        t if t.starts_with("git.pullrequest.") => pull_request(t, resource),
        "build.complete" => build_complete(resource),
        "ms.vss-pipelines.run-state-changed-event"
        | "ms.vss-pipelines.stage-state-changed-event"
        | "ms.vss-pipelines.job-state-changed-event" => pipeline_state(resource),
        _ => other(resource),
    };
    e.vendor_event = event_type;
    e.delivery_id = delivery_id;
    Ok(Parsed::Event(Box::new(e)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Minimal {
    id: Loose,
    event_type: Option<String>,
    subscription_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Payload {
    id: Loose,
    event_type: Option<String>,
    subscription_id: Option<String>,
    resource: Option<Resource>,
}

/// The union of the resource fields the supported events carry.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Resource {
    // git.push
    ref_updates: Vec<RefUpdate>,
    pushed_by: Option<Identity>,
    repository: Option<Repository>,
    // git.pullrequest.*
    pull_request_id: Option<i64>,
    status: Option<String>,
    created_by: Option<Identity>,
    source_ref_name: Option<String>,
    target_ref_name: Option<String>,
    last_merge_source_commit: Option<Commit>,
    last_merge_commit: Option<Commit>,
    // build.complete
    id: Loose,
    build_number: Option<String>,
    result: Option<String>,
    source_branch: Option<String>,
    source_version: Option<String>,
    source_get_version: Option<String>,
    requested_for: Option<Identity>,
    last_changed_by: Option<Identity>,
    definition: Option<Named>,
    #[serde(rename = "_links")]
    links: Option<Links>,
    // ms.vss-pipelines.*
    run: Option<Run>,
    stage: Option<State>,
    job: Option<State>,
    pipeline: Option<Named>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RefUpdate {
    name: Option<String>,
    old_object_id: Option<String>,
    new_object_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Identity {
    display_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Repository {
    name: Option<String>,
    remote_url: Option<String>,
    web_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Commit {
    commit_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Named {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Links {
    web: Option<Href>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Href {
    href: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Run {
    id: Loose,
    name: Option<String>,
    state: Option<String>,
    result: Option<String>,
    pipeline: Option<Named>,
    #[serde(rename = "_links")]
    links: Option<Links>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct State {
    name: Option<String>,
    state: Option<String>,
    result: Option<String>,
}

fn locate(e: &mut NormalizedEvent, repository: Option<Repository>) {
    if let Some(repo) = repository {
        e.repo = common::non_empty(repo.name);
        e.repo_url = common::non_empty(repo.remote_url).or(common::non_empty(repo.web_url));
    }
}

fn push(r: Resource) -> NormalizedEvent {
    let update = r.ref_updates.into_iter().next().unwrap_or_default();
    let git_ref = update.name.as_deref().map(common::git_ref);
    let event_type = match git_ref {
        Some(GitRef::Tag(_)) => EventType::Tag,
        _ => EventType::Push,
    };
    let mut e = NormalizedEvent::new(String::new(), event_type);
    locate(&mut e, r.repository);
    match git_ref {
        Some(GitRef::Tag(tag)) => e.tag = Some(tag),
        Some(GitRef::Branch(branch)) => e.branch = Some(branch),
        None => {}
    }
    let (old, new) = (update.old_object_id, update.new_object_id);
    e.action = Some(common::push_action(old.as_deref(), new.as_deref()));
    e.commit_sha = common::real_sha(new);
    e.before_sha = common::non_empty(old);
    e.actor = r.pushed_by.and_then(|p| p.display_name);
    e
}

fn pull_request(event_type: &str, r: Resource) -> NormalizedEvent {
    let action = match (event_type, r.status.as_deref()) {
        ("git.pullrequest.created", _) => Action::Opened,
        ("git.pullrequest.merged", _) | (_, Some("completed")) => Action::Merged,
        (_, Some("abandoned")) => Action::Closed,
        ("git.pullrequest.updated", _) => Action::Updated,
        _ => Action::Other,
    };
    let mut e = NormalizedEvent::new(String::new(), EventType::PullRequest);
    locate(&mut e, r.repository);
    e.action = Some(action);
    e.pr_number = r.pull_request_id;
    e.branch = r.source_ref_name.as_deref().map(common::branch_name);
    e.target_branch = r.target_ref_name.as_deref().map(common::branch_name);
    e.commit_sha = r.last_merge_source_commit.and_then(|c| c.commit_id);
    if action == Action::Merged {
        e.merge_commit = r.last_merge_commit.and_then(|c| c.commit_id);
    }
    e.actor = r.created_by.and_then(|c| c.display_name);
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

/// Legacy (XAML) builds only name their source as `LG:refs/heads/<branch>:<sha>`.
fn split_source_version(version: &str) -> Option<(String, String)> {
    let rest = version.strip_prefix("LG:")?;
    let (git_ref, sha) = rest.rsplit_once(':')?;
    Some((common::branch_name(git_ref), sha.to_owned()))
}

fn build_complete(r: Resource) -> NormalizedEvent {
    let status = common::non_empty(r.result).or(common::non_empty(r.status));
    let mut e = build_event(status);
    locate(&mut e, r.repository);
    let legacy = r
        .source_get_version
        .as_deref()
        .and_then(split_source_version);
    let (legacy_branch, legacy_sha) = legacy.unzip();
    e.branch = r
        .source_branch
        .as_deref()
        .map(common::branch_name)
        .or(legacy_branch);
    e.commit_sha = common::non_empty(r.source_version).or(legacy_sha);
    if let Some(build) = e.build.as_mut() {
        build.number = r.build_number;
        build.pipeline_name = r.definition.and_then(|d| d.name);
        build.url = r.links.and_then(|l| l.web).and_then(|w| w.href);
    }
    if let Some(id) = r.id.to_json() {
        e.details.insert("build_id".into(), id);
    }
    e.actor = r
        .requested_for
        .and_then(|i| i.display_name)
        .or(r.last_changed_by.and_then(|i| i.display_name));
    e
}

/// Run, stage and job state events report the most specific unit they are about.
fn pipeline_state(r: Resource) -> NormalizedEvent {
    let run = r.run.unwrap_or_default();
    let unit = r.job.as_ref().or(r.stage.as_ref());
    let status = match unit {
        Some(unit) => unit.result.clone().or(unit.state.clone()),
        None => run.result.clone().or(run.state.clone()),
    };
    let mut e = build_event(common::non_empty(status));
    if let Some(build) = e.build.as_mut() {
        build.number = common::non_empty(run.name);
        build.pipeline_name = run
            .pipeline
            .and_then(|p| p.name)
            .or(r.pipeline.and_then(|p| p.name));
        build.url = run.links.and_then(|l| l.web).and_then(|w| w.href);
    }
    if let Some(id) = run.id.to_json() {
        e.details.insert("run_id".into(), id);
    }
    if let Some(name) = r.stage.and_then(|s| s.name) {
        e.details.insert("stage".into(), Value::from(name));
    }
    if let Some(name) = r.job.and_then(|j| j.name) {
        e.details.insert("job".into(), Value::from(name));
    }
    e
}

fn other(r: Resource) -> NormalizedEvent {
    let mut e = NormalizedEvent::new(String::new(), EventType::Other);
    locate(&mut e, r.repository);
    e
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use domain::Vendor;

    use super::*;
    use crate::testkit::{self, fixture};

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn credentials() {
        let body = fixture("azure-pr-updated.json");
        let verify = |auth: Option<&str>, configured: &[&str]| {
            let pairs: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
            testkit::verify_with(Vendor::AzureDevops, &pairs, None, &body, configured)
        };
        let valid = Verification::Valid { slot: 0 };
        assert_eq!(verify(Some(&basic("anyone:s3cret")), &["s3cret"]), valid);
        assert_eq!(verify(Some(&basic("x:pa:ss")), &["pa:ss"]), valid);
        assert_eq!(verify(Some("Bearer s3cret"), &["s3cret"]), valid);
        assert_eq!(
            verify(Some("bearer s3cret"), &["old", "s3cret"]),
            Verification::Valid { slot: 1 }
        );
        assert_eq!(
            verify(Some(&basic("s3cret:wrong")), &["s3cret"]),
            Verification::Invalid
        );
        assert_eq!(verify(Some(&basic("user:")), &[""]), Verification::Invalid);
        assert_eq!(
            verify(Some("Basic !!!"), &["s3cret"]),
            Verification::Invalid
        );
        assert_eq!(verify(None, &["s3cret"]), Verification::Missing);
    }

    #[test]
    fn pull_request_update() {
        let e = testkit::event(Vendor::AzureDevops, &[], &fixture("azure-pr-updated.json"));
        assert_eq!(
            (e.event_type, e.action),
            (EventType::PullRequest, Some(Action::Updated))
        );
        assert_eq!(e.vendor_event, "git.pullrequest.updated");
        assert_eq!(e.branch.as_deref(), Some("topic/nuts"));
        assert_eq!(e.merge_commit, None);
        let expected_id =
            "5e1f0f00-dddd-4eee-8fff-000000000002:0d7c1c8e-aaaa-4bbb-8ccc-000000000001";
        assert_eq!(e.delivery_id.as_deref(), Some(expected_id));
    }

    #[test]
    fn missing_fields_and_unknown_events() {
        let e = testkit::event(Vendor::AzureDevops, &[], b"{}");
        assert_eq!(
            (e.event_type, e.vendor_event.as_str()),
            (EventType::Other, "unknown")
        );
        let odd = br#"{"eventType": "git.push", "resource": {"refUpdates": "not-a-list"}}"#;
        let e = testkit::event(Vendor::AzureDevops, &[], odd);
        assert_eq!(e.event_type, EventType::Other);
        let bad = testkit::parse_with(Vendor::AzureDevops, &[], b"{,}");
        assert!(matches!(bad, Err(ParseError::InvalidJson(_))));
    }

    #[test]
    fn legacy_source_version() {
        let sha = "600c52d2d5b655caa111abfd863e5a9bd304bb0e";
        let parsed = split_source_version(&format!("LG:refs/heads/master:{sha}"));
        assert_eq!(parsed, Some(("master".to_owned(), sha.to_owned())));
        assert_eq!(split_source_version(sha), None);
    }
}
