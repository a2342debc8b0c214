//! Fingerprints: the hex SHA-256 that identifies one problem across scans, and the pass that
//! turns the results of one scan into findings with one fingerprint each.
//!
//! A fingerprint never hashes a line number or a package version. Code findings hash the tool,
//! rule, file and either the scanner's own stable fingerprint or a normalized message and
//! snippet, so unrelated edits that shift code do not make an old problem look fixed and a new
//! one appear, while two different problems on one line stay apart. Package findings hash the
//! tool, package name and vulnerability id (plus the workload, for a file that covers many), so
//! upgrading a package that is still vulnerable keeps its finding. This is the *base key*.
//!
//! Each format counts findings at its own grain, and one scan can hold several results with
//! the same base key that the grain tells apart. Every result carries a [`Grain`]:
//!
//! - [`Grain::EachResult`]: every result the file lists is one finding (a SARIF result object,
//!   a CSV row, an element of a results array).
//! - [`Grain::Key`]: results that agree on base key and grain key are repeats of one finding and
//!   merge (Snyk's one entry per dependency path of the same project, package version and issue;
//!   Grype's one match per location of the same package version and vulnerability; a Fortify
//!   issue listed in two report sections). Merged repeats are counted in
//!   [`ParsedScan::duplicates_merged`]; of them the most severe is kept (the first of equals),
//!   with the vulnerability ids of all.
//!
//! What remains of one base key is then ordered by package version (digit runs compared as
//! numbers), grain key, file, line and document order; the first keeps the bare base key and
//! the n-th gets the hash of ("occurrence", base key, n). A scan with one lodash version still
//! vulnerable after an upgrade keeps its fingerprint; a scan with two vulnerable lodash versions
//! has two findings. This module never looks at severity tables.

use std::cmp::Ordering;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::{ParsedScan, RawFinding};

/// What the format counts as one finding among results with the same base key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Grain {
    /// Every result is its own finding.
    #[default]
    EachResult,
    /// Results with equal parts are repeats of one finding.
    Key(Vec<String>),
}

impl Grain {
    fn parts(&self) -> &[String] {
        match self {
            Grain::EachResult => &[],
            Grain::Key(parts) => parts,
        }
    }
}

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

/// Merges repeats at each result's grain, then gives every further occurrence of a base key
/// its own fingerprint (see the module documentation).
pub(crate) fn finish(mut scan: ParsedScan) -> ParsedScan {
    let findings = std::mem::take(&mut scan.findings);

    // Each kept finding with the document position of its first result.
    let mut kept: Vec<(usize, RawFinding)> = Vec::with_capacity(findings.len());
    let mut repeats: HashMap<(String, Vec<String>), usize> = HashMap::new();
    for (position, finding) in findings.into_iter().enumerate() {
        let Grain::Key(parts) = &finding.grain else {
            kept.push((position, finding));
            continue;
        };
        let key = (finding.fingerprint.clone(), parts.clone());
        let Some(&at) = repeats.get(&key) else {
            repeats.insert(key, kept.len());
            kept.push((position, finding));
            continue;
        };
        scan.duplicates_merged += 1;
        merge_into(&mut kept[at].1, finding);
    }

    separate_occurrences(&mut kept);
    scan.findings = kept
        .into_iter()
        .map(|(_, mut finding)| {
            finding.grain = Grain::EachResult;
            finding
        })
        .collect();
    scan
}

/// Folds a repeat into the kept finding: the more severe one stays, with all vulnerability ids.
fn merge_into(kept: &mut RawFinding, repeat: RawFinding) {
    let other_ids = if repeat.severity > kept.severity {
        std::mem::replace(kept, repeat).vulnerability_ids
    } else {
        repeat.vulnerability_ids
    };
    for id in other_ids {
        if !kept.vulnerability_ids.contains(&id) {
            kept.vulnerability_ids.push(id);
        }
    }
}

/// Within each group of equal base keys, in occurrence order, the n-th finding (n > 0) gets
/// the fingerprint of "base key, occurrence n".
fn separate_occurrences(findings: &mut [(usize, RawFinding)]) {
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, (_, finding)) in findings.iter().enumerate() {
        groups
            .entry(finding.fingerprint.as_str())
            .or_default()
            .push(at);
    }
    let mut renames: Vec<(usize, usize)> = Vec::new();
    for mut members in groups.into_values().filter(|members| members.len() > 1) {
        members.sort_by(|&a, &b| occurrence_order(&findings[a], &findings[b]));
        renames.extend(
            members
                .into_iter()
                .enumerate()
                .skip(1)
                .map(|(n, at)| (at, n)),
        );
    }
    for (at, occurrence) in renames {
        let finding = &mut findings[at].1;
        finding.fingerprint = hash(&["occurrence", &finding.fingerprint, &occurrence.to_string()]);
    }
}

/// Version, grain key, file, line, then document order.
fn occurrence_order(a: &(usize, RawFinding), b: &(usize, RawFinding)) -> Ordering {
    let ((a_position, a), (b_position, b)) = (a, b);
    compare_versions(a.package_version.as_deref(), b.package_version.as_deref())
        .then_with(|| a.grain.parts().cmp(b.grain.parts()))
        .then_with(|| a.file_path.cmp(&b.file_path))
        .then_with(|| a.line.cmp(&b.line))
        .then_with(|| a_position.cmp(b_position))
}

/// Orders versions so that `4.17.9` comes before `4.17.20`: runs of digits compare as numbers,
/// everything else as text. No version comes first.
fn compare_versions(a: Option<&str>, b: Option<&str>) -> Ordering {
    let (Some(a), Some(b)) = (a, b) else {
        return a.is_some().cmp(&b.is_some());
    };
    let (mut a_runs, mut b_runs) = (runs(a), runs(b));
    loop {
        let order = match (a_runs.next(), b_runs.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match (is_digits(x), is_digits(y)) {
                (true, true) => {
                    let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
                }
                (true, false) => Ordering::Less,
                (false, true) => Ordering::Greater,
                (false, false) => x.cmp(y),
            },
        };
        if order != Ordering::Equal {
            return order;
        }
    }
}

fn is_digits(run: &str) -> bool {
    run.bytes().next().is_some_and(|b| b.is_ascii_digit())
}

/// Splits text into maximal runs of ASCII digits and of everything else.
fn runs(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let digits = rest.bytes().next()?.is_ascii_digit();
        let end = rest
            .bytes()
            .position(|b| b.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
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
    fn versions_compare_digit_runs_as_numbers() {
        let order = |a, b| compare_versions(Some(a), Some(b));
        assert_eq!(order("4.17.9", "4.17.20"), Ordering::Less);
        assert_eq!(order("1.2.0", "0.0.8"), Ordering::Greater);
        assert_eq!(order("1.2", "1.2.0"), Ordering::Less);
        assert_eq!(order("2.0.0-rc1", "2.0.0-rc10"), Ordering::Less);
        assert_eq!(
            order("1.01", "1.1"),
            Ordering::Less,
            "ties fall back to the text"
        );
        assert_eq!(compare_versions(None, Some("0")), Ordering::Less);
    }

    #[test]
    fn hash_parts_do_not_run_together() {
        assert_ne!(hash(&["ab", "c"]), hash(&["a", "bc"]));
        assert_eq!(hash(&["x"]).len(), 64);
    }
}
