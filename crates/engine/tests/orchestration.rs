//! The orchestrator and the gate worker against a real store and a wiremock vendor: a pipeline
//! trigger whose step a crash left `started` is never sent again, one still in flight holds
//! its event back, and two gate workers on one store report each pull-request scan once.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use connectors::EgressPolicy;
use domain::ids::ScanId;
use domain::{CiEventId, EventType, IntegrationId, NormalizedEvent, Vendor};
use engine::outbound::{OpenCredentials, Outbound};
use serde_json::json;
use store::{DynStore, IntegrationRecord, NewDelivery, PrContext, ScanImport};
use test_support::db::{FreshDatabase, fresh_database};
use wiremock::matchers::{method, path_regex};
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
    (store, db, id, outbound())
}

fn outbound() -> Outbound {
    Outbound {
        egress: EgressPolicy::new(&[]).unwrap(),
        credentials: Arc::new(NoCredentials),
        public_url: "http://pmap.test".into(),
    }
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

const REPO_URL: &str = "https://github.com/acme/app";

/// A finished scan of pull request 7 with no findings, as the gated integration reported it.
fn pr_scan(integration: IntegrationId) -> ScanImport {
    let now = Utc::now();
    ScanImport {
        id: ScanId::new(),
        integration_id: Some(integration),
        tool: "semgrep".into(),
        format: "sarif".into(),
        external_scan_id: None,
        started_at: now,
        finished_at: now,
        commit_sha: Some("abc123".into()),
        branch_name: Some("feature".into()),
        pr_number: Some(7),
        target_branch: Some("main".into()),
        repo_url: REPO_URL.into(),
        triggered_by: "test".into(),
        filtered: 0,
        findings: Vec::new(),
    }
}

#[tokio::test]
async fn two_gate_workers_on_one_store_report_each_scan_once() {
    let fake = MockServer::start().await;
    // Slow answers keep both workers inside a round at once.
    let slow = Duration::from_millis(100);
    Mock::given(method("POST"))
        .and(path_regex("/statuses/"))
        .respond_with(ResponseTemplate::new(201).set_delay(slow))
        .mount(&fake)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&fake)
        .await;
    Mock::given(method("POST"))
        .and(path_regex("/comments$"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(json!({"id": 1}))
                .set_delay(slow),
        )
        .mount(&fake)
        .await;

    let (store, _db) = open().await;
    let scm = integration(json!({"api_base_url": fake.uri(), "auto_scan": {"gate": {}}}));
    store.insert_integration(&scm).await.unwrap();
    let context = PrContext {
        integration_id: scm.id,
        repo: "acme/app".into(),
        pr_number: 7,
        repo_url: Some(REPO_URL.into()),
        commit_sha: Some("abc123".into()),
        vendor_event: "pull_request.opened".into(),
        ci_event_id: CiEventId::new(),
        updated_at: Utc::now(),
    };
    store.upsert_pr_context(&context).await.unwrap();
    let mut scans = Vec::new();
    for _ in 0..3 {
        scans.push(store.import_scan(pr_scan(scm.id)).await.unwrap().id);
    }

    let outbound = outbound();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (a, b) = tokio::join!(
            engine::gate::process_round(&outbound, &store, "replica-a"),
            engine::gate::process_round(&outbound, &store, "replica-b"),
        );
        if a.unwrap() + b.unwrap() == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the workers never caught up"
        );
    }

    let log = store.list_platform_events(Some(0), 500).await.unwrap();
    let mut reported: Vec<String> = log
        .iter()
        .filter(|e| e.event_type == "pr_gate_evaluated")
        .map(|e| e.payload["scan_id"].as_str().unwrap().to_owned())
        .collect();
    reported.sort();
    let mut expected: Vec<String> = scans.iter().map(ToString::to_string).collect();
    expected.sort();
    assert_eq!(reported, expected, "one pr_gate_evaluated per scan");
    let posted = fake.received_requests().await.unwrap();
    let statuses = posted
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().contains("/statuses/"))
        .count();
    assert_eq!(statuses, scans.len(), "one status post per scan");
    let comments = posted
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/comments"))
        .count();
    assert_eq!(comments, scans.len(), "one comment post per scan");
}
