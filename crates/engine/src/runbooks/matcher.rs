//! The matcher: reads the platform-event log in order from a durable, leased cursor, enriches
//! each payload with the finding, scan and asset it names, and records one execution per
//! matching runbook (queued, or skipped when throttled). The executions and the cursor move
//! are one transaction, and `(runbook, event)` is unique, so a runbook fires exactly once per
//! event however many replicas run this loop.
//!
//! This module never runs actions; it only decides what fires.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use domain::condition::evaluate;
use domain::ids::{AssetId, ExecutionId, FindingId, RunbookId, ScanId};
use serde_json::{Value, json};
use store::{DynStore, ExecutionRecord, MatchRound, PlatformEvent, RunbookRecord};

use super::definition::{Runbook, validate};
use super::template;

/// Events read per round.
const BATCH: u32 = 500;
/// How long the matcher waits for a missing sequence number to commit before passing it by.
/// PostgreSQL hands out sequence numbers before commit, so a later number can be visible
/// before an earlier one; a rolled-back insert leaves a hole for good.
const GAP_GRACE: Duration = Duration::from_secs(3);

/// Parsed runbooks by id, kept while their version stays the same.
#[derive(Default)]
pub struct RunbookCache {
    entries: Mutex<HashMap<RunbookId, (i64, Arc<Runbook>)>>,
}

impl RunbookCache {
    /// The parsed form of a stored runbook, compiled once per version. `None` when the stored
    /// definition no longer validates (it did on write; the catalog may have changed since).
    pub fn get(&self, record: &RunbookRecord) -> Option<Arc<Runbook>> {
        let mut entries = self.entries.lock().expect("runbook cache lock");
        if let Some((version, runbook)) = entries.get(&record.id)
            && *version == record.version
        {
            return Some(runbook.clone());
        }
        match validate(&record.definition) {
            Ok(runbook) => {
                let runbook = Arc::new(runbook);
                entries.insert(record.id, (record.version, runbook.clone()));
                Some(runbook)
            }
            Err(issues) => {
                tracing::warn!(runbook.id = %record.id, problems = issues.len(),
                    "stored runbook no longer validates; it does not fire");
                None
            }
        }
    }
}

/// Remembers a hole in the sequence while it may still fill.
#[derive(Default)]
pub struct GapWatch {
    seen: Mutex<Option<(i64, Instant)>>,
}

impl GapWatch {
    /// True when the matcher should stop before `seq` and wait for `expected` to commit.
    fn should_wait(&self, expected: i64) -> bool {
        let mut seen = self.seen.lock().expect("gap lock");
        match *seen {
            Some((seq, since)) if seq == expected => since.elapsed() < GAP_GRACE,
            _ => {
                *seen = Some((expected, Instant::now()));
                true
            }
        }
    }
}

/// One matcher round as `owner`; returns how many events it consumed.
pub async fn match_round(
    store: &DynStore,
    cache: &RunbookCache,
    gaps: &GapWatch,
    owner: &str,
    lease: Duration,
) -> store::Result<usize> {
    let Some(cursor) = store.lease_runbook_cursor(owner, lease).await? else {
        return Ok(0);
    };
    let events = store.list_platform_events(Some(cursor), BATCH).await?;
    if events.is_empty() {
        return Ok(0);
    }
    let records = store.list_active_runbooks().await?;
    let mut runbooks: Vec<(RunbookRecord, Arc<Runbook>)> = records
        .into_iter()
        .filter_map(|r| cache.get(&r).map(|parsed| (r, parsed)))
        .collect();
    // Enriching reads the database: only for events some active runbook listens to.
    let listened: HashSet<String> = runbooks
        .iter()
        .flat_map(|(_, r)| r.triggers.iter().map(|t| t.event.clone()))
        .collect();

    let mut round = MatchRound {
        cursor,
        ..MatchRound::default()
    };
    let mut consumed = 0;
    for event in &events {
        if event.seq != round.cursor + 1 && gaps.should_wait(round.cursor + 1) {
            break;
        }
        round.cursor = event.seq;
        consumed += 1;
        if !listened.contains(&event.event_type) {
            continue;
        }
        let payload = enrich(store, event).await;
        for (record, runbook) in &mut runbooks {
            if let Some(execution) = fire(record, runbook, event, &payload) {
                if execution.status == "queued" {
                    record.last_fired_at = Some(event.created_at);
                    round.fired.push((record.id, event.created_at));
                }
                round.executions.push(execution);
            }
        }
    }
    if consumed > 0 && !store.commit_match_round(owner, &round).await? {
        tracing::warn!("runbook cursor lease lost; another matcher takes over");
        return Ok(0);
    }
    Ok(consumed)
}

/// Whether any trigger of the runbook matches the event.
pub fn matches(runbook: &Runbook, event_type: &str, payload: &Value, now: DateTime<Utc>) -> bool {
    runbook.triggers.iter().any(|trigger| {
        trigger.event == event_type
            && trigger
                .conditions
                .as_ref()
                .is_none_or(|group| evaluate(group, payload, now))
    })
}

/// The execution a matching runbook gets for an event, or `None` when it does not match.
fn fire(
    record: &RunbookRecord,
    runbook: &Runbook,
    event: &PlatformEvent,
    payload: &Value,
) -> Option<ExecutionRecord> {
    let now = Utc::now();
    if !matches(runbook, &event.event_type, payload, now) {
        return None;
    }
    let throttled = runbook.throttle_seconds.is_some_and(|seconds| {
        record
            .last_fired_at
            .is_some_and(|last| event.created_at < last + chrono::Duration::seconds(seconds as i64))
    });
    let key = runbook
        .concurrency_key
        .as_deref()
        .map(|source| template::render(source, &render_context(payload, &event.event_type)));
    let mut execution = ExecutionRecord {
        id: ExecutionId::new(),
        runbook_id: record.id,
        runbook_version: record.version,
        platform_event_id: event.id,
        event_seq: event.seq,
        trigger_event: event.event_type.clone(),
        trigger_payload: payload.clone(),
        status: "queued".into(),
        skip_reason: None,
        concurrency_key_value: None,
        max_concurrency: i64::from(runbook.max_concurrency),
        position: 0,
        context: json!({"actions": [], "signals": {}}),
        action_results: Vec::new(),
        wait_signal: None,
        due_at: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        duration_ms: None,
    };
    match key {
        Some(Ok(value)) => execution.concurrency_key_value = Some(value),
        Some(Err(err)) => {
            execution.status = "failed".into();
            execution.skip_reason = Some(format!("concurrency_key: {err}"));
        }
        None => {}
    }
    if throttled {
        execution.status = "skipped".into();
        execution.skip_reason = Some("throttled".into());
    }
    if execution.status != "queued" {
        execution.started_at = Some(now);
        execution.finished_at = Some(now);
        execution.duration_ms = Some(0);
    }
    Some(execution)
}

/// What templates and gates see: the payload's fields, plus `event`, earlier actions' outputs
/// and signals (filled in by the executor).
pub fn render_context(payload: &Value, event_type: &str) -> Value {
    let mut context = match payload {
        Value::Object(map) => Value::Object(map.clone()),
        _ => json!({}),
    };
    context["event"] = json!(event_type);
    context
}

/// Embeds the finding, scan and asset the payload refers to, when they exist and are not
/// embedded already. A lookup that fails leaves the payload as it was.
pub async fn enrich(store: &DynStore, event: &PlatformEvent) -> Value {
    let mut payload = event.payload.clone();
    let Value::Object(map) = &mut payload else {
        return payload;
    };
    let id_at = |map: &serde_json::Map<String, Value>, path: &str| -> Option<String> {
        template::lookup(&Value::Object(map.clone()), path)?
            .as_str()
            .map(str::to_owned)
    };

    if !map.contains_key("finding")
        && let Some(id) = id_at(map, "finding_id").and_then(|s| s.parse::<FindingId>().ok())
        && let Ok(Some(finding)) = store.get_finding(id).await
    {
        map.insert("finding".into(), json!(finding));
    }
    let scan_id = id_at(map, "scan_id").or_else(|| id_at(map, "finding.scan_id"));
    if !map.contains_key("scan")
        && let Some(id) = scan_id.and_then(|s| s.parse::<ScanId>().ok())
        && let Ok(Some(scan)) = store.get_scan(id).await
    {
        map.insert("scan".into(), json!(scan));
    }
    if !map.contains_key("asset") || map["asset"].is_null() {
        let asset_id = ["asset_id", "finding.asset_id", "scan.asset_id"]
            .iter()
            .find_map(|p| id_at(map, p))
            .and_then(|s| s.parse::<AssetId>().ok());
        let asset = match asset_id {
            Some(id) => store.get_asset(id).await.ok().flatten(),
            None => match id_at(map, "repo_url") {
                Some(url) => store.find_asset_by_repo(&url).await.ok().flatten(),
                None => None,
            },
        };
        if let Some(asset) = asset {
            map.insert("asset".into(), json!(asset));
        }
    }
    payload
}
