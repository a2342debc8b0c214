//! The CI event consumer. Each queued event is leased, processed, and finished in one
//! transaction together with the platform events it causes, so a crash at any point either
//! leaves the event queued (and its lease runs out) or finishes it exactly once.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::gate::AutoScan;
use domain::ids::PlatformEventId;
use domain::{Action, CiEvent, EventType, IntegrationId};
use futures_util::future::join_all;
use globset::{GlobBuilder, GlobSetBuilder};
use store::{DynStore, FinishedCiEvent, IntegrationRecord, NewPlatformEvent, PrContext};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outbound::Outbound;
use crate::{fanout, gate};

/// How long a claimed event stays with one worker before another may take it over. Processing
/// one event takes milliseconds; a short lease lets a restarted or surviving replica pick up
/// what a killed one had claimed within seconds.
const LEASE: Duration = Duration::from_secs(5);
/// Events claimed per round.
const CLAIM_BATCH: u32 = 256;
/// How often the queue is checked without a wake-up (deliveries stored by other replicas,
/// leases that ran out).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Events with outbound work processed at once within a round.
const HEAVY_CONCURRENCY: usize = 8;

/// What the consumer decided for one CI event, and the work that follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action_taken: &'static str,
    /// Start the pipeline triggers and queue the scans.
    pub fan_out: bool,
    /// Evaluate and report the pull-request gate.
    pub gate: bool,
}

impl Decision {
    fn only(action_taken: &'static str) -> Decision {
        Decision {
            action_taken,
            fan_out: false,
            gate: false,
        }
    }
}

/// Decides what a CI event leads to under its integration's `auto_scan` (none: runbooks only).
/// The branch filter applies first (on the target branch of a pull request), then `enabled`;
/// pushes and open pull requests fan out, open pull requests are gated.
pub fn decide(event: &CiEvent, auto_scan: Option<&AutoScan>) -> Decision {
    let Some(auto_scan) = auto_scan else {
        return Decision::only("runbook_only");
    };
    let e = &event.event;
    let is_pr = e.event_type == EventType::PullRequest;
    let branch = if is_pr { &e.target_branch } else { &e.branch };
    if !branch_matches(&auto_scan.branches, branch.as_deref()) {
        return Decision::only("filtered_branch");
    }
    if !auto_scan.enabled {
        return Decision::only("auto_scan_disabled");
    }
    let open_pr = is_pr && !matches!(e.action, Some(Action::Closed | Action::Merged));
    let push = e.event_type == EventType::Push && e.action != Some(Action::Deleted);
    let has_work = !auto_scan.pipeline_triggers.is_empty() || !auto_scan.scans.is_empty();
    let fan_out = has_work && (push || open_pr);
    let gate = open_pr && auto_scan.gate.is_some() && e.pr_number.is_some();
    let action_taken = match (fan_out, gate) {
        (true, _) => "scans_triggered",
        (false, true) => "gate_evaluated",
        (false, false) => "runbook_only",
    };
    Decision {
        action_taken,
        fan_out,
        gate,
    }
}

/// True when `branch` matches one of the glob patterns (`main`, `release/*`); `*` stays within
/// one path segment, `**` crosses them. No patterns means every branch; no branch matches only
/// that.
pub fn branch_matches(patterns: &[String], branch: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let Some(branch) = branch else { return false };
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                set.add(glob);
            }
            Err(err) => tracing::warn!(pattern, error = %err, "branch pattern ignored"),
        }
    }
    set.build().is_ok_and(|set| set.is_match(branch))
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
pub async fn run(
    ctx: Arc<Outbound>,
    store: DynStore,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        match process_batch(&ctx, &store).await {
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

/// Processes one round of queued events; returns how many were claimed. Events without
/// outbound work are decided at once; the others run their steps (a few at a time) first. The
/// whole round is finished in one transaction; an event whose steps are still in flight
/// elsewhere stays queued.
pub async fn process_batch(ctx: &Outbound, store: &DynStore) -> store::Result<usize> {
    let events = store.claim_ci_events(CLAIM_BATCH, LEASE).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let mut configs: HashMap<IntegrationId, Option<IntegrationRecord>> = HashMap::new();
    let mut finished = Vec::with_capacity(events.len());
    let mut heavy = Vec::new();
    for event in &events {
        let record = match configs.entry(event.integration_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(store.get_integration(event.integration_id).await?),
        };
        let record = record.as_ref();
        let auto_scan = record.and_then(|r| AutoScan::from_config(&r.config));
        let decision = decide(event, auto_scan.as_ref());
        match (record, auto_scan) {
            (Some(record), Some(auto_scan)) if decision.fan_out || decision.gate => {
                heavy.push((event, record.clone(), auto_scan, decision));
            }
            _ => finished.push(finish(event, decision, Vec::new())),
        }
    }
    for chunk in heavy.chunks(HEAVY_CONCURRENCY) {
        let mut running = Vec::with_capacity(chunk.len());
        for (event, record, auto_scan, decision) in chunk {
            running.push(work_logged(ctx, store, event, record, auto_scan, *decision));
        }
        finished.extend(join_all(running).await.into_iter().flatten());
    }

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

fn finish(event: &CiEvent, decision: Decision, mut emit: Vec<NewPlatformEvent>) -> FinishedCiEvent {
    emit.insert(0, ci_event_received(event, decision.action_taken));
    FinishedCiEvent {
        id: event.id,
        action_taken: decision.action_taken.to_owned(),
        emit,
    }
}

/// [`work`], with a failure logged and the event left queued for a later round.
async fn work_logged(
    ctx: &Outbound,
    store: &DynStore,
    event: &CiEvent,
    record: &IntegrationRecord,
    auto_scan: &AutoScan,
    decision: Decision,
) -> Option<FinishedCiEvent> {
    match work(ctx, store, event, record, auto_scan, decision).await {
        Ok(done) => done,
        Err(err) => {
            tracing::warn!(ci_event.id = %event.id, error = %err, "ci event work failed");
            None
        }
    }
}

/// Runs an event's fan-out and gate; `None` when it must wait for a step in flight elsewhere.
async fn work(
    ctx: &Outbound,
    store: &DynStore,
    event: &CiEvent,
    record: &IntegrationRecord,
    auto_scan: &AutoScan,
    decision: Decision,
) -> store::Result<Option<FinishedCiEvent>> {
    if decision.fan_out {
        let outcome = fanout::run(ctx, store, event, auto_scan).await?;
        if outcome.deferred {
            return Ok(None);
        }
    }
    let mut emit = Vec::new();
    if decision.gate
        && let Some(event) = gate_for_event(ctx, store, event, record).await?
    {
        emit.push(event);
    }
    Ok(Some(finish(event, decision, emit)))
}

/// Records the pull request's context and reports its gate from the newest finished scan of
/// its head commit (or "waiting for scan results").
async fn gate_for_event(
    ctx: &Outbound,
    store: &DynStore,
    event: &CiEvent,
    record: &IntegrationRecord,
) -> store::Result<Option<NewPlatformEvent>> {
    let e = &event.event;
    let (Some(pr_number), Some(repo)) = (e.pr_number, e.repo.as_deref()) else {
        return Ok(None);
    };
    let context = PrContext {
        integration_id: record.id,
        repo: repo.to_owned(),
        pr_number,
        repo_url: e.repo_url.clone(),
        commit_sha: e.commit_sha.clone(),
        vendor_event: e.vendor_event.clone(),
        ci_event_id: event.id,
        updated_at: Utc::now(),
    };
    store.upsert_pr_context(&context).await?;

    let owner = store::ci_event_owner(event.id);
    let target = match gate::resolve(
        store,
        Some(record),
        Some(repo),
        e.repo_url.as_deref(),
        e.commit_sha.as_deref(),
        pr_number,
    )
    .await
    {
        Ok(target) => target,
        Err(gate::GateError::Store(err)) => return Err(err),
        Err(err) => {
            fanout::begin(store, &owner, "gate_status", "gate_status").await?;
            fanout::finish(store, &owner, "gate_status", Err(err.to_string())).await?;
            return Ok(None);
        }
    };
    let scan = match e.repo_url.as_deref() {
        Some(url) => {
            store
                .latest_pr_scan(url, pr_number, e.commit_sha.as_deref())
                .await?
        }
        None => None,
    };
    let verdict = gate::judge(&target.config, scan.as_ref());
    let errors = gate::report(ctx, store, &owner, &target, &verdict, scan.as_ref()).await?;
    Ok(Some(gate::evaluated_event(
        &target,
        &verdict,
        scan.as_ref(),
        &errors,
    )))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(event_type: EventType, action: Action, branch: &str, target: Option<&str>) -> CiEvent {
        let mut normalized = domain::NormalizedEvent::new("x", event_type);
        normalized.action = Some(action);
        normalized.branch = Some(branch.into());
        normalized.target_branch = target.map(str::to_owned);
        normalized.pr_number = target.map(|_| 3);
        CiEvent {
            id: domain::CiEventId::new(),
            integration_id: IntegrationId::new(),
            vendor: domain::Vendor::Github,
            received_at: Utc::now(),
            event: normalized,
            signature_valid: true,
            secret_slot: None,
            action_taken: "queued".into(),
            repeat_count: 0,
        }
    }

    fn check(auto_scan: serde_json::Value, event: &CiEvent, expected: (&str, bool, bool)) {
        let config = json!({ "auto_scan": auto_scan });
        let decision = decide(event, AutoScan::from_config(&config).as_ref());
        assert_eq!(
            (decision.action_taken, decision.fan_out, decision.gate),
            expected,
            "{auto_scan}"
        );
    }

    #[test]
    fn decisions() {
        let trigger = json!([{"integration_id": "0190a0b4-8d5e-7c3a-9f00-000000000001"}]);
        let push_main = event(EventType::Push, Action::Updated, "main", None);
        let push_release = event(EventType::Push, Action::Updated, "release/1.2", None);
        let pr_into_main = event(
            EventType::PullRequest,
            Action::Opened,
            "feature",
            Some("main"),
        );
        let merged = event(
            EventType::PullRequest,
            Action::Merged,
            "feature",
            Some("main"),
        );

        assert_eq!(decide(&push_main, None).action_taken, "runbook_only");
        check(
            json!({"branches": ["release/*"]}),
            &push_main,
            ("filtered_branch", false, false),
        );
        check(
            json!({"branches": ["main"], "enabled": false, "pipeline_triggers": trigger}),
            &push_main,
            ("auto_scan_disabled", false, false),
        );
        check(
            json!({"branches": ["main", "release/*"], "pipeline_triggers": trigger}),
            &push_release,
            ("scans_triggered", true, false),
        );
        check(
            json!({"branches": ["main"], "gate": {}}),
            &pr_into_main,
            ("gate_evaluated", false, true),
        );
        check(
            json!({"branches": ["main"], "gate": {}, "scans": trigger}),
            &pr_into_main,
            ("scans_triggered", true, true),
        );
        check(
            json!({"branches": ["main"], "gate": {}, "scans": trigger}),
            &merged,
            ("runbook_only", false, false),
        );
    }

    #[test]
    fn branch_globs() {
        let patterns = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(branch_matches(&[], Some("anything")));
        assert!(branch_matches(
            &patterns(&["release/*"]),
            Some("release/1.0")
        ));
        assert!(!branch_matches(
            &patterns(&["release/*"]),
            Some("release/1.0/hotfix")
        ));
        assert!(branch_matches(
            &patterns(&["release/**"]),
            Some("release/1.0/hotfix")
        ));
        assert!(!branch_matches(&patterns(&["main"]), Some("maintenance")));
        assert!(!branch_matches(&patterns(&["main"]), None));
        assert!(!branch_matches(&patterns(&["[unclosed"]), Some("main")));
    }
}
