//! `{{ field.path }}` templates in action configs, rendered with minijinja in a sandbox: no
//! loader (no includes or imports), strict undefined values, a fuel limit that stops loops, a
//! recursion limit, and a cap on the output size.
//!
//! Memory is bounded by construction rather than measured: only `if` and `for` blocks are
//! accepted (no `set`, `with`, macros, includes), so nothing accumulates across a loop; the
//! operators that build values larger than their inputs (`*`, `~`, `+`) are refused, and so is
//! the `in` operator, which writes a value out in full before searching a string (the `in`
//! test does the same within the limit). Every filter, test and function is one of the
//! bounded builtins of [`builtins`]: no value a filter makes passes [`MAX_OUTPUT_BYTES`] or
//! [`MAX_ITEMS`], and all the filter calls of one rendering together stop at
//! [`WORK_BUDGET_BYTES`]. What a template writes stops at [`MAX_OUTPUT_BYTES`].
//!
//! This module renders strings and lists the fields a template reads; it never decides which
//! fields exist (the catalog does) and never does IO.

mod builtins;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

use builtins::Limit;
pub use builtins::WORK_BUDGET_BYTES;

/// The most a template may be, in bytes.
pub const MAX_SOURCE_BYTES: usize = 16 * 1024;
/// The most one rendering may produce, and the longest string a filter may make, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The longest list a filter or `range` may make or walk.
pub const MAX_ITEMS: usize = 1_000;
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
    #[error("template output (or a value it builds) exceeds {MAX_OUTPUT_BYTES} bytes")]
    OutputTooLarge,
    #[error("template builds or walks a list of more than {MAX_ITEMS} items")]
    TooManyItems,
    #[error("template filters do more than {WORK_BUDGET_BYTES} bytes of work")]
    TooMuchWork,
    #[error("template failed: {0}")]
    Render(String),
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::empty();
        builtins::install(&mut env);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_formatter(json_spelling);
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
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let opener = after.as_bytes().first().copied();
        let close = match opener {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => {
                rest = after[1..].split_once("#}").map_or("", |(_, next)| next);
                continue;
            }
            _ => {
                rest = after;
                continue;
            }
        };
        let (code, next) = split_tag(&after[1..], close);
        let code = code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        check_code(code, opener == Some(b'%'))?;
        rest = next;
    }
    Ok(())
}

fn check_code(code: &str, is_block: bool) -> Result<(), TemplateError> {
    let words = code_words(code);
    let keyword = words.first().copied().unwrap_or_default();
    if is_block && !ALLOWED_BLOCKS.contains(&keyword) {
        return Err(TemplateError::Syntax(format!(
            "the {keyword:?} tag is not available; use if and for"
        )));
    }
    // String literals are searched too: refusing `{{ 'a+b' }}` costs nothing, since plain text
    // can sit outside the tag.
    if let Some(op) = code.chars().find(|c| matches!(c, '*' | '~' | '+')) {
        return Err(TemplateError::Syntax(format!(
            "the {op:?} operator is not available in templates"
        )));
    }
    // The first `in` of a `for` tag is the loop's own; `is in` and `is not in` are the test.
    let mut loop_in = is_block && keyword == "for";
    for (index, word) in words.iter().enumerate() {
        if *word != "in" {
            continue;
        }
        if std::mem::take(&mut loop_in) {
            continue;
        }
        let before = &words[..index];
        let is_test = before.ends_with(&["is"]) || before.ends_with(&["is", "not"]);
        if !is_test {
            return Err(TemplateError::Syntax(
                "the in operator is not available in templates; use the in test (x is in y)".into(),
            ));
        }
    }
    Ok(())
}

/// The code of a tag up to its closing delimiter and the source after it, found as the
/// template lexer finds it: outside string literals, and only where every bracket opened in
/// the tag is closed again (`{{ {'a': {'b': 1}} }}` is one tag).
fn split_tag<'a>(body: &'a str, close: &str) -> (&'a str, &'a str) {
    let bytes = body.as_bytes();
    let mut quote = None;
    let mut depth = 0isize;
    let mut index = 0;
    while index < bytes.len() {
        match (quote, bytes[index]) {
            (Some(_), b'\\') => index += 1,
            (Some(open), byte) if byte == open => quote = None,
            (Some(_), _) => {}
            (None, byte @ (b'\'' | b'"')) => quote = Some(byte),
            (None, _) if depth == 0 && bytes[index..].starts_with(close.as_bytes()) => {
                return (&body[..index], &body[index + close.len()..]);
            }
            (None, b'(' | b'[' | b'{') => depth += 1,
            (None, b')' | b']' | b'}') => depth -= 1,
            (None, _) => {}
        }
        index += 1;
    }
    (body, "")
}

/// The names and keywords of a tag's code, outside string literals.
fn code_words(code: &str) -> Vec<&str> {
    let mut words = Vec::new();
    let mut quote = None;
    let mut escaped = false;
    let mut word_start = None;
    for (index, c) in code.char_indices() {
        if let Some(open) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                _ if c == open => quote = None,
                _ => {}
            }
            continue;
        }
        let in_word = c.is_alphanumeric() || c == '_';
        match (word_start, in_word) {
            (None, true) => word_start = Some(index),
            (Some(start), false) => {
                words.push(&code[start..index]);
                word_start = None;
            }
            _ => {}
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
    }
    if let Some(start) = word_start {
        words.push(&code[start..]);
    }
    words
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
    let err = match template.render_captured_to(context, &mut out) {
        Ok(_) => return Ok(String::from_utf8_lossy(&out.buf).into_owned()),
        Err(err) => err,
    };
    if out.overflowed {
        return Err(TemplateError::OutputTooLarge);
    }
    if let Some(limit) = builtins::limit_of(&err) {
        return Err(match limit {
            Limit::Bytes => TemplateError::OutputTooLarge,
            Limit::Items => TemplateError::TooManyItems,
            Limit::Work => TemplateError::TooMuchWork,
        });
    }
    if err.kind() == minijinja::ErrorKind::UndefinedError {
        let missing = template
            .undeclared_variables(true)
            .into_iter()
            .find(|path| lookup(context, path).is_none());
        if let Some(path) = missing {
            return Err(TemplateError::UnknownField(path));
        }
    }
    Err(TemplateError::Render(err.to_string()))
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
    fn bounded_builtins_still_work() {
        check("{{ finding.tags | join(', ') | upper }}", Ok("A, B"));
        check("{{ finding.tags | map('upper') | join }}", Ok("AB"));
        check("{{ range(3) | list }}", Ok("[0, 1, 2]"));
        check("{{ range(5, 0, -2) | join(',') }}", Ok("5,3,1"));
        check("{{ [3, 1, 2] | sort | first }}", Ok("1"));
        check("{{ 'a,b' | split(',') | length }}", Ok("2"));
        check("{{ finding.tags | batch(1) | list | length }}", Ok("2"));
        check("{{ finding.tags | string }}", Ok(r#"["a", "b"]"#));
        check(
            "{{ 'b' is in finding.tags }} {{ 'x' is not in 'abc' }}",
            Ok("true true"),
        );
        check("{{ finding.severity is startingwith 'hi' }}", Ok("true"));
        check("{% for t in finding.tags %}{{ t }}{% endfor %}", Ok("ab"));
        check("{{ '}}' }}", Ok("}}"));
        check(
            "{{ missing | upper }}",
            Err(TemplateError::UnknownField("missing".into())),
        );
    }

    /// Renders a hostile template: it must be refused with `expected`, and quickly, which it
    /// could not be if the refusal came after building the value.
    fn check_refused(source: &str, expected: TemplateError) {
        let started = std::time::Instant::now();
        let got = render(source, &json!({"s": "x".repeat(10_000)}));
        let shown: String = source.chars().take(100).collect();
        assert_eq!(got, Err(expected), "{shown}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{shown}"
        );
    }

    #[test]
    fn multiplying_builtins_stop_at_their_limits() {
        let wide = "x".repeat(15_000);
        let join = format!("{{{{ range(1000) | join('{wide}') }}}}");
        check_refused(&join, TemplateError::OutputTooLarge);
        let inner = format!("{{{{ range(1000) | join('{wide}') | length }}}}");
        check_refused(&inner, TemplateError::OutputTooLarge);
        let half = "x".repeat(7_000);
        let nested = format!("{{{{ [range(1000) | join('{half}')] | join('{half}') }}}}");
        check_refused(&nested, TemplateError::OutputTooLarge);
        check_refused(
            "{{ range(100000) | join('x') }}",
            TemplateError::TooManyItems,
        );
        check_refused("{{ s | list | length }}", TemplateError::TooManyItems);
        check_refused(
            "{{ [1] | batch(1000000000000, 'x') }}",
            TemplateError::TooManyItems,
        );
        check_refused("{{ [1] | slice(1000000000) }}", TemplateError::TooManyItems);
        check_refused(
            "{{ [1] | batch(1000, s) | first | string | length }}",
            TemplateError::OutputTooLarge,
        );
        check_refused(
            "{{ [1] | batch(1000, s) | first | join | length }}",
            TemplateError::OutputTooLarge,
        );
        check_refused(
            "{{ [1] | batch(1000, s) | first is in 'abc' }}",
            TemplateError::OutputTooLarge,
        );
        check_refused(
            "{{ [1] | batch(1000, s) | first | map('upper') | map('length') | sum }}",
            TemplateError::TooMuchWork,
        );
        // A thousand lists of a thousand references to `s`, each lowered: fuel counts one
        // instruction for the million calls.
        let rows = "[1] | batch(1000, s) | first";
        let grid = format!("[{rows}] | batch(1000, {rows}) | first");
        check_refused(
            &format!("{{{{ {grid} | map('map', 'lower') | list }}}}"),
            TemplateError::TooMuchWork,
        );
    }

    #[test]
    fn runaway_templates_are_bounded() {
        let forever =
            "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}";
        let result = render(forever, &json!({}));
        assert!(
            matches!(&result, Err(TemplateError::Render(msg)) if msg.contains("fuel")),
            "{result:?}"
        );
        let huge = "{% for i in range(1000) %}{{ s }}{% endfor %}";
        check_refused(huge, TemplateError::OutputTooLarge);
        for bomb in [
            "{{ 'x' * 1000000000 }}",
            "{% set a = 'xx' %}{{ a }}",
            "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(0) }}",
            "{{ 'x' ~ 'y' }}",
            "{{ '}}' ~ s ~ s }}",
            "{{ {'a': {'b': 1}} ~ s }}",
            "{% if 'x' in s %}{% endif %}",
            "{{ [s, s] not in 'abc' }}",
            "{% for x in [1] if x in [1] %}{% endfor %}",
        ] {
            let result = render(bomb, &json!({"s": "x"}));
            assert!(
                matches!(result, Err(TemplateError::Syntax(_))),
                "{bomb}: {result:?}"
            );
        }
        for gone in [
            "{{ 'x' | indent(1000000000) }}",
            "{{ 'x' | replace('x', 'yy') }}",
            "{{ s | pprint }}",
            "{{ debug() }}",
            "{{ namespace() }}",
        ] {
            let result = render(gone, &json!({"s": "x"}));
            assert!(
                matches!(&result, Err(TemplateError::Render(msg)) if msg.contains("unknown")),
                "{gone}: {result:?}"
            );
        }
    }

    #[test]
    fn referenced_fields_are_listed() {
        let fields = referenced_fields("{{ finding.severity }} {{ actions.0.output.id }}").unwrap();
        assert!(fields.contains("finding.severity"), "{fields:?}");
        assert!(referenced_fields("{{ unclosed").is_err());
    }
}
