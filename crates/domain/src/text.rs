//! Text that every backend can store. PostgreSQL's `text` and `jsonb` cannot hold U+0000, so
//! values that come from outside (payloads, action outputs) have it replaced, or are refused,
//! before they reach a batch whose other rows they would take down with them.

use serde_json::Value;

/// True when a string or key anywhere in `value` holds U+0000.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// `text` with U+0000 replaced.
pub fn replace_nul_str(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Replaces U+0000 in every string and key of `value`.
pub fn replace_nul(value: &mut Value) {
    if !contains_nul(value) {
        return;
    }
    match value {
        Value::String(s) => *s = replace_nul_str(s),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (key, mut item) in entries {
                replace_nul(&mut item);
                map.insert(replace_nul_str(&key), item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(mut input: Value, expected: Value) {
        assert_eq!(contains_nul(&input), input != expected);
        replace_nul(&mut input);
        assert_eq!(input, expected);
        assert!(!contains_nul(&input));
    }

    #[test]
    fn nul_is_replaced_in_strings_and_keys_at_any_depth() {
        check(
            json!({"a": 1, "b": [true, null]}),
            json!({"a": 1, "b": [true, null]}),
        );
        check(json!("a\u{0}b"), json!("a\u{FFFD}b"));
        check(
            json!({"k\u{0}": [{"x": "\u{0}"}], "n": 2}),
            json!({"k\u{FFFD}": [{"x": "\u{FFFD}"}], "n": 2}),
        );
    }
}
