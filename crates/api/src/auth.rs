//! Bearer tokens: stored as SHA-256 hashes (tokens are 256 random bits, so a fast hash is
//! enough), checked on every management endpoint, with the role deciding what a caller may do.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::request::Parts;
use http::{Method, StatusCode};
use rand::RngCore;
use sha2::{Digest, Sha256};
use store::Role;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// A new random token in its printable form.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("pmap_{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Who is calling, established from the `Authorization: Bearer` header.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    /// Fails with 403 unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this needs the {} role; the token has {}",
                needed.as_str(),
                self.role.as_str()
            ),
        ))
    }

    /// Viewers may read; anything that changes state needs at least an operator.
    pub fn require_for(&self, method: &Method, mutate_role: Role) -> Result<(), ApiError> {
        let needed = if method == Method::GET || method == Method::HEAD {
            Role::Viewer
        } else {
            mutate_role
        };
        self.require(needed)
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("unauthenticated", "a bearer token is required")
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::unauthorized("unauthenticated", "use Authorization: Bearer <token>")
            })?;
        let hash = hash_token(token);

        if let Some(admin) = &state.admin_token_hash
            && bool::from(admin.as_slice().ct_eq(&hash))
        {
            return Ok(Caller {
                name: "admin-token".into(),
                role: Role::Admin,
            });
        }
        match state.store.find_token(&hash).await? {
            Some(record) => Ok(Caller {
                name: record.name,
                role: record.role,
            }),
            None => Err(ApiError::unauthorized(
                "invalid_token",
                "the bearer token is not known",
            )),
        }
    }
}
