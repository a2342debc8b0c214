//! Integration configuration, validated per archetype with vendor-specific additions.
//!
//! Validation is pure: it names every bad field and never touches the network (whether the
//! credentials work is the connectivity test's job).

use serde_json::{Map, Value};

use crate::severity::Severity;
use crate::vendor::{Archetype, Vendor};

/// One problem with one field, as `path: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
    ConfigProblem {
        field: field.into(),
        message: message.into(),
    }
}

/// Keys every archetype accepts.
const COMMON_KEYS: &[&str] = &["api_base_url", "auth", "severity_map", "min_severity"];

/// The keys an archetype adds to the common ones.
fn archetype_keys(archetype: Archetype) -> &'static [&'static str] {
    match archetype {
        Archetype::CiWebhook => &["auto_scan", "scm_integration_id", "project", "repository"],
        Archetype::PullOnly => &["schedule", "projects", "project_id", "region", "tenant"],
        Archetype::RemoteScanner => &["schedule", "scan_template", "targets"],
        Archetype::Itsm => &["project", "issue_type", "table", "instance"],
        Archetype::Notification => &[
            "webhook_url",
            "channel",
            "host",
            "port",
            "from",
            "to",
            "starttls",
        ],
    }
}

/// Checks an integration's `config` for its vendor. Returns every problem found.
pub fn validate_config(vendor: Vendor, config: &Value) -> Vec<ConfigProblem> {
    let Some(map) = config.as_object() else {
        return vec![problem("config", "must be a JSON object")];
    };
    let mut problems = Vec::new();
    let allowed = archetype_keys(vendor.archetype());
    for key in map.keys() {
        if !COMMON_KEYS.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
            problems.push(problem(
                format!("config.{key}"),
                format!(
                    "unknown key for a {} integration",
                    vendor.archetype().as_str()
                ),
            ));
        }
    }

    if let Some(url) = map.get("api_base_url") {
        check_url("config.api_base_url", url, &mut problems);
    }
    if let Some(auth) = map.get("auth") {
        check_auth(auth, &mut problems);
    }
    if let Some(severity_map) = map.get("severity_map") {
        check_severity_map(severity_map, &mut problems);
    }
    if let Some(min) = map.get("min_severity") {
        check_severity("config.min_severity", min, &mut problems);
    }
    if let Some(scm) = map.get("scm_integration_id") {
        if !matches!(vendor, Vendor::Jenkins | Vendor::Bamboo) {
            problems.push(problem(
                "config.scm_integration_id",
                "only jenkins and bamboo report through an SCM integration",
            ));
        } else if !is_uuid(scm) {
            problems.push(problem(
                "config.scm_integration_id",
                "must be an integration id",
            ));
        }
    }
    if let Some(auto_scan) = map.get("auto_scan") {
        check_auto_scan(auto_scan, &mut problems);
    }
    problems
}

fn is_uuid(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .is_some()
}

fn is_severity(value: &Value) -> bool {
    value
        .as_str()
        .and_then(|s| s.parse::<Severity>().ok())
        .is_some()
}

fn check_url(field: &str, value: &Value, problems: &mut Vec<ConfigProblem>) {
    let ok = value.as_str().is_some_and(|s| {
        (s.starts_with("https://") || s.starts_with("http://"))
            && s.len() > "https://".len()
            && !s.contains(char::is_whitespace)
    });
    if !ok {
        problems.push(problem(field, "must be an http:// or https:// URL"));
    }
}

fn check_auth(auth: &Value, problems: &mut Vec<ConfigProblem>) {
    let Some(map) = auth.as_object() else {
        problems.push(problem("config.auth", "must be an object"));
        return;
    };
    let known = [
        "token",
        "username",
        "password",
        "client_id",
        "client_secret",
        "api_key",
    ];
    for (key, value) in map {
        if !known.contains(&key.as_str()) {
            problems.push(problem(
                format!("config.auth.{key}"),
                "unknown credential field",
            ));
        } else if !value.is_string() {
            problems.push(problem(format!("config.auth.{key}"), "must be a string"));
        }
    }
    if map.contains_key("password") && !map.contains_key("username") {
        problems.push(problem(
            "config.auth.username",
            "a password needs a username",
        ));
    }
}

fn check_severity(field: &str, value: &Value, problems: &mut Vec<ConfigProblem>) {
    if !is_severity(value) {
        problems.push(problem(
            field,
            "must be one of critical, high, medium, low, info",
        ));
    }
}

fn check_severity_map(value: &Value, problems: &mut Vec<ConfigProblem>) {
    let Some(map) = value.as_object() else {
        problems.push(problem(
            "config.severity_map",
            "must be an object of vendor word to severity",
        ));
        return;
    };
    for (key, severity) in map {
        check_severity(&format!("config.severity_map.{key}"), severity, problems);
    }
}

fn check_auto_scan(value: &Value, problems: &mut Vec<ConfigProblem>) {
    let Some(map) = value.as_object() else {
        problems.push(problem("config.auto_scan", "must be an object"));
        return;
    };
    let known = ["enabled", "branches", "pipeline_triggers", "scans", "gate"];
    for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.push(problem(format!("config.auto_scan.{key}"), "unknown key"));
    }
    if map.get("enabled").is_some_and(|v| !v.is_boolean()) {
        problems.push(problem("config.auto_scan.enabled", "must be true or false"));
    }
    if let Some(branches) = map.get("branches") {
        let ok = branches
            .as_array()
            .is_some_and(|a| a.iter().all(|b| b.is_string()));
        if !ok {
            problems.push(problem(
                "config.auto_scan.branches",
                "must be an array of globs",
            ));
        }
    }
    for list in ["pipeline_triggers", "scans"] {
        check_id_list(map, list, problems);
    }
    if let Some(gate) = map.get("gate") {
        check_gate(gate, problems);
    }
}

fn check_id_list(map: &Map<String, Value>, list: &str, problems: &mut Vec<ConfigProblem>) {
    let Some(value) = map.get(list) else { return };
    let Some(items) = value.as_array() else {
        problems.push(problem(
            format!("config.auto_scan.{list}"),
            "must be an array",
        ));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if !item.get("integration_id").is_some_and(is_uuid) {
            problems.push(problem(
                format!("config.auto_scan.{list}[{i}].integration_id"),
                "must be an integration id",
            ));
        }
    }
}

fn check_gate(gate: &Value, problems: &mut Vec<ConfigProblem>) {
    let Some(map) = gate.as_object() else {
        problems.push(problem("config.auto_scan.gate", "must be an object"));
        return;
    };
    for list in ["block_on_new", "warn_on_new"] {
        let Some(value) = map.get(list) else { continue };
        let field = format!("config.auto_scan.gate.{list}");
        match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_severity(&format!("{field}[{i}]"), item, problems);
                }
            }
            None => problems.push(problem(field, "must be an array of severities")),
        }
    }
    if map.get("pr_comment").is_some_and(|v| !v.is_boolean()) {
        problems.push(problem(
            "config.auto_scan.gate.pr_comment",
            "must be true or false",
        ));
    }
    if let Some(v) = map.get("no_baseline")
        && !matches!(v.as_str(), Some("all_new" | "pass"))
    {
        problems.push(problem(
            "config.auto_scan.gate.no_baseline",
            "must be all_new or pass",
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(vendor: Vendor, config: Value, expected_fields: &[&str]) {
        let fields: Vec<String> = validate_config(vendor, &config)
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, expected_fields, "config {config}");
    }

    #[test]
    fn valid_configs_pass() {
        check(Vendor::Github, json!({}), &[]);
        check(
            Vendor::Gitlab,
            json!({"api_base_url": "https://gitlab.example.com", "auth": {"token": "t"},
                   "auto_scan": {"enabled": true, "branches": ["main", "release/*"],
                     "gate": {"block_on_new": ["critical", "high"], "warn_on_new": ["medium"],
                              "pr_comment": true, "no_baseline": "pass"}},
                   "severity_map": {"High": "critical"}, "min_severity": "low"}),
            &[],
        );
        check(
            Vendor::Jenkins,
            json!({"scm_integration_id": "0190a0b4-8d5e-7c3a-9f00-000000000001"}),
            &[],
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        check(Vendor::Github, json!([]), &["config"]);
        check(Vendor::Github, json!({"colour": 1}), &["config.colour"]);
        check(
            Vendor::Github,
            json!({"api_base_url": "ftp://x"}),
            &["config.api_base_url"],
        );
        check(
            Vendor::Github,
            json!({"auto_scan": {"gate": {"block_on_new": ["severe"]}}}),
            &["config.auto_scan.gate.block_on_new[0]"],
        );
        check(
            Vendor::Github,
            json!({"min_severity": "urgent"}),
            &["config.min_severity"],
        );
        check(
            Vendor::Github,
            json!({"scm_integration_id": "0190a0b4-8d5e-7c3a-9f00-000000000001"}),
            &["config.scm_integration_id"],
        );
        check(
            Vendor::Bamboo,
            json!({"auth": {"password": "p"}, "auto_scan": {"scans": [{"project_id": "x"}]}}),
            &[
                "config.auth.username",
                "config.auto_scan.scans[0].integration_id",
            ],
        );
    }
}
