//! The runbook part of the storage contract: retention deletes finished executions older than
//! its cut-off, and nothing that is still open however old; finishing runs in a batch applies
//! the breaker run by run.

use chrono::{DateTime, Duration, Utc};
use domain::ids::{ExecutionId, PlatformEventId, RunbookId};
use serde_json::json;
use store::{
    BREAKER_THRESHOLD, BreakerEffect, DynStore, ExecutionRecord, MatchRound, NewPlatformEvent,
    RunbookRecord,
};

use crate::open;

fn runbook(name: &str) -> RunbookRecord {
    let now = Utc::now();
    RunbookRecord {
        id: RunbookId::new(),
        name: name.into(),
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
    let runbook = runbook("kept");
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

/// Queues one execution of `runbook` per event of `events` through a matcher round.
async fn queue_executions(store: &DynStore, runbook: &RunbookRecord, events: usize) {
    let cursor = store
        .lease_runbook_cursor("contract", std::time::Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the cursor is free");
    let mut round = MatchRound {
        cursor,
        ..MatchRound::default()
    };
    for n in 0..events {
        let event = store
            .append_platform_event(&NewPlatformEvent {
                id: PlatformEventId::new(),
                event_type: "scan_started".into(),
                payload: json!({"n": n}),
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        round.cursor = event.seq;
        round.executions.push(ExecutionRecord {
            id: ExecutionId::new(),
            runbook_id: runbook.id,
            runbook_version: runbook.version,
            platform_event_id: event.id,
            event_seq: event.seq,
            trigger_event: event.event_type,
            trigger_payload: event.payload,
            status: "queued".into(),
            skip_reason: None,
            concurrency_key_value: None,
            max_concurrency: events as i64,
            position: 0,
            context: json!({"actions": [], "signals": {}}),
            action_results: Vec::new(),
            wait_signal: None,
            due_at: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            duration_ms: None,
        });
    }
    assert!(store.commit_match_round("contract", &round).await.unwrap());
}

#[tokio::test]
async fn a_batch_of_failed_runs_trips_the_breaker_once_at_the_threshold() {
    let (store, _db) = open().await;
    let runbook = runbook("flaky target");
    store.insert_runbook(&runbook).await.unwrap();
    let runs = BREAKER_THRESHOLD as usize + 2;
    queue_executions(&store, &runbook, runs).await;

    let mut claimed = store
        .claim_executions(100, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), runs);
    claimed.sort_by_key(|e| e.event_seq);
    let batch: Vec<(ExecutionRecord, BreakerEffect)> = claimed
        .into_iter()
        .map(|mut e| {
            e.status = "failed".into();
            e.finished_at = Some(Utc::now());
            (e, BreakerEffect::Failure)
        })
        .collect();
    let tripped = store.finish_executions(&batch).await.unwrap();

    let mut expected = vec![false; runs];
    expected[BREAKER_THRESHOLD as usize - 1] = true;
    assert_eq!(
        tripped, expected,
        "only the tenth failure trips the breaker"
    );
    let stored = store.get_runbook(runbook.id).await.unwrap().unwrap();
    assert!(!stored.is_active);
    assert!(stored.breaker_tripped_at.is_some());
    assert_eq!(stored.consecutive_failures, runs as i64);
    let log = store.list_platform_events(Some(0), 100).await.unwrap();
    let trips: Vec<_> = log
        .iter()
        .filter(|e| e.event_type == "runbook_breaker_tripped")
        .collect();
    assert_eq!(trips.len(), 1);
    assert_eq!(trips[0].payload["consecutive_failures"], BREAKER_THRESHOLD);
    for (run, _) in &batch {
        let stored = store.get_execution(run.id).await.unwrap().unwrap();
        assert_eq!(stored.status, "failed");
        assert!(stored.finished_at.is_some());
    }
}

#[tokio::test]
async fn a_success_in_a_batch_resets_the_count_before_later_failures() {
    let (store, _db) = open().await;
    let runbook = runbook("mixed");
    store.insert_runbook(&runbook).await.unwrap();
    queue_executions(&store, &runbook, 5).await;

    let mut claimed = store
        .claim_executions(100, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    claimed.sort_by_key(|e| e.event_seq);
    let effects = [
        BreakerEffect::Failure,
        BreakerEffect::Failure,
        BreakerEffect::Success,
        BreakerEffect::None,
        BreakerEffect::Failure,
    ];
    let batch: Vec<_> = claimed.into_iter().zip(effects).collect();
    assert_eq!(
        store.finish_executions(&batch).await.unwrap(),
        vec![false; 5]
    );
    let stored = store.get_runbook(runbook.id).await.unwrap().unwrap();
    assert_eq!(
        stored.consecutive_failures, 1,
        "success reset, skip ignored, one failure"
    );
    assert!(stored.is_active);
}
