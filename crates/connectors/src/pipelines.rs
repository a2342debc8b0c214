//! Starting a pipeline on any CI vendor through its own API: GitHub workflow dispatch, GitLab
//! pipelines, Jenkins `buildWithParameters`, Azure DevOps pipeline runs, Bamboo queue and
//! Bitbucket Pipelines.
//!
//! This module picks the vendor call for a trigger; it never renders templates and never
//! decides whether a trigger should run (the orchestrator does both).

use domain::Vendor;
use serde_json::{Map, Value};

use crate::http::{CallError, Credential};
use crate::{azure_devops, bamboo, bitbucket_cloud, github, gitlab, jenkins};

/// One pipeline start, with its templates already rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerRequest {
    /// The repository as the vendor names it (GitHub, GitLab, Bitbucket), or `{org}/{project}`
    /// for Azure DevOps.
    pub repo: String,
    /// Workflow file, pipeline id, job name or plan key.
    pub pipeline: String,
    pub git_ref: String,
    pub variables: Map<String, Value>,
}

/// Starts the pipeline; the answer is what the vendor said about the run (ids, URLs).
pub async fn trigger(
    vendor: Vendor,
    http: reqwest::Client,
    api_base_url: Option<&str>,
    credential: Credential,
    request: &TriggerRequest,
) -> Result<Value, CallError> {
    let need_base = || {
        api_base_url.ok_or_else(|| {
            CallError::Config(format!(
                "a {vendor} pipeline trigger needs config.api_base_url"
            ))
        })
    };
    let vars = &request.variables;
    match vendor {
        Vendor::Github => {
            let client = github::Github::new(http, api_base_url, credential);
            let inputs = Value::Object(vars.clone());
            client
                .dispatch_workflow(&request.repo, &request.pipeline, &request.git_ref, &inputs)
                .await
        }
        Vendor::Gitlab => {
            let client = gitlab::Gitlab::new(http, api_base_url, credential);
            client
                .create_pipeline(&request.repo, &request.git_ref, vars)
                .await
        }
        Vendor::Jenkins => {
            let client = jenkins::Jenkins::new(http, need_base()?, credential);
            client
                .build_with_parameters(&request.pipeline, Some(&request.git_ref), vars)
                .await
        }
        Vendor::AzureDevops => {
            let client = azure_devops::AzureDevops::new(http, api_base_url, credential);
            client
                .run_pipeline(&request.repo, &request.pipeline, &request.git_ref, vars)
                .await
        }
        Vendor::Bamboo => {
            let client = bamboo::Bamboo::new(http, need_base()?, credential);
            client.queue(&request.pipeline, vars).await
        }
        Vendor::Bitbucket => {
            let client = bitbucket_cloud::BitbucketCloud::new(http, api_base_url, credential);
            client
                .run_pipeline(&request.repo, &request.pipeline, &request.git_ref, vars)
                .await
        }
        other => Err(CallError::Config(format!(
            "{other} integrations cannot start pipelines"
        ))),
    }
}
