//! The CI event consumer. Each queued event is leased, processed, and finished in one
//! transaction together with the platform events it causes, so a crash at any point either
//! leaves the event queued (and its lease runs out) or finishes it exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::CiEvent;
use domain::ids::PlatformEventId;
use store::{DynStore, FinishedCiEvent, NewPlatformEvent};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a claimed event stays with one worker before another may take it over. Processing
/// one event takes milliseconds; a short lease lets a restarted or surviving replica pick up
/// what a killed one had claimed within seconds.
const LEASE: Duration = Duration::from_secs(5);
/// Events claimed per round.
const CLAIM_BATCH: u32 = 256;
/// How often the queue is checked without a wake-up (deliveries stored by other replicas,
/// leases that ran out).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What the consumer decided for one CI event.
pub fn decide(event: &CiEvent) -> &'static str {
    // Auto-scan fan-out and the gate are configured per integration; until an integration
    // opts in, every event only reaches runbooks.
    let _ = event;
    "runbook_only"
}

/// The platform event every CI event emits, whatever was decided.
pub fn ci_event_received(event: &CiEvent, action_taken: &str) -> NewPlatformEvent {
    let mut payload = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = payload.as_object_mut() {
        map.insert("action_taken".into(), action_taken.into());
    }
    NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: "ci_event_received".into(),
        payload,
        created_at: Utc::now(),
    }
}

/// Runs the consumer until `shutdown` is cancelled.
pub async fn run(store: DynStore, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        match process_batch(&store).await {
            Ok(n) if n == CLAIM_BATCH as usize => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "ci event queue round failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Processes one round of queued events; returns how many were claimed. The whole round is
/// finished in one transaction.
pub async fn process_batch(store: &DynStore) -> store::Result<usize> {
    let events = store.claim_ci_events(CLAIM_BATCH, LEASE).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let finished: Vec<FinishedCiEvent> = events
        .iter()
        .map(|event| {
            let action_taken = decide(event);
            FinishedCiEvent {
                id: event.id,
                action_taken: action_taken.to_owned(),
                emit: vec![ci_event_received(event, action_taken)],
            }
        })
        .collect();
    let done = store.finish_ci_events(&finished).await?;
    for (event, finished_here) in finished.iter().zip(done) {
        if finished_here {
            metrics::counter!("pmap_ci_events_processed_total",
                "action_taken" => event.action_taken.clone())
            .increment(1);
        }
    }
    Ok(events.len())
}
