//! [`GateStore`] on SQLite. Writes go through the single writer connection; a step's start is
//! an `INSERT … ON CONFLICT DO NOTHING`, so two workers never both see a step as fresh. This
//! module never decides what a step's state means.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::IntegrationId;
use domain::gate::Breakdown;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

use crate::gate::{
    EXISTING_BY_SEVERITY, FIXED_BY_SEVERITY, GateStore, NEW_BY_SEVERITY, PrContext, QueuedScan,
    StepRecord, StepStart, counts_from,
};
use crate::import_plan::{QUEUED_MATCH, Queued};
use crate::records::NewPlatformEvent;
use crate::scans::{ScanImport, ScanRecord, ScanStore};
use crate::sqlite::{SqliteStore, insert_platform_event, parse_id};
use crate::{Result, StoreError};

fn step_from_row(row: &SqliteRow) -> Result<StepRecord> {
    let detail: String = row.try_get("detail")?;
    Ok(StepRecord {
        owner: row.try_get("owner")?,
        step: row.try_get("step")?,
        kind: row.try_get("kind")?,
        state: row.try_get("state")?,
        detail: serde_json::from_str(&detail)?,
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn pr_context_from_row(row: &SqliteRow) -> Result<PrContext> {
    Ok(PrContext {
        integration_id: parse_id(row.try_get::<&str, _>("integration_id")?)?,
        repo: row.try_get("repo")?,
        pr_number: row.try_get("pr_number")?,
        repo_url: row.try_get("repo_url")?,
        commit_sha: row.try_get("commit_sha")?,
        vendor_event: row.try_get("vendor_event")?,
        ci_event_id: parse_id(row.try_get::<&str, _>("ci_event_id")?)?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SqliteStore {
    async fn by_severity(
        &self,
        sql: &str,
        scan: &str,
        baseline: &str,
    ) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(sql)
            .bind(scan)
            .bind(baseline)
            .fetch_all(&self.readers)
            .await?)
    }
}

/// The queued scan `import` completes, if any (`import_plan::QUEUED_MATCH`). Imports run one
/// at a time on the writer connection, so the row read here is still queued at the update.
pub(crate) async fn claim_queued(
    tx: &mut Transaction<'_, Sqlite>,
    import: &ScanImport,
) -> Result<Option<Queued>> {
    let (Some(integration), Some(commit_sha)) = (import.integration_id, &import.commit_sha) else {
        return Ok(None);
    };
    let row = sqlx::query(QUEUED_MATCH)
        .bind(integration.to_string())
        .bind(&import.repo_url)
        .bind(commit_sha)
        .bind(&import.branch_name)
        .bind(import.pr_number)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Queued {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        started_at: row.try_get("started_at")?,
        target_branch: row.try_get("target_branch")?,
        triggered_by: row.try_get("triggered_by")?,
    }))
}

/// Writes a finished import over the queued row it claimed.
pub(crate) async fn complete_queued(
    tx: &mut Transaction<'_, Sqlite>,
    scan: &ScanRecord,
) -> Result<()> {
    let done = sqlx::query(
        "UPDATE scans SET tool = $2, format = $3, status = $4, external_scan_id = $5, \
         started_at = $6, finished_at = $7, counts = $8, new_counts = $9, fixed_count = $10, \
         baseline_scan_id = $11, target_branch = $12, asset_id = $13 \
         WHERE id = $1 AND status = 'queued'",
    )
    .bind(scan.id.to_string())
    .bind(&scan.tool)
    .bind(&scan.format)
    .bind(&scan.status)
    .bind(&scan.external_scan_id)
    .bind(scan.started_at)
    .bind(scan.finished_at)
    .bind(serde_json::to_string(&scan.counts)?)
    .bind(serde_json::to_string(&scan.new_counts)?)
    .bind(scan.fixed_count)
    .bind(scan.baseline_scan_id.map(|i| i.to_string()))
    .bind(&scan.target_branch)
    .bind(scan.asset_id.map(|i| i.to_string()))
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() != 1 {
        return Err(StoreError::Conflict(format!(
            "queued scan {} was completed by another import",
            scan.id
        )));
    }
    Ok(())
}

#[async_trait]
impl GateStore for SqliteStore {
    async fn begin_step(
        &self,
        owner: &str,
        step: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<StepStart> {
        let inserted = sqlx::query(
            "INSERT INTO orchestration_steps (owner, step, kind, state, started_at) \
             VALUES ($1, $2, $3, 'started', $4) ON CONFLICT (owner, step) DO NOTHING",
        )
        .bind(owner)
        .bind(step)
        .bind(kind)
        .bind(now)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(StepStart::Fresh);
        }
        let row = sqlx::query("SELECT * FROM orchestration_steps WHERE owner = $1 AND step = $2")
            .bind(owner)
            .bind(step)
            .fetch_one(&self.writer)
            .await?;
        let record = step_from_row(&row)?;
        Ok(if record.state == "started" {
            StepStart::Started(record)
        } else {
            StepStart::Finished(record)
        })
    }

    async fn restart_step(&self, owner: &str, step: &str, now: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE orchestration_steps SET started_at = $3, attempts = attempts + 1 \
             WHERE owner = $1 AND step = $2 AND state = 'started'",
        )
        .bind(owner)
        .bind(step)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn finish_step(
        &self,
        owner: &str,
        step: &str,
        state: &str,
        detail: &Value,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE orchestration_steps SET state = $3, detail = $4, error = $5, \
             finished_at = $6 WHERE owner = $1 AND step = $2",
        )
        .bind(owner)
        .bind(step)
        .bind(state)
        .bind(serde_json::to_string(detail)?)
        .bind(error)
        .bind(Utc::now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn list_steps(&self, owners: &[String]) -> Result<Vec<StepRecord>> {
        if owners.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT * FROM orchestration_steps WHERE owner IN (",
        );
        let mut list = query.separated(", ");
        for owner in owners {
            list.push_bind(owner.as_str());
        }
        query.push(") ORDER BY owner, step");
        let rows = query.build().fetch_all(&self.readers).await?;
        rows.iter().map(step_from_row).collect()
    }

    async fn queue_scan(&self, owner: &str, step: &str, scan: &QueuedScan) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let marked = sqlx::query(
            "UPDATE orchestration_steps SET state = 'done', detail = $3, finished_at = $4 \
             WHERE owner = $1 AND step = $2 AND state <> 'done'",
        )
        .bind(owner)
        .bind(step)
        .bind(serde_json::json!({"scan_id": scan.id}).to_string())
        .bind(Utc::now())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        let zero = serde_json::to_string(&domain::scan::SeverityCounts::default())?;
        sqlx::query(
            "INSERT INTO scans (id, integration_id, tool, format, status, started_at, counts, \
             new_counts, commit_sha, branch_name, pr_number, target_branch, repo_url, \
             triggered_by) VALUES ($1, $2, $3, $3, 'queued', $4, $5, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(scan.id.to_string())
        .bind(scan.integration_id.to_string())
        .bind(&scan.tool)
        .bind(scan.started_at)
        .bind(&zero)
        .bind(&scan.commit_sha)
        .bind(&scan.branch_name)
        .bind(scan.pr_number)
        .bind(&scan.target_branch)
        .bind(&scan.repo_url)
        .bind(&scan.triggered_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn upsert_pr_context(&self, c: &PrContext) -> Result<()> {
        sqlx::query(
            "INSERT INTO pr_contexts (integration_id, repo, pr_number, repo_url, commit_sha, \
             vendor_event, ci_event_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (integration_id, repo, pr_number) DO UPDATE SET \
             repo_url = excluded.repo_url, commit_sha = excluded.commit_sha, \
             vendor_event = excluded.vendor_event, ci_event_id = excluded.ci_event_id, \
             updated_at = excluded.updated_at WHERE excluded.ci_event_id > pr_contexts.ci_event_id",
        )
        .bind(c.integration_id.to_string())
        .bind(&c.repo)
        .bind(c.pr_number)
        .bind(&c.repo_url)
        .bind(&c.commit_sha)
        .bind(&c.vendor_event)
        .bind(c.ci_event_id.to_string())
        .bind(c.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_pr_context(
        &self,
        integration: Option<IntegrationId>,
        repo: Option<&str>,
        repo_url: Option<&str>,
        pr_number: i64,
    ) -> Result<Option<PrContext>> {
        let row = sqlx::query(
            "SELECT * FROM pr_contexts WHERE pr_number = $1 \
             AND ($2 IS NULL OR integration_id = $2) \
             AND ($3 IS NULL OR repo = $3) AND ($2 IS NOT NULL OR repo_url = $4) \
             ORDER BY (repo_url = $4) DESC, ci_event_id DESC LIMIT 1",
        )
        .bind(pr_number)
        .bind(integration.map(|i| i.to_string()))
        .bind(repo)
        .bind(repo_url)
        .fetch_optional(&self.readers)
        .await?;
        row.as_ref().map(pr_context_from_row).transpose()
    }

    async fn latest_pr_scan(
        &self,
        repo_url: &str,
        pr_number: i64,
        commit_sha: Option<&str>,
    ) -> Result<Option<ScanRecord>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM scans WHERE repo_url = $1 AND pr_number = $2 \
             AND status IN ('completed', 'failed') AND ($3 IS NULL OR commit_sha = $3) \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(repo_url)
        .bind(pr_number)
        .bind(commit_sha)
        .fetch_optional(&self.readers)
        .await?;
        match id {
            Some(id) => self.get_scan(parse_id(&id)?).await,
            None => Ok(None),
        }
    }

    async fn scan_breakdown(&self, scan: &ScanRecord) -> Result<Breakdown> {
        let id = scan.id.to_string();
        let baseline = scan
            .baseline_scan_id
            .map(|b| b.to_string())
            .unwrap_or_default();
        Ok(Breakdown {
            new: counts_from(self.by_severity(NEW_BY_SEVERITY, &id, &baseline).await?),
            existing: counts_from(
                self.by_severity(EXISTING_BY_SEVERITY, &id, &baseline)
                    .await?,
            ),
            fixed: counts_from(self.by_severity(FIXED_BY_SEVERITY, &id, &baseline).await?),
        })
    }

    async fn event_cursor(&self, name: &str) -> Result<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM event_cursors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn lease_event_cursor(
        &self,
        name: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<i64>> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let seq: Option<i64> = sqlx::query_scalar(
            "INSERT INTO event_cursors (name, seq, owner, locked_until) VALUES ($1, 0, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
               locked_until = excluded.locked_until \
             WHERE event_cursors.owner IS NULL OR event_cursors.owner = excluded.owner \
               OR event_cursors.locked_until < $4 \
             RETURNING seq",
        )
        .bind(name)
        .bind(owner)
        .bind(until)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(seq)
    }

    async fn advance_event_cursor(
        &self,
        name: &str,
        owner: &str,
        from: i64,
        to: i64,
        event: Option<&NewPlatformEvent>,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let moved = sqlx::query(
            "UPDATE event_cursors SET seq = $4 WHERE name = $1 AND owner = $2 AND seq = $3",
        )
        .bind(name)
        .bind(owner)
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(event) = event {
            insert_platform_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}
