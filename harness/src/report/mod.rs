//! The certification report: its rows, its verdict, and the files it is written to
//! (`report.md`, `junit.xml`, `report.json`, beside the evidence of each failure and a CCI-side
//! transcript of each scenario). The runner ([`crate::certify`]) fills it.
//!
//! - [`provenance`]: what the report was made from, and the manifest of its folder;
//! - [`verify`]: `burstcert verify`, the folder checked against that manifest;
//! - [`evidence`]: what a failed scenario leaves for a person to read, and every scenario's
//!   transcript;
//! - [`diff`]: `burstcert diff`, two report folders compared;
//! - [`fixture`]: scenarios that exist only for the tests of this machinery.

pub mod diff;
pub mod evidence;
pub mod fixture;
pub mod html;
pub mod provenance;
pub mod verify;

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

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
    /// Seconds it took (0 when it did not run; the last run's, when it ran more than once).
    pub seconds: f64,
    /// How often it ran and failed, when `--retries` ran it more than once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tries: Option<Tries>,
    /// The folder of its evidence, relative to the report's (`evidence/WL-01`), when it failed
    /// and evidence was gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl Row {
    /// A row of a scenario that ran once (or did not run), without evidence.
    pub fn new(id: &str, title: String, outcome: Outcome, seconds: f64) -> Self {
        Self {
            id: id.to_owned(),
            title,
            outcome,
            seconds,
            tries: None,
            evidence: None,
        }
    }

    /// Its outcome in a few words: the outcome's label, or, after retries, `failed 3 of 3` /
    /// `flaky (failed 1 of 2)`.
    pub fn label(&self) -> String {
        match self.tries {
            Some(tries) => tries.describe(),
            None => self.outcome.label().to_owned(),
        }
    }
}

/// How often a scenario ran under `certify --retries` and how often it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tries {
    /// Runs that failed.
    pub failed: u32,
    /// Runs in all.
    pub runs: u32,
}

impl Tries {
    /// Failed at least once and passed at least once.
    pub fn flaky(self) -> bool {
        self.failed > 0 && self.failed < self.runs
    }

    /// `flaky (failed 1 of 3)`, or `failed 3 of 3`.
    pub fn describe(self) -> String {
        if self.flaky() {
            format!("flaky (failed {} of {})", self.failed, self.runs)
        } else {
            format!("failed {} of {}", self.failed, self.runs)
        }
    }
}

/// A row's outcome from its runs, oldest first (a failed run is retried; the runs stop at the
/// first that does not fail, or when the retries are spent).
///
/// One run: its outcome, no [`Tries`]. Several runs that all failed: the last failure,
/// `failed n of n`. Failures then a pass: **failed**, and flaky: a certificate says the release
/// behaves as specified each time, and a scenario that failed once did not. So a flaky scenario
/// makes the run FAILED (exit code 1, as any failure, so no script that reads the exit code
/// certifies it), with `flaky (failed k of n)` in its row and in the summary, which is what
/// tells it apart from a failure that repeats.
pub fn classify(runs: Vec<Outcome>) -> (Outcome, Option<Tries>) {
    let n = runs.len();
    let failed = runs
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    let first_failure = runs.iter().find_map(|o| match o {
        Outcome::Failed(why) => Some(why.clone()),
        _ => None,
    });
    let mut runs = runs;
    let Some(last) = runs.pop() else {
        return (Outcome::Failed("it never ran".into()), None);
    };
    if n == 1 {
        return (last, None);
    }
    let count = |k: usize| u32::try_from(k).unwrap_or(u32::MAX);
    let tries = Tries {
        failed: count(failed),
        runs: count(n),
    };
    match (last, first_failure) {
        (Outcome::Failed(why), _) => (Outcome::Failed(why), Some(tries)),
        (_, Some(why)) => (
            Outcome::Failed(format!("{}; the first failure: {why}", tries.describe())),
            Some(tries),
        ),
        (other, None) => (other, None),
    }
}

/// Replaces each of `secrets` (those of at least 8 characters; shorter ones would redact
/// ordinary words) in `text` with `(redacted)`: every file of a report folder goes through it.
pub fn redact(text: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| secret.len() >= 8)
        .fold(text, |text, secret| {
            text.replace(secret.as_str(), "(redacted)")
        })
}

/// The CCI credential of every environment `run` started: what [`redact`] hides. With a
/// token, the secret key of the AK/SK pair the mock accepts for it too
/// ([`crate::env::aksk_pair`]): the add-on holds that pair under `--cci-auth aksk`, and its log
/// is evidence.
pub fn run_secrets(run: &crate::env::Run) -> Vec<String> {
    run.started()
        .iter()
        .flat_map(|env| {
            let auth = env.cci.auth();
            let pair_of_token = match auth {
                crate::cci::CciAuth::Token(token) => crate::env::aksk_pair(token)
                    .split_once(':')
                    .map(|(_, secret_key)| secret_key.to_owned()),
                crate::cci::CciAuth::AkSk(_) => None,
            };
            std::iter::once(auth.secret().to_owned()).chain(pair_of_token)
        })
        .collect()
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
    /// What the report was made from; written with the manifest of the folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<provenance::Provenance>,
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
        let failed: Vec<String> = self
            .rows
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::NotImplemented))
            .map(|r| match r.tries {
                Some(tries) => format!("{} ({})", r.id, tries.describe()),
                None => r.id.clone(),
            })
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
            let evidence = r
                .evidence
                .as_ref()
                .map(|dir| format!(" ([evidence]({dir}/))"))
                .unwrap_or_default();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.1}s | {}{evidence} |",
                r.id,
                cell(&r.title),
                r.label(),
                r.seconds,
                cell(r.outcome.reason())
            );
        }
        if let Some(p) = &self.provenance {
            let _ = write!(
                md,
                "\nburstcert {} ({}), catalogue {}, mock {}; from {} to {}. `burstcert verify` checks this folder against `report.json`.\n",
                p.harness.version,
                p.harness.commit,
                &p.catalogue_sha256[..p.catalogue_sha256.len().min(12)],
                p.mock.mode,
                p.started,
                p.ended
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
                    let message = match r.tries {
                        Some(tries) => format!("{}: {first}", tries.describe()),
                        None => first.to_owned(),
                    };
                    let evidence = r
                        .evidence
                        .as_ref()
                        .map(|dir| format!("\nevidence: {dir}/ (beside this file)"))
                        .unwrap_or_default();
                    let _ = write!(
                        xml,
                        ">\n    <failure message=\"{}\">{}{}</failure>\n  </testcase>\n",
                        xml_escape(&message),
                        xml_escape(why),
                        xml_escape(&evidence)
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

    /// Writes `report.md`, `junit.xml`, `report.html` and `report.json` into `dir`, with the CCI
    /// credential of every environment `run` started redacted (a failure's words may quote one).
    pub fn write(&self, dir: &Path, run: &crate::env::Run) -> Result<()> {
        self.write_redacting(dir, &run_secrets(run))
    }

    /// [`Report::write`], redacting `secrets` (see [`redact`]). `report.json` is written last:
    /// with a provenance, it holds the manifest of every other file of `dir` (the evidence and
    /// transcripts the run wrote there too), and it is sealed ([`verify::seal`]).
    pub fn write_redacting(&self, dir: &Path, secrets: &[String]) -> Result<()> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, redact(text, secrets))
                .io_context(|| format!("write {}", path.display()))
        };
        write("report.md", self.markdown())?;
        write("junit.xml", self.junit())?;
        write(
            "report.html",
            html::html(self, &|id| evidence::read(dir, id)),
        )?;
        let mut report = self.clone();
        if let Some(provenance) = &mut report.provenance {
            // The other files are on disk and redacted: what the manifest hashes is what is kept.
            provenance.manifest = provenance::manifest(dir, "report.json")?;
        }
        let mut json = serde_json::to_value(&report).expect("report serializes");
        json["verdict"] = serde_json::to_value(self.verdict()).expect("verdict serializes");
        json["summary"] = self.summary().into();
        let json = serde_json::to_string_pretty(&json).expect("report serializes");
        // Redacted before sealing, so the seal is over the bytes on disk.
        let path = dir.join("report.json");
        std::fs::write(&path, verify::seal(&redact(json, secrets)))
            .io_context(|| format!("write {}", path.display()))
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Text for XML (and HTML): the five characters with a meaning there escaped, control
/// characters but newlines and tabs dropped.
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
                .map(|(i, outcome)| {
                    Row::new(
                        &format!("WL-0{}", i + 1),
                        "a <title> & more".into(),
                        outcome,
                        1.0,
                    )
                })
                .collect(),
            provenance: None,
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
            .write_redacting(dir.path(), &[])
            .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["verdict"], "INCOMPLETE");
        assert_eq!(json["rows"][1]["outcome"], "skipped");
    }

    fn passed() -> Outcome {
        Outcome::Passed
    }

    #[rstest]
    #[case::once_passed(vec![passed()], passed(), None)]
    #[case::once_failed(vec![failed()], failed(), None)]
    #[case::every_retry_failed(vec![failed(), failed(), failed()], failed(), Some((3, 3)))]
    #[case::passed_on_the_last(
        vec![failed(), failed(), passed()],
        Outcome::Failed("flaky (failed 2 of 3); the first failure: boom".into()),
        Some((2, 3))
    )]
    #[case::passed_on_the_second(
        vec![Outcome::Failed("first".into()), passed()],
        Outcome::Failed("flaky (failed 1 of 2); the first failure: first".into()),
        Some((1, 2))
    )]
    fn runs_are_classified_as_one_outcome_deterministic_or_flaky(
        #[case] runs: Vec<Outcome>,
        #[case] outcome: Outcome,
        #[case] tries: Option<(u32, u32)>,
    ) {
        let tries = tries.map(|(failed, runs)| Tries { failed, runs });
        assert_eq!(classify(runs), (outcome, tries));
    }

    #[test]
    fn a_flaky_scenario_fails_the_run_and_says_flaky_in_its_row_and_the_summary() {
        let (outcome, tries) = classify(vec![failed(), passed()]);
        let mut r = report(vec![Outcome::Passed, outcome]);
        r.rows[1].tries = tries;
        assert_eq!(r.verdict(), Verdict::Failed);
        assert_eq!(r.rows[1].label(), "flaky (failed 1 of 2)");
        assert!(
            r.summary()
                .contains("failed: WL-02 (flaky (failed 1 of 2))"),
            "{}",
            r.summary()
        );
        assert!(r.markdown().contains("| flaky (failed 1 of 2) |"));
        assert!(
            r.junit()
                .contains(r#"<failure message="flaky (failed 1 of 2): flaky"#),
            "{}",
            r.junit()
        );
        let (outcome, tries) = classify(vec![failed(), failed()]);
        let mut r = report(vec![outcome]);
        r.rows[0].tries = tries;
        assert_eq!(r.rows[0].label(), "failed 2 of 2");
        assert_eq!(r.verdict(), Verdict::Failed);
    }

    #[test]
    fn a_failure_links_its_evidence_from_every_format() {
        let mut r = report(vec![failed()]);
        r.rows[0].evidence = Some("evidence/WL-01".into());
        assert!(r.markdown().contains("boom ([evidence](evidence/WL-01/))"));
        assert!(
            r.junit()
                .contains("boom\nevidence: evidence/WL-01/ (beside this file)</failure>")
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["rows"][0]["evidence"], "evidence/WL-01");
    }

    #[test]
    fn a_written_report_verifies_until_one_byte_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("evidence/WL-01")).unwrap();
        std::fs::write(dir.path().join("evidence/WL-01/reproduce.txt"), "x\n").unwrap();
        let mut r = report(vec![failed()]);
        r.provenance = Some(provenance::Provenance {
            catalogue_sha256: "ab".repeat(32),
            ..Default::default()
        });
        r.write_redacting(dir.path(), &[]).unwrap();
        assert_eq!(verify::verify(dir.path()), vec![]);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        let manifest = json["provenance"]["manifest"].as_object().unwrap();
        assert_eq!(
            manifest.keys().collect::<Vec<_>>(),
            [
                "evidence/WL-01/reproduce.txt",
                "junit.xml",
                "report.html",
                "report.md"
            ]
        );
        let md = dir.path().join("report.md");
        let mut bytes = std::fs::read(&md).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&md, bytes).unwrap();
        assert_eq!(
            verify::verify(dir.path()),
            vec![verify::Difference::Changed("report.md".into())]
        );
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
        for name in ["report.md", "junit.xml", "report.json", "report.html"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(!text.contains(&canary), "{name}: {text}");
            assert!(text.contains("X-Auth-Token (redacted)"), "{name}: {text}");
        }
    }

    /// The Markdown report's shape, reviewed once: a row per outcome (a failure with its
    /// evidence link), the verdict line, the provenance line; times and the commit redacted, so
    /// only a change of shape changes the snapshot.
    #[test]
    fn the_markdown_report_keeps_its_reviewed_shape() {
        let mut report = report(vec![
            Outcome::Passed,
            failed(),
            na(),
            not_run(),
            skipped(),
            Outcome::NotImplemented,
        ]);
        report.rows[1].evidence = Some("evidence/WL-02".into());
        report.rows[0].seconds = 12.34;
        report.provenance = Some(provenance::Provenance {
            harness: provenance::Harness {
                version: "0.1.0".into(),
                commit: "0123456789ab".into(),
            },
            catalogue_sha256: "c".repeat(64),
            mock: provenance::Mock {
                version: "0.1.0".into(),
                mode: "local process".into(),
            },
            started: "2026-12-07T10:00:00Z".into(),
            ended: "2026-12-07T10:04:08Z".into(),
            ..Default::default()
        });
        let mut settings = crate::snapshot::settings();
        settings.add_filter(r"\b\d+\.\ds\b", "[seconds]");
        settings.add_filter(r"\d{4}-\d\d-\d\dT[0-9:.]+Z", "[time]");
        settings.add_filter(r"\(([0-9a-f]{12})(\+dirty)?\)", "([commit])");
        settings.bind(|| insta::assert_snapshot!("report_md_shape", report.markdown()));
    }
}
