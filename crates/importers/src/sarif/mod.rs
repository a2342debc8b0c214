//! SARIF 2.1.0: one finding per result object of every run, streamed.
//!
//! The log is walked with serde visitors: runs one by one, and each run's `results` array one
//! result at a time, each deserialized into a small typed struct and turned into a finding at
//! once. A 200 MB log is therefore never held as a document tree, only as its findings. This
//! module never accepts SARIF 1.x or 2.0 drafts, and never trusts `ruleIndex` over `ruleId`.

mod model;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use self::model::{Rule, SarifResult, Tool};
use crate::error::{ImportError, Position};
use crate::fingerprint::{self, Grain};
use crate::format::Format;
use crate::json;
use crate::severity;
use crate::{FindingKind, ParsedScan, RawFinding, Suppression};

const SUPPORTED: &str = "SARIF 2.1.0 is supported";

pub(crate) fn parse_slice(input: &[u8]) -> Result<ParsedScan, ImportError> {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    json::check_slice(Format::Sarif, input)?;
    run(serde_json::Deserializer::from_slice(input))
}

pub(crate) fn parse_stream(input: impl Read) -> Result<ParsedScan, ImportError> {
    run(serde_json::Deserializer::from_reader(json::Guarded::new(
        input,
    )))
}

fn run<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<ParsedScan, ImportError> {
    let mut state = State::default();
    let outcome = LogSeed { state: &mut state }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(failure) = state.failure.take() {
        return Err(failure);
    }
    outcome.map_err(|err| json::from_serde(Format::Sarif, err))?;

    match state.version.as_deref() {
        Some(version) if is_supported(version) => {}
        Some(version) => return Err(unsupported(version)),
        None => {
            let message = "the log has no `version`";
            return Err(ImportError::malformed(
                Format::Sarif,
                Position::Document,
                message,
            ));
        }
    }
    Ok(ParsedScan {
        tool: state.tool.unwrap_or_else(|| "sarif".to_owned()),
        tool_version: state.tool_version,
        findings: state.findings,
        duplicates_merged: 0,
    })
}

fn is_supported(version: &str) -> bool {
    version == "2.1.0" || version.starts_with("2.1.0-")
}

fn unsupported(version: &str) -> ImportError {
    ImportError::UnsupportedVersion {
        format: Format::Sarif,
        version: version.to_owned(),
        supported: SUPPORTED,
    }
}

#[derive(Default)]
struct State {
    version: Option<String>,
    tool: Option<String>,
    tool_version: Option<String>,
    findings: Vec<RawFinding>,
    /// An error that is not serde's to describe, handed out of the visitors.
    failure: Option<ImportError>,
}

struct LogSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for LogSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LogSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF log object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => {
                    let version: String = map.next_value()?;
                    if !is_supported(&version) {
                        self.state.failure = Some(unsupported(&version));
                        return Err(de::Error::custom("unsupported SARIF version"));
                    }
                    self.state.version = Some(version);
                }
                "runs" => map.next_value_seed(RunsSeed { state: self.state })?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct RunsSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for RunsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RunsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of runs")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(RunSeed {
                state: &mut *self.state,
            })?
            .is_some()
        {}
        Ok(())
    }
}

struct RunSeed<'s> {
    state: &'s mut State,
}

impl<'de> DeserializeSeed<'de> for RunSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RunSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF run object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut context: Option<RunContext> = None;
        // Results that came before the run's `tool`; converted once the rules are known.
        let mut pending: Vec<SarifResult> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "tool" => {
                    let run_context = RunContext::new(map.next_value()?);
                    self.state
                        .tool
                        .get_or_insert_with(|| run_context.tool.clone());
                    if self.state.tool_version.is_none() {
                        self.state.tool_version = run_context.tool_version.clone();
                    }
                    context = Some(run_context);
                }
                "results" => {
                    let sink = match &context {
                        Some(context) => Sink::Convert(context, &mut self.state.findings),
                        None => Sink::Hold(&mut pending),
                    };
                    map.next_value_seed(ResultsSeed { sink })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let context = context.unwrap_or_else(|| RunContext::new(Tool::default()));
        let converted = pending.into_iter().map(|result| context.convert(result));
        self.state.findings.extend(converted);
        Ok(())
    }
}

enum Sink<'a> {
    Convert(&'a RunContext, &'a mut Vec<RawFinding>),
    Hold(&'a mut Vec<SarifResult>),
}

struct ResultsSeed<'a> {
    sink: Sink<'a>,
}

impl<'de> DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ResultsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of results")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.sink {
            Sink::Convert(context, findings) => {
                while let Some(result) = seq.next_element::<SarifResult>()? {
                    findings.push(context.convert(result));
                }
            }
            Sink::Hold(pending) => {
                while let Some(result) = seq.next_element::<SarifResult>()? {
                    pending.push(result);
                }
            }
        }
        Ok(())
    }
}

/// What a run's results need from its `tool`: the name and the rules.
struct RunContext {
    tool: String,
    tool_version: Option<String>,
    kind: FindingKind,
    rules: Vec<Rule>,
    driver_rules: usize,
    by_id: HashMap<String, usize>,
}

impl RunContext {
    fn new(tool: Tool) -> RunContext {
        let Tool { driver, extensions } = tool;
        let name = if driver.name.is_empty() {
            "sarif".to_owned()
        } else {
            driver.name
        };
        let tool_version = driver.version.or(driver.semantic_version);
        let driver_rules = driver.rules.len();
        let mut rules = driver.rules;
        rules.extend(extensions.into_iter().flat_map(|extension| extension.rules));

        let mut by_id = HashMap::with_capacity(rules.len());
        for (index, rule) in rules.iter().enumerate() {
            if let Some(id) = &rule.id {
                by_id.entry(id.clone()).or_insert(index);
            }
        }
        RunContext {
            kind: kind_of_tool(&name),
            tool: name,
            tool_version,
            rules,
            driver_rules,
            by_id,
        }
    }

    /// The rule of a result: `ruleIndex` only when it agrees with `ruleId`, because merged logs
    /// carry indexes that point at another run's rules.
    fn rule(&self, id: Option<&str>, index: Option<i64>) -> Option<&Rule> {
        let indexed = index
            .and_then(|index| usize::try_from(index).ok())
            .filter(|&index| index < self.driver_rules)
            .map(|index| &self.rules[index]);
        if let Some(rule) = indexed.filter(|rule| id.is_none() || rule.id.as_deref() == id) {
            return Some(rule);
        }
        let id = id?;
        let hierarchical_parent = id.split('/').next().unwrap_or(id);
        let found = self
            .by_id
            .get(id)
            .or_else(|| self.by_id.get(hierarchical_parent));
        found.map(|&index| &self.rules[index])
    }

    fn convert(&self, result: SarifResult) -> RawFinding {
        let reference = result.rule.as_ref();
        let rule_id = result
            .rule_id
            .clone()
            .or_else(|| reference.and_then(|r| r.id.clone()));
        let rule_index = result
            .rule_index
            .or_else(|| reference.and_then(|r| r.index));
        let rule = self.rule(rule_id.as_deref(), rule_index);
        let rule_id = rule_id
            .or_else(|| rule.and_then(|rule| rule.id.clone()))
            .unwrap_or_default();

        let level = result
            .level
            .clone()
            .or_else(|| rule.and_then(|r| r.default_configuration.as_ref()?.level.clone()))
            .unwrap_or_else(|| "warning".to_owned());
        let security_severity = result
            .properties
            .as_ref()
            .and_then(|p| p.security_severity.as_ref())
            .or_else(|| rule.and_then(|r| r.properties.as_ref()?.security_severity.as_ref()))
            .and_then(|value| value.as_text());
        let cvss_score = security_severity
            .as_deref()
            .and_then(|s| s.trim().parse::<f64>().ok());
        let severity = security_severity
            .as_deref()
            .and_then(severity::sarif_security_severity)
            .or_else(|| severity::sarif_level(&level))
            .unwrap_or(severity::UNRECOGNIZED);

        let location = result
            .locations
            .first()
            .and_then(|l| l.physical_location.as_ref());
        let file_path = location
            .and_then(|l| l.artifact_location.as_ref()?.uri.as_deref())
            .map(fingerprint::normalize_path);
        let region = location.and_then(|l| l.region.as_ref());
        let line = region.and_then(|r| r.start_line);
        let snippet = region.and_then(|r| r.snippet.as_ref()?.text.as_deref());

        let message = render_message(result.message.as_ref(), rule);
        let tool_fingerprint = tool_fingerprint(&result);
        let fingerprint = match &tool_fingerprint {
            Some(id) => fingerprint::from_tool(&self.tool, &rule_id, file_path.as_deref(), id),
            None => {
                let key = message_key(result.message.as_ref()).unwrap_or_else(|| message.clone());
                fingerprint::from_content(&self.tool, &rule_id, file_path.as_deref(), &key, snippet)
            }
        };
        let suppressed = result.suppressions.iter().any(|s| {
            !s.status
                .as_deref()
                .is_some_and(|status| status.eq_ignore_ascii_case("rejected"))
        });

        RawFinding {
            fingerprint,
            tool_fingerprint,
            title: rule_title(rule).unwrap_or_else(|| first_line(&message, &rule_id)),
            description: (!message.is_empty()).then_some(message),
            rule_id,
            severity,
            vendor_severity: Some(level),
            status_hint: suppressed.then_some(Suppression::AcceptedRisk),
            file_path,
            line,
            package_name: None,
            package_version: None,
            purl: None,
            vulnerability_ids: Vec::new(),
            cvss_score,
            kind: self.kind,
            // One finding per result object, even where a log repeats one verbatim.
            grain: Grain::EachResult,
        }
    }
}

/// The scanner's own identity of a result: `fingerprints`, else `partialFingerprints`, as
/// sorted `name=value` pairs.
fn tool_fingerprint(result: &SarifResult) -> Option<String> {
    let prints = if result.fingerprints.is_empty() {
        &result.partial_fingerprints
    } else {
        &result.fingerprints
    };
    if prints.is_empty() {
        return None;
    }
    let pairs: Vec<String> = prints
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    Some(pairs.join(";"))
}

/// The text of a result's message, with `{0}` placeholders of the rule's message string filled
/// in when the result only names a message id.
fn render_message(message: Option<&model::Message>, rule: Option<&Rule>) -> String {
    let Some(message) = message else {
        return String::new();
    };
    if let Some(text) = &message.text {
        return text.clone();
    }
    let template = message
        .id
        .as_ref()
        .and_then(|id| rule?.message_strings.get(id)?.text.clone())
        .unwrap_or_default();
    let mut text = template;
    for (index, argument) in message.arguments.iter().enumerate() {
        text = text.replace(&format!("{{{index}}}"), argument);
    }
    text
}

/// What identifies a message for fingerprinting when it has no text: its id and arguments.
fn message_key(message: Option<&model::Message>) -> Option<String> {
    let message = message?;
    if message.text.is_some() {
        return None;
    }
    let id = message.id.as_deref().unwrap_or_default();
    Some(format!("{id}({})", message.arguments.join("\u{1f}")))
}

fn rule_title(rule: Option<&Rule>) -> Option<String> {
    let rule = rule?;
    let short = rule.short_description.as_ref().and_then(|t| t.text.clone());
    let full = || rule.full_description.as_ref().and_then(|t| t.text.clone());
    short
        .or_else(full)
        .or_else(|| rule.name.clone())
        .filter(|title| !title.trim().is_empty())
}

fn first_line(message: &str, rule_id: &str) -> String {
    let line = message.lines().map(str::trim).find(|line| !line.is_empty());
    line.unwrap_or(rule_id).chars().take(200).collect()
}

/// The kind of findings a tool reports, from its driver name; code analysis unless known.
fn kind_of_tool(name: &str) -> FindingKind {
    let name = name.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|word| name.contains(word));
    if has(&["gitleaks", "trufflehog", "secret", "detect-secrets"]) {
        FindingKind::Secret
    } else if has(&[
        "grype",
        "trivy",
        "dependency-check",
        "osv-scanner",
        "snyk open source",
    ]) {
        FindingKind::Sca
    } else if has(&[
        "dockle",
        "hadolint",
        "checkov",
        "kics",
        "tfsec",
        "terrascan",
    ]) {
        FindingKind::Iac
    } else {
        FindingKind::Sast
    }
}
