//! The SCM archetype: posting a pull request's gate status and keeping one PMAP comment on it
//! up to date, behind [`ScmClient`], with one implementation per vendor module.
//!
//! This module picks the vendor implementation and holds what they share (the target, the
//! report, finding PMAP's comment by its marker). It never decides the verdict or the text.

use async_trait::async_trait;
use domain::Vendor;
use domain::gate::{COMMENT_MARKER, GateState};

use crate::http::{CallError, Credential};
use crate::{azure_devops, bitbucket_cloud, bitbucket_server, github, gitlab};

/// The status context (or key) PMAP reports under.
pub const STATUS_CONTEXT: &str = "pmap/security";

/// The pull request a report is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrTarget {
    /// The repository as the vendor names it (`owner/name`, `group/project`, `PROJECT/repo`).
    pub repo: String,
    pub repo_url: Option<String>,
    pub commit_sha: String,
    pub pr_number: i64,
}

/// A gate status to post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    pub state: GateState,
    pub description: String,
    pub target_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommentOutcome {
    Created(String),
    Updated(String),
}

impl CommentOutcome {
    pub fn id(&self) -> &str {
        match self {
            CommentOutcome::Created(id) | CommentOutcome::Updated(id) => id,
        }
    }

    pub fn created(&self) -> bool {
        matches!(self, CommentOutcome::Created(_))
    }
}

/// Commit/PR statuses and PR comments on one SCM.
#[async_trait]
pub trait ScmClient: Send + Sync {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError>;
    /// Edits PMAP's comment (found by its marker) or creates it.
    async fn upsert_comment(
        &self,
        target: &PrTarget,
        body: &str,
    ) -> Result<CommentOutcome, CallError>;
}

/// Which SCM API an integration speaks. Bitbucket Cloud and Server share the `bitbucket`
/// vendor; the event names tell them apart (`pullrequest:*` is Cloud, `pr:*` Server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScmKind {
    Github,
    Gitlab,
    BitbucketCloud,
    BitbucketServer,
    AzureDevops,
}

impl ScmKind {
    /// `None` for vendors that are not an SCM (Jenkins, Bamboo report through one).
    pub fn of(vendor: Vendor, vendor_event: Option<&str>) -> Option<ScmKind> {
        match vendor {
            Vendor::Github => Some(ScmKind::Github),
            Vendor::Gitlab => Some(ScmKind::Gitlab),
            Vendor::AzureDevops => Some(ScmKind::AzureDevops),
            Vendor::Bitbucket => {
                let server = vendor_event
                    .is_some_and(|e| e.starts_with("pr:") || e.starts_with("repo:refs_changed"));
                Some(if server {
                    ScmKind::BitbucketServer
                } else {
                    ScmKind::BitbucketCloud
                })
            }
            _ => None,
        }
    }
}

/// The client for an SCM integration: its `api_base_url` (or the vendor's public API), its
/// credential, and an HTTP client built from the egress policy.
pub fn client(
    kind: ScmKind,
    http: reqwest::Client,
    api_base_url: Option<&str>,
    credential: Credential,
) -> Box<dyn ScmClient> {
    match kind {
        ScmKind::Github => Box::new(github::Github::new(http, api_base_url, credential)),
        ScmKind::Gitlab => Box::new(gitlab::Gitlab::new(http, api_base_url, credential)),
        ScmKind::BitbucketCloud => Box::new(bitbucket_cloud::BitbucketCloud::new(
            http,
            api_base_url,
            credential,
        )),
        ScmKind::BitbucketServer => Box::new(bitbucket_server::BitbucketServer::new(
            http,
            api_base_url,
            credential,
        )),
        ScmKind::AzureDevops => Box::new(azure_devops::AzureDevops::new(
            http,
            api_base_url,
            credential,
        )),
    }
}

/// True for a comment body PMAP wrote.
pub fn is_ours(body: Option<&str>) -> bool {
    body.is_some_and(|b| b.contains(COMMENT_MARKER))
}

/// Splits `owner/name` (the last slash separates the name).
pub fn split_repo(repo: &str) -> Result<(&str, &str), CallError> {
    repo.rsplit_once('/')
        .filter(|(owner, name)| !owner.is_empty() && !name.is_empty())
        .ok_or_else(|| CallError::Config(format!("repository {repo:?} is not owner/name")))
}

/// Status descriptions are short on every vendor (GitHub: 140 characters).
pub fn short(description: &str, max: usize) -> String {
    if description.chars().count() <= max {
        return description.to_owned();
    }
    let mut out: String = description.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A JSON id (number or string) as text.
pub fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
