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

/// Parses a JSON body, telling syntax errors (400) from shape errors (422, naming the field by
/// its path, `changes.set_severity`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |err: serde_json::Error| {
        ApiError::bad_request("malformed_json", format!("body is not valid JSON: {err}"))
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let err = err.into_inner();
        match err.classify() {
            serde_json::error::Category::Data => {
                let field = data_error_field(&path, &err.to_string());
                ApiError::validation(vec![FieldError::new(field, err.to_string())])
            }
            _ => malformed(err),
        }
    })?;
    de.end().map_err(malformed)?;
    Ok(value)
}

/// The field a shape error is about: its path, and for a missing field the name serde quotes
/// in backticks (`missing field `y``), which is one level below the path.
fn data_error_field(path: &str, message: &str) -> String {
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next());
    match (path, missing) {
        (".", Some(name)) => name.to_owned(),
        (".", None) => "body".to_owned(),
        (path, Some(name)) => format!("{path}.{name}"),
        (path, None) => path.to_owned(),
    }
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

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only the errors are looked at")]
    struct Outer {
        name: String,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only the errors are looked at")]
    struct Inner {
        count: u32,
    }

    fn check(body: &str, expected: (u16, &str)) {
        let err = parse_json::<Outer>(body.as_bytes()).expect_err(body);
        let field = err.details.first().map_or("", |d| d.field.as_str());
        assert_eq!((err.status.as_u16(), field), expected, "{body}");
    }

    #[test]
    fn shape_errors_name_the_field_by_its_path() {
        check(r#"{"name": 5}"#, (422, "name"));
        check(r#"{"name": "x", "extra": 1}"#, (422, "extra"));
        check(r#"{}"#, (422, "name"));
        check(
            r#"{"name": "x", "inner": {"count": -1}}"#,
            (422, "inner.count"),
        );
        check(r#"{"name": "x", "inner": {"cnt": 1}}"#, (422, "inner.cnt"));
        check(r#"{"name": "x", "inner": {}}"#, (422, "inner.count"));
        check(r#"{"name": "x"} trailing"#, (400, ""));
        check(r#"{"name": "#, (400, ""));
    }
}
