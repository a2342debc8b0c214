//! `{{ branch }}`-style templates of pipeline triggers, rendered from a CI event with
//! minijinja in a sandbox: no file loading, a fuel limit, undefined names rendering empty.
//!
//! This module only renders text; it never decides what a trigger does with it.

use domain::CiEvent;
use minijinja::Environment;
use serde_json::Value;

/// Instructions a template may spend: plenty for `{{ branch }}`, nothing for a loop bomb.
const FUEL: u64 = 10_000;

/// The names a trigger template can use: every CI event field at the top level
/// (`branch`, `commit_sha`, `repo`, `pr_number`, …), and `event` for the whole.
pub fn event_context(event: &CiEvent) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        let whole = Value::Object(map.clone());
        map.insert("event".into(), whole);
    }
    value
}

pub fn render(template: &str, context: &Value) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.render_str(template, context)
        .map_err(|e| format!("template {template:?} does not render: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(template: &str, expected: &str) {
        let context = serde_json::json!({"branch": "feature/x", "pr_number": 7});
        assert_eq!(render(template, &context).unwrap(), expected, "{template}");
    }

    #[test]
    fn templates() {
        check("{{ branch }}", "feature/x");
        check("refs/heads/{{ branch }}", "refs/heads/feature/x");
        check("pr-{{ pr_number }}", "pr-7");
        check("{{ missing }}", "");
        check("plain", "plain");
        let context = serde_json::json!({});
        assert!(
            render(
                "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
                &context
            )
            .is_err()
        );
        assert!(render("{{ unclosed", &context).is_err());
    }
}
