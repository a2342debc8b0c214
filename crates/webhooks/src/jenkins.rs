//! Jenkins, as the Notification plugin sends it: `{name, url, build: {number, phase, status,
//! scm, ...}}`, one delivery per build phase.
//!
//! Jenkins cannot sign, so verification accepts a shared token (`X-Jenkins-Token`, Bearer, or
//! `?token=`) or our `X-Jenkins-Signature` convention. Build parameters are never copied into
//! the event: they often hold credentials.

use domain::{Action, BuildInfo, EventType, NormalizedEvent};
use serde::Deserialize;
use serde_json::Value;

use crate::auth;
use crate::common::{self, Loose};
use crate::{Delivery, ParseError, Parsed, Secret, Verification};

pub(crate) fn verify(delivery: &Delivery<'_>, secrets: &[Secret]) -> Verification {
    auth::ci_server(delivery, secrets, "x-jenkins-token", "x-jenkins-signature")
}

pub(crate) fn parse(delivery: &Delivery<'_>) -> Result<Parsed, ParseError> {
    let p: Payload = common::from_json(delivery.body)?;
    let Some(build) = p.build else {
        let e = NormalizedEvent::new("unknown", EventType::Other);
        return Ok(Parsed::Event(Box::new(e)));
    };
    let phase = common::non_empty(build.phase);
    let vendor_event = match &phase {
        Some(phase) => format!("build.{phase}"),
        None => "build".into(),
    };
    // The STARTED and QUEUED phases carry no status: the phase is then the state.
    let status = common::non_empty(build.status).or(phase.clone());
    let mut e = NormalizedEvent::new(vendor_event, EventType::Build);
    e.action = Some(
        status
            .as_deref()
            .map_or(Action::Other, common::build_action),
    );

    let scm = build.scm.unwrap_or_default();
    e.repo = common::non_empty(scm.url.clone());
    e.repo_url = common::non_empty(scm.url);
    e.branch = common::non_empty(scm.branch).map(|b| local_branch(&b));
    e.commit_sha = common::non_empty(scm.commit);

    let number = build.number.to_text();
    let name = common::non_empty(p.name);
    e.delivery_id = match (&name, &number, &phase) {
        (Some(name), Some(number), Some(phase)) => Some(format!("{name}:{number}:{phase}")),
        _ => None,
    };
    e.build = Some(BuildInfo {
        status,
        url: common::non_empty(build.full_url).or(common::non_empty(build.url)),
        number,
        pipeline_name: name.clone(),
    });
    if let Some(name) = name {
        e.details.insert("job".into(), Value::from(name));
    }
    if let Some(phase) = phase {
        e.details.insert("phase".into(), Value::from(phase));
    }
    Ok(Parsed::Event(Box::new(e)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Payload {
    name: Option<String>,
    build: Option<Build>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Build {
    full_url: Option<String>,
    url: Option<String>,
    number: Loose,
    phase: Option<String>,
    status: Option<String>,
    scm: Option<Scm>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Scm {
    url: Option<String>,
    branch: Option<String>,
    commit: Option<String>,
}

/// Jenkins reports the remote-tracking name (`origin/main`, `refs/remotes/origin/main`).
fn local_branch(branch: &str) -> String {
    if let Some(rest) = branch.strip_prefix("refs/remotes/") {
        return rest.split_once('/').map_or(rest, |(_, b)| b).to_owned();
    }
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    branch.strip_prefix("origin/").unwrap_or(branch).to_owned()
}

#[cfg(test)]
mod tests {
    use domain::Vendor;

    use super::*;
    use crate::testkit::{self, fixture, signature};

    #[test]
    fn credentials() {
        let body = fixture("jenkins-completed-failure.json");
        let verify = |pairs: &[(&str, &str)], query: Option<&str>, configured: &[&str]| {
            testkit::verify_with(Vendor::Jenkins, pairs, query, &body, configured)
        };
        let valid = Verification::Valid { slot: 0 };
        let secret = ["a b+c/d"];
        assert_eq!(
            verify(&[("x-jenkins-token", "a b+c/d")], None, &secret),
            valid
        );
        assert_eq!(
            verify(&[("authorization", "Bearer a b+c/d")], None, &secret),
            valid
        );
        assert_eq!(verify(&[], Some("x=1&token=a%20b%2Bc%2Fd"), &secret), valid);
        assert_eq!(verify(&[], Some("token=a+b%2Bc/d"), &secret), valid);
        assert_eq!(verify(&[], Some("token=a%20b+c/d"), &secret), valid);
        assert_eq!(
            verify(&[], Some("token=wrong"), &secret),
            Verification::Invalid
        );
        assert_eq!(
            verify(&[], Some("token=%zz"), &secret),
            Verification::Invalid
        );
        assert_eq!(
            verify(&[], Some("tokens=a"), &secret),
            Verification::Missing
        );
        let sig = signature("hmac-key", &body);
        let signed = [("x-jenkins-signature", sig.as_str())];
        assert_eq!(
            verify(&signed, None, &["old", "hmac-key"]),
            Verification::Valid { slot: 1 }
        );
        assert_eq!(verify(&signed, None, &["other"]), Verification::Invalid);
        assert_eq!(
            verify(&[("x-jenkins-token", "")], None, &[""]),
            Verification::Invalid
        );
        assert_eq!(verify(&[], None, &["x"]), Verification::Missing);
        let mixed = [
            ("x-jenkins-token", "wrong"),
            ("authorization", "Bearer a b+c/d"),
        ];
        assert_eq!(verify(&mixed, None, &secret), valid);
    }

    #[test]
    fn completed_failure() {
        let e = testkit::event(
            Vendor::Jenkins,
            &[],
            &fixture("jenkins-completed-failure.json"),
        );
        assert_eq!(
            (e.event_type, e.action),
            (EventType::Build, Some(Action::Failed))
        );
        assert_eq!(e.vendor_event, "build.COMPLETED");
        assert_eq!(e.branch.as_deref(), Some("main"));
        assert_eq!(e.delivery_id.as_deref(), Some("widgets-ci:57:COMPLETED"));
        let build = e.build.as_ref().unwrap();
        assert_eq!(build.number.as_deref(), Some("57"));
        assert_eq!(build.status.as_deref(), Some("FAILURE"));
        let stored = serde_json::to_string(&e).unwrap();
        assert!(
            !stored.contains("must-not-leak"),
            "build parameters leaked: {stored}"
        );
    }

    #[test]
    fn started_phase_without_status_and_odd_bodies() {
        let body = br#"{"name": "j", "build": {"number": "3", "phase": "STARTED"}}"#;
        let e = testkit::event(Vendor::Jenkins, &[], body);
        assert_eq!(e.action, Some(Action::Started));
        assert_eq!(e.build.unwrap().status.as_deref(), Some("STARTED"));
        let empty = testkit::event(Vendor::Jenkins, &[], b"{}");
        assert_eq!(empty.event_type, EventType::Other);
        assert!(matches!(
            testkit::parse_with(Vendor::Jenkins, &[], b""),
            Err(ParseError::InvalidJson(_))
        ));
    }

    #[test]
    fn remote_prefixes_are_dropped() {
        let cases = [
            ("origin/master", "master"),
            ("refs/remotes/upstream/feature/x", "feature/x"),
            ("refs/heads/main", "main"),
            ("release/1.0", "release/1.0"),
        ];
        for (input, expected) in cases {
            assert_eq!(local_branch(input), expected);
        }
    }
}
