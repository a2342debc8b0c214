//! Bitbucket Cloud: build statuses, the pull request's comment, and Pipelines runs. API 2.0 at
//! `api.bitbucket.org` or the given `api_base_url`.
//!
//! This module speaks Bitbucket Cloud's API only; it never decides what to post.

use async_trait::async_trait;
use domain::gate::GateState;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::gitlab::plain;
use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};
use crate::scm::{
    CommentOutcome, PrTarget, STATUS_CONTEXT, ScmClient, StatusReport, id_text, is_ours, short,
    split_repo,
};

pub const DEFAULT_BASE: &str = "https://api.bitbucket.org";
const MAX_PAGES: u32 = 10;

pub struct BitbucketCloud {
    endpoint: Endpoint,
}

impl BitbucketCloud {
    pub fn new(http: reqwest::Client, base: Option<&str>, credential: Credential) -> Self {
        let base = base.unwrap_or(DEFAULT_BASE);
        let base = base.trim_end_matches('/').trim_end_matches("/2.0");
        let endpoint = Endpoint::new("bitbucket", http, base, credential, TokenScheme::Bearer);
        BitbucketCloud { endpoint }
    }

    fn repo_path(repo: &str) -> Result<String, CallError> {
        let (workspace, slug) = split_repo(repo)?;
        Ok(format!(
            "/2.0/repositories/{}/{}",
            segment(workspace),
            segment(slug)
        ))
    }

    /// Runs a custom pipeline (or the branch's default when `pipeline` is empty).
    pub async fn run_pipeline(
        &self,
        repo: &str,
        pipeline: &str,
        git_ref: &str,
        variables: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let mut target = json!({
            "type": "pipeline_ref_target",
            "ref_type": "branch",
            "ref_name": git_ref,
        });
        if !pipeline.is_empty() {
            target["selector"] = json!({"type": "custom", "pattern": pipeline});
        }
        let variables: Vec<Value> = variables
            .iter()
            .map(|(key, value)| json!({"key": key, "value": plain(value)}))
            .collect();
        let body = json!({"target": target, "variables": variables});
        let call = Call {
            path: format!("{}/pipelines/", Self::repo_path(repo)?),
            json: Some(&body),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        Ok(
            json!({"uuid": answer.body.get("uuid"), "build_number": answer.body.get("build_number")}),
        )
    }
}

fn state_word(state: GateState) -> &'static str {
    match state {
        GateState::Success => "SUCCESSFUL",
        GateState::Failure | GateState::Error => "FAILED",
        GateState::Pending => "INPROGRESS",
    }
}

#[async_trait]
impl ScmClient for BitbucketCloud {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError> {
        let body = json!({
            "state": state_word(report.state),
            "key": STATUS_CONTEXT,
            "name": "PMAP security gate",
            "url": report.target_url,
            "description": short(&report.description, 255),
        });
        let call = Call {
            path: format!(
                "{}/commit/{}/statuses/build",
                Self::repo_path(&target.repo)?,
                segment(&target.commit_sha)
            ),
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
        let comments = format!(
            "{}/pullrequests/{}/comments",
            Self::repo_path(&target.repo)?,
            target.pr_number
        );
        let payload = json!({"content": {"raw": body}});
        let mut next = Some(comments.clone());
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            let query = if pages == 1 {
                vec![("pagelen".into(), "100".into())]
            } else {
                Vec::new()
            };
            let call = Call {
                path,
                query,
                ..Call::default()
            };
            let answer = self.endpoint.send(Method::GET, call).await?;
            let values = answer.body["values"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ours = values
                .iter()
                .find(|c| is_ours(c["content"]["raw"].as_str()))
                .and_then(|c| c.get("id").and_then(id_text));
            if let Some(id) = ours {
                let call = Call {
                    path: format!("{comments}/{id}"),
                    json: Some(&payload),
                    ..Call::default()
                };
                self.endpoint.send(Method::PUT, call).await?;
                return Ok(CommentOutcome::Updated(id));
            }
            next = answer.body["next"]
                .as_str()
                .filter(|_| pages < MAX_PAGES)
                .map(str::to_owned);
        }
        let call = Call {
            path: comments,
            json: Some(&payload),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let id = answer.body.get("id").and_then(id_text).unwrap_or_default();
        Ok(CommentOutcome::Created(id))
    }
}
