//! Scans and findings: the finding statuses, the per-severity counts, which scan is a scan's
//! baseline, and how each imported result is classified against the baseline and the
//! repository's findings (new, created, reopened, fixed).
//!
//! Everything here is pure: callers load the baseline and the stored findings and pass them
//! in. It never reads the database or the clock, and never decides severities (that is the
//! importers' and the finding rules' job).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Severity;

/// Where a finding stands. `accepted_risk` and `false_positive` suppress it for its repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    Open,
    InProgress,
    Fixed,
    AcceptedRisk,
    FalsePositive,
}

impl FindingStatus {
    pub const ALL: [FindingStatus; 5] = [
        FindingStatus::Open,
        FindingStatus::InProgress,
        FindingStatus::Fixed,
        FindingStatus::AcceptedRisk,
        FindingStatus::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::InProgress => "in_progress",
            FindingStatus::Fixed => "fixed",
            FindingStatus::AcceptedRisk => "accepted_risk",
            FindingStatus::FalsePositive => "false_positive",
        }
    }

    /// Accepted risks and false positives are never new and never fail a gate.
    pub fn is_suppressed(self) -> bool {
        matches!(
            self,
            FindingStatus::AcceptedRisk | FindingStatus::FalsePositive
        )
    }

    /// Still a problem someone has to deal with.
    pub fn is_open(self) -> bool {
        matches!(self, FindingStatus::Open | FindingStatus::InProgress)
    }
}

impl fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown finding status {0:?}; expected open, in_progress, fixed, accepted_risk or \
     false_positive"
)]
pub struct UnknownStatus(pub String);

impl FromStr for FindingStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FindingStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

/// `{critical, high, medium, low, info, total}`, plus how many results a `min_severity`
/// threshold dropped (`filtered`, not part of `total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub info: u64,
    pub total: u64,
    #[serde(default)]
    pub filtered: u64,
}

impl SeverityCounts {
    pub fn add(&mut self, severity: Severity) {
        let slot = match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Info => &mut self.info,
        };
        *slot += 1;
        self.total += 1;
    }
}

/// What a scan is about: a branch, or a pull request into a target branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanContext<'a> {
    pub branch: Option<&'a str>,
    pub pr_number: Option<i64>,
    pub target_branch: Option<&'a str>,
}

/// The branches, in order of preference, whose latest completed branch scan (same repository,
/// same tool, not a pull-request scan) is this scan's baseline.
///
/// A pull request compares against its target branch. When the caller did not say which
/// branch that is, the repository's default branch is assumed, tried as `main` then `master`.
/// A branch scan compares against the previous scan of the same branch. A scan with neither a
/// branch nor a pull request has no baseline.
pub fn baseline_branches(context: &ScanContext<'_>) -> Vec<String> {
    match (context.pr_number, context.target_branch, context.branch) {
        (Some(_), Some(target), _) => vec![target.to_owned()],
        (Some(_), None, _) => vec!["main".to_owned(), "master".to_owned()],
        (None, _, Some(branch)) => vec![branch.to_owned()],
        (None, _, None) => Vec::new(),
    }
}

/// One imported result as classification sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// The status the tool itself gave it (a suppression), if any.
    pub tool_status: Option<FindingStatus>,
    /// The status a finding rule set, if any; it wins over everything else.
    pub rule_status: Option<FindingStatus>,
    /// The repository's stored finding with this fingerprint, if there is one.
    pub existing: Option<FindingStatus>,
    /// Whether the baseline scan had it open.
    pub open_in_baseline: bool,
}

/// What importing one result does to its finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    pub status: FindingStatus,
    /// Counted in `new_counts`.
    pub is_new: bool,
    /// First time the repository has this finding (`finding_created`).
    pub created: bool,
    /// A fixed finding seen again (`finding_reopened`).
    pub reopened: bool,
}

/// Classifies one result. A suppression the user recorded for the repository survives a
/// re-import; a tool's own suppression applies; a fixed finding that comes back is open again.
/// New means: not open in the baseline and not suppressed by anyone.
pub fn classify(incoming: Incoming) -> Classified {
    let reopened = incoming.existing == Some(FindingStatus::Fixed);
    let carried = match incoming.existing {
        Some(status) if status.is_suppressed() => status,
        Some(FindingStatus::InProgress) => FindingStatus::InProgress,
        _ => incoming.tool_status.unwrap_or(FindingStatus::Open),
    };
    let status = incoming.rule_status.unwrap_or(carried);
    let suppressed = status.is_suppressed() || incoming.tool_status.is_some();
    Classified {
        status,
        is_new: !suppressed && !incoming.open_in_baseline,
        created: incoming.existing.is_none(),
        reopened: reopened && !status.is_suppressed(),
    }
}

/// The baseline's open fingerprints that this scan no longer reports.
pub fn fixed<'a>(
    baseline_open: impl IntoIterator<Item = &'a str>,
    current: &HashSet<&str>,
) -> Vec<&'a str> {
    baseline_open
        .into_iter()
        .filter(|fingerprint| !current.contains(fingerprint))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::FindingStatus::*;
    use super::*;

    fn check(incoming: Incoming, expected: (FindingStatus, bool, bool, bool)) {
        let got = classify(incoming);
        assert_eq!(
            (got.status, got.is_new, got.created, got.reopened),
            expected,
            "{incoming:?}"
        );
    }

    fn incoming(existing: Option<FindingStatus>, in_baseline: bool) -> Incoming {
        Incoming {
            tool_status: None,
            rule_status: None,
            existing,
            open_in_baseline: in_baseline,
        }
    }

    #[test]
    fn classification_table() {
        // (status, new, created, reopened)
        check(incoming(None, false), (Open, true, true, false));
        check(incoming(Some(Open), true), (Open, false, false, false));
        check(incoming(Some(Open), false), (Open, true, false, false));
        check(
            incoming(Some(InProgress), true),
            (InProgress, false, false, false),
        );
        check(incoming(Some(Fixed), false), (Open, true, false, true));
        check(incoming(Some(Fixed), true), (Open, false, false, true));
        check(
            incoming(Some(AcceptedRisk), false),
            (AcceptedRisk, false, false, false),
        );
        check(
            incoming(Some(FalsePositive), false),
            (FalsePositive, false, false, false),
        );

        let tool = |existing| Incoming {
            tool_status: Some(FalsePositive),
            ..incoming(existing, false)
        };
        check(tool(None), (FalsePositive, false, true, false));
        check(tool(Some(Open)), (FalsePositive, false, false, false));
        check(
            tool(Some(AcceptedRisk)),
            (AcceptedRisk, false, false, false),
        );

        let rule = |existing, status| Incoming {
            rule_status: Some(status),
            ..incoming(existing, false)
        };
        check(rule(None, AcceptedRisk), (AcceptedRisk, false, true, false));
        check(
            rule(Some(Fixed), AcceptedRisk),
            (AcceptedRisk, false, false, false),
        );
        check(rule(Some(AcceptedRisk), Open), (Open, true, false, false));
    }

    #[test]
    fn baselines() {
        let ctx = |branch, pr_number, target_branch| ScanContext {
            branch,
            pr_number,
            target_branch,
        };
        let check = |context: ScanContext<'_>, expected: &[&str]| {
            assert_eq!(baseline_branches(&context), expected, "{context:?}");
        };
        check(ctx(Some("feature"), Some(7), Some("develop")), &["develop"]);
        check(ctx(Some("feature"), Some(7), None), &["main", "master"]);
        check(ctx(Some("main"), None, None), &["main"]);
        check(ctx(Some("main"), None, Some("develop")), &["main"]);
        check(ctx(None, None, None), &[]);
    }

    #[test]
    fn fixed_is_baseline_minus_current() {
        let current: HashSet<&str> = ["a", "c"].into_iter().collect();
        assert_eq!(fixed(["a", "b", "d"], &current), ["b", "d"]);
        assert!(fixed([], &current).is_empty());
    }

    #[test]
    fn counts_add_up() {
        let mut counts = SeverityCounts::default();
        for severity in [Severity::High, Severity::High, Severity::Info] {
            counts.add(severity);
        }
        assert_eq!((counts.high, counts.info, counts.total), (2, 1, 3));
        assert_eq!(
            serde_json::to_value(counts).unwrap()["filtered"],
            serde_json::json!(0)
        );
    }
}
