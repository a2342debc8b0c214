//! Jenkins: starting a parameterized job (`buildWithParameters`), with a CSRF crumb when the
//! server issues one. Jenkins has no pull-request API; its events report through an SCM
//! integration.
//!
//! This module speaks Jenkins' remote API only; it never decides what to start.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::gitlab::plain;
use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};

pub struct Jenkins {
    endpoint: Endpoint,
}

impl Jenkins {
    pub fn new(http: reqwest::Client, base: &str, credential: Credential) -> Jenkins {
        Jenkins {
            endpoint: Endpoint::new("jenkins", http, base, credential, TokenScheme::Bearer),
        }
    }

    /// `folder/job` becomes `/job/folder/job/job`.
    fn job_path(job: &str) -> String {
        job.split('/')
            .filter(|s| !s.is_empty())
            .map(|s| format!("/job/{}", segment(s)))
            .collect()
    }

    /// The crumb header, or `None` when the server has CSRF protection off (404).
    async fn crumb(&self) -> Result<Option<(String, String)>, CallError> {
        let call = Call {
            path: "/crumbIssuer/api/json".into(),
            ..Call::default()
        };
        match self.endpoint.send(Method::GET, call).await {
            Ok(answer) => Ok(answer.body["crumbRequestField"]
                .as_str()
                .zip(answer.body["crumb"].as_str())
                .map(|(field, crumb)| (field.to_owned(), crumb.to_owned()))),
            Err(err) if err.status() == Some(404) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Queues `job` with `parameters` (and `ref` when given).
    pub async fn build_with_parameters(
        &self,
        job: &str,
        git_ref: Option<&str>,
        parameters: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let mut query: Vec<(String, String)> = parameters
            .iter()
            .map(|(k, v)| (k.clone(), plain(v)))
            .collect();
        if let Some(git_ref) = git_ref.filter(|_| !parameters.contains_key("ref")) {
            query.push(("ref".into(), git_ref.to_owned()));
        }
        let headers = self.crumb().await?.into_iter().collect();
        let call = Call {
            path: format!("{}/buildWithParameters", Self::job_path(job)),
            query,
            headers,
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        let queue_item = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(json!({"job": job, "queue_item": queue_item}))
    }
}
