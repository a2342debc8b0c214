//! Azure DevOps: pull request statuses, the PR's comment thread, and pipeline runs, at
//! `dev.azure.com` or the given `api_base_url`. The organization, project and repository come
//! from the repository URL (`…/{org}/{project}/_git/{repo}`).
//!
//! This module speaks Azure DevOps' REST API (7.1) only; it never decides what to post.

use async_trait::async_trait;
use domain::gate::GateState;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};
use crate::scm::{CommentOutcome, PrTarget, ScmClient, StatusReport, id_text, is_ours, short};

pub const DEFAULT_BASE: &str = "https://dev.azure.com";
const API_VERSION: (&str, &str) = ("api-version", "7.1");

pub struct AzureDevops {
    endpoint: Endpoint,
}

/// `{org}/{project}/_git/{repo}` out of a repository URL.
pub fn repo_parts(repo_url: &str) -> Option<(String, String, String)> {
    let url = url::Url::parse(repo_url).ok()?;
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    let git = segments.iter().position(|s| *s == "_git")?;
    let repo = segments.get(git + 1)?;
    let (org, project) = match git {
        2 => (segments[0].to_owned(), segments[1].to_owned()),
        // `{org}.visualstudio.com/{project}/_git/{repo}`
        1 => (
            url.host_str()?.split('.').next()?.to_owned(),
            segments[0].to_owned(),
        ),
        _ => return None,
    };
    Some((org, project, (*repo).to_owned()))
}

impl AzureDevops {
    pub fn new(http: reqwest::Client, base: Option<&str>, credential: Credential) -> Self {
        let endpoint = Endpoint::new(
            "azure-devops",
            http,
            base.unwrap_or(DEFAULT_BASE),
            credential,
            TokenScheme::BasicPassword,
        );
        AzureDevops { endpoint }
    }

    fn pull_request(target: &PrTarget) -> Result<String, CallError> {
        let (org, project, repo) =
            target
                .repo_url
                .as_deref()
                .and_then(repo_parts)
                .ok_or_else(|| {
                    CallError::Config(format!(
                        "cannot tell the Azure DevOps organization and project of {:?}",
                        target.repo_url
                    ))
                })?;
        Ok(format!(
            "/{}/{}/_apis/git/repositories/{}/pullRequests/{}",
            segment(&org),
            segment(&project),
            segment(&repo),
            target.pr_number
        ))
    }

    /// Runs pipeline `pipeline_id` of `{org}/{project}` on `git_ref`.
    pub async fn run_pipeline(
        &self,
        org_project: &str,
        pipeline_id: &str,
        git_ref: &str,
        variables: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let (org, project) = crate::scm::split_repo(org_project)?;
        let variables: Map<String, Value> = variables
            .iter()
            .map(|(k, v)| (k.clone(), json!({"value": crate::gitlab::plain(v)})))
            .collect();
        let ref_name = if git_ref.starts_with("refs/") {
            git_ref.to_owned()
        } else {
            format!("refs/heads/{git_ref}")
        };
        let body = json!({
            "resources": {"repositories": {"self": {"refName": ref_name}}},
            "variables": variables,
        });
        let call = Call {
            path: format!(
                "/{}/{}/_apis/pipelines/{}/runs",
                segment(org),
                segment(project),
                segment(pipeline_id)
            ),
            query: vec![(API_VERSION.0.into(), API_VERSION.1.into())],
            json: Some(&body),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        Ok(json!({"run_id": answer.body.get("id"), "state": answer.body.get("state")}))
    }
}

fn state_word(state: GateState) -> &'static str {
    match state {
        GateState::Success => "succeeded",
        GateState::Failure => "failed",
        GateState::Pending => "pending",
        GateState::Error => "error",
    }
}

fn versioned() -> Vec<(String, String)> {
    vec![(API_VERSION.0.into(), API_VERSION.1.into())]
}

#[async_trait]
impl ScmClient for AzureDevops {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError> {
        let body = json!({
            "state": state_word(report.state),
            "description": short(&report.description, 255),
            "context": {"genre": "pmap", "name": "security"},
            "targetUrl": report.target_url,
        });
        let call = Call {
            path: format!("{}/statuses", Self::pull_request(target)?),
            query: versioned(),
            json: Some(&body),
            ..Call::default()
        };
        self.endpoint.send(Method::POST, call).await?;
        Ok(())
    }

    async fn upsert_comment(
        &self,
        target: &PrTarget,
        body: &str,
    ) -> Result<CommentOutcome, CallError> {
        let threads = format!("{}/threads", Self::pull_request(target)?);
        let call = Call {
            path: threads.clone(),
            query: versioned(),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::GET, call).await?;
        let list = answer.body["value"].as_array().cloned().unwrap_or_default();
        let ours = list.iter().find_map(|thread| {
            let first = thread["comments"].as_array()?.first()?;
            is_ours(first["content"].as_str())
                .then(|| Some((id_text(&thread["id"])?, id_text(&first["id"])?)))
                .flatten()
        });
        if let Some((thread_id, comment_id)) = ours {
            let payload = json!({"content": body});
            let call = Call {
                path: format!("{threads}/{thread_id}/comments/{comment_id}"),
                query: versioned(),
                json: Some(&payload),
                ..Call::default()
            };
            self.endpoint.send(Method::PATCH, call).await?;
            return Ok(CommentOutcome::Updated(thread_id));
        }
        let payload = json!({
            "comments": [{"parentCommentId": 0, "content": body, "commentType": 1}],
            "status": 1,
        });
        let call = Call {
            path: threads,
            query: versioned(),
            json: Some(&payload),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let id = answer.body.get("id").and_then(id_text).unwrap_or_default();
        Ok(CommentOutcome::Created(id))
    }
}
