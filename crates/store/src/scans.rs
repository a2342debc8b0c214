//! Scans, findings, their history and comments, finding rules and assets: the records and the
//! [`ScanStore`] trait both backends implement.
//!
//! Importing a scan is one transaction: the asset on first sight, the scan row (or the queued
//! scan it completes), the finding upserts, the per-scan membership that later scans use as
//! their baseline, the history rows and the platform events. Classification (new, fixed,
//! reopened) is `domain::scan`'s; this module never maps severities or evaluates rules (callers
//! hand over findings with both done).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::finding_rule::RuleChanges;
use domain::ids::{AssetId, CommentId, FindingId, FindingRuleId, ScanId};
use domain::scan::{FindingStatus, SeverityCounts};
use domain::{IntegrationId, Severity};
use serde::Serialize;
use serde_json::Value;

use crate::Result;
use crate::records::NewPlatformEvent;

/// A scan as stored and as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScanRecord {
    pub id: ScanId,
    pub integration_id: Option<IntegrationId>,
    pub tool: String,
    pub format: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub status: String,
    pub external_scan_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub counts: SeverityCounts,
    pub new_counts: SeverityCounts,
    pub fixed_count: i64,
    pub baseline_scan_id: Option<ScanId>,
    pub commit_sha: Option<String>,
    pub branch_name: Option<String>,
    pub pr_number: Option<i64>,
    /// The branch a pull request merges into, when the importer named it.
    pub target_branch: Option<String>,
    pub repo_url: String,
    pub asset_id: Option<AssetId>,
    pub triggered_by: String,
}

/// A scan to import: its CI context, and its findings with severities and rules applied.
#[derive(Clone, Debug)]
pub struct ScanImport {
    pub id: ScanId,
    pub integration_id: Option<IntegrationId>,
    pub tool: String,
    pub format: String,
    pub external_scan_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub commit_sha: Option<String>,
    pub branch_name: Option<String>,
    pub pr_number: Option<i64>,
    pub target_branch: Option<String>,
    pub repo_url: String,
    pub triggered_by: String,
    /// Results a `min_severity` threshold dropped.
    pub filtered: u64,
    pub findings: Vec<NewFinding>,
}

/// One imported result, after severity mapping and finding rules.
#[derive(Clone, Debug)]
pub struct NewFinding {
    pub fingerprint: String,
    pub rule_id: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub vendor_severity: Option<String>,
    /// The tool's own suppression, if it marked the result.
    pub tool_status: Option<FindingStatus>,
    /// A status a finding rule set.
    pub rule_status: Option<FindingStatus>,
    pub kind: String,
    pub file_path: Option<String>,
    pub line: Option<i64>,
    pub package_name: Option<String>,
    pub package_version: Option<String>,
    pub purl: Option<String>,
    pub vulnerability_ids: Vec<String>,
    pub cvss_score: Option<f64>,
    /// Tags rules added; merged into the stored finding's tags.
    pub tags: Vec<String>,
    /// An assignee a rule set; otherwise the stored assignee stays.
    pub assignee: Option<String>,
    /// Changes rules made, for the history: `(rule name, field, old, new)`.
    pub rule_changes: Vec<(String, String, Value, Value)>,
}

/// A finding as stored and as the API returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FindingRecord {
    pub id: FindingId,
    pub fingerprint: String,
    /// The scan that saw it last.
    pub scan_id: ScanId,
    pub repo_url: String,
    pub tool: String,
    pub rule_id: String,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub vendor_severity: Option<String>,
    pub status: FindingStatus,
    pub kind: String,
    pub file_path: Option<String>,
    pub line: Option<i64>,
    pub package_name: Option<String>,
    pub package_version: Option<String>,
    pub purl: Option<String>,
    pub vulnerability_ids: Vec<String>,
    pub cvss_score: Option<f64>,
    pub tags: Vec<String>,
    pub assignee: Option<String>,
    pub asset_id: Option<AssetId>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// One change to a finding: who or what made it, which field, from what, to what.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryRecord {
    pub id: uuid::Uuid,
    pub finding_id: FindingId,
    pub created_at: DateTime<Utc>,
    /// `scan:<id>`, `rule:<name>`, `api:<token name>`.
    pub actor: String,
    pub field: String,
    pub old_value: Option<Value>,
    pub new_value: Option<Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommentRecord {
    pub id: CommentId,
    pub finding_id: FindingId,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FindingRuleRecord {
    pub id: FindingRuleId,
    pub name: String,
    /// Lower runs first.
    pub priority: i64,
    /// A condition group (validated before it is stored).
    pub conditions: Value,
    pub changes: RuleChanges,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssetRecord {
    pub id: AssetId,
    /// `repository` today.
    pub kind: String,
    pub name: String,
    pub repo_url: String,
    /// 1 (lowest) to 5 (highest).
    pub criticality: i64,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl AssetRecord {
    /// The asset a repository gets on first sight: criticality 3, no tags.
    pub fn for_repository(repo_url: &str, now: DateTime<Utc>) -> AssetRecord {
        let name = repo_url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit('/')
            .next()
            .filter(|name| !name.is_empty())
            .unwrap_or(repo_url);
        AssetRecord {
            id: AssetId::new(),
            kind: "repository".into(),
            name: name.to_owned(),
            repo_url: repo_url.to_owned(),
            criticality: 3,
            tags: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// `GET /scans` filters; `None` means any.
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    pub repo_url: Option<String>,
    pub branch_name: Option<String>,
    pub pr_number: Option<i64>,
    pub status: Option<String>,
}

/// Finding list filters; `None` means any.
#[derive(Clone, Debug, Default)]
pub struct FindingFilter {
    /// Only findings this scan reported (with their status and severity as they are now).
    pub scan_id: Option<ScanId>,
    /// With `scan_id`: only those that scan counted as new.
    pub only_new: bool,
    pub repo_url: Option<String>,
    pub tool: Option<String>,
    pub status: Option<FindingStatus>,
    pub severity: Option<Severity>,
    pub asset_id: Option<AssetId>,
}

/// A finding edited through the API, with the history and events the edit causes.
#[derive(Clone, Debug)]
pub struct FindingUpdate {
    pub finding: FindingRecord,
    pub history: Vec<HistoryRecord>,
    pub events: Vec<NewPlatformEvent>,
}

/// Storage of scans, findings, finding rules and assets. Both backends pass the same contract.
#[async_trait]
pub trait ScanStore {
    /// Imports a scan in one transaction (see the module doc). On error nothing is stored.
    ///
    /// When the import names an integration and a commit, it completes the oldest queued scan
    /// of that integration with the same repository URL, commit, branch and pull request
    /// (absent on both sides counts as the same): the answer keeps the queued scan's id,
    /// start, trigger and CI context, and no new scan row is written. Two concurrent imports
    /// never complete the same queued scan. Otherwise the import is a new scan.
    async fn import_scan(&self, import: ScanImport) -> Result<ScanRecord>;
    async fn get_scan(&self, id: ScanId) -> Result<Option<ScanRecord>>;
    /// Newest first, before the cursor.
    async fn list_scans(
        &self,
        filter: &ScanFilter,
        before: Option<ScanId>,
        limit: u32,
    ) -> Result<Vec<ScanRecord>>;

    async fn get_finding(&self, id: FindingId) -> Result<Option<FindingRecord>>;
    /// Ordered by id, after the cursor.
    async fn list_findings(
        &self,
        filter: &FindingFilter,
        after: Option<FindingId>,
        limit: u32,
    ) -> Result<Vec<FindingRecord>>;
    /// Writes the edited finding, its history rows and its events in one transaction.
    async fn update_finding(&self, update: &FindingUpdate) -> Result<()>;
    async fn list_finding_history(&self, id: FindingId) -> Result<Vec<HistoryRecord>>;
    async fn insert_comment(&self, comment: &CommentRecord) -> Result<()>;
    async fn list_comments(&self, finding: FindingId) -> Result<Vec<CommentRecord>>;

    async fn insert_finding_rule(&self, rule: &FindingRuleRecord) -> Result<()>;
    async fn get_finding_rule(&self, id: FindingRuleId) -> Result<Option<FindingRuleRecord>>;
    /// Every rule, by priority then id.
    async fn list_finding_rules(&self) -> Result<Vec<FindingRuleRecord>>;
    /// `NotFound` when it is gone.
    async fn update_finding_rule(&self, rule: &FindingRuleRecord) -> Result<()>;
    async fn delete_finding_rule(&self, id: FindingRuleId) -> Result<()>;

    async fn get_asset(&self, id: AssetId) -> Result<Option<AssetRecord>>;
    async fn find_asset_by_repo(&self, repo_url: &str) -> Result<Option<AssetRecord>>;
    /// Ordered by id, after the cursor.
    async fn list_assets(&self, after: Option<AssetId>, limit: u32) -> Result<Vec<AssetRecord>>;
    /// `NotFound` when it is gone.
    async fn update_asset(&self, asset: &AssetRecord) -> Result<()>;
}
