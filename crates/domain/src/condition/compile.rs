//! Turning a [`ConditionGroup`] into a [`CompiledGroup`]: every check that can fail happens
//! here, once, so evaluation only compares.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{Condition, ConditionError, ConditionGroup, GroupOp, InvalidConditions, MAX_DEPTH};
use super::{Node, Operator};
use crate::Severity;
use crate::duration::parse_duration;

/// A validated group with its paths split and its durations, severities and timestamps parsed,
/// ready to be evaluated many times. It serializes and deserializes as its [`ConditionGroup`]
/// (deserializing validates).
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledGroup {
    pub(super) op: GroupOp,
    pub(super) nodes: Vec<CompiledNode>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum CompiledNode {
    Condition(CompiledCondition),
    Group(CompiledGroup),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct CompiledCondition {
    pub(super) source: Condition,
    /// Where the condition sits in its group, for traces.
    pub(super) location: Box<str>,
    pub(super) path: Box<[Segment]>,
    pub(super) test: Test,
}

/// One step of a dot path: a key for objects, which is also an index for arrays when numeric.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Segment {
    pub(super) key: Box<str>,
    pub(super) index: Option<usize>,
}

/// What a condition checks, with its value already in the form the check needs.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Test {
    Eq(Value),
    Neq(Value),
    Compare(Operator, Bound),
    Contains(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    StartsWith(Box<str>),
    OlderThan(TimeDelta),
    WithinLast(TimeDelta),
}

/// The value of an ordering operator, which also says how the field is read.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Bound {
    Number(serde_json::Number),
    Severity(Severity),
    Time(DateTime<Utc>),
}

impl CompiledGroup {
    /// Validates `group` and prepares it for evaluation, or reports every problem found.
    pub fn new(group: &ConditionGroup) -> Result<CompiledGroup, Vec<ConditionError>> {
        let mut errors = Vec::new();
        let compiled = compile_group(group, "", 1, &mut errors);
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    /// The group this was compiled from.
    pub fn to_group(&self) -> ConditionGroup {
        let conditions = self
            .nodes
            .iter()
            .map(|node| match node {
                CompiledNode::Condition(condition) => Node::Condition(condition.source.clone()),
                CompiledNode::Group(group) => Node::Group(group.to_group()),
            })
            .collect();
        ConditionGroup {
            op: self.op,
            conditions,
        }
    }
}

impl TryFrom<&ConditionGroup> for CompiledGroup {
    type Error = InvalidConditions;

    fn try_from(group: &ConditionGroup) -> Result<Self, Self::Error> {
        CompiledGroup::new(group).map_err(InvalidConditions)
    }
}

impl Serialize for CompiledGroup {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_group().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for CompiledGroup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let group = ConditionGroup::deserialize(deserializer)?;
        CompiledGroup::try_from(&group).map_err(serde::de::Error::custom)
    }
}

/// Reports, into `errors`, each condition whose field `known` rejects.
pub(super) fn check_fields(
    group: &ConditionGroup,
    path: &str,
    known: &dyn Fn(&str) -> bool,
    errors: &mut Vec<ConditionError>,
) {
    for (i, node) in group.conditions.iter().enumerate() {
        let here = child_path(path, i);
        match node {
            Node::Condition(condition) if !known(&condition.field) => {
                let message = format!("{:?} is not a field of this payload", condition.field);
                errors.push(ConditionError::new(format!("{here}.field"), message));
            }
            Node::Condition(_) => {}
            Node::Group(inner) => check_fields(inner, &here, known, errors),
        }
    }
}

fn compile_group(
    group: &ConditionGroup,
    path: &str,
    depth: usize,
    errors: &mut Vec<ConditionError>,
) -> CompiledGroup {
    let mut nodes = Vec::with_capacity(group.conditions.len());
    for (i, node) in group.conditions.iter().enumerate() {
        let here = child_path(path, i);
        match node {
            Node::Condition(condition) => {
                if let Some(compiled) = compile_condition(condition, here, errors) {
                    nodes.push(CompiledNode::Condition(compiled));
                }
            }
            Node::Group(_) if depth >= MAX_DEPTH => {
                let message = format!("groups nest deeper than {MAX_DEPTH} levels");
                errors.push(ConditionError::new(here, message));
            }
            Node::Group(inner) => {
                nodes.push(CompiledNode::Group(compile_group(
                    inner,
                    &here,
                    depth + 1,
                    errors,
                )));
            }
        }
    }
    CompiledGroup {
        op: group.op,
        nodes,
    }
}

fn compile_condition(
    condition: &Condition,
    location: String,
    errors: &mut Vec<ConditionError>,
) -> Option<CompiledCondition> {
    let path = split_path(&condition.field);
    if path.is_none() {
        let message = "must be a dot path such as finding.severity";
        errors.push(ConditionError::new(format!("{location}.field"), message));
    }

    let test = compile_test(condition.operator, &condition.value);
    if let Err(message) = &test {
        errors.push(ConditionError::new(
            format!("{location}.value"),
            message.clone(),
        ));
    }

    Some(CompiledCondition {
        source: condition.clone(),
        location: location.into(),
        path: path?,
        test: test.ok()?,
    })
}

fn compile_test(operator: Operator, value: &Value) -> Result<Test, String> {
    if value.is_null() {
        return Err("null never matches: a missing or null field makes a condition false".into());
    }

    match operator {
        Operator::Eq => Ok(Test::Eq(value.clone())),
        Operator::Neq => Ok(Test::Neq(value.clone())),
        Operator::Gte | Operator::Lte | Operator::Gt | Operator::Lt => bound(value)
            .map(|bound| Test::Compare(operator, bound))
            .ok_or_else(|| {
                format!(
                    "{operator} takes a number, a severity (critical, high, medium, low, info) \
                     or an RFC 3339 timestamp"
                )
            }),
        Operator::Contains => Ok(Test::Contains(value.clone())),
        Operator::In | Operator::NotIn => {
            let Value::Array(items) = value else {
                return Err(format!("{operator} takes an array"));
            };
            if items.iter().any(Value::is_null) {
                return Err(format!(
                    "{operator} cannot list null: a null field never matches"
                ));
            }
            let items = items.clone();
            Ok(if operator == Operator::In {
                Test::In(items)
            } else {
                Test::NotIn(items)
            })
        }
        Operator::StartsWith => match value {
            Value::String(prefix) => Ok(Test::StartsWith(prefix.as_str().into())),
            _ => Err(format!("{operator} takes a string")),
        },
        Operator::OlderThan | Operator::WithinLast => {
            let Value::String(text) = value else {
                return Err(format!(
                    "{operator} takes a duration such as 30m, 24h or 7d"
                ));
            };
            let duration = parse_duration(text).map_err(|err| err.to_string())?;
            let delta = TimeDelta::from_std(duration)
                .map_err(|_| format!("duration {text:?} is too large"))?;
            Ok(if operator == Operator::OlderThan {
                Test::OlderThan(delta)
            } else {
                Test::WithinLast(delta)
            })
        }
    }
}

/// Reads the value of an ordering operator: a severity word first, so that `"high"` is never
/// mistaken for anything else, then a timestamp.
fn bound(value: &Value) -> Option<Bound> {
    match value {
        Value::Number(number) => Some(Bound::Number(number.clone())),
        Value::String(text) => parse_severity(text)
            .map(Bound::Severity)
            .or_else(|| parse_timestamp(text).map(Bound::Time)),
        _ => None,
    }
}

/// A severity word in any case, without allocating (evaluation calls this per field read).
pub(super) fn parse_severity(text: &str) -> Option<Severity> {
    Severity::ALL
        .into_iter()
        .find(|severity| severity.as_str().eq_ignore_ascii_case(text))
}

pub(super) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn split_path(field: &str) -> Option<Box<[Segment]>> {
    if field.split('.').any(str::is_empty) {
        return None;
    }
    let segments = field
        .split('.')
        .map(|key| Segment {
            key: key.into(),
            index: key.parse().ok(),
        })
        .collect();
    Some(segments)
}

fn child_path(parent: &str, index: usize) -> String {
    if parent.is_empty() {
        format!("conditions[{index}]")
    } else {
        format!("{parent}.conditions[{index}]")
    }
}
