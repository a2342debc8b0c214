//! `/api/v1/integrations`: CRUD with per-vendor validation, write-only secrets sealed at rest,
//! and the CI event audit.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use domain::{CiEvent, IntegrationId, Vendor};
use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use store::{IntegrationRecord, Role};
use utoipa::{IntoParams, ToSchema};

use super::{ApiJson, page_limit};
use crate::auth::Caller;
use crate::crypto::Cipher;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

/// The audit is a fixed window of the newest deliveries.
pub const AUDIT_WINDOW: u32 = 200;
const MASK: &str = "********";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationIn {
    pub name: String,
    /// `github`, `gitlab`, `jenkins`, `azure-devops`, `bamboo`, `bitbucket`, or a pull-only,
    /// scanner, ITSM or notification vendor.
    pub vendor: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Value,
    /// The webhook secret (write-only).
    pub secret: Option<String>,
    /// Up to two active secrets, current first (write-only).
    pub secrets: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// A partial update. `secret` rotates: the new secret becomes current and the old current one
/// stays valid as previous. `secrets` replaces both; `[]` or `"secret": null` removes them.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntegrationPatch {
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub secret: Option<Option<String>>,
    pub secrets: Option<Vec<String>>,
    pub is_active: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationOut {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub archetype: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub has_secret: bool,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationList {
    pub items: Vec<IntegrationOut>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CiEventList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TestResult {
    pub ok: bool,
    pub message: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn secrets_owner(id: IntegrationId) -> Vec<u8> {
    [id.0.as_bytes().as_slice(), b"/secrets"].concat()
}

fn auth_owner(id: IntegrationId) -> Vec<u8> {
    [id.0.as_bytes().as_slice(), b"/auth"].concat()
}

/// The integration's active secrets, current first.
pub fn open_secrets(cipher: &Cipher, record: &IntegrationRecord) -> Result<Vec<String>, ApiError> {
    let Some(sealed) = &record.sealed_secrets else {
        return Ok(Vec::new());
    };
    let plain = cipher
        .open(&secrets_owner(record.id), sealed)
        .map_err(|err| {
            tracing::error!(integration.id = %record.id, error = %err, "cannot open secrets");
            ApiError::internal()
        })?;
    serde_json::from_slice(&plain).map_err(|_| ApiError::internal())
}

/// The integration's outbound credentials (`config.auth`), opened.
pub fn open_auth(cipher: &Cipher, record: &IntegrationRecord) -> Result<Option<Value>, ApiError> {
    let Some(sealed) = &record.sealed_auth else {
        return Ok(None);
    };
    let plain = cipher.open(&auth_owner(record.id), sealed).map_err(|err| {
        tracing::error!(integration.id = %record.id, error = %err, "cannot open credentials");
        ApiError::internal()
    })?;
    serde_json::from_slice(&plain)
        .map(Some)
        .map_err(|_| ApiError::internal())
}

fn seal_secrets(cipher: &Cipher, id: IntegrationId, secrets: &[String]) -> Option<Vec<u8>> {
    if secrets.is_empty() {
        return None;
    }
    let plain = serde_json::to_vec(secrets).expect("strings serialize");
    Some(cipher.seal(&secrets_owner(id), &plain))
}

/// The shortest secret accepted: anything shorter is guessable by a patient forger.
const MIN_SECRET_LEN: usize = 8;

/// Checks the secrets to store. `single` names the request field when one `secret` was given.
fn check_secrets(secrets: &[String], single: bool) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if secrets.len() > 2 {
        problems.push(FieldError::new("secrets", "at most two active secrets"));
    }
    for (i, s) in secrets.iter().enumerate() {
        let field = if single {
            "secret".to_owned()
        } else {
            format!("secrets[{i}]")
        };
        if s.trim().chars().count() < MIN_SECRET_LEN {
            problems.push(FieldError::new(
                field,
                format!("must be at least {MIN_SECRET_LEN} characters"),
            ));
        } else if s.len() > 1024 {
            problems.push(FieldError::new(field, "at most 1024 bytes"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(problems))
    }
}

/// Validates a config and splits its `auth` off for sealing.
fn split_config(vendor: Vendor, mut config: Value) -> Result<(Value, Option<Value>), ApiError> {
    if config.is_null() {
        config = Value::Object(Map::new());
    }
    let problems = domain::integration::validate_config(vendor, &config);
    if !problems.is_empty() {
        let details = problems
            .into_iter()
            .map(|p| FieldError::new(p.field, p.message))
            .collect();
        return Err(ApiError::validation(details));
    }
    let auth = config.as_object_mut().and_then(|m| m.remove("auth"));
    Ok((config, auth))
}

fn to_out(cipher: &Cipher, record: &IntegrationRecord) -> Result<IntegrationOut, ApiError> {
    let mut config = record.config.clone();
    if let (Some(auth), Some(map)) = (open_auth(cipher, record)?, config.as_object_mut()) {
        let masked: Map<String, Value> = auth
            .as_object()
            .map(|a| a.keys().map(|k| (k.clone(), Value::from(MASK))).collect())
            .unwrap_or_default();
        map.insert("auth".into(), Value::Object(masked));
    }
    Ok(IntegrationOut {
        id: record.id.to_string(),
        name: record.name.clone(),
        vendor: record.vendor.as_str().into(),
        archetype: record.vendor.archetype().as_str().into(),
        config,
        has_secret: record.sealed_secrets.is_some(),
        is_active: record.is_active,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

fn parse_vendor(name: &str) -> Result<Vendor, ApiError> {
    name.parse().map_err(|_| {
        ApiError::validation(vec![FieldError::new(
            "vendor",
            format!("unknown vendor {name:?}"),
        )])
    })
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(ApiError::validation(vec![FieldError::new(
            "name",
            "must be 1 to 200 characters",
        )]));
    }
    Ok(())
}

pub fn parse_integration_id(raw: &str) -> Result<IntegrationId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("integration"))
}

async fn load(state: &AppState, raw_id: &str) -> ApiResult<IntegrationRecord> {
    let id = parse_integration_id(raw_id)?;
    state
        .store
        .get_integration(id)
        .await?
        .ok_or_else(|| ApiError::not_found("integration"))
}

#[utoipa::path(post, path = "/api/v1/integrations", tag = "integrations",
    request_body = IntegrationIn,
    responses((status = 201, body = IntegrationOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(input): ApiJson<IntegrationIn>,
) -> ApiResult<(StatusCode, Json<IntegrationOut>)> {
    caller.require(Role::Admin)?;
    check_name(&input.name)?;
    let vendor = parse_vendor(&input.vendor)?;
    let (config, auth) = split_config(vendor, input.config)?;
    let single = input.secret.is_some();
    let secrets = match (input.secret, input.secrets) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "secret",
                "give either secret or secrets, not both",
            )]));
        }
        (Some(one), None) => vec![one],
        (None, Some(list)) => list,
        (None, None) => Vec::new(),
    };
    check_secrets(&secrets, single)?;

    let id = IntegrationId::new();
    let now = Utc::now();
    let record = IntegrationRecord {
        id,
        name: input.name,
        vendor,
        config,
        sealed_secrets: seal_secrets(&state.cipher, id, &secrets),
        sealed_auth: auth.map(|a| state.cipher.seal(&auth_owner(id), a.to_string().as_bytes())),
        is_active: input.is_active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_integration(&record).await?;
    tracing::info!(integration.id = %id, vendor = %vendor, "integration created");
    Ok((StatusCode::CREATED, Json(to_out(&state.cipher, &record)?)))
}

#[utoipa::path(get, path = "/api/v1/integrations", tag = "integrations", params(ListParams),
    responses((status = 200, body = IntegrationList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> ApiResult<Json<IntegrationList>> {
    caller.require(Role::Viewer)?;
    let limit = page_limit(params.limit)?;
    let after = match params.cursor.as_deref() {
        Some(c) => Some(
            c.parse::<IntegrationId>()
                .map_err(|_| ApiError::bad_request("invalid_cursor", "the cursor is not valid"))?,
        ),
        None => None,
    };
    let records = state.store.list_integrations(after, limit + 1).await?;
    let more = records.len() > limit as usize;
    let items: Vec<IntegrationOut> = records
        .iter()
        .take(limit as usize)
        .map(|r| to_out(&state.cipher, r))
        .collect::<Result<_, _>>()?;
    let next_cursor = more.then(|| items.last().map(|i| i.id.clone())).flatten();
    Ok(Json(IntegrationList { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}", tag = "integrations",
    responses((status = 200, body = IntegrationOut), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationOut>> {
    caller.require(Role::Viewer)?;
    let record = load(&state, &id).await?;
    Ok(Json(to_out(&state.cipher, &record)?))
}

#[utoipa::path(patch, path = "/api/v1/integrations/{id}", tag = "integrations",
    request_body = IntegrationPatch,
    responses((status = 200, body = IntegrationOut), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<IntegrationPatch>,
) -> ApiResult<Json<IntegrationOut>> {
    caller.require(Role::Admin)?;
    let mut record = load(&state, &id).await?;
    if let Some(name) = input.name {
        check_name(&name)?;
        record.name = name;
    }
    if let Some(config) = input.config {
        let (config, auth) = split_config(record.vendor, config)?;
        record.config = config;
        if let Some(auth) = auth {
            record.sealed_auth = Some(
                state
                    .cipher
                    .seal(&auth_owner(record.id), auth.to_string().as_bytes()),
            );
        }
    }
    let new_secrets = match (input.secret, input.secrets) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(vec![FieldError::new(
                "secret",
                "give either secret or secrets, not both",
            )]));
        }
        (Some(Some(new)), None) => {
            check_secrets(std::slice::from_ref(&new), true)?;
            let current = open_secrets(&state.cipher, &record)?;
            Some(
                std::iter::once(new)
                    .chain(current.into_iter().take(1))
                    .collect::<Vec<_>>(),
            )
        }
        (Some(None), None) => Some(Vec::new()),
        (None, Some(list)) => {
            check_secrets(&list, false)?;
            Some(list)
        }
        (None, None) => None,
    };
    if let Some(secrets) = new_secrets {
        record.sealed_secrets = seal_secrets(&state.cipher, record.id, &secrets);
    }
    if let Some(active) = input.is_active {
        record.is_active = active;
    }
    record.updated_at = Utc::now();
    state.store.update_integration(&record).await?;
    state.integrations.invalidate(record.id);
    Ok(Json(to_out(&state.cipher, &record)?))
}

#[utoipa::path(delete, path = "/api/v1/integrations/{id}", tag = "integrations",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let id = parse_integration_id(&id)?;
    state
        .store
        .delete_integration(id)
        .await
        .map_err(|err| match err {
            store::StoreError::NotFound => ApiError::not_found("integration"),
            other => other.into(),
        })?;
    state.integrations.invalidate(id);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/integrations/{id}/test", tag = "integrations",
    responses((status = 200, body = TestResult)))]
pub async fn test(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    method: Method,
    Path(id): Path<String>,
) -> ApiResult<Json<TestResult>> {
    caller.require_for(&method, Role::Operator)?;
    let record = load(&state, &id).await?;
    let secrets = open_secrets(&state.cipher, &record)?;
    let url = format!(
        "{}/api/v1/webhooks/ci/{}/{}",
        state.public_url.trim_end_matches('/'),
        record.vendor,
        record.id
    );
    let (ok, message) = match (record.vendor.archetype(), secrets.len()) {
        (domain::Archetype::CiWebhook, 0) if state.unsigned_rejected() => (
            false,
            format!("no secret configured: deliveries to {url} are rejected in production"),
        ),
        (domain::Archetype::CiWebhook, 0) => (
            true,
            format!("receiving at {url} without a secret (deliveries are unsigned)"),
        ),
        (domain::Archetype::CiWebhook, n) => {
            (true, format!("receiving at {url}; {n} active secret(s)"))
        }
        (archetype, _) => (
            false,
            format!(
                "connectivity checks for {} integrations are not available",
                archetype.as_str()
            ),
        ),
    };
    Ok(Json(TestResult { ok, message }))
}

#[utoipa::path(get, path = "/api/v1/integrations/{id}/ci/events", tag = "integrations",
    responses((status = 200, body = CiEventList)))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<CiEventList>> {
    caller.require(Role::Viewer)?;
    let id = parse_integration_id(&id)?;
    let events = state.store.list_ci_events(id, AUDIT_WINDOW).await?;
    let items = with_steps(&state, events).await?;
    Ok(Json(CiEventList { items }))
}

/// Each audit row with its orchestration steps and the errors among them.
async fn with_steps(state: &AppState, events: Vec<CiEvent>) -> ApiResult<Vec<Value>> {
    let owners: Vec<String> = events.iter().map(|e| store::ci_event_owner(e.id)).collect();
    let steps = state.store.list_steps(&owners).await?;
    let mut items = Vec::with_capacity(events.len());
    for (event, owner) in events.into_iter().zip(&owners) {
        let mine: Vec<&store::StepRecord> = steps.iter().filter(|s| &s.owner == owner).collect();
        let errors: Vec<String> = mine
            .iter()
            .filter_map(|s| s.error.as_ref().map(|e| format!("{}: {e}", s.step)))
            .collect();
        let mut item = serde_json::to_value(event).map_err(|_| ApiError::internal())?;
        item["steps"] = serde_json::to_value(&mine).map_err(|_| ApiError::internal())?;
        item["errors"] = errors.into();
        items.push(item);
    }
    Ok(items)
}
