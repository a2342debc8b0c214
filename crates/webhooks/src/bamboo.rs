//! Bamboo Data Center webhooks. Their body is whatever template an administrator wrote; this
//! module reads the default build and deployment templates and their common extensions.
//!
//! Bamboo cannot sign: verification accepts a shared token (`X-Bamboo-Token`, Bearer, or
//! `?token=`) or our `X-Bamboo-Signature` convention. Template variables that Bamboo left
//! unrendered (`${bamboo...}`) are kept verbatim where they describe the result, and never
//! used as a delivery id.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::auth;
use crate::common::{self, Loose};
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    auth::ci_server(delivery, secrets, "x-bamboo-token", "x-bamboo-signature")
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let p: Payload = common::from_json(delivery.body)?;
    let mut e = match (p.build, p.deployment) {
        (Some(build), _) => build_event(build),
        (None, Some(deployment)) => deployment_event(deployment),
        (None, None) => NormalizedEvent::new("unknown", EventType::Other),
    };
    e.delivery_id = common::non_empty(p.uuid).filter(|id| !is_template(id));
    Ok(Parsed::Event(Box::new(e)))
}

/// An unrendered template variable.
fn is_template(value: &str) -> bool {
    value.contains("${")
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Payload {
    uuid: Option<String>,
    build: Option<Build>,
    deployment: Option<Deployment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Build {
    build_result_key: Loose,
    status: Option<String>,
    build_plan_name: Option<String>,
    build_number: Loose,
    build_result_url: Option<String>,
    repository_url: Option<String>,
    branch: Option<String>,
    revision: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Deployment {
    status: Option<String>,
    deployment_project_name: Option<String>,
    environment_name: Option<String>,
    deployment_result_id: Loose,
}

/// Only rendered values are taken for the fields that identify things.
fn rendered(value: Option<String>) -> Option<String> {
    common::non_empty(value).filter(|v| !is_template(v))
}

fn build_event(b: Build) -> NormalizedEvent {
    let mut e = NormalizedEvent::new("build", EventType::Build);
    e.action = Some(
        b.status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );
    e.build = Some(BuildInfo {
        status: b.status,
        url: rendered(b.build_result_url),
        number: b.build_number.to_text().filter(|n| !is_template(n)),
        pipeline_name: rendered(b.build_plan_name),
    });
    e.repo = rendered(b.repository_url.clone());
    e.repo_url = rendered(b.repository_url);
    e.branch = rendered(b.branch).map(|b| common::branch_name(&b));
    e.commit_sha = rendered(b.revision);
    if let Some(key) = b.build_result_key.to_json() {
        e.details.insert("build_result_key".into(), key);
    }
    e
}

/// Deployments are not builds of a commit: they reach runbooks as `other`, with their facts
/// in `details`.
fn deployment_event(d: Deployment) -> NormalizedEvent {
    let mut e = NormalizedEvent::new("deployment", EventType::Other);
    let facts = [
        ("deployment_status", d.status.map(Value::from)),
        (
            "deployment_project",
            d.deployment_project_name.map(Value::from),
        ),
        ("environment", d.environment_name.map(Value::from)),
        ("deployment_result_id", d.deployment_result_id.to_json()),
    ];
    for (key, value) in facts {
        if let Some(value) = value {
            e.details.insert(key.into(), value);
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use domain::Vendor;

    use super::*;
    use crate::testkit::{self, fixture, signature};

    #[test]
    fn credentials() {
        let body = fixture("bamboo-build-rendered.json");
        let verify = |pairs: &[(&str, &str)], query: Option<&str>| {
            testkit::verify_with(Vendor::Bamboo, pairs, query, &body, &["bam"])
        };
        let valid = Verification::Valid { slot: 0 };
        assert_eq!(verify(&[("x-bamboo-token", "bam")], None), valid);
        assert_eq!(verify(&[], Some("token=bam")), valid);
        let sig = signature("bam", &body);
        assert_eq!(verify(&[("x-bamboo-signature", sig.as_str())], None), valid);
        assert_eq!(
            verify(&[("x-jenkins-token", "bam")], None),
            Verification::Missing
        );
        assert_eq!(
            verify(&[("x-bamboo-token", "nope")], None),
            Verification::Invalid
        );
    }

    #[test]
    fn rendered_build() {
        let e = testkit::event(Vendor::Bamboo, &[], &fixture("bamboo-build-rendered.json"));
        assert_eq!(
            (e.event_type, e.action),
            (EventType::Build, Some(Action::Failed))
        );
        assert_eq!(
            e.delivery_id.as_deref(),
            Some("c0ffee00-1234-4abc-9def-000000000003")
        );
        assert_eq!(
            e.details.get("build_result_key"),
            Some(&Value::from("WID-CI-88"))
        );
        assert_eq!(e.build.unwrap().number.as_deref(), Some("88"));
    }

    #[test]
    fn deployment_with_template_uuid() {
        let e = testkit::event(Vendor::Bamboo, &[], &fixture("bamboo-deployment.json"));
        assert_eq!(
            (e.event_type, e.vendor_event.as_str()),
            (EventType::Other, "deployment")
        );
        assert_eq!(e.delivery_id, None);
        assert_eq!(
            e.details.get("deployment_status"),
            Some(&Value::from("SUCCESS"))
        );
    }
}
