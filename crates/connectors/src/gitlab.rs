//! GitLab: commit statuses, the merge request's note, and pipeline creation. REST v4 at
//! gitlab.com or a self-hosted `api_base_url` (with or without its `/api/v4`).
//!
//! This module speaks GitLab's API only; it never decides what to post.

use async_trait::async_trait;
use domain::gate::GateState;
use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};
use crate::scm::{
    CommentOutcome, PrTarget, STATUS_CONTEXT, ScmClient, StatusReport, id_text, is_ours, short,
};

pub const DEFAULT_BASE: &str = "https://gitlab.com";
const MAX_PAGES: u32 = 10;

pub struct Gitlab {
    endpoint: Endpoint,
}

impl Gitlab {
    pub fn new(http: reqwest::Client, base: Option<&str>, credential: Credential) -> Gitlab {
        let base = base.unwrap_or(DEFAULT_BASE).trim_end_matches('/');
        let base = if base.ends_with("/api/v4") {
            base.to_owned()
        } else {
            format!("{base}/api/v4")
        };
        let endpoint = Endpoint::new("gitlab", http, &base, credential, TokenScheme::PrivateToken);
        Gitlab { endpoint }
    }

    fn project(repo: &str) -> String {
        format!("/projects/{}", segment(repo))
    }

    /// Creates a pipeline for `git_ref` with `variables` (`POST /projects/:id/pipeline`).
    pub async fn create_pipeline(
        &self,
        project: &str,
        git_ref: &str,
        variables: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let variables: Vec<Value> = variables
            .iter()
            .map(|(key, value)| json!({"key": key, "value": plain(value)}))
            .collect();
        let body = json!({"ref": git_ref, "variables": variables});
        let call = Call {
            path: format!("{}/pipeline", Self::project(project)),
            json: Some(&body),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        Ok(json!({"pipeline_id": answer.body.get("id"), "web_url": answer.body.get("web_url")}))
    }
}

/// A variable's value as the text CI systems expect.
pub(crate) fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn state_word(state: GateState) -> &'static str {
    match state {
        GateState::Success => "success",
        GateState::Failure | GateState::Error => "failed",
        GateState::Pending => "pending",
    }
}

#[async_trait]
impl ScmClient for Gitlab {
    async fn post_status(&self, target: &PrTarget, report: &StatusReport) -> Result<(), CallError> {
        let body = json!({
            "state": state_word(report.state),
            "name": STATUS_CONTEXT,
            "description": short(&report.description, 255),
            "target_url": report.target_url,
        });
        let call = Call {
            path: format!(
                "{}/statuses/{}",
                Self::project(&target.repo),
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
        let notes = format!(
            "{}/merge_requests/{}/notes",
            Self::project(&target.repo),
            target.pr_number
        );
        let payload = json!({"body": body});
        for page in 1..=MAX_PAGES {
            let call = Call {
                path: notes.clone(),
                query: vec![
                    ("per_page".into(), "100".into()),
                    ("page".into(), page.to_string()),
                ],
                ..Call::default()
            };
            let answer = self.endpoint.send(Method::GET, call).await?;
            let items = answer.body.as_array().cloned().unwrap_or_default();
            let ours = items
                .iter()
                .find(|n| is_ours(n.get("body").and_then(Value::as_str)))
                .and_then(|n| n.get("id").and_then(id_text));
            if let Some(id) = ours {
                let call = Call {
                    path: format!("{notes}/{id}"),
                    json: Some(&payload),
                    ..Call::default()
                };
                self.endpoint.send(Method::PUT, call).await?;
                return Ok(CommentOutcome::Updated(id));
            }
            if items.len() < 100 {
                break;
            }
        }
        let call = Call {
            path: notes,
            json: Some(&payload),
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let id = answer.body.get("id").and_then(id_text).unwrap_or_default();
        Ok(CommentOutcome::Created(id))
    }
}
