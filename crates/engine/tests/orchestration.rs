//! The orchestrator against a real store and a wiremock vendor: a pipeline trigger whose step
//! a crash left `started` is never sent again, and one still in flight holds its event back.

use std::sync::Arc;

use chrono::Utc;
use connectors::EgressPolicy;
use domain::{CiEventId, EventType, IntegrationId, NormalizedEvent, Vendor};
use engine::outbound::{OpenCredentials, Outbound};
use serde_json::json;
use store::{DynStore, IntegrationRecord, NewDelivery};
use test_support::db::{FreshDatabase, fresh_database};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

struct NoCredentials;

impl OpenCredentials for NoCredentials {
    fn open_auth(&self, _: &IntegrationRecord) -> Result<Option<serde_json::Value>, String> {
        Ok(None)
    }
}

async fn open() -> (DynStore, FreshDatabase) {
    let db = fresh_database().await.expect("fresh database");
    let store = store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    (store, db)
}

fn integration(config: serde_json::Value) -> IntegrationRecord {
    let now = Utc::now();
    IntegrationRecord {
        id: IntegrationId::new(),
        name: "ci".into(),
        vendor: Vendor::Github,
        config,
        sealed_secrets: None,
        sealed_auth: None,
        is_active: true,
        created_at: now,
        updated_at: now,
    }
}

/// A store with a pipeline target at `fake`, a source integration triggering it on `main`,
/// and one queued push to `main`; returns the store, the event and the outbound context.
async fn setup(fake: &MockServer) -> (DynStore, FreshDatabase, CiEventId, Outbound) {
    let (store, db) = open().await;
    let target = integration(json!({"api_base_url": fake.uri(), "repository": "acme/ci"}));
    store.insert_integration(&target).await.unwrap();
    let source = integration(json!({"auto_scan": {"branches": ["main"],
        "pipeline_triggers": [{"integration_id": target.id, "pipeline": "scan.yml"}]}}));
    store.insert_integration(&source).await.unwrap();
    let mut event = NormalizedEvent::new("push", EventType::Push);
    event.branch = Some("main".into());
    let id = CiEventId::new();
    store
        .insert_deliveries(&[NewDelivery {
            id,
            integration_id: source.id,
            vendor: Vendor::Github,
            received_at: Utc::now(),
            event,
            signature_valid: true,
            secret_slot: None,
            payload_lz4: Vec::new(),
        }])
        .await
        .unwrap();
    let outbound = Outbound {
        egress: EgressPolicy::new(&[]).unwrap(),
        credentials: Arc::new(NoCredentials),
        public_url: "http://pmap.test".into(),
    };
    (store, db, id, outbound)
}

async fn mount(fake: &MockServer) {
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(fake)
        .await;
}

#[tokio::test]
async fn a_trigger_runs_once_and_is_recorded() {
    let fake = MockServer::start().await;
    mount(&fake).await;
    let (store, _db, id, outbound) = setup(&fake).await;
    engine::orchestrator::process_batch(&outbound, &store)
        .await
        .unwrap();
    let event = store.get_ci_event(id).await.unwrap().unwrap();
    assert_eq!(event.action_taken, "scans_triggered");
    assert_eq!(fake.received_requests().await.unwrap().len(), 1);
    let steps = store
        .list_steps(&[store::ci_event_owner(id)])
        .await
        .unwrap();
    assert_eq!(steps[0].state, "done");
    assert_eq!(steps[0].detail["run"]["workflow"], "scan.yml");
}

#[tokio::test]
async fn a_trigger_cut_off_by_a_crash_is_not_sent_again() {
    let fake = MockServer::start().await;
    mount(&fake).await;
    let (store, _db, id, outbound) = setup(&fake).await;
    let owner = store::ci_event_owner(id);
    let long_ago = Utc::now() - chrono::Duration::minutes(10);
    store
        .begin_step(&owner, "trigger:0", "pipeline_trigger", long_ago)
        .await
        .unwrap();

    engine::orchestrator::process_batch(&outbound, &store)
        .await
        .unwrap();
    assert!(fake.received_requests().await.unwrap().is_empty());
    let event = store.get_ci_event(id).await.unwrap().unwrap();
    assert_eq!(event.action_taken, "scans_triggered");
    let steps = store.list_steps(&[owner]).await.unwrap();
    assert_eq!(steps[0].state, "failed");
    assert!(steps[0].error.as_deref().unwrap().contains("not repeated"));
}

#[tokio::test]
async fn a_trigger_in_flight_elsewhere_holds_its_event_back() {
    let fake = MockServer::start().await;
    mount(&fake).await;
    let (store, _db, id, outbound) = setup(&fake).await;
    let owner = store::ci_event_owner(id);
    store
        .begin_step(&owner, "trigger:0", "pipeline_trigger", Utc::now())
        .await
        .unwrap();

    engine::orchestrator::process_batch(&outbound, &store)
        .await
        .unwrap();
    assert!(fake.received_requests().await.unwrap().is_empty());
    let event = store.get_ci_event(id).await.unwrap().unwrap();
    assert_eq!(event.action_taken, "queued", "the event stays queued");
}
