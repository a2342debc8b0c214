//! [`RunbookStore`] on PostgreSQL, for several replicas sharing one database. A claim counts
//! the runs holding a slot of each concurrency key, which `SKIP LOCKED` alone cannot make safe
//! (it hides rows, it does not count them), so claims are serialized by a transaction-scoped
//! advisory lock; the cursor is a leased row. Claims are short: one statement each.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::ids::{ExecutionId, PlatformEventId, RunbookId};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::postgres::{PgStore, insert_platform_events};
use crate::records::NewPlatformEvent;
use crate::runbooks::{
    BREAKER_THRESHOLD, BreakerEffect, ExecutionRecord, MatchRound, RunbookRecord, RunbookStore,
    breaker_tripped_payload,
};
use crate::{Result, StoreError};

/// The advisory lock that serializes execution claims across replicas.
const CLAIM_LOCK: i64 = 0x706d_6170_7262;

fn runbook_from_row(row: &PgRow) -> Result<RunbookRecord> {
    Ok(RunbookRecord {
        id: RunbookId(row.try_get("id")?),
        name: row.try_get("name")?,
        definition: row.try_get("definition")?,
        is_active: row.try_get("is_active")?,
        version: row.try_get("version")?,
        consecutive_failures: row.try_get("consecutive_failures")?,
        breaker_tripped_at: row.try_get("breaker_tripped_at")?,
        last_fired_at: row.try_get("last_fired_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn execution_from_row(row: &PgRow) -> Result<ExecutionRecord> {
    let json = |column: &str| -> Result<serde_json::Value> { Ok(row.try_get(column)?) };
    Ok(ExecutionRecord {
        id: ExecutionId(row.try_get("id")?),
        runbook_id: RunbookId(row.try_get("runbook_id")?),
        runbook_version: row.try_get("runbook_version")?,
        platform_event_id: PlatformEventId(row.try_get("platform_event_id")?),
        event_seq: row.try_get("event_seq")?,
        trigger_event: row.try_get("trigger_event")?,
        trigger_payload: json("trigger_payload")?,
        status: row.try_get("status")?,
        skip_reason: row.try_get("skip_reason")?,
        concurrency_key_value: row.try_get("concurrency_key_value")?,
        max_concurrency: row.try_get("max_concurrency")?,
        position: row.try_get("position")?,
        context: json("context")?,
        action_results: serde_json::from_value(json("action_results")?)?,
        wait_signal: row.try_get("wait_signal")?,
        due_at: row.try_get("due_at")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        duration_ms: row.try_get("duration_ms")?,
    })
}

fn until(lease: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX)
}

fn name_conflict(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("a runbook with this name exists".into())
        }
        _ => err.into(),
    }
}

async fn insert_execution(tx: &mut Transaction<'_, Postgres>, e: &ExecutionRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO runbook_executions (id, runbook_id, runbook_version, platform_event_id, \
         event_seq, trigger_event, trigger_payload, status, skip_reason, concurrency_key_value, \
         max_concurrency, position, context, action_results, created_at, started_at, \
         finished_at, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
         ON CONFLICT (runbook_id, platform_event_id) DO NOTHING",
    )
    .bind(e.id.0)
    .bind(e.runbook_id.0)
    .bind(e.runbook_version)
    .bind(e.platform_event_id.0)
    .bind(e.event_seq)
    .bind(&e.trigger_event)
    .bind(sqlx::types::Json(&e.trigger_payload))
    .bind(&e.status)
    .bind(&e.skip_reason)
    .bind(&e.concurrency_key_value)
    .bind(e.max_concurrency)
    .bind(e.position)
    .bind(sqlx::types::Json(&e.context))
    .bind(sqlx::types::Json(&e.action_results))
    .bind(e.created_at)
    .bind(e.started_at)
    .bind(e.finished_at)
    .bind(e.duration_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl RunbookStore for PgStore {
    async fn insert_runbook(&self, r: &RunbookRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO runbooks (id, name, definition, is_active, version, \
             consecutive_failures, breaker_tripped_at, last_fired_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(r.id.0)
        .bind(&r.name)
        .bind(sqlx::types::Json(&r.definition))
        .bind(r.is_active)
        .bind(r.version)
        .bind(r.consecutive_failures)
        .bind(r.breaker_tripped_at)
        .bind(r.last_fired_at)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await
        .map_err(name_conflict)?;
        Ok(())
    }

    async fn get_runbook(&self, id: RunbookId) -> Result<Option<RunbookRecord>> {
        let row = sqlx::query("SELECT * FROM runbooks WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(runbook_from_row).transpose()
    }

    async fn find_runbook_by_name(&self, name: &str) -> Result<Option<RunbookRecord>> {
        let row = sqlx::query("SELECT * FROM runbooks WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(runbook_from_row).transpose()
    }

    async fn list_runbooks(
        &self,
        after: Option<RunbookId>,
        limit: u32,
    ) -> Result<Vec<RunbookRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runbooks WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(runbook_from_row).collect()
    }

    async fn list_active_runbooks(&self) -> Result<Vec<RunbookRecord>> {
        let rows = sqlx::query("SELECT * FROM runbooks WHERE is_active ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(runbook_from_row).collect()
    }

    async fn update_runbook(&self, r: &RunbookRecord) -> Result<RunbookRecord> {
        let row = sqlx::query(
            "UPDATE runbooks SET name = $2, definition = $3, is_active = $4, \
             version = version + 1, updated_at = $5 WHERE id = $1 RETURNING *",
        )
        .bind(r.id.0)
        .bind(&r.name)
        .bind(sqlx::types::Json(&r.definition))
        .bind(r.is_active)
        .bind(r.updated_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(name_conflict)?;
        runbook_from_row(&row.ok_or(StoreError::NotFound)?)
    }

    async fn delete_runbook(&self, id: RunbookId) -> Result<()> {
        let done = sqlx::query("DELETE FROM runbooks WHERE id = $1")
            .bind(id.0)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn reset_runbook_breaker(&self, id: RunbookId) -> Result<RunbookRecord> {
        let row = sqlx::query(
            "UPDATE runbooks SET is_active = TRUE, consecutive_failures = 0, \
             breaker_tripped_at = NULL, updated_at = $2 WHERE id = $1 RETURNING *",
        )
        .bind(id.0)
        .bind(Utc::now())
        .fetch_optional(&self.pool)
        .await?;
        runbook_from_row(&row.ok_or(StoreError::NotFound)?)
    }

    async fn lease_runbook_cursor(&self, owner: &str, lease: Duration) -> Result<Option<i64>> {
        let seq: Option<i64> = sqlx::query_scalar(
            "UPDATE runbook_cursor SET owner = $1, locked_until = $2 \
             WHERE id = 1 AND (owner IS NULL OR owner = $1 OR locked_until < $3) RETURNING seq",
        )
        .bind(owner)
        .bind(until(lease))
        .bind(Utc::now())
        .fetch_optional(&self.pool)
        .await?;
        Ok(seq)
    }

    async fn commit_match_round(&self, owner: &str, round: &MatchRound) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query("UPDATE runbook_cursor SET seq = $2 WHERE id = 1 AND owner = $1")
            .bind(owner)
            .bind(round.cursor)
            .execute(&mut *tx)
            .await?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        for execution in &round.executions {
            insert_execution(&mut tx, execution).await?;
        }
        for (id, at) in &round.fired {
            sqlx::query("UPDATE runbooks SET last_fired_at = $2 WHERE id = $1")
                .bind(id.0)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_executions(&self, limit: u32, lease: Duration) -> Result<Vec<ExecutionRecord>> {
        let now = Utc::now();
        let sql = format!(
            "UPDATE runbook_executions SET status = 'running', locked_until = $1, \
             started_at = COALESCE(started_at, $2) WHERE id IN ({}) RETURNING *",
            crate::runbooks::RUNNABLE
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(CLAIM_LOCK)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(&sql)
            .bind(until(lease))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed: Vec<ExecutionRecord> =
            rows.iter().map(execution_from_row).collect::<Result<_>>()?;
        claimed.sort_by_key(|e| (e.event_seq, e.id));
        Ok(claimed)
    }

    async fn save_execution(&self, e: &ExecutionRecord, lease: Duration) -> Result<()> {
        let locked = (e.status == "running").then(|| until(lease));
        sqlx::query(
            "UPDATE runbook_executions SET status = $2, position = $3, context = $4, \
             action_results = $5, wait_signal = $6, due_at = $7, locked_until = $8 \
             WHERE id = $1",
        )
        .bind(e.id.0)
        .bind(&e.status)
        .bind(e.position)
        .bind(sqlx::types::Json(&e.context))
        .bind(sqlx::types::Json(&e.action_results))
        .bind(&e.wait_signal)
        .bind(e.due_at)
        .bind(locked)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_executions(
        &self,
        runs: &[(ExecutionRecord, BreakerEffect)],
    ) -> Result<Vec<bool>> {
        // Runbook rows are locked in id order and the breaker events appended last, so two
        // replicas finishing batches at once cannot wait on each other in a cycle.
        let mut order: Vec<usize> = (0..runs.len()).collect();
        order.sort_by_key(|&i| runs[i].0.runbook_id.0);
        let mut tx = self.pool.begin().await?;
        let mut answers = vec![false; runs.len()];
        let mut trips = Vec::new();
        for i in order {
            let (e, effect) = &runs[i];
            answers[i] = finish_one(&mut tx, e, *effect, &mut trips).await?;
        }
        insert_platform_events(&mut tx, &trips).await?;
        tx.commit().await?;
        Ok(answers)
    }

    async fn get_execution(&self, id: ExecutionId) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query("SELECT * FROM runbook_executions WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    async fn list_executions(
        &self,
        runbook: RunbookId,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM runbook_executions WHERE runbook_id = $1 AND event_seq < $2 \
             ORDER BY event_seq DESC LIMIT $3",
        )
        .bind(runbook.0)
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    async fn signal_execution(
        &self,
        id: ExecutionId,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let context: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT context FROM runbook_executions \
             WHERE id = $1 AND status = 'waiting' AND wait_signal = $2 FOR UPDATE",
        )
        .bind(id.0)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(context) = context else {
            return Ok(false);
        };
        let mut context = context;
        crate::runbooks::put_signal(&mut context, name, payload);
        sqlx::query("UPDATE runbook_executions SET context = $2, due_at = $3 WHERE id = $1")
            .bind(id.0)
            .bind(sqlx::types::Json(&context))
            .bind(Utc::now())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn prune_executions(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM runbook_executions WHERE finished_at IS NOT NULL AND finished_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Stores one run's final state and applies its breaker effect, inside the caller's
/// transaction.
async fn finish_one(
    tx: &mut Transaction<'_, Postgres>,
    e: &ExecutionRecord,
    effect: BreakerEffect,
    trips: &mut Vec<NewPlatformEvent>,
) -> Result<bool> {
    sqlx::query(
        "UPDATE runbook_executions SET status = $2, skip_reason = $3, position = $4, \
         context = $5, action_results = $6, wait_signal = NULL, due_at = NULL, \
         locked_until = NULL, started_at = COALESCE(started_at, $7), finished_at = $7, \
         duration_ms = $8 WHERE id = $1",
    )
    .bind(e.id.0)
    .bind(&e.status)
    .bind(&e.skip_reason)
    .bind(e.position)
    .bind(sqlx::types::Json(&e.context))
    .bind(sqlx::types::Json(&e.action_results))
    .bind(e.finished_at.unwrap_or_else(Utc::now))
    .bind(e.duration_ms)
    .execute(&mut **tx)
    .await?;

    let tripped = match effect {
        BreakerEffect::None => false,
        BreakerEffect::Success => {
            sqlx::query("UPDATE runbooks SET consecutive_failures = 0 WHERE id = $1")
                .bind(e.runbook_id.0)
                .execute(&mut **tx)
                .await?;
            false
        }
        BreakerEffect::Failure => {
            let row = sqlx::query(
                "UPDATE runbooks SET consecutive_failures = consecutive_failures + 1 \
                 WHERE id = $1 RETURNING name, is_active, consecutive_failures",
            )
            .bind(e.runbook_id.0)
            .fetch_optional(&mut **tx)
            .await?;
            match row {
                Some(row) => trip_if_due(tx, e.runbook_id, &row, trips).await?,
                None => false,
            }
        }
    };
    Ok(tripped)
}

/// Deactivates the runbook when its count reached the threshold while it was active, and
/// appends `runbook_breaker_tripped` in the same transaction.
async fn trip_if_due(
    tx: &mut Transaction<'_, Postgres>,
    id: RunbookId,
    row: &PgRow,
    trips: &mut Vec<NewPlatformEvent>,
) -> Result<bool> {
    let failures: i64 = row.try_get("consecutive_failures")?;
    let is_active: bool = row.try_get("is_active")?;
    if !is_active || failures < BREAKER_THRESHOLD {
        return Ok(false);
    }
    let now = Utc::now();
    sqlx::query("UPDATE runbooks SET is_active = FALSE, breaker_tripped_at = $2 WHERE id = $1")
        .bind(id.0)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let name: String = row.try_get("name")?;
    trips.push(NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: "runbook_breaker_tripped".into(),
        payload: breaker_tripped_payload(id, &name, failures),
        created_at: now,
    });
    Ok(true)
}
