//! The normalized CI event: what every vendor's delivery becomes.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{CiEventId, IntegrationId};
use crate::vendor::Vendor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Push,
    Tag,
    PullRequest,
    Build,
    Ping,
    Other,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Push => "push",
            EventType::Tag => "tag",
            EventType::PullRequest => "pull_request",
            EventType::Build => "build",
            EventType::Ping => "ping",
            EventType::Other => "other",
        }
    }
}

/// The normalized verb of an event. Which verbs are possible depends on the event type:
/// pull requests use opened/updated/closed/merged/reopened/other, builds
/// started/succeeded/failed/cancelled/other, pushes and tags created/updated/deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Opened,
    Updated,
    Closed,
    Merged,
    Reopened,
    Started,
    Succeeded,
    Failed,
    Cancelled,
    Created,
    Deleted,
    Other,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Opened => "opened",
            Action::Updated => "updated",
            Action::Closed => "closed",
            Action::Merged => "merged",
            Action::Reopened => "reopened",
            Action::Started => "started",
            Action::Succeeded => "succeeded",
            Action::Failed => "failed",
            Action::Cancelled => "cancelled",
            Action::Created => "created",
            Action::Deleted => "deleted",
            Action::Other => "other",
        }
    }
}

/// Build details for `build` events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// The vendor's own result or state word, verbatim (`success`, `SUCCESSFUL`, `ABORTED`, …).
    pub status: Option<String>,
    pub url: Option<String>,
    /// Build number or run id as the vendor shows it.
    pub number: Option<String>,
    /// Pipeline, workflow or job name.
    pub pipeline_name: Option<String>,
}

/// What a vendor module extracts from one verified delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizedEvent {
    pub vendor_event: String,
    pub event_type: EventType,
    pub action: Option<Action>,
    pub repo: Option<String>,
    pub repo_url: Option<String>,
    pub branch: Option<String>,
    pub target_branch: Option<String>,
    pub tag: Option<String>,
    pub commit_sha: Option<String>,
    pub before_sha: Option<String>,
    /// The merge commit, for merged pull requests that name it.
    pub merge_commit: Option<String>,
    pub pr_number: Option<i64>,
    pub actor: Option<String>,
    pub delivery_id: Option<String>,
    pub build: Option<BuildInfo>,
    /// Vendor-specific facts worth keeping (hook id, job id, head repository, …).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub details: Map<String, Value>,
}

impl NormalizedEvent {
    /// An event with only its names set; vendor modules fill in the rest.
    pub fn new(vendor_event: impl Into<String>, event_type: EventType) -> Self {
        Self {
            vendor_event: vendor_event.into(),
            event_type,
            action: None,
            repo: None,
            repo_url: None,
            branch: None,
            target_branch: None,
            tag: None,
            commit_sha: None,
            before_sha: None,
            merge_commit: None,
            pr_number: None,
            actor: None,
            delivery_id: None,
            build: None,
            details: Map::new(),
        }
    }
}

/// One stored delivery as the audit shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CiEvent {
    pub id: CiEventId,
    pub integration_id: IntegrationId,
    pub vendor: Vendor,
    pub received_at: DateTime<Utc>,
    #[serde(flatten)]
    pub event: NormalizedEvent,
    pub signature_valid: bool,
    /// Which configured secret matched (0 current, 1 previous), when one did.
    pub secret_slot: Option<u8>,
    pub action_taken: String,
    /// For rejected deliveries: how many more were folded into this row.
    pub repeat_count: i64,
}
