//! The auto-scan fan-out of one CI event: each pipeline trigger started through its vendor's
//! API and each SAST/SCA pull queued as a scan, every one as a step row keyed by
//! `(ci_event:<id>, step)`.
//!
//! A step is recorded as `started` before its outbound call and finished after it. A step
//! found `started` by a later run is either still in flight (the event is deferred) or was cut
//! off by a crash: a pipeline trigger is then recorded as failed and never repeated, so a
//! pipeline never starts twice; a queued scan is written in the same transaction that marks
//! its step done, so it exists exactly once. This module never decides whether to fan out.

use std::time::Duration;

use chrono::Utc;
use domain::gate::{AutoScan, PipelineTrigger, ScanRequest};
use domain::ids::ScanId;
use domain::{CiEvent, IntegrationId};
use serde_json::{Map, Value, json};
use store::{DynStore, QueuedScan, StepStart};

use crate::outbound::{Outbound, api_base_url};

/// A `started` step older than this was cut off (no call runs this long with its retries).
pub const STEP_STALE: Duration = Duration::from_secs(300);

/// What running the steps of one event came to.
#[derive(Debug, Default, PartialEq)]
pub struct FanOut {
    /// Another run has a step in flight: leave the event queued for a later round.
    pub deferred: bool,
    pub failed: usize,
}

/// Runs the pipeline triggers and queues the scans of `auto_scan` for `event`.
pub async fn run(
    ctx: &Outbound,
    store: &DynStore,
    event: &CiEvent,
    auto_scan: &AutoScan,
) -> store::Result<FanOut> {
    let owner = store::ci_event_owner(event.id);
    let mut outcome = FanOut::default();
    for (i, trigger) in auto_scan.pipeline_triggers.iter().enumerate() {
        let step = format!("trigger:{i}");
        match begin(store, &owner, &step, "pipeline_trigger").await? {
            Begin::Run => {
                let result = start_pipeline(ctx, store, event, trigger).await;
                outcome.failed += usize::from(result.is_err());
                finish(store, &owner, &step, result).await?;
            }
            Begin::Stale => {
                outcome.failed += 1;
                let error = "interrupted during the call; not repeated so the pipeline cannot \
                             start twice";
                finish(store, &owner, &step, Err(error.to_owned())).await?;
            }
            Begin::InFlight => outcome.deferred = true,
            Begin::Done => {}
        }
    }
    for (i, request) in auto_scan.scans.iter().enumerate() {
        let step = format!("scan:{i}");
        match begin(store, &owner, &step, "queued_scan").await? {
            Begin::Run | Begin::Stale => {
                if let Err(error) = queue_scan(store, event, &owner, &step, request).await? {
                    outcome.failed += 1;
                    finish(store, &owner, &step, Err(error)).await?;
                }
            }
            Begin::InFlight => outcome.deferred = true,
            Begin::Done => {}
        }
    }
    Ok(outcome)
}

pub(crate) enum Begin {
    Run,
    Stale,
    InFlight,
    Done,
}

pub(crate) async fn begin(
    store: &DynStore,
    owner: &str,
    step: &str,
    kind: &str,
) -> store::Result<Begin> {
    let now = Utc::now();
    Ok(match store.begin_step(owner, step, kind, now).await? {
        StepStart::Fresh => Begin::Run,
        StepStart::Finished(_) => Begin::Done,
        StepStart::Started(record) => {
            let age = (now - record.started_at).to_std().unwrap_or_default();
            if age >= STEP_STALE {
                Begin::Stale
            } else {
                Begin::InFlight
            }
        }
    })
}

pub(crate) async fn finish(
    store: &DynStore,
    owner: &str,
    step: &str,
    result: Result<Value, String>,
) -> store::Result<()> {
    match result {
        Ok(detail) => store.finish_step(owner, step, "done", &detail, None).await,
        Err(error) => {
            tracing::warn!(step.owner = owner, step.name = step, error = %error, "step failed");
            store
                .finish_step(owner, step, "failed", &json!({}), Some(&error))
                .await
        }
    }
}

async fn start_pipeline(
    ctx: &Outbound,
    store: &DynStore,
    event: &CiEvent,
    trigger: &PipelineTrigger,
) -> Result<Value, String> {
    let id = IntegrationId(trigger.integration_id);
    let record = store
        .get_integration(id)
        .await
        .map_err(|e| format!("could not read integration {id}: {e}"))?
        .ok_or_else(|| format!("pipeline trigger integration {id} does not exist (deleted?)"))?;
    let context = crate::render::event_context(event);
    let git_ref = match &trigger.git_ref {
        Some(template) => crate::render::render(template, &context)?,
        None => event.event.branch.clone().unwrap_or_default(),
    };
    let mut variables = Map::new();
    for (key, value) in &trigger.variables {
        let rendered = match value {
            Value::String(template) => Value::String(crate::render::render(template, &context)?),
            other => other.clone(),
        };
        variables.insert(key.clone(), rendered);
    }
    let repo = record
        .config
        .get("repository")
        .or_else(|| record.config.get("project"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| event.event.repo.clone())
        .unwrap_or_default();
    let request = connectors::pipelines::TriggerRequest {
        repo,
        pipeline: trigger.pipeline.clone(),
        git_ref,
        variables,
    };
    let credential = ctx.credential_for(&record)?;
    let answer = connectors::pipelines::trigger(
        record.vendor,
        ctx.http_for(&record),
        api_base_url(&record),
        credential,
        &request,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(
        json!({"integration_id": id, "vendor": record.vendor, "pipeline": request.pipeline,
              "ref": request.git_ref, "run": answer}),
    )
}

/// Queues one scan; `Err` (inside `Ok`) names why the step failed.
async fn queue_scan(
    store: &DynStore,
    event: &CiEvent,
    owner: &str,
    step: &str,
    request: &ScanRequest,
) -> store::Result<Result<(), String>> {
    let id = IntegrationId(request.integration_id);
    let Some(record) = store.get_integration(id).await? else {
        return Ok(Err(format!(
            "scan integration {id} does not exist (deleted?)"
        )));
    };
    let e = &event.event;
    let scan = QueuedScan {
        id: ScanId::new(),
        integration_id: id,
        tool: record.vendor.to_string(),
        started_at: Utc::now(),
        commit_sha: e.commit_sha.clone(),
        branch_name: e.branch.clone(),
        pr_number: e.pr_number,
        target_branch: e.target_branch.clone(),
        repo_url: e
            .repo_url
            .clone()
            .or_else(|| e.repo.clone())
            .unwrap_or_default(),
        triggered_by: format!("ci_event:{}", event.id),
    };
    store.queue_scan(owner, step, &scan).await?;
    Ok(Ok(()))
}
