//! A runbook document (JSON or YAML) and its validation: shape, sizes, known events and action
//! types, complete action configs, condition fields that exist in each trigger's payload,
//! templates that parse and read existing fields, retry bounds. The API, the engine and
//! `pmapd runbook validate` all go through [`validate`], so they agree on what is valid.
//!
//! Pure: this module never reads the store or the clock.

use std::time::Duration;

use domain::condition::{CompiledGroup, ConditionGroup, validate_fields};
use domain::duration::parse_duration;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::catalog::{self, ConfigKind, FieldSpec};
use super::retry::{MAX_ATTEMPTS, RetryPolicy};
use super::template;

pub const MAX_TRIGGERS: usize = 20;
pub const MAX_ACTIONS: usize = 100;
/// The largest runbook document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 512 * 1024;
pub const MAX_NAME_CHARS: usize = 200;
/// The longest `sleep` or `await_signal` timeout.
pub const MAX_WAIT: Duration = Duration::from_secs(90 * 86_400);
pub const MAX_CONCURRENCY: u32 = 100;

/// One problem in a document, located by a path such as `actions[2].config.url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub field: String,
    pub message: String,
}

/// The syntax of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

/// A validated runbook, ready to match and run.
#[derive(Clone, Debug)]
pub struct Runbook {
    pub name: String,
    pub is_active: bool,
    pub triggers: Vec<Trigger>,
    pub actions: Vec<Action>,
    pub throttle_seconds: Option<u64>,
    pub concurrency_key: Option<String>,
    pub max_concurrency: u32,
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub event: String,
    pub conditions: Option<CompiledGroup>,
}

#[derive(Clone, Debug)]
pub struct Action {
    pub action_type: String,
    pub config: Map<String, Value>,
    pub retry: RetryPolicy,
    /// For `gate`: its compiled conditions.
    pub gate: Option<CompiledGroup>,
    /// For `sleep` (`duration`) and `await_signal` (`timeout`).
    pub wait: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRunbook {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    triggers: Vec<Value>,
    actions: Vec<Value>,
    #[serde(default)]
    throttle_seconds: Option<u64>,
    #[serde(default)]
    concurrency_key: Option<String>,
    #[serde(default)]
    max_concurrency: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    event: String,
    #[serde(default)]
    conditions: Option<ConditionGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    #[serde(rename = "type")]
    action_type: String,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default)]
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: u32,
    #[serde(default)]
    initial_backoff: Option<String>,
    #[serde(default)]
    max_backoff: Option<String>,
    #[serde(default)]
    factor: Option<f64>,
}

/// Reads a document into JSON, bounded in size (and, by both parsers, in nesting).
pub fn parse_document(bytes: &[u8], format: Format) -> Result<Value, Issue> {
    let issue = |message: String| Issue {
        field: "body".into(),
        message,
    };
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(issue(format!(
            "a runbook document is limited to {MAX_DOCUMENT_BYTES} bytes"
        )));
    }
    match format {
        Format::Json => serde_json::from_slice(bytes).map_err(|e| issue(e.to_string())),
        Format::Yaml => {
            if flow_depth(bytes) > MAX_YAML_FLOW_DEPTH {
                return Err(issue(format!(
                    "YAML flow collections ([ ], {{ }}) nest at most {MAX_YAML_FLOW_DEPTH} deep"
                )));
            }
            serde_norway::from_slice(bytes).map_err(|e| issue(e.to_string()))
        }
    }
}

/// The YAML parser's time grows with the square of the nesting of flow collections, so they
/// are counted before it runs (quoted text and comments aside).
const MAX_YAML_FLOW_DEPTH: usize = 64;

/// The deepest nesting of `[`/`{` in a YAML text, skipping quoted scalars and comments. A
/// bracket inside a plain scalar counts too, which only errs on the side of refusing.
fn flow_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote = None;
    let mut comment = false;
    let mut escaped = false;
    let mut previous = b'\n';
    for &byte in bytes {
        if escaped {
            escaped = false;
            continue;
        }
        match (quote, comment, byte) {
            (_, true, b'\n') => comment = false,
            (_, true, _) => {}
            (Some(b'"'), _, b'\\') => escaped = true,
            (Some(q), _, b) if b == q => quote = None,
            (Some(_), _, _) => {}
            (None, _, b'#') if previous.is_ascii_whitespace() => comment = true,
            (None, _, b'"' | b'\'') => quote = Some(byte),
            (None, _, b'[' | b'{') => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            (None, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = byte;
    }
    deepest
}

/// Validates a document, reporting every problem found.
pub fn validate(document: &Value) -> Result<Runbook, Vec<Issue>> {
    let mut issues = Vec::new();
    let issues = &mut issues;

    let raw: RawRunbook = match serde_json::from_value(document.clone()) {
        Ok(raw) => raw,
        Err(err) => {
            let field = err
                .to_string()
                .split('`')
                .nth(1)
                .map(str::to_owned)
                .or_else(|| mistyped_key(document))
                .unwrap_or_else(|| "body".into());
            push(issues, field, err.to_string());
            return Err(std::mem::take(issues));
        }
    };
    if raw.name.trim().is_empty() || raw.name.chars().count() > MAX_NAME_CHARS {
        push(
            issues,
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters"),
        );
    }
    if raw.description.as_ref().is_some_and(|d| d.len() > 10_000) {
        push(issues, "description", "at most 10000 bytes");
    }
    let sizes_ok = check_count(issues, "triggers", raw.triggers.len(), MAX_TRIGGERS)
        & check_count(issues, "actions", raw.actions.len(), MAX_ACTIONS);
    if !sizes_ok {
        return Err(std::mem::take(issues));
    }

    let triggers = parse_triggers(&raw.triggers, issues);
    let schemas: Vec<(String, Vec<FieldSpec>)> = triggers
        .iter()
        .filter_map(|(_, event, _)| Some((event.clone(), catalog::event_fields(event)?)))
        .collect();
    let scope = Scope {
        schemas: &schemas,
        actions_before: 0,
    };

    let mut compiled_triggers = Vec::new();
    for (i, event, group) in triggers {
        let Some(fields) = catalog::event_fields(&event) else {
            continue;
        };
        let conditions = group.and_then(|group| {
            let known = |path: &str| catalog::field_known(&fields, path);
            match validate_fields(&group, &known) {
                Ok(()) => group.compile().ok(),
                Err(errors) => {
                    for e in errors {
                        push(
                            issues,
                            join_path(&format!("triggers[{i}].conditions"), &e.path),
                            e.message,
                        );
                    }
                    None
                }
            }
        });
        compiled_triggers.push(Trigger { event, conditions });
    }

    if let Some(key) = &raw.concurrency_key {
        check_template(issues, "concurrency_key".into(), key, &scope);
    }
    if raw
        .max_concurrency
        .is_some_and(|n| n == 0 || n > MAX_CONCURRENCY)
    {
        push(
            issues,
            "max_concurrency",
            format!("must be 1 to {MAX_CONCURRENCY}"),
        );
    }
    if raw.throttle_seconds.is_some_and(|s| s > 366 * 86_400) {
        push(issues, "throttle_seconds", "at most a year");
    }

    let mut actions = Vec::new();
    for (i, value) in raw.actions.iter().enumerate() {
        let scope = Scope {
            actions_before: i,
            ..scope
        };
        if let Some(action) = parse_action(i, value, &scope, issues) {
            actions.push(action);
        }
    }

    if !issues.is_empty() {
        return Err(std::mem::take(issues));
    }
    Ok(Runbook {
        name: raw.name,
        is_active: raw.is_active.unwrap_or(true),
        triggers: compiled_triggers,
        actions,
        throttle_seconds: raw.throttle_seconds.filter(|s| *s > 0),
        concurrency_key: raw.concurrency_key,
        max_concurrency: raw.max_concurrency.unwrap_or(1),
    })
}

/// The top-level key whose value has the wrong type (serde's message does not name it).
fn mistyped_key(document: &Value) -> Option<String> {
    let map = document.as_object()?;
    map.iter()
        .find(|(key, value)| {
            let fits = match key.as_str() {
                "name" => value.is_string(),
                "description" | "concurrency_key" => value.is_string() || value.is_null(),
                "is_active" => value.is_boolean() || value.is_null(),
                "triggers" | "actions" => value.is_array(),
                "throttle_seconds" | "max_concurrency" => value.is_u64() || value.is_null(),
                _ => true,
            };
            !fits
        })
        .map(|(key, _)| key.clone())
}

fn check_count(issues: &mut Vec<Issue>, field: &str, count: usize, max: usize) -> bool {
    if count == 0 || count > max {
        push(
            issues,
            field,
            format!("must hold 1 to {max} entries, not {count}"),
        );
        return false;
    }
    true
}

fn parse_triggers(
    values: &[Value],
    issues: &mut Vec<Issue>,
) -> Vec<(usize, String, Option<ConditionGroup>)> {
    let mut triggers = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match serde_json::from_value::<RawTrigger>(value.clone()) {
            Ok(t) if catalog::event_fields(&t.event).is_none() => {
                push(
                    issues,
                    format!("triggers[{i}].event"),
                    format!("unknown event {:?}", t.event),
                );
            }
            Ok(t) => triggers.push((i, t.event, t.conditions)),
            Err(err) => push(issues, format!("triggers[{i}]"), err.to_string()),
        }
    }
    triggers
}

/// What a template or gate at some point of a runbook may read: the payload fields of every
/// trigger, the outputs of earlier actions, signals received, the event's name.
#[derive(Clone, Copy)]
struct Scope<'a> {
    schemas: &'a [(String, Vec<FieldSpec>)],
    actions_before: usize,
}

impl Scope<'_> {
    /// `None` when `path` may be read; otherwise why not.
    fn unknown(&self, path: &str) -> Option<String> {
        let root = path.split('.').next().unwrap_or_default();
        match root {
            "event" | "signals" | "range" | "loop" | "dict" => return None,
            "actions" => {
                let index = path.split('.').nth(1).and_then(|i| i.parse::<usize>().ok());
                return match index {
                    Some(i) if i < self.actions_before => None,
                    Some(i) => Some(format!("{path:?}: action {i} has not run at this point")),
                    None => None,
                };
            }
            _ => {}
        }
        self.schemas
            .iter()
            .find(|(_, fields)| !catalog::field_known(fields, path))
            .map(|(event, _)| format!("unknown field {path:?} (not in the payload of {event})"))
    }
}

fn check_template(issues: &mut Vec<Issue>, field: String, source: &str, scope: &Scope<'_>) {
    match template::referenced_fields(source) {
        Ok(paths) => {
            for path in paths {
                if let Some(message) = scope.unknown(&path) {
                    push(issues, field.clone(), message);
                }
            }
        }
        Err(err) => push(issues, field, err.to_string()),
    }
}

/// Checks every string inside `value` as a template.
fn check_templates_in(issues: &mut Vec<Issue>, field: &str, value: &Value, scope: &Scope<'_>) {
    match value {
        Value::String(s) => check_template(issues, field.to_owned(), s, scope),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_templates_in(issues, &format!("{field}[{i}]"), item, scope);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_templates_in(issues, &format!("{field}.{k}"), v, scope);
            }
        }
        _ => {}
    }
}

fn parse_action(
    i: usize,
    value: &Value,
    scope: &Scope<'_>,
    issues: &mut Vec<Issue>,
) -> Option<Action> {
    let here = format!("actions[{i}]");
    let raw: RawAction = match serde_json::from_value(value.clone()) {
        Ok(raw) => raw,
        Err(err) => {
            push(issues, here, err.to_string());
            return None;
        }
    };
    let Some(spec) = catalog::action(&raw.action_type) else {
        push(
            issues,
            format!("{here}.type"),
            format!("unknown action type {:?}", raw.action_type),
        );
        return None;
    };
    if !spec.available {
        push(
            issues,
            format!("{here}.type"),
            format!("{} is not available in this version", raw.action_type),
        );
        return None;
    }
    let before = issues.len();
    let mut gate = None;
    let mut wait = None;
    for key in raw.config.keys() {
        if !spec.config.iter().any(|f| f.name == key) {
            push(
                issues,
                format!("{here}.config.{key}"),
                "unknown config field",
            );
        }
    }
    for field in &spec.config {
        let path = format!("{here}.config.{}", field.name);
        let Some(value) = raw.config.get(field.name) else {
            if field.required {
                push(issues, path, "is required");
            }
            continue;
        };
        match check_config_value(field.kind, field.choices, value, &path, scope, issues) {
            Checked::Conditions(group) => gate = Some(group),
            Checked::Duration(d) => wait = Some(d),
            Checked::Plain => {}
        }
    }
    check_action_rules(&raw, &here, scope, issues);
    let retry = match &raw.retry {
        Some(r) => check_retry(r, &format!("{here}.retry"), issues),
        None => Some(RetryPolicy::default()),
    };
    if issues.len() != before {
        return None;
    }
    Some(Action {
        action_type: raw.action_type,
        config: raw.config,
        retry: retry?,
        gate,
        wait,
    })
}

enum Checked {
    Plain,
    Conditions(CompiledGroup),
    Duration(Duration),
}

fn check_config_value(
    kind: ConfigKind,
    choices: &[&str],
    value: &Value,
    path: &str,
    scope: &Scope<'_>,
    issues: &mut Vec<Issue>,
) -> Checked {
    match (kind, value) {
        (ConfigKind::Template, Value::String(s)) => check_template(issues, path.into(), s, scope),
        (ConfigKind::Template, _) => push(issues, path, "must be a string"),
        (ConfigKind::TemplateOrJson, v) => check_templates_in(issues, path, v, scope),
        (ConfigKind::Headers, Value::Object(map)) if map.values().all(Value::is_string) => {
            check_templates_in(issues, path, value, scope)
        }
        (ConfigKind::Headers, _) => {
            push(issues, path, "must be an object of header names to strings")
        }
        (ConfigKind::TemplateList, Value::String(_)) => {
            check_templates_in(issues, path, value, scope)
        }
        (ConfigKind::TemplateList, Value::Array(items))
            if !items.is_empty() && items.len() <= 100 && items.iter().all(Value::is_string) =>
        {
            check_templates_in(issues, path, value, scope)
        }
        (ConfigKind::TemplateList, _) => push(
            issues,
            path,
            "must be a string or a list of 1 to 100 strings",
        ),
        (ConfigKind::Integer, Value::Number(n)) if n.is_i64() => {}
        (ConfigKind::Integer, Value::String(s)) if template::is_template(s) => {
            check_template(issues, path.to_owned(), s, scope)
        }
        (ConfigKind::Integer, _) => push(issues, path, "must be an integer"),
        (ConfigKind::StatusList, v) => {
            let codes: Vec<&Value> = match v {
                Value::Array(items) if !items.is_empty() => items.iter().collect(),
                other => vec![other],
            };
            let valid = codes
                .iter()
                .all(|c| c.as_u64().is_some_and(|c| (100..=599).contains(&c)));
            if !valid {
                push(
                    issues,
                    path,
                    "must be an HTTP status (100-599) or a list of them",
                );
            }
        }
        (ConfigKind::Duration, Value::String(s)) => match parse_duration(s) {
            Ok(d) if d <= MAX_WAIT => return Checked::Duration(d),
            Ok(_) => push(issues, path, "at most 90d"),
            Err(err) => push(issues, path, err.to_string()),
        },
        (ConfigKind::Duration, _) => push(issues, path, "must be a duration such as 10m"),
        (ConfigKind::Conditions, v) => match serde_json::from_value::<ConditionGroup>(v.clone()) {
            Ok(group) => {
                let known = |p: &str| scope.unknown(p).is_none();
                match validate_fields(&group, &known) {
                    Ok(()) => {
                        if let Ok(compiled) = group.compile() {
                            return Checked::Conditions(compiled);
                        }
                    }
                    Err(errors) => {
                        for e in errors {
                            push(issues, join_path(path, &e.path), &e.message);
                        }
                    }
                }
            }
            Err(err) => push(issues, path, err.to_string()),
        },
        (ConfigKind::Choice, Value::String(s)) if choices.contains(&s.as_str()) => {}
        (ConfigKind::Choice, _) => push(
            issues,
            path,
            format!("must be one of {}", choices.join(", ")),
        ),
    }
    Checked::Plain
}

fn push(issues: &mut Vec<Issue>, field: impl Into<String>, message: impl Into<String>) {
    issues.push(Issue {
        field: field.into(),
        message: message.into(),
    });
}

/// Rules that span fields: Slack needs a destination; finding and asset actions need an id.
fn check_action_rules(raw: &RawAction, here: &str, scope: &Scope<'_>, issues: &mut Vec<Issue>) {
    let has = |k: &str| raw.config.contains_key(k);
    match raw.action_type.as_str() {
        "send_slack_message" if !(has("webhook_url") || (has("token") && has("channel"))) => push(
            issues,
            format!("{here}.config"),
            "needs webhook_url, or token and channel",
        ),
        t if (t.ends_with("_finding")
            || t.starts_with("change_finding")
            || t == "add_finding_tags"
            || t == "append_comment")
            && !has("finding_id")
            && scope.unknown("finding.id").is_some() =>
        {
            push(
                issues,
                format!("{here}.config.finding_id"),
                "is required: a trigger's payload has no finding",
            );
        }
        "update_asset_criticality" | "add_asset_tags" => {
            if !has("asset_id") && scope.unknown("asset.id").is_some() {
                push(
                    issues,
                    format!("{here}.config.asset_id"),
                    "is required: a trigger's payload has no asset",
                );
            }
            if let Some(n) = raw.config.get("criticality").and_then(Value::as_i64)
                && !(1..=5).contains(&n)
            {
                push(
                    issues,
                    format!("{here}.config.criticality"),
                    "must be 1 to 5",
                );
            }
        }
        _ => {}
    }
}

fn check_retry(raw: &RawRetry, here: &str, issues: &mut Vec<Issue>) -> Option<RetryPolicy> {
    let before = issues.len();
    let mut policy = RetryPolicy {
        max_attempts: raw.max_attempts,
        ..RetryPolicy::default()
    };
    if !(1..=MAX_ATTEMPTS).contains(&raw.max_attempts) {
        let message = format!("must be 1 to {MAX_ATTEMPTS}");
        push(issues, format!("{here}.max_attempts"), message);
    }
    let mut duration = |field: &str, value: &Option<String>, default: Duration| {
        let Some(text) = value else { return default };
        let problem = match parse_duration(text) {
            Ok(d) if d <= Duration::from_secs(3600) => return d,
            Ok(_) => "at most 1h".to_owned(),
            Err(err) => err.to_string(),
        };
        push(issues, format!("{here}.{field}"), problem);
        default
    };
    policy.initial_backoff = duration(
        "initial_backoff",
        &raw.initial_backoff,
        policy.initial_backoff,
    );
    policy.max_backoff = duration("max_backoff", &raw.max_backoff, policy.max_backoff);
    if let Some(factor) = raw.factor {
        if !(1.0..=10.0).contains(&factor) {
            push(issues, format!("{here}.factor"), "must be 1.0 to 10.0");
        }
        policy.factor = factor;
    }
    if policy.initial_backoff > policy.max_backoff {
        push(
            issues,
            format!("{here}.initial_backoff"),
            "must not exceed max_backoff",
        );
    }
    (issues.len() == before).then_some(policy)
}

fn join_path(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}.{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str, expected: usize) {
        assert_eq!(flow_depth(yaml.as_bytes()), expected, "{yaml}");
    }

    #[test]
    fn flow_depth_counts_brackets_outside_quotes_and_comments() {
        check("name: x\nvalue: [main, master]\n", 1);
        check("a: {b: [c, {d: e}]}", 3);
        check("text: \"[[[ \\\" [[\"\nk: 1", 0);
        check("text: '[[ '' [['\n", 0);
        check("k: v # [[[[\nl: [1]", 1);
        check(&format!("k: {}", "[".repeat(100_000)), 100_000);
    }

    #[test]
    fn deep_yaml_is_refused_before_it_is_parsed() {
        let deep = format!("name: x\nk: {}", "[".repeat(100_000));
        let issue = parse_document(deep.as_bytes(), Format::Yaml).unwrap_err();
        assert!(
            issue.message.contains("nest at most 64"),
            "{}",
            issue.message
        );
        let fine = format!("name: x\nk: {}1{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_document(fine.as_bytes(), Format::Yaml).is_ok());
    }
}
