//! Shared server state: the store, the delivery writer, the cipher, and two small in-memory
//! helpers of the webhook path (the integration cache and the rejection limiter).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use domain::{CiEventId, IntegrationId, Vendor};
use metrics_exporter_prometheus::PrometheusHandle;
use store::{
    DeliveryWriter, DynStore, GroupCommit, IntegrationRecord, NewPlatformEvent, NewRejection,
    PlatformEvent,
};
use webhooks::Secret;

use crate::config::Posture;
use crate::crypto::Cipher;
use crate::error::ApiError;

pub struct AppState {
    pub store: DynStore,
    pub writer: DeliveryWriter,
    /// Kibibytes of delivery bodies that may be held in memory at once, across requests.
    pub delivery_budget: Arc<tokio::sync::Semaphore>,
    /// Events emitted through the API, appended in groups.
    pub events: GroupCommit<NewPlatformEvent, PlatformEvent>,
    pub cipher: Cipher,
    pub posture: Posture,
    pub allow_unsigned: bool,
    pub admin_token_hash: Option<Vec<u8>>,
    pub public_url: String,
    pub integrations: IntegrationCache,
    pub rejections: RejectionLimiter,
    pub metrics: PrometheusHandle,
    /// The runbook engine of this process, woken when a signal arrives.
    pub runbooks: Option<Arc<engine::runbooks::RunbookEngine>>,
    /// Outbound calls (egress policy, credentials, public URL) for the gate endpoints.
    pub outbound: Arc<engine::outbound::Outbound>,
    /// Wakes the gate worker when a scan was imported.
    pub gate_wake: Arc<tokio::sync::Notify>,
}

/// An integration as the webhook path needs it: the record and its opened secrets.
pub struct ResolvedIntegration {
    pub record: IntegrationRecord,
    pub secrets: Vec<Secret>,
}

/// How long a looked-up integration is trusted before it is read again. Changes made through
/// this process are seen at once; changes made by another replica within this time.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// Integrations by id, so a burst of deliveries does not read and decrypt the same row each
/// time.
#[derive(Default)]
pub struct IntegrationCache {
    entries: RwLock<HashMap<IntegrationId, CacheEntry>>,
}

/// When the entry was read, and what was found (`None`: no such live integration).
type CacheEntry = (Instant, Option<Arc<ResolvedIntegration>>);

impl IntegrationCache {
    pub async fn get(
        &self,
        id: IntegrationId,
        store: &DynStore,
        cipher: &Cipher,
    ) -> Result<Option<Arc<ResolvedIntegration>>, ApiError> {
        if let Some((at, entry)) = self.entries.read().expect("cache lock").get(&id)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(entry.clone());
        }

        let resolved = match store.get_integration(id).await? {
            Some(record) => {
                let secrets = crate::routes::integrations::open_secrets(cipher, &record)?
                    .into_iter()
                    .map(|s| Secret(s.into_bytes()))
                    .collect();
                Some(Arc::new(ResolvedIntegration { record, secrets }))
            }
            None => None,
        };
        let mut entries = self.entries.write().expect("cache lock");
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
        }
        entries.insert(id, (Instant::now(), resolved.clone()));
        Ok(resolved)
    }

    pub fn invalidate(&self, id: IntegrationId) {
        self.entries.write().expect("cache lock").remove(&id);
    }
}

/// Keeps rejected deliveries from flooding the audit: at most one row per integration per
/// second; further rejections in that second are counted and folded into the row.
#[derive(Default)]
pub struct RejectionLimiter {
    windows: Mutex<HashMap<IntegrationId, Window>>,
}

struct Window {
    second: i64,
    row: CiEventId,
    pending: i64,
}

impl RejectionLimiter {
    /// Records one rejection. The write happens in the background: a forged delivery costs the
    /// receiver a map update, not a database round trip.
    pub fn record(&self, store: &DynStore, rejection: NewRejection) {
        let second = rejection.received_at.timestamp();
        let mut windows = self.windows.lock().expect("limiter lock");
        match windows.get_mut(&rejection.integration_id) {
            Some(window) if window.second == second => {
                window.pending += 1;
                return;
            }
            Some(window) => {
                flush(store, window.row, std::mem::take(&mut window.pending));
                window.second = second;
                window.row = rejection.id;
            }
            None => {
                windows.insert(
                    rejection.integration_id,
                    Window {
                        second,
                        row: rejection.id,
                        pending: 0,
                    },
                );
            }
        }
        drop(windows);

        let store = store.clone();
        tokio::spawn(async move {
            if let Err(err) = store.insert_rejection(&rejection).await {
                tracing::warn!(error = %err, "could not record a rejected delivery");
            }
        });
    }

    /// Writes the counts gathered so far onto their rows; called about once a second.
    pub fn flush_all(&self, store: &DynStore) {
        let now = Utc::now().timestamp();
        let mut windows = self.windows.lock().expect("limiter lock");
        for window in windows.values_mut() {
            flush(store, window.row, std::mem::take(&mut window.pending));
        }
        windows.retain(|_, w| now - w.second < 60);
    }
}

fn flush(store: &DynStore, row: CiEventId, count: i64) {
    if count == 0 {
        return;
    }
    let store = store.clone();
    tokio::spawn(async move {
        if let Err(err) = store.add_rejection_repeats(row, count).await {
            tracing::warn!(error = %err, "could not count rejected deliveries");
        }
    });
}

/// The vendor a route names, as the path spells it.
pub fn route_vendor(name: &str) -> Option<Vendor> {
    name.parse::<Vendor>()
        .ok()
        .filter(|v| v.archetype() == domain::Archetype::CiWebhook)
}

impl AppState {
    /// True when deliveries to an integration without a secret must be refused (§ fail closed).
    pub fn unsigned_rejected(&self) -> bool {
        self.posture == Posture::Production && !self.allow_unsigned
    }
}
