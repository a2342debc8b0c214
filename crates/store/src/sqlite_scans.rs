//! [`ScanStore`] on SQLite. Imports run on the single writer connection, so two imports never
//! interleave. Findings are planned and written a batch at a time, as multi-row statements well
//! under SQLite's bound-variable limit. JSON values are stored as text. This module never
//! decides what is new or fixed; `import_plan` does.

use std::collections::HashMap;

use async_trait::async_trait;
use domain::ids::{AssetId, FindingId, FindingRuleId, ScanId};
use domain::scan::FindingStatus;
use futures_util::TryStreamExt;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::import_plan::{self, Batch, Existing, Finish, Member, Planner, Prior};
use crate::records::NewPlatformEvent;
use crate::scans::{
    AssetRecord, CommentRecord, FindingFilter, FindingRecord, FindingRuleRecord, FindingUpdate,
    HistoryRecord, ScanFilter, ScanImport, ScanRecord, ScanStore,
};
use crate::sqlite::{SqliteStore, insert_platform_event, parse_id};
use crate::sqlite_gate::{claim_queued, complete_queued};
use crate::{Result, StoreError};

/// Rows per multi-row statement: 24 columns × 1000 stays below 32,766 variables.
const CHUNK: usize = 1000;

fn opt_id<T: std::str::FromStr>(value: Option<String>) -> Result<Option<T>> {
    value.as_deref().map(parse_id).transpose()
}

fn parse_word<T: std::str::FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown value {s:?}")))
}

fn json<T: serde::de::DeserializeOwned>(row: &SqliteRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    Ok(serde_json::from_str(&text)?)
}

fn scan_from_row(row: &SqliteRow) -> Result<ScanRecord> {
    Ok(ScanRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        integration_id: opt_id(row.try_get("integration_id")?)?,
        tool: row.try_get("tool")?,
        format: row.try_get("format")?,
        status: row.try_get("status")?,
        external_scan_id: row.try_get("external_scan_id")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        counts: json(row, "counts")?,
        new_counts: json(row, "new_counts")?,
        fixed_count: row.try_get("fixed_count")?,
        baseline_scan_id: opt_id(row.try_get("baseline_scan_id")?)?,
        commit_sha: row.try_get("commit_sha")?,
        branch_name: row.try_get("branch_name")?,
        pr_number: row.try_get("pr_number")?,
        target_branch: row.try_get("target_branch")?,
        repo_url: row.try_get("repo_url")?,
        asset_id: opt_id(row.try_get("asset_id")?)?,
        triggered_by: row.try_get("triggered_by")?,
    })
}

fn finding_from_row(row: &SqliteRow) -> Result<FindingRecord> {
    Ok(FindingRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        fingerprint: row.try_get("fingerprint")?,
        scan_id: parse_id(row.try_get::<&str, _>("scan_id")?)?,
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
        asset_id: opt_id(row.try_get("asset_id")?)?,
        first_seen_at: row.try_get("first_seen_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

fn asset_from_row(row: &SqliteRow) -> Result<AssetRecord> {
    Ok(AssetRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        repo_url: row.try_get("repo_url")?,
        criticality: row.try_get("criticality")?,
        tags: json(row, "tags")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn rule_from_row(row: &SqliteRow) -> Result<FindingRuleRecord> {
    Ok(FindingRuleRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        name: row.try_get("name")?,
        priority: row.try_get("priority")?,
        conditions: json(row, "conditions")?,
        changes: json(row, "changes")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn history_from_row(row: &SqliteRow) -> Result<HistoryRecord> {
    let value = |column: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    };
    Ok(HistoryRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        finding_id: parse_id(row.try_get::<&str, _>("finding_id")?)?,
        created_at: row.try_get("created_at")?,
        actor: row.try_get("actor")?,
        field: row.try_get("field")?,
        old_value: value("old_value")?,
        new_value: value("new_value")?,
    })
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

async fn insert_asset_if_missing(
    tx: &mut Transaction<'_, Sqlite>,
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
    let asset = AssetRecord::for_repository(repo_url, at);
    sqlx::query(
        "INSERT INTO assets (id, kind, name, repo_url, criticality, tags, created_at, \
         updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(asset.id.to_string())
    .bind(&asset.kind)
    .bind(&asset.name)
    .bind(&asset.repo_url)
    .bind(asset.criticality)
    .bind(json_text(&asset.tags)?)
    .bind(asset.created_at)
    .bind(asset.updated_at)
    .execute(&mut **tx)
    .await?;
    Ok((asset, true))
}

async fn find_baseline(
    tx: &mut Transaction<'_, Sqlite>,
    import: &ScanImport,
) -> Result<Option<ScanId>> {
    for branch in import_plan::baseline_branches(import) {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM scans WHERE repo_url = $1 AND tool = $2 AND branch_name = $3 \
             AND pr_number IS NULL AND status = 'completed' ORDER BY id DESC LIMIT 1",
        )
        .bind(&import.repo_url)
        .bind(&import.tool)
        .bind(&branch)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = id {
            return Ok(Some(parse_id(&id)?));
        }
    }
    Ok(None)
}

/// The repository's stored findings of this tool, read row by row into the map rather than
/// as one result set, so a large repository is held once.
async fn load_existing(
    tx: &mut Transaction<'_, Sqlite>,
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
        let tags: &str = row.try_get("tags")?;
        existing.insert(
            row.try_get("fingerprint")?,
            Existing {
                id: parse_id(row.try_get::<&str, _>("id")?)?,
                status: parse_word(row.try_get::<&str, _>("status")?)?,
                severity: parse_word(row.try_get::<&str, _>("severity")?)?,
                tags: if tags == "[]" {
                    Vec::new()
                } else {
                    serde_json::from_str(tags)?
                },
                assignee: row.try_get("assignee")?,
                first_seen_at: row.try_get("first_seen_at")?,
            },
        );
    }
    Ok(existing)
}

async fn load_baseline_open(
    tx: &mut Transaction<'_, Sqlite>,
    baseline: Option<ScanId>,
) -> Result<HashMap<String, bool>> {
    let Some(baseline) = baseline else {
        return Ok(HashMap::new());
    };
    let mut rows = sqlx::query_scalar::<_, String>(
        "SELECT fingerprint FROM scan_findings WHERE scan_id = $1 \
         AND status IN ('open', 'in_progress')",
    )
    .bind(baseline.to_string())
    .fetch(&mut **tx);
    let mut open = HashMap::new();
    while let Some(fingerprint) = rows.try_next().await? {
        open.insert(fingerprint, false);
    }
    Ok(open)
}

async fn insert_scan(tx: &mut Transaction<'_, Sqlite>, scan: &ScanRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO scans (id, integration_id, tool, format, status, external_scan_id, \
         started_at, finished_at, counts, new_counts, fixed_count, baseline_scan_id, commit_sha, \
         branch_name, pr_number, target_branch, repo_url, asset_id, triggered_by) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(scan.id.to_string())
    .bind(scan.integration_id.map(|i| i.to_string()))
    .bind(&scan.tool)
    .bind(&scan.format)
    .bind(&scan.status)
    .bind(&scan.external_scan_id)
    .bind(scan.started_at)
    .bind(scan.finished_at)
    .bind(json_text(&scan.counts)?)
    .bind(json_text(&scan.new_counts)?)
    .bind(scan.fixed_count)
    .bind(scan.baseline_scan_id.map(|i| i.to_string()))
    .bind(&scan.commit_sha)
    .bind(&scan.branch_name)
    .bind(scan.pr_number)
    .bind(&scan.target_branch)
    .bind(&scan.repo_url)
    .bind(scan.asset_id.map(|i| i.to_string()))
    .bind(&scan.triggered_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const FINDING_COLUMNS: &str = "id, repo_url, tool, fingerprint, scan_id, rule_id, title, \
    description, severity, vendor_severity, status, kind, file_path, line, package_name, \
    package_version, purl, vulnerability_ids, cvss_score, tags, assignee, asset_id, \
    first_seen_at, last_seen_at";

async fn upsert_findings(
    tx: &mut Transaction<'_, Sqlite>,
    findings: &[FindingRecord],
) -> Result<()> {
    for chunk in findings.chunks(CHUNK) {
        let encoded = chunk
            .iter()
            .map(|f| Ok((json_text(&f.vulnerability_ids)?, json_text(&f.tags)?)))
            .collect::<Result<Vec<_>>>()?;
        let mut query =
            QueryBuilder::<Sqlite>::new(format!("INSERT INTO findings ({FINDING_COLUMNS}) "));
        query.push_values(chunk.iter().zip(encoded), |mut row, (f, (vulns, tags))| {
            row.push_bind(f.id.to_string())
                .push_bind(&f.repo_url)
                .push_bind(&f.tool)
                .push_bind(&f.fingerprint)
                .push_bind(f.scan_id.to_string())
                .push_bind(&f.rule_id)
                .push_bind(&f.title)
                .push_bind(&f.description)
                .push_bind(f.severity.as_str())
                .push_bind(&f.vendor_severity)
                .push_bind(f.status.as_str())
                .push_bind(&f.kind)
                .push_bind(&f.file_path)
                .push_bind(f.line)
                .push_bind(&f.package_name)
                .push_bind(&f.package_version)
                .push_bind(&f.purl)
                .push_bind(vulns)
                .push_bind(f.cvss_score)
                .push_bind(tags)
                .push_bind(&f.assignee)
                .push_bind(f.asset_id.map(|a| a.to_string()))
                .push_bind(f.first_seen_at)
                .push_bind(f.last_seen_at);
        });
        query.push(
            " ON CONFLICT (repo_url, tool, fingerprint) DO UPDATE SET scan_id = excluded.scan_id, \
             rule_id = excluded.rule_id, title = excluded.title, \
             description = excluded.description, severity = excluded.severity, \
             vendor_severity = excluded.vendor_severity, status = excluded.status, \
             kind = excluded.kind, file_path = excluded.file_path, line = excluded.line, \
             package_name = excluded.package_name, package_version = excluded.package_version, \
             purl = excluded.purl, vulnerability_ids = excluded.vulnerability_ids, \
             cvss_score = excluded.cvss_score, tags = excluded.tags, \
             assignee = excluded.assignee, asset_id = excluded.asset_id, \
             last_seen_at = excluded.last_seen_at",
        );
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn write_batch(tx: &mut Transaction<'_, Sqlite>, scan_id: &str, batch: &Batch) -> Result<()> {
    upsert_findings(tx, &batch.findings).await?;
    insert_members(tx, scan_id, &batch.members).await?;
    insert_history(tx, &batch.history).await?;
    insert_events(tx, batch.events.iter()).await
}

async fn insert_members(
    tx: &mut Transaction<'_, Sqlite>,
    scan_id: &str,
    members: &[Member],
) -> Result<()> {
    for chunk in members.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO scan_findings (scan_id, finding_id, fingerprint, severity, status, \
             is_new) ",
        );
        query.push_values(chunk, |mut row, m| {
            row.push_bind(scan_id)
                .push_bind(m.finding_id.to_string())
                .push_bind(&m.fingerprint)
                .push_bind(m.severity.as_str())
                .push_bind(m.status.as_str())
                .push_bind(m.is_new);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the scan row (over its queued row when the import `completes` one), what it fixed and
/// the `scan_finished` event.
async fn write_finish(
    tx: &mut Transaction<'_, Sqlite>,
    finish: &Finish,
    completes: bool,
) -> Result<()> {
    if completes {
        complete_queued(tx, &finish.scan).await?;
    } else {
        insert_scan(tx, &finish.scan).await?;
    }
    for chunk in finish.mark_fixed.chunks(CHUNK) {
        let mut query = QueryBuilder::<Sqlite>::new("UPDATE findings SET status = ");
        query.push_bind(FindingStatus::Fixed.as_str());
        query.push(" WHERE id IN (");
        let mut ids = query.separated(", ");
        for id in chunk {
            ids.push_bind(id.to_string());
        }
        query.push(")");
        query.build().execute(&mut **tx).await?;
    }
    insert_history(tx, &finish.history).await?;
    insert_events(tx, finish.events.iter()).await
}

async fn insert_history(tx: &mut Transaction<'_, Sqlite>, rows: &[HistoryRecord]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let encoded = chunk
            .iter()
            .map(|h| {
                let text = |v: &Option<serde_json::Value>| v.as_ref().map(json_text).transpose();
                Ok((text(&h.old_value)?, text(&h.new_value)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO finding_history (id, finding_id, created_at, actor, field, old_value, \
             new_value) ",
        );
        query.push_values(chunk.iter().zip(encoded), |mut row, (h, (old, new))| {
            row.push_bind(h.id.to_string())
                .push_bind(h.finding_id.to_string())
                .push_bind(h.created_at)
                .push_bind(&h.actor)
                .push_bind(&h.field)
                .push_bind(old)
                .push_bind(new);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// The platform-event insert of `sqlite.rs`, many rows per statement.
async fn insert_events(
    tx: &mut Transaction<'_, Sqlite>,
    events: impl Iterator<Item = &NewPlatformEvent>,
) -> Result<()> {
    let mut events = events.peekable();
    while events.peek().is_some() {
        let chunk: Vec<&NewPlatformEvent> = events.by_ref().take(CHUNK).collect();
        if let [one] = chunk.as_slice() {
            insert_platform_event(tx, one).await?;
            continue;
        }
        let payloads = chunk
            .iter()
            .map(|e| json_text(&e.payload))
            .collect::<Result<Vec<_>>>()?;
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO platform_events (id, event_type, payload, created_at) ",
        );
        query.push_values(chunk.iter().zip(payloads), |mut row, (e, payload)| {
            row.push_bind(e.id.to_string())
                .push_bind(&e.event_type)
                .push_bind(payload)
                .push_bind(e.created_at);
        });
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn push_finding_filter(query: &mut QueryBuilder<'_, Sqlite>, filter: &FindingFilter) {
    if let Some(scan) = filter.scan_id {
        query.push(" JOIN scan_findings sf ON sf.finding_id = f.id AND sf.scan_id = ");
        query.push_bind(scan.to_string());
        if filter.only_new {
            query.push(" AND sf.is_new = 1");
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
        query
            .push(" AND f.asset_id = ")
            .push_bind(asset.to_string());
    }
}

#[async_trait]
impl ScanStore for SqliteStore {
    async fn import_scan(&self, mut import: ScanImport) -> Result<ScanRecord> {
        let mut tx = self.writer.begin().await?;
        let queued = claim_queued(&mut tx, &import).await?;
        let completes = queued.is_some();
        if let Some(queued) = queued {
            import_plan::adopt(&mut import, queued);
        }
        let (asset, created) =
            insert_asset_if_missing(&mut tx, &import.repo_url, import.finished_at).await?;
        if created {
            let payload = serde_json::json!({ "asset": asset });
            let event = import_plan::event("asset_created", payload, import.finished_at);
            insert_platform_event(&mut tx, &event).await?;
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
        let scan_id = import.id.to_string();
        loop {
            let batch = planner.batch(findings.by_ref().take(CHUNK));
            if batch.findings.is_empty() {
                break;
            }
            write_batch(&mut tx, &scan_id, &batch).await?;
        }
        drop(findings);
        let finish = planner.finish();
        write_finish(&mut tx, &finish, completes).await?;
        tx.commit().await?;
        Ok(finish.scan)
    }

    async fn get_scan(&self, id: ScanId) -> Result<Option<ScanRecord>> {
        let row = sqlx::query("SELECT * FROM scans WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(scan_from_row).transpose()
    }

    async fn list_scans(
        &self,
        filter: &ScanFilter,
        before: Option<ScanId>,
        limit: u32,
    ) -> Result<Vec<ScanRecord>> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT * FROM scans WHERE 1 = 1");
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
            query.push(" AND id < ").push_bind(before.to_string());
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.readers).await?;
        rows.iter().map(scan_from_row).collect()
    }

    async fn get_finding(&self, id: FindingId) -> Result<Option<FindingRecord>> {
        let row = sqlx::query("SELECT * FROM findings WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(finding_from_row).transpose()
    }

    async fn list_findings(
        &self,
        filter: &FindingFilter,
        after: Option<FindingId>,
        limit: u32,
    ) -> Result<Vec<FindingRecord>> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT f.* FROM findings f");
        push_finding_filter(&mut query, filter);
        if let Some(after) = after {
            query.push(" AND f.id > ").push_bind(after.to_string());
        }
        query
            .push(" ORDER BY f.id LIMIT ")
            .push_bind(i64::from(limit));
        let rows = query.build().fetch_all(&self.readers).await?;
        rows.iter().map(finding_from_row).collect()
    }

    async fn update_finding(&self, update: &FindingUpdate) -> Result<()> {
        let f = &update.finding;
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE findings SET severity = $2, status = $3, assignee = $4, tags = $5 \
             WHERE id = $1",
        )
        .bind(f.id.to_string())
        .bind(f.severity.as_str())
        .bind(f.status.as_str())
        .bind(&f.assignee)
        .bind(json_text(&f.tags)?)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        insert_history(&mut tx, &update.history).await?;
        for event in &update.events {
            insert_platform_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_finding_history(&self, id: FindingId) -> Result<Vec<HistoryRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_history WHERE finding_id = $1 ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(history_from_row).collect()
    }

    async fn insert_comment(&self, c: &CommentRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO finding_comments (id, finding_id, author, body, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(c.id.to_string())
        .bind(c.finding_id.to_string())
        .bind(&c.author)
        .bind(&c.body)
        .bind(c.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_comments(&self, finding: FindingId) -> Result<Vec<CommentRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_comments WHERE finding_id = $1 ORDER BY id")
            .bind(finding.to_string())
            .fetch_all(&self.readers)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(CommentRecord {
                    id: parse_id(row.try_get::<&str, _>("id")?)?,
                    finding_id: parse_id(row.try_get::<&str, _>("finding_id")?)?,
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
        .bind(r.id.to_string())
        .bind(&r.name)
        .bind(r.priority)
        .bind(json_text(&r.conditions)?)
        .bind(json_text(&r.changes)?)
        .bind(r.is_active)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_finding_rule(&self, id: FindingRuleId) -> Result<Option<FindingRuleRecord>> {
        let row = sqlx::query("SELECT * FROM finding_rules WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(rule_from_row).transpose()
    }

    async fn list_finding_rules(&self) -> Result<Vec<FindingRuleRecord>> {
        let rows = sqlx::query("SELECT * FROM finding_rules ORDER BY priority, id")
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    async fn update_finding_rule(&self, r: &FindingRuleRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE finding_rules SET name = $2, priority = $3, conditions = $4, changes = $5, \
             is_active = $6, updated_at = $7 WHERE id = $1",
        )
        .bind(r.id.to_string())
        .bind(&r.name)
        .bind(r.priority)
        .bind(json_text(&r.conditions)?)
        .bind(json_text(&r.changes)?)
        .bind(r.is_active)
        .bind(r.updated_at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_finding_rule(&self, id: FindingRuleId) -> Result<()> {
        let done = sqlx::query("DELETE FROM finding_rules WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_asset(&self, id: AssetId) -> Result<Option<AssetRecord>> {
        let row = sqlx::query("SELECT * FROM assets WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn find_asset_by_repo(&self, repo_url: &str) -> Result<Option<AssetRecord>> {
        let row = sqlx::query("SELECT * FROM assets WHERE repo_url = $1")
            .bind(repo_url)
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(asset_from_row).transpose()
    }

    async fn list_assets(&self, after: Option<AssetId>, limit: u32) -> Result<Vec<AssetRecord>> {
        let rows =
            sqlx::query("SELECT * FROM assets WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2")
                .bind(after.map(|a| a.to_string()))
                .bind(i64::from(limit))
                .fetch_all(&self.readers)
                .await?;
        rows.iter().map(asset_from_row).collect()
    }

    async fn update_asset(&self, a: &AssetRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE assets SET criticality = $2, tags = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(a.id.to_string())
        .bind(a.criticality)
        .bind(json_text(&a.tags)?)
        .bind(a.updated_at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
