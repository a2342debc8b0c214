//! What runbooks can react to and do: the payload fields of each trigger event (after
//! enrichment), the config fields of each action type, and the operators. One table drives
//! both write-time validation and `GET /api/v1/runbooks/catalog`.
//!
//! Pure data and lookups: this module never reads the store and never runs anything.

use domain::condition::Operator;
use serde::Serialize;

/// The kind of a payload field, as the catalog names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    String,
    Integer,
    Number,
    Boolean,
    Timestamp,
    Severity,
    /// Elements are reached by index (`tags.0`).
    Array,
    /// Free-form: any deeper path is accepted.
    Object,
}

#[derive(Clone, Debug, Serialize)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
}

#[derive(Clone, Debug, Serialize)]
pub struct TriggerSpec {
    pub event: &'static str,
    pub fields: Vec<FieldSpec>,
}

/// The kind of an action config value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigKind {
    /// A string, rendered as a template.
    Template,
    /// A template, or a JSON value whose strings are templates.
    TemplateOrJson,
    /// An object of header names to templates.
    Headers,
    /// A list of templates (or one).
    TemplateList,
    Integer,
    /// An integer or a list of integers.
    StatusList,
    Duration,
    Conditions,
    /// One of `choices`.
    Choice,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConfigField {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: ConfigKind,
    pub required: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [&'static str],
    pub description: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionSpec {
    #[serde(rename = "type")]
    pub action_type: &'static str,
    pub group: &'static str,
    /// False for action types this server knows but cannot run yet; a runbook using one is
    /// rejected on write.
    pub available: bool,
    pub config: Vec<ConfigField>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Catalog {
    pub triggers: Vec<TriggerSpec>,
    pub actions: Vec<ActionSpec>,
    pub operators: Vec<&'static str>,
}

/// The 16 trigger events.
pub const EVENTS: [&str; 16] = [
    "ci_event_received",
    "scan_started",
    "scan_finished",
    "scan_failed",
    "remote_scan_completed",
    "finding_created",
    "finding_status_changed",
    "finding_severity_changed",
    "finding_assigned",
    "finding_reopened",
    "pr_gate_evaluated",
    "sbom_imported",
    "asset_created",
    "integration_sync_completed",
    "integration_sync_failed",
    "runbook_breaker_tripped",
];

use FieldKind as K;

/// Adds a list of fields under a prefix.
type AddFields<'a> = dyn FnMut(&str, &[(&str, FieldKind)]) + 'a;

const FINDING: &[(&str, FieldKind)] = &[
    ("id", K::String),
    ("fingerprint", K::String),
    ("scan_id", K::String),
    ("repo_url", K::String),
    ("tool", K::String),
    ("rule_id", K::String),
    ("title", K::String),
    ("description", K::String),
    ("severity", K::Severity),
    ("vendor_severity", K::String),
    ("status", K::String),
    ("kind", K::String),
    ("file_path", K::String),
    ("line", K::Integer),
    ("package_name", K::String),
    ("package_version", K::String),
    ("purl", K::String),
    ("vulnerability_ids", K::Array),
    ("cvss_score", K::Number),
    ("tags", K::Array),
    ("assignee", K::String),
    ("asset_id", K::String),
    ("first_seen_at", K::Timestamp),
    ("last_seen_at", K::Timestamp),
];

const ASSET: &[(&str, FieldKind)] = &[
    ("id", K::String),
    ("kind", K::String),
    ("name", K::String),
    ("repo_url", K::String),
    ("criticality", K::Integer),
    ("tags", K::Array),
    ("created_at", K::Timestamp),
    ("updated_at", K::Timestamp),
];

const SCAN: &[(&str, FieldKind)] = &[
    ("id", K::String),
    ("integration_id", K::String),
    ("tool", K::String),
    ("format", K::String),
    ("status", K::String),
    ("external_scan_id", K::String),
    ("started_at", K::Timestamp),
    ("finished_at", K::Timestamp),
    ("counts", K::Object),
    ("new_counts", K::Object),
    ("fixed_count", K::Integer),
    ("baseline_scan_id", K::String),
    ("commit_sha", K::String),
    ("branch_name", K::String),
    ("pr_number", K::Integer),
    ("target_branch", K::String),
    ("repo_url", K::String),
    ("asset_id", K::String),
    ("triggered_by", K::String),
];

/// The CI context a scan event carries flat.
const CI_CONTEXT: &[(&str, FieldKind)] = &[
    ("scan_id", K::String),
    ("tool", K::String),
    ("integration_id", K::String),
    ("repo_url", K::String),
    ("branch_name", K::String),
    ("commit_sha", K::String),
    ("pr_number", K::Integer),
    ("target_branch", K::String),
];

const CI_EVENT: &[(&str, FieldKind)] = &[
    ("id", K::String),
    ("integration_id", K::String),
    ("vendor", K::String),
    ("received_at", K::Timestamp),
    ("vendor_event", K::String),
    ("event_type", K::String),
    ("action", K::String),
    ("repo", K::String),
    ("repo_url", K::String),
    ("branch", K::String),
    ("target_branch", K::String),
    ("tag", K::String),
    ("commit_sha", K::String),
    ("before_sha", K::String),
    ("merge_commit", K::String),
    ("pr_number", K::Integer),
    ("actor", K::String),
    ("delivery_id", K::String),
    ("build", K::Object),
    ("details", K::Object),
    ("signature_valid", K::Boolean),
    ("action_taken", K::String),
];

const SCAN_FINISHED: &[(&str, FieldKind)] = &[
    ("status", K::String),
    ("critical_count", K::Integer),
    ("high_count", K::Integer),
    ("medium_count", K::Integer),
    ("low_count", K::Integer),
    ("info_count", K::Integer),
    ("total_count", K::Integer),
    ("new_critical_count", K::Integer),
    ("new_high_count", K::Integer),
    ("new_medium_count", K::Integer),
    ("new_low_count", K::Integer),
    ("new_info_count", K::Integer),
    ("new_total_count", K::Integer),
    ("new_counts", K::Object),
    ("fixed_count", K::Integer),
    ("baseline_scan_id", K::String),
];

/// The payload fields of an event after enrichment; `None` for an unknown event.
pub fn event_fields(event: &str) -> Option<Vec<FieldSpec>> {
    let mut fields = Vec::new();
    let mut add = |prefix: &str, list: &[(&str, FieldKind)]| {
        for (name, kind) in list {
            let name = if prefix.is_empty() {
                (*name).to_owned()
            } else {
                format!("{prefix}.{name}")
            };
            fields.push(FieldSpec { name, kind: *kind });
        }
    };
    let scan_and_asset = |add: &mut AddFields<'_>| {
        add("scan", SCAN);
        add("asset", ASSET);
    };
    let finding = |add: &mut AddFields<'_>| {
        add("", &[("scan_id", K::String)]);
        add("finding", FINDING);
        add("scan", SCAN);
        add("asset", ASSET);
    };
    match event {
        "ci_event_received" => {
            add("", CI_EVENT);
            add("asset", ASSET);
        }
        "scan_started" => {
            add("", CI_CONTEXT);
            scan_and_asset(&mut add);
        }
        "scan_finished" => {
            add("", CI_CONTEXT);
            add("", SCAN_FINISHED);
            scan_and_asset(&mut add);
        }
        "scan_failed" => {
            add("", CI_CONTEXT);
            add("", &[("error", K::String)]);
            scan_and_asset(&mut add);
        }
        "remote_scan_completed" => {
            add(
                "",
                &[
                    ("scan_id", K::String),
                    ("integration_id", K::String),
                    ("external_scan_id", K::String),
                ],
            );
            scan_and_asset(&mut add);
        }
        "finding_created" | "finding_reopened" => finding(&mut add),
        "finding_status_changed" => {
            finding(&mut add);
            add("", &[("old_status", K::String), ("new_status", K::String)]);
        }
        "finding_severity_changed" => {
            finding(&mut add);
            add(
                "",
                &[("old_severity", K::Severity), ("new_severity", K::Severity)],
            );
        }
        "finding_assigned" => {
            finding(&mut add);
            add("", &[("assignee", K::String)]);
        }
        "pr_gate_evaluated" => {
            add(
                "",
                &[
                    ("state", K::String),
                    ("repo", K::String),
                    ("repo_url", K::String),
                    ("pr_number", K::Integer),
                    ("commit_sha", K::String),
                    ("new_counts", K::Object),
                    ("scan_id", K::String),
                ],
            );
            scan_and_asset(&mut add);
        }
        "sbom_imported" => add("", &[("sbom", K::Object)]),
        "asset_created" => add("asset", ASSET),
        "integration_sync_completed" => add(
            "",
            &[
                ("integration_id", K::String),
                ("scans_imported", K::Integer),
            ],
        ),
        "integration_sync_failed" => {
            add("", &[("integration_id", K::String), ("error", K::String)])
        }
        "runbook_breaker_tripped" => add(
            "",
            &[
                ("runbook_id", K::String),
                ("runbook_name", K::String),
                ("consecutive_failures", K::Integer),
            ],
        ),
        _ => return None,
    }
    Some(fields)
}

/// True when `path` names a field of `fields`, an element of an array field, or anything under
/// a free-form object field.
pub fn field_known(fields: &[FieldSpec], path: &str) -> bool {
    fields.iter().any(|field| {
        if field.name == path {
            return true;
        }
        let Some(rest) = path
            .strip_prefix(field.name.as_str())
            .and_then(|r| r.strip_prefix('.'))
        else {
            return false;
        };
        match field.kind {
            FieldKind::Object => true,
            FieldKind::Array => rest
                .split('.')
                .next()
                .is_some_and(|i| i.parse::<usize>().is_ok()),
            _ => false,
        }
    })
}

fn field(
    name: &'static str,
    kind: ConfigKind,
    required: bool,
    description: &'static str,
) -> ConfigField {
    ConfigField {
        name,
        kind,
        required,
        choices: &[],
        description,
    }
}

fn choice(name: &'static str, choices: &'static [&'static str], desc: &'static str) -> ConfigField {
    ConfigField {
        name,
        kind: ConfigKind::Choice,
        required: true,
        choices,
        description: desc,
    }
}

/// Finding statuses an action may set.
pub const STATUSES: &[&str] = &[
    "open",
    "in_progress",
    "fixed",
    "accepted_risk",
    "false_positive",
];
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];
pub const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The config schema of every action type, in catalog order.
pub fn actions() -> Vec<ActionSpec> {
    use ConfigKind as C;
    let finding_id = || {
        field(
            "finding_id",
            C::Template,
            false,
            "defaults to {{ finding.id }}",
        )
    };
    let asset_id = || field("asset_id", C::Template, false, "defaults to {{ asset.id }}");
    let spec = |action_type, group, config| ActionSpec {
        action_type,
        group,
        available: true,
        config,
    };
    let later = |action_type, group| ActionSpec {
        action_type,
        group,
        available: false,
        config: Vec::new(),
    };
    vec![
        spec(
            "send_webhook",
            "notification",
            vec![
                field("url", C::Template, true, "the receiver"),
                field(
                    "secret",
                    C::Template,
                    false,
                    "signing secret (whsec_ base64 or raw); unsigned without one",
                ),
                field(
                    "body",
                    C::TemplateOrJson,
                    false,
                    "defaults to {type, payload} of the event",
                ),
                field("headers", C::Headers, false, "extra headers"),
            ],
        ),
        spec(
            "send_email",
            "notification",
            vec![
                field("smtp_host", C::Template, true, "SMTP server"),
                field("smtp_port", C::Integer, false, "defaults to 25"),
                field("from", C::Template, true, "sender address"),
                field("to", C::TemplateList, true, "one address or a list"),
                field("subject", C::Template, true, "subject line"),
                field("body", C::Template, true, "plain-text body"),
            ],
        ),
        spec(
            "send_slack_message",
            "notification",
            vec![
                field("text", C::Template, true, "message text"),
                field("webhook_url", C::Template, false, "an incoming webhook URL"),
                field(
                    "token",
                    C::Template,
                    false,
                    "a bot token, for chat.postMessage",
                ),
                field("channel", C::Template, false, "with token: the channel"),
                field(
                    "api_base_url",
                    C::Template,
                    false,
                    "defaults to https://slack.com/api",
                ),
            ],
        ),
        spec(
            "send_teams_message",
            "notification",
            vec![
                field("webhook_url", C::Template, true, "an incoming webhook URL"),
                field("text", C::Template, true, "message text"),
                field("title", C::Template, false, "message title"),
            ],
        ),
        spec(
            "http_request",
            "notification",
            vec![
                ConfigField {
                    required: false,
                    ..choice("method", METHODS, "defaults to POST")
                },
                field("url", C::Template, true, "the endpoint"),
                field("headers", C::Headers, false, "request headers"),
                field(
                    "body",
                    C::TemplateOrJson,
                    false,
                    "a template, or JSON sent as JSON",
                ),
                field(
                    "expected_status",
                    C::StatusList,
                    false,
                    "defaults to any 2xx",
                ),
            ],
        ),
        spec(
            "change_finding_status",
            "finding",
            vec![choice("status", STATUSES, "the new status"), finding_id()],
        ),
        spec(
            "change_finding_severity",
            "finding",
            vec![
                choice("severity", SEVERITIES, "the new severity"),
                finding_id(),
            ],
        ),
        spec(
            "add_finding_tags",
            "finding",
            vec![
                field("tags", C::TemplateList, true, "tags to add"),
                finding_id(),
            ],
        ),
        spec(
            "assign_finding",
            "finding",
            vec![field("assignee", C::Template, true, "who"), finding_id()],
        ),
        spec(
            "append_comment",
            "finding",
            vec![
                field("body", C::Template, true, "comment text"),
                finding_id(),
            ],
        ),
        later("create_jira_issue", "itsm"),
        later("create_servicenow_ticket", "itsm"),
        later("update_ticket_status", "itsm"),
        later("comment_on_ticket", "itsm"),
        later("trigger_scan", "platform"),
        later("generate_report", "platform"),
        later("integration_sync", "platform"),
        spec(
            "update_asset_criticality",
            "asset",
            vec![
                field("criticality", C::Integer, true, "1 (lowest) to 5"),
                asset_id(),
            ],
        ),
        spec(
            "add_asset_tags",
            "asset",
            vec![
                field("tags", C::TemplateList, true, "tags to add"),
                asset_id(),
            ],
        ),
        spec(
            "sleep",
            "flow_control",
            vec![field("duration", C::Duration, true, "such as 10m")],
        ),
        spec(
            "await_signal",
            "flow_control",
            vec![
                field("name", C::Template, true, "the signal's name"),
                field("timeout", C::Duration, true, "such as 7d"),
            ],
        ),
        spec(
            "gate",
            "flow_control",
            vec![field(
                "conditions",
                C::Conditions,
                true,
                "false ends the run skipped",
            )],
        ),
    ]
}

/// The action spec of a type name.
pub fn action(action_type: &str) -> Option<ActionSpec> {
    actions().into_iter().find(|a| a.action_type == action_type)
}

/// The whole catalog.
pub fn catalog() -> Catalog {
    Catalog {
        triggers: EVENTS
            .iter()
            .map(|event| TriggerSpec {
                event,
                fields: event_fields(event).unwrap_or_default(),
            })
            .collect(),
        actions: actions(),
        operators: Operator::ALL.iter().map(|op| op.as_str()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(event: &str, path: &str, expected: bool) {
        let fields = event_fields(event).expect("known event");
        assert_eq!(field_known(&fields, path), expected, "{event}: {path}");
    }

    #[test]
    fn enriched_fields_are_known() {
        check("finding_created", "finding.severity", true);
        check("finding_created", "asset.criticality", true);
        check("finding_created", "finding.tags.0", true);
        check("finding_created", "finding.tags.x", false);
        check("finding_created", "finding.nope", false);
        check("scan_finished", "scan.branch_name", true);
        check("scan_finished", "critical_count", true);
        check("scan_finished", "new_counts.critical", true);
        check("ci_event_received", "details.hook_id", true);
        check("asset_created", "finding.id", false);
    }

    #[test]
    fn every_event_has_fields_and_unknown_events_none() {
        for event in EVENTS {
            assert!(!event_fields(event).unwrap().is_empty(), "{event}");
        }
        assert!(event_fields("nope").is_none());
        assert_eq!(actions().len(), 22);
    }
}
