//! Turns a scan to import, plus what the database already holds (the baseline's open findings,
//! the repository's stored findings), into the rows and events one import writes. Both backends
//! load the inputs, then feed the findings through a [`Planner`] one batch at a time and write
//! each batch inside their transaction, so only the fingerprints and statuses the diff needs are
//! held for the whole scan. The planner itself never touches the database.
//!
//! An import may complete a queued scan instead of making a new one (see [`QUEUED_MATCH`]); the
//! backends claim the row inside the import's transaction and [`adopt`] it before planning, so
//! the findings, the membership and the events all carry the queued scan's id.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::ids::{FindingId, PlatformEventId, ScanId};
use domain::scan::{self, Classified, FindingStatus, Incoming, SeverityCounts};
use domain::{Severity, scan::ScanContext};
use serde_json::{Value, json};

use crate::records::NewPlatformEvent;
use crate::scans::{AssetRecord, FindingRecord, HistoryRecord, NewFinding, ScanImport, ScanRecord};

/// What the repository already has for one fingerprint.
#[derive(Clone, Debug)]
pub(crate) struct Existing {
    pub id: FindingId,
    pub status: FindingStatus,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub assignee: Option<String>,
    pub first_seen_at: DateTime<Utc>,
}

/// One row of a scan's membership.
pub(crate) struct Member {
    pub finding_id: FindingId,
    pub fingerprint: String,
    pub severity: Severity,
    pub status: FindingStatus,
    pub is_new: bool,
}

/// What the database holds that an import is classified against.
#[derive(Default)]
pub(crate) struct Prior {
    pub baseline: Option<ScanId>,
    /// The fingerprints the baseline scan had open, each with whether this scan reported it.
    pub baseline_open: HashMap<String, bool>,
    /// The repository's stored findings of this tool, by fingerprint.
    pub existing: HashMap<String, Existing>,
}

/// The rows and events of one batch of findings.
#[derive(Default)]
pub(crate) struct Batch {
    pub findings: Vec<FindingRecord>,
    /// For each of `findings`, whether the repository already stored it (and its row is to be
    /// updated rather than inserted).
    pub stored: Vec<bool>,
    pub members: Vec<Member>,
    pub history: Vec<HistoryRecord>,
    /// `finding_created` and `finding_reopened`, in the order of the findings.
    pub events: Vec<NewPlatformEvent>,
}

/// What is written once every batch is: the scan row with its counts, the stored findings the
/// scan fixed, their history and the `scan_finished` event.
pub(crate) struct Finish {
    pub scan: ScanRecord,
    pub mark_fixed: Vec<FindingId>,
    pub history: Vec<HistoryRecord>,
    pub events: Vec<NewPlatformEvent>,
}

/// Classifies the findings of one import batch by batch, keeping only the counts and which of
/// the baseline's open fingerprints were seen.
pub(crate) struct Planner<'a> {
    import: &'a ScanImport,
    asset: &'a AssetRecord,
    prior: Prior,
    scan_actor: String,
    counts: SeverityCounts,
    new_counts: SeverityCounts,
}

impl<'a> Planner<'a> {
    /// `import.findings` is not read: the caller takes them out and hands them to [`batch`].
    ///
    /// [`batch`]: Planner::batch
    pub fn new(import: &'a ScanImport, asset: &'a AssetRecord, prior: Prior) -> Planner<'a> {
        Planner {
            scan_actor: format!("scan:{}", import.id),
            counts: SeverityCounts {
                filtered: import.filtered,
                ..Default::default()
            },
            new_counts: SeverityCounts::default(),
            import,
            asset,
            prior,
        }
    }

    /// Plans the next findings of the scan.
    pub fn batch(&mut self, findings: impl IntoIterator<Item = NewFinding>) -> Batch {
        let mut batch = Batch::default();
        for new in findings {
            self.plan_one(new, &mut batch);
        }
        batch
    }

    fn plan_one(&mut self, new: NewFinding, batch: &mut Batch) {
        let at = self.import.finished_at;
        let prior = self.prior.existing.get(&new.fingerprint);
        let open_in_baseline = match self.prior.baseline_open.get_mut(&new.fingerprint) {
            Some(seen) => {
                *seen = true;
                true
            }
            None => false,
        };
        let classified: Classified = scan::classify(Incoming {
            tool_status: new.tool_status,
            rule_status: new.rule_status,
            existing: prior.map(|p| p.status),
            open_in_baseline,
        });
        let id = prior.map_or_else(FindingId::new, |p| p.id);
        self.counts.add(new.severity);
        if classified.is_new {
            self.new_counts.add(new.severity);
        }

        let mut tags = prior.map(|p| p.tags.clone()).unwrap_or_default();
        for tag in new.tags {
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let assignee = new
            .assignee
            .or_else(|| prior.and_then(|p| p.assignee.clone()));
        self.history_of(id, prior, new.rule_changes, &classified, &mut batch.history);

        let record = FindingRecord {
            id,
            fingerprint: new.fingerprint,
            scan_id: self.import.id,
            repo_url: self.import.repo_url.clone(),
            tool: self.import.tool.clone(),
            rule_id: new.rule_id,
            title: new.title,
            description: new.description,
            severity: new.severity,
            vendor_severity: new.vendor_severity,
            status: classified.status,
            kind: new.kind,
            file_path: new.file_path,
            line: new.line,
            package_name: new.package_name,
            package_version: new.package_version,
            purl: new.purl,
            vulnerability_ids: new.vulnerability_ids,
            cvss_score: new.cvss_score,
            tags,
            assignee,
            asset_id: Some(self.asset.id),
            first_seen_at: prior.map_or(at, |p| p.first_seen_at),
            last_seen_at: at,
        };
        let event_type = if classified.created {
            Some("finding_created")
        } else if classified.reopened {
            Some("finding_reopened")
        } else {
            None
        };
        if let Some(event_type) = event_type {
            let payload = json!({
                "finding": record,
                "asset": self.asset,
                "scan_id": self.import.id,
            });
            batch.events.push(event(event_type, payload, at));
        }
        batch.members.push(Member {
            finding_id: id,
            fingerprint: record.fingerprint.clone(),
            severity: record.severity,
            status: record.status,
            is_new: classified.is_new,
        });
        batch.findings.push(record);
        batch.stored.push(prior.is_some());
    }

    /// The history rows of one finding: the changes rules made that differ from what is stored,
    /// and the status the scan gave it when it created or reopened it.
    fn history_of(
        &self,
        id: FindingId,
        prior: Option<&Existing>,
        rule_changes: Vec<(String, String, Value, Value)>,
        classified: &Classified,
        rows: &mut Vec<HistoryRecord>,
    ) {
        let at = self.import.finished_at;
        for (rule, field, old, value) in rule_changes {
            let unchanged = prior.is_some_and(|p| match field.as_str() {
                "severity" => json!(p.severity) == value,
                "status" => json!(p.status) == value,
                "assignee" => json!(p.assignee) == value,
                "tags" => json!(p.tags) == value,
                _ => false,
            });
            if !unchanged {
                rows.push(history(id, at, &format!("rule:{rule}"), &field, old, value));
            }
        }
        let status = json!(classified.status);
        if classified.created {
            rows.push(history(
                id,
                at,
                &self.scan_actor,
                "status",
                Value::Null,
                status,
            ));
        } else if classified.reopened {
            let old = json!(FindingStatus::Fixed);
            rows.push(history(id, at, &self.scan_actor, "status", old, status));
        }
    }

    /// The scan row and what the scan fixed, once every finding went through [`batch`].
    ///
    /// [`batch`]: Planner::batch
    pub fn finish(self) -> Finish {
        let import = self.import;
        let at = import.finished_at;
        let gone: Vec<&str> = self
            .prior
            .baseline_open
            .iter()
            .filter(|(_, seen)| !**seen)
            .map(|(fingerprint, _)| fingerprint.as_str())
            .collect();
        let fixed_count = gone.len() as i64;
        // A pull request's scan reports what the change would fix; only a branch scan says the
        // code that is there no longer has the problem.
        let mut mark_fixed = Vec::new();
        let mut history_rows = Vec::new();
        if import.pr_number.is_none() {
            for fingerprint in gone {
                let existing = self.prior.existing.get(fingerprint);
                if let Some(prior) = existing.filter(|p| p.status.is_open()) {
                    mark_fixed.push(prior.id);
                    history_rows.push(history(
                        prior.id,
                        at,
                        &self.scan_actor,
                        "status",
                        json!(prior.status),
                        json!(FindingStatus::Fixed),
                    ));
                }
            }
        }

        let scan = ScanRecord {
            id: import.id,
            integration_id: import.integration_id,
            tool: import.tool.clone(),
            format: import.format.clone(),
            status: "completed".into(),
            external_scan_id: import.external_scan_id.clone(),
            started_at: import.started_at,
            finished_at: Some(at),
            counts: self.counts,
            new_counts: self.new_counts,
            fixed_count,
            baseline_scan_id: self.prior.baseline,
            commit_sha: import.commit_sha.clone(),
            branch_name: import.branch_name.clone(),
            pr_number: import.pr_number,
            target_branch: import.target_branch.clone(),
            repo_url: import.repo_url.clone(),
            asset_id: Some(self.asset.id),
            triggered_by: import.triggered_by.clone(),
        };
        let finished = event("scan_finished", scan_finished(&scan, self.asset), at);
        Finish {
            scan,
            mark_fixed,
            history: history_rows,
            events: vec![finished],
        }
    }
}

/// Which queued scan an import completes: one of the integration the import names, for the same
/// repository URL and commit, with the same branch and pull request (both absent counts as the
/// same). An import that names no integration or no commit completes none. The oldest match is
/// taken. The same text on both backends; PostgreSQL appends its row lock.
pub(crate) const QUEUED_MATCH: &str = "SELECT id, started_at, target_branch, triggered_by \
    FROM scans WHERE status = 'queued' AND integration_id = $1 AND repo_url = $2 \
    AND commit_sha = $3 AND (branch_name = $4 OR (branch_name IS NULL AND $4 IS NULL)) \
    AND (pr_number = $5 OR (pr_number IS NULL AND $5 IS NULL)) ORDER BY id LIMIT 1";

/// What an import keeps of the queued scan it completes.
pub(crate) struct Queued {
    pub id: ScanId,
    pub started_at: DateTime<Utc>,
    pub target_branch: Option<String>,
    pub triggered_by: String,
}

/// Makes `import` the completion of `queued`: its id, start, trigger and the target branch of
/// the CI event (the rest of the context matched). Tool, format and findings stay the import's.
pub(crate) fn adopt(import: &mut ScanImport, queued: Queued) {
    import.id = queued.id;
    import.started_at = queued.started_at;
    import.triggered_by = queued.triggered_by;
    if queued.target_branch.is_some() {
        import.target_branch = queued.target_branch;
    }
}

/// The branches to look for a baseline on, in order.
pub(crate) fn baseline_branches(import: &ScanImport) -> Vec<String> {
    scan::baseline_branches(&ScanContext {
        branch: import.branch_name.as_deref(),
        pr_number: import.pr_number,
        target_branch: import.target_branch.as_deref(),
    })
}

pub(crate) fn event(event_type: &str, payload: Value, at: DateTime<Utc>) -> NewPlatformEvent {
    NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: event_type.to_owned(),
        payload,
        created_at: at,
    }
}

pub(crate) fn history(
    finding_id: FindingId,
    at: DateTime<Utc>,
    actor: &str,
    field: &str,
    old_value: Value,
    new_value: Value,
) -> HistoryRecord {
    let some = |v: Value| (!v.is_null()).then_some(v);
    HistoryRecord {
        id: uuid::Uuid::now_v7(),
        finding_id,
        created_at: at,
        actor: actor.to_owned(),
        field: field.to_owned(),
        old_value: some(old_value),
        new_value: some(new_value),
    }
}

/// The `scan_finished` payload: counts flat, new counts flat and as an object, the CI context,
/// and the scan and asset embedded.
fn scan_finished(scan: &ScanRecord, asset: &AssetRecord) -> Value {
    let c = &scan.counts;
    let n = &scan.new_counts;
    json!({
        "scan_id": scan.id,
        "status": scan.status,
        "critical_count": c.critical,
        "high_count": c.high,
        "medium_count": c.medium,
        "low_count": c.low,
        "info_count": c.info,
        "total_count": c.total,
        "filtered_count": c.filtered,
        "new_critical_count": n.critical,
        "new_high_count": n.high,
        "new_medium_count": n.medium,
        "new_low_count": n.low,
        "new_info_count": n.info,
        "new_total_count": n.total,
        "new_counts": n,
        "fixed_count": scan.fixed_count,
        "baseline_scan_id": scan.baseline_scan_id,
        "tool": scan.tool,
        "integration_id": scan.integration_id,
        "repo_url": scan.repo_url,
        "branch_name": scan.branch_name,
        "commit_sha": scan.commit_sha,
        "pr_number": scan.pr_number,
        "target_branch": scan.target_branch,
        "triggered_by": scan.triggered_by,
        "scan": scan,
        "asset": asset,
    })
}
