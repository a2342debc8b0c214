//! `/api/v1/finding-rules`: CRUD of the rules imports apply, in `priority` order, to each
//! finding. Conditions are validated here on write; the rules themselves run at import
//! (`scan_import`), never from this module.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use domain::condition::ConditionGroup;
use domain::finding_rule::RuleChanges;
use domain::ids::FindingRuleId;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use store::{FindingRuleRecord, Role};
use utoipa::ToSchema;

use super::ApiJson;
use super::scans::parse_path_id;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingRuleIn {
    pub name: String,
    #[serde(default)]
    pub priority: i64,
    /// A condition group over `{finding, asset}`.
    #[schema(value_type = Object)]
    pub conditions: Value,
    /// `set_severity`, `add_tags`, `set_status`, `assign`.
    #[schema(value_type = Object)]
    pub changes: Value,
    pub is_active: Option<bool>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingRulePatch {
    pub name: Option<String>,
    pub priority: Option<i64>,
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    pub is_active: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingRuleList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<FindingRuleRecord>,
    pub next_cursor: Option<String>,
}

/// Checks a rule's fields, naming every bad one.
fn validate(name: &str, conditions: &Value, changes: &Value) -> ApiResult<RuleChanges> {
    let mut problems = Vec::new();
    if name.trim().is_empty() || name.len() > 200 {
        problems.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    match serde_json::from_value::<ConditionGroup>(conditions.clone()) {
        Ok(group) => {
            if let Err(errors) = group.compile() {
                for error in errors {
                    let path = if error.path.is_empty() {
                        "conditions".to_owned()
                    } else {
                        format!("conditions.{}", error.path)
                    };
                    problems.push(FieldError::new(path, error.message));
                }
            }
        }
        Err(err) => problems.push(FieldError::new("conditions", err.to_string())),
    }
    let parsed = match serde_json::from_value::<RuleChanges>(changes.clone()) {
        Ok(parsed) if parsed.is_empty() => {
            problems.push(FieldError::new("changes", "name at least one change"));
            None
        }
        Ok(parsed) => Some(parsed),
        Err(err) => {
            problems.push(FieldError::new("changes", err.to_string()));
            None
        }
    };
    match parsed {
        Some(parsed) if problems.is_empty() => Ok(parsed),
        _ => Err(ApiError::validation(problems)),
    }
}

async fn load(state: &AppState, raw: &str) -> ApiResult<FindingRuleRecord> {
    let id: FindingRuleId = parse_path_id(raw, "finding rule")?;
    state
        .store
        .get_finding_rule(id)
        .await?
        .ok_or_else(|| ApiError::not_found("finding rule"))
}

#[utoipa::path(post, path = "/api/v1/finding-rules", tag = "finding-rules",
    request_body = FindingRuleIn,
    responses((status = 201, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(input): ApiJson<FindingRuleIn>,
) -> ApiResult<(StatusCode, Json<FindingRuleRecord>)> {
    caller.require(Role::Admin)?;
    let changes = validate(&input.name, &input.conditions, &input.changes)?;
    let now = Utc::now();
    let rule = FindingRuleRecord {
        id: FindingRuleId::new(),
        name: input.name.trim().to_owned(),
        priority: input.priority,
        conditions: input.conditions,
        changes,
        is_active: input.is_active.unwrap_or(true),
        created_at: now,
        updated_at: now,
    };
    state.store.insert_finding_rule(&rule).await?;
    Ok((StatusCode::CREATED, Json(rule)))
}

#[utoipa::path(get, path = "/api/v1/finding-rules", tag = "finding-rules",
    responses((status = 200, body = FindingRuleList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<Json<FindingRuleList>> {
    caller.require(Role::Viewer)?;
    let items = state.store.list_finding_rules().await?;
    Ok(Json(FindingRuleList {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/api/v1/finding-rules/{id}", tag = "finding-rules",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<FindingRuleRecord>> {
    caller.require(Role::Viewer)?;
    Ok(Json(load(&state, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/finding-rules/{id}", tag = "finding-rules",
    request_body = FindingRulePatch,
    responses((status = 200, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<FindingRulePatch>,
) -> ApiResult<Json<FindingRuleRecord>> {
    caller.require(Role::Admin)?;
    let mut rule = load(&state, &id).await?;
    let name = patch.name.unwrap_or(rule.name.clone());
    let conditions = patch.conditions.unwrap_or(rule.conditions.clone());
    let changes = match patch.changes {
        Some(changes) => changes,
        None => serde_json::to_value(&rule.changes).map_err(|_| ApiError::internal())?,
    };
    rule.changes = validate(&name, &conditions, &changes)?;
    rule.name = name.trim().to_owned();
    rule.conditions = conditions;
    rule.priority = patch.priority.unwrap_or(rule.priority);
    rule.is_active = patch.is_active.unwrap_or(rule.is_active);
    rule.updated_at = Utc::now();
    state.store.update_finding_rule(&rule).await?;
    Ok(Json(rule))
}

#[utoipa::path(delete, path = "/api/v1/finding-rules/{id}", tag = "finding-rules",
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Role::Admin)?;
    let id: FindingRuleId = parse_path_id(&id, "finding rule")?;
    state
        .store
        .delete_finding_rule(id)
        .await
        .map_err(|e| match e {
            store::StoreError::NotFound => ApiError::not_found("finding rule"),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
