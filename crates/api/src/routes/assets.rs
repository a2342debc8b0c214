//! `/api/v1/assets`: the repositories findings belong to. Assets are created by imports on
//! first sight; here they are read and given a criticality and tags. Nothing here creates or
//! deletes an asset.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use domain::ids::AssetId;
use serde::{Deserialize, Serialize};
use store::{AssetRecord, Role};
use utoipa::{IntoParams, ToSchema};

use super::scans::{parse_cursor, parse_path_id};
use super::{ApiJson, page_limit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssetPatch {
    /// 1 (lowest) to 5 (highest).
    pub criticality: Option<i64>,
    /// Replaces the list.
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssetList {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<AssetRecord>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

async fn load(state: &AppState, raw: &str) -> ApiResult<AssetRecord> {
    let id: AssetId = parse_path_id(raw, "asset")?;
    state
        .store
        .get_asset(id)
        .await?
        .ok_or_else(|| ApiError::not_found("asset"))
}

#[utoipa::path(get, path = "/api/v1/assets", tag = "assets", params(AssetParams),
    responses((status = 200, body = AssetList)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<AssetParams>, QueryRejection>,
) -> ApiResult<Json<AssetList>> {
    caller.require(Role::Viewer)?;
    let Query(params) =
        params.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let limit = page_limit(params.limit)?;
    let after: Option<AssetId> = parse_cursor(params.cursor.as_deref())?;
    let mut items = state.store.list_assets(after, limit + 1).await?;
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = more
        .then(|| items.last().map(|a| a.id.to_string()))
        .flatten();
    Ok(Json(AssetList { items, next_cursor }))
}

#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "assets",
    responses((status = 200, body = Object), (status = 404, body = crate::error::ErrorBody)))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<AssetRecord>> {
    caller.require(Role::Viewer)?;
    Ok(Json(load(&state, &id).await?))
}

#[utoipa::path(patch, path = "/api/v1/assets/{id}", tag = "assets", request_body = AssetPatch,
    responses((status = 200, body = Object), (status = 422, body = crate::error::ErrorBody)))]
pub async fn patch(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AssetPatch>,
) -> ApiResult<Json<AssetRecord>> {
    caller.require(Role::Operator)?;
    let mut asset = load(&state, &id).await?;
    if let Some(criticality) = patch.criticality {
        if !(1..=5).contains(&criticality) {
            return Err(ApiError::validation(vec![FieldError::new(
                "criticality",
                "must be between 1 and 5",
            )]));
        }
        asset.criticality = criticality;
    }
    if let Some(tags) = patch.tags {
        asset.tags = tags;
    }
    asset.updated_at = Utc::now();
    state.store.update_asset(&asset).await?;
    Ok(Json(asset))
}
