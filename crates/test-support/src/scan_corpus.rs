//! The scan corpus (`scans/manifest.json` under the corpus root): its entries and, for each,
//! the number of findings and the count per normalized severity that importing it must give.
//!
//! Expected values come straight from the manifest: the finding count at the tool's own grain
//! (its unique count where it gives one), and the vendor words mapped with a small table of our
//! own that is independent of the importers' mappers. This module never reads what the code
//! under test produced to decide what is right, and never writes into the corpus.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use domain::Severity;
use serde::Deserialize;
use serde_json::Value;

/// One result file of the corpus and what importing it must give.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    /// Relative to the `scans` folder; the first path segment is the format's wire name.
    pub file: String,
    pub expect: Value,
}

impl Entry {
    /// The format's wire name (`sarif`, `checkmarx-one`, …).
    pub fn format(&self) -> &str {
        self.file.split('/').next().unwrap_or_default()
    }

    pub fn body(&self, corpus: &Path) -> anyhow::Result<Vec<u8>> {
        let path = corpus.join("scans").join(&self.file);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    }
}

/// The corpus root holding `scans/manifest.json`: `PMAP_CORPUS_DIR`, else the shared folder
/// beside the repository. `None` when it is not there, so tests can say they skipped.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PMAP_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    dir.join("scans/manifest.json").is_file().then_some(dir)
}

pub fn load_manifest(corpus: &Path) -> anyhow::Result<Vec<Entry>> {
    let path = corpus.join("scans/manifest.json");
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).context("parsing the scan manifest")
}

/// What importing one entry must store.
#[derive(Clone, Debug, PartialEq)]
pub struct Expected {
    /// Findings: the manifest's unique count where it gives one, else its `findings`.
    pub findings: i64,
    /// Count per severity (zero counts left out), when the manifest pins every one down.
    pub severities: Option<BTreeMap<Severity, i64>>,
    /// Most findings of each severity there can be: the manifest's per-result counts (equal to
    /// `severities` when that is known); `None` when some results have no severity there.
    pub severities_at_most: Option<BTreeMap<Severity, i64>>,
    /// Results the file lists again at the manifest's grain (the same Snyk issue per dependency
    /// path, the same Grype match per location, a Fortify issue in two sections): merged.
    pub repeats: i64,
    /// Formats that count kinds of findings apart (Trivy), one part each; empty otherwise.
    pub parts: Vec<Part>,
}

/// The findings of some kinds within one entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Part {
    /// Finding kinds as the API names them (`sca`, `container`, `iac`, `secret`, …).
    pub kinds: &'static [&'static str],
    pub findings: i64,
    pub severities: Option<BTreeMap<Severity, i64>>,
}

/// The manifest keys that give the count at the tool's own grain, where it repeats results.
const UNIQUE_COUNTS: [&str; 4] = [
    "unique_project_issue_package_version",
    "unique_vuln_package_version",
    "unique_component_version_vuln",
    "distinct_instance_ids",
];

/// The manifest keys whose vendor words decide the severity, best first: FVDL's derived
/// priority, SARIF's `security-severity` band, the count per severity at the unique grain, and
/// the raw vendor words.
const SEVERITY_SOURCES: [&str; 4] = [
    "friority_computed",
    "by_security_severity_band",
    "unique_by_vendor_severity",
    "by_vendor_severity",
];

/// The expectation for one entry.
pub fn expected(entry: &Entry) -> Expected {
    let expect = &entry.expect;
    if entry.format() == "trivy" {
        return expected_trivy(expect);
    }
    let count = |value: &Value| value.as_i64().unwrap_or(0);
    let listed = count(&expect["findings"]);
    let findings = UNIQUE_COUNTS
        .iter()
        .find_map(|key| expect.get(*key))
        .map_or(listed, count);
    let results = expect.get("issue_elements_total").map_or(listed, count);

    let source = SEVERITY_SOURCES
        .iter()
        .find_map(|key| expect.get(*key))
        .unwrap_or(&Value::Null);
    let per_result = normalize(source);
    Expected {
        findings,
        severities: pinned(&per_result, findings),
        severities_at_most: Some(per_result),
        repeats: results - findings,
        parts: Vec::new(),
    }
}

/// The count per severity of `findings` findings whose per-result counts are `per_result`:
/// those counts when they add up; with repeats among the results, all of one severity when
/// that is the only one; else unknown, since the manifest does not say which severity the
/// repeats had.
fn pinned(per_result: &BTreeMap<Severity, i64>, findings: i64) -> Option<BTreeMap<Severity, i64>> {
    let results: i64 = per_result.values().sum();
    if results == findings {
        return Some(per_result.clone());
    }
    match per_result.keys().collect::<Vec<_>>()[..] {
        [only] if results > findings => Some(BTreeMap::from([(*only, findings)])),
        _ => None,
    }
}

/// Trivy counts vulnerabilities, misconfigurations and secrets apart; the manifest gives no
/// severities for secrets, so with secrets only the total is known.
fn expected_trivy(expect: &Value) -> Expected {
    let count = |key: &str| expect[key].as_i64().unwrap_or(0);
    let packages = Part {
        kinds: &["sca", "container"],
        findings: count("findings"),
        severities: Some(normalize(&expect["by_vendor_severity"])),
    };
    let misconfigurations = Part {
        kinds: &["iac"],
        findings: count("misconfigurations"),
        severities: Some(normalize(&expect["misconfigurations_by_severity"])),
    };
    let secrets = Part {
        kinds: &["secret"],
        findings: count("secrets"),
        severities: (count("secrets") == 0).then(BTreeMap::new),
    };
    let parts = vec![packages, misconfigurations, secrets];

    let findings = parts.iter().map(|part| part.findings).sum();
    let mut severities = Some(BTreeMap::new());
    for part in &parts {
        severities = severities
            .zip(part.severities.as_ref())
            .map(|(mut all, some)| {
                for (severity, n) in some {
                    *all.entry(*severity).or_insert(0) += n;
                }
                all
            });
    }
    Expected {
        findings,
        severities_at_most: severities.clone(),
        severities,
        repeats: 0,
        parts,
    }
}

fn normalize(counts: &Value) -> BTreeMap<Severity, i64> {
    let mut out = BTreeMap::new();
    for (word, count) in counts.as_object().into_iter().flatten() {
        let severity = expected_severity(word).unwrap_or_else(|| panic!("no table entry: {word}"));
        *out.entry(severity).or_insert(0) += count.as_i64().unwrap_or(0);
    }
    out.retain(|_, n| *n != 0);
    out
}

/// SPEC §5.2's default tables, flattened over every vendor word the manifest uses. Banded keys
/// look like `critical(>=9.0)`; non-numeric security severities like `non-numeric:CRITICAL`.
pub fn expected_severity(word: &str) -> Option<Severity> {
    let word = word.split('(').next().unwrap_or(word);
    let word = word
        .strip_prefix("non-numeric:")
        .unwrap_or(word)
        .to_ascii_lowercase();
    let severity = match word.as_str() {
        "critical" => Severity::Critical,
        "high" | "error" | "severe" | "important" => Severity::High,
        "medium" | "warning" | "moderate" => Severity::Medium,
        "low" | "note" => Severity::Low,
        "info" | "information" | "none" | "unknown" | "negligible" | "unimportant" | "ok"
        | "unspecified" => Severity::Info,
        _ => return None,
    };
    Some(severity)
}

/// The per-severity part of a scan's `counts` object, zero counts left out.
pub fn counts_by_severity(counts: &Value) -> BTreeMap<Severity, i64> {
    Severity::ALL
        .into_iter()
        .filter_map(|s| {
            let n = counts[s.as_str()].as_i64().unwrap_or(0);
            (n != 0).then_some((s, n))
        })
        .collect()
}
