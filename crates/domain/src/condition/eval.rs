//! Evaluating a [`CompiledGroup`] against a payload. Nothing here allocates except the trace.

use std::cmp::Ordering;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Number, Value};

use super::compile::{Bound, CompiledCondition, CompiledGroup, CompiledNode, Segment, Test};
use super::compile::{parse_severity, parse_timestamp};
use super::{GroupOp, Operator, TraceEntry};

impl CompiledGroup {
    /// Whether `payload` satisfies the group at the instant `now`.
    pub fn evaluate(&self, payload: &Value, now: DateTime<Utc>) -> bool {
        let holds = |node: &CompiledNode| match node {
            CompiledNode::Condition(condition) => condition.evaluate(payload, now),
            CompiledNode::Group(group) => group.evaluate(payload, now),
        };
        match self.op {
            GroupOp::And => self.nodes.iter().all(holds),
            GroupOp::Or => self.nodes.iter().any(holds),
        }
    }

    /// [`CompiledGroup::evaluate`], with one trace entry per condition, in document order.
    pub fn evaluate_traced(&self, payload: &Value, now: DateTime<Utc>) -> (bool, Vec<TraceEntry>) {
        let mut trace = Vec::new();
        let result = self.trace_into(payload, now, &mut trace);
        (result, trace)
    }

    fn trace_into(&self, payload: &Value, now: DateTime<Utc>, trace: &mut Vec<TraceEntry>) -> bool {
        // Every member is visited, unlike `evaluate`, so the trace is complete.
        let results: Vec<bool> = self
            .nodes
            .iter()
            .map(|node| match node {
                CompiledNode::Condition(condition) => {
                    let result = condition.evaluate(payload, now);
                    trace.push(TraceEntry {
                        path: condition.location.to_string(),
                        field: condition.source.field.clone(),
                        operator: condition.source.operator,
                        expected: condition.source.value.clone(),
                        actual: lookup(payload, &condition.path).cloned(),
                        result,
                    });
                    result
                }
                CompiledNode::Group(group) => group.trace_into(payload, now, trace),
            })
            .collect();
        match self.op {
            GroupOp::And => results.iter().all(|&result| result),
            GroupOp::Or => results.iter().any(|&result| result),
        }
    }
}

impl CompiledCondition {
    fn evaluate(&self, payload: &Value, now: DateTime<Utc>) -> bool {
        match lookup(payload, &self.path) {
            None | Some(Value::Null) => false,
            Some(actual) => self.test.holds(actual, now),
        }
    }
}

impl Test {
    fn holds(&self, actual: &Value, now: DateTime<Utc>) -> bool {
        match self {
            Test::Eq(expected) => json_eq(actual, expected),
            Test::Neq(expected) => !json_eq(actual, expected),
            Test::Compare(operator, bound) => {
                compare(actual, bound).is_some_and(|ordering| accepts(*operator, ordering))
            }
            Test::Contains(needle) => match (actual, needle) {
                (Value::String(haystack), Value::String(needle)) => {
                    haystack.contains(needle.as_str())
                }
                (Value::Array(items), _) => items.iter().any(|item| json_eq(item, needle)),
                _ => false,
            },
            Test::In(items) => items.iter().any(|item| json_eq(actual, item)),
            Test::NotIn(items) => !items.iter().any(|item| json_eq(actual, item)),
            Test::StartsWith(prefix) => actual
                .as_str()
                .is_some_and(|text| text.starts_with(&**prefix)),
            Test::OlderThan(age) => timestamp(actual)
                .is_some_and(|time| cutoff(now, *age).is_some_and(|cutoff| time < cutoff)),
            Test::WithinLast(age) => timestamp(actual)
                .is_some_and(|time| cutoff(now, *age).is_none_or(|cutoff| time >= cutoff)),
        }
    }
}

/// Follows a dot path without copying anything; `None` when a step is missing.
fn lookup<'a>(payload: &'a Value, path: &[Segment]) -> Option<&'a Value> {
    let mut current = payload;
    for segment in path {
        current = match current {
            Value::Object(map) => map.get(&*segment.key)?,
            Value::Array(items) => items.get(segment.index?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// JSON equality, except that numbers compare by value at any depth.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y) == Some(Ordering::Equal),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(key, x)| ys.get(key).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

/// How the field compares with the bound, or `None` when the field is not of the bound's kind.
fn compare(actual: &Value, bound: &Bound) -> Option<Ordering> {
    match (actual, bound) {
        (Value::Number(actual), Bound::Number(bound)) => compare_numbers(actual, bound),
        (Value::String(text), Bound::Severity(bound)) => Some(parse_severity(text)?.cmp(bound)),
        (Value::String(text), Bound::Time(bound)) => Some(parse_timestamp(text)?.cmp(bound)),
        _ => None,
    }
}

/// Integers compare exactly, so large ids survive; anything else compares as `f64`.
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return Some(a.cmp(&b));
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return Some(a.cmp(&b));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

fn accepts(operator: Operator, ordering: Ordering) -> bool {
    match operator {
        Operator::Gt => ordering == Ordering::Greater,
        Operator::Gte => ordering != Ordering::Less,
        Operator::Lt => ordering == Ordering::Less,
        Operator::Lte => ordering != Ordering::Greater,
        _ => false,
    }
}

fn timestamp(actual: &Value) -> Option<DateTime<Utc>> {
    actual.as_str().and_then(parse_timestamp)
}

/// The instant `age` before `now`; `None` when that is before the earliest time chrono knows,
/// in which case nothing is older and everything is within.
fn cutoff(now: DateTime<Utc>, age: TimeDelta) -> Option<DateTime<Utc>> {
    now.checked_sub_signed(age)
}
