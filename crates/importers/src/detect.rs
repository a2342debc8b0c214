//! Recognizes a result format from the first few kilobytes of content. It only looks for
//! markers in the text; it never parses the document and never fails.

use crate::format::Format;

/// Guesses the format of a result file from its first bytes (a few KB are enough).
///
/// Returns `None` when no format's markers are present; the caller then has to name one.
pub fn detect(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"PK\x03\x04") {
        // A zip archive: of our formats only Fortify's FPR is one.
        return Some(Format::Fortify);
    }

    let text = String::from_utf8_lossy(head);
    let text = text.trim_start_matches('\u{feff}').trim_start();
    match text.chars().next()? {
        '<' => detect_xml(text),
        '{' | '[' => detect_json(text),
        _ => detect_csv(text),
    }
}

fn detect_xml(text: &str) -> Option<Format> {
    if text.contains("<CxXMLResults") {
        Some(Format::CheckmarxSast)
    } else if text.contains("<FVDL") || text.contains("<ReportDefinition") {
        Some(Format::Fortify)
    } else {
        None
    }
}

fn detect_json(text: &str) -> Option<Format> {
    let has = |marker: &str| text.contains(marker);
    let has_key = |key: &str| has(&format!("\"{key}\""));

    if has_key("runs") && (has("sarif") || has_key("version")) {
        return Some(Format::Sarif);
    }
    if has_key("SchemaVersion") || has_key("ClusterName") || has_key("VulnerabilityID") {
        return Some(Format::Trivy);
    }
    if has_key("Target") && (has_key("Vulnerabilities") || has_key("Misconfigurations")) {
        return Some(Format::Trivy);
    }
    if has_key("matches") && has_key("vulnerability") && has_key("artifact") {
        return Some(Format::Grype);
    }
    if has_key("vulnerabilityWithRemediation") || has_key("componentVersionName") {
        return Some(Format::Blackduck);
    }
    if has_key("components") && (has_key("componentIdentifier") || has_key("securityData")) {
        return Some(Format::Sonatype);
    }
    if (has_key("jsonapi") && has_key("data")) || has_key("effective_severity_level") {
        return Some(Format::Snyk);
    }
    if has_key("vulnerabilities") && snyk_cli_markers(text) {
        return Some(Format::Snyk);
    }
    if has_key("results") && (has_key("similarityId") || has_key("totalCount")) {
        return Some(Format::CheckmarxOne);
    }
    let prisma_markers = [
        "distro",
        "complianceDistribution",
        "vulnerabilityDistribution",
    ];
    if has_key("results") && prisma_markers.iter().any(|key| has_key(key)) {
        return Some(Format::PrismaCloud);
    }
    None
}

fn snyk_cli_markers(text: &str) -> bool {
    [
        "packageManager",
        "upgradePath",
        "isUpgradable",
        "semver",
        "dependencyCount",
    ]
    .iter()
    .any(|key| text.contains(&format!("\"{key}\"")))
}

fn detect_csv(text: &str) -> Option<Format> {
    let header = text.lines().next()?;
    let black_duck_report = header.contains("Security Risk") && header.contains("Vulnerability id");
    let binary_analysis = header.contains("\"Component\"") && header.contains("\"CVE\"");
    (black_duck_report || binary_analysis).then_some(Format::Blackduck)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(head: &str, expected: Option<Format>) {
        assert_eq!(detect(head.as_bytes()), expected, "{head}");
    }

    #[test]
    fn recognizes_markers() {
        check(r#"{"version":"2.1.0","runs":[]}"#, Some(Format::Sarif));
        check(
            "\u{feff}<?xml version=\"1.0\"?><CxXMLResults>",
            Some(Format::CheckmarxSast),
        );
        check(
            "<?xml version=\"1.0\"?>\n<FVDL xmlns=\"x\">",
            Some(Format::Fortify),
        );
        check(
            r#"{"SchemaVersion": 2, "Results": []}"#,
            Some(Format::Trivy),
        );
        check(
            r#"{"matches":[{"vulnerability":{},"artifact":{}}]}"#,
            Some(Format::Grype),
        );
        check(
            r#"{"results": [], "totalCount": 0}"#,
            Some(Format::CheckmarxOne),
        );
        check("Component,Version\n1,2", None);
        check("", None);
        check("hello", None);
    }
}
