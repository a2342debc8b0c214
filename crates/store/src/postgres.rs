//! The PostgreSQL backend, for production and for several replicas sharing one database.
//! Queue claims use `FOR UPDATE SKIP LOCKED`, so replicas never take the same row.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{CiEvent, CiEventId, IntegrationId, Vendor};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

use crate::records::{
    DeliveryOutcome, FinishedCiEvent, IntegrationRecord, NewDelivery, NewPlatformEvent,
    NewRejection, PlatformEvent, Role, TokenRecord,
};
use crate::{Result, Store, StoreError};

pub struct PgStore {
    pub(crate) pool: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        // A statement waiting on a lock gives up after a few seconds, so a stuck database shows
        // as a retryable 503 rather than requests that hang.
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(e.to_string()))?
            .options([("lock_timeout", "5s")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }
}

const CI_EVENT_COLUMNS: &str = "id, integration_id, vendor, received_at, event, signature_valid, \
                                secret_slot, action_taken, repeat_count";

fn vendor(s: &str) -> Result<Vendor> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown vendor {s:?}")))
}

fn ci_event_from_row(row: &PgRow) -> Result<CiEvent> {
    let Json(event) = row.try_get("event")?;
    let slot: Option<i16> = row.try_get("secret_slot")?;
    Ok(CiEvent {
        id: CiEventId(row.try_get("id")?),
        integration_id: IntegrationId(row.try_get("integration_id")?),
        vendor: vendor(row.try_get::<&str, _>("vendor")?)?,
        received_at: row.try_get("received_at")?,
        event,
        signature_valid: row.try_get("signature_valid")?,
        secret_slot: slot.map(|s| s as u8),
        action_taken: row.try_get("action_taken")?,
        repeat_count: row.try_get("repeat_count")?,
    })
}

fn integration_from_row(row: &PgRow) -> Result<IntegrationRecord> {
    Ok(IntegrationRecord {
        id: IntegrationId(row.try_get("id")?),
        name: row.try_get("name")?,
        vendor: vendor(row.try_get::<&str, _>("vendor")?)?,
        config: row.try_get("config")?,
        sealed_secrets: row.try_get("sealed_secrets")?,
        sealed_auth: row.try_get("sealed_auth")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn platform_event_from_row(row: &PgRow) -> Result<PlatformEvent> {
    Ok(PlatformEvent {
        seq: row.try_get("seq")?,
        id: domain::ids::PlatformEventId(row.try_get("id")?),
        event_type: row.try_get("event_type")?,
        payload: row.try_get("payload")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The advisory lock that orders appends to the platform-event log.
///
/// A log position comes from a sequence when the row is inserted, but becomes visible when its
/// transaction commits; without this lock a reader following the log could see position 8
/// before a slower transaction commits 7, move its cursor past 7 and never see it. Every
/// transaction that appends takes this lock right before its first append and holds it to its
/// commit, so positions become visible in order. Appends therefore come last in a transaction
/// (imports stage their events and move them at the end), which keeps the lock short.
pub(crate) async fn lock_event_log(tx: &mut Transaction<'_, Postgres>) -> Result<()> {
    const EVENT_LOG_LOCK: i64 = 0x0050_4d41_504c_4f47; // "PMAPLOG"
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENT_LOG_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(crate) async fn insert_platform_event(
    tx: &mut Transaction<'_, Postgres>,
    event: &NewPlatformEvent,
) -> Result<i64> {
    let seqs = insert_platform_events(tx, std::slice::from_ref(event)).await?;
    Ok(seqs[0])
}

/// Appends `events` in order under one take of the event-log lock; their positions.
pub(crate) async fn insert_platform_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[NewPlatformEvent],
) -> Result<Vec<i64>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    lock_event_log(tx).await?;
    let mut seqs = Vec::with_capacity(events.len());
    for event in events {
        seqs.push(insert_unlocked(tx, event).await?);
    }
    Ok(seqs)
}

async fn insert_unlocked(
    tx: &mut Transaction<'_, Postgres>,
    event: &NewPlatformEvent,
) -> Result<i64> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO platform_events (id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(event.id.0)
    .bind(&event.event_type)
    .bind(&event.payload)
    .bind(event.created_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq)
}

/// Stores a batch with one multi-row insert, then looks up the originals of the deliveries that
/// were already there (including repeats within the batch).
async fn insert_delivery_batch(
    tx: &mut Transaction<'_, Postgres>,
    batch: &[NewDelivery],
) -> Result<Vec<DeliveryOutcome>> {
    let events: Vec<String> = batch
        .iter()
        .map(|d| serde_json::to_string(&d.event))
        .collect::<Result<_, _>>()?;
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO ci_events (id, integration_id, vendor, received_at, delivery_id, \
         vendor_event, event_type, signature_valid, secret_slot, action_taken, event, payload, \
         state) \
         SELECT id, integration_id, vendor, received_at, delivery_id, vendor_event, event_type, \
           signature_valid, secret_slot, 'queued', event::jsonb, payload, 'pending' \
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[], \
           $6::text[], $7::text[], $8::bool[], $9::int2[], $10::text[], $11::bytea[]) \
           AS t(id, integration_id, vendor, received_at, delivery_id, vendor_event, event_type, \
                signature_valid, secret_slot, event, payload) \
         ON CONFLICT (integration_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING \
         RETURNING id",
    )
    .bind(batch.iter().map(|d| d.id.0).collect::<Vec<_>>())
    .bind(batch.iter().map(|d| d.integration_id.0).collect::<Vec<_>>())
    .bind(batch.iter().map(|d| d.vendor.as_str()).collect::<Vec<_>>())
    .bind(batch.iter().map(|d| d.received_at).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|d| d.event.delivery_id.as_deref())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|d| d.event.vendor_event.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        batch
            .iter()
            .map(|d| d.event.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(batch.iter().map(|d| d.signature_valid).collect::<Vec<_>>())
    .bind(
        batch
            .iter()
            .map(|d| d.secret_slot.map(i16::from))
            .collect::<Vec<_>>(),
    )
    .bind(events)
    .bind(
        batch
            .iter()
            .map(|d| d.payload_lz4.as_slice())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut **tx)
    .await?;

    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let repeated: Vec<&NewDelivery> = batch
        .iter()
        .filter(|d| !inserted.contains(&d.id.0))
        .collect();
    let mut originals = std::collections::HashMap::new();
    if !repeated.is_empty() {
        let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
            "SELECT id, integration_id, delivery_id FROM ci_events \
             WHERE (integration_id, delivery_id) IN \
               (SELECT * FROM UNNEST($1::uuid[], $2::text[]))",
        )
        .bind(
            repeated
                .iter()
                .map(|d| d.integration_id.0)
                .collect::<Vec<_>>(),
        )
        .bind(
            repeated
                .iter()
                .map(|d| d.event.delivery_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut **tx)
        .await?;
        originals = rows.into_iter().map(|(id, i, d)| ((i, d), id)).collect();
    }

    batch
        .iter()
        .map(|d| {
            if inserted.contains(&d.id.0) {
                return Ok(DeliveryOutcome::Stored(d.id));
            }
            let key = (
                d.integration_id.0,
                d.event.delivery_id.clone().unwrap_or_default(),
            );
            let original = originals.get(&key).ok_or_else(|| {
                StoreError::Corrupt("a delivery was neither stored nor found".into())
            })?;
            Ok(DeliveryOutcome::Duplicate(CiEventId(*original)))
        })
        .collect()
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Config(format!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id.0)
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.token_hash)
        .bind(token.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, name, role, token_hash, created_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(TokenRecord {
                id: domain::ids::TokenId(row.try_get("id")?),
                name: row.try_get("name")?,
                role: Role::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown role {role:?}")))?,
                token_hash: row.try_get("token_hash")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .transpose()
    }

    async fn insert_integration(&self, i: &IntegrationRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO integrations (id, name, vendor, config, sealed_secrets, sealed_auth, \
             is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(i.id.0)
        .bind(&i.name)
        .bind(i.vendor.as_str())
        .bind(&i.config)
        .bind(&i.sealed_secrets)
        .bind(&i.sealed_auth)
        .bind(i.is_active)
        .bind(i.created_at)
        .bind(i.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_integration(&self, id: IntegrationId) -> Result<Option<IntegrationRecord>> {
        let row = sqlx::query("SELECT * FROM integrations WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(integration_from_row).transpose()
    }

    async fn list_integrations(
        &self,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<IntegrationRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM integrations WHERE deleted_at IS NULL \
             AND ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(integration_from_row).collect()
    }

    async fn update_integration(&self, i: &IntegrationRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE integrations SET name = $2, config = $3, sealed_secrets = $4, \
             sealed_auth = $5, is_active = $6, updated_at = $7 \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(i.id.0)
        .bind(&i.name)
        .bind(&i.config)
        .bind(&i.sealed_secrets)
        .bind(&i.sealed_auth)
        .bind(i.is_active)
        .bind(i.updated_at)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_integration(&self, id: IntegrationId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE integrations SET deleted_at = $2, is_active = false \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.0)
        .bind(Utc::now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_deliveries(&self, batch: &[NewDelivery]) -> Result<Vec<DeliveryOutcome>> {
        let mut tx = self.pool.begin().await?;
        let outcomes = insert_delivery_batch(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn insert_rejection(&self, r: &NewRejection) -> Result<CiEventId> {
        let mut event = domain::NormalizedEvent::new(&r.vendor_event, domain::EventType::Other);
        event.delivery_id = r.delivery_id.clone();
        sqlx::query(
            "INSERT INTO ci_events (id, integration_id, vendor, received_at, delivery_id, \
             vendor_event, event_type, signature_valid, action_taken, event, state) \
             VALUES ($1, $2, $3, $4, NULL, $5, 'other', false, $6, $7, 'none')",
        )
        .bind(r.id.0)
        .bind(r.integration_id.0)
        .bind(r.vendor.as_str())
        .bind(r.received_at)
        .bind(&r.vendor_event)
        .bind(&r.action_taken)
        .bind(Json(&event))
        .execute(&self.pool)
        .await?;
        Ok(r.id)
    }

    async fn add_rejection_repeats(&self, id: CiEventId, count: i64) -> Result<()> {
        sqlx::query("UPDATE ci_events SET repeat_count = repeat_count + $2 WHERE id = $1")
            .bind(id.0)
            .bind(count)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_ci_events(&self, integration: IntegrationId, limit: u32) -> Result<Vec<CiEvent>> {
        let sql = format!(
            "SELECT {CI_EVENT_COLUMNS} FROM ci_events WHERE integration_id = $1 \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(integration.0)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ci_event_from_row).collect()
    }

    async fn get_ci_event(&self, id: CiEventId) -> Result<Option<CiEvent>> {
        let sql = format!("SELECT {CI_EVENT_COLUMNS} FROM ci_events WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ci_event_from_row).transpose()
    }

    async fn claim_ci_events(&self, limit: u32, lease: Duration) -> Result<Vec<CiEvent>> {
        let sql = format!(
            "UPDATE ci_events SET locked_until = now() + $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM ci_events WHERE state = 'pending' \
               AND (locked_until IS NULL OR locked_until < now()) ORDER BY id LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             RETURNING {CI_EVENT_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(lease)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut events: Vec<CiEvent> = rows.iter().map(ci_event_from_row).collect::<Result<_>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn finish_ci_events(&self, finished: &[FinishedCiEvent]) -> Result<Vec<bool>> {
        let mut tx = self.pool.begin().await?;
        let mut done_ids = std::collections::HashSet::new();
        for (action_taken, ids) in crate::group_by_action(finished) {
            let rows: Vec<Uuid> = sqlx::query_scalar(
                "UPDATE ci_events SET state = 'done', action_taken = $1, locked_until = NULL \
                 WHERE state = 'pending' AND id = ANY($2) RETURNING id",
            )
            .bind(action_taken)
            .bind(ids.iter().map(|id| id.0).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            done_ids.extend(rows);
        }

        let done: Vec<bool> = finished
            .iter()
            .map(|f| done_ids.contains(&f.id.0))
            .collect();
        let emit: Vec<&NewPlatformEvent> = finished
            .iter()
            .zip(&done)
            .filter(|(_, done)| **done)
            .flat_map(|(f, _)| &f.emit)
            .collect();
        if !emit.is_empty() {
            lock_event_log(&mut tx).await?;
            let payloads: Vec<String> = emit
                .iter()
                .map(|e| serde_json::to_string(&e.payload))
                .collect::<Result<_, _>>()?;
            sqlx::query(
                "INSERT INTO platform_events (id, event_type, payload, created_at) \
                 SELECT id, event_type, payload::jsonb, created_at \
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) \
                   WITH ORDINALITY AS t(id, event_type, payload, created_at, n) ORDER BY n",
            )
            .bind(emit.iter().map(|e| e.id.0).collect::<Vec<_>>())
            .bind(
                emit.iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(payloads)
            .bind(emit.iter().map(|e| e.created_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn append_platform_events(
        &self,
        events: &[NewPlatformEvent],
    ) -> Result<Vec<PlatformEvent>> {
        let mut tx = self.pool.begin().await?;
        let seqs = insert_platform_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(events
            .iter()
            .zip(seqs)
            .map(|(e, seq)| e.stored(seq))
            .collect())
    }

    async fn list_platform_events(
        &self,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PlatformEvent>> {
        let rows = match after_seq {
            Some(after) => {
                sqlx::query("SELECT * FROM platform_events WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM platform_events ORDER BY seq DESC LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(platform_event_from_row).collect()
    }
}
