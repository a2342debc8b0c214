//! `/api/v1/scans`: importing a result file with its CI context, and reading scans and the
//! findings each one reported.
//!
//! The handler spools and parses (through `scan_import`) and hands one `ScanImport` to the
//! store, which writes it in a single transaction, completing the queued scan of a CI event
//! when the import's context matches one. Nothing here classifies findings or maps severities
//! itself, and a failed import stores nothing.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use domain::IntegrationId;
use domain::ids::{FindingId, ScanId};
use domain::{Severity, scan::FindingStatus};
use http::StatusCode;
use importers::Format;
use serde::{Deserialize, Serialize};
use store::{AssetRecord, FindingFilter, FindingRecord, Role, ScanFilter, ScanImport, ScanRecord};
use utoipa::{IntoParams, ToSchema};

use super::page_limit;
use super::scan_import::{self, Context, SeverityPolicy};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Detected from the content when absent.
    pub format: Option<String>,
    pub repo_url: String,
    pub branch: Option<String>,
    pub commit_sha: Option<String>,
    pub pr_number: Option<i64>,
    pub integration_id: Option<String>,
    /// Defaults to the tool name in the file.
    pub tool: Option<String>,
    /// The branch a pull request merges into; `base_branch` is accepted as well.
    pub target_branch: Option<String>,
    pub base_branch: Option<String>,
    pub external_scan_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedScan {
    #[schema(value_type = Object)]
    pub scan: ScanRecord,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScanList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<ScanRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<FindingRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanListParams {
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    pub pr_number: Option<i64>,
    pub status: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScanFindingParams {
    /// Only the findings this scan counted as new.
    pub new: Option<bool>,
    pub severity: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", rejection.body_text())
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::validation(vec![FieldError::new(field, message)])
}

pub(crate) fn parse_path_id<T: std::str::FromStr>(raw: &str, what: &str) -> ApiResult<T> {
    raw.parse().map_err(|_| ApiError::not_found(what))
}

pub(crate) fn parse_cursor<T: std::str::FromStr>(cursor: Option<&str>) -> ApiResult<Option<T>> {
    cursor
        .map(|c| {
            c.parse()
                .map_err(|_| ApiError::bad_request("invalid_cursor", "the cursor is not valid"))
        })
        .transpose()
}

pub(crate) fn parse_severity(raw: Option<&str>) -> ApiResult<Option<Severity>> {
    raw.map(|s| {
        s.parse()
            .map_err(|e: domain::severity::UnknownSeverity| invalid("severity", e.to_string()))
    })
    .transpose()
}

pub(crate) fn parse_status(raw: Option<&str>) -> ApiResult<Option<FindingStatus>> {
    raw.map(|s| {
        s.parse()
            .map_err(|e: domain::scan::UnknownStatus| invalid("status", e.to_string()))
    })
    .transpose()
}

/// Checks the CI context and resolves the integration's severity settings.
async fn severity_policy(
    state: &AppState,
    params: &ImportParams,
) -> ApiResult<(Option<IntegrationId>, SeverityPolicy)> {
    if params.repo_url.trim().is_empty() {
        return Err(invalid("repo_url", "must not be empty"));
    }
    if params.pr_number.is_some_and(|n| n <= 0) {
        return Err(invalid("pr_number", "must be a positive number"));
    }
    let Some(raw) = params.integration_id.as_deref() else {
        return Ok((None, SeverityPolicy::default()));
    };
    let id: IntegrationId = raw
        .parse()
        .map_err(|_| invalid("integration_id", "must be an integration id"))?;
    let integration = state
        .store
        .get_integration(id)
        .await?
        .ok_or_else(|| invalid("integration_id", "no such integration"))?;
    Ok((Some(id), SeverityPolicy::from_config(&integration.config)))
}

#[utoipa::path(post, path = "/api/v1/scans/import", tag = "scans", params(ImportParams),
    request_body(content = Vec<u8>, description = "the raw result file, any content type"),
    responses((status = 201, body = ImportedScan), (status = 413, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn import(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<ImportParams>, QueryRejection>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImportedScan>)> {
    caller.require(Role::Operator)?;
    let Query(params) = params.map_err(query_error)?;
    let format = params
        .format
        .as_deref()
        .map(|f| {
            f.parse::<Format>()
                .map_err(|e| invalid("format", e.to_string()))
        })
        .transpose()?;
    let (integration_id, policy) = severity_policy(&state, &params).await?;
    let started_at = Utc::now();
    let file = scan_import::spool(body).await?;

    let rules = scan_import::compile_rules(state.store.list_finding_rules().await?);
    let asset = match state.store.find_asset_by_repo(&params.repo_url).await? {
        Some(asset) => asset,
        None => AssetRecord::for_repository(&params.repo_url, started_at),
    };
    let (format, tool, findings, filtered) = {
        let tool_param = params.tool.clone();
        let repo_url = params.repo_url.clone();
        let branch = params.branch.clone();
        tokio::task::spawn_blocking(move || {
            let (format, parsed) = scan_import::parse(&file, format)?;
            drop(file);
            let tool = tool_param.unwrap_or(parsed.tool);
            let context = Context {
                tool: &tool,
                repo_url: &repo_url,
                branch_name: branch.as_deref(),
                asset: &asset,
                now: Utc::now(),
            };
            let (findings, filtered) =
                scan_import::prepare(parsed.findings, &policy, &rules, &context);
            Ok::<_, ApiError>((format, tool, findings, filtered))
        })
        .await
        .map_err(|_| ApiError::internal())??
    };

    let id = ScanId::new();
    let import = ScanImport {
        id,
        integration_id,
        tool,
        format: format.as_str().to_owned(),
        external_scan_id: params.external_scan_id,
        started_at,
        finished_at: Utc::now(),
        commit_sha: params.commit_sha,
        branch_name: params.branch,
        pr_number: params.pr_number,
        target_branch: params.target_branch.or(params.base_branch),
        repo_url: params.repo_url,
        triggered_by: format!("api:{}", caller.name),
        filtered,
        findings,
    };
    let scan = state.store.import_scan(import).await?;
    state.gate_wake.notify_one();
    tracing::info!(
        scan.id = %scan.id,
        scan.tool = %scan.tool,
        scan.triggered_by = %scan.triggered_by,
        completed_queued = scan.id != id,
        total = scan.counts.total,
        new = scan.new_counts.total,
        fixed = scan.fixed_count,
        "scan imported"
    );
    Ok((StatusCode::CREATED, Json(ImportedScan { scan })))
}

#[utoipa::path(get, path = "/api/v1/scans", tag = "scans", params(ScanListParams),
    responses((status = 200, body = ScanList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<ScanListParams>, QueryRejection>,
) -> ApiResult<Json<ScanList>> {
    caller.require(Role::Viewer)?;
    let Query(params) = params.map_err(query_error)?;
    let limit = page_limit(params.limit)?;
    let before: Option<ScanId> = parse_cursor(params.cursor.as_deref())?;
    let filter = ScanFilter {
        repo_url: params.repo_url,
        branch_name: params.branch,
        pr_number: params.pr_number,
        status: params.status,
    };
    let mut items = state.store.list_scans(&filter, before, limit + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|s| s.id.to_string()))
        .flatten();
    Ok(Json(ScanList { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/scans/{id}", tag = "scans",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ScanRecord>> {
    caller.require(Role::Viewer)?;
    let id: ScanId = parse_path_id(&id, "scan")?;
    let scan = state.store.get_scan(id).await?;
    scan.map(Json).ok_or_else(|| ApiError::not_found("scan"))
}

#[utoipa::path(get, path = "/api/v1/scans/{id}/findings", tag = "scans",
    params(ScanFindingParams),
    responses((status = 200, body = FindingList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn findings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<ScanFindingParams>, QueryRejection>,
) -> ApiResult<Json<FindingList>> {
    caller.require(Role::Viewer)?;
    let Query(params) = params.map_err(query_error)?;
    let id: ScanId = parse_path_id(&id, "scan")?;
    if state.store.get_scan(id).await?.is_none() {
        return Err(ApiError::not_found("scan"));
    }
    let filter = FindingFilter {
        scan_id: Some(id),
        only_new: params.new.unwrap_or(false),
        severity: parse_severity(params.severity.as_deref())?,
        ..Default::default()
    };
    list_page(&state, &filter, params.limit, params.cursor.as_deref()).await
}

/// One page of findings under a filter.
pub(crate) async fn list_page(
    state: &AppState,
    filter: &FindingFilter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Json<FindingList>> {
    let limit = page_limit(limit)?;
    let after: Option<FindingId> = parse_cursor(cursor)?;
    let mut items = state.store.list_findings(filter, after, limit + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|f| f.id.to_string()))
        .flatten();
    Ok(Json(FindingList { items, next_cursor }))
}
