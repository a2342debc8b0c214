//! `POST /api/v1/webhooks/ci/{vendor}/{integrationId}`: the receivers. Verify first, over the
//! raw bytes, before any parsing; a rejected delivery costs a map update, not a database write.
//! An accepted one is answered 202 only after its transaction has committed.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use domain::{CiEventId, NormalizedEvent, Vendor};
use http::{HeaderMap, StatusCode};
use serde::Serialize;
use store::{DeliveryOutcome, NewDelivery, NewRejection};
use utoipa::ToSchema;
use webhooks::{Delivery, Parsed, Verification};

use crate::error::{ApiError, ApiResult};
use crate::state::{AppState, ResolvedIntegration, route_vendor};

/// Deliveries larger than this are refused with 413.
pub const MAX_DELIVERY_BYTES: usize = 25 * 1024 * 1024;
/// How many kibibytes of delivery bodies all requests together may hold at once (ten of the
/// largest). A request reserves its `Content-Length` (the maximum when it sends none) before
/// its body is read; past the budget it is answered 429 with `Retry-After`, so a flood of large
/// bodies, forged or not, cannot take the process's memory.
pub const DELIVERY_BUDGET_KIB: usize = 10 * MAX_DELIVERY_BYTES / 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAccepted {
    /// The stored CI event (absent for a vendor diagnostic, which stores nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// `accepted`, `duplicate` or `ignored` (a vendor diagnostic).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_taken: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/webhooks/ci/{vendor}/{integration_id}", tag = "webhooks",
    request_body(content = String, description = "the vendor's delivery, as sent"),
    responses(
        (status = 202, body = DeliveryAccepted, description = "stored durably"),
        (status = 200, body = DeliveryAccepted, description = "a redelivery or a vendor diagnostic"),
        (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn receive(
    State(state): State<Arc<AppState>>,
    Path((vendor, integration_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let vendor = route_vendor(&vendor).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_vendor",
            format!("no receiver for {vendor:?}"),
        )
    })?;
    let integration = resolve(&state, vendor, &integration_id).await?;
    let _reserved = reserve_body(&state, &headers)?;
    let body = read_body(body).await?;
    let delivery = Delivery {
        headers: &headers,
        query: query.as_deref(),
        body: &body,
    };

    let (signature_valid, secret_slot) = check(&state, vendor, &integration, &delivery)?;
    let parsed = webhooks::parse(vendor, &delivery).map_err(|err| {
        metrics::counter!("pmap_webhooks_rejected_total", "vendor" => vendor.as_str(),
            "reason" => "invalid_payload")
        .increment(1);
        ApiError::bad_request("invalid_payload", err.to_string())
    })?;
    let event = match parsed {
        Parsed::Event(event) => without_nul(*event, &body),
        Parsed::Diagnostic => {
            let body = DeliveryAccepted {
                event_id: None,
                status: "ignored",
                event_type: Some("ping"),
                action_taken: None,
            };
            return Ok((StatusCode::OK, Json(body)).into_response());
        }
    };

    let event_type = event.event_type.as_str();
    let outcome = state
        .writer
        .store(NewDelivery {
            id: CiEventId::new(),
            integration_id: integration.record.id,
            vendor,
            received_at: Utc::now(),
            event,
            signature_valid,
            secret_slot,
            payload_lz4: lz4_flex::compress_prepend_size(&body),
        })
        .await?;
    Ok(match outcome {
        DeliveryOutcome::Stored(id) => {
            metrics::counter!("pmap_webhooks_accepted_total", "vendor" => vendor.as_str())
                .increment(1);
            let body = DeliveryAccepted {
                event_id: Some(id.to_string()),
                status: "accepted",
                event_type: Some(event_type),
                action_taken: Some("queued".into()),
            };
            (StatusCode::ACCEPTED, Json(body)).into_response()
        }
        DeliveryOutcome::Duplicate(original) => {
            metrics::counter!("pmap_webhooks_duplicate_total", "vendor" => vendor.as_str())
                .increment(1);
            let body = DeliveryAccepted {
                event_id: Some(original.to_string()),
                status: "duplicate",
                event_type: None,
                action_taken: None,
            };
            (StatusCode::OK, Json(body)).into_response()
        }
    })
}

async fn resolve(
    state: &AppState,
    vendor: Vendor,
    raw_id: &str,
) -> ApiResult<Arc<ResolvedIntegration>> {
    let not_found = || ApiError::not_found("integration");
    let id = raw_id.parse().map_err(|_| not_found())?;
    let integration = state
        .integrations
        .get(id, &state.store, &state.cipher)
        .await?
        .ok_or_else(not_found)?;
    if integration.record.vendor != vendor || !integration.record.is_active {
        return Err(not_found());
    }
    Ok(integration)
}

/// The event with U+0000 replaced wherever the payload spelled one (`\u0000`), which no
/// backend's text can hold.
fn without_nul(event: NormalizedEvent, body: &[u8]) -> NormalizedEvent {
    // JSON spells the escape with a lower-case `u` and digits only.
    if memchr::memmem::find(body, b"\\u0000").is_none() {
        return event;
    }
    let Ok(mut value) = serde_json::to_value(&event) else {
        return event;
    };
    domain::text::replace_nul(&mut value);
    serde_json::from_value(value).unwrap_or(event)
}

/// Reserves room for the delivery's body in [`DELIVERY_BUDGET_KIB`] for as long as the request
/// holds it.
fn reserve_body(
    state: &AppState,
    headers: &HeaderMap,
) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(MAX_DELIVERY_BYTES)
        .min(MAX_DELIVERY_BYTES);
    let kib = declared.div_ceil(1024).max(1) as u32;
    state
        .delivery_budget
        .clone()
        .try_acquire_many_owned(kib)
        .map_err(|_| {
            metrics::counter!("pmap_webhooks_rate_limited_total").increment(1);
            ApiError::rate_limited("too many delivery bodies are being received at once; retry")
        })
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, MAX_DELIVERY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("deliveries are limited to {MAX_DELIVERY_BYTES} bytes"),
            )
        })
}

/// Applies verification and the unsigned-hook policy; returns `(signature_valid, slot)` for an
/// accepted delivery, or the 401 after recording the rejection.
fn check(
    state: &AppState,
    vendor: Vendor,
    integration: &ResolvedIntegration,
    delivery: &Delivery<'_>,
) -> ApiResult<(bool, Option<u8>)> {
    if integration.secrets.is_empty() {
        if state.unsigned_rejected() {
            reject(state, vendor, integration, delivery, "rejected_unsigned");
            return Err(ApiError::unauthorized(
                "unsigned_rejected",
                "this integration has no secret and unsigned deliveries are refused in \
                 production; configure a secret",
            ));
        }
        return Ok((false, None));
    }
    match webhooks::verify(vendor, delivery, &integration.secrets) {
        Verification::Valid { slot } => Ok((true, Some(slot))),
        Verification::Missing | Verification::Invalid => {
            reject(state, vendor, integration, delivery, "rejected_signature");
            Err(ApiError::unauthorized(
                "invalid_signature",
                "the delivery's signature or token does not match the integration's secret",
            ))
        }
    }
}

fn reject(
    state: &AppState,
    vendor: Vendor,
    integration: &ResolvedIntegration,
    delivery: &Delivery<'_>,
    action_taken: &'static str,
) {
    metrics::counter!("pmap_webhooks_rejected_total", "vendor" => vendor.as_str(),
        "reason" => action_taken)
    .increment(1);
    let (vendor_event, delivery_id) = webhooks::peek(vendor, delivery.headers);
    state.rejections.record(
        &state.store,
        NewRejection {
            id: CiEventId::new(),
            integration_id: integration.record.id,
            vendor,
            received_at: Utc::now(),
            vendor_event: truncate(vendor_event.unwrap_or("unknown"), 100),
            delivery_id: delivery_id.map(|d| truncate(d, 200)),
            action_taken: action_taken.into(),
        },
    );
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
