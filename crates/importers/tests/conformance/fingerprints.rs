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
    let new = parse(Format::Grype, "grype-lodash-two-versions.json");

    assert_eq!(old.findings.len(), 1);
    assert_eq!(
        new.findings.len(),
        1,
        "two versions of one package are one finding"
    );
    assert_eq!(new.duplicates_merged, 1);
    assert_eq!(old.findings[0].fingerprint, new.findings[0].fingerprint);

    let merged = &new.findings[0];
    assert_eq!(
        merged.severity,
        Severity::Critical,
        "the most severe copy is kept"
    );
    assert_eq!(merged.package_version.as_deref(), Some("4.17.20"));
    assert_eq!(
        merged.vulnerability_ids,
        ["GHSA-0000-1111-2222", "CVE-2099-0001"]
    );
}
