//! The executor: claims runnable executions (FIFO per concurrency key, leased), runs their
//! actions from the stored position, saves progress after every attempt, parks runs on
//! `sleep` and `await_signal`, and finishes them together with the breaker update.
//!
//! Nothing about a run lives only in memory: a process that dies mid-run leaves a lease that
//! runs out, and another worker resumes at the stored position (the action in flight may run
//! again). This module never matches events; the matcher does.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::condition::evaluate;
use serde_json::{Value, json};
use store::{ActionResult, BreakerEffect, DynStore, ExecutionRecord, GroupCommit};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::actions::{ActionDeps, ActionError, RunInfo, perform};
use super::definition::{Action, Runbook};
use super::matcher::{GapWatch, RunbookCache, match_round, render_context};
use super::retry::run_with_retry;
use super::template::render_value;

/// How long a claimed run (or the matcher's cursor) stays with one worker without renewal.
const LEASE: Duration = Duration::from_secs(30);
/// Runs in flight per process.
const PARALLEL_RUNS: usize = 32;
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A retry wait longer than this is not slept through holding a lease.
const MAX_INLINE_BACKOFF: Duration = Duration::from_secs(600);

/// The engine's settings.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Finished executions older than this are deleted; `None` keeps them.
    pub retention: Option<Duration>,
}

/// One process's runbook engine: a matcher and an executor over the shared store.
pub struct RunbookEngine {
    pub(crate) store: DynStore,
    pub(crate) deps: ActionDeps,
    pub(crate) cache: RunbookCache,
    /// Finished runs are committed in groups: one transaction for whatever finished meanwhile.
    finisher: GroupCommit<(ExecutionRecord, BreakerEffect), bool>,
    gaps: GapWatch,
    owner: String,
    wake: Notify,
    slots: Arc<Semaphore>,
    settings: EngineSettings,
}

/// How one step of a run ended.
enum Step {
    Next(Value),
    Park,
    Skip(String),
    Fail,
}

impl RunbookEngine {
    pub fn new(deps: ActionDeps, settings: EngineSettings) -> Arc<Self> {
        Arc::new(RunbookEngine {
            store: deps.store.clone(),
            finisher: store::execution_finisher(deps.store.clone()),
            deps,
            cache: RunbookCache::default(),
            gaps: GapWatch::default(),
            owner: uuid::Uuid::new_v4().to_string(),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(PARALLEL_RUNS)),
            settings,
        })
    }

    /// Wakes the loops early (an event was appended, a signal arrived).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs the matcher, the executor and the pruner until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_prune = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            let matched =
                match match_round(&self.store, &self.cache, &self.gaps, &self.owner, LEASE).await {
                    Ok(n) => n,
                    Err(err) => {
                        tracing::warn!(error = %err, "runbook matcher round failed");
                        0
                    }
                };
            let claimed = self.clone().claim_and_spawn().await;
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = tokio::time::Instant::now();
                self.prune().await;
            }
            if matched > 0 || claimed > 0 {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    async fn prune(&self) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        let before = Utc::now() - chrono::Duration::from_std(retention).unwrap_or_default();
        match self.store.prune_executions(before).await {
            Ok(n) => tracing::info!(deleted = n, "old runbook executions pruned"),
            Err(err) => tracing::warn!(error = %err, "pruning runbook executions failed"),
        }
    }

    /// Claims as many runs as there are free slots and starts them; returns how many.
    async fn claim_and_spawn(self: Arc<Self>) -> usize {
        let free = self.slots.available_permits();
        if free == 0 {
            return 0;
        }
        let claimed = match self.store.claim_executions(free as u32, LEASE).await {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %err, "claiming runbook executions failed");
                return 0;
            }
        };
        let count = claimed.len();
        for execution in claimed {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let engine = self.clone();
            let span = tracing::info_span!("execution", execution.id = %execution.id,
                runbook.id = %execution.runbook_id);
            tokio::spawn(
                async move {
                    if let Err(err) = engine.execute(execution).await {
                        tracing::warn!(error = %err, "execution step failed; lease will expire");
                    }
                    drop(permit);
                    engine.wake();
                }
                .instrument(span),
            );
        }
        count
    }

    /// Runs a claimed execution from its stored position until it parks or ends.
    async fn execute(&self, mut run: ExecutionRecord) -> store::Result<()> {
        let Some(record) = self.store.get_runbook(run.runbook_id).await? else {
            return self.finish(run, "cancelled", None).await;
        };
        let Some(runbook) = self.cache.get(&record) else {
            return self
                .finish(run, "cancelled", Some("definition invalid".into()))
                .await;
        };
        while (run.position as usize) < runbook.actions.len() {
            let index = run.position as usize;
            let action = &runbook.actions[index];
            match self
                .step(&mut run, &runbook, &record.name, index, action)
                .await?
            {
                Step::Next(output) => {
                    if let Some(list) = run.context["actions"].as_array_mut() {
                        list.push(json!({"output": output}));
                    }
                    run.position += 1;
                    // After the last action the run is saved once, by `finish`: one commit
                    // fewer per run. A process that dies in between leaves the lease to run
                    // out and the last action runs again, as it would dying during it.
                    if (run.position as usize) < runbook.actions.len() {
                        self.store.save_execution(&run, LEASE).await?;
                    }
                }
                Step::Park => {
                    self.store.save_execution(&run, LEASE).await?;
                    return Ok(());
                }
                Step::Skip(reason) => return self.finish(run, "skipped", Some(reason)).await,
                Step::Fail => return self.finish(run, "failed", None).await,
            }
        }
        self.finish(run, "succeeded", None).await
    }

    /// Runs (or resumes) one action.
    async fn step(
        &self,
        run: &mut ExecutionRecord,
        runbook: &Runbook,
        runbook_name: &str,
        index: usize,
        action: &Action,
    ) -> store::Result<Step> {
        let resuming = run
            .action_results
            .get(index)
            .is_some_and(|r| r.status == "waiting");
        if resuming {
            return Ok(self.resume(run, index, action));
        }
        let _ = runbook;
        run.action_results.truncate(index);
        run.action_results.push(ActionResult {
            index,
            action_type: action.action_type.clone(),
            status: "running".into(),
            started_at: Some(Utc::now()),
            ..ActionResult::default()
        });
        let context = self.context(run);
        let config = match render_value(&Value::Object(action.config.clone()), &context) {
            Ok(config) => config,
            Err(err) => return Ok(self.fail_action(run, index, err.to_string())),
        };

        match action.action_type.as_str() {
            "gate" => {
                let open = action
                    .gate
                    .as_ref()
                    .is_some_and(|g| evaluate(g, &context, Utc::now()));
                self.end_action(run, index, "succeeded", Some(json!({"open": open})), None);
                if !open {
                    return Ok(Step::Skip("gate".into()));
                }
                Ok(Step::Next(json!({"open": true})))
            }
            "sleep" | "await_signal" => {
                let wait = action.wait.unwrap_or_default();
                run.status = "waiting".into();
                run.due_at =
                    Some(Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default());
                run.wait_signal = (action.action_type == "await_signal")
                    .then(|| config["name"].as_str().unwrap_or_default().to_owned());
                run.action_results[index].status = "waiting".into();
                Ok(Step::Park)
            }
            _ => {
                self.attempt_loop(run, runbook_name, index, action, &config, &context)
                    .await
            }
        }
    }

    /// A parked action whose timer fired or whose signal arrived.
    fn resume(&self, run: &mut ExecutionRecord, index: usize, action: &Action) -> Step {
        run.status = "running".into();
        run.due_at = None;
        let signal = run.wait_signal.take();
        match signal {
            None => {
                self.end_action(run, index, "succeeded", Some(json!({})), None);
                Step::Next(json!({}))
            }
            Some(name) => match run.context["signals"].get(&name).cloned() {
                Some(payload) => {
                    self.end_action(run, index, "succeeded", Some(payload.clone()), None);
                    Step::Next(payload)
                }
                None => {
                    let _ = action;
                    self.fail_action(run, index, format!("signal {name:?} timed out"))
                }
            },
        }
    }

    async fn attempt_loop(
        &self,
        run: &mut ExecutionRecord,
        runbook_name: &str,
        index: usize,
        action: &Action,
        config: &Value,
        context: &Value,
    ) -> store::Result<Step> {
        let info = RunInfo {
            message_id: format!("msg_{}_{index}", run.id.0.simple()),
            runbook_name,
            event: &run.trigger_event,
            payload: &run.trigger_payload,
        };
        let progress = tokio::sync::Mutex::new((run.clone(), None::<store::StoreError>));
        let result = run_with_retry(
            &action.retry,
            |_| perform(&self.deps, &action.action_type, config, context, &info),
            |attempt, delay| {
                let progress = &progress;
                async move {
                    let mut guard = progress.lock().await;
                    let (snapshot, failure) = &mut *guard;
                    let result = &mut snapshot.action_results[index];
                    result.attempts = attempt.number;
                    result.error = attempt.error.clone();
                    if let (Some(delay), Some(error)) = (delay, &attempt.error) {
                        tracing::warn!(action.index = index, attempt = attempt.number,
                            delay_ms = delay.as_millis() as u64, error = %error,
                            "action failed, retry scheduled");
                        let lease = LEASE + delay.min(MAX_INLINE_BACKOFF);
                        if let Err(err) = self.store.save_execution(snapshot, lease).await {
                            *failure = Some(err);
                        }
                    }
                }
            },
        )
        .await;
        let (snapshot, failure) = progress.into_inner();
        if let Some(err) = failure {
            return Err(err);
        }
        run.action_results[index] = snapshot.action_results[index].clone();
        Ok(match result {
            Ok(output) => {
                self.end_action(run, index, "succeeded", Some(output.clone()), None);
                Step::Next(output)
            }
            Err(ActionError { message, .. }) => self.fail_action(run, index, message),
        })
    }

    fn context(&self, run: &ExecutionRecord) -> Value {
        let mut context = render_context(&run.trigger_payload, &run.trigger_event);
        context["actions"] = run.context["actions"].clone();
        context["signals"] = run.context["signals"].clone();
        context
    }

    fn end_action(
        &self,
        run: &mut ExecutionRecord,
        index: usize,
        status: &str,
        mut output: Option<Value>,
        error: Option<String>,
    ) {
        // Outputs come from outside (response bodies) and are stored in groups: a U+0000 that
        // PostgreSQL refuses would fail every run of the group.
        if let Some(output) = &mut output {
            domain::text::replace_nul(output);
        }
        let error = error.as_deref().map(domain::text::replace_nul_str);
        let result = &mut run.action_results[index];
        result.status = status.into();
        result.finished_at = Some(Utc::now());
        result.output = output;
        if error.is_some() {
            result.error = error;
        } else if status == "succeeded" {
            result.error = None;
        }
        if result.attempts == 0 && status != "waiting" {
            result.attempts = 1;
        }
    }

    fn fail_action(&self, run: &mut ExecutionRecord, index: usize, message: String) -> Step {
        tracing::warn!(action.index = index, error = %message, "action failed");
        self.end_action(run, index, "failed", None, Some(message));
        Step::Fail
    }

    async fn finish(
        &self,
        mut run: ExecutionRecord,
        status: &str,
        reason: Option<String>,
    ) -> store::Result<()> {
        let now = Utc::now();
        let runbook_id = run.runbook_id;
        run.status = status.into();
        run.skip_reason = reason;
        run.finished_at = Some(now);
        run.duration_ms = run.started_at.map(|s| (now - s).num_milliseconds().max(0));
        let effect = match status {
            "succeeded" => BreakerEffect::Success,
            "failed" => BreakerEffect::Failure,
            _ => BreakerEffect::None,
        };
        let duration_ms = run.duration_ms;
        let tripped = self
            .finisher
            .submit((run, effect))
            .await
            .map_err(store::StoreError::Batch)?;
        metrics::counter!("pmap_runbook_executions_total", "status" => status.to_owned())
            .increment(1);
        tracing::info!(status, duration_ms, "execution finished");
        if tripped {
            metrics::counter!("pmap_runbook_breaker_trips_total").increment(1);
            tracing::info!(runbook.id = %runbook_id, "runbook breaker tripped; deactivated");
        }
        Ok(())
    }
}
