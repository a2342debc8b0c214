//! The typed subset of SARIF 2.1.0 that findings are built from. Everything else in a log is
//! skipped by serde without being stored; nothing here is a generic document tree.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde::de::IgnoredAny;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Tool {
    #[serde(default)]
    pub driver: ToolComponent,
    #[serde(default)]
    pub extensions: Vec<ToolComponent>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ToolComponent {
    #[serde(default)]
    pub name: String,
    pub version: Option<String>,
    pub semantic_version: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    pub id: Option<String>,
    pub name: Option<String>,
    pub short_description: Option<Text>,
    pub full_description: Option<Text>,
    pub default_configuration: Option<Configuration>,
    pub properties: Option<Properties>,
    #[serde(default)]
    pub message_strings: HashMap<String, Text>,
}

#[derive(Deserialize, Default)]
pub(super) struct Text {
    pub text: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct Configuration {
    pub level: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct Properties {
    #[serde(rename = "security-severity")]
    pub security_severity: Option<Scalar>,
}

/// A property value that should be a string or a number but may be anything.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Scalar {
    Text(String),
    Number(f64),
    Other(IgnoredAny),
}

impl Scalar {
    pub fn as_text(&self) -> Option<String> {
        match self {
            Scalar::Text(text) => Some(text.clone()),
            Scalar::Number(number) => Some(number.to_string()),
            Scalar::Other(_) => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SarifResult {
    pub rule_id: Option<String>,
    pub rule_index: Option<i64>,
    pub rule: Option<RuleReference>,
    pub level: Option<String>,
    pub message: Option<Message>,
    #[serde(default)]
    pub locations: Vec<Location>,
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
    #[serde(default)]
    pub partial_fingerprints: BTreeMap<String, String>,
    #[serde(default)]
    pub suppressions: Vec<Suppression>,
    pub properties: Option<Properties>,
}

#[derive(Deserialize)]
pub(super) struct RuleReference {
    pub id: Option<String>,
    pub index: Option<i64>,
}

#[derive(Deserialize, Default)]
pub(super) struct Message {
    pub text: Option<String>,
    pub id: Option<String>,
    #[serde(default)]
    pub arguments: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Location {
    pub physical_location: Option<PhysicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PhysicalLocation {
    pub artifact_location: Option<ArtifactLocation>,
    pub region: Option<Region>,
}

#[derive(Deserialize)]
pub(super) struct ArtifactLocation {
    pub uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Region {
    pub start_line: Option<i64>,
    pub snippet: Option<Text>,
}

#[derive(Deserialize)]
pub(super) struct Suppression {
    pub status: Option<String>,
}
