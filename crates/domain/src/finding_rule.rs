//! Finding rules: a condition group over `{finding, asset}` and the changes to make when it
//! holds (`set_severity`, `add_tags`, `set_status`, `assign`), applied in priority order at
//! import.
//!
//! This module owns the shape of the changes and how a list of rules rewrites one finding,
//! reporting each change with the rule that made it. It is pure: it never stores anything and
//! never reads the clock (callers pass `now`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Severity;
use crate::condition::CompiledGroup;
use crate::scan::FindingStatus;

/// What a rule does to a finding it matches. At least one change must be set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_status: Option<FindingStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign: Option<String>,
}

impl RuleChanges {
    pub fn is_empty(&self) -> bool {
        self.set_severity.is_none()
            && self.add_tags.is_empty()
            && self.set_status.is_none()
            && self.assign.is_none()
    }
}

/// A rule ready to apply.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: String,
    pub conditions: CompiledGroup,
    pub changes: RuleChanges,
}

/// The parts of a finding that rules may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTarget {
    pub severity: Severity,
    pub tags: Vec<String>,
    /// `None` until a rule sets one: the import decides the status otherwise.
    pub status: Option<FindingStatus>,
    pub assignee: Option<String>,
}

/// One change a rule made, for the finding's history.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedChange {
    pub rule: String,
    pub field: &'static str,
    pub old_value: Value,
    pub new_value: Value,
}

/// Applies every matching rule in order to `target`. `payload` is `{finding, asset}`; it is
/// kept up to date as rules change the finding, so a later rule sees what an earlier one did.
/// Only real changes are reported: setting a value the finding already has records nothing.
pub fn apply_rules(
    rules: &[Rule],
    target: &mut RuleTarget,
    payload: &mut Value,
    now: DateTime<Utc>,
) -> Vec<AppliedChange> {
    let mut applied = Vec::new();
    for rule in rules {
        if !rule.conditions.evaluate(payload, now) {
            continue;
        }
        let before = applied.len();
        apply_one(rule, target, &mut applied);
        if applied.len() > before
            && let Some(finding) = payload.get_mut("finding").and_then(Value::as_object_mut)
        {
            finding.insert("severity".into(), json!(target.severity));
            finding.insert("tags".into(), json!(target.tags));
            if let Some(status) = target.status {
                finding.insert("status".into(), json!(status));
            }
            finding.insert("assignee".into(), json!(target.assignee));
        }
    }
    applied
}

fn apply_one(rule: &Rule, target: &mut RuleTarget, applied: &mut Vec<AppliedChange>) {
    let mut record = |field, old_value, new_value| {
        applied.push(AppliedChange {
            rule: rule.name.clone(),
            field,
            old_value,
            new_value,
        });
    };
    let changes = &rule.changes;
    if let Some(severity) = changes.set_severity
        && severity != target.severity
    {
        record("severity", json!(target.severity), json!(severity));
        target.severity = severity;
    }
    let added: Vec<&String> = changes
        .add_tags
        .iter()
        .filter(|tag| !target.tags.contains(tag))
        .collect();
    if !added.is_empty() {
        let old = json!(target.tags);
        target.tags.extend(added.into_iter().cloned());
        record("tags", old, json!(target.tags));
    }
    if let Some(status) = changes.set_status
        && Some(status) != target.status
    {
        record("status", json!(target.status), json!(status));
        target.status = Some(status);
    }
    if let Some(assignee) = &changes.assign
        && Some(assignee) != target.assignee.as_ref()
    {
        record("assignee", json!(target.assignee), json!(assignee));
        target.assignee = Some(assignee.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::ConditionGroup;

    fn rule(name: &str, conditions: Value, changes: Value) -> Rule {
        let group: ConditionGroup = serde_json::from_value(conditions).unwrap();
        Rule {
            name: name.into(),
            conditions: group.compile().unwrap(),
            changes: serde_json::from_value(changes).unwrap(),
        }
    }

    fn check(rules: &[Rule], severity: Severity, expected: (Severity, &[&str], usize)) {
        let mut target = RuleTarget {
            severity,
            tags: vec!["sast".into()],
            status: None,
            assignee: None,
        };
        let mut payload = json!({
            "finding": {"severity": severity, "rule_id": "R1", "tags": ["sast"]},
            "asset": {"criticality": 5}
        });
        let applied = apply_rules(rules, &mut target, &mut payload, Utc::now());
        assert_eq!(target.severity, expected.0);
        assert_eq!(target.tags, expected.1);
        assert_eq!(applied.len(), expected.2, "{applied:?}");
    }

    #[test]
    fn rules_apply_in_order_and_see_earlier_changes() {
        let raise = rule(
            "raise on critical assets",
            json!({"op": "and", "conditions": [
                {"field": "asset.criticality", "operator": "gte", "value": 4},
                {"field": "finding.severity", "operator": "eq", "value": "medium"}]}),
            json!({"set_severity": "high"}),
        );
        let tag = rule(
            "tag high",
            json!({"op": "and", "conditions": [
                {"field": "finding.severity", "operator": "gte", "value": "high"}]}),
            json!({"add_tags": ["urgent", "sast"]}),
        );
        check(
            &[raise.clone(), tag.clone()],
            Severity::Medium,
            (Severity::High, &["sast", "urgent"], 2),
        );
        check(
            &[tag.clone(), raise.clone()],
            Severity::Medium,
            (Severity::High, &["sast"], 1),
        );
        check(&[raise, tag], Severity::Low, (Severity::Low, &["sast"], 0));
    }

    #[test]
    fn setting_the_same_value_records_nothing() {
        let keep = rule(
            "keep high",
            json!({"op": "and", "conditions": []}),
            json!({"set_severity": "high", "assign": "alice", "set_status": "in_progress"}),
        );
        let mut target = RuleTarget {
            severity: Severity::High,
            tags: vec![],
            status: None,
            assignee: Some("alice".into()),
        };
        let mut payload = json!({"finding": {}, "asset": {}});
        let applied = apply_rules(&[keep], &mut target, &mut payload, Utc::now());
        assert_eq!(applied.len(), 1);
        assert_eq!(applied[0].field, "status");
        assert_eq!(payload["finding"]["status"], "in_progress");
    }

    #[test]
    fn empty_changes_are_detected() {
        assert!(RuleChanges::default().is_empty());
        assert!(serde_json::from_value::<RuleChanges>(json!({"bogus": 1})).is_err());
    }
}
