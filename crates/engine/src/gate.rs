//! The pull-request gate at work: which SCM integration and pull request a scan or CI event
//! reports to, the verdict (from `domain::gate`), posting the status and the comment through
//! `connectors::scm`, and the `pr_gate_evaluated` platform event. The worker here follows the
//! platform-event log (`scan_finished`) from a stored cursor, so a scan imported before a crash
//! is still reported after it; the cursor is leased, so with several replicas one reports.
//!
//! This module never judges findings itself and never builds vendor requests; every post
//! failure is returned or recorded (step row and event), never dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use connectors::scm::{self, PrTarget, ScmKind, StatusReport};
use connectors::{CallError, CommentOutcome};
use domain::gate::{self, GateConfig, GateInput, ListedFinding, Verdict};
use domain::ids::{PlatformEventId, ScanId};
use domain::{IntegrationId, Vendor};
use serde_json::{Value, json};
use store::{DynStore, FindingFilter, IntegrationRecord, NewPlatformEvent, PrContext, ScanRecord};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::outbound::{Outbound, api_base_url};

/// The name of the gate's cursor in the platform-event log.
const CURSOR: &str = "gate";
/// How long the cursor stays with one worker without renewal: a crashed holder's rounds are
/// taken over after this.
const LEASE: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const EVENTS_PER_ROUND: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Call(#[from] CallError),
    /// Something the request or configuration lacks, named.
    #[error("{0}")]
    Missing(String),
}

/// Where a gate reports: the SCM integration, the vendor API and the pull request.
#[derive(Clone, Debug)]
pub struct GateTarget {
    /// The integration whose `auto_scan.gate` applies (the one that received the events).
    pub integration: IntegrationRecord,
    /// The integration that is posted to (itself, or a Jenkins/Bamboo one's SCM).
    pub scm: IntegrationRecord,
    pub kind: ScmKind,
    pub config: GateConfig,
    pub pr: PrTarget,
}

/// The gate configuration of an integration, when it has one.
pub fn gate_config(record: &IntegrationRecord) -> Option<GateConfig> {
    let auto_scan = gate::AutoScan::from_config(&record.config)?;
    auto_scan.gate.filter(|_| auto_scan.enabled)
}

/// `owner/name` out of a repository URL (`.git` and Bitbucket Server's `/scm/` dropped).
pub fn repo_from_url(repo_url: &str) -> Option<String> {
    let url = url::Url::parse(repo_url).ok()?;
    let path = url.path().trim_matches('/').trim_end_matches(".git");
    let path = path.strip_prefix("scm/").unwrap_or(path);
    (path.contains('/')).then(|| path.to_owned())
}

/// Resolves the target of a gate: `integration` (when given) or the pull request's context.
pub async fn resolve(
    store: &DynStore,
    integration: Option<&IntegrationRecord>,
    repo: Option<&str>,
    repo_url: Option<&str>,
    commit_sha: Option<&str>,
    pr_number: i64,
) -> Result<GateTarget, GateError> {
    let context = store
        .find_pr_context(integration.map(|i| i.id), repo, repo_url, pr_number)
        .await?;
    let integration = match (integration, &context) {
        (Some(record), _) => record.clone(),
        (None, Some(context)) => load(store, context.integration_id).await?,
        (None, None) => {
            return Err(GateError::Missing(format!(
                "no SCM integration has seen pull request {pr_number} of {}",
                repo_url.or(repo).unwrap_or("this repository")
            )));
        }
    };
    let scm = match integration.vendor {
        Vendor::Jenkins | Vendor::Bamboo => {
            let id = integration
                .config
                .get("scm_integration_id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IntegrationId>().ok())
                .ok_or_else(|| {
                    GateError::Missing(format!(
                        "{} integration {} has no config.scm_integration_id",
                        integration.vendor, integration.id
                    ))
                })?;
            load(store, id).await?
        }
        _ => integration.clone(),
    };
    let vendor_event = context.as_ref().map(|c| c.vendor_event.as_str());
    let kind = ScmKind::of(scm.vendor, vendor_event).ok_or_else(|| {
        GateError::Missing(format!("{} integrations cannot post statuses", scm.vendor))
    })?;
    let pr = pr_target(context.as_ref(), repo, repo_url, commit_sha, pr_number)?;
    let config = gate_config(&integration).unwrap_or_default();
    Ok(GateTarget {
        integration,
        scm,
        kind,
        config,
        pr,
    })
}

async fn load(store: &DynStore, id: IntegrationId) -> Result<IntegrationRecord, GateError> {
    store
        .get_integration(id)
        .await?
        .ok_or_else(|| GateError::Missing(format!("integration {id} does not exist")))
}

fn pr_target(
    context: Option<&PrContext>,
    repo: Option<&str>,
    repo_url: Option<&str>,
    commit_sha: Option<&str>,
    pr_number: i64,
) -> Result<PrTarget, GateError> {
    let repo_url = repo_url
        .map(str::to_owned)
        .or_else(|| context.and_then(|c| c.repo_url.clone()));
    let repo = repo
        .map(str::to_owned)
        .or_else(|| context.map(|c| c.repo.clone()))
        .or_else(|| repo_url.as_deref().and_then(repo_from_url))
        .ok_or_else(|| GateError::Missing("repo".into()))?;
    let commit_sha = commit_sha
        .map(str::to_owned)
        .or_else(|| context.and_then(|c| c.commit_sha.clone()))
        .ok_or_else(|| GateError::Missing("commit_sha".into()))?;
    Ok(PrTarget {
        repo,
        repo_url,
        commit_sha,
        pr_number,
    })
}

/// The verdict for a scan, or "waiting" without one.
pub fn judge(config: &GateConfig, scan: Option<&ScanRecord>) -> Verdict {
    match scan {
        None => gate::waiting(),
        Some(scan) => gate::evaluate(
            config,
            &GateInput {
                scan_failed: scan.status == "failed",
                has_baseline: scan.baseline_scan_id.is_some(),
                new_counts: scan.new_counts,
            },
        ),
    }
}

fn scan_link(ctx: &Outbound, scan: Option<&ScanRecord>) -> String {
    match scan {
        Some(scan) => ctx.link(&format!("/api/v1/scans/{}", scan.id)),
        None => ctx.link("/"),
    }
}

fn client(ctx: &Outbound, target: &GateTarget) -> Result<Box<dyn scm::ScmClient>, GateError> {
    let credential = ctx
        .credential_for(&target.scm)
        .map_err(GateError::Missing)?;
    Ok(scm::client(
        target.kind,
        ctx.http_for(&target.scm),
        api_base_url(&target.scm),
        credential,
    ))
}

/// Posts the verdict as the pull request's status.
pub async fn post_status(
    ctx: &Outbound,
    target: &GateTarget,
    verdict: &Verdict,
    scan: Option<&ScanRecord>,
) -> Result<(), GateError> {
    let report = StatusReport {
        state: verdict.state,
        description: verdict.description.clone(),
        target_url: scan_link(ctx, scan),
    };
    client(ctx, target)?
        .post_status(&target.pr, &report)
        .await?;
    metrics::counter!("pmap_gate_states_total", "state" => verdict.state.as_str()).increment(1);
    Ok(())
}

/// Writes (or edits) PMAP's comment on the pull request.
pub async fn post_comment(
    ctx: &Outbound,
    store: &DynStore,
    target: &GateTarget,
    verdict: &Verdict,
    scan: &ScanRecord,
) -> Result<CommentOutcome, GateError> {
    let breakdown = store.scan_breakdown(scan).await?;
    let filter = FindingFilter {
        scan_id: Some(scan.id),
        only_new: true,
        ..FindingFilter::default()
    };
    let mut findings = store.list_findings(&filter, None, 500).await?;
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let listed: Vec<ListedFinding> = findings
        .iter()
        .take(gate::COMMENT_MAX_FINDINGS)
        .map(|f| ListedFinding {
            severity: f.severity,
            title: f.title.clone(),
            location: match (&f.file_path, f.line, &f.package_name) {
                (Some(path), Some(line), _) => Some(format!("{path}:{line}")),
                (Some(path), None, _) => Some(path.clone()),
                (None, _, Some(package)) => Some(match &f.package_version {
                    Some(version) => format!("{package}@{version}"),
                    None => package.clone(),
                }),
                _ => None,
            },
        })
        .collect();
    let body = gate::comment(verdict, &breakdown, &listed, &scan_link(ctx, Some(scan)));
    Ok(client(ctx, target)?
        .upsert_comment(&target.pr, &body)
        .await?)
}

/// The `pr_gate_evaluated` platform event.
pub fn evaluated_event(
    target: &GateTarget,
    verdict: &Verdict,
    scan: Option<&ScanRecord>,
    errors: &[String],
) -> NewPlatformEvent {
    NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: "pr_gate_evaluated".into(),
        payload: json!({
            "state": verdict.state,
            "description": verdict.description,
            "repo": target.pr.repo,
            "repo_url": target.pr.repo_url,
            "pr_number": target.pr.pr_number,
            "commit_sha": target.pr.commit_sha,
            "new_counts": verdict.new_counts,
            "scan_id": scan.map(|s| s.id),
            "integration_id": target.integration.id,
            "posted": errors.is_empty(),
            "errors": errors,
        }),
        created_at: Utc::now(),
    }
}

/// Evaluates and reports a gate, recording each post as a step of `owner` (idempotent posts:
/// a step found in any unfinished state is simply posted again). Returns the errors.
pub async fn report(
    ctx: &Outbound,
    store: &DynStore,
    owner: &str,
    target: &GateTarget,
    verdict: &Verdict,
    scan: Option<&ScanRecord>,
) -> store::Result<Vec<String>> {
    let mut errors = Vec::new();
    if !matches!(
        crate::fanout::begin(store, owner, "gate_status", "gate_status").await?,
        crate::fanout::Begin::Done
    ) {
        store.restart_step(owner, "gate_status", Utc::now()).await?;
        let result = post_status(ctx, target, verdict, scan)
            .await
            .map(|()| json!({"state": verdict.state, "description": verdict.description}))
            .map_err(|e| e.to_string());
        if let Err(error) = &result {
            errors.push(format!("status: {error}"));
        }
        crate::fanout::finish(store, owner, "gate_status", result).await?;
    }
    let Some(scan) = scan.filter(|_| target.config.pr_comment) else {
        return Ok(errors);
    };
    if !matches!(
        crate::fanout::begin(store, owner, "gate_comment", "gate_comment").await?,
        crate::fanout::Begin::Done
    ) {
        store
            .restart_step(owner, "gate_comment", Utc::now())
            .await?;
        let result = post_comment(ctx, store, target, verdict, scan)
            .await
            .map(|c| json!({"comment_id": c.id(), "created": c.created()}))
            .map_err(|e| e.to_string());
        if let Err(error) = &result {
            errors.push(format!("comment: {error}"));
        }
        crate::fanout::finish(store, owner, "gate_comment", result).await?;
    }
    Ok(errors)
}

/// Follows `scan_finished` events from the stored cursor and reports each pull-request scan.
/// Every replica runs one; the cursor's lease lets one of them work at a time.
pub async fn run_worker(
    ctx: Arc<Outbound>,
    store: DynStore,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let owner = uuid::Uuid::new_v4().to_string();
    while !shutdown.is_cancelled() {
        match process_round(&ctx, &store, &owner).await {
            Ok(n) if n == EVENTS_PER_ROUND as usize => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "gate round failed"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// One round of the worker as `owner`; returns how many log entries it got through (0 while
/// another worker holds the cursor).
///
/// The lease is renewed before each entry and while a report is in flight, and each entry's
/// `pr_gate_evaluated` is appended in the transaction that moves the cursor past it, so a
/// worker that lost the cursor writes nothing, and one that crashed leaves the entry to the
/// next holder (whose posts find the finished steps and are not repeated).
///
/// Reading on from the cursor misses nothing: the store makes log positions visible in order.
pub async fn process_round(ctx: &Outbound, store: &DynStore, owner: &str) -> store::Result<usize> {
    let Some(mut at) = store.lease_event_cursor(CURSOR, owner, LEASE).await? else {
        return Ok(0);
    };
    let events = store
        .list_platform_events(Some(at), EVENTS_PER_ROUND)
        .await?;
    // Entries with nothing to report are passed over in one move of the cursor, made before
    // the next report and at the end of the round: a large import's findings cost one write.
    let mut passed = None;
    for (done, event) in events.iter().enumerate() {
        let Some(scan) = scan_to_report(store, event).await? else {
            passed = Some(event.seq);
            continue;
        };
        if let Some(to) = passed.take() {
            if !advance(store, owner, at, to, None).await? {
                return Ok(done);
            }
            at = to;
        }
        if store.lease_event_cursor(CURSOR, owner, LEASE).await? != Some(at) {
            return Ok(done);
        }
        let evaluated =
            match holding_lease(store, owner, at, report_scan(ctx, store, &scan)).await? {
                Some(evaluated) => evaluated?,
                None => return Ok(done),
            };
        if !advance(store, owner, at, event.seq, evaluated.as_ref()).await? {
            return Ok(done);
        }
        at = event.seq;
    }
    if let Some(to) = passed
        && !advance(store, owner, at, to, None).await?
    {
        return Ok(0);
    }
    Ok(events.len())
}

/// Moves the cursor from `at` to `to` (appending `evaluated`); false when the lease was lost.
async fn advance(
    store: &DynStore,
    owner: &str,
    at: i64,
    to: i64,
    evaluated: Option<&NewPlatformEvent>,
) -> store::Result<bool> {
    let moved = store
        .advance_event_cursor(CURSOR, owner, at, to, evaluated)
        .await?;
    if !moved {
        tracing::warn!(
            event.seq = to,
            "gate cursor lease lost; another worker takes over"
        );
    }
    Ok(moved)
}

/// The pull-request scan a log entry reports, if it is one.
async fn scan_to_report(
    store: &DynStore,
    event: &store::PlatformEvent,
) -> store::Result<Option<ScanRecord>> {
    let is_pr_scan = matches!(event.event_type.as_str(), "scan_finished" | "scan_failed")
        && event.payload["pr_number"].is_i64();
    let scan_id = event.payload["scan_id"]
        .as_str()
        .and_then(|s| s.parse::<ScanId>().ok());
    match (is_pr_scan, scan_id) {
        (true, Some(id)) => store.get_scan(id).await,
        _ => Ok(None),
    }
}

/// Runs `work` while renewing the cursor's lease; `None` when the lease is lost meanwhile (the
/// work is dropped mid-call, and its steps are left for the next holder).
async fn holding_lease<T>(
    store: &DynStore,
    owner: &str,
    at: i64,
    work: impl Future<Output = T>,
) -> store::Result<Option<T>> {
    tokio::pin!(work);
    let mut renew = tokio::time::interval(LEASE / 3);
    renew.tick().await;
    loop {
        tokio::select! {
            output = &mut work => return Ok(Some(output)),
            _ = renew.tick() => {
                if store.lease_event_cursor(CURSOR, owner, LEASE).await? != Some(at) {
                    return Ok(None);
                }
            }
        }
    }
}

/// Reports a finished pull-request scan to the SCM its pull request came from, and returns
/// the `pr_gate_evaluated` event for the caller to append (`None` when the scan is not gated).
pub async fn report_scan(
    ctx: &Outbound,
    store: &DynStore,
    scan: &ScanRecord,
) -> store::Result<Option<NewPlatformEvent>> {
    let Some(pr_number) = scan.pr_number else {
        return Ok(None);
    };
    let own = match scan.integration_id {
        Some(id) => store
            .get_integration(id)
            .await?
            .filter(|r| r.vendor.archetype() == domain::Archetype::CiWebhook),
        None => None,
    };
    let target = match resolve(
        store,
        own.as_ref(),
        None,
        Some(&scan.repo_url),
        scan.commit_sha.as_deref(),
        pr_number,
    )
    .await
    {
        Ok(target) => target,
        Err(GateError::Store(err)) => return Err(err),
        Err(err) => {
            tracing::debug!(scan.id = %scan.id, reason = %err, "pull-request scan not gated");
            return Ok(None);
        }
    };
    if gate_config(&target.integration).is_none() {
        return Ok(None);
    }
    let verdict = judge(&target.config, Some(scan));
    let owner = store::scan_owner(scan.id);
    let errors = report(ctx, store, &owner, &target, &verdict, Some(scan)).await?;
    Ok(Some(evaluated_event(
        &target,
        &verdict,
        Some(scan),
        &errors,
    )))
}
