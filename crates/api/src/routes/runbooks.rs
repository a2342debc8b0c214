//! `/api/v1/runbooks` and `/api/v1/runbook-executions`: runbook CRUD (JSON or YAML bodies),
//! the catalog, dry runs, breaker resets, execution history and signals. Validation is
//! `engine::runbooks::validate`'s; matching and running happen in the engine, never here.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use domain::condition::{TraceEntry, evaluate_traced};
use domain::ids::{ExecutionId, PlatformEventId, RunbookId};
use engine::runbooks::catalog::{self, Catalog};
use engine::runbooks::definition::MAX_DOCUMENT_BYTES;
use engine::runbooks::matcher::{enrich, render_context};
use engine::runbooks::template::render_value;
use engine::runbooks::{Format, Issue, Runbook, parse_document, validate};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{ExecutionRecord, PlatformEvent, Role, RunbookRecord};
use utoipa::{IntoParams, ToSchema};

use super::scans::{parse_cursor, parse_path_id};
use super::{ApiJson, page_limit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct RunbookList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<ExecutionRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DryRunIn {
    pub event: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DryRunOut {
    pub matched: bool,
    #[schema(value_type = Vec<Object>)]
    pub trace: Vec<TraceEntry>,
    #[schema(value_type = Vec<Object>)]
    pub rendered_actions: Vec<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalIn {
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
}

/// A runbook as the API returns it: its document plus its state.
fn out(record: &RunbookRecord) -> Value {
    let mut value = record.definition.clone();
    if !value.is_object() {
        value = json!({});
    }
    value["id"] = json!(record.id);
    value["name"] = json!(record.name);
    value["is_active"] = json!(record.is_active);
    value["version"] = json!(record.version);
    value["consecutive_failures"] = json!(record.consecutive_failures);
    value["breaker_tripped_at"] = json!(record.breaker_tripped_at);
    value["created_at"] = json!(record.created_at);
    value["updated_at"] = json!(record.updated_at);
    value
}

fn invalid(issues: Vec<Issue>) -> ApiError {
    ApiError::validation(
        issues
            .into_iter()
            .map(|i| FieldError::new(i.field, i.message))
            .collect(),
    )
}

/// Reads a JSON or YAML body by its content type.
fn read_document(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let format = if content_type.starts_with("application/json") || content_type.contains("+json") {
        Format::Json
    } else if content_type.contains("yaml") {
        Format::Yaml
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json or application/yaml",
        ));
    };
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("runbook documents are limited to {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    parse_document(body, format).map_err(|issue| {
        ApiError::bad_request(
            "malformed_body",
            format!("body does not parse: {}", issue.message),
        )
    })
}

fn checked(document: &Value) -> ApiResult<Runbook> {
    validate(document).map_err(invalid)
}

async fn load(state: &AppState, id: &str) -> ApiResult<RunbookRecord> {
    let id: RunbookId = parse_path_id(id, "runbook")?;
    state
        .store
        .get_runbook(id)
        .await?
        .ok_or_else(|| ApiError::not_found("runbook"))
}

#[utoipa::path(post, path = "/api/v1/runbooks", tag = "runbooks",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 201, body = Object), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(Role::Admin)?;
    let document = read_document(&headers, &body)?;
    let runbook = checked(&document)?;
    let now = Utc::now();
    let record = RunbookRecord {
        id: RunbookId::new(),
        name: runbook.name.clone(),
        definition: document,
        is_active: runbook.is_active,
        version: 1,
        consecutive_failures: 0,
        breaker_tripped_at: None,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_runbook(&record).await?;
    Ok((StatusCode::CREATED, Json(out(&record))))
}

#[utoipa::path(get, path = "/api/v1/runbooks", tag = "runbooks", params(PageParams),
    responses((status = 200, body = RunbookList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<RunbookList>> {
    caller.require(Role::Viewer)?;
    let limit = page_limit(params.limit)?;
    let after: Option<RunbookId> = parse_cursor(params.cursor.as_deref())?;
    let records = state.store.list_runbooks(after, limit).await?;
    let next_cursor = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(RunbookList {
        items: records.iter().map(out).collect(),
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/api/v1/runbooks/catalog", tag = "runbooks",
    responses((status = 200, body = Object)))]
pub async fn catalog(caller: Caller) -> ApiResult<Json<Catalog>> {
    caller.require(Role::Viewer)?;
    Ok(Json(catalog::catalog()))
}

#[utoipa::path(get, path = "/api/v1/runbooks/{id}", tag = "runbooks",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Viewer)?;
    Ok(Json(out(&load(&state, &id).await?)))
}

async fn replace(state: &AppState, mut record: RunbookRecord, document: Value) -> ApiResult<Value> {
    let runbook = checked(&document)?;
    record.name = runbook.name.clone();
    record.is_active = runbook.is_active;
    record.definition = document;
    record.updated_at = Utc::now();
    let stored = state.store.update_runbook(&record).await?;
    Ok(out(&stored))
}

#[utoipa::path(put, path = "/api/v1/runbooks/{id}", tag = "runbooks",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let record = load(&state, &id).await?;
    let document = read_document(&headers, &body)?;
    Ok(Json(replace(&state, record, document).await?))
}

#[utoipa::path(patch, path = "/api/v1/runbooks/{id}", tag = "runbooks",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Admin)?;
    let record = load(&state, &id).await?;
    let changes = read_document(&headers, &body)?;
    if !changes.is_object() {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be an object",
        )]));
    }
    let mut document = record.definition.clone();
    merge_patch(&mut document, &changes);
    Ok(Json(replace(&state, record, document).await?))
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in changes {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[utoipa::path(delete, path = "/api/v1/runbooks/{id}", tag = "runbooks",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let id: RunbookId = parse_path_id(&id, "runbook")?;
    state.store.delete_runbook(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/runbooks/{id}/reset-breaker", tag = "runbooks",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn reset_breaker(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    caller.require(Role::Operator)?;
    let id: RunbookId = parse_path_id(&id, "runbook")?;
    let record = state.store.reset_runbook_breaker(id).await?;
    Ok(Json(out(&record)))
}

#[utoipa::path(post, path = "/api/v1/runbooks/{id}/dry-run", tag = "runbooks",
    request_body = DryRunIn,
    responses((status = 200, body = DryRunOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn dry_run(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<DryRunIn>,
) -> ApiResult<Json<DryRunOut>> {
    caller.require(Role::Operator)?;
    let record = load(&state, &id).await?;
    let runbook = checked(&record.definition)?;
    if !catalog::EVENTS.contains(&input.event.as_str()) {
        return Err(ApiError::validation(vec![FieldError::new(
            "event",
            format!("unknown event {:?}", input.event),
        )]));
    }
    let event = PlatformEvent {
        seq: 0,
        id: PlatformEventId::new(),
        event_type: input.event.clone(),
        payload: input.payload,
        created_at: Utc::now(),
    };
    let payload = enrich(&state.store, &event).await;
    let now = Utc::now();
    let mut matched = false;
    let mut trace = Vec::new();
    for trigger in runbook.triggers.iter().filter(|t| t.event == input.event) {
        match &trigger.conditions {
            Some(group) => {
                let (result, entries) = evaluate_traced(group, &payload, now);
                matched |= result;
                trace.extend(entries);
            }
            None => matched = true,
        }
    }
    let mut context = render_context(&payload, &input.event);
    context["actions"] = json!([]);
    context["signals"] = json!({});
    let rendered_actions = runbook
        .actions
        .iter()
        .enumerate()
        .map(|(index, action)| {
            let config = Value::Object(action.config.clone());
            match render_value(&config, &context) {
                Ok(config) => json!({"index": index, "type": action.action_type, "config": config}),
                Err(err) => {
                    json!({"index": index, "type": action.action_type, "error": err.to_string()})
                }
            }
        })
        .collect();
    Ok(Json(DryRunOut {
        matched,
        trace,
        rendered_actions,
    }))
}

#[utoipa::path(get, path = "/api/v1/runbooks/{id}/executions", tag = "runbooks",
    params(PageParams), responses((status = 200, body = ExecutionList)))]
pub async fn executions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<PageParams>,
) -> ApiResult<Json<ExecutionList>> {
    caller.require(Role::Viewer)?;
    let record = load(&state, &id).await?;
    let limit = page_limit(params.limit)?;
    let before: Option<i64> = parse_cursor(params.cursor.as_deref())?;
    let items = state
        .store
        .list_executions(record.id, before, limit)
        .await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.event_seq.to_string()))
        .flatten();
    Ok(Json(ExecutionList { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/runbook-executions/{id}", tag = "runbooks",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn execution(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ExecutionRecord>> {
    caller.require(Role::Viewer)?;
    let id: ExecutionId = parse_path_id(&id, "execution")?;
    let found = state.store.get_execution(id).await?;
    Ok(Json(found.ok_or_else(|| ApiError::not_found("execution"))?))
}

#[utoipa::path(post, path = "/api/v1/runbook-executions/{id}/signals/{name}", tag = "runbooks",
    request_body = SignalIn,
    responses((status = 202), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
pub async fn signal(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require(Role::Operator)?;
    let id: ExecutionId = parse_path_id(&id, "execution")?;
    let input: SignalIn = if body.is_empty() {
        SignalIn::default()
    } else {
        super::parse_json(&body)?
    };
    if state
        .store
        .signal_execution(id, &name, &input.payload)
        .await?
    {
        if let Some(engine) = &state.runbooks {
            engine.wake();
        }
        return Ok(StatusCode::ACCEPTED);
    }
    match state.store.get_execution(id).await? {
        None => Err(ApiError::not_found("execution")),
        Some(run) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_waiting",
            format!(
                "the execution is {} and not waiting for {name:?}",
                run.status
            ),
        )),
    }
}
