//! Runbooks, their executions and the matcher's cursor: the records and the [`RunbookStore`]
//! trait both backends implement.
//!
//! An execution is a persisted state machine: `queued` → `running` → (`waiting` ⇄ `running`)
//! → `succeeded` | `failed` | `skipped` | `cancelled`. The store owns the claims (leases, FIFO
//! per concurrency key, `FOR UPDATE SKIP LOCKED` on PostgreSQL) and the breaker arithmetic that
//! must be atomic with finishing a run. It never evaluates conditions, renders templates or
//! runs actions: those are the engine's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ids::{ExecutionId, PlatformEventId, RunbookId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// Consecutive failed executions that deactivate a runbook.
pub const BREAKER_THRESHOLD: i64 = 10;

/// A runbook as stored. `definition` is the validated document (triggers, actions, throttle,
/// concurrency) as JSON; the engine parses it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunbookRecord {
    pub id: RunbookId,
    pub name: String,
    pub definition: Value,
    pub is_active: bool,
    pub version: i64,
    pub consecutive_failures: i64,
    pub breaker_tripped_at: Option<DateTime<Utc>>,
    pub last_fired_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The outcome of one action within an execution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    pub index: usize,
    #[serde(rename = "type")]
    pub action_type: String,
    /// `running`, `waiting`, `succeeded`, `failed` or `skipped`.
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error: Option<String>,
}

/// One fire of a runbook for one platform event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExecutionRecord {
    pub id: ExecutionId,
    pub runbook_id: RunbookId,
    pub runbook_version: i64,
    pub platform_event_id: PlatformEventId,
    pub event_seq: i64,
    pub trigger_event: String,
    pub trigger_payload: Value,
    /// `queued`, `running`, `waiting`, `succeeded`, `failed`, `skipped` or `cancelled`.
    pub status: String,
    pub skip_reason: Option<String>,
    pub concurrency_key_value: Option<String>,
    pub max_concurrency: i64,
    /// The index of the next action to run.
    pub position: i64,
    /// What later actions can see: outputs so far, signals received.
    pub context: Value,
    pub action_results: Vec<ActionResult>,
    /// The signal a `waiting` run waits for, if any (otherwise it waits for `due_at`).
    pub wait_signal: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// What one matcher round decided: where the cursor goes, the executions to create (queued or
/// skipped), and the runbooks whose last fire moved.
#[derive(Clone, Debug, Default)]
pub struct MatchRound {
    pub cursor: i64,
    pub executions: Vec<ExecutionRecord>,
    pub fired: Vec<(RunbookId, DateTime<Utc>)>,
}

/// How an execution ended, for the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerEffect {
    /// A failed run: count it, trip at [`BREAKER_THRESHOLD`].
    Failure,
    /// A succeeded run: reset the count.
    Success,
    /// Skipped or cancelled: leave the count alone.
    None,
}

/// Storage of runbooks and executions. Both backends pass the same contract.
#[async_trait]
pub trait RunbookStore {
    /// `Conflict` when the name is taken.
    async fn insert_runbook(&self, runbook: &RunbookRecord) -> Result<()>;
    async fn get_runbook(&self, id: RunbookId) -> Result<Option<RunbookRecord>>;
    async fn find_runbook_by_name(&self, name: &str) -> Result<Option<RunbookRecord>>;
    /// Ordered by id, after the cursor.
    async fn list_runbooks(
        &self,
        after: Option<RunbookId>,
        limit: u32,
    ) -> Result<Vec<RunbookRecord>>;
    /// Every active runbook, for the matcher.
    async fn list_active_runbooks(&self) -> Result<Vec<RunbookRecord>>;
    /// Replaces name, definition and `is_active`, incrementing `version`; returns the stored
    /// record. `NotFound` when gone, `Conflict` when the name is taken.
    async fn update_runbook(&self, runbook: &RunbookRecord) -> Result<RunbookRecord>;
    async fn delete_runbook(&self, id: RunbookId) -> Result<()>;
    /// Re-enables a runbook and zeroes its failure count.
    async fn reset_runbook_breaker(&self, id: RunbookId) -> Result<RunbookRecord>;

    /// Takes the matcher's cursor for `lease` as `owner`; `None` when another owner holds it.
    async fn lease_runbook_cursor(
        &self,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<i64>>;
    /// Creates the round's executions (one per runbook and event at most: a pair that exists is
    /// skipped), records last fires and moves the cursor, in one transaction, provided `owner`
    /// still holds the cursor. Returns false (and writes nothing) when it does not.
    async fn commit_match_round(&self, owner: &str, round: &MatchRound) -> Result<bool>;

    /// Leases up to `limit` runnable executions: due `waiting` ones, `running` ones whose lease
    /// ran out, and `queued` ones whose concurrency key has a free slot, oldest event first.
    /// Claimed runs are `running` with `locked_until = now + lease`.
    async fn claim_executions(
        &self,
        limit: u32,
        lease: std::time::Duration,
    ) -> Result<Vec<ExecutionRecord>>;
    /// Stores a run's progress (position, context, results, status, wait) and renews its lease.
    async fn save_execution(
        &self,
        execution: &ExecutionRecord,
        lease: std::time::Duration,
    ) -> Result<()>;
    /// Stores the final state of several runs and applies each one's `effect` to its runbook's
    /// breaker, in order and in one transaction; a runbook whose breaker trips is deactivated
    /// and `runbook_breaker_tripped` appended. Answers, per run, whether its breaker tripped.
    async fn finish_executions(
        &self,
        runs: &[(ExecutionRecord, BreakerEffect)],
    ) -> Result<Vec<bool>>;
    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>>;
    /// Newest event first, before the cursor (an `event_seq`).
    async fn list_executions(
        &self,
        runbook: RunbookId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>>;
    /// Delivers a signal to a run waiting for it: stores `payload` under `signals.<name>` in its
    /// context and makes it due now. False when the run is not waiting for that signal.
    async fn signal_execution(&self, id: ExecutionId, name: &str, payload: &Value) -> Result<bool>;
    /// Deletes finished executions older than `before`; returns how many.
    async fn prune_executions(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// The payload of `runbook_breaker_tripped`.
pub(crate) fn breaker_tripped_payload(id: RunbookId, name: &str, failures: i64) -> Value {
    serde_json::json!({
        "runbook_id": id,
        "runbook_name": name,
        "consecutive_failures": failures,
    })
}

/// The ids of runnable executions, oldest event first (`$2`: now, `$3`: limit): due `waiting`
/// runs, `running` runs whose lease ran out, and `queued` runs that fit within their key's
/// `max_concurrency` counting the runs holding a slot (running or waiting), in FIFO order. A
/// run without a concurrency key has no limit, and is read straight off the index of open
/// runs: only keyed runs are numbered, so a backlog of unkeyed ones does not slow each claim.
pub(crate) const RUNNABLE: &str = "\
    WITH active AS ( \
        SELECT runbook_id, concurrency_key_value AS k, COUNT(*) AS n \
        FROM runbook_executions \
        WHERE status IN ('running', 'waiting') AND concurrency_key_value IS NOT NULL \
        GROUP BY runbook_id, concurrency_key_value), \
    keyed AS ( \
        SELECT id, event_seq, runbook_id, concurrency_key_value AS k, max_concurrency, \
          ROW_NUMBER() OVER (PARTITION BY runbook_id, concurrency_key_value \
                             ORDER BY event_seq, id) AS rn \
        FROM runbook_executions \
        WHERE status = 'queued' AND concurrency_key_value IS NOT NULL), \
    ready AS ( \
        SELECT id, event_seq FROM ( \
          SELECT id, event_seq FROM runbook_executions \
          WHERE status = 'queued' AND concurrency_key_value IS NULL \
          ORDER BY event_seq LIMIT $3) AS unkeyed \
        UNION ALL \
        SELECT q.id, q.event_seq FROM keyed q \
        LEFT JOIN active a ON a.runbook_id = q.runbook_id AND a.k = q.k \
        WHERE q.rn + COALESCE(a.n, 0) <= q.max_concurrency \
        UNION ALL \
        SELECT id, event_seq FROM runbook_executions \
        WHERE (status = 'waiting' AND due_at <= $2) \
           OR (status = 'running' AND locked_until < $2)) \
    SELECT id FROM ready ORDER BY event_seq LIMIT $3";

/// Stores a signal's payload under `signals.<name>` of a run's context.
pub(crate) fn put_signal(context: &mut Value, name: &str, payload: &Value) {
    if !context.is_object() {
        *context = Value::Object(Default::default());
    }
    let signals = context
        .as_object_mut()
        .expect("made an object above")
        .entry("signals")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(signals) = signals.as_object_mut() {
        signals.insert(name.to_owned(), payload.clone());
    }
}
