//! Walks the real-world scan corpus (`scans/manifest.json` under `PMAP_CORPUS_DIR`) and checks
//! each file against its manifest entry: the detected format, the number of findings at the
//! manifest's grain, the repeats merged into them, and the count per normalized severity. What
//! is expected comes from `test_support::scan_corpus`, the same expectations the HTTP
//! conformance test uses, computed from the manifest alone. Our own small fixtures are tested
//! in the submodules.

#[path = "conformance/bad_input.rs"]
mod bad_input;
#[path = "conformance/fingerprints.rs"]
mod fingerprints;

use std::collections::{BTreeMap, HashSet};

use domain::Severity;
use importers::{Format, ParsedScan, RawFinding};
use test_support::scan_corpus::{Entry, corpus_dir, expected, load_manifest};

#[test]
fn corpus_matches_manifest() {
    let Some(corpus) = corpus_dir() else {
        eprintln!("skipping corpus conformance: no scans/manifest.json (set PMAP_CORPUS_DIR)");
        return;
    };
    let entries = load_manifest(&corpus).unwrap();

    let mut failures = Vec::new();
    for entry in &entries {
        let bytes = entry.body(&corpus).unwrap();
        if let Err(failure) = check_entry(entry, &bytes) {
            failures.push(format!("{}: {failure}", entry.file));
        }
    }
    println!(
        "corpus conformance: {}/{} entries pass",
        entries.len() - failures.len(),
        entries.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check_entry(entry: &Entry, bytes: &[u8]) -> Result<(), String> {
    let expected_format: Format = entry.format().parse().map_err(|e| format!("{e}"))?;
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

    let want = expected(entry);
    let all: Vec<&RawFinding> = scan.findings.iter().collect();
    compare(&all, want.findings, want.severities.as_ref())?;
    if let Some(at_most) = &want.severities_at_most {
        let actual = by_severity(&all);
        let over = actual
            .iter()
            .find(|(severity, n)| **n > at_most.get(severity).copied().unwrap_or(0));
        if let Some((severity, n)) = over {
            return Err(format!("{n} {severity:?} findings, at most {at_most:?}"));
        }
    }
    for part in &want.parts {
        let findings: Vec<&RawFinding> = scan
            .findings
            .iter()
            .filter(|f| part.kinds.contains(&f.kind.as_str()))
            .collect();
        compare(&findings, part.findings, part.severities.as_ref())
            .map_err(|failure| format!("{:?}: {failure}", part.kinds))?;
    }
    if scan.duplicates_merged as i64 != want.repeats {
        return Err(format!(
            "duplicates_merged {}, expected {}",
            scan.duplicates_merged, want.repeats
        ));
    }
    Ok(())
}

fn by_severity(findings: &[&RawFinding]) -> BTreeMap<Severity, i64> {
    let mut counts = BTreeMap::new();
    for finding in findings {
        *counts.entry(finding.severity).or_insert(0) += 1;
    }
    counts
}

fn compare(
    findings: &[&RawFinding],
    count: i64,
    severities: Option<&BTreeMap<Severity, i64>>,
) -> Result<(), String> {
    if findings.len() as i64 != count {
        return Err(format!("{} findings, expected {count}", findings.len()));
    }
    let actual = by_severity(findings);
    match severities {
        Some(expected) if actual != *expected => {
            Err(format!("severities {actual:?}, expected {expected:?}"))
        }
        _ => Ok(()),
    }
}

fn check_fingerprints(scan: &ParsedScan) -> Result<(), String> {
    let mut seen = HashSet::new();
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
