//! The storage contract: the same tests against whichever backend the run targets (SQLite by
//! default, PostgreSQL when `PMAP_TEST_DATABASE_URL` names a server), a fresh database each.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::ids::{PlatformEventId, TokenId};
use domain::{CiEventId, EventType, IntegrationId, NormalizedEvent, Vendor};
use serde_json::json;
use store::{
    DeliveryOutcome, DeliveryWriter, DynStore, FinishedCiEvent, IntegrationRecord, NewDelivery,
    NewPlatformEvent, NewRejection, Role, StoreError, TokenRecord,
};
use test_support::db::{FreshDatabase, fresh_database};

mod cursors;
mod log;
mod runbooks;

pub(crate) async fn open() -> (DynStore, FreshDatabase) {
    let db = fresh_database().await.expect("fresh database");
    let store = store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

fn integration(vendor: Vendor) -> IntegrationRecord {
    let now = Utc::now();
    IntegrationRecord {
        id: IntegrationId::new(),
        name: "ci".into(),
        vendor,
        config: json!({"api_base_url": "https://example.test"}),
        sealed_secrets: Some(vec![1, 2, 3]),
        sealed_auth: None,
        is_active: true,
        created_at: now,
        updated_at: now,
    }
}

fn delivery(integration: IntegrationId, delivery_id: Option<&str>) -> NewDelivery {
    let mut event = NormalizedEvent::new("push", EventType::Push);
    event.delivery_id = delivery_id.map(str::to_owned);
    event.branch = Some("main".into());
    NewDelivery {
        id: CiEventId::new(),
        integration_id: integration,
        vendor: Vendor::Github,
        received_at: Utc::now(),
        event,
        signature_valid: true,
        secret_slot: Some(0),
        payload_lz4: b"{}".to_vec(),
    }
}

#[tokio::test]
async fn migrations_apply_twice() {
    let (store, _db) = open().await;
    store.migrate().await.expect("second migrate is a no-op");
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn tokens_are_found_by_hash_only() {
    let (store, _db) = open().await;
    let token = TokenRecord {
        id: TokenId::new(),
        name: "ci".into(),
        role: Role::Operator,
        token_hash: vec![7; 32],
        created_at: Utc::now(),
    };
    store.insert_token(&token).await.unwrap();
    let found = store.find_token(&[7; 32]).await.unwrap().expect("found");
    assert_eq!(found.role, Role::Operator);
    assert_eq!(found.name, "ci");
    assert!(store.find_token(&[8; 32]).await.unwrap().is_none());
}

#[tokio::test]
async fn integrations_round_trip_update_and_soft_delete() {
    let (store, _db) = open().await;
    let mut record = integration(Vendor::Gitlab);
    store.insert_integration(&record).await.unwrap();

    let got = store
        .get_integration(record.id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(got.vendor, Vendor::Gitlab);
    assert_eq!(got.config, record.config);
    assert_eq!(got.sealed_secrets, Some(vec![1, 2, 3]));

    record.name = "renamed".into();
    record.sealed_secrets = None;
    store.update_integration(&record).await.unwrap();
    let got = store.get_integration(record.id).await.unwrap().unwrap();
    assert_eq!(got.name, "renamed");
    assert_eq!(got.sealed_secrets, None);

    store.delete_integration(record.id).await.unwrap();
    assert!(store.get_integration(record.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_integration(record.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.update_integration(&record).await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn integrations_list_pages_by_id() {
    let (store, _db) = open().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let record = integration(Vendor::Github);
        ids.push(record.id);
        store.insert_integration(&record).await.unwrap();
    }
    ids.sort();
    let first = store.list_integrations(None, 2).await.unwrap();
    assert_eq!(first.iter().map(|i| i.id).collect::<Vec<_>>(), ids[..2]);
    let rest = store.list_integrations(Some(ids[1]), 10).await.unwrap();
    assert_eq!(rest.iter().map(|i| i.id).collect::<Vec<_>>(), ids[2..]);
}

#[tokio::test]
async fn redelivery_is_stored_once_and_names_the_original() {
    let (store, _db) = open().await;
    let id = IntegrationId::new();
    let first = delivery(id, Some("d-1"));
    let again = delivery(id, Some("d-1"));
    let other_integration = delivery(IntegrationId::new(), Some("d-1"));
    let no_id = delivery(id, None);

    let outcomes = store
        .insert_deliveries(&[
            first.clone(),
            again,
            other_integration.clone(),
            no_id.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            DeliveryOutcome::Stored(first.id),
            DeliveryOutcome::Duplicate(first.id),
            DeliveryOutcome::Stored(other_integration.id),
            DeliveryOutcome::Stored(no_id.id),
        ]
    );
    let later = store
        .insert_deliveries(&[delivery(id, Some("d-1"))])
        .await
        .unwrap();
    assert_eq!(later, vec![DeliveryOutcome::Duplicate(first.id)]);
    assert_eq!(store.list_ci_events(id, 200).await.unwrap().len(), 2);
}

#[tokio::test]
async fn audit_is_newest_first_with_rejections_and_repeats() {
    let (store, _db) = open().await;
    let id = IntegrationId::new();
    let old = delivery(id, Some("a"));
    store
        .insert_deliveries(std::slice::from_ref(&old))
        .await
        .unwrap();
    let rejected = store
        .insert_rejection(&NewRejection {
            id: CiEventId::new(),
            integration_id: id,
            vendor: Vendor::Github,
            received_at: Utc::now(),
            vendor_event: "push".into(),
            delivery_id: Some("forged".into()),
            action_taken: "rejected_signature".into(),
        })
        .await
        .unwrap();
    store.add_rejection_repeats(rejected, 41).await.unwrap();

    let audit = store.list_ci_events(id, 200).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].id, rejected);
    assert!(!audit[0].signature_valid);
    assert_eq!(audit[0].repeat_count, 41);
    assert_eq!(audit[0].action_taken, "rejected_signature");
    assert_eq!(audit[1].id, old.id);
    assert_eq!(audit[1].event.branch.as_deref(), Some("main"));
    assert_eq!(store.list_ci_events(id, 1).await.unwrap().len(), 1);
}

#[tokio::test]
async fn queue_claims_leases_and_finishes_exactly_once() {
    let (store, _db) = open().await;
    let id = IntegrationId::new();
    let a = delivery(id, Some("a"));
    let b = delivery(id, Some("b"));
    store
        .insert_deliveries(&[a.clone(), b.clone()])
        .await
        .unwrap();

    let claimed = store
        .claim_ci_events(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert!(
        store
            .claim_ci_events(10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    let emitted = NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: "ci_event_received".into(),
        payload: json!({"id": a.id}),
        created_at: Utc::now(),
    };
    let finish = |emit: Vec<NewPlatformEvent>| FinishedCiEvent {
        id: a.id,
        action_taken: "runbook_only".into(),
        emit,
    };
    let done = store
        .finish_ci_events(&[finish(vec![emitted.clone()])])
        .await
        .unwrap();
    assert_eq!(done, vec![true]);
    let again = store
        .finish_ci_events(&[finish(vec![emitted])])
        .await
        .unwrap();
    assert_eq!(again, vec![false]);
    let log = store.list_platform_events(Some(0), 10).await.unwrap();
    assert_eq!(log.len(), 1, "the second finish emitted nothing");
    assert_eq!(log[0].event_type, "ci_event_received");
    let event = store.get_ci_event(a.id).await.unwrap().unwrap();
    assert_eq!(event.action_taken, "runbook_only");
}

#[tokio::test]
async fn expired_lease_makes_an_event_claimable_again() {
    let (store, _db) = open().await;
    let id = IntegrationId::new();
    let a = delivery(id, Some("a"));
    store
        .insert_deliveries(std::slice::from_ref(&a))
        .await
        .unwrap();
    let first = store
        .claim_ci_events(10, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = store
        .claim_ci_events(10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|e| e.id).collect::<Vec<_>>(), vec![a.id]);
}

#[tokio::test]
async fn platform_log_is_ordered() {
    let (store, _db) = open().await;
    let mut seqs = Vec::new();
    for n in 0..3 {
        let event = store
            .append_platform_event(&NewPlatformEvent {
                id: PlatformEventId::new(),
                event_type: "scan_finished".into(),
                payload: json!({"n": n}),
                created_at: Utc::now(),
            })
            .await
            .unwrap();
        seqs.push(event.seq);
    }
    let after_first = store.list_platform_events(Some(seqs[0]), 10).await.unwrap();
    assert_eq!(
        after_first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        seqs[1..]
    );
    assert_eq!(after_first[1].payload, json!({"n": 2}));
    let newest = store.list_platform_events(None, 1).await.unwrap();
    assert_eq!(newest[0].seq, seqs[2]);
}

#[tokio::test]
async fn group_commit_stores_concurrent_deliveries() {
    let (store, _db) = open().await;
    let notify = Arc::new(tokio::sync::Notify::new());
    let writer = DeliveryWriter::spawn(store.clone(), notify);
    let id = IntegrationId::new();
    let mut tasks = Vec::new();
    for n in 0..100 {
        let writer = writer.clone();
        let d = delivery(id, Some(&format!("d-{}", n % 50)));
        tasks.push(tokio::spawn(async move { writer.store(d).await.unwrap() }));
    }
    let mut stored = 0;
    let mut duplicates = 0;
    for task in tasks {
        match task.await.unwrap() {
            DeliveryOutcome::Stored(_) => stored += 1,
            DeliveryOutcome::Duplicate(_) => duplicates += 1,
        }
    }
    assert_eq!((stored, duplicates), (50, 50));
    assert_eq!(store.list_ci_events(id, 200).await.unwrap().len(), 50);
}

#[tokio::test]
async fn a_round_finishes_in_one_call_with_mixed_decisions() {
    let (store, _db) = open().await;
    let id = IntegrationId::new();
    let batch: Vec<NewDelivery> = (0..5)
        .map(|n| delivery(id, Some(&format!("r-{n}"))))
        .collect();
    store.insert_deliveries(&batch).await.unwrap();
    store
        .claim_ci_events(10, Duration::from_secs(60))
        .await
        .unwrap();

    let already = FinishedCiEvent {
        id: batch[4].id,
        action_taken: "runbook_only".into(),
        emit: vec![],
    };
    assert_eq!(
        store.finish_ci_events(&[already]).await.unwrap(),
        vec![true]
    );

    let round: Vec<FinishedCiEvent> = batch
        .iter()
        .enumerate()
        .map(|(n, d)| FinishedCiEvent {
            id: d.id,
            action_taken: if n % 2 == 0 {
                "filtered_branch"
            } else {
                "runbook_only"
            }
            .into(),
            emit: vec![NewPlatformEvent {
                id: PlatformEventId::new(),
                event_type: "ci_event_received".into(),
                payload: json!({"n": n}),
                created_at: Utc::now(),
            }],
        })
        .collect();
    let done = store.finish_ci_events(&round).await.unwrap();
    assert_eq!(done, vec![true, true, true, true, false]);

    let log = store.list_platform_events(Some(0), 10).await.unwrap();
    let order: Vec<i64> = log
        .iter()
        .map(|e| e.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![0, 1, 2, 3],
        "emitted in order, none for the event finished before"
    );
    let audit = store.list_ci_events(id, 10).await.unwrap();
    let action = |d: &NewDelivery| {
        audit
            .iter()
            .find(|e| e.id == d.id)
            .unwrap()
            .action_taken
            .clone()
    };
    assert_eq!(action(&batch[0]), "filtered_branch");
    assert_eq!(action(&batch[1]), "runbook_only");
    assert!(
        store
            .claim_ci_events(10, Duration::from_millis(1))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_step_starts_once_and_its_outcome_is_kept() {
    let (store, _db) = open().await;
    let owner = store::ci_event_owner(CiEventId::new());
    let now = Utc::now();
    let fresh = store
        .begin_step(&owner, "trigger:0", "pipeline_trigger", now)
        .await;
    assert_eq!(fresh.unwrap(), store::StepStart::Fresh);
    let again = store
        .begin_step(&owner, "trigger:0", "pipeline_trigger", now)
        .await;
    assert!(matches!(again.unwrap(), store::StepStart::Started(r) if r.attempts == 1));

    store
        .finish_step(&owner, "trigger:0", "failed", &json!({}), Some("404"))
        .await
        .unwrap();
    let done = store
        .begin_step(&owner, "trigger:0", "pipeline_trigger", now)
        .await;
    let store::StepStart::Finished(record) = done.unwrap() else {
        panic!("a finished step must stay finished");
    };
    assert_eq!(
        (record.state.as_str(), record.error.as_deref()),
        ("failed", Some("404"))
    );
    let listed = store
        .list_steps(std::slice::from_ref(&owner))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
}

#[tokio::test]
async fn a_queued_scan_exists_once_however_often_its_step_runs() {
    let (store, _db) = open().await;
    let owner = store::ci_event_owner(CiEventId::new());
    store
        .begin_step(&owner, "scan:0", "queued_scan", Utc::now())
        .await
        .unwrap();
    let scan = |id| store::QueuedScan {
        id,
        integration_id: IntegrationId::new(),
        tool: "snyk".into(),
        started_at: Utc::now(),
        commit_sha: Some("abc".into()),
        branch_name: Some("main".into()),
        pr_number: Some(4),
        target_branch: None,
        repo_url: "https://git.example.test/a/b".into(),
        triggered_by: "ci_event:x".into(),
    };
    let first = domain::ids::ScanId::new();
    assert!(
        store
            .queue_scan(&owner, "scan:0", &scan(first))
            .await
            .unwrap()
    );
    let second = domain::ids::ScanId::new();
    assert!(
        !store
            .queue_scan(&owner, "scan:0", &scan(second))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_scan(first).await.unwrap().unwrap().status,
        "queued"
    );
    assert!(store.get_scan(second).await.unwrap().is_none());
}

#[tokio::test]
async fn pr_contexts_are_found_by_integration_or_url() {
    let (store, _db) = open().await;
    let integration = IntegrationId::new();
    let context = store::PrContext {
        integration_id: integration,
        repo: "PRJ/app".into(),
        pr_number: 2,
        repo_url: None,
        commit_sha: Some("abc".into()),
        vendor_event: "pr:opened".into(),
        ci_event_id: CiEventId::new(),
        updated_at: Utc::now(),
    };
    store.upsert_pr_context(&context).await.unwrap();
    let by_integration = store
        .find_pr_context(
            Some(integration),
            None,
            Some("https://x.test/scm/prj/app.git"),
            2,
        )
        .await
        .unwrap();
    assert_eq!(by_integration.unwrap().repo, "PRJ/app");
    let by_url = store
        .find_pr_context(None, None, Some("https://x.test/scm/prj/app.git"), 2)
        .await
        .unwrap();
    assert!(
        by_url.is_none(),
        "without an integration only the URL matches"
    );
}
