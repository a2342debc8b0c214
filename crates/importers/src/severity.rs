//! The default severity tables of SPEC §5.2, one function per vendor vocabulary, and the
//! per-integration override. Parsers call these; nothing here reads input or knows a format's
//! structure.
//!
//! Every table matches words case-insensitively and returns `None` for a word it does not know;
//! parsers then fall back to the CVSS score when there is one, else to [`UNRECOGNIZED`].

use std::collections::HashMap;

use domain::Severity;

/// The severity of a vendor word that no table knows: the middle of the scale, so that an
/// unexpected word is neither hidden by a threshold nor inflated.
pub const UNRECOGNIZED: Severity = Severity::Medium;

/// Applies an integration's `severity_map` (`{"High": "critical"}`) to a vendor word.
///
/// Keys match case-insensitively. A missing word, an unmapped word or a value that is not a
/// severity name leaves `default` (the default table's answer) in place.
pub fn apply_severity_map(
    map: &HashMap<String, String>,
    vendor_severity: Option<&str>,
    default: Severity,
) -> Severity {
    let Some(word) = vendor_severity.map(str::trim) else {
        return default;
    };
    map.iter()
        .find(|(key, _)| key.trim().eq_ignore_ascii_case(word))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(default)
}

/// SARIF `level`: error→high, warning→medium, note→low, none→info.
pub fn sarif_level(level: &str) -> Option<Severity> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Medium),
        "note" => Some(Severity::Low),
        "none" => Some(Severity::Info),
        _ => None,
    }
}

/// SARIF `security-severity`: a CVSS-like number, banded.
///
/// Some tools (Semgrep among them) put a severity word there instead of a number. A word that
/// names a level of our scale (`CRITICAL`, `High`, …) is taken at its word, because it states
/// the tool's intended severity more precisely than `level` does; any other word is ignored and
/// the result's `level` decides.
pub fn sarif_security_severity(value: &str) -> Option<Severity> {
    let value = value.trim();
    if let Ok(score) = value.parse::<f64>() {
        return score.is_finite().then(|| Severity::from_cvss(score));
    }
    scale_name(value)
}

/// Checkmarx One and SAST: Critical, High, Medium, Low, Info/Information.
pub fn checkmarx(word: &str) -> Option<Severity> {
    scale_name(word)
}

/// Snyk: critical, high, medium, low.
pub fn snyk(word: &str) -> Option<Severity> {
    scale_name(word)
}

/// Black Duck: CRITICAL, HIGH, MEDIUM, LOW; OK and UNSPECIFIED are info.
pub fn blackduck(word: &str) -> Option<Severity> {
    match word.to_ascii_lowercase().as_str() {
        "ok" | "unspecified" => Some(Severity::Info),
        _ => scale_name(word),
    }
}

/// Sonatype security issue `threatCategory`: critical, severe→high, moderate→medium, low.
pub fn sonatype_threat_category(word: &str) -> Option<Severity> {
    match word.to_ascii_lowercase().as_str() {
        "critical" => Some(Severity::Critical),
        "severe" => Some(Severity::High),
        "moderate" => Some(Severity::Medium),
        "low" => Some(Severity::Low),
        "none" => Some(Severity::Info),
        _ => None,
    }
}

/// Sonatype policy threat level: 8–10 critical, 4–7 high, 2–3 medium, 1 low, 0 info.
pub fn sonatype_threat_level(level: i64) -> Option<Severity> {
    match level {
        8..=10 => Some(Severity::Critical),
        4..=7 => Some(Severity::High),
        2..=3 => Some(Severity::Medium),
        1 => Some(Severity::Low),
        0 => Some(Severity::Info),
        _ => None,
    }
}

/// Prisma Cloud: critical, high, important→high, medium, moderate→medium, low,
/// unimportant/negligible→info.
pub fn prisma(word: &str) -> Option<Severity> {
    match word.to_ascii_lowercase().as_str() {
        "important" => Some(Severity::High),
        "moderate" => Some(Severity::Medium),
        "unimportant" | "negligible" => Some(Severity::Info),
        _ => scale_name(word),
    }
}

/// Fortify priority order ("friority"): Critical, High, Medium, Low.
pub fn fortify_friority(word: &str) -> Option<Severity> {
    scale_name(word)
}

/// Fortify priority derived from rule impact and likelihood (accuracy × confidence ×
/// probability / 25): both ≥ 2.5 critical, impact only high, likelihood only medium, else low.
pub fn fortify_derived(impact: f64, likelihood: f64) -> Severity {
    match (impact >= 2.5, likelihood >= 2.5) {
        (true, true) => Severity::Critical,
        (true, false) => Severity::High,
        (false, true) => Severity::Medium,
        (false, false) => Severity::Low,
    }
}

/// Trivy: CRITICAL, HIGH, MEDIUM, LOW; UNKNOWN is info.
pub fn trivy(word: &str) -> Option<Severity> {
    match word.to_ascii_lowercase().as_str() {
        "unknown" => Some(Severity::Info),
        _ => scale_name(word),
    }
}

/// Grype: Critical, High, Medium, Low; Negligible and Unknown are info.
pub fn grype(word: &str) -> Option<Severity> {
    match word.to_ascii_lowercase().as_str() {
        "negligible" | "unknown" => Some(Severity::Info),
        _ => scale_name(word),
    }
}

/// The words of our own scale, with "information" as the long form of info.
fn scale_name(word: &str) -> Option<Severity> {
    match word.trim().to_ascii_lowercase().as_str() {
        "information" | "informational" => Some(Severity::Info),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(actual: Option<Severity>, expected: Option<Severity>) {
        assert_eq!(actual, expected);
    }

    #[test]
    fn vendor_tables() {
        check(sarif_level("error"), Some(Severity::High));
        check(sarif_level("none"), Some(Severity::Info));
        check(sarif_security_severity("9.8"), Some(Severity::Critical));
        check(sarif_security_severity("0.0"), Some(Severity::Info));
        check(
            sarif_security_severity("CRITICAL"),
            Some(Severity::Critical),
        );
        check(sarif_security_severity("bad"), None);
        check(checkmarx("Information"), Some(Severity::Info));
        check(blackduck("UNSPECIFIED"), Some(Severity::Info));
        check(sonatype_threat_category("severe"), Some(Severity::High));
        check(sonatype_threat_level(5), Some(Severity::High));
        check(prisma("important"), Some(Severity::High));
        check(prisma("negligible"), Some(Severity::Info));
        check(trivy("UNKNOWN"), Some(Severity::Info));
        check(grype("Negligible"), Some(Severity::Info));
        assert_eq!(fortify_derived(3.0, 0.6), Severity::High);
        assert_eq!(fortify_derived(2.0, 2.5), Severity::Medium);
    }

    #[test]
    fn overrides_match_case_insensitively() {
        let map = HashMap::from([("High".to_owned(), "critical".to_owned())]);
        assert_eq!(
            apply_severity_map(&map, Some("HIGH"), Severity::High),
            Severity::Critical
        );
        assert_eq!(
            apply_severity_map(&map, Some("low"), Severity::Low),
            Severity::Low
        );
        assert_eq!(
            apply_severity_map(&map, None, Severity::Info),
            Severity::Info
        );
        let bad = HashMap::from([("High".to_owned(), "urgent".to_owned())]);
        assert_eq!(
            apply_severity_map(&bad, Some("High"), Severity::High),
            Severity::High
        );
    }
}
