//! What the engine needs to call vendors: the egress policy, a way to open an integration's
//! sealed credentials, and the public URL links point to.
//!
//! The engine never holds the master key: opening credentials is the caller's
//! ([`OpenCredentials`], implemented by the API crate). Nothing here logs a credential.

use std::sync::Arc;

use connectors::{Credential, EgressPolicy};
use store::IntegrationRecord;

/// Opens an integration's sealed `config.auth`.
pub trait OpenCredentials: Send + Sync {
    /// The opened `auth` object, `None` when the integration has none.
    fn open_auth(&self, record: &IntegrationRecord) -> Result<Option<serde_json::Value>, String>;
}

/// The engine's outbound context, shared by the orchestrator, the gate and the API handlers
/// that post statuses.
#[derive(Clone)]
pub struct Outbound {
    pub egress: EgressPolicy,
    pub credentials: Arc<dyn OpenCredentials>,
    /// `PMAP_PUBLIC_URL`, for links in statuses and comments.
    pub public_url: String,
}

impl Outbound {
    /// An HTTP client for calls to this integration: the policy, plus its explicit base URL.
    pub fn http_for(&self, record: &IntegrationRecord) -> reqwest::Client {
        self.egress.with_base_url(api_base_url(record)).client()
    }

    pub fn credential_for(&self, record: &IntegrationRecord) -> Result<Credential, String> {
        let auth = self.credentials.open_auth(record)?;
        Ok(Credential::from_auth(auth.as_ref()))
    }

    /// A link into PMAP.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }
}

/// The integration's `config.api_base_url`, when set.
pub fn api_base_url(record: &IntegrationRecord) -> Option<&str> {
    record
        .config
        .get("api_base_url")
        .and_then(serde_json::Value::as_str)
}
