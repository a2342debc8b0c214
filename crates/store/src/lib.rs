//! Storage: the [`Store`] trait, its error, and two real backends, SQLite (the embedded
//! default) and PostgreSQL, each owning its migrations.
//!
//! This crate owns durability and the queues that live in the database (the CI event queue
//! the orchestrator consumes, the platform-event log). It never speaks HTTP, never decrypts a
//! secret (it stores sealed bytes as given) and never decides policy.

mod error;
mod gate;
mod import_plan;
mod postgres;
mod postgres_gate;
mod postgres_runbooks;
mod postgres_scans;
mod records;
mod runbooks;
mod scans;
mod sqlite;
mod sqlite_gate;
mod sqlite_runbooks;
mod sqlite_scans;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{CiEvent, CiEventId, IntegrationId};

pub use error::StoreError;
pub use gate::{
    GateStore, PrContext, QueuedScan, StepRecord, StepStart, ci_event_owner, scan_owner,
};
pub use postgres::PgStore;
pub use records::{
    DeliveryOutcome, FinishedCiEvent, IntegrationRecord, NewDelivery, NewPlatformEvent,
    NewRejection, PlatformEvent, Role, TokenRecord,
};
pub use runbooks::{
    ActionResult, BREAKER_THRESHOLD, BreakerEffect, ExecutionRecord, MatchRound, RunbookRecord,
    RunbookStore,
};
pub use scans::{
    AssetRecord, CommentRecord, FindingFilter, FindingRecord, FindingRuleRecord, FindingUpdate,
    HistoryRecord, NewFinding, ScanFilter, ScanImport, ScanRecord, ScanStore,
};
pub use sqlite::SqliteStore;
pub use writer::{DeliveryWriter, GroupCommit, event_writer, execution_finisher};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything PMAP keeps. Both backends pass the same contract test suite.
#[async_trait]
pub trait Store: ScanStore + RunbookStore + GateStore + Send + Sync + 'static {
    /// The backend's name, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<()>;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<()>;

    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    async fn find_token(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>>;

    async fn insert_integration(&self, integration: &IntegrationRecord) -> Result<()>;
    /// A live (not deleted) integration.
    async fn get_integration(&self, id: IntegrationId) -> Result<Option<IntegrationRecord>>;
    /// Live integrations ordered by id, after the given one.
    async fn list_integrations(
        &self,
        after: Option<IntegrationId>,
        limit: u32,
    ) -> Result<Vec<IntegrationRecord>>;
    /// Replaces a live integration's fields; `NotFound` when it is gone.
    async fn update_integration(&self, integration: &IntegrationRecord) -> Result<()>;
    /// Marks an integration deleted; `NotFound` when it already was.
    async fn delete_integration(&self, id: IntegrationId) -> Result<()>;

    /// Stores accepted deliveries in one transaction and queues them for the orchestrator. A
    /// delivery whose `(integration, delivery_id)` is already stored is not stored again; its
    /// outcome names the original event.
    async fn insert_deliveries(&self, batch: &[NewDelivery]) -> Result<Vec<DeliveryOutcome>>;
    /// Records a rejected delivery (no body) and returns its row id.
    async fn insert_rejection(&self, rejection: &NewRejection) -> Result<CiEventId>;
    /// Folds `count` further rejections into an existing rejected row.
    async fn add_rejection_repeats(&self, id: CiEventId, count: i64) -> Result<()>;
    /// The newest `limit` deliveries of an integration, newest first.
    async fn list_ci_events(&self, integration: IntegrationId, limit: u32) -> Result<Vec<CiEvent>>;
    async fn get_ci_event(&self, id: CiEventId) -> Result<Option<CiEvent>>;

    /// Leases up to `limit` queued CI events, oldest first, for `lease`. A lease that runs out
    /// (the process died) makes the event claimable again.
    async fn claim_ci_events(&self, limit: u32, lease: Duration) -> Result<Vec<CiEvent>>;
    /// Marks queued CI events processed and, in the same transaction, appends the platform
    /// events each caused. An event another worker already finished is skipped (its platform
    /// events are not appended); the answer says, per event, whether this call finished it.
    async fn finish_ci_events(&self, finished: &[FinishedCiEvent]) -> Result<Vec<bool>>;

    /// Appends to the platform-event log.
    async fn append_platform_event(&self, event: &NewPlatformEvent) -> Result<PlatformEvent> {
        let mut stored = self
            .append_platform_events(std::slice::from_ref(event))
            .await?;
        stored
            .pop()
            .ok_or_else(|| StoreError::Config("the event was not appended".into()))
    }
    /// Appends several events to the log in one transaction, in order.
    async fn append_platform_events(
        &self,
        events: &[NewPlatformEvent],
    ) -> Result<Vec<PlatformEvent>>;
    /// Platform events after `after_seq` (oldest first), or the newest when `None`.
    async fn list_platform_events(
        &self,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PlatformEvent>>;
}

pub type DynStore = Arc<dyn Store>;

/// Finished CI events grouped by what was decided, so each group is one statement.
fn group_by_action(finished: &[FinishedCiEvent]) -> Vec<(&str, Vec<CiEventId>)> {
    let mut groups: Vec<(&str, Vec<CiEventId>)> = Vec::new();
    for event in finished {
        match groups
            .iter_mut()
            .find(|(action, _)| *action == event.action_taken)
        {
            Some((_, ids)) => ids.push(event.id),
            None => groups.push((&event.action_taken, vec![event.id])),
        }
    }
    groups
}

/// Opens the backend a database URL names (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str) -> Result<DynStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(Arc::new(PgStore::connect(url).await?))
    } else {
        Err(StoreError::Config(format!(
            "unsupported database URL scheme in {:?}; use sqlite:// or postgres://",
            url.split(':').next().unwrap_or_default()
        )))
    }
}
