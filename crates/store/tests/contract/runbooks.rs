//! The runbook part of the storage contract: retention deletes finished executions older than
//! its cut-off, and nothing that is still open however old.

use chrono::{DateTime, Duration, Utc};
use domain::ids::{ExecutionId, PlatformEventId, RunbookId};
use serde_json::json;
use store::{ExecutionRecord, MatchRound, RunbookRecord};

use crate::open;

fn runbook() -> RunbookRecord {
    let now = Utc::now();
    RunbookRecord {
        id: RunbookId::new(),
        name: "kept".into(),
        definition: json!({"triggers": [], "actions": []}),
        is_active: true,
        version: 1,
        consecutive_failures: 0,
        breaker_tripped_at: None,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    }
}

/// An execution created at `created_at`, finished then when `finished` (else still waiting).
fn execution(
    runbook: &RunbookRecord,
    seq: i64,
    created_at: DateTime<Utc>,
    finished: bool,
) -> ExecutionRecord {
    ExecutionRecord {
        id: ExecutionId::new(),
        runbook_id: runbook.id,
        runbook_version: runbook.version,
        platform_event_id: PlatformEventId::new(),
        event_seq: seq,
        trigger_event: "asset_created".into(),
        trigger_payload: json!({}),
        status: if finished { "succeeded" } else { "waiting" }.into(),
        skip_reason: None,
        concurrency_key_value: None,
        max_concurrency: 1,
        position: 0,
        context: json!({"actions": [], "signals": {}}),
        action_results: Vec::new(),
        wait_signal: (!finished).then(|| "approve".into()),
        due_at: None,
        created_at,
        started_at: Some(created_at),
        finished_at: finished.then_some(created_at),
        duration_ms: finished.then_some(0),
    }
}

#[tokio::test]
async fn pruning_deletes_only_finished_executions_older_than_the_retention() {
    let (store, _db) = open().await;
    let runbook = runbook();
    store.insert_runbook(&runbook).await.unwrap();
    let now = Utc::now();
    let old = execution(&runbook, 1, now - Duration::days(40), true);
    let old_waiting = execution(&runbook, 2, now - Duration::days(40), false);
    let recent = execution(&runbook, 3, now - Duration::hours(1), true);
    let lease = std::time::Duration::from_secs(60);
    assert!(
        store
            .lease_runbook_cursor("t", lease)
            .await
            .unwrap()
            .is_some()
    );
    let round = MatchRound {
        cursor: 3,
        executions: vec![old.clone(), old_waiting.clone(), recent.clone()],
        fired: Vec::new(),
    };
    assert!(store.commit_match_round("t", &round).await.unwrap());

    // The default retention: 30 days.
    let cut_off = now - Duration::days(30);
    assert_eq!(store.prune_executions(cut_off).await.unwrap(), 1);
    assert_eq!(store.get_execution(old.id).await.unwrap(), None);
    let kept = store.get_execution(old_waiting.id).await.unwrap();
    assert_eq!(kept.map(|e| e.status), Some("waiting".to_owned()));
    let kept = store.get_execution(recent.id).await.unwrap();
    assert_eq!(kept.map(|e| e.id), Some(recent.id));
    assert_eq!(store.prune_executions(cut_off).await.unwrap(), 0);
}
