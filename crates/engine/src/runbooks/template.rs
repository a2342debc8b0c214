//! `{{ field.path }}` templates in action configs, rendered with minijinja in a sandbox: no
//! loader (no includes or imports), strict undefined values, a fuel limit that stops loops, a
//! recursion limit, and a cap on the output size.
//!
//! Memory is bounded by construction rather than measured: only `if` and `for` blocks are
//! accepted (no `set`, `with`, macros, includes), and the operators and filters that build
//! strings larger than their inputs (`*`, `~`, `+`, `replace`, `indent`, `center`, `format`,
//! `wordwrap`) are refused, so what a template can hold at once grows with its source and
//! its payload, and what it writes stops at [`MAX_OUTPUT_BYTES`].
//!
//! This module renders strings and lists the fields a template reads; it never decides which
//! fields exist (the catalog does) and never does IO.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// The most a template may be, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// The most one rendering may produce, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Instructions one rendering may execute.
const FUEL: u64 = 100_000;
const RECURSION_LIMIT: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template does not parse: {0}")]
    Syntax(String),
    #[error("template is longer than {MAX_SOURCE_BYTES} bytes")]
    TooLong,
    #[error("unknown field {0:?}")]
    UnknownField(String),
    #[error("template output exceeds {MAX_OUTPUT_BYTES} bytes")]
    OutputTooLarge,
    #[error("template failed: {0}")]
    Render(String),
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(json_spelling);
        env.remove_global("namespace");
        for filter in ["replace", "indent", "center", "format", "wordwrap"] {
            env.remove_filter(filter);
        }
        env
    })
}

/// Prints booleans and null as JSON spells them (`true`, `null`) rather than as Python does
/// (`True`, `None`): the payloads are JSON and most rendered strings end up in JSON bodies,
/// URLs and headers read by programs.
fn json_spelling(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let spelled = match value.kind() {
        ValueKind::Bool if value.is_true() => "true",
        ValueKind::Bool => "false",
        ValueKind::None => "null",
        _ => return minijinja::escape_formatter(out, state, value),
    };
    std::fmt::Write::write_str(out, spelled)
        .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "output refused"))
}

/// True when the string holds template syntax at all (plain strings skip the engine).
pub fn is_template(source: &str) -> bool {
    source.contains("{{") || source.contains("{%") || source.contains("{#")
}

/// Block tags a template may use.
const ALLOWED_BLOCKS: &[&str] = &["if", "elif", "else", "endif", "for", "endfor"];

/// Refuses the constructs that could make a template hold more than its inputs (see the
/// module docs). Operators are looked for in code only; text outside tags is free.
fn check_constructs(source: &str) -> Result<(), TemplateError> {
    let mut rest = source;
    while let Some(start) = rest.find(['{']) {
        let after = &rest[start + 1..];
        let (close, is_block) = match after.as_bytes().first() {
            Some(b'{') => ("}}", false),
            Some(b'%') => ("%}", true),
            Some(b'#') => ("#}", false),
            _ => {
                rest = after;
                continue;
            }
        };
        let body = &after[1..];
        let end = body.find(close).unwrap_or(body.len());
        let code = body[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if is_block {
            let keyword = code.split_whitespace().next().unwrap_or_default();
            if !ALLOWED_BLOCKS.contains(&keyword) {
                return Err(TemplateError::Syntax(format!(
                    "the {keyword:?} tag is not available; use if and for"
                )));
            }
        }
        if close != "#}"
            && let Some(op) = code.chars().find(|c| matches!(c, '*' | '~' | '+'))
        {
            return Err(TemplateError::Syntax(format!(
                "the {op:?} operator is not available in templates"
            )));
        }
        rest = &body[(end + close.len()).min(body.len())..];
    }
    Ok(())
}

/// The dotted paths a template reads (`finding.severity`, `actions.0.output.id`), or why it
/// does not parse.
pub fn referenced_fields(source: &str) -> Result<BTreeSet<String>, TemplateError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::TooLong);
    }
    if !is_template(source) {
        return Ok(BTreeSet::new());
    }
    check_constructs(source)?;
    let template = env()
        .template_from_str(source)
        .map_err(|e| TemplateError::Syntax(e.to_string()))?;
    Ok(template.undeclared_variables(true).into_iter().collect())
}

/// Renders `source` against `context`. An undefined field fails with the field named.
pub fn render(source: &str, context: &Value) -> Result<String, TemplateError> {
    if !is_template(source) {
        return Ok(source.to_owned());
    }
    if source.len() > MAX_SOURCE_BYTES {
        return Err(TemplateError::TooLong);
    }
    check_constructs(source)?;
    let template = env()
        .template_from_str(source)
        .map_err(|e| TemplateError::Syntax(e.to_string()))?;
    let mut out = Bounded::default();
    match template.render_captured_to(context, &mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out.buf).into_owned()),
        Err(_) if out.overflowed => Err(TemplateError::OutputTooLarge),
        Err(err) if err.kind() == minijinja::ErrorKind::UndefinedError => {
            let missing = template
                .undeclared_variables(true)
                .into_iter()
                .find(|path| lookup(context, path).is_none());
            Err(match missing {
                Some(path) => TemplateError::UnknownField(path),
                None => TemplateError::Render(err.to_string()),
            })
        }
        Err(err) => Err(TemplateError::Render(err.to_string())),
    }
}

/// Renders every string inside a JSON value (keys are left as written).
pub fn render_value(value: &Value, context: &Value) -> Result<Value, TemplateError> {
    Ok(match value {
        Value::String(s) => Value::String(render(s, context)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_value(v, context))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_value(v, context)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// The value at a dot path, walking objects by key and arrays by index.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A writer that refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct Bounded {
    buf: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(source: &str, expected: Result<&str, TemplateError>) {
        let context = json!({"finding": {"severity": "high", "tags": ["a", "b"]}, "n": 3,
            "flag": true, "off": false, "nothing": null});
        let got = render(source, &context);
        assert_eq!(got, expected.map(str::to_owned), "{source}");
    }

    #[test]
    fn renders_fields_and_names_unknown_ones() {
        check("plain", Ok("plain"));
        check("{{ finding.severity }}!", Ok("high!"));
        check("{{ finding.tags | join(',') }}", Ok("a,b"));
        check("{{ flag }} {{ off }} {{ nothing }}", Ok("true false null"));
        check("{{ n > 2 }}", Ok("true"));
        check(
            "{{ finding.nope }}",
            Err(TemplateError::UnknownField("finding.nope".into())),
        );
        check(
            "{{ missing }}",
            Err(TemplateError::UnknownField("missing".into())),
        );
    }

    #[test]
    fn runaway_templates_are_bounded() {
        let forever =
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}";
        assert!(matches!(
            render(forever, &json!({})),
            Err(TemplateError::Render(_))
        ));
        let huge = "{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}";
        let result = render(huge, &json!({}));
        assert!(
            matches!(
                result,
                Err(TemplateError::OutputTooLarge | TemplateError::Render(_))
            ),
            "{result:?}"
        );
        for bomb in [
            "{{ 'x' * 1000000000 }}",
            "{% set a = 'xx' %}{{ a }}",
            "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(0) }}",
            "{{ 'x' ~ 'y' }}",
        ] {
            assert!(
                matches!(render(bomb, &json!({})), Err(TemplateError::Syntax(_))),
                "{bomb}"
            );
        }
        assert!(render("{{ 'x' | indent(1000000000) }}", &json!({})).is_err());
    }

    #[test]
    fn referenced_fields_are_listed() {
        let fields = referenced_fields("{{ finding.severity }} {{ actions.0.output.id }}").unwrap();
        assert!(fields.contains("finding.severity"), "{fields:?}");
        assert!(referenced_fields("{{ unclosed").is_err());
    }
}
