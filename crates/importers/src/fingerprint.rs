//! Fingerprints: the hex SHA-256 that identifies one problem across scans, and the pass that
//! folds repeats of the same problem within one scan into a single finding.
//!
//! A fingerprint never hashes a line number, so unrelated edits that shift code do not make an
//! old problem look fixed and a new one appear. Code findings hash the tool, rule, file and
//! either the scanner's own stable fingerprint or a normalized message and snippet. Package
//! findings hash the tool, package name and vulnerability id, never the version or the file.
//! Line numbers are used only to order identical fingerprints found at different places in one
//! scan, the way an occurrence counter would. This module never looks at severity tables.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::{ParsedScan, RawFinding};

/// The fingerprint of a code finding that the scanner gave its own stable identity.
pub fn from_tool(tool: &str, rule_id: &str, file_path: Option<&str>, tool_id: &str) -> String {
    hash(&[
        "tool",
        &tool.to_ascii_lowercase(),
        rule_id,
        file_path.unwrap_or(""),
        tool_id,
    ])
}

/// The fingerprint of a code finding from its rule, file and what it says.
///
/// `message` and `snippet` are normalized first (see [`normalize_text`]), so whitespace changes
/// and "on line N" in a message do not change the fingerprint.
pub fn from_content(
    tool: &str,
    rule_id: &str,
    file_path: Option<&str>,
    message: &str,
    snippet: Option<&str>,
) -> String {
    let message = normalize_text(message);
    let snippet = snippet.map(normalize_text).unwrap_or_default();
    let tool = tool.to_ascii_lowercase();
    hash(&[
        "content",
        &tool,
        rule_id,
        file_path.unwrap_or(""),
        &message,
        &snippet,
    ])
}

/// The fingerprint of a package finding: package and vulnerability, not version or file.
///
/// `scope` separates assets that one file reports side by side (the workloads of a cluster
/// scan); it is `None` for a file about a single project or image.
pub fn from_package(tool: &str, scope: Option<&str>, package: &str, vulnerability: &str) -> String {
    let tool = tool.to_ascii_lowercase();
    hash(&[
        "package",
        &tool,
        scope.unwrap_or(""),
        package,
        vulnerability,
    ])
}

/// Collapses whitespace and blanks out numbers that follow the word "line", so that messages
/// which quote their own position stay the same when the code moves.
pub fn normalize_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut after_line_word = false;
    for word in text.split_whitespace() {
        let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
        let is_number = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit());
        if !out.is_empty() {
            out.push(' ');
        }
        if after_line_word && is_number {
            out.push('#');
        } else {
            out.push_str(word);
        }
        after_line_word = bare.eq_ignore_ascii_case("line") || bare.eq_ignore_ascii_case("lines");
    }
    out
}

/// Cleans a path for hashing and display: `file://` scheme and leading `./` removed, forward
/// slashes only.
pub fn normalize_path(path: &str) -> String {
    let path = path.strip_prefix("file://").unwrap_or(path);
    let path = path.replace('\\', "/");
    path.strip_prefix("./").unwrap_or(&path).to_owned()
}

fn hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // A length prefix keeps ("ab", "c") and ("a", "bc") apart.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Gives identical fingerprints at different lines their own occurrence, then merges what is
/// still identical: the same problem reported twice in one scan is one finding.
///
/// Of merged findings the most severe is kept (the first of equals), with the vulnerability
/// ids of all of them.
pub(crate) fn finish(mut scan: ParsedScan) -> ParsedScan {
    let findings = std::mem::take(&mut scan.findings);
    let findings = separate_occurrences(findings);

    let mut merged: Vec<RawFinding> = Vec::with_capacity(findings.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(findings.len());
    for finding in findings {
        let Some(&at) = index.get(&finding.fingerprint) else {
            index.insert(finding.fingerprint.clone(), merged.len());
            merged.push(finding);
            continue;
        };
        scan.duplicates_merged += 1;
        let kept = &mut merged[at];
        let other_ids = if finding.severity > kept.severity {
            std::mem::replace(kept, finding).vulnerability_ids
        } else {
            finding.vulnerability_ids
        };
        for id in other_ids {
            if !kept.vulnerability_ids.contains(&id) {
                kept.vulnerability_ids.push(id);
            }
        }
    }
    scan.findings = merged;
    scan
}

/// Within each group of equal fingerprints, the findings on the n-th distinct line (n > 0, in
/// line order) get the fingerprint of "base, occurrence n". Package findings have no line and
/// are left alone.
fn separate_occurrences(mut findings: Vec<RawFinding>) -> Vec<RawFinding> {
    let mut lines: HashMap<&str, Vec<Option<i64>>> = HashMap::new();
    for finding in &findings {
        let seen = lines.entry(finding.fingerprint.as_str()).or_default();
        if !seen.contains(&finding.line) {
            seen.push(finding.line);
        }
    }
    let occurrences: HashMap<String, Vec<Option<i64>>> = lines
        .into_iter()
        .filter(|(_, seen)| seen.len() > 1)
        .map(|(fingerprint, mut seen)| {
            seen.sort_unstable();
            (fingerprint.to_owned(), seen)
        })
        .collect();

    for finding in &mut findings {
        let Some(seen) = occurrences.get(&finding.fingerprint) else {
            continue;
        };
        let occurrence = seen
            .iter()
            .position(|line| *line == finding.line)
            .unwrap_or(0);
        if occurrence > 0 {
            finding.fingerprint =
                hash(&["occurrence", &finding.fingerprint, &occurrence.to_string()]);
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(normalize_text(input), expected);
    }

    #[test]
    fn normalizes_whitespace_and_line_numbers() {
        check("  a \n\t b  ", "a b");
        check("null dereference on line 28.", "null dereference on line #");
        check("buffer of 28 bytes", "buffer of 28 bytes");
        check("see lines 3", "see lines #");
    }

    #[test]
    fn paths_lose_scheme_and_dot() {
        assert_eq!(normalize_path("file:///src/a.c"), "/src/a.c");
        assert_eq!(normalize_path("./src\\a.c"), "src/a.c");
    }

    #[test]
    fn hash_parts_do_not_run_together() {
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_eq!(hash(&["x"]).len(), 64);
    }
}
