//! Leased cursors of platform-event consumers: one holder at a time, moves only from where the
//! cursor stands (appending the move's event with it), and a holder that stops loses the lease.

use std::time::Duration;

use chrono::Utc;
use domain::ids::PlatformEventId;
use serde_json::json;
use store::{DynStore, NewPlatformEvent};

use crate::open;

fn evaluated(n: i64) -> NewPlatformEvent {
    NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: "pr_gate_evaluated".into(),
        payload: json!({"n": n}),
        created_at: Utc::now(),
    }
}

/// Moves cursor `c` as `owner`, appending a `pr_gate_evaluated` with the move.
async fn advance(store: &DynStore, owner: &str, from: i64, to: i64) -> bool {
    let event = evaluated(to);
    let moved = store.advance_event_cursor("c", owner, from, to, Some(&event));
    moved.await.unwrap()
}

async fn evaluated_count(store: &DynStore) -> usize {
    let events = store.list_platform_events(Some(0), 100).await.unwrap();
    events
        .iter()
        .filter(|e| e.event_type == "pr_gate_evaluated")
        .count()
}

#[tokio::test]
async fn an_event_cursor_has_one_holder_and_moves_only_from_where_it_stands() {
    let (store, _db) = open().await;
    let lease = Duration::from_secs(60);
    assert_eq!(
        store.lease_event_cursor("c", "a", lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        store.lease_event_cursor("c", "b", lease).await.unwrap(),
        None
    );
    assert_eq!(
        store.lease_event_cursor("c", "a", lease).await.unwrap(),
        Some(0)
    );

    assert!(
        !advance(&store, "b", 0, 5).await,
        "only the holder moves the cursor"
    );
    assert!(
        !advance(&store, "a", 3, 5).await,
        "the cursor moves only from where it stands"
    );
    assert_eq!(
        evaluated_count(&store).await,
        0,
        "a refused move appends nothing"
    );

    assert!(advance(&store, "a", 0, 5).await);
    assert!(
        store
            .advance_event_cursor("c", "a", 5, 6, None)
            .await
            .unwrap()
    );
    assert_eq!(store.event_cursor("c").await.unwrap(), 6);
    assert_eq!(evaluated_count(&store).await, 1);
    assert_eq!(store.event_cursor("gate").await.unwrap(), 0);
}

#[tokio::test]
async fn a_crashed_holders_event_cursor_lease_runs_out() {
    let (store, _db) = open().await;
    let short = Duration::from_millis(300);
    assert_eq!(
        store.lease_event_cursor("c", "a", short).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        store.lease_event_cursor("c", "b", short).await.unwrap(),
        None
    );

    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let taken = loop {
        if let Some(seq) = store.lease_event_cursor("c", "b", short).await.unwrap() {
            break seq;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never ran out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(taken, 0);
    assert_eq!(
        store.lease_event_cursor("c", "a", short).await.unwrap(),
        None,
        "the old holder does not get it back while the new lease runs"
    );
    assert!(
        !advance(&store, "a", 0, 1).await,
        "the old holder cannot move it any more"
    );
    assert!(
        store
            .advance_event_cursor("c", "b", 0, 1, None)
            .await
            .unwrap()
    );
}
