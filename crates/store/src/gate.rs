//! Orchestration and gate storage: the step rows that make each outbound fan-out or report
//! call happen once, the pull-request contexts the gate reports to, queued scans a CI event
//! creates, the lookups the gate needs (the latest scan of a pull request, a scan's
//! new/fixed/existing breakdown) and the cursors of platform-event consumers.
//!
//! This module stores what it is given. It never decides whether a step may run again (the
//! engine reads [`StepStart`] and decides) and never judges a scan.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::gate::Breakdown;
use domain::ids::ScanId;
use domain::{CiEventId, IntegrationId};
use serde::Serialize;
use serde_json::Value;

use crate::Result;
use crate::records::NewPlatformEvent;
use crate::scans::ScanRecord;

/// One fan-out or report step as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepRecord {
    /// `ci_event:<id>` or `scan:<id>`.
    pub owner: String,
    /// Unique within the owner: `trigger:0`, `scan:1`, `gate_status`, `gate_comment`.
    pub step: String,
    pub kind: String,
    /// `started`, `done` or `failed`.
    pub state: String,
    pub detail: Value,
    pub error: Option<String>,
    pub attempts: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What recording the start of a step found.
#[derive(Clone, Debug, PartialEq)]
pub enum StepStart {
    /// The step was not there; it is now `started` and the caller runs it.
    Fresh,
    /// Another run started it and has not finished it (in flight, or it crashed mid-call).
    Started(StepRecord),
    /// It already finished; its outcome is the answer.
    Finished(StepRecord),
}

/// The owner key of a CI event's steps.
pub fn ci_event_owner(id: CiEventId) -> String {
    format!("ci_event:{id}")
}

/// The owner key of a scan's report steps.
pub fn scan_owner(id: ScanId) -> String {
    format!("scan:{id}")
}

/// Where a pull request's gate reports: the integration that delivered its newest event, and
/// the repository as that vendor names it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrContext {
    pub integration_id: IntegrationId,
    /// `owner/name`, `group/sub/project`, `PROJECT/repo`, `project/repo`.
    pub repo: String,
    pub pr_number: i64,
    pub repo_url: Option<String>,
    pub commit_sha: Option<String>,
    /// Tells Bitbucket Cloud (`pullrequest:*`) from Server/Data Center (`pr:*`).
    pub vendor_event: String,
    pub ci_event_id: CiEventId,
    pub updated_at: DateTime<Utc>,
}

/// A scan a CI event queues for a pull connector.
#[derive(Clone, Debug)]
pub struct QueuedScan {
    pub id: ScanId,
    pub integration_id: IntegrationId,
    pub tool: String,
    pub started_at: DateTime<Utc>,
    pub commit_sha: Option<String>,
    pub branch_name: Option<String>,
    pub pr_number: Option<i64>,
    pub target_branch: Option<String>,
    pub repo_url: String,
    pub triggered_by: String,
}

/// Storage of orchestration steps, pull-request contexts and the gate's lookups.
#[async_trait]
pub trait GateStore {
    /// Records that a step starts, unless it is already there; see [`StepStart`].
    async fn begin_step(
        &self,
        owner: &str,
        step: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<StepStart>;
    /// Takes over a `started` step for another attempt (only for steps safe to repeat).
    async fn restart_step(&self, owner: &str, step: &str, now: DateTime<Utc>) -> Result<()>;
    /// Records a step's outcome: `done` or `failed`, with what it produced or why it failed.
    async fn finish_step(
        &self,
        owner: &str,
        step: &str,
        state: &str,
        detail: &Value,
        error: Option<&str>,
    ) -> Result<()>;
    /// The steps of these owners, by owner then step.
    async fn list_steps(&self, owners: &[String]) -> Result<Vec<StepRecord>>;

    /// Inserts a queued scan and marks its step `done` in one transaction, so the scan exists
    /// exactly once however often the step is retried. False when the step was already done.
    async fn queue_scan(&self, owner: &str, step: &str, scan: &QueuedScan) -> Result<bool>;

    /// Stores (or replaces) the context of a pull request.
    async fn upsert_pr_context(&self, context: &PrContext) -> Result<()>;
    /// The newest context of a pull request: of that integration (and repository name, when
    /// given), or, without an integration, of that repository URL. Contexts whose URL matches
    /// come first.
    async fn find_pr_context(
        &self,
        integration: Option<IntegrationId>,
        repo: Option<&str>,
        repo_url: Option<&str>,
        pr_number: i64,
    ) -> Result<Option<PrContext>>;

    /// The newest finished (completed or failed) scan of a pull request, of that commit when
    /// given.
    async fn latest_pr_scan(
        &self,
        repo_url: &str,
        pr_number: i64,
        commit_sha: Option<&str>,
    ) -> Result<Option<ScanRecord>>;
    /// New, fixed (open in the baseline, absent now) and existing counts by severity.
    async fn scan_breakdown(&self, scan: &ScanRecord) -> Result<Breakdown>;

    /// Where a platform-event consumer stands (0 when it has no cursor yet).
    async fn event_cursor(&self, name: &str) -> Result<i64>;
    /// Takes or renews the named cursor for `lease` as `owner` and returns where it stands (0
    /// for a new cursor); `None` while another owner's lease runs.
    async fn lease_event_cursor(
        &self,
        name: &str,
        owner: &str,
        lease: std::time::Duration,
    ) -> Result<Option<i64>>;
    /// Moves the named cursor from `from` to `to` and appends `event`, in one transaction,
    /// provided `owner` holds the cursor and it still stands at `from`. Returns false (and
    /// writes nothing) otherwise.
    async fn advance_event_cursor(
        &self,
        name: &str,
        owner: &str,
        from: i64,
        to: i64,
        event: Option<&NewPlatformEvent>,
    ) -> Result<bool>;
}

/// Per-severity counts from `(severity, count)` rows.
pub(crate) fn counts_from(rows: Vec<(String, i64)>) -> domain::scan::SeverityCounts {
    let mut counts = domain::scan::SeverityCounts::default();
    for (severity, n) in rows {
        let Ok(severity) = severity.parse::<domain::Severity>() else {
            continue;
        };
        let n = n.max(0) as u64;
        match severity {
            domain::Severity::Critical => counts.critical += n,
            domain::Severity::High => counts.high += n,
            domain::Severity::Medium => counts.medium += n,
            domain::Severity::Low => counts.low += n,
            domain::Severity::Info => counts.info += n,
        }
        counts.total += n;
    }
    counts
}

/// The breakdown queries, the same text on both backends (`$1` this scan, `$2` its baseline).
pub(crate) const NEW_BY_SEVERITY: &str = "SELECT severity, COUNT(*) FROM scan_findings \
     WHERE scan_id = $1 AND is_new = TRUE GROUP BY severity";
pub(crate) const EXISTING_BY_SEVERITY: &str = "SELECT severity, COUNT(*) FROM scan_findings \
     WHERE scan_id = $1 AND is_new = FALSE AND status IN ('open', 'in_progress') \
     GROUP BY severity";
pub(crate) const FIXED_BY_SEVERITY: &str = "SELECT b.severity, COUNT(*) FROM scan_findings b \
     WHERE b.scan_id = $2 AND b.status IN ('open', 'in_progress') AND NOT EXISTS \
     (SELECT 1 FROM scan_findings s WHERE s.scan_id = $1 AND s.fingerprint = b.fingerprint) \
     GROUP BY b.severity";
