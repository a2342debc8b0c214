//! Bamboo: queueing a plan build with variables. Bamboo has no pull-request API; its events
//! report through an SCM integration.
//!
//! This module speaks Bamboo's REST API only; it never decides what to start.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::gitlab::plain;
use crate::http::{Call, CallError, Credential, Endpoint, TokenScheme, segment};

pub struct Bamboo {
    endpoint: Endpoint,
}

impl Bamboo {
    pub fn new(http: reqwest::Client, base: &str, credential: Credential) -> Bamboo {
        let mut endpoint = Endpoint::new("bamboo", http, base, credential, TokenScheme::Bearer);
        endpoint.headers = vec![("Accept", "application/json".into())];
        Bamboo { endpoint }
    }

    /// Queues a build of `plan_key` (`PROJ-PLAN`); variables go as `bamboo.variable.<name>`.
    pub async fn queue(
        &self,
        plan_key: &str,
        variables: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let mut query = vec![("executeAllStages".to_owned(), "true".to_owned())];
        query.extend(
            variables
                .iter()
                .map(|(k, v)| (format!("bamboo.variable.{k}"), plain(v))),
        );
        let call = Call {
            path: format!("/rest/api/latest/queue/{}", segment(plan_key)),
            query,
            ..Call::default()
        };
        let answer = self.endpoint.send(Method::POST, call).await?;
        Ok(json!({"plan_key": plan_key, "build_result_key": answer.body.get("buildResultKey")}))
    }
}
