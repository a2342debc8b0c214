//! Fingerprint stability and suppressions on our own small fixtures.

use std::path::PathBuf;

use domain::Severity;
use importers::{Format, ParsedScan, RawFinding, Suppression};

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn parse(format: Format, name: &str) -> ParsedScan {
    importers::parse(format, &fixture(name)).unwrap()
}

fn fingerprints(findings: &[RawFinding]) -> Vec<&str> {
    findings
        .iter()
        .map(|finding| finding.fingerprint.as_str())
        .collect()
}

#[test]
fn result_moved_down_keeps_its_fingerprint() {
    let before = parse(Format::Sarif, "sarif-two-results.sarif");
    let after = parse(Format::Sarif, "sarif-two-results-shifted.sarif");

    assert_eq!(before.findings[0].line, Some(10));
    assert_eq!(after.findings[0].line, Some(14));
    assert_eq!(
        fingerprints(&before.findings),
        fingerprints(&after.findings)
    );
}

#[test]
fn same_rule_same_line_different_message_differs() {
    let scan = parse(Format::Sarif, "sarif-two-results.sarif");

    assert_eq!(scan.findings.len(), 2);
    assert_eq!(scan.duplicates_merged, 0);
    assert_ne!(scan.findings[0].fingerprint, scan.findings[1].fingerprint);
}

#[test]
fn sarif_fields_and_suppressions() {
    let scan = parse(Format::Sarif, "sarif-two-results.sarif");
    let first = &scan.findings[0];

    assert_eq!(scan.tool, "PyLinter");
    assert_eq!(scan.tool_version.as_deref(), Some("3.1.4"));
    assert_eq!(first.rule_id, "PY001");
    assert_eq!(first.title, "Dynamic code execution");
    assert_eq!(first.severity, Severity::High);
    assert_eq!(first.vendor_severity.as_deref(), Some("error"));
    assert_eq!(first.file_path.as_deref(), Some("src/handlers.py"));
    assert_eq!(first.status_hint, None);
    assert_eq!(
        scan.findings[1].status_hint,
        Some(Suppression::AcceptedRisk)
    );
}

#[test]
fn results_before_tool_still_find_their_rules() {
    let scan = parse(Format::Sarif, "sarif-results-before-tool.sarif");
    let streamed = importers::parse_reader(
        Format::Sarif,
        fixture("sarif-results-before-tool.sarif").as_slice(),
    )
    .unwrap();

    assert_eq!(scan, streamed);
    assert_eq!(scan.tool, "LateTool");
    assert_eq!(scan.findings[0].severity, Severity::Critical);
    assert_eq!(scan.findings[0].cvss_score, Some(9.1));
    assert_eq!(scan.findings[1].severity, Severity::Low);
    assert_eq!(
        scan.findings[1].status_hint, None,
        "a rejected suppression does not count"
    );
}

#[test]
fn package_key_ignores_version_and_file() {
    let old = parse(Format::Grype, "grype-lodash-old.json");
    let bumped = parse(Format::Grype, "grype-lodash-bumped.json");

    assert_eq!(old.findings.len(), 1);
    assert_eq!(bumped.findings.len(), 1);
    assert_ne!(
        old.findings[0].package_version,
        bumped.findings[0].package_version
    );
    assert_ne!(old.findings[0].file_path, bumped.findings[0].file_path);
    assert_eq!(
        old.findings[0].fingerprint, bumped.findings[0].fingerprint,
        "upgrading a package that is still vulnerable is not a new finding"
    );
}

/// The (version, fingerprint) pairs of a scan, sorted by version text.
fn by_version(scan: &ParsedScan) -> Vec<(Option<&str>, &str)> {
    let mut pairs: Vec<_> = scan
        .findings
        .iter()
        .map(|f| (f.package_version.as_deref(), f.fingerprint.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs
}

#[test]
fn another_version_in_one_scan_is_another_occurrence() {
    let old = parse(Format::Grype, "grype-lodash-old.json");
    let bytes = fixture("grype-lodash-two-versions.json");
    let scan = importers::parse(Format::Grype, &bytes).unwrap();

    // 4.17.20 at two locations is one finding; 4.17.9 is a second occurrence of the key.
    assert_eq!(scan.findings.len(), 2);
    assert_eq!(scan.duplicates_merged, 1);
    assert_ne!(scan.findings[0].fingerprint, scan.findings[1].fingerprint);

    let lowest = scan
        .findings
        .iter()
        .find(|f| f.package_version.as_deref() == Some("4.17.9"))
        .unwrap();
    assert_eq!(
        lowest.fingerprint, old.findings[0].fingerprint,
        "the lowest version keeps the bare key"
    );
    let merged = scan
        .findings
        .iter()
        .find(|f| f.package_version.as_deref() == Some("4.17.20"))
        .unwrap();
    assert_eq!(
        merged.severity,
        Severity::Critical,
        "the most severe repeat is kept"
    );
    assert_eq!(
        merged.vulnerability_ids,
        ["GHSA-0000-1111-2222", "CVE-2099-0001"]
    );

    // The order of the file does not decide which occurrence is which.
    let mut report: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    report["matches"].as_array_mut().unwrap().reverse();
    let reversed = importers::parse(Format::Grype, &serde_json::to_vec(&report).unwrap()).unwrap();
    assert_eq!(by_version(&reversed), by_version(&scan));
}

#[test]
fn a_repeated_sarif_result_is_another_occurrence() {
    let once = parse(Format::Sarif, "sarif-two-results.sarif");
    let mut log: serde_json::Value =
        serde_json::from_slice(&fixture("sarif-two-results.sarif")).unwrap();
    let results = log["runs"][0]["results"].as_array_mut().unwrap();
    results.push(results[0].clone());
    let twice = importers::parse(Format::Sarif, &serde_json::to_vec(&log).unwrap()).unwrap();

    // One finding per result object: the copy is its own finding, the original keeps its key.
    assert_eq!(twice.findings.len(), 3);
    assert_eq!(twice.duplicates_merged, 0);
    assert_eq!(
        fingerprints(&twice.findings[..2]),
        fingerprints(&once.findings)
    );
    assert!(!fingerprints(&once.findings).contains(&twice.findings[2].fingerprint.as_str()));
}
