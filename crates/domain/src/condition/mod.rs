//! Conditions without code: the `{"op": "and"|"or", "conditions": [..]}` groups that finding
//! rules, runbook triggers and `gate` actions use to decide whether a payload matches.
//!
//! This module owns the condition shape, its validation and its evaluation against a JSON
//! payload. It is pure: it never reads the clock (callers pass `now`), never touches the
//! database or the network, and never fails at evaluation time; every mistake a user can make is
//! caught by [`validate`] or [`CompiledGroup::new`] first.
//!
//! Semantics, where the product specification leaves room:
//! - A field that is missing from the payload, or is `null`, makes its condition false whatever
//!   the operator, `neq` and `not_in` included. Treating `null` like a missing key keeps a
//!   condition's outcome independent of whether a payload omits empty fields or writes `null`.
//!   For the same reason a `null` value (or a `null` inside an `in` list) is rejected.
//! - `eq`, `neq`, `in`, `not_in` and `contains` compare JSON values exactly, except that numbers
//!   compare by value (`1` equals `1.0`). No type coercion: the string `"5"` is not the number 5.
//! - `gt`, `gte`, `lt`, `lte` take a number, a severity word or an RFC 3339 timestamp, and the
//!   value decides how the field is read: a severity word (any case) compares the field by the
//!   severity order, a timestamp compares instants. Plain strings are rejected: lexicographic
//!   order is almost never what a rule means. A field of another kind makes the condition false.
//! - `contains` is a substring test on a string field and an element test on an array field.
//! - `older_than` and `within_last` read the field as an RFC 3339 timestamp and are exact
//!   complements for a valid timestamp: a time in the future is "within the last" any duration.
//! - A dot path walks objects by key and arrays by index (`actions.0.output.status`).
//! - Groups nest at most [`MAX_DEPTH`] levels, counting the outermost group as one.

mod compile;
mod eval;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use compile::CompiledGroup;

/// The deepest nesting of groups accepted, the outermost group being level 1.
pub const MAX_DEPTH: usize = 16;

/// A list of conditions joined by `and` or `or`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionGroup {
    pub op: GroupOp,
    pub conditions: Vec<Node>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupOp {
    And,
    Or,
}

/// One member of a group: a condition, or a nested group. In JSON an object with `op` is a
/// group and an object with `field` is a condition.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Node {
    Condition(Condition),
    Group(ConditionGroup),
}

/// `{"field": "finding.severity", "operator": "gte", "value": "high"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// A dot path into the payload.
    pub field: String,
    pub operator: Operator,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Eq,
    Neq,
    Gte,
    Lte,
    Gt,
    Lt,
    Contains,
    In,
    NotIn,
    StartsWith,
    OlderThan,
    WithinLast,
}

/// A problem with a condition group, located by a path such as
/// `conditions[1].conditions[0].value`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConditionError {
    pub path: String,
    pub message: String,
}

/// Every problem found in one group, for callers that need a single error value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid conditions: {}", join(.0))]
pub struct InvalidConditions(pub Vec<ConditionError>);

/// How one condition fared during [`evaluate_traced`], for runbook dry runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceEntry {
    /// Where the condition sits in the group, such as `conditions[1].conditions[0]`.
    pub path: String,
    pub field: String,
    pub operator: Operator,
    pub expected: Value,
    /// What the payload holds at `field`; absent when the field is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
    pub result: bool,
}

/// Checks a group: operators get the kind of value they need, durations parse, fields are dot
/// paths, nesting stays within [`MAX_DEPTH`]. Reports every problem, not just the first.
pub fn validate(group: &ConditionGroup) -> Result<(), Vec<ConditionError>> {
    CompiledGroup::new(group).map(|_| ())
}

/// [`validate`], plus a check that every field is one that `known` accepts (the fields of a
/// trigger's payload, say).
pub fn validate_fields(
    group: &ConditionGroup,
    known: &dyn Fn(&str) -> bool,
) -> Result<(), Vec<ConditionError>> {
    let mut errors = validate(group).err().unwrap_or_default();
    compile::check_fields(group, "", known, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Whether `payload` satisfies the group at the instant `now`.
pub fn evaluate(group: &CompiledGroup, payload: &Value, now: DateTime<Utc>) -> bool {
    group.evaluate(payload, now)
}

/// [`evaluate`], also reporting each condition's field, values and outcome. Every condition is
/// evaluated, even those after the outcome is settled, so a dry run shows them all.
pub fn evaluate_traced(
    group: &CompiledGroup,
    payload: &Value,
    now: DateTime<Utc>,
) -> (bool, Vec<TraceEntry>) {
    group.evaluate_traced(payload, now)
}

impl ConditionGroup {
    /// Validates the group and prepares it for evaluation.
    pub fn compile(&self) -> Result<CompiledGroup, Vec<ConditionError>> {
        CompiledGroup::new(self)
    }
}

impl Operator {
    pub const ALL: [Operator; 12] = [
        Operator::Eq,
        Operator::Neq,
        Operator::Gte,
        Operator::Lte,
        Operator::Gt,
        Operator::Lt,
        Operator::Contains,
        Operator::In,
        Operator::NotIn,
        Operator::StartsWith,
        Operator::OlderThan,
        Operator::WithinLast,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Neq => "neq",
            Operator::Gte => "gte",
            Operator::Lte => "lte",
            Operator::Gt => "gt",
            Operator::Lt => "lt",
            Operator::Contains => "contains",
            Operator::In => "in",
            Operator::NotIn => "not_in",
            Operator::StartsWith => "starts_with",
            Operator::OlderThan => "older_than",
            Operator::WithinLast => "within_last",
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ConditionError {
    fn new(path: String, message: impl Into<String>) -> Self {
        ConditionError {
            path,
            message: message.into(),
        }
    }
}

impl From<Vec<ConditionError>> for InvalidConditions {
    fn from(errors: Vec<ConditionError>) -> Self {
        InvalidConditions(errors)
    }
}

// Untagged enums report only "did not match any variant"; telling a group from a condition by
// its key first lets serde name the actual problem (an unknown operator, a stray key).
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let Value::Object(map) = &value else {
            return Err(D::Error::custom("expected a condition or a group object"));
        };

        if map.contains_key("op") {
            ConditionGroup::deserialize(value)
                .map(Node::Group)
                .map_err(D::Error::custom)
        } else if map.contains_key("field") {
            Condition::deserialize(value)
                .map(Node::Condition)
                .map_err(D::Error::custom)
        } else {
            Err(D::Error::custom(
                "expected a condition (with `field`) or a group (with `op`)",
            ))
        }
    }
}

fn join(errors: &[ConditionError]) -> String {
    errors
        .iter()
        .map(ConditionError::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}
