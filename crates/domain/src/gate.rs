//! The pull-request gate and the `auto_scan` configuration it is part of: which new findings
//! block a pull request, which only warn, and the one-line description and Markdown comment
//! that report the verdict.
//!
//! Everything here is pure: callers hand over a scan's counts and its new findings and get a
//! verdict and text back. It never posts anything, never reads the database, and never decides
//! which scan is the right one to judge (the engine does).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::Severity;
use crate::scan::SeverityCounts;

/// The hidden marker that identifies PMAP's comment on a pull request, so later runs edit it.
pub const COMMENT_MARKER: &str = "<!-- pmap:gate -->";
/// New findings listed in the comment at most.
pub const COMMENT_MAX_FINDINGS: usize = 10;

/// `auto_scan` on a `ci_webhook` integration (validated on write by `integration`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct AutoScan {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Glob patterns; empty means every branch.
    #[serde(default)]
    pub branches: Vec<String>,
    #[serde(default)]
    pub pipeline_triggers: Vec<PipelineTrigger>,
    #[serde(default)]
    pub scans: Vec<ScanRequest>,
    pub gate: Option<GateConfig>,
}

fn yes() -> bool {
    true
}

impl AutoScan {
    /// The `auto_scan` block of an integration's config; `None` when there is none.
    pub fn from_config(config: &Value) -> Option<AutoScan> {
        let value = config.get("auto_scan")?;
        serde_json::from_value(value.clone()).ok()
    }
}

/// One pipeline to start through its vendor's API.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PipelineTrigger {
    pub integration_id: uuid::Uuid,
    /// Workflow file, pipeline id, job name or plan key, as the vendor names it.
    #[serde(default)]
    pub pipeline: String,
    /// A template rendered from the CI event; the event's branch when absent.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub variables: Map<String, Value>,
}

/// One SAST/SCA pull that a CI event queues.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ScanRequest {
    pub integration_id: uuid::Uuid,
    pub project_id: Option<String>,
}

/// What to do when a pull-request scan had no baseline to compare with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoBaseline {
    /// Every finding counts as new (the default).
    #[default]
    AllNew,
    /// The gate passes.
    Pass,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct GateConfig {
    #[serde(default = "default_block")]
    pub block_on_new: Vec<Severity>,
    #[serde(default)]
    pub warn_on_new: Vec<Severity>,
    #[serde(default = "yes")]
    pub pr_comment: bool,
    #[serde(default)]
    pub no_baseline: NoBaseline,
}

fn default_block() -> Vec<Severity> {
    vec![Severity::Critical, Severity::High]
}

impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            block_on_new: default_block(),
            warn_on_new: Vec::new(),
            pr_comment: true,
            no_baseline: NoBaseline::AllNew,
        }
    }
}

/// The gate's verdict, in PMAP's words (each SCM client maps it to its vendor's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateState {
    Success,
    Failure,
    Pending,
    Error,
}

impl GateState {
    pub fn as_str(self) -> &'static str {
        match self {
            GateState::Success => "success",
            GateState::Failure => "failure",
            GateState::Pending => "pending",
            GateState::Error => "error",
        }
    }
}

/// What the gate looks at: the scan's status, whether it had a baseline, its new counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateInput {
    /// `completed`, `failed`, or (not yet judged) `queued`/`running`.
    pub scan_failed: bool,
    pub has_baseline: bool,
    pub new_counts: SeverityCounts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub state: GateState,
    /// One line, for the commit status.
    pub description: String,
    /// The new counts the verdict was made from (zero when `no_baseline: pass` applied).
    pub new_counts: SeverityCounts,
    /// True when the scan had no baseline and `no_baseline: pass` decided.
    pub passed_without_baseline: bool,
}

/// The verdict while no scan of the pull request has completed yet.
pub fn waiting() -> Verdict {
    Verdict {
        state: GateState::Pending,
        description: "waiting for scan results".into(),
        new_counts: SeverityCounts::default(),
        passed_without_baseline: false,
    }
}

/// Judges one scan: a failed scan is an error; any new finding of a blocking severity fails;
/// else any of a warning severity is pending; else success.
pub fn evaluate(config: &GateConfig, input: &GateInput) -> Verdict {
    if input.scan_failed {
        return Verdict {
            state: GateState::Error,
            description: "the security scan failed".into(),
            new_counts: input.new_counts,
            passed_without_baseline: false,
        };
    }
    if !input.has_baseline && config.no_baseline == NoBaseline::Pass {
        return Verdict {
            state: GateState::Success,
            description: "no baseline to compare with — passing".into(),
            new_counts: SeverityCounts::default(),
            passed_without_baseline: true,
        };
    }

    let counts = &input.new_counts;
    let any_in = |list: &[Severity]| list.iter().any(|s| count_of(counts, *s) > 0);
    let (state, suffix) = if any_in(&config.block_on_new) {
        (GateState::Failure, "blocking")
    } else if any_in(&config.warn_on_new) {
        (GateState::Pending, "review needed")
    } else {
        (GateState::Success, "passing")
    };
    let listed = describe_counts(counts);
    let description = if listed.is_empty() {
        "no new findings — passing".to_owned()
    } else {
        format!("{listed} — {suffix}")
    };
    Verdict {
        state,
        description,
        new_counts: *counts,
        passed_without_baseline: false,
    }
}

/// How many findings of one severity a count holds.
pub fn count_of(counts: &SeverityCounts, severity: Severity) -> u64 {
    match severity {
        Severity::Critical => counts.critical,
        Severity::High => counts.high,
        Severity::Medium => counts.medium,
        Severity::Low => counts.low,
        Severity::Info => counts.info,
    }
}

/// `2 new high, 1 new medium`, most severe first; empty when nothing is new.
pub fn describe_counts(counts: &SeverityCounts) -> String {
    Severity::ALL
        .iter()
        .filter_map(|&s| {
            let n = count_of(counts, s);
            (n > 0).then(|| format!("{n} new {}", s.as_str()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// New, fixed and still-open counts of one scan by severity, for the comment's table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Breakdown {
    pub new: SeverityCounts,
    pub fixed: SeverityCounts,
    pub existing: SeverityCounts,
}

/// One new finding as the comment lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFinding {
    pub severity: Severity,
    pub title: String,
    /// `path:line`, or `package@version`, when known.
    pub location: Option<String>,
}

/// The Markdown comment: the verdict, the table, up to ten new findings, the link, the marker.
pub fn comment(
    verdict: &Verdict,
    breakdown: &Breakdown,
    new_findings: &[ListedFinding],
    link: &str,
) -> String {
    let icon = match verdict.state {
        GateState::Success => "✅",
        GateState::Failure => "❌",
        GateState::Pending => "⚠️",
        GateState::Error => "⛔",
    };
    let mut out = format!(
        "{COMMENT_MARKER}\n### {icon} PMAP security gate: {}\n\n{}\n",
        verdict.state.as_str(),
        verdict.description
    );
    if verdict.passed_without_baseline {
        out.push_str("\nThis pull request had no baseline scan; the gate is set to pass then.\n");
    }
    out.push_str("\n| severity | new | fixed | existing |\n|---|---:|---:|---:|\n");
    for s in Severity::ALL {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            s.as_str(),
            count_of(&breakdown.new, s),
            count_of(&breakdown.fixed, s),
            count_of(&breakdown.existing, s)
        ));
    }
    if !new_findings.is_empty() {
        out.push_str("\n**New findings**\n\n");
        for finding in new_findings.iter().take(COMMENT_MAX_FINDINGS) {
            let title = one_line(&finding.title);
            match &finding.location {
                Some(at) => out.push_str(&format!(
                    "- **{}** {title} — `{}`\n",
                    finding.severity.as_str(),
                    one_line(at)
                )),
                None => out.push_str(&format!("- **{}** {title}\n", finding.severity.as_str())),
            }
        }
        let more = breakdown
            .new
            .total
            .saturating_sub(COMMENT_MAX_FINDINGS as u64);
        if more > 0 {
            out.push_str(&format!("- … and {more} more\n"));
        }
    }
    out.push_str(&format!("\n[Open in PMAP]({link})\n"));
    out
}

/// Keeps vendor text from breaking the Markdown table or list it is placed in.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(critical: u64, high: u64, medium: u64, low: u64) -> SeverityCounts {
        SeverityCounts {
            critical,
            high,
            medium,
            low,
            info: 0,
            total: critical + high + medium + low,
            filtered: 0,
        }
    }

    fn check(config: &GateConfig, input: GateInput, state: GateState, description: &str) {
        let verdict = evaluate(config, &input);
        assert_eq!(
            (verdict.state, verdict.description.as_str()),
            (state, description),
            "{input:?}"
        );
    }

    fn input(new_counts: SeverityCounts) -> GateInput {
        GateInput {
            scan_failed: false,
            has_baseline: true,
            new_counts,
        }
    }

    #[test]
    fn verdicts() {
        let config = GateConfig {
            warn_on_new: vec![Severity::Medium],
            ..GateConfig::default()
        };
        use GateState::*;
        check(
            &config,
            input(counts(0, 2, 1, 0)),
            Failure,
            "2 new high, 1 new medium — blocking",
        );
        check(
            &config,
            input(counts(1, 0, 0, 0)),
            Failure,
            "1 new critical — blocking",
        );
        check(
            &config,
            input(counts(0, 0, 1, 0)),
            Pending,
            "1 new medium — review needed",
        );
        check(
            &config,
            input(counts(0, 0, 0, 3)),
            Success,
            "3 new low — passing",
        );
        check(
            &config,
            input(counts(0, 0, 0, 0)),
            Success,
            "no new findings — passing",
        );
        let failed = GateInput {
            scan_failed: true,
            ..input(counts(0, 0, 0, 0))
        };
        check(&config, failed, Error, "the security scan failed");
    }

    #[test]
    fn no_baseline_decides_when_there_was_none() {
        let first = GateInput {
            has_baseline: false,
            ..input(counts(0, 1, 0, 0))
        };
        check(
            &GateConfig::default(),
            first,
            GateState::Failure,
            "1 new high — blocking",
        );
        let pass = GateConfig {
            no_baseline: NoBaseline::Pass,
            ..GateConfig::default()
        };
        check(
            &pass,
            first,
            GateState::Success,
            "no baseline to compare with — passing",
        );
        check(
            &pass,
            input(counts(0, 1, 0, 0)),
            GateState::Failure,
            "1 new high — blocking",
        );
    }

    #[test]
    fn auto_scan_reads_with_defaults() {
        let config = serde_json::json!({"auto_scan": {"branches": ["main"],
            "gate": {"warn_on_new": ["medium"], "no_baseline": "pass"}}});
        let auto_scan = AutoScan::from_config(&config).unwrap();
        assert!(auto_scan.enabled);
        let gate = auto_scan.gate.unwrap();
        assert_eq!(gate.block_on_new, vec![Severity::Critical, Severity::High]);
        assert_eq!(gate.no_baseline, NoBaseline::Pass);
        assert!(gate.pr_comment);
        assert_eq!(AutoScan::from_config(&serde_json::json!({})), None);
    }

    #[test]
    fn comment_carries_marker_table_findings_and_link() {
        let verdict = evaluate(&GateConfig::default(), &input(counts(0, 1, 0, 0)));
        let breakdown = Breakdown {
            new: counts(0, 1, 0, 0),
            fixed: counts(0, 0, 2, 0),
            existing: counts(0, 0, 0, 4),
        };
        let findings = [ListedFinding {
            severity: Severity::High,
            title: "SQL injection\nin query".into(),
            location: Some("src/db.rs:42".into()),
        }];
        let text = comment(
            &verdict,
            &breakdown,
            &findings,
            "https://pmap.example/scans/1",
        );
        assert!(text.starts_with(COMMENT_MARKER));
        assert!(text.contains("| high | 1 | 0 | 0 |"));
        assert!(text.contains("| medium | 0 | 2 | 0 |"));
        assert!(text.contains("- **high** SQL injection in query — `src/db.rs:42`"));
        assert!(text.contains("(https://pmap.example/scans/1)"));
    }
}
