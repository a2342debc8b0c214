//! The scan corpus (`scans/manifest.json` under the corpus root): its entries and, for each,
//! the number of findings and the count per normalized severity that importing it must give.
//!
//! Expected values come from the manifest's vendor words, mapped with a small table of our own
//! that is independent of the importers' mappers, plus the documented adjustments where the
//! manifest's grain differs from "one finding per fingerprint". This module never reads what
//! the code under test produced to decide what is right, and never writes into the corpus.

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
    /// Findings after merging repeats of one fingerprint.
    pub findings: i64,
    /// Count per severity (zero counts left out), when the manifest gives every severity.
    pub severities: Option<BTreeMap<Severity, i64>>,
}

/// Where the manifest's raw counts and the SPEC's "same fingerprint twice is one finding"
/// disagree. Counts are relative to the manifest's unique count (or `findings`).
struct Adjustment {
    file: &'static str,
    findings: i64,
    severities: &'static [(Severity, i64)],
}

const ADJUSTMENTS: &[Adjustment] = &[
    // Gitleaks reports each of 4 secrets once per commit holding it, at the same place.
    Adjustment {
        file: "sarif/gitleaks-7.5.0.sarif",
        findings: -4,
        severities: &[(Severity::Medium, -4)],
    },
    // Three results repeated verbatim six times each: 27 objects, 12 problems.
    Adjustment {
        file: "sarif/shell-script-analysis-partial-fingerprints.sarif",
        findings: -15,
        severities: &[(Severity::Low, -15)],
    },
    // Package findings are keyed by package and vulnerability, not version: one minimist issue.
    Adjustment {
        file: "snyk/cli-all-projects-nuget-npm.json",
        findings: -1,
        severities: &[(Severity::Medium, -1)],
    },
    // The same jQuery advisory at two versions.
    Adjustment {
        file: "blackduck/api-vulnerable-bom-components.json",
        findings: -1,
        severities: &[(Severity::Medium, -1)],
    },
    // One zlib CVE in four binaries is one package finding.
    Adjustment {
        file: "blackduck/bdba-binary-analysis.csv",
        findings: -3,
        severities: &[(Severity::Critical, -3)],
    },
    // Severities are given per match; one High match repeats at a second location.
    Adjustment {
        file: "grype/all-fields.json",
        findings: 0,
        severities: &[(Severity::High, -1)],
    },
    // One Critical match at two locations.
    Adjustment {
        file: "grype/same-cve-different-paths.json",
        findings: 0,
        severities: &[(Severity::Critical, -1)],
    },
];

/// The expectation for one entry.
pub fn expected(entry: &Entry) -> Expected {
    let expect = &entry.expect;
    if entry.format() == "trivy" {
        return expected_trivy(expect);
    }
    let unique = [
        "unique_project_issue_package_version",
        "unique_vuln_package_version",
        "unique_component_version_vuln",
        "distinct_instance_ids",
    ]
    .iter()
    .find_map(|key| expect.get(*key));
    let mut findings = unique.unwrap_or(&expect["findings"]).as_i64().unwrap_or(0);

    // FVDL's derived priority, a `security-severity` band, or the unique-by-severity count
    // take precedence over the raw vendor words when the manifest has them.
    let source = [
        "friority_computed",
        "by_security_severity_band",
        "unique_by_vendor_severity",
    ]
    .iter()
    .find_map(|key| expect.get(*key))
    .unwrap_or(&expect["by_vendor_severity"]);
    let mut severities = normalize(source);

    if let Some(adjustment) = ADJUSTMENTS.iter().find(|a| a.file == entry.file) {
        findings += adjustment.findings;
        for (severity, delta) in adjustment.severities {
            *severities.entry(*severity).or_insert(0) += delta;
        }
    }
    severities.retain(|_, n| *n != 0);
    Expected {
        findings,
        severities: Some(severities),
    }
}

/// Trivy counts vulnerabilities, misconfigurations and secrets apart; the manifest gives no
/// severities for secrets, so with secrets only the total is known.
fn expected_trivy(expect: &Value) -> Expected {
    let count = |key: &str| expect[key].as_i64().unwrap_or(0);
    let secrets = count("secrets");
    let findings = count("findings") + count("misconfigurations") + secrets;
    let severities = (secrets == 0).then(|| {
        let mut all = normalize(&expect["by_vendor_severity"]);
        for (severity, n) in normalize(&expect["misconfigurations_by_severity"]) {
            *all.entry(severity).or_insert(0) += n;
        }
        all.retain(|_, n| *n != 0);
        all
    });
    Expected {
        findings,
        severities,
    }
}

fn normalize(counts: &Value) -> BTreeMap<Severity, i64> {
    let mut out = BTreeMap::new();
    for (word, count) in counts.as_object().into_iter().flatten() {
        let severity = expected_severity(word).unwrap_or_else(|| panic!("no table entry: {word}"));
        *out.entry(severity).or_insert(0) += count.as_i64().unwrap_or(0);
    }
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
