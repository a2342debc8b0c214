//! The platform-event log under load: grouped appends keep every event once, and a follower
//! that moves its cursor to the last position it read misses nothing.

use std::collections::HashSet;

use chrono::Utc;
use domain::ids::PlatformEventId;
use serde_json::json;
use store::NewPlatformEvent;

use crate::open;

#[tokio::test]
async fn grouped_event_appends_keep_every_event_once_in_order() {
    let (store, _db) = open().await;
    let writer = store::event_writer(store.clone());
    let mut tasks = Vec::new();
    for n in 0..60 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let event = NewPlatformEvent {
                id: PlatformEventId::new(),
                event_type: "scan_started".into(),
                payload: json!({"n": n}),
                created_at: Utc::now(),
            };
            let stored = writer.submit(event.clone()).await.unwrap();
            assert_eq!((stored.id, stored.payload), (event.id, event.payload));
            stored.seq
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 60, "every append got its own position");

    let log = store.list_platform_events(Some(0), 100).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
}

/// A follower that moves its cursor to the last position it read must still see every event
/// while many transactions append at once: positions become visible in order.
#[tokio::test]
async fn a_follower_of_the_log_misses_nothing_under_concurrent_appends() {
    let (store, _db) = open().await;
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..40 {
                    let event = NewPlatformEvent {
                        id: PlatformEventId::new(),
                        event_type: "scan_started".into(),
                        payload: json!({"writer": w, "n": n}),
                        created_at: Utc::now(),
                    };
                    store.append_platform_event(&event).await.unwrap();
                    ids.push(event.id);
                }
                ids
            })
        })
        .collect();

    let mut seen = HashSet::new();
    let mut cursor = 0;
    let follow = async |cursor: &mut i64, seen: &mut HashSet<_>| {
        for event in store.list_platform_events(Some(*cursor), 50).await.unwrap() {
            assert!(seen.insert(event.id), "an event was read twice");
            *cursor = event.seq;
        }
    };
    while !writers.iter().all(|w| w.is_finished()) {
        follow(&mut cursor, &mut seen).await;
    }
    let mut appended = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    for _ in 0..10 {
        follow(&mut cursor, &mut seen).await;
    }
    assert_eq!(appended.len(), 320);
    assert_eq!(
        seen, appended,
        "the follower skipped events that committed late"
    );
}
