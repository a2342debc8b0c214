//! GitHub's build-shaped events: workflow runs and jobs, check suites and runs, and commit
//! statuses. Each reports the vendor's own result word as the build status.
//!
//! This module never guesses a branch GitHub did not name: a commit status only lists
//! candidate branches, kept in `details`.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use super::{Repository, User, base};
use crate::common::{self, Loose};

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
pub(super) struct WorkflowRunPayload {
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

pub(super) fn workflow_run(p: WorkflowRunPayload) -> NormalizedEvent {
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
pub(super) struct WorkflowJobPayload {
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

pub(super) fn workflow_job(p: WorkflowJobPayload) -> NormalizedEvent {
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
pub(super) struct CheckSuitePayload {
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

pub(super) fn check_suite(p: CheckSuitePayload) -> NormalizedEvent {
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
pub(super) struct CheckRunPayload {
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

pub(super) fn check_run(p: CheckRunPayload) -> NormalizedEvent {
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
pub(super) struct StatusPayload {
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
pub(super) fn status(p: StatusPayload) -> NormalizedEvent {
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
