//! `/api/v1/events`: the platform-event log. Admins may emit an event; anyone with a token may
//! read the log.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use chrono::Utc;
use domain::ids::PlatformEventId;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{NewPlatformEvent, PlatformEvent, Role};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, page_limit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

/// The platform events runbooks can trigger on.
pub const EVENT_TYPES: &[&str] = &[
    "ci_event_received",
    "scan_started",
    "scan_finished",
    "scan_failed",
    "remote_scan_completed",
    "finding_created",
    "finding_status_changed",
    "finding_severity_changed",
    "finding_assigned",
    "finding_reopened",
    "pr_gate_evaluated",
    "sbom_imported",
    "asset_created",
    "integration_sync_completed",
    "integration_sync_failed",
    "runbook_breaker_tripped",
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// One of `ci_event_received`, `scan_started`, `scan_finished`, `scan_failed`,
    /// `remote_scan_completed`, `finding_created`, `finding_status_changed`,
    /// `finding_severity_changed`, `finding_assigned`, `finding_reopened`,
    /// `pr_gate_evaluated`, `sbom_imported`, `asset_created`, `integration_sync_completed`,
    /// `integration_sync_failed`, `runbook_breaker_tripped`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's fields; `{}` when left out.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub payload: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventAccepted {
    pub id: String,
    pub seq: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<PlatformEvent>,
    /// Pass as `?after=` to read on from here.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Read events after this position (oldest first); without it, the newest first.
    pub after: Option<i64>,
    pub limit: Option<u32>,
}

#[utoipa::path(post, path = "/api/v1/events", tag = "events", request_body = EventIn,
    responses((status = 202, body = EventAccepted), (status = 422, body = crate::error::ErrorBody)))]
pub async fn emit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(input): ApiJson<EventIn>,
) -> ApiResult<(StatusCode, Json<EventAccepted>)> {
    caller.require(Role::Admin)?;
    if !EVENT_TYPES.contains(&input.event_type.as_str()) {
        return Err(ApiError::validation(vec![FieldError::new(
            "type",
            format!("unknown event type {:?}", input.event_type),
        )]));
    }
    if domain::text::contains_nul(&input.payload) {
        return Err(ApiError::validation(vec![FieldError::new(
            "payload",
            "text may not contain U+0000",
        )]));
    }
    if !input.payload.is_object() {
        return Err(ApiError::validation(vec![FieldError::new(
            "payload",
            "must be an object",
        )]));
    }
    let stored = state
        .events
        .submit(NewPlatformEvent {
            id: PlatformEventId::new(),
            event_type: input.event_type,
            payload: input.payload,
            created_at: Utc::now(),
        })
        .await?;
    if let Some(engine) = &state.runbooks {
        engine.wake();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(EventAccepted {
            id: stored.id.to_string(),
            seq: stored.seq,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<EventParams>,
) -> ApiResult<Json<EventList>> {
    caller.require(Role::Viewer)?;
    let limit = page_limit(params.limit)?;
    let items = state
        .store
        .list_platform_events(params.after, limit)
        .await?;
    let next_cursor = match params.after {
        Some(after) => Some(items.last().map_or(after, |e| e.seq).to_string()),
        None => items.first().map(|e| e.seq.to_string()),
    };
    Ok(Json(EventList { items, next_cursor }))
}
