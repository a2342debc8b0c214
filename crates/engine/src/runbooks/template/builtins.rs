//! The filters, tests and functions a template may call, each bounded before it allocates.
//!
//! The environment starts empty and gets only what is registered here, so a minijinja builtin
//! that is not listed does not exist for templates. Each listed builtin has a [`Shape`] that
//! says how its arguments are checked before it runs: sequences at most [`MAX_ITEMS`] long
//! (lazy ones are collected first, stopping one past the limit), values that are not strings
//! written out into at most [`MAX_OUTPUT_BYTES`] before a text filter sees them. After it
//! returns, a string longer than [`MAX_OUTPUT_BYTES`] or a list longer than [`MAX_ITEMS`] is
//! refused. The builtins whose result depends on an argument rather than on their input
//! (`range`, `join`, `list`, `string`, and the counts of `batch` and `slice`) are written here
//! so that they stop at those limits instead of checking afterwards.
//!
//! Fuel counts template instructions, not the calls `map` and `select` make for each item, so
//! every call is also charged what it reads and makes against one budget per rendering,
//! [`WORK_BUDGET_BYTES`]: what a rendering allocates in filters, and the time it spends there,
//! stay proportional to that budget.
//!
//! This module never renders a template and never does IO.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use minijinja::value::{Object, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value, filters, functions, tests};

use super::{MAX_ITEMS, MAX_OUTPUT_BYTES};

/// What the filter calls of one rendering may read and make together, in bytes.
pub const WORK_BUDGET_BYTES: usize = 4 * 1024 * 1024;
/// What every call costs besides what it reads and makes, so that calls on tiny values are
/// counted too.
const CALL_COST_BYTES: usize = 64;
/// What one item of a sequence is counted as.
const ITEM_COST_BYTES: usize = std::mem::size_of::<Value>();
/// The name of the per-rendering work counter among the state's temps.
const WORK_TEMP: &str = "pmap.work";

/// Which bound a refused call ran into. It travels as the source of the minijinja error, so
/// that `render` can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("a value would pass {MAX_OUTPUT_BYTES} bytes")]
    Bytes,
    #[error("a list would pass {MAX_ITEMS} items")]
    Items,
    #[error("the filters would do more than {WORK_BUDGET_BYTES} bytes of work")]
    Work,
}

/// The limit an error (or one of its causes) ran into, if it came from here.
pub fn limit_of(err: &Error) -> Option<Limit> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(limit) = current.downcast_ref::<Limit>() {
            return Some(*limit);
        }
        cause = current.source();
    }
    None
}

/// Registers the bounded builtins on an empty environment.
pub fn install(env: &mut Environment<'static>) {
    for (name, shape, builtin) in guarded_filters() {
        env.add_filter(name, move |state: &State, args: Rest<Value>| {
            call(state, shape, &builtin, &args)
        });
    }
    env.add_filter("join", join);
    env.add_filter("list", list);
    env.add_filter("string", string);
    env.add_function("range", range);
    let dict = Value::from_function(functions::dict);
    env.add_function("dict", move |state: &State, args: Rest<Value>| {
        call(state, Shape::Items, &dict, &args)
    });

    for (name, test) in plain_tests() {
        env.add_test(name, move |state: &State, args: Rest<Value>| {
            test.call(state, &args).map(|v| v.is_true())
        });
    }
    env.add_test("in", contained_in);
    env.add_test("startingwith", |a: &Value, b: &Value| {
        Ok::<_, Error>(text_of(a)?.starts_with(&text_of(b)?))
    });
    env.add_test("endingwith", |a: &Value, b: &Value| {
        Ok::<_, Error>(text_of(a)?.ends_with(&text_of(b)?))
    });
}

/// How a delegated builtin's arguments are checked.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Reads at most one item of its input and makes nothing new: passed through.
    Scalar,
    /// Walks its sequence and map arguments, and its input when that is a string.
    Items,
    /// [`Shape::Items`], and its second argument counts the items it makes.
    Counted,
    /// Reads text: arguments that are neither strings nor scalars are written out first.
    Text,
}

/// The minijinja filters templates get through [`call`]. Not here: `replace`, `indent`,
/// `format` (they widen strings), `pprint` (a debugging aid), and the ones written below.
fn guarded_filters() -> Vec<(&'static str, Shape, Value)> {
    use Shape::{Counted, Items, Scalar, Text};
    vec![
        ("abs", Scalar, Value::from_function(filters::abs)),
        ("attr", Scalar, Value::from_function(filters::attr)),
        ("bool", Scalar, Value::from_function(filters::bool)),
        ("count", Scalar, Value::from_function(filters::length)),
        ("d", Scalar, Value::from_function(filters::default)),
        ("default", Scalar, Value::from_function(filters::default)),
        ("first", Scalar, Value::from_function(filters::first)),
        ("float", Scalar, Value::from_function(filters::float)),
        ("int", Scalar, Value::from_function(filters::int)),
        ("length", Scalar, Value::from_function(filters::length)),
        ("round", Scalar, Value::from_function(filters::round)),
        ("batch", Counted, Value::from_function(filters::batch)),
        ("slice", Counted, Value::from_function(filters::slice)),
        ("chain", Items, Value::from_function(filters::chain)),
        ("dictsort", Items, Value::from_function(filters::dictsort)),
        ("groupby", Items, Value::from_function(filters::groupby)),
        ("items", Items, Value::from_function(filters::items)),
        ("last", Items, Value::from_function(filters::last)),
        ("map", Items, Value::from_function(filters::map)),
        ("max", Items, Value::from_function(filters::max)),
        ("min", Items, Value::from_function(filters::min)),
        ("reject", Items, Value::from_function(filters::reject)),
        (
            "rejectattr",
            Items,
            Value::from_function(filters::rejectattr),
        ),
        ("reverse", Items, Value::from_function(filters::reverse)),
        ("select", Items, Value::from_function(filters::select)),
        (
            "selectattr",
            Items,
            Value::from_function(filters::selectattr),
        ),
        ("sort", Items, Value::from_function(filters::sort)),
        ("sum", Items, Value::from_function(filters::sum)),
        ("unique", Items, Value::from_function(filters::unique)),
        ("zip", Items, Value::from_function(filters::zip)),
        (
            "capitalize",
            Text,
            Value::from_function(filters::capitalize),
        ),
        ("e", Text, Value::from_function(filters::escape)),
        ("escape", Text, Value::from_function(filters::escape)),
        ("lines", Text, Value::from_function(filters::lines)),
        ("lower", Text, Value::from_function(filters::lower)),
        ("safe", Text, Value::from_function(filters::safe)),
        ("split", Text, Value::from_function(filters::split)),
        ("title", Text, Value::from_function(filters::title)),
        ("trim", Text, Value::from_function(filters::trim)),
        ("upper", Text, Value::from_function(filters::upper)),
    ]
}

/// The minijinja tests that compare or classify without writing anything out.
fn plain_tests() -> Vec<(&'static str, Value)> {
    let is_eq = Value::from_function(tests::is_eq);
    let is_ne = Value::from_function(tests::is_ne);
    let is_lt = Value::from_function(tests::is_lt);
    let is_le = Value::from_function(tests::is_le);
    let is_gt = Value::from_function(tests::is_gt);
    let is_ge = Value::from_function(tests::is_ge);
    vec![
        ("undefined", Value::from_function(tests::is_undefined)),
        ("defined", Value::from_function(tests::is_defined)),
        ("none", Value::from_function(tests::is_none)),
        ("safe", Value::from_function(tests::is_safe)),
        ("escaped", Value::from_function(tests::is_safe)),
        ("boolean", Value::from_function(tests::is_boolean)),
        ("odd", Value::from_function(tests::is_odd)),
        ("even", Value::from_function(tests::is_even)),
        ("divisibleby", Value::from_function(tests::is_divisibleby)),
        ("number", Value::from_function(tests::is_number)),
        ("integer", Value::from_function(tests::is_integer)),
        ("int", Value::from_function(tests::is_integer)),
        ("float", Value::from_function(tests::is_float)),
        ("string", Value::from_function(tests::is_string)),
        ("sequence", Value::from_function(tests::is_sequence)),
        ("iterable", Value::from_function(tests::is_iterable)),
        ("mapping", Value::from_function(tests::is_mapping)),
        ("lower", Value::from_function(tests::is_lower)),
        ("upper", Value::from_function(tests::is_upper)),
        ("sameas", Value::from_function(tests::is_sameas)),
        ("true", Value::from_function(tests::is_true)),
        ("false", Value::from_function(tests::is_false)),
        ("filter", Value::from_function(tests::is_filter)),
        ("test", Value::from_function(tests::is_test)),
        ("eq", is_eq.clone()),
        ("equalto", is_eq.clone()),
        ("==", is_eq),
        ("ne", is_ne.clone()),
        ("!=", is_ne),
        ("lt", is_lt.clone()),
        ("lessthan", is_lt.clone()),
        ("<", is_lt),
        ("le", is_le.clone()),
        ("<=", is_le),
        ("gt", is_gt.clone()),
        ("greaterthan", is_gt.clone()),
        (">", is_gt),
        ("ge", is_ge.clone()),
        (">=", is_ge),
    ]
}

/// Calls a delegated builtin with its arguments checked, then checks and charges its result.
fn call(state: &State, shape: Shape, builtin: &Value, args: &[Value]) -> Result<Value, Error> {
    let mut read = CALL_COST_BYTES;
    let mut checked = Vec::with_capacity(args.len());
    for (index, arg) in args.iter().enumerate() {
        let (arg, size) = check_arg(shape, index, arg)?;
        read += size;
        checked.push(arg);
    }
    charge(state, read)?;

    let result = builtin.call(state, &checked)?;
    let made = match result.kind() {
        ValueKind::String => text_size(&result)?,
        ValueKind::Seq | ValueKind::Map => items_size(result.len().unwrap_or(0))?,
        _ => 0,
    };
    charge(state, made)?;
    Ok(result)
}

/// One argument as the builtin will get it, and what reading it is charged.
fn check_arg(shape: Shape, index: usize, arg: &Value) -> Result<(Value, usize), Error> {
    if arg.is_kwargs() || matches!(shape, Shape::Scalar) {
        return Ok((arg.clone(), 0));
    }
    if arg.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    if matches!(shape, Shape::Text) {
        let text = match arg.kind() {
            ValueKind::String | ValueKind::Number | ValueKind::Bool | ValueKind::None => {
                arg.clone()
            }
            _ => Value::from(write_out(arg)?),
        };
        let size = text.as_str().map_or(0, str::len);
        return Ok((text, size));
    }
    if matches!(shape, Shape::Counted) && index == 1 {
        let count = arg.as_i64().unwrap_or(0);
        if count > MAX_ITEMS as i64 {
            return Err(refuse(Limit::Items));
        }
        return Ok((arg.clone(), 0));
    }
    // A string is walked only as the input; further string arguments are names, test
    // arguments or fill values, passed on as they are.
    let walked_string = index == 0 && arg.kind() == ValueKind::String;
    match arg.kind() {
        ValueKind::Seq | ValueKind::Map => {
            let len = arg.len().unwrap_or(0);
            Ok((arg.clone(), items_size(len)?))
        }
        ValueKind::String if walked_string => {
            let len = arg.len().unwrap_or(0);
            Ok((arg.clone(), items_size(len)?))
        }
        ValueKind::Iterable => {
            let items = collect_items(arg)?;
            let size = items_size(items.len())?;
            Ok((Value::from(items), size))
        }
        _ => Ok((arg.clone(), 0)),
    }
}

/// `join`: writes the items and the separator into a buffer that stops at the limit, so
/// `range(1000) | join(<16 KiB>)` never holds more than [`MAX_OUTPUT_BYTES`].
fn join(state: &State, value: &Value, joiner: Option<Value>) -> Result<Value, Error> {
    let items = items_of(value)?;
    let joiner = match joiner {
        Some(joiner) => text_of(&joiner)?,
        None => String::new(),
    };
    let mut out = Capped::default();
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.write_str(&joiner).map_err(|_| refuse(Limit::Bytes))?;
        }
        match item.as_str() {
            Some(text) => out.write_str(text),
            None => write!(out, "{item}"),
        }
        .map_err(|_| refuse(Limit::Bytes))?;
    }
    charge(
        state,
        CALL_COST_BYTES + items_size(items.len())? + out.0.len(),
    )?;
    Ok(Value::from(out.0))
}

/// `list`: the items of a sequence, string, map or iterator, at most [`MAX_ITEMS`].
fn list(state: &State, value: &Value) -> Result<Value, Error> {
    let items = items_of(value)?;
    charge(state, CALL_COST_BYTES + items_size(items.len())?)?;
    Ok(Value::from(items))
}

/// `string`: a value written out, at most [`MAX_OUTPUT_BYTES`].
fn string(state: &State, value: &Value) -> Result<Value, Error> {
    let text = text_of(value)?;
    charge(state, CALL_COST_BYTES + text.len())?;
    Ok(if value.kind() == ValueKind::String {
        value.clone()
    } else {
        Value::from(text)
    })
}

/// `range(stop)`, `range(start, stop)`, `range(start, stop, step)`: at most [`MAX_ITEMS`]
/// numbers, made as a list.
fn range(state: &State, lower: i64, upper: Option<i64>, step: Option<i64>) -> Result<Value, Error> {
    let (start, stop) = match upper {
        Some(upper) => (lower, upper),
        None => (0, lower),
    };
    let step = step.unwrap_or(1);
    if step == 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "range step cannot be 0",
        ));
    }
    let items: Vec<i64> = std::iter::successors(Some(start), |n| n.checked_add(step))
        .take_while(|n| if step > 0 { *n < stop } else { *n > stop })
        .take(MAX_ITEMS + 1)
        .collect();
    if items.len() > MAX_ITEMS {
        return Err(refuse(Limit::Items));
    }
    charge(state, CALL_COST_BYTES + items_size(items.len())?)?;
    Ok(Value::from(items))
}

/// The `in` test. A string holds a string; for anything else minijinja would first write the
/// value out in full, so that is done here within the limit.
fn contained_in(state: &State, value: &Value, container: &Value) -> Result<bool, Error> {
    if let Some(haystack) = container.as_str()
        && value.as_str().is_none()
    {
        return Ok(haystack.contains(&text_of(value)?));
    }
    tests::is_in(state, value, container)
}

/// The items of a value, refused past [`MAX_ITEMS`] without reading further.
fn items_of(value: &Value) -> Result<Vec<Value>, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    collect_items(value)
}

fn collect_items(value: &Value) -> Result<Vec<Value>, Error> {
    let items: Vec<Value> = value.try_iter()?.take(MAX_ITEMS + 1).collect();
    if items.len() > MAX_ITEMS {
        return Err(refuse(Limit::Items));
    }
    Ok(items)
}

/// A value as text: strings as they are, anything else written out within the limit.
fn text_of(value: &Value) -> Result<String, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    match value.as_str() {
        Some(text) => Ok(text.to_owned()),
        None => write_out(value),
    }
}

fn write_out(value: &Value) -> Result<String, Error> {
    let mut out = Capped::default();
    write!(out, "{value}").map_err(|_| refuse(Limit::Bytes))?;
    Ok(out.0)
}

fn text_size(value: &Value) -> Result<usize, Error> {
    let len = value.as_str().map_or(0, str::len);
    if len > MAX_OUTPUT_BYTES {
        return Err(refuse(Limit::Bytes));
    }
    Ok(len)
}

fn items_size(len: usize) -> Result<usize, Error> {
    if len > MAX_ITEMS {
        return Err(refuse(Limit::Items));
    }
    Ok(len * ITEM_COST_BYTES)
}

fn refuse(limit: Limit) -> Error {
    Error::new(ErrorKind::InvalidOperation, limit.to_string()).with_source(limit)
}

/// The work done by the filters of one rendering so far; kept among the state's temps, which
/// live as long as the rendering.
#[derive(Debug, Default)]
struct Work(AtomicUsize);

impl Object for Work {}

fn charge(state: &State, bytes: usize) -> Result<(), Error> {
    let work = state.get_or_set_temp_object(WORK_TEMP, Work::default);
    let total = work
        .0
        .fetch_add(bytes, Ordering::Relaxed)
        .saturating_add(bytes);
    if total > WORK_BUDGET_BYTES {
        return Err(refuse(Limit::Work));
    }
    Ok(())
}

/// A string that refuses to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct Capped(String);

impl std::fmt::Write for Capped {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        if self.0.len() + text.len() > MAX_OUTPUT_BYTES {
            return Err(std::fmt::Error);
        }
        self.0.push_str(text);
        Ok(())
    }
}
