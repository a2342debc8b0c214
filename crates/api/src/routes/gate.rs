//! `/api/v1/integrations/{id}/ci/pr-status` and `/ci/pr-comment`: evaluate a pull request's
//! gate on demand and post the status or the comment to the SCM, and the credential opener the
//! engine uses for every outbound call.
//!
//! Handlers parse, resolve and delegate to `engine::gate`; they never judge findings or build
//! vendor requests. A post the SCM refuses answers 502 and is recorded as a `pr_gate_evaluated`
//! event with its error.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use domain::gate::Verdict;
use domain::ids::ScanId;
use domain::scan::SeverityCounts;
use engine::gate::{self, GateError, GateTarget};
use engine::outbound::OpenCredentials;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use store::{IntegrationRecord, Role, ScanRecord};
use utoipa::ToSchema;

use super::ApiJson;
use crate::auth::Caller;
use crate::crypto::Cipher;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

/// Opens `config.auth` with the master key for the engine's outbound calls.
pub struct SealedCredentials(pub Cipher);

impl OpenCredentials for SealedCredentials {
    fn open_auth(&self, record: &IntegrationRecord) -> Result<Option<serde_json::Value>, String> {
        super::integrations::open_auth(&self.0, record).map_err(|_| {
            format!(
                "the credentials of integration {} cannot be opened",
                record.id
            )
        })
    }
}

/// Which pull request: a scan with PR context, or the pull request itself.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrGateIn {
    pub scan_id: Option<String>,
    pub repo: Option<String>,
    pub commit_sha: Option<String>,
    pub pr_number: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrStatusOut {
    pub state: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub new_counts: SeverityCounts,
    pub target_url: String,
    pub posted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PrCommentOut {
    pub comment_id: String,
    pub created: bool,
    pub updated: bool,
}

fn missing(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, message)])
}

fn gate_error(err: GateError) -> ApiError {
    match err {
        GateError::Store(err) => err.into(),
        GateError::Missing(what) => missing("pull_request", what),
        GateError::Call(err) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "scm_post_failed",
            format!("the SCM refused the post: {err}"),
        ),
    }
}

async fn integration(state: &AppState, raw: &str) -> ApiResult<IntegrationRecord> {
    let id = super::integrations::parse_integration_id(raw)?;
    let record = state
        .store
        .get_integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))?;
    if record.vendor.archetype() != domain::Archetype::CiWebhook {
        return Err(missing(
            "integration",
            "only CI integrations report pull-request gates",
        ));
    }
    Ok(record)
}

/// The gate target and the scan to judge (none yet: "waiting").
async fn target(
    state: &AppState,
    record: &IntegrationRecord,
    body: &PrGateIn,
    need_commit: bool,
) -> ApiResult<(GateTarget, Option<ScanRecord>)> {
    if let Some(raw) = &body.scan_id {
        let id: ScanId = raw
            .parse()
            .map_err(|_| missing("scan_id", "must be a scan id"))?;
        let scan = state
            .store
            .get_scan(id)
            .await?
            .ok_or_else(|| missing("scan_id", "no such scan"))?;
        let Some(pr_number) = scan.pr_number else {
            return Err(missing(
                "scan_id",
                "the scan has no pull-request context: pr_number is missing (import it with \
                 pr_number and commit_sha)",
            ));
        };
        let target = gate::resolve(
            &state.store,
            Some(record),
            body.repo.as_deref(),
            Some(&scan.repo_url),
            scan.commit_sha.as_deref(),
            pr_number,
        )
        .await
        .map_err(gate_error)?;
        return Ok((target, Some(scan)));
    }

    let mut absent = Vec::new();
    if body.repo.is_none() {
        absent.push(FieldError::new("repo", "required without scan_id"));
    }
    if need_commit && body.commit_sha.is_none() {
        absent.push(FieldError::new("commit_sha", "required without scan_id"));
    }
    if body.pr_number.is_none() {
        absent.push(FieldError::new("pr_number", "required without scan_id"));
    }
    let (Some(repo), Some(pr_number), true) = (&body.repo, body.pr_number, absent.is_empty())
    else {
        return Err(ApiError::validation(absent));
    };
    let repo_url = match repo.starts_with("http://") || repo.starts_with("https://") {
        true => Some(repo.clone()),
        false => state
            .store
            .find_pr_context(Some(record.id), Some(repo), None, pr_number)
            .await?
            .and_then(|c| c.repo_url),
    };
    let vendor_repo = repo_url.is_none().then_some(repo.as_str());
    let target = gate::resolve(
        &state.store,
        Some(record),
        vendor_repo,
        repo_url.as_deref(),
        body.commit_sha.as_deref(),
        pr_number,
    )
    .await
    .map_err(gate_error)?;
    let scan = match &repo_url {
        Some(url) => {
            let by_commit = state
                .store
                .latest_pr_scan(url, pr_number, body.commit_sha.as_deref())
                .await?;
            match by_commit {
                Some(scan) => Some(scan),
                None => state.store.latest_pr_scan(url, pr_number, None).await?,
            }
        }
        None => None,
    };
    Ok((target, scan))
}

async fn record_event(
    state: &AppState,
    target: &GateTarget,
    verdict: &Verdict,
    scan: Option<&ScanRecord>,
    errors: &[String],
) -> ApiResult<()> {
    let event = gate::evaluated_event(target, verdict, scan, errors);
    state.store.append_platform_event(&event).await?;
    Ok(())
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/ci/pr-status", tag = "gate",
    request_body = PrGateIn,
    responses((status = 200, body = PrStatusOut), (status = 422, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody)))]
pub async fn pr_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PrGateIn>,
) -> ApiResult<Json<PrStatusOut>> {
    caller.require(Role::Operator)?;
    let record = integration(&state, &id).await?;
    let (target, scan) = target(&state, &record, &body, true).await?;
    let verdict = gate::judge(&target.config, scan.as_ref());
    let posted = gate::post_status(&state.outbound, &target, &verdict, scan.as_ref()).await;
    let errors: Vec<String> = posted
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .into_iter()
        .collect();
    record_event(&state, &target, &verdict, scan.as_ref(), &errors).await?;
    posted.map_err(gate_error)?;
    let target_url = match &scan {
        Some(scan) => state.outbound.link(&format!("/api/v1/scans/{}", scan.id)),
        None => state.outbound.link("/"),
    };
    Ok(Json(PrStatusOut {
        state: verdict.state.as_str().to_owned(),
        description: verdict.description,
        new_counts: verdict.new_counts,
        target_url,
        posted: true,
    }))
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/ci/pr-comment", tag = "gate",
    request_body = PrGateIn,
    responses((status = 200, body = PrCommentOut), (status = 422, body = crate::error::ErrorBody),
        (status = 502, body = crate::error::ErrorBody)))]
pub async fn pr_comment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PrGateIn>,
) -> ApiResult<Json<PrCommentOut>> {
    caller.require(Role::Operator)?;
    let record = integration(&state, &id).await?;
    let (target, scan) = target(&state, &record, &body, false).await?;
    let Some(scan) = scan else {
        return Err(missing(
            "scan_id",
            "no finished scan of this pull request to comment on",
        ));
    };
    let verdict = gate::judge(&target.config, Some(&scan));
    let outcome = gate::post_comment(&state.outbound, &state.store, &target, &verdict, &scan)
        .await
        .map_err(gate_error)?;
    Ok(Json(PrCommentOut {
        comment_id: outcome.id().to_owned(),
        created: outcome.created(),
        updated: !outcome.created(),
    }))
}
