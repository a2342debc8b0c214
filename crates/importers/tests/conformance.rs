//! Walks the real-world scan corpus (`scans/manifest.json` under `PMAP_CORPUS_DIR`) and checks
//! each file against its manifest entry: the detected format, the number of findings after
//! merging repeats of one fingerprint, and the count per normalized severity. The expected
//! severities are computed here from the manifest's vendor words with a small table of our own,
//! independent of the crate's mappers. Our own small fixtures are tested in the submodules.

#[path = "conformance/bad_input.rs"]
mod bad_input;
#[path = "conformance/fingerprints.rs"]
mod fingerprints;

use std::collections::BTreeMap;
use std::path::PathBuf;

use domain::Severity;
use importers::{FindingKind, Format, ParsedScan};
use serde_json::Value;

/// Where the manifest's raw counts and the SPEC's "same fingerprint twice is one finding"
/// disagree. Each entry says why the SPEC's answer differs; counts are relative to the
/// manifest's unique count (or `findings` where it gives none).
struct Adjustment {
    file: &'static str,
    findings: i64,
    severities: &'static [(Severity, i64)],
}

const ADJUSTMENTS: &[Adjustment] = &[
    // Gitleaks scans history: each of the 4 secrets is reported once per commit that holds it,
    // at the same file, line and snippet. The same secret in the same place is one problem.
    Adjustment {
        file: "sarif/gitleaks-7.5.0.sarif",
        findings: -4,
        severities: &[(Severity::Medium, -4)],
    },
    // The log repeats results verbatim: three results (same rule, file, line, message and
    // partialFingerprints) appear six times each, 27 objects for 12 problems.
    Adjustment {
        file: "sarif/shell-script-analysis-partial-fingerprints.sarif",
        findings: -15,
        severities: &[(Severity::Low, -15)],
    },
    // The manifest's grain includes the version; SCA findings are keyed by package and
    // vulnerability only. minimist has SNYK-JS-MINIMIST-559764 at 0.0.8 and at 1.2.0 in one
    // lockfile: one problem (upgrading one copy must not look like a fix plus a new finding).
    Adjustment {
        file: "snyk/cli-all-projects-nuget-npm.json",
        findings: -1,
        severities: &[(Severity::Medium, -1)],
    },
    // Same reason: jQuery BDSA-2021-3651 is listed for 3.6.0 and for 2.2.1.
    Adjustment {
        file: "blackduck/api-vulnerable-bom-components.json",
        findings: -1,
        severities: &[(Severity::Medium, -1)],
    },
    // Binary analysis lists zlib CVE-2023-45853 once per binary that embeds zlib (4 rows);
    // package findings are not keyed by file, so that is one finding, plus libjpeg.
    Adjustment {
        file: "blackduck/bdba-binary-analysis.csv",
        findings: -3,
        severities: &[(Severity::Critical, -3)],
    },
    // Grype's manifest gives the unique count but its severities per match. The repeated
    // match here is Django GHSA-v6rh-hp5x-86rv (High) at a second location.
    Adjustment {
        file: "grype/all-fields.json",
        findings: 0,
        severities: &[(Severity::High, -1)],
    },
    // libc6 CVE-2021-33574 (Critical) matched at two locations: one finding.
    Adjustment {
        file: "grype/same-cve-different-paths.json",
        findings: 0,
        severities: &[(Severity::Critical, -1)],
    },
];

// Entries that need no adjustment but might look as if they did:
// - grype/*: `unique_vuln_package_version` already equals package + vulnerability here.
// - snyk/cli-container-deb.json and cli-maven: `unique_by_vendor_severity` covers the repeats.
// - trivy/k8s-cluster-legacy.json: the same 5 CVEs in two workloads. A cluster report covers
//   many assets, so the workload (namespace/kind/name) scopes the package key: 10 findings.
// - checkmarx-sast/many-aggregated-info.xml: two results share a SimilarityId at lines 348 and
//   360 of one file; identical fingerprints at different lines are separate occurrences.
// - fortify/ssc-report-dup-sections.xml: 5 Issue elements, 3 distinct iids; the manifest's
//   `findings` is already the distinct count and the 2 repeats are merged.
// - sarif/flawfinder-2.0.19.sarif: 4 pairs share a contextHash at different lines (the same
//   code line twice in a file); they stay separate occurrences, as the manifest counts them.

fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("PMAP_CORPUS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    dir.join("scans/manifest.json").is_file().then_some(dir)
}

#[test]
fn corpus_matches_manifest() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipping corpus conformance: no scans/manifest.json (set PMAP_CORPUS_DIR)");
        return;
    };
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(dir.join("scans/manifest.json")).unwrap()).unwrap();

    let mut failures = Vec::new();
    for entry in &manifest {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(dir.join("scans").join(file)).unwrap();
        if let Err(failure) = check_entry(file, entry, &bytes) {
            failures.push(format!("{file}: {failure}"));
        }
    }
    println!(
        "corpus conformance: {}/{} entries pass",
        manifest.len() - failures.len(),
        manifest.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_entry(file: &str, entry: &Value, bytes: &[u8]) -> Result<(), String> {
    let directory = file.split('/').next().unwrap();
    let expected_format: Format = directory.parse().map_err(|e| format!("{e}"))?;
    let detected = importers::detect(&bytes[..bytes.len().min(8 * 1024)]);
    if detected != Some(expected_format) {
        return Err(format!("detected {detected:?}, expected {expected_format}"));
    }

    let scan = importers::parse(expected_format, bytes).map_err(|e| format!("parse: {e}"))?;
    let streamed = importers::parse_reader(expected_format, bytes)
        .map_err(|e| format!("parse_reader: {e}"))?;
    if streamed != scan {
        return Err("parse_reader and parse disagree".to_owned());
    }
    check_fingerprints(&scan)?;

    let expect = &entry["expect"];
    if expected_format == Format::Trivy {
        return check_trivy(expect, &scan);
    }
    let (count, severities) = expected(file, expect);
    compare(
        &scan.findings.iter().collect::<Vec<_>>(),
        count,
        &severities,
    )?;

    let raw = expect
        .get("issue_elements_total")
        .unwrap_or(&expect["findings"]);
    let merged = raw.as_u64().unwrap() as i64 - count;
    if scan.duplicates_merged as i64 != merged {
        return Err(format!(
            "duplicates_merged {}, expected {merged}",
            scan.duplicates_merged
        ));
    }
    Ok(())
}

/// Trivy's manifest counts vulnerabilities as findings and misconfigurations and secrets
/// apart; the importer keeps all three, told apart by kind.
fn check_trivy(expect: &Value, scan: &ParsedScan) -> Result<(), String> {
    let of_kind = |kinds: &[FindingKind]| -> Vec<&importers::RawFinding> {
        scan.findings
            .iter()
            .filter(|f| kinds.contains(&f.kind))
            .collect()
    };
    let packages = of_kind(&[FindingKind::Sca, FindingKind::Container]);
    let count = expect["findings"].as_i64().unwrap();
    compare(&packages, count, &normalize(&expect["by_vendor_severity"]))?;

    let misconfigurations = of_kind(&[FindingKind::Iac]);
    let count = expect["misconfigurations"].as_i64().unwrap();
    compare(
        &misconfigurations,
        count,
        &normalize(&expect["misconfigurations_by_severity"]),
    )?;

    let secrets = of_kind(&[FindingKind::Secret]);
    let count = expect["secrets"].as_i64().unwrap();
    if secrets.len() as i64 != count {
        return Err(format!("{} secrets, expected {count}", secrets.len()));
    }
    Ok(())
}

fn compare(
    findings: &[&importers::RawFinding],
    count: i64,
    severities: &BTreeMap<Severity, i64>,
) -> Result<(), String> {
    if findings.len() as i64 != count {
        return Err(format!("{} findings, expected {count}", findings.len()));
    }
    let mut actual = BTreeMap::new();
    for finding in findings {
        *actual.entry(finding.severity).or_insert(0) += 1;
    }
    let expected: BTreeMap<Severity, i64> = severities
        .iter()
        .filter(|(_, n)| **n != 0)
        .map(|(s, n)| (*s, *n))
        .collect();
    if actual != expected {
        return Err(format!("severities {actual:?}, expected {expected:?}"));
    }
    Ok(())
}

fn check_fingerprints(scan: &ParsedScan) -> Result<(), String> {
    let mut seen = std::collections::HashSet::new();
    for finding in &scan.findings {
        let hex = finding.fingerprint.len() == 64
            && finding.fingerprint.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err(format!(
                "fingerprint {:?} is not hex SHA-256",
                finding.fingerprint
            ));
        }
        if !seen.insert(&finding.fingerprint) {
            return Err(format!(
                "fingerprint {} twice after merging",
                finding.fingerprint
            ));
        }
    }
    Ok(())
}

/// The expected number of findings and count per severity for one manifest entry.
fn expected(file: &str, expect: &Value) -> (i64, BTreeMap<Severity, i64>) {
    let unique = [
        "unique_project_issue_package_version",
        "unique_vuln_package_version",
    ]
    .iter()
    .chain(&["unique_component_version_vuln", "distinct_instance_ids"])
    .find_map(|key| expect.get(*key));
    let mut count = unique.unwrap_or(&expect["findings"]).as_i64().unwrap();

    // Fortify FVDL stores no priority: the manifest's vendor words are legacy instance
    // severities, and `friority_computed` is the SPEC's derived priority. SARIF logs with a
    // `security-severity` everywhere are banded on it (numbers as CVSS, severity words taken
    // at their word), not on `level`.
    let source = [
        "friority_computed",
        "by_security_severity_band",
        "unique_by_vendor_severity",
    ]
    .iter()
    .find_map(|key| expect.get(*key))
    .unwrap_or(&expect["by_vendor_severity"]);
    let mut severities = normalize(source);
    assert_eq!(
        severities.values().sum::<i64>(),
        expect["findings"]
            .as_i64()
            .unwrap()
            .min(severities.values().sum::<i64>()),
        "{file}: severity source covers the findings"
    );

    if let Some(adjustment) = ADJUSTMENTS.iter().find(|a| a.file == file) {
        count += adjustment.findings;
        for (severity, delta) in adjustment.severities {
            *severities.entry(*severity).or_insert(0) += delta;
        }
    }
    (count, severities)
}

fn normalize(counts: &Value) -> BTreeMap<Severity, i64> {
    let mut out = BTreeMap::new();
    for (word, count) in counts.as_object().unwrap() {
        let severity = expected_severity(word).unwrap_or_else(|| panic!("no table entry: {word}"));
        *out.entry(severity).or_insert(0) += count.as_i64().unwrap();
    }
    out
}

/// The SPEC §5.2 default tables, flattened: every vendor word seen in the manifest.
fn expected_severity(word: &str) -> Option<Severity> {
    // Banded keys look like "critical(>=9.0)"; non-numeric security-severity like
    // "non-numeric:CRITICAL".
    let word = word.split('(').next().unwrap();
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
