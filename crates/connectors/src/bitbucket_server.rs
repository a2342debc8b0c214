//! Bitbucket Server and Data Center: build statuses and the pull request's comment, at the
//! integration's `api_base_url` (there is no public default).
//!
//! This module speaks Bitbucket Server's REST API only; it never decides what to post.

use async_trait::async_trait;
use domain::gate::GateState;
use reqwest::Method;
use serde_json::json;

use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};
use crate::scm::{
    CommentOutcome, PrTarget, STATUS_CONTEXT, ScmClient, StatusReport, id_text, is_ours, short,
    split_repo,
};

const MAX_PAGES: u32 = 10;

pub struct BitbucketServer {
    endpoint: Endpoint,
}

impl BitbucketServer {
    pub fn new(http: reqwest::Client, base: Option<&str>, credential: Credential) -> Self {
        let endpoint = Endpoint::new(
            "bitbucket",
            http,
            base.unwrap_or_default(),
            credential,
            TokenScheme::Bearer,
        );
        BitbucketServer { endpoint }
    }

    fn pull_request(target: &PrTarget) -> Result<String, CallError> {
        let (project, slug) = split_repo(&target.repo)?;
        Ok(format!(
            "/rest/api/1.0/projects/{}/repos/{}/pull-requests/{}",
            segment(project),
            segment(slug),
            target.pr_number
        ))
    }

    fn check_base(&self) -> Result<(), CallError> {
        if self.endpoint.base.is_empty() {
            return Err(CallError::Config(
                "a Bitbucket Server integration needs config.api_base_url".into(),
            ));
        }
        Ok(())
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
impl ScmClient for BitbucketServer {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError> {
        self.check_base()?;
        let body = json!({
            "state": state_word(report.state),
            "key": STATUS_CONTEXT,
            "name": "PMAP security gate",
            "url": report.target_url,
            "description": short(&report.description, 255),
        });
        let call = Call {
            path: format!(
                "/rest/build-status/1.0/commits/{}",
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
        self.check_base()?;
        let pr = Self::pull_request(target)?;
        let mut start = 0;
        for _ in 0..MAX_PAGES {
            let call = Call {
                path: format!("{pr}/activities"),
                query: vec![
                    ("limit".into(), "100".into()),
                    ("start".into(), start.to_string()),
                ],
                ..Call::default()
            };
            let page = self.endpoint.send(Method::GET, call).await?.body;
            let values = page["values"].as_array().cloned().unwrap_or_default();
            let ours = values
                .iter()
                .filter_map(|a| a.get("comment"))
                .find(|c| is_ours(c["text"].as_str()));
            if let Some(comment) = ours {
                let id = comment.get("id").and_then(id_text).unwrap_or_default();
                let payload = json!({"text": body, "version": comment["version"]});
                let call = Call {
                    path: format!("{pr}/comments/{id}"),
                    json: Some(&payload),
                    ..Call::default()
                };
                self.endpoint.send(Method::PUT, call).await?;
                return Ok(CommentOutcome::Updated(id));
            }
            match (page["isLastPage"].as_bool(), page["nextPageStart"].as_i64()) {
                (Some(false), Some(next)) => start = next,
                _ => break,
            }
        }
        let payload = json!({"text": body});
        let call = Call {
            path: format!("{pr}/comments"),
            json: Some(&payload),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let id = answer.body.get("id").and_then(id_text).unwrap_or_default();
        Ok(CommentOutcome::Created(id))
    }
}
