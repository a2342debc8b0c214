//! Rows as the rest of PMAP hands them to the store and gets them back.

use chrono::{DateTime, Utc};
use domain::ids::{PlatformEventId, TokenId};
use domain::{CiEventId, IntegrationId, NormalizedEvent, Vendor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What an API token may do: viewers read, operators also act, admins do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An API token; only its hash is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub name: String,
    pub role: Role,
    pub token_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// An integration as stored: its secrets and outbound credentials arrive already sealed.
#[derive(Clone, PartialEq)]
pub struct IntegrationRecord {
    pub id: IntegrationId,
    pub name: String,
    pub vendor: Vendor,
    pub config: Value,
    pub sealed_secrets: Option<Vec<u8>>,
    pub sealed_auth: Option<Vec<u8>>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for IntegrationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("vendor", &self.vendor)
            .field("is_active", &self.is_active)
            .finish_non_exhaustive()
    }
}

/// An accepted delivery, verified (or accepted unsigned by policy) and normalized.
#[derive(Clone, Debug)]
pub struct NewDelivery {
    pub id: CiEventId,
    pub integration_id: IntegrationId,
    pub vendor: Vendor,
    pub received_at: DateTime<Utc>,
    pub event: NormalizedEvent,
    pub signature_valid: bool,
    pub secret_slot: Option<u8>,
    /// The raw body, LZ4-compressed with its length prepended (`lz4_flex`), kept for replay
    /// and diagnosis. Compressed by the caller so the single writer does not spend its time on
    /// it.
    pub payload_lz4: Vec<u8>,
}

/// What storing one delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Stored(CiEventId),
    /// Already stored under this id (a redelivery).
    Duplicate(CiEventId),
}

/// A rejected delivery, recorded without its body.
#[derive(Clone, Debug)]
pub struct NewRejection {
    pub id: CiEventId,
    pub integration_id: IntegrationId,
    pub vendor: Vendor,
    pub received_at: DateTime<Utc>,
    pub vendor_event: String,
    pub delivery_id: Option<String>,
    /// `rejected_signature` or `rejected_unsigned`.
    pub action_taken: String,
}

/// What processing one queued CI event decided, and the platform events it caused.
#[derive(Clone, Debug)]
pub struct FinishedCiEvent {
    pub id: CiEventId,
    pub action_taken: String,
    pub emit: Vec<NewPlatformEvent>,
}

/// A platform event to append to the log.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPlatformEvent {
    pub id: PlatformEventId,
    pub event_type: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl NewPlatformEvent {
    /// The event as stored at position `seq`.
    pub fn stored(&self, seq: i64) -> PlatformEvent {
        PlatformEvent {
            seq,
            id: self.id,
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            created_at: self.created_at,
        }
    }
}

/// A platform event as stored, with its position in the log.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlatformEvent {
    pub seq: i64,
    pub id: PlatformEventId,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}
