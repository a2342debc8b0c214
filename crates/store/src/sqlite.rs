//! The SQLite backend: the embedded default. WAL journal with `synchronous=FULL`, so a
//! committed transaction survives power loss; one writer connection (SQLite allows one writer
//! at a time anyway) and a small pool of readers.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{CiEvent, CiEventId, IntegrationId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, Transaction};

use crate::records::{
    DeliveryOutcome, FinishedCiEvent, IntegrationRecord, NewDelivery, NewPlatformEvent,
    NewRejection, PlatformEvent, Role, TokenRecord,
};
use crate::{Result, Store, StoreError};

pub struct SqliteStore {
    pub(crate) writer: SqlitePool,
    pub(crate) readers: SqlitePool,
}

impl SqliteStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.read_only(false))
            .await?;
        Ok(Self { writer, readers })
    }
}

const CI_EVENT_COLUMNS: &str = "id, integration_id, vendor, received_at, event, signature_valid, \
                                secret_slot, action_taken, repeat_count";

pub(crate) fn parse_id<T: FromStr>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad id {s:?}")))
}

fn ci_event_from_row(row: &SqliteRow) -> Result<CiEvent> {
    let vendor: String = row.try_get("vendor")?;
    let event: String = row.try_get("event")?;
    let slot: Option<i64> = row.try_get("secret_slot")?;
    Ok(CiEvent {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        integration_id: parse_id(row.try_get::<&str, _>("integration_id")?)?,
        vendor: parse_id_vendor(&vendor)?,
        received_at: row.try_get("received_at")?,
        event: serde_json::from_str(&event)?,
        signature_valid: row.try_get("signature_valid")?,
        secret_slot: slot.map(|s| s as u8),
        action_taken: row.try_get("action_taken")?,
        repeat_count: row.try_get("repeat_count")?,
    })
}

fn parse_id_vendor(s: &str) -> Result<domain::Vendor> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown vendor {s:?}")))
}

fn integration_from_row(row: &SqliteRow) -> Result<IntegrationRecord> {
    let config: String = row.try_get("config")?;
    Ok(IntegrationRecord {
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        name: row.try_get("name")?,
        vendor: parse_id_vendor(row.try_get::<&str, _>("vendor")?)?,
        config: serde_json::from_str(&config)?,
        sealed_secrets: row.try_get("sealed_secrets")?,
        sealed_auth: row.try_get("sealed_auth")?,
        is_active: row.try_get("is_active")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn platform_event_from_row(row: &SqliteRow) -> Result<PlatformEvent> {
    let payload: String = row.try_get("payload")?;
    Ok(PlatformEvent {
        seq: row.try_get("seq")?,
        id: parse_id(row.try_get::<&str, _>("id")?)?,
        event_type: row.try_get("event_type")?,
        payload: serde_json::from_str(&payload)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn insert_platform_event(
    tx: &mut Transaction<'_, Sqlite>,
    event: &NewPlatformEvent,
) -> Result<i64> {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO platform_events (id, event_type, payload, created_at) \
         VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(event.id.to_string())
    .bind(&event.event_type)
    .bind(serde_json::to_string(&event.payload)?)
    .bind(event.created_at)
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq)
}

/// Stores a batch with one multi-row insert (one statement for the whole group commit), then
/// looks up the originals of the deliveries that were already there.
async fn insert_delivery_batch(
    tx: &mut Transaction<'_, Sqlite>,
    batch: &[NewDelivery],
) -> Result<Vec<DeliveryOutcome>> {
    let events: Vec<String> = batch
        .iter()
        .map(|d| serde_json::to_string(&d.event))
        .collect::<Result<_, _>>()?;
    let mut insert = QueryBuilder::<Sqlite>::new(
        "INSERT INTO ci_events (id, integration_id, vendor, received_at, delivery_id, \
         vendor_event, event_type, signature_valid, secret_slot, action_taken, event, payload, \
         state) ",
    );
    insert.push_values(batch.iter().zip(&events), |mut row, (d, event)| {
        row.push_bind(d.id.to_string())
            .push_bind(d.integration_id.to_string())
            .push_bind(d.vendor.as_str())
            .push_bind(d.received_at)
            .push_bind(d.event.delivery_id.as_deref())
            .push_bind(d.event.vendor_event.as_str())
            .push_bind(d.event.event_type.as_str())
            .push_bind(d.signature_valid)
            .push_bind(d.secret_slot.map(i64::from))
            .push("'queued'")
            .push_bind(event.as_str())
            .push_bind(d.payload_lz4.as_slice())
            .push("'pending'");
    });
    insert.push(
        " ON CONFLICT (integration_id, delivery_id) WHERE delivery_id IS NOT NULL DO NOTHING \
         RETURNING id",
    );
    let inserted: Vec<String> = insert.build_query_scalar().fetch_all(&mut **tx).await?;
    let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();

    let mut outcomes = Vec::with_capacity(batch.len());
    for d in batch {
        let id = d.id.to_string();
        if inserted.contains(&id) {
            outcomes.push(DeliveryOutcome::Stored(d.id));
            continue;
        }
        let original: String = sqlx::query_scalar(
            "SELECT id FROM ci_events WHERE integration_id = $1 AND delivery_id = $2",
        )
        .bind(d.integration_id.to_string())
        .bind(d.event.delivery_id.as_deref())
        .fetch_one(&mut **tx)
        .await?;
        outcomes.push(DeliveryOutcome::Duplicate(parse_id(&original)?));
    }
    Ok(outcomes)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Config(format!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }

    async fn insert_token(&self, token: &TokenRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(token.role.as_str())
        .bind(&token.token_hash)
        .bind(token.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn find_token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT id, name, role, token_hash, created_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.readers)
        .await?;
        row.map(|row| {
            let role: String = row.try_get("role")?;
            Ok(TokenRecord {
                id: parse_id(row.try_get::<&str, _>("id")?)?,
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
        .bind(i.id.to_string())
        .bind(&i.name)
        .bind(i.vendor.as_str())
        .bind(serde_json::to_string(&i.config)?)
        .bind(&i.sealed_secrets)
        .bind(&i.sealed_auth)
        .bind(i.is_active)
        .bind(i.created_at)
        .bind(i.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn get_integration(&self, id: IntegrationId) -> Result<Option<IntegrationRecord>> {
        let row = sqlx::query("SELECT * FROM integrations WHERE id = $1 AND deleted_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(integration_from_row).transpose()
    }

    async fn list_integrations(
        &self,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<IntegrationRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM integrations WHERE deleted_at IS NULL AND ($1 IS NULL OR id > $1) \
             ORDER BY id LIMIT $2",
        )
        .bind(after.map(|a| a.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter().map(integration_from_row).collect()
    }

    async fn update_integration(&self, i: &IntegrationRecord) -> Result<()> {
        let done = sqlx::query(
            "UPDATE integrations SET name = $2, config = $3, sealed_secrets = $4, \
             sealed_auth = $5, is_active = $6, updated_at = $7 \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(i.id.to_string())
        .bind(&i.name)
        .bind(serde_json::to_string(&i.config)?)
        .bind(&i.sealed_secrets)
        .bind(&i.sealed_auth)
        .bind(i.is_active)
        .bind(i.updated_at)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_integration(&self, id: IntegrationId) -> Result<()> {
        let done = sqlx::query(
            "UPDATE integrations SET deleted_at = $2, is_active = 0 \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id.to_string())
        .bind(Utc::now())
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_deliveries(&self, batch: &[NewDelivery]) -> Result<Vec<DeliveryOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
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
             VALUES ($1, $2, $3, $4, NULL, $5, 'other', 0, $6, $7, 'none')",
        )
        .bind(r.id.to_string())
        .bind(r.integration_id.to_string())
        .bind(r.vendor.as_str())
        .bind(r.received_at)
        .bind(&r.vendor_event)
        .bind(&r.action_taken)
        .bind(serde_json::to_string(&event)?)
        .execute(&self.writer)
        .await?;
        Ok(r.id)
    }

    async fn add_rejection_repeats(&self, id: CiEventId, count: i64) -> Result<()> {
        sqlx::query("UPDATE ci_events SET repeat_count = repeat_count + $2 WHERE id = $1")
            .bind(id.to_string())
            .bind(count)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn list_ci_events(&self, integration: IntegrationId, limit: u32) -> Result<Vec<CiEvent>> {
        let sql = format!(
            "SELECT {CI_EVENT_COLUMNS} FROM ci_events WHERE integration_id = $1 \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(&sql)
            .bind(integration.to_string())
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        rows.iter().map(ci_event_from_row).collect()
    }

    async fn get_ci_event(&self, id: CiEventId) -> Result<Option<CiEvent>> {
        let sql = format!("SELECT {CI_EVENT_COLUMNS} FROM ci_events WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await?;
        row.as_ref().map(ci_event_from_row).transpose()
    }

    async fn claim_ci_events(&self, limit: u32, lease: Duration) -> Result<Vec<CiEvent>> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let sql = format!(
            "UPDATE ci_events SET locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM ci_events WHERE state = 'pending' \
               AND (locked_until IS NULL OR locked_until < $2) ORDER BY id LIMIT $3) \
             RETURNING {CI_EVENT_COLUMNS}"
        );
        let rows = sqlx::query(&sql)
            .bind(until)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await?;
        let mut events: Vec<CiEvent> = rows.iter().map(ci_event_from_row).collect::<Result<_>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn finish_ci_events(&self, finished: &[FinishedCiEvent]) -> Result<Vec<bool>> {
        let mut tx = self.writer.begin().await?;
        let mut done_ids = std::collections::HashSet::new();
        for (action_taken, ids) in crate::group_by_action(finished) {
            let mut update = QueryBuilder::<Sqlite>::new("UPDATE ci_events SET state = 'done', ");
            update.push("action_taken = ").push_bind(action_taken);
            update.push(", locked_until = NULL WHERE state = 'pending' AND id IN (");
            let mut list = update.separated(", ");
            for id in ids {
                list.push_bind(id.to_string());
            }
            update.push(") RETURNING id");
            let rows: Vec<String> = update.build_query_scalar().fetch_all(&mut *tx).await?;
            done_ids.extend(rows);
        }

        let done: Vec<bool> = finished
            .iter()
            .map(|f| done_ids.contains(&f.id.to_string()))
            .collect();
        let emit: Vec<&NewPlatformEvent> = finished
            .iter()
            .zip(&done)
            .filter(|(_, done)| **done)
            .flat_map(|(f, _)| &f.emit)
            .collect();
        for chunk in emit.chunks(500) {
            let payloads: Vec<String> = chunk
                .iter()
                .map(|e| serde_json::to_string(&e.payload))
                .collect::<Result<_, _>>()?;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO platform_events (id, event_type, payload, created_at) ",
            );
            insert.push_values(chunk.iter().zip(&payloads), |mut row, (e, payload)| {
                row.push_bind(e.id.to_string())
                    .push_bind(e.event_type.as_str())
                    .push_bind(payload.as_str())
                    .push_bind(e.created_at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    async fn append_platform_events(
        &self,
        events: &[NewPlatformEvent],
    ) -> Result<Vec<PlatformEvent>> {
        let mut tx = self.writer.begin().await?;
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            let seq = insert_platform_event(&mut tx, event).await?;
            stored.push(event.stored(seq));
        }
        tx.commit().await?;
        Ok(stored)
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
                    .fetch_all(&self.readers)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM platform_events ORDER BY seq DESC LIMIT $1")
                    .bind(i64::from(limit))
                    .fetch_all(&self.readers)
                    .await?
            }
        };
        rows.iter().map(platform_event_from_row).collect()
    }
}
