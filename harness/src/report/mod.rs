//! The certification report: its rows, its verdict, and the files it is written to
//! (`report.md`, `junit.xml`, `report.json`). Pure: the runner ([`crate::certify`]) fills it.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::catalogue::Outcome;
use crate::error::{IoContext, Result};

/// One row of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Scenario ID.
    pub id: String,
    /// Its title.
    pub title: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Seconds it took (0 when it did not run).
    pub seconds: f64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The certified release.
    pub release: String,
    /// `local`, `kind` or `existing`.
    pub cluster: String,
    /// The Kubernetes version the cluster served.
    pub kubernetes: String,
    /// One row per catalogue ID, in catalogue order.
    pub rows: Vec<Row>,
}

/// What a run concludes about the release; the report and the exit code carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Every catalogue scenario ran and passed, or is not applicable at this release (a gate).
    /// Exit code 0.
    Certified,
    /// At least one scenario failed or has no body. Exit code 1.
    Failed,
    /// Nothing failed, but some scenarios did not run: this target could not run them, or
    /// `--focus` / `--skip` left them out. A focused run that passes is incomplete. Exit code 3.
    Incomplete,
}

impl Verdict {
    /// The process exit code of `burstcert certify` for this verdict.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Certified => 0,
            Verdict::Failed => 1,
            Verdict::Incomplete => 3,
        }
    }

    /// `CERTIFIED`, `FAILED` or `INCOMPLETE`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Certified => "CERTIFIED",
            Verdict::Failed => "FAILED",
            Verdict::Incomplete => "INCOMPLETE",
        }
    }
}

impl Report {
    /// The run's verdict: failed if any row failed or lacks a body, else incomplete if any row
    /// did not run (not run here, or left out), else certified.
    pub fn verdict(&self) -> Verdict {
        if self
            .rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::NotImplemented))
        {
            Verdict::Failed
        } else if self
            .rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::NotRun(_) | Outcome::Skipped(_)))
        {
            Verdict::Incomplete
        } else {
            Verdict::Certified
        }
    }

    /// One line saying the verdict and why, e.g.
    /// `INCOMPLETE: 1 passed; 48 left out by --focus/--skip (a partial run certifies nothing)`.
    pub fn summary(&self) -> String {
        let count = |f: fn(&Outcome) -> bool| self.rows.iter().filter(|r| f(&r.outcome)).count();
        let totals: Vec<String> = self
            .totals()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(l, n)| format!("{n} {l}"))
            .collect();
        let mut line = format!(
            "{} release {}: {}",
            self.verdict().label(),
            self.release,
            totals.join(", ")
        );
        let failed: Vec<&str> = self
            .rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::NotImplemented))
            .map(|r| r.id.as_str())
            .collect();
        if !failed.is_empty() {
            line.push_str(&format!("; failed: {}", failed.join(", ")));
        }
        let not_run = count(|o| matches!(o, Outcome::NotRun(_)));
        if not_run > 0 {
            line.push_str(&format!(
                "; {not_run} could not run on this cluster (see each row's need)"
            ));
        }
        let left_out = count(|o| matches!(o, Outcome::Skipped(_)));
        if left_out > 0 {
            line.push_str(&format!(
                "; {left_out} left out by --focus/--skip (a partial run certifies nothing)"
            ));
        }
        line
    }

    /// The scenarios that bounded the wall time (run one after another, the slowest ones are
    /// the critical path), slowest first: `WL-04 62.1s (21%)`.
    pub fn slowest(&self, n: usize) -> Vec<String> {
        let total: f64 = self.rows.iter().map(|r| r.seconds).sum();
        let mut rows: Vec<&Row> = self.rows.iter().filter(|r| r.seconds > 0.0).collect();
        rows.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        rows.iter()
            .take(n)
            .map(|r| {
                format!(
                    "{} {:.1}s ({:.0}%)",
                    r.id,
                    r.seconds,
                    100.0 * r.seconds / total.max(f64::EPSILON)
                )
            })
            .collect()
    }

    /// How many rows have each outcome label, in a fixed order.
    pub fn totals(&self) -> Vec<(&'static str, usize)> {
        [
            "passed",
            "failed",
            "not applicable",
            "not run",
            "not implemented",
            "skipped",
        ]
        .into_iter()
        .map(|label| {
            (
                label,
                self.rows
                    .iter()
                    .filter(|r| r.outcome.label() == label)
                    .count(),
            )
        })
        .collect()
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# burstcert report\n\nRelease **{}** on a **{}** cluster (Kubernetes {}).\n\n",
            self.release, self.cluster, self.kubernetes
        );
        let _ = writeln!(md, "**{}**\n", self.summary());
        md.push_str("| ID | title | outcome | time | reason |\n|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1}s | {} |",
                r.id,
                cell(&r.title),
                r.outcome.label(),
                r.seconds,
                cell(r.outcome.reason())
            );
        }
        md
    }

    /// The report as JUnit XML (one testcase per ID; not applicable and not implemented are
    /// `skipped` with the reason, failures carry the diagnosis).
    pub fn junit(&self) -> String {
        let failures = self
            .rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
            .count();
        let skipped = self
            .rows
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Passed | Outcome::Failed(_)))
            .count();
        let time: f64 = self.rows.iter().map(|r| r.seconds).sum();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"burstcert {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.1}\">\n  <properties>\n    <property name=\"verdict\" value=\"{}\"/>\n    <property name=\"summary\" value=\"{}\"/>\n  </properties>\n",
            xml_escape(&self.release),
            self.rows.len(),
            self.verdict().label(),
            xml_escape(&self.summary())
        );
        for r in &self.rows {
            let family = r.id.split('-').next().unwrap_or("");
            let _ = write!(
                xml,
                "  <testcase classname=\"{family}\" name=\"{} {}\" time=\"{:.1}\"",
                r.id,
                xml_escape(&r.title),
                r.seconds
            );
            match &r.outcome {
                Outcome::Passed => xml.push_str("/>\n"),
                Outcome::Failed(why) => {
                    let first = why.lines().next().unwrap_or("");
                    let _ = write!(
                        xml,
                        ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n",
                        xml_escape(first),
                        xml_escape(why)
                    );
                }
                other => {
                    let _ = write!(
                        xml,
                        ">\n    <skipped message=\"{}: {}\"/>\n  </testcase>\n",
                        other.label(),
                        xml_escape(other.reason())
                    );
                }
            }
        }
        xml.push_str("</testsuite>\n</testsuites>\n");
        xml
    }

    /// Writes `report.md`, `junit.xml` and `report.json` into `dir`, with the CCI credential of
    /// every environment this run started redacted (a failure's words may quote one).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let secrets: Vec<String> = crate::env::started()
            .iter()
            .map(|env| env.cci.auth().secret().to_owned())
            .collect();
        self.write_redacting(dir, &secrets)
    }

    /// [`Report::write`], redacting `secrets` (each of at least 8 characters; shorter ones would
    /// redact ordinary words).
    pub fn write_redacting(&self, dir: &Path, secrets: &[String]) -> Result<()> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let mut json = serde_json::to_value(self).expect("report serializes");
        json["verdict"] = serde_json::to_value(self.verdict()).expect("verdict serializes");
        json["summary"] = self.summary().into();
        let json = serde_json::to_string_pretty(&json).expect("report serializes");
        for (name, text) in [
            ("report.md", self.markdown()),
            ("junit.xml", self.junit()),
            ("report.json", json),
        ] {
            let path = dir.join(name);
            let text = secrets
                .iter()
                .filter(|secret| secret.len() >= 8)
                .fold(text, |text, secret| {
                    text.replace(secret.as_str(), "(redacted)")
                });
            std::fs::write(&path, text).io_context(|| format!("write {}", path.display()))?;
        }
        Ok(())
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .fold(String::with_capacity(text.len()), |mut s, c| {
            match c {
                '&' => s.push_str("&amp;"),
                '<' => s.push_str("&lt;"),
                '>' => s.push_str("&gt;"),
                '"' => s.push_str("&quot;"),
                '\'' => s.push_str("&apos;"),
                c => s.push(c),
            }
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn report(outcomes: Vec<Outcome>) -> Report {
        Report {
            release: "1.5.18".into(),
            cluster: "local".into(),
            kubernetes: "v1.36.3".into(),
            rows: outcomes
                .into_iter()
                .enumerate()
                .map(|(i, outcome)| Row {
                    id: format!("WL-0{}", i + 1),
                    title: "a <title> & more".into(),
                    outcome,
                    seconds: 1.0,
                })
                .collect(),
        }
    }

    fn na() -> Outcome {
        Outcome::NotApplicable("gate >= 1.3.25".into())
    }
    fn failed() -> Outcome {
        Outcome::Failed("boom".into())
    }
    fn not_run() -> Outcome {
        Outcome::NotRun("needs the mock".into())
    }
    fn skipped() -> Outcome {
        Outcome::Skipped("not selected by --focus".into())
    }

    #[rstest]
    #[case::all_passed(vec![Outcome::Passed, Outcome::Passed], Verdict::Certified)]
    #[case::a_gate_is_not_a_gap(vec![Outcome::Passed, na()], Verdict::Certified)]
    #[case::one_failure(vec![Outcome::Passed, failed()], Verdict::Failed)]
    #[case::a_missing_body(vec![Outcome::Passed, Outcome::NotImplemented], Verdict::Failed)]
    #[case::failure_beats_gaps(vec![failed(), skipped(), not_run()], Verdict::Failed)]
    #[case::focused(vec![Outcome::Passed, skipped()], Verdict::Incomplete)]
    #[case::not_runnable_here(vec![Outcome::Passed, not_run()], Verdict::Incomplete)]
    #[case::nothing_ran(vec![not_run(), not_run()], Verdict::Incomplete)]
    fn the_verdict_certifies_only_a_run_where_every_scenario_ran(
        #[case] outcomes: Vec<Outcome>,
        #[case] expected: Verdict,
    ) {
        assert_eq!(report(outcomes).verdict(), expected);
    }

    #[test]
    fn the_slowest_scenarios_are_listed_first_with_their_share_of_the_time() {
        let mut r = report(vec![Outcome::Passed, Outcome::Passed, skipped()]);
        r.rows[0].seconds = 1.0;
        r.rows[1].seconds = 3.0;
        r.rows[2].seconds = 0.0;
        assert_eq!(r.slowest(5), vec!["WL-02 3.0s (75%)", "WL-01 1.0s (25%)"]);
        assert_eq!(r.slowest(1).len(), 1);
    }

    #[test]
    fn a_focused_run_that_passes_says_in_one_line_that_it_certifies_nothing() {
        let line = report(vec![Outcome::Passed, skipped(), skipped()]).summary();
        assert_eq!(
            line,
            "INCOMPLETE release 1.5.18: 1 passed, 2 skipped; 2 left out by --focus/--skip (a partial run certifies nothing)"
        );
        let line = report(vec![Outcome::Passed, failed(), not_run()]).summary();
        assert!(line.starts_with("FAILED release 1.5.18"), "{line}");
        assert!(line.contains("failed: WL-02"), "{line}");
        assert!(line.contains("1 could not run on this cluster"), "{line}");
    }

    #[test]
    fn junit_counts_failures_and_skips_carries_the_verdict_and_escapes_text() {
        let xml = report(vec![
            Outcome::Passed,
            Outcome::Failed("timed out <waiting>\nmore".into()),
            na(),
            Outcome::NotImplemented,
            not_run(),
        ])
        .junit();
        assert!(
            xml.contains(r#"tests="5" failures="1" skipped="3""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<property name="verdict" value="FAILED"/>"#),
            "{xml}"
        );
        assert!(xml.contains("a &lt;title&gt; &amp; more"), "{xml}");
        assert!(
            xml.contains(r#"<failure message="timed out &lt;waiting&gt;">"#),
            "{xml}"
        );
        assert!(xml.contains("not applicable: gate &gt;= 1.3.25"), "{xml}");
        assert!(xml.contains("not run: needs the mock"), "{xml}");
    }

    #[test]
    fn markdown_has_the_verdict_and_a_row_per_id_with_outcome_and_reason() {
        let md = report(vec![
            Outcome::Passed,
            Outcome::NotApplicable("release 1.3.24 | gate".into()),
        ])
        .markdown();
        assert!(
            md.contains("| WL-01 | a <title> & more | passed | 1.0s |  |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| WL-02 | a <title> & more | not applicable | 1.0s | release 1.3.24 \\| gate |"
            ),
            "{md}"
        );
        assert!(
            md.contains("**CERTIFIED release 1.5.18: 1 passed, 1 not applicable**"),
            "{md}"
        );
    }

    #[test]
    fn the_json_report_carries_the_verdict() {
        let dir = tempfile::tempdir().unwrap();
        report(vec![Outcome::Passed, skipped()])
            .write(dir.path())
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["verdict"], "INCOMPLETE");
        assert_eq!(json["rows"][1]["outcome"], "skipped");
    }

    #[test]
    fn no_report_file_holds_a_credential_a_failure_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let canary = "token-canary-9f3e2a".to_owned();
        report(vec![
            Outcome::Failed(format!("CCI refused X-Auth-Token {canary}")),
            Outcome::Passed,
        ])
        .write_redacting(dir.path(), &[canary.clone(), "short".into()])
        .unwrap();
        for name in ["report.md", "junit.xml", "report.json"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(!text.contains(&canary), "{name}: {text}");
            assert!(text.contains("X-Auth-Token (redacted)"), "{name}: {text}");
        }
    }
}
