//! GitHub: commit statuses, the PR's issue comment, and workflow dispatch. REST v3 at
//! `api.github.com` or a GitHub Enterprise `api_base_url`.
//!
//! This module speaks GitHub's API only; it never decides what to post.

use async_trait::async_trait;
use domain::gate::GateState;
use reqwest::Method;
use serde_json::{Value, json};

use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};
use crate::scm::{
    CommentOutcome, PrTarget, STATUS_CONTEXT, ScmClient, StatusReport, id_text, is_ours, short,
    split_repo,
};

pub const DEFAULT_BASE: &str = "https://api.github.com";
/// Comment pages read at most while looking for PMAP's comment.
const MAX_PAGES: u32 = 10;

pub struct Github {
    endpoint: Endpoint,
}

impl Github {
    pub fn new(http: reqwest::Client, base: Option<&str>, credential: Credential) -> Github {
        let mut endpoint = Endpoint::new(
            "github",
            http,
            base.unwrap_or(DEFAULT_BASE),
            credential,
            TokenScheme::Bearer,
        );
        endpoint.headers = vec![
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
        ];
        Github { endpoint }
    }

    fn repo_path(repo: &str) -> Result<String, CallError> {
        let (owner, name) = split_repo(repo)?;
        Ok(format!("/repos/{}/{}", segment(owner), segment(name)))
    }

    /// Starts a workflow (`workflow` is its file name or id) on `git_ref`.
    pub async fn dispatch_workflow(
        &self,
        repo: &str,
        workflow: &str,
        git_ref: &str,
        inputs: &Value,
    ) -> Result<Value, CallError> {
        let path = format!(
            "{}/actions/workflows/{}/dispatches",
            Self::repo_path(repo)?,
            segment(workflow)
        );
        let body = json!({"ref": git_ref, "inputs": inputs});
        let call = Call {
            path,
            json: Some(&body),
            ..Call::default()
        };
        self.endpoint.send(Method::POST, call).await?;
        Ok(json!({"repo": repo, "workflow": workflow, "ref": git_ref}))
    }
}

fn state_word(state: GateState) -> &'static str {
    match state {
        GateState::Success => "success",
        GateState::Failure => "failure",
        GateState::Pending => "pending",
        GateState::Error => "error",
    }
}

#[async_trait]
impl ScmClient for Github {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError> {
        let path = format!(
            "{}/statuses/{}",
            Self::repo_path(&target.repo)?,
            segment(&target.commit_sha)
        );
        let body = json!({
            "state": state_word(report.state),
            "target_url": report.target_url,
            "description": short(&report.description, 140),
            "context": STATUS_CONTEXT,
        });
        let call = Call {
            path,
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
        let repo = Self::repo_path(&target.repo)?;
        let payload = json!({"body": body});
        for page in 1..=MAX_PAGES {
            let call = Call {
                path: format!("{repo}/issues/{}/comments", target.pr_number),
                query: vec![
                    ("per_page".into(), "100".into()),
                    ("page".into(), page.to_string()),
                ],
                ..Call::default()
            };
            let answer = self.endpoint.send(Method::GET, call).await?;
            let comments = answer.body.as_array().cloned().unwrap_or_default();
            let ours = comments
                .iter()
                .find(|c| is_ours(c.get("body").and_then(Value::as_str)))
                .and_then(|c| c.get("id").and_then(id_text));
            if let Some(id) = ours {
                let call = Call {
                    path: format!("{repo}/issues/comments/{id}"),
                    json: Some(&payload),
                    ..Call::default()
                };
                self.endpoint.send(Method::PATCH, call).await?;
                return Ok(CommentOutcome::Updated(id));
            }
            if comments.len() < 100 {
                break;
            }
        }
        let call = Call {
            path: format!("{repo}/issues/{}/comments", target.pr_number),
            json: Some(&payload),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let id = answer.body.get("id").and_then(id_text).unwrap_or_default();
        Ok(CommentOutcome::Created(id))
    }
}
