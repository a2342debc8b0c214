//! Hostile and broken input: every case ends in the right error, never a panic.

use importers::{Format, ImportError, Position};

use crate::fingerprints::fixture;

fn parse_both(format: Format, input: &[u8]) -> [Result<importers::ParsedScan, ImportError>; 2] {
    [
        importers::parse(format, input),
        importers::parse_reader(format, input),
    ]
}

#[test]
fn empty_body_is_empty_for_every_format() {
    for format in Format::ALL {
        for result in parse_both(format, b"") {
            assert!(
                matches!(result, Err(ImportError::Empty)),
                "{format}: {result:?}"
            );
        }
    }
}

#[test]
fn truncated_json_names_where_it_stopped() {
    let err = importers::parse(Format::Trivy, &fixture("truncated-trivy.json")).unwrap_err();

    let ImportError::Malformed {
        format,
        at,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*format, Format::Trivy);
    assert!(matches!(at, Position::LineColumn { line: 8, .. }), "{at:?}");
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn truncated_sarif_fails_in_both_paths() {
    let whole = fixture("sarif-two-results.sarif");
    for result in parse_both(Format::Sarif, &whole[..whole.len() / 2]) {
        assert!(
            matches!(result, Err(ImportError::Malformed { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn sarif_version_1_is_rejected() {
    for result in parse_both(Format::Sarif, &fixture("sarif-version-1.sarif")) {
        let Err(ImportError::UnsupportedVersion { version, .. }) = &result else {
            panic!("{result:?}")
        };
        assert_eq!(version, "1.0.0");
    }
}

#[test]
fn wrong_format_is_refused() {
    let result = importers::parse(Format::Grype, &fixture("sarif-two-results.sarif"));

    let Err(ImportError::WrongFormat { expected, detected }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(expected, Format::Grype);
    assert_eq!(detected, Some(Format::Sarif));
}

#[test]
fn deep_nesting_is_too_deep() {
    let deep = vec![b'['; 10_000];
    let mut deep_in_sarif = br#"{"version":"2.1.0","runs":[{"results":[{"properties":"#.to_vec();
    deep_in_sarif.extend_from_slice(&deep);

    for (format, input) in [(Format::Sarif, &deep_in_sarif), (Format::Trivy, &deep)] {
        for result in parse_both(format, input) {
            assert!(
                matches!(result, Err(ImportError::TooDeep { .. })),
                "{format}: {result:?}"
            );
        }
    }
}

#[test]
fn invalid_utf8_is_named() {
    let mut input = br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"#.to_vec();
    input.extend_from_slice(b"\xc3\x28\"}}}]}");

    for result in parse_both(Format::Sarif, &input) {
        let Err(ImportError::InvalidUtf8 { at, .. }) = &result else {
            panic!("{result:?}")
        };
        assert_eq!(
            *at,
            Position::LineColumn {
                line: 1,
                column: 56
            }
        );
    }
}

#[test]
fn external_entity_is_never_resolved() {
    let err = importers::parse(Format::CheckmarxSast, &fixture("xxe-checkmarx.xml")).unwrap_err();

    let ImportError::Malformed {
        format,
        at,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*format, Format::CheckmarxSast);
    assert!(
        matches!(at, Position::LineColumn { line: 2..=4, .. }),
        "{at:?}"
    );
    assert!(
        message.contains("entity declarations are not accepted"),
        "{message}"
    );
}

#[test]
fn undeclared_entity_is_an_error() {
    let input = fixture("undeclared-entity-fortify.xml");
    let err = importers::parse(Format::Fortify, &input).unwrap_err();

    let ImportError::Malformed { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("undefined entity &hostfile;"), "{message}");
}

#[test]
fn billion_laughs_fails_fast() {
    let started = std::time::Instant::now();
    let result = importers::parse(Format::Fortify, &fixture("billion-laughs.fvdl"));

    assert!(
        matches!(result, Err(ImportError::Malformed { .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn deep_xml_is_too_deep() {
    let mut input = b"<CxXMLResults>".to_vec();
    input.extend(b"<a>".repeat(10_000));

    let result = importers::parse(Format::CheckmarxSast, &input);
    assert!(
        matches!(result, Err(ImportError::TooDeep { .. })),
        "{result:?}"
    );
}

#[test]
fn invalid_utf8_in_xml_and_csv() {
    let xml = b"<?xml version=\"1.0\"?>\n<CxXMLResults Owner=\"\xff\"/>";
    let csv =
        b"\"Component\",\"Version\",\"CVE\",\"CVSS3\"\n\"zlib\",\"1\xfe\",\"CVE-1\",\"9.8\"\n";

    for (format, input) in [
        (Format::CheckmarxSast, &xml[..]),
        (Format::Blackduck, &csv[..]),
    ] {
        let result = importers::parse(format, input);
        let Err(ImportError::InvalidUtf8 { at, .. }) = &result else {
            panic!("{result:?}")
        };
        assert!(
            matches!(at, Position::LineColumn { line: 2, .. }),
            "{format}: {at:?}"
        );
    }
}

#[test]
fn broken_fpr_archive_is_malformed() {
    let result = importers::parse(Format::Fortify, b"PK\x03\x04 not really a zip archive");
    assert!(
        matches!(result, Err(ImportError::Malformed { .. })),
        "{result:?}"
    );
}

#[test]
fn failed_snyk_run_is_not_an_empty_scan() {
    let result = importers::parse(Format::Snyk, &fixture("snyk-failed-run.json"));

    let Err(ImportError::Malformed { message, .. }) = &result else {
        panic!("{result:?}")
    };
    assert!(message.contains("failed run"), "{message}");
}

#[test]
fn byte_order_mark_before_sarif_is_accepted() {
    let mut input = b"\xef\xbb\xbf".to_vec();
    input.extend(fixture("sarif-two-results.sarif"));

    for result in parse_both(Format::Sarif, &input) {
        assert_eq!(result.unwrap().findings.len(), 2);
    }
}

#[test]
fn truncated_blackduck_csv_is_malformed() {
    let full = b"Component,Version,Vulnerability id,Security Risk\n\
                 zlib,1.2,CVE-2022-1,HIGH\n\
                 openssl,3.0,CVE-2022-2,CRITICAL\n";
    assert_eq!(
        importers::parse(Format::Blackduck, full)
            .unwrap()
            .findings
            .len(),
        2
    );

    let cut_in_a_row = &full[..full.len() - 12];
    let unclosed_quote = b"Component,Version,Vulnerability id,Security Risk\n\"zlib,1.2\n";
    for input in [cut_in_a_row, &unclosed_quote[..]] {
        let result = importers::parse(Format::Blackduck, input);
        assert!(
            matches!(
                result,
                Err(ImportError::Malformed {
                    format: Format::Blackduck,
                    ..
                })
            ),
            "{result:?}"
        );
    }
}
