//! [`ScanStore`] on PostgreSQL. An import takes a transaction-scoped advisory lock on its
//! repository and tool, so two imports of the same code never classify against each other's
//! half-written rows. Findings are planned and written a batch at a time, each batch's findings
//! and scan membership as one statement that binds an array per column. This module never
//! decides what is new or fixed; `import_plan` does.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::IntegrationId;
use domain::ids::{AssetId, CommentId, FindingId, FindingRuleId, ScanId};
use domain::scan::FindingStatus;
use futures_util::TryStreamExt;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row, Transaction};
use uuid::Uuid;

use crate::import_plan::{self, Batch, Existing, Finish, Member, Planner, Prior};
use crate::postgres::{PgStore, insert_platform_events, lock_event_log};
use crate::postgres_gate::{claim_queued, complete_queued};
use crate::records::NewPlatformEvent;
use crate::scans::{
    AssetRecord, CommentRecord, FindingFilter, FindingRecord, FindingRuleRecord, FindingUpdate,
    HistoryRecord, ScanFilter, ScanImport, ScanRecord, ScanStore,
};
use crate::{Result, StoreError};

/// Findings per batch, and rows per multi-row statement: history's 7 columns × 2000 stay below
/// the protocol's 65,535 parameters.
const CHUNK: usize = 2000;

/// The typed ids, built from the UUID columns they are stored in.
trait FromUuid {
    fn from_uuid(uuid: Uuid) -> Self;
}

macro_rules! from_uuid {
    ($($id:ty),*) => {
        $(impl FromUuid for $id {
            fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
        })*
    };
}

from_uuid!(
    ScanId,
    FindingId,
    AssetId,
    FindingRuleId,
    CommentId,
    IntegrationId
);

impl FromUuid for Uuid {
    fn from_uuid(uuid: Uuid) -> Self {
        uuid
    }
}

fn id<T: FromUuid>(row: &PgRow, column: &str) -> Result<T> {
    Ok(T::from_uuid(row.try_get(column)?))
}

fn opt_id<T: FromUuid>(row: &PgRow, column: &str) -> Result<Option<T>> {
    Ok(row.try_get::<Option<Uuid>, _>(column)?.map(T::from_uuid))
}

fn parse_word<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown value {s:?}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &PgRow, column: &str) -> Result<T> {
    let Json(value) = row.try_get::<Json<T>, _>(column)?;
    Ok(value)
}

fn scan_from_row(row: &PgRow) -> Result<ScanRecord> {
    Ok(ScanRecord {
        id: id(row, "id")?,
        integration_id: opt_id(row, "integration_id")?,
        tool: row.try_get("tool")?,
        format: row.try_get("format")?,
        status: row.try_get("status")?,
        external_scan_id: row.try_get("external_scan_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        counts: json(row, "counts")?,
        new_counts: json(row, "new_counts")?,
        fixed_count: row.try_get("fixed_count")?,
        baseline_scan_id: opt_id(row, "baseline_scan_id")?,
        commit_sha: row.try_get("commit_sha")?,
        branch_name: row.try_get("branch_name")?,
        pr_number: row.try_get("pr_number")?,
        target_branch: row.try_get("target_branch")?,
        repo_url: row.try_get("repo_url")?,
        asset_id: opt_id(row, "asset_id")?,
        triggered_by: row.try_get("triggered_by")?,
    })
}

fn finding_from_row(row: &PgRow) -> Result<FindingRecord> {
    Ok(FindingRecord {
        id: id(row, "id")?,
        fingerprint: row.try_get("fingerprint")?,
        scan_id: id(row, "scan_id")?,
        repo_url: row.try_get("repo_url")?,
        tool: row.try_get("tool")?,
        rule_id: row.try_get("rule_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        severity: parse_word(row.try_get::<&str, _>("severity")?)?,
        vendor_severity: row.try_get("vendor_severity")?,
        status: parse_word(row.try_get::<&str, _>("status")?)?,
        kind: row.try_get("kind")?,
        file_path: row.try_get("file_path")?,
        line: row.try_get("line")?,
        package_name: row.try_get("package_name")?,
        package_version: row.try_get("package_version")?,
        purl: row.try_get("purl")?,
        vulnerability_ids: json(row, "vulnerability_ids")?,
        cvss_score: row.try_get("cvss_score")?,
        tags: json(row, "tags")?,
        assignee: row.try_get("assignee")?,
        asset_id: opt_id(row, "asset_id")?,
        first_seen_at: row.try_get("first_seen_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

fn asset_from_row(row: &PgRow) -> Result<AssetRecord> {
    Ok(AssetRecord {
        id: id(row, "id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        repo_url: row.try_get("repo_url")?,
        criticality: row.try_get("criticality")?,
        tags: json(row, "tags")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn rule_from_row(row: &PgRow) -> Result<FindingRuleRecord> {
    Ok(FindingRuleRecord {
        id: id(row, "id")?,
        name: row.try_get("name")?,
        priority: row.try_get("priority")?,
        conditions: json(row, "conditions")?,
        changes: json(row, "changes")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn history_from_row(row: &PgRow) -> Result<HistoryRecord> {
    Ok(HistoryRecord {
        id: id(row, "id")?,
        finding_id: id(row, "finding_id")?,
        created_at: row.try_get("created_at")?,
        actor: row.try_get("actor")?,
        field: row.try_get("field")?,
        old_value: row.try_get("old_value")?,
        new_value: row.try_get("new_value")?,
    })
}

async fn insert_asset_if_missing(
    tx: &mut Transaction<'_, Postgres>,
    repo_url: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(AssetRecord, bool)> {
    let row = sqlx::query("SELECT * FROM assets WHERE repo_url = $1")
        .bind(repo_url)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(row) = row {
        return Ok((asset_from_row(&row)?, false));
    }
    // Imports of other tools (other advisory locks) may create the same asset at once: the
    // loser's insert waits for the winner's commit, does nothing, and the winner's row is read.
    let asset = AssetRecord::for_repository(repo_url, at);
    let inserted = sqlx::query(
        "INSERT INTO assets (id, kind, name, repo_url, criticality, tags, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (repo_url) DO NOTHING",
    )
    .bind(asset.id.0)
    .bind(&asset.kind)
    .bind(&asset.name)
    .bind(&asset.repo_url)
    .bind(asset.criticality)
    .bind(Json(&asset.tags))
    .bind(asset.created_at)
    .bind(asset.updated_at)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok((asset, true));
    }
    let row = sqlx::query("SELECT * FROM assets WHERE repo_url = $1")
        .bind(repo_url)
        .fetch_one(&mut **tx)
        .await?;
    Ok((asset_from_row(&row)?, false))
}

async fn find_baseline(
    tx: &mut Transaction<'_, Postgres>,
    import: &ScanImport,
) -> Result<Option<ScanId>> {
    for branch in import_plan::baseline_branches(import) {
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM scans WHERE repo_url = $1 AND tool = $2 AND branch_name = $3 \
             AND pr_number IS NULL AND status = 'completed' ORDER BY id DESC LIMIT 1",
        )
        .bind(&import.repo_url)
        .bind(&import.tool)
        .bind(&branch)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = id {
            return Ok(Some(ScanId(id)));
        }
    }
    Ok(None)
}

/// The repository's stored findings of this tool, read row by row into the map.
async fn load_existing(
    tx: &mut Transaction<'_, Postgres>,
    import: &ScanImport,
) -> Result<HashMap<String, Existing>> {
    let mut rows = sqlx::query(
        "SELECT id, fingerprint, status, severity, tags, assignee, first_seen_at FROM findings \
         WHERE repo_url = $1 AND tool = $2",
    )
    .bind(&import.repo_url)
    .bind(&import.tool)
    .fetch(&mut **tx);
    let mut existing = HashMap::new();
    while let Some(row) = rows.try_next().await? {
        existing.insert(
            row.try_get("fingerprint")?,
            Existing {
                id: id(&row, "id")?,
                status: parse_word(row.try_get::<&str, _>("status")?)?,
                severity: parse_word(row.try_get::<&str, _>("severity")?)?,
                tags: json(&row, "tags")?,
                assignee: row.try_get("assignee")?,
                first_seen_at: row.try_get("first_seen_at")?,
            },
        );
    }
    Ok(existing)
}

async fn load_baseline_open(
    tx: &mut Transaction<'_, Postgres>,
    baseline: Option<ScanId>,
) -> Result<HashMap<String, bool>> {
    let Some(baseline) = baseline else {
        return Ok(HashMap::new());
    };
    let mut rows = sqlx::query_scalar::<_, String>(
        "SELECT fingerprint FROM scan_findings WHERE scan_id = $1 \
         AND status IN ('open', 'in_progress')",
    )
    .bind(baseline.0)
    .fetch(&mut **tx);
    let mut open = HashMap::new();
    while let Some(fingerprint) = rows.try_next().await? {
        open.insert(fingerprint, false);
    }
    Ok(open)
}

async fn insert_scan(tx: &mut Transaction<'_, Postgres>, scan: &ScanRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO scans (id, integration_id, tool, format, status, external_scan_id, \
         started_at, finished_at, counts, new_counts, fixed_count, baseline_scan_id, commit_sha, \
         branch_name, pr_number, target_branch, repo_url, asset_id, triggered_by) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(scan.id.0)
    .bind(scan.integration_id.map(|i| i.0))
    .bind(&scan.tool)
    .bind(&scan.format)
    .bind(&scan.status)
    .bind(&scan.external_scan_id)
    .bind(scan.started_at)
    .bind(scan.finished_at)
    .bind(Json(&scan.counts))
    .bind(Json(&scan.new_counts))
    .bind(scan.fixed_count)
    .bind(scan.baseline_scan_id.map(|i| i.0))
    .bind(&scan.commit_sha)
    .bind(&scan.branch_name)
    .bind(scan.pr_number)
    .bind(&scan.target_branch)
    .bind(&scan.repo_url)
    .bind(scan.asset_id.map(|i| i.0))
    .bind(&scan.triggered_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The finding upsert: one array per column, so every batch runs the same prepared statement
/// whatever its size.
const UPSERT_FINDINGS: &str = "INSERT INTO findings (id, repo_url, tool, fingerprint, scan_id, \
    rule_id, title, description, severity, vendor_severity, status, kind, file_path, line, \
    package_name, package_version, purl, vulnerability_ids, cvss_score, tags, assignee, asset_id, \
    first_seen_at, last_seen_at) \
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], \
    $14::int8[], $15::text[], $16::text[], $17::text[], $18::jsonb[], $19::float8[], \
    $20::jsonb[], $21::text[], $22::uuid[], $23::timestamptz[], $24::timestamptz[]) \
    ON CONFLICT (repo_url, tool, fingerprint) DO UPDATE SET scan_id = excluded.scan_id, \
    rule_id = excluded.rule_id, title = excluded.title, description = excluded.description, \
    severity = excluded.severity, vendor_severity = excluded.vendor_severity, \
    status = excluded.status, kind = excluded.kind, file_path = excluded.file_path, \
    line = excluded.line, package_name = excluded.package_name, \
    package_version = excluded.package_version, purl = excluded.purl, \
    vulnerability_ids = excluded.vulnerability_ids, cvss_score = excluded.cvss_score, \
    tags = excluded.tags, assignee = excluded.assignee, asset_id = excluded.asset_id, \
    last_seen_at = excluded.last_seen_at";

async fn upsert_findings(
    tx: &mut Transaction<'_, Postgres>,
    findings: &[&FindingRecord],
) -> Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&FindingRecord) -> Option<&str>| -> Vec<Option<&str>> {
        findings.iter().map(|r| f(r)).collect()
    };
    let each =
        |f: fn(&FindingRecord) -> Uuid| -> Vec<Uuid> { findings.iter().map(|r| f(r)).collect() };
    let json_list = |f: fn(&FindingRecord) -> &Vec<String>| -> Vec<Json<&Vec<String>>> {
        findings.iter().map(|r| Json(f(r))).collect()
    };
    let time = |f: fn(&FindingRecord) -> DateTime<Utc>| -> Vec<DateTime<Utc>> {
        findings.iter().map(|r| f(r)).collect()
    };
    sqlx::query(UPSERT_FINDINGS)
        .bind(each(|f| f.id.0))
        .bind(text(|f| Some(&f.repo_url)))
        .bind(text(|f| Some(&f.tool)))
        .bind(text(|f| Some(&f.fingerprint)))
        .bind(each(|f| f.scan_id.0))
        .bind(text(|f| Some(&f.rule_id)))
        .bind(text(|f| Some(&f.title)))
        .bind(text(|f| f.description.as_deref()))
        .bind(text(|f| Some(f.severity.as_str())))
        .bind(text(|f| f.vendor_severity.as_deref()))
        .bind(text(|f| Some(f.status.as_str())))
        .bind(text(|f| Some(&f.kind)))
        .bind(text(|f| f.file_path.as_deref()))
        .bind(findings.iter().map(|f| f.line).collect::<Vec<_>>())
        .bind(text(|f| f.package_name.as_deref()))
        .bind(text(|f| f.package_version.as_deref()))
        .bind(text(|f| f.purl.as_deref()))
        .bind(json_list(|f| &f.vulnerability_ids))
        .bind(findings.iter().map(|f| f.cvss_score).collect::<Vec<_>>())
        .bind(json_list(|f| &f.tags))
        .bind(text(|f| f.assignee.as_deref()))
        .bind(
            findings
                .iter()
                .map(|f| f.asset_id.map(|a| a.0))
                .collect::<Vec<_>>(),
        )
        .bind(time(|f| f.first_seen_at))
        .bind(time(|f| f.last_seen_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The update of findings the repository already stores, by id: no conflict check and no row
/// lock per row, which an upsert of rows known to exist would pay for nothing.
const UPDATE_FINDINGS: &str = "UPDATE findings f SET scan_id = u.scan_id, rule_id = u.rule_id, \
    title = u.title, description = u.description, severity = u.severity, \
    vendor_severity = u.vendor_severity, status = u.status, kind = u.kind, \
    file_path = u.file_path, line = u.line, package_name = u.package_name, \
    package_version = u.package_version, purl = u.purl, \
    vulnerability_ids = u.vulnerability_ids, cvss_score = u.cvss_score, tags = u.tags, \
    assignee = u.assignee, asset_id = u.asset_id, last_seen_at = u.last_seen_at \
    FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], \
    $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[], \
    $14::text[], $15::jsonb[], $16::float8[], $17::jsonb[], $18::text[], $19::uuid[], \
    $20::timestamptz[]) AS u(id, scan_id, rule_id, title, description, severity, \
    vendor_severity, status, kind, file_path, line, package_name, package_version, purl, \
    vulnerability_ids, cvss_score, tags, assignee, asset_id, last_seen_at) \
    WHERE f.id = u.id";

async fn update_findings(
    tx: &mut Transaction<'_, Postgres>,
    findings: &[&FindingRecord],
) -> Result<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&FindingRecord) -> Option<&str>| -> Vec<Option<&str>> {
        findings.iter().map(|r| f(r)).collect()
    };
    let json_list = |f: fn(&FindingRecord) -> &Vec<String>| -> Vec<Json<&Vec<String>>> {
        findings.iter().map(|r| Json(f(r))).collect()
    };
    sqlx::query(UPDATE_FINDINGS)
        .bind(findings.iter().map(|f| f.id.0).collect::<Vec<_>>())
        .bind(findings.iter().map(|f| f.scan_id.0).collect::<Vec<_>>())
        .bind(text(|f| Some(&f.rule_id)))
        .bind(text(|f| Some(&f.title)))
        .bind(text(|f| f.description.as_deref()))
        .bind(text(|f| Some(f.severity.as_str())))
        .bind(text(|f| f.vendor_severity.as_deref()))
        .bind(text(|f| Some(f.status.as_str())))
        .bind(text(|f| Some(&f.kind)))
        .bind(text(|f| f.file_path.as_deref()))
        .bind(findings.iter().map(|f| f.line).collect::<Vec<_>>())
        .bind(text(|f| f.package_name.as_deref()))
        .bind(text(|f| f.package_version.as_deref()))
        .bind(text(|f| f.purl.as_deref()))
        .bind(json_list(|f| &f.vulnerability_ids))
        .bind(findings.iter().map(|f| f.cvss_score).collect::<Vec<_>>())
        .bind(json_list(|f| &f.tags))
        .bind(text(|f| f.assignee.as_deref()))
        .bind(
            findings
                .iter()
                .map(|f| f.asset_id.map(|a| a.0))
                .collect::<Vec<_>>(),
        )
        .bind(findings.iter().map(|f| f.last_seen_at).collect::<Vec<_>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_members(
    tx: &mut Transaction<'_, Postgres>,
    scan_id: ScanId,
    members: &[Member],
) -> Result<()> {
    if members.is_empty() {
        return Ok(());
    }
    let finding_ids: Vec<Uuid> = members.iter().map(|m| m.finding_id.0).collect();
    let fingerprints: Vec<&str> = members.iter().map(|m| m.fingerprint.as_str()).collect();
    let severities: Vec<&str> = members.iter().map(|m| m.severity.as_str()).collect();
    let statuses: Vec<&str> = members.iter().map(|m| m.status.as_str()).collect();
    let is_new: Vec<bool> = members.iter().map(|m| m.is_new).collect();
    sqlx::query(
        "INSERT INTO scan_findings (scan_id, finding_id, fingerprint, severity, status, is_new) \
         SELECT $1, * FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::text[], $6::bool[])",
    )
    .bind(scan_id.0)
    .bind(finding_ids)
    .bind(fingerprints)
    .bind(severities)
    .bind(statuses)
    .bind(is_new)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_batch(
    tx: &mut Transaction<'_, Postgres>,
    scan_id: ScanId,
    batch: &Batch,
) -> Result<()> {
    // Rows are stored or not as the import read them under its lock; new rows still go through
    // the upsert, which costs nothing extra when nothing conflicts.
    let (stored, new): (Vec<_>, Vec<_>) = batch
        .findings
        .iter()
        .zip(&batch.stored)
        .partition(|(_, stored)| **stored);
    let new: Vec<&FindingRecord> = new.into_iter().map(|(f, _)| f).collect();
    let stored: Vec<&FindingRecord> = stored.into_iter().map(|(f, _)| f).collect();
    upsert_findings(tx, &new).await?;
    update_findings(tx, &stored).await?;
    insert_members(tx, scan_id, &batch.members).await?;
    insert_history(tx, &batch.history).await?;
    stage_events(tx, batch.events.iter()).await
}

/// Writes the scan row (over its queued row when the import `completes` one), what it fixed and
/// the `scan_finished` event.
async fn write_finish(
    tx: &mut Transaction<'_, Postgres>,
    finish: &Finish,
    completes: bool,
) -> Result<()> {
    if completes {
        complete_queued(tx, &finish.scan).await?;
    } else {
        insert_scan(tx, &finish.scan).await?;
    }
    if !finish.mark_fixed.is_empty() {
        let ids: Vec<Uuid> = finish.mark_fixed.iter().map(|id| id.0).collect();
        sqlx::query("UPDATE findings SET status = $1 WHERE id = ANY($2)")
            .bind(FindingStatus::Fixed.as_str())
            .bind(ids)
            .execute(&mut **tx)
            .await?;
    }
    insert_history(tx, &finish.history).await?;
    lock_event_log(tx).await?;
    sqlx::query(
        "INSERT INTO platform_events (id, event_type, payload, created_at) \
         SELECT id, event_type, payload, created_at FROM import_events ORDER BY n",
    )
    .execute(&mut **tx)
    .await?;
    insert_events(tx, finish.events.iter()).await
}

/// A table private to the import's transaction where its events wait until the end, so the
/// event-log lock is held only for the final append (see [`lock_event_log`]).
async fn create_event_stage(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query(
        "CREATE TEMPORARY TABLE import_events (n BIGSERIAL PRIMARY KEY, id UUID NOT NULL, \
         event_type TEXT NOT NULL, payload JSONB NOT NULL, created_at TIMESTAMPTZ NOT NULL) \
         ON COMMIT DROP",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn stage_events(
    tx: &mut Transaction<'_, Postgres>,
    events: impl Iterator<Item = &NewPlatformEvent>,
) -> Result<()> {
    write_events(tx, "import_events", events).await
}

async fn insert_history(tx: &mut Transaction<'_, Postgres>, rows: &[HistoryRecord]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut query = QueryBuilder::<Postgres>::new(
            "INSERT INTO finding_history (id, finding_id, created_at, actor, field, old_value, \
             new_value) ",
        );
        query.push_values(chunk, |mut row, h| {
            row.push_bind(h.id)
                .push_bind(h.finding_id.0)
                .push_bind(h.created_at)
                .push_bind(&h.actor)
                .push_bind(&h.field)
                .push_bind(&h.old_value)
                .push_bind(&h.new_value);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The platform-event insert of `postgres.rs`, many rows per statement.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: impl Iterator<Item = &NewPlatformEvent>,
) -> Result<()> {
    let mut events = events.peekable();
    if events.peek().is_none() {
        return Ok(());
    }
    lock_event_log(tx).await?;
    write_events(tx, "platform_events", events).await
}

/// Inserts events into `table` (the log or the import's stage) in order, many per statement.
async fn write_events(
    tx: &mut Transaction<'_, Postgres>,
    table: &str,
    events: impl Iterator<Item = &NewPlatformEvent>,
) -> Result<()> {
    let mut events = events.peekable();
    while events.peek().is_some() {
        let chunk: Vec<&NewPlatformEvent> = events.by_ref().take(CHUNK).collect();
        let mut query = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {table} (id, event_type, payload, created_at) "
        ));
        query.push_values(&chunk, |mut row, e| {
            row.push_bind(e.id.0)
                .push_bind(&e.event_type)
                .push_bind(&e.payload)
                .push_bind(e.created_at);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn push_finding_filter(query: &mut QueryBuilder<'_, Postgres>, filter: &FindingFilter) {
    if let Some(scan) = filter.scan_id {
        query.push(" JOIN scan_findings sf ON sf.finding_id = f.id AND sf.scan_id = ");
        query.push_bind(scan.0);
        if filter.only_new {
            query.push(" AND sf.is_new");
        }
    }
    query.push(" WHERE 1 = 1");
    if let Some(repo) = &filter.repo_url {
        query.push(" AND f.repo_url = ").push_bind(repo.clone());
    }
    if let Some(tool) = &filter.tool {
        query.push(" AND f.tool = ").push_bind(tool.clone());
    }
    if let Some(status) = filter.status {
        query.push(" AND f.status = ").push_bind(status.as_str());
    }
    if let Some(severity) = filter.severity {
        query
            .push(" AND f.severity = ")
            .push_bind(severity.as_str());
    }
    if let Some(asset) = filter.asset_id {
        query.push(" AND f.asset_id = ").push_bind(asset.0);
    }
}

#[async_trait]
impl ScanStore for PgStore {
    async fn import_scan(&self, mut import: ScanImport) -> Result<ScanRecord> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{}\n{}", import.repo_url, import.tool))
            .execute(&mut *tx)
            .await?;
        let queued = claim_queued(&mut tx, &import).await?;
        let completes = queued.is_some();
        if let Some(queued) = queued {
            import_plan::adopt(&mut import, queued);
        }
        let (asset, created) =
            insert_asset_if_missing(&mut tx, &import.repo_url, import.finished_at).await?;
        create_event_stage(&mut tx).await?;
        if created {
            let payload = serde_json::json!({ "asset": asset });
            let event = import_plan::event("asset_created", payload, import.finished_at);
            stage_events(&mut tx, std::iter::once(&event)).await?;
        }
        let baseline = find_baseline(&mut tx, &import).await?;
        let prior = Prior {
            baseline,
            baseline_open: load_baseline_open(&mut tx, baseline).await?,
            existing: load_existing(&mut tx, &import).await?,
        };

        // The findings go through the planner and into the database a batch at a time.
        let mut findings = std::mem::take(&mut import.findings).into_iter();
        let mut planner = Planner::new(&import, &asset, prior);
        loop {
            let batch = planner.batch(findings.by_ref().take(CHUNK));
            if batch.findings.is_empty() {
                break;
            }
            write_batch(&mut tx, import.id, &batch).await?;
        }
        drop(findings);
        let finish = planner.finish();
        write_finish(&mut tx, &finish, completes).await?;
        tx.commit().await?;
        Ok(finish.scan)
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<ScanRecord>> {
        let row = sqlx::query("SELECT * FROM scans WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(scan_from_row).transpose()
    }

    async fn list_scans(
        &self,
        filter: &ScanFilter,
        before: Option<ScanId>,
        limit: u32,
    ) -> Result<Vec<ScanRecord>> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT * FROM scans WHERE 1 = 1");
        if let Some(repo) = &filter.repo_url {
            query.push(" AND repo_url = ").push_bind(repo.clone());
        }
        if let Some(branch) = &filter.branch_name {
            query.push(" AND branch_name = ").push_bind(branch.clone());
        }
        if let Some(pr) = filter.pr_number {
            query.push(" AND pr_number = ").push_bind(pr);
        }
        if let Some(status) = &filter.status {
            query.push(" AND status = ").push_bind(status.clone());
        }
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before.0);
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(scan_from_row).collect()
    }

    async fn get_finding(&self, id: FindingId) -> Result<Option<FindingRecord>> {
        let row = sqlx::query("SELECT * FROM findings WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(finding_from_row).transpose()
    }

    async fn list_findings(
        &self,
        filter: &FindingFilter,
        after: Option<FindingId>,
        limit: u32,
    ) -> Result<Vec<FindingRecord>> {
        let mut query = QueryBuilder::<Postgres>::new("SELECT f.* FROM findings f");
        push_finding_filter(&mut query, filter);
        if let Some(after) = after {
            query.push(" AND f.id > ").push_bind(after.0);
        }
        query
            .push(" ORDER BY f.id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn update_finding(&self, update: &FindingUpdate) -> Result<()> {
        let f = &update.finding;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE findings SET severity = $2, status = $3, assignee = $4, tags = $5 \
             WHERE id = $1",
        )
        .bind(f.id.0)
        .bind(f.severity.as_str())
        .bind(f.status.as_str())
        .bind(&f.assignee)
        .bind(Json(&f.tags))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_history(&mut tx, &update.history).await?;
        insert_platform_events(&mut tx, &update.events).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_finding_history(&self, id: FindingId) -> Result<Vec<HistoryRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_history WHERE finding_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(history_from_row).collect()
    }

    async fn insert_comment(&self, c: &CommentRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO finding_comments (id, finding_id, author, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.id.0)
        .bind(c.finding_id.0)
        .bind(&c.author)
        .bind(&c.body)
        .bind(c.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_comments(&self, finding: FindingId) -> Result<Vec<CommentRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_comments WHERE finding_id = $1 ORDER BY id")
            .bind(finding.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CommentRecord {
                    id: id(row, "id")?,
                    finding_id: id(row, "finding_id")?,
                    author: row.try_get("author")?,
                    body: row.try_get("body")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn insert_finding_rule(&self, r: &FindingRuleRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO finding_rules (id, name, priority, conditions, changes, is_active, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(r.id.0)
        .bind(&r.name)
        .bind(r.priority)
        .bind(Json(&r.conditions))
        .bind(Json(&r.changes))
        .bind(r.is_active)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_finding_rule(&self, id: FindingRuleId) -> Result<Option<FindingRuleRecord>> {
        let row = sqlx::query("SELECT * FROM finding_rules WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn list_finding_rules(&self) -> Result<Vec<FindingRuleRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_rules ORDER BY priority, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn update_finding_rule(&self, r: &FindingRuleRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE finding_rules SET name = $2, priority = $3, conditions = $4, changes = $5, \
             is_active = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(r.id.0)
        .bind(&r.name)
        .bind(r.priority)
        .bind(Json(&r.conditions))
        .bind(Json(&r.changes))
        .bind(r.is_active)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_finding_rule(&self, id: FindingRuleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM finding_rules WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_asset(&self, id: AssetId) -> Result<Option<AssetRecord>> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn find_asset_by_repo(&self, repo_url: &str) -> Result<Option<AssetRecord>> {
        let row = sqlx::query("SELECT * FROM assets WHERE repo_url = $1")
            .bind(repo_url)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn list_assets(&self, after: Option<AssetId>, limit: u32) -> Result<Vec<AssetRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM assets WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(asset_from_row).collect()
    }

    async fn update_asset(&self, a: &AssetRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE assets SET criticality = $2, tags = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(a.id.0)
        .bind(a.criticality)
        .bind(Json(&a.tags))
        .bind(a.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
