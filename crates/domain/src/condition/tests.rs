use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;

fn now() -> DateTime<Utc> {
    "2025-06-01T12:00:00Z".parse().unwrap()
}

/// One payload of every kind of value, read by all the operator tables below.
fn payload() -> Value {
    json!({
        "count": 5,
        "ratio": 0.5,
        "big": 18446744073709551615u64,
        "name": "checkout-service",
        "numeric_text": "5",
        "flag": true,
        "nothing": null,
        "tags": ["pci", "web", 3],
        "empty_list": [],
        "finding": {
            "severity": "high",
            "vendor_severity": "High",
            "rule_id": "medium",
            "items": [{"id": 1}, {"id": 2}],
        },
        "seen_at": "2025-06-01T11:30:00Z",
        "old_at": "2025-05-01T12:00:00Z",
        "future_at": "2025-06-01T13:00:00Z",
        "offset_at": "2025-06-01T13:30:00+02:00",
    })
}

fn group(value: Value) -> ConditionGroup {
    serde_json::from_value(value).expect("group parses")
}

fn one(field: &str, operator: &str, value: Value) -> Value {
    json!({"op": "and", "conditions": [{"field": field, "operator": operator, "value": value}]})
}

/// Evaluates `group_json` against [`payload`] at [`now`], plain and traced, and checks both.
fn check_group(group_json: Value, expected: bool) {
    let compiled = group(group_json.clone())
        .compile()
        .unwrap_or_else(|errors| panic!("{group_json} is invalid: {errors:?}"));
    assert_eq!(
        evaluate(&compiled, &payload(), now()),
        expected,
        "{group_json}"
    );
    assert_eq!(
        evaluate_traced(&compiled, &payload(), now()).0,
        expected,
        "traced {group_json}"
    );
}

fn check(field: &str, operator: &str, value: Value, expected: bool) {
    check_group(one(field, operator, value), expected);
}

/// Runs a table of `(field, operator, value, expected)` rows.
fn check_table(rows: &[(&str, &str, Value, bool)]) {
    for (field, operator, value, expected) in rows {
        check(field, operator, value.clone(), *expected);
    }
}

fn check_invalid(group_json: Value, expected: &[&str]) {
    let errors = validate(&group(group_json.clone())).expect_err("group is invalid");
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages, expected, "{group_json}");
}

fn check_parse_error(group_json: Value, expected_fragment: &str) {
    let err = serde_json::from_value::<ConditionGroup>(group_json.clone()).unwrap_err();
    assert!(
        err.to_string().contains(expected_fragment),
        "{group_json}: {err}"
    );
}

#[test]
fn eq_and_neq() {
    check_table(&[
        ("count", "eq", json!(5), true),
        ("count", "eq", json!(5.0), true),
        ("ratio", "eq", json!(0.5), true),
        ("big", "eq", json!(18446744073709551615u64), true),
        ("big", "eq", json!(18446744073709551614u64), false),
        ("count", "eq", json!("5"), false),
        ("numeric_text", "eq", json!(5), false),
        ("name", "eq", json!("checkout-service"), true),
        ("name", "eq", json!("Checkout-Service"), false),
        ("finding.severity", "eq", json!("high"), true),
        ("finding.vendor_severity", "eq", json!("high"), false),
        ("flag", "eq", json!(true), true),
        ("flag", "eq", json!("true"), false),
        ("tags", "eq", json!(["pci", "web", 3.0]), true),
        ("tags", "eq", json!(["web", "pci", 3]), false),
        ("finding.items.1", "eq", json!({"id": 2.0}), true),
        ("seen_at", "eq", json!("2025-06-01T11:30:00Z"), true),
        ("count", "neq", json!(4), true),
        ("count", "neq", json!(5.0), false),
        ("count", "neq", json!("5"), true),
        ("name", "neq", json!("other"), true),
        ("finding.severity", "neq", json!("high"), false),
        ("flag", "neq", json!(false), true),
        ("tags", "neq", json!([]), true),
    ]);
}

#[test]
fn ordering_on_numbers() {
    check_table(&[
        ("count", "gt", json!(4), true),
        ("count", "gt", json!(5), false),
        ("count", "gte", json!(5), true),
        ("count", "gte", json!(4.5), true),
        ("count", "lt", json!(5.5), true),
        ("count", "lte", json!(5), true),
        ("count", "lte", json!(4), false),
        ("ratio", "lt", json!(1), true),
        ("ratio", "gt", json!(-1), true),
        ("big", "gt", json!(18446744073709551614u64), true),
        ("big", "gt", json!(-1), true),
        // No coercion: text, booleans and arrays are not numbers.
        ("numeric_text", "gt", json!(1), false),
        ("flag", "gt", json!(0), false),
        ("tags", "gte", json!(0), false),
        ("finding.severity", "gte", json!(1), false),
    ]);
}

#[test]
fn ordering_on_severities() {
    let at_least_high = |severity: &str| {
        let payload = json!({"finding": {"severity": severity}});
        let compiled = group(one("finding.severity", "gte", json!("high")))
            .compile()
            .unwrap();
        evaluate(&compiled, &payload, now())
    };
    assert!(at_least_high("critical"));
    assert!(at_least_high("high"));
    assert!(!at_least_high("medium"));
    assert!(!at_least_high("low"));
    assert!(!at_least_high("info"));
    assert!(!at_least_high("severe"));

    check_table(&[
        ("finding.severity", "gt", json!("medium"), true),
        ("finding.severity", "gt", json!("high"), false),
        ("finding.severity", "lt", json!("critical"), true),
        ("finding.severity", "lte", json!("medium"), false),
        ("finding.severity", "gte", json!("HIGH"), true),
        // The value decides: any field holding a severity word compares by severity order.
        ("finding.vendor_severity", "gte", json!("critical"), false),
        ("finding.vendor_severity", "gte", json!("high"), true),
        ("finding.rule_id", "lt", json!("high"), true),
        ("name", "gte", json!("info"), false),
        ("count", "gte", json!("info"), false),
        ("flag", "gte", json!("info"), false),
    ]);
}

#[test]
fn ordering_on_timestamps() {
    check_table(&[
        ("seen_at", "gt", json!("2025-06-01T11:00:00Z"), true),
        ("seen_at", "gte", json!("2025-06-01T11:30:00Z"), true),
        ("seen_at", "lt", json!("2025-06-01T11:30:00Z"), false),
        ("seen_at", "lt", json!("2025-06-01T13:00:00+02:00"), false),
        ("seen_at", "gt", json!("2025-06-01T13:00:00+02:00"), true),
        ("offset_at", "eq", json!("2025-06-01T11:30:00Z"), false),
        ("offset_at", "gte", json!("2025-06-01T11:30:00Z"), true),
        ("offset_at", "lte", json!("2025-06-01T11:30:00Z"), true),
        ("name", "gt", json!("2025-06-01T11:00:00Z"), false),
        ("count", "gt", json!("2025-06-01T11:00:00Z"), false),
    ]);
}

#[test]
fn contains() {
    check_table(&[
        ("name", "contains", json!("checkout"), true),
        ("name", "contains", json!("service"), true),
        ("name", "contains", json!("Checkout"), false),
        ("name", "contains", json!(""), true),
        ("tags", "contains", json!("pci"), true),
        ("tags", "contains", json!("pc"), false),
        ("tags", "contains", json!(3.0), true),
        ("empty_list", "contains", json!("pci"), false),
        ("finding.items", "contains", json!({"id": 1}), true),
        ("count", "contains", json!(5), false),
        ("numeric_text", "contains", json!(5), false),
        ("flag", "contains", json!(true), false),
        ("finding", "contains", json!("severity"), false),
    ]);
}

#[test]
fn in_and_not_in() {
    check_table(&[
        ("count", "in", json!([1, 5.0]), true),
        ("count", "in", json!(["5"]), false),
        ("name", "in", json!(["checkout-service", "billing"]), true),
        ("name", "in", json!([]), false),
        ("finding.severity", "in", json!(["high", "critical"]), true),
        ("flag", "in", json!([true]), true),
        ("tags", "in", json!([["pci", "web", 3]]), true),
        ("tags", "in", json!(["pci"]), false),
        ("count", "not_in", json!([1, 2]), true),
        ("count", "not_in", json!([5]), false),
        ("name", "not_in", json!([]), true),
        ("finding.severity", "not_in", json!(["low", "info"]), true),
        ("flag", "not_in", json!([false]), true),
    ]);
}

#[test]
fn starts_with() {
    check_table(&[
        ("name", "starts_with", json!("checkout"), true),
        ("name", "starts_with", json!("service"), false),
        ("name", "starts_with", json!(""), true),
        ("numeric_text", "starts_with", json!("5"), true),
        ("count", "starts_with", json!("5"), false),
        ("tags", "starts_with", json!("pci"), false),
        ("flag", "starts_with", json!("t"), false),
    ]);
}

#[test]
fn older_than_and_within_last() {
    check_table(&[
        ("seen_at", "within_last", json!("1h"), true),
        ("seen_at", "within_last", json!("30m"), true),
        ("seen_at", "within_last", json!("29m59s"), false),
        ("seen_at", "older_than", json!("30m"), false),
        ("seen_at", "older_than", json!("29m"), true),
        ("seen_at", "older_than", json!("1h"), false),
        ("old_at", "older_than", json!("7d"), true),
        ("old_at", "older_than", json!("31d"), false),
        ("old_at", "within_last", json!("31d"), true),
        ("old_at", "within_last", json!("24h"), false),
        ("offset_at", "within_last", json!("30m"), true),
        ("offset_at", "older_than", json!("30m"), false),
        ("future_at", "within_last", json!("1s"), true),
        ("future_at", "older_than", json!("0s"), false),
        ("seen_at", "older_than", json!("0s"), true),
        ("old_at", "within_last", json!("100000000d"), true),
        ("old_at", "older_than", json!("100000000d"), false),
        ("name", "within_last", json!("7d"), false),
        ("count", "older_than", json!("7d"), false),
        ("tags", "older_than", json!("7d"), false),
        ("flag", "within_last", json!("7d"), false),
        ("finding.severity", "older_than", json!("0s"), false),
    ]);
}

#[test]
fn missing_or_null_field_is_false_for_every_operator() {
    let rows = [
        ("eq", json!("x")),
        ("neq", json!("x")),
        ("gte", json!(1)),
        ("lte", json!("high")),
        ("gt", json!("2025-01-01T00:00:00Z")),
        ("lt", json!(1)),
        ("contains", json!("x")),
        ("in", json!(["x"])),
        ("not_in", json!(["x"])),
        ("starts_with", json!("x")),
        ("older_than", json!("1d")),
        ("within_last", json!("1d")),
    ];
    assert_eq!(rows.len(), Operator::ALL.len());
    for field in [
        "absent",
        "nothing",
        "finding.absent",
        "name.length",
        "tags.7",
        "tags.x",
    ] {
        for (operator, value) in &rows {
            check(field, operator, value.clone(), false);
        }
    }
}

#[test]
fn dot_paths_reach_into_objects_and_arrays() {
    check_table(&[
        ("finding.items.0.id", "eq", json!(1), true),
        ("finding.items.1.id", "eq", json!(2), true),
        ("finding.items.2.id", "neq", json!(2), false),
        ("tags.2", "eq", json!(3), true),
    ]);
    let payload = json!({"map": {"0": "zero"}});
    let compiled = group(one("map.0", "eq", json!("zero"))).compile().unwrap();
    assert!(evaluate(&compiled, &payload, now()));
}

#[test]
fn groups_combine_and_nest() {
    let yes = json!({"field": "count", "operator": "eq", "value": 5});
    let no = json!({"field": "count", "operator": "eq", "value": 6});
    let cases = [
        (json!({"op": "and", "conditions": []}), true),
        (json!({"op": "or", "conditions": []}), false),
        (json!({"op": "and", "conditions": [yes, yes]}), true),
        (json!({"op": "and", "conditions": [yes, no]}), false),
        (json!({"op": "or", "conditions": [no, yes]}), true),
        (json!({"op": "or", "conditions": [no, no]}), false),
        (
            json!({"op": "and", "conditions": [yes, {"op": "or", "conditions": [no, yes]}]}),
            true,
        ),
        (
            json!({"op": "and", "conditions": [yes, {"op": "or", "conditions": []}]}),
            false,
        ),
        (
            json!({"op": "or", "conditions": [no, {"op": "and", "conditions": []}]}),
            true,
        ),
        (
            json!({"op": "or", "conditions": [
                {"op": "and", "conditions": [no, yes]},
                {"op": "and", "conditions": [yes, {"op": "or", "conditions": [no, yes]}]},
            ]}),
            true,
        ),
    ];
    for (group_json, expected) in cases {
        check_group(group_json, expected);
    }
}

/// A chain of `levels` groups, the outermost counting as one, with a condition at the bottom.
fn nested(levels: usize) -> Value {
    let mut inner = json!({"op": "and", "conditions": [
        {"field": "count", "operator": "eq", "value": 5},
    ]});
    for _ in 1..levels {
        inner = json!({"op": "and", "conditions": [inner]});
    }
    inner
}

#[test]
fn nesting_is_limited_to_sixteen_levels() {
    check_group(nested(MAX_DEPTH), true);

    let too_deep = vec!["conditions[0]"; MAX_DEPTH].join(".");
    check_invalid(
        nested(MAX_DEPTH + 1),
        &[&format!("{too_deep}: groups nest deeper than 16 levels")],
    );
}

#[test]
fn invalid_values_are_reported_with_their_path() {
    let cases = [
        (
            one("name", "in", json!("checkout-service")),
            "conditions[0].value: in takes an array",
        ),
        (
            one("name", "not_in", json!({"a": 1})),
            "conditions[0].value: not_in takes an array",
        ),
        (
            one("name", "in", json!(["a", null])),
            "conditions[0].value: in cannot list null: a null field never matches",
        ),
        (
            one("name", "starts_with", json!(5)),
            "conditions[0].value: starts_with takes a string",
        ),
        (
            one("name", "eq", json!(null)),
            "conditions[0].value: null never matches: a missing or null field makes a condition \
             false",
        ),
        (
            one("count", "gt", json!("five")),
            "conditions[0].value: gt takes a number, a severity (critical, high, medium, low, \
             info) or an RFC 3339 timestamp",
        ),
        (
            one("count", "lte", json!(true)),
            "conditions[0].value: lte takes a number, a severity (critical, high, medium, low, \
             info) or an RFC 3339 timestamp",
        ),
        (
            one("seen_at", "older_than", json!("7 days")),
            "conditions[0].value: invalid duration \"7 days\": a number needs a unit: ms, s, m, \
             h or d",
        ),
        (
            one("seen_at", "within_last", json!("7x")),
            "conditions[0].value: invalid duration \"7x\": unknown unit \"x\"; use ms, s, m, h \
             or d",
        ),
        (
            one("seen_at", "within_last", json!(7)),
            "conditions[0].value: within_last takes a duration such as 30m, 24h or 7d",
        ),
        (
            one("", "eq", json!(1)),
            "conditions[0].field: must be a dot path such as finding.severity",
        ),
        (
            one("finding..severity", "eq", json!(1)),
            "conditions[0].field: must be a dot path such as finding.severity",
        ),
    ];
    for (group_json, expected) in cases {
        check_invalid(group_json, &[expected]);
    }
}

#[test]
fn every_problem_is_reported() {
    check_invalid(
        json!({"op": "or", "conditions": [
            {"field": "count", "operator": "eq", "value": 1},
            {"op": "and", "conditions": [
                {"field": "name", "operator": "in", "value": "x"},
                {"field": ".x", "operator": "older_than", "value": "soon"},
            ]},
        ]}),
        &[
            "conditions[1].conditions[0].value: in takes an array",
            "conditions[1].conditions[1].field: must be a dot path such as finding.severity",
            "conditions[1].conditions[1].value: invalid duration \"soon\": each part must start \
             with a number",
        ],
    );
}

#[test]
fn malformed_json_is_a_parse_error() {
    check_parse_error(one("count", "like", json!(1)), "unknown variant `like`");
    check_parse_error(one("count", "EQ", json!(1)), "unknown variant `EQ`");
    check_parse_error(
        json!({"op": "xor", "conditions": []}),
        "unknown variant `xor`",
    );
    check_parse_error(json!({"op": "and"}), "missing field `conditions`");
    check_parse_error(
        json!({"op": "and", "conditions": [{"field": "count", "operator": "eq"}]}),
        "missing field `value`",
    );
    check_parse_error(
        json!({"op": "and", "conditions": [
            {"field": "count", "operator": "eq", "value": 1, "negate": true},
        ]}),
        "unknown field `negate`",
    );
    check_parse_error(
        json!({"op": "and", "conditions": [], "name": "x"}),
        "unknown field `name`",
    );
    check_parse_error(
        json!({"op": "and", "conditions": [{"operator": "eq", "value": 1}]}),
        "expected a condition (with `field`) or a group (with `op`)",
    );
    check_parse_error(
        json!({"op": "and", "conditions": ["count"]}),
        "expected a condition or",
    );
}

#[test]
fn compiled_groups_serialize_as_written() {
    let source = json!({"op": "or", "conditions": [
        {"field": "finding.severity", "operator": "gte", "value": "high"},
        {"op": "and", "conditions": [
            {"field": "seen_at", "operator": "within_last", "value": "1h30m"},
        ]},
    ]});
    let compiled: CompiledGroup = serde_json::from_value(source.clone()).unwrap();
    assert_eq!(serde_json::to_value(&compiled).unwrap(), source);
    assert_eq!(serde_json::to_value(group(source.clone())).unwrap(), source);

    let invalid = serde_json::from_value::<CompiledGroup>(one("x", "in", json!(1))).unwrap_err();
    assert_eq!(
        invalid.to_string(),
        "invalid conditions: conditions[0].value: in takes an array"
    );
}

#[test]
fn fields_can_be_checked_against_a_payload() {
    let known = |field: &str| field == "count" || field.starts_with("finding.");
    let checked = group(json!({"op": "and", "conditions": [
        {"field": "count", "operator": "gt", "value": 0},
        {"field": "finding.severity", "operator": "in", "value": "high"},
        {"op": "or", "conditions": [{"field": "brnach_name", "operator": "eq", "value": "main"}]},
    ]}));
    let messages: Vec<String> = validate_fields(&checked, &known)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        messages,
        [
            "conditions[1].value: in takes an array",
            "conditions[2].conditions[0].field: \"brnach_name\" is not a field of this payload",
        ]
    );

    let fine = group(one("finding.severity", "gte", json!("high")));
    assert_eq!(validate_fields(&fine, &known), Ok(()));
}

#[test]
fn trace_lists_every_condition() {
    let compiled = group(json!({"op": "or", "conditions": [
        {"field": "finding.severity", "operator": "gte", "value": "high"},
        {"op": "and", "conditions": [
            {"field": "absent", "operator": "neq", "value": 1},
            {"field": "nothing", "operator": "eq", "value": 1},
        ]},
    ]}))
    .compile()
    .unwrap();

    let (matched, trace) = evaluate_traced(&compiled, &payload(), now());
    assert!(matched);
    let expected = [
        TraceEntry {
            path: "conditions[0]".into(),
            field: "finding.severity".into(),
            operator: Operator::Gte,
            expected: json!("high"),
            actual: Some(json!("high")),
            result: true,
        },
        TraceEntry {
            path: "conditions[1].conditions[0]".into(),
            field: "absent".into(),
            operator: Operator::Neq,
            expected: json!(1),
            actual: None,
            result: false,
        },
        TraceEntry {
            path: "conditions[1].conditions[1]".into(),
            field: "nothing".into(),
            operator: Operator::Eq,
            expected: json!(1),
            actual: Some(Value::Null),
            result: false,
        },
    ];
    assert_eq!(trace, expected);
    assert_eq!(
        serde_json::to_value(&trace[1]).unwrap(),
        json!({"path": "conditions[1].conditions[0]", "field": "absent", "operator": "neq",
               "expected": 1, "result": false})
    );
}

#[test]
fn operators_round_trip_through_their_names() {
    for operator in Operator::ALL {
        let parsed: Operator = serde_json::from_value(json!(operator.as_str())).unwrap();
        assert_eq!(parsed, operator);
        assert_eq!(
            serde_json::to_value(operator).unwrap(),
            json!(operator.to_string())
        );
    }
}
