//! Turns a scan to import, plus what the database already holds (the baseline's open findings,
//! the repository's stored findings), into the rows and events one import writes. Both backends
//! load the inputs and write the plan inside their transaction; the plan itself is computed in
//! memory and never touches the database.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use domain::ids::{FindingId, PlatformEventId, ScanId};
use domain::scan::{self, Classified, FindingStatus, Incoming, SeverityCounts};
use domain::{Severity, scan::ScanContext};
use serde_json::{Value, json};

use crate::records::NewPlatformEvent;
use crate::scans::{AssetRecord, FindingRecord, HistoryRecord, ScanImport, ScanRecord};

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

pub(crate) struct Plan {
    pub scan: ScanRecord,
    pub findings: Vec<FindingRecord>,
    pub members: Vec<Member>,
    /// Stored findings the scan fixed that are to be marked `fixed`.
    pub mark_fixed: Vec<FindingId>,
    pub history: Vec<HistoryRecord>,
    /// Indexes into `findings` of those new to the repository and those reopened.
    created: Vec<usize>,
    reopened: Vec<usize>,
    asset: AssetRecord,
}

impl Plan {
    /// The platform events of the import, built one at a time as they are written, so a large
    /// first import never holds a hundred thousand payloads at once.
    pub fn events(&self) -> impl Iterator<Item = NewPlatformEvent> + '_ {
        let at = self.scan.finished_at.unwrap_or(self.scan.started_at);
        let finding_event = move |event_type: &'static str, index: usize| {
            let payload = json!({
                "finding": self.findings[index],
                "asset": self.asset,
                "scan_id": self.scan.id,
            });
            event(event_type, payload, at)
        };
        let created = self
            .created
            .iter()
            .map(move |&i| finding_event("finding_created", i));
        let reopened = self
            .reopened
            .iter()
            .map(move |&i| finding_event("finding_reopened", i));
        let finished = std::iter::once_with(move || {
            event("scan_finished", scan_finished(&self.scan, &self.asset), at)
        });
        created.chain(reopened).chain(finished)
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

/// Plans one import. `baseline_open` holds the fingerprints the baseline scan had open;
/// `existing` the repository's stored findings of this tool, by fingerprint.
pub(crate) fn plan(
    import: ScanImport,
    asset: &AssetRecord,
    baseline: Option<ScanId>,
    baseline_open: &HashSet<String>,
    existing: &HashMap<String, Existing>,
) -> Plan {
    let at = import.finished_at;
    let scan_actor = format!("scan:{}", import.id);
    let mut counts = SeverityCounts {
        filtered: import.filtered,
        ..Default::default()
    };
    let mut new_counts = SeverityCounts::default();
    let mut findings = Vec::with_capacity(import.findings.len());
    let mut members = Vec::with_capacity(import.findings.len());
    let mut history_rows = Vec::new();
    let mut created = Vec::new();
    let mut reopened = Vec::new();

    for new in import.findings {
        let prior = existing.get(&new.fingerprint);
        let classified: Classified = scan::classify(Incoming {
            tool_status: new.tool_status,
            rule_status: new.rule_status,
            existing: prior.map(|p| p.status),
            open_in_baseline: baseline_open.contains(&new.fingerprint),
        });
        let id = prior.map_or_else(FindingId::new, |p| p.id);
        counts.add(new.severity);
        if classified.is_new {
            new_counts.add(new.severity);
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
        for (rule, field, old, value) in new.rule_changes {
            let unchanged = prior.is_some_and(|p| match field.as_str() {
                "severity" => json!(p.severity) == value,
                "status" => json!(p.status) == value,
                "assignee" => json!(p.assignee) == value,
                "tags" => json!(p.tags) == value,
                _ => false,
            });
            if !unchanged {
                history_rows.push(history(id, at, &format!("rule:{rule}"), &field, old, value));
            }
        }
        if classified.created {
            history_rows.push(history(
                id,
                at,
                &scan_actor,
                "status",
                Value::Null,
                json!(classified.status),
            ));
        } else if classified.reopened {
            history_rows.push(history(
                id,
                at,
                &scan_actor,
                "status",
                json!(FindingStatus::Fixed),
                json!(classified.status),
            ));
        }

        let record = FindingRecord {
            id,
            fingerprint: new.fingerprint,
            scan_id: import.id,
            repo_url: import.repo_url.clone(),
            tool: import.tool.clone(),
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
            asset_id: Some(asset.id),
            first_seen_at: prior.map_or(at, |p| p.first_seen_at),
            last_seen_at: at,
        };
        members.push(Member {
            finding_id: id,
            fingerprint: record.fingerprint.clone(),
            severity: record.severity,
            status: record.status,
            is_new: classified.is_new,
        });
        if classified.created {
            created.push(findings.len());
        } else if classified.reopened {
            reopened.push(findings.len());
        }
        findings.push(record);
    }

    let current: HashSet<&str> = members.iter().map(|m| m.fingerprint.as_str()).collect();
    let gone = scan::fixed(baseline_open.iter().map(String::as_str), &current);
    let fixed_count = gone.len() as i64;
    // A pull request's scan reports what the change would fix; only a branch scan says the
    // code that is there no longer has the problem.
    let mut mark_fixed = Vec::new();
    if import.pr_number.is_none() {
        for fingerprint in gone {
            if let Some(prior) = existing.get(fingerprint).filter(|p| p.status.is_open()) {
                mark_fixed.push(prior.id);
                history_rows.push(history(
                    prior.id,
                    at,
                    &scan_actor,
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
        tool: import.tool,
        format: import.format,
        status: "completed".into(),
        external_scan_id: import.external_scan_id,
        started_at: import.started_at,
        finished_at: Some(at),
        counts,
        new_counts,
        fixed_count,
        baseline_scan_id: baseline,
        commit_sha: import.commit_sha,
        branch_name: import.branch_name,
        pr_number: import.pr_number,
        target_branch: import.target_branch,
        repo_url: import.repo_url,
        asset_id: Some(asset.id),
        triggered_by: import.triggered_by,
    };

    Plan {
        scan,
        findings,
        members,
        mark_fixed,
        history: history_rows,
        created,
        reopened,
        asset: asset.clone(),
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
