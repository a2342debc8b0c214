//! One module per resource. Handlers parse, call the store or engine, and return; every error
//! is an [`ApiError`](crate::error::ApiError).

pub mod assets;
pub mod events;
pub mod finding_rules;
pub mod findings;
pub mod gate;
pub mod health;
pub mod integrations;
pub mod runbooks;
pub mod scan_import;
pub mod scans;
pub mod webhooks;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// The most a management request body may be.
const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// A JSON body whose every failure answers in the API's error shape: 415 for another content
/// type, 400 for malformed JSON, 422 for JSON of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json") || ct.contains("+json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "body too large",
            )
        })?;
        if bytes.len() > MAX_JSON_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_JSON_BODY} bytes"),
            ));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, telling syntax errors (400) from shape errors (422).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| match err.classify() {
        serde_json::error::Category::Data => {
            let field = data_error_field(&err.to_string());
            ApiError::validation(vec![FieldError::new(field, err.to_string())])
        }
        _ => ApiError::bad_request("malformed_json", format!("body is not valid JSON: {err}")),
    })
}

/// serde names the offending field inside backticks (`unknown field `x``, `missing field `y``).
fn data_error_field(message: &str) -> String {
    message.split('`').nth(1).unwrap_or("body").to_owned()
}

/// `?limit=` within 1..=500, default 50.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 500",
        )),
    }
}
