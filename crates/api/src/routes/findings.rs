//! `/api/v1/findings`: listing with filters, one finding with its history, edits by people
//! (status, severity, assignee, tags) that are recorded in the history and emitted as platform
//! events, and comments. Imports never come through here.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use domain::Severity;
use domain::ids::{AssetId, CommentId, FindingId, PlatformEventId, ScanId};
use domain::scan::FindingStatus;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{
    CommentRecord, FindingFilter, FindingRecord, FindingUpdate, HistoryRecord, NewPlatformEvent,
    Role,
};
use utoipa::{IntoParams, ToSchema};

use super::ApiJson;
use super::scans::{
    FindingList, list_page, parse_cursor, parse_path_id, parse_severity, parse_status,
};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingParams {
    pub repo_url: Option<String>,
    pub tool: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub asset_id: Option<String>,
    pub scan_id: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A partial edit. `"assignee": null` unassigns; `tags` replaces the list.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingPatch {
    #[schema(value_type = Option<String>)]
    pub status: Option<FindingStatus>,
    #[schema(value_type = Option<String>)]
    pub severity: Option<Severity>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub assignee: Option<Option<String>>,
    pub tags: Option<Vec<String>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingOut {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub finding: FindingRecord,
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<HistoryRecord>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<HistoryRecord>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentIn {
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CommentList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<CommentRecord>,
}

async fn load(state: &AppState, raw: &str) -> ApiResult<FindingRecord> {
    let id: FindingId = parse_path_id(raw, "finding")?;
    state
        .store
        .get_finding(id)
        .await?
        .ok_or_else(|| ApiError::not_found("finding"))
}

#[utoipa::path(get, path = "/api/v1/findings", tag = "findings", params(FindingParams),
    responses((status = 200, body = FindingList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<FindingParams>, QueryRejection>,
) -> ApiResult<Json<FindingList>> {
    caller.require(Role::Viewer)?;
    let Query(params) =
        params.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let bad = |field: &str| ApiError::validation(vec![FieldError::new(field, "must be an id")]);
    let filter = FindingFilter {
        scan_id: parse_cursor::<ScanId>(params.scan_id.as_deref()).map_err(|_| bad("scan_id"))?,
        only_new: false,
        repo_url: params.repo_url,
        tool: params.tool,
        status: parse_status(params.status.as_deref())?,
        severity: parse_severity(params.severity.as_deref())?,
        asset_id: parse_cursor::<AssetId>(params.asset_id.as_deref())
            .map_err(|_| bad("asset_id"))?,
    };
    list_page(&state, &filter, params.limit, params.cursor.as_deref()).await
}

#[utoipa::path(get, path = "/api/v1/findings/{id}", tag = "findings",
    responses((status = 200, body = FindingOut), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FindingOut>> {
    caller.require(Role::Viewer)?;
    let finding = load(&state, &id).await?;
    let history = state.store.list_finding_history(finding.id).await?;
    Ok(Json(FindingOut { finding, history }))
}

fn event(event_type: &str, payload: Value) -> NewPlatformEvent {
    NewPlatformEvent {
        id: PlatformEventId::new(),
        event_type: event_type.to_owned(),
        payload,
        created_at: Utc::now(),
    }
}

#[utoipa::path(patch, path = "/api/v1/findings/{id}", tag = "findings",
    request_body = FindingPatch,
    responses((status = 200, body = FindingOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<FindingPatch>,
) -> ApiResult<Json<FindingOut>> {
    caller.require(Role::Operator)?;
    let before = load(&state, &id).await?;
    let mut after = before.clone();
    let actor = format!("api:{}", caller.name);
    let now = Utc::now();
    let mut history = Vec::new();
    let mut record = |field: &str, old: Value, new: Value| {
        let some = |v: Value| (!v.is_null()).then_some(v);
        history.push(HistoryRecord {
            id: uuid::Uuid::now_v7(),
            finding_id: before.id,
            created_at: now,
            actor: actor.clone(),
            field: field.to_owned(),
            old_value: some(old),
            new_value: some(new),
        });
    };

    if let Some(status) = patch.status.filter(|s| *s != before.status) {
        after.status = status;
        record("status", json!(before.status), json!(status));
    }
    if let Some(severity) = patch.severity.filter(|s| *s != before.severity) {
        after.severity = severity;
        record("severity", json!(before.severity), json!(severity));
    }
    if let Some(assignee) = patch.assignee.filter(|a| *a != before.assignee) {
        after.assignee = assignee;
        record("assignee", json!(before.assignee), json!(after.assignee));
    }
    if let Some(tags) = patch.tags.filter(|t| *t != before.tags) {
        after.tags = tags;
        record("tags", json!(before.tags), json!(after.tags));
    }

    let mut events = Vec::new();
    if after.status != before.status {
        events.push(event(
            "finding_status_changed",
            json!({"finding": after, "old_status": before.status, "new_status": after.status}),
        ));
    }
    if after.severity != before.severity {
        events.push(event(
            "finding_severity_changed",
            json!({"finding": after, "old_severity": before.severity,
                   "new_severity": after.severity}),
        ));
    }
    if after.assignee != before.assignee {
        events.push(event(
            "finding_assigned",
            json!({"finding": after, "assignee": after.assignee}),
        ));
    }
    if !history.is_empty() {
        let update = FindingUpdate {
            finding: after.clone(),
            history,
            events,
        };
        state.store.update_finding(&update).await?;
    }
    let history = state.store.list_finding_history(after.id).await?;
    Ok(Json(FindingOut {
        finding: after,
        history,
    }))
}

#[utoipa::path(get, path = "/api/v1/findings/{id}/history", tag = "findings",
    responses((status = 200, body = HistoryList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn history(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<HistoryList>> {
    caller.require(Role::Viewer)?;
    let finding = load(&state, &id).await?;
    let items = state.store.list_finding_history(finding.id).await?;
    Ok(Json(HistoryList { items }))
}

#[utoipa::path(get, path = "/api/v1/findings/{id}/comments", tag = "findings",
    responses((status = 200, body = CommentList), (status = 404, body = crate::error::ErrorBody)))]
pub async fn comments(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CommentList>> {
    caller.require(Role::Viewer)?;
    let finding = load(&state, &id).await?;
    let items = state.store.list_comments(finding.id).await?;
    Ok(Json(CommentList { items }))
}

/// The longest comment accepted.
const MAX_COMMENT_CHARS: usize = 20_000;

#[utoipa::path(post, path = "/api/v1/findings/{id}/comments", tag = "findings",
    request_body = CommentIn,
    responses((status = 201, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn comment(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CommentIn>,
) -> ApiResult<(StatusCode, Json<CommentRecord>)> {
    caller.require(Role::Operator)?;
    let finding = load(&state, &id).await?;
    let body = input.body.trim();
    if body.is_empty() || body.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            format!("must be 1 to {MAX_COMMENT_CHARS} characters"),
        )]));
    }
    let comment = CommentRecord {
        id: CommentId::new(),
        finding_id: finding.id,
        author: format!("api:{}", caller.name),
        body: body.to_owned(),
        created_at: Utc::now(),
    };
    state.store.insert_comment(&comment).await?;
    Ok((StatusCode::CREATED, Json(comment)))
}
