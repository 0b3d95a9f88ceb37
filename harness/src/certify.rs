//! `burstcert certify`: run the catalogue's scenarios as a program and write the report
//! (`report.md`, `junit.xml`, `report.json`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::catalogue::{self, Entry, Outcome};
use crate::error::{IoContext, Result};

/// The release `burstcert certify` certifies the bundled engine as when none is given.
pub const DEFAULT_RELEASE: &str = "1.5.18";

/// What to certify and where to write the report.
#[derive(Clone, Debug)]
pub struct Options {
    /// The add-on release the engine is certified as, e.g. `1.5.18`.
    pub release: String,
    /// Only these IDs (empty: all).
    pub focus: Vec<String>,
    /// Not these IDs.
    pub skip: Vec<String>,
    /// Where `report.md`, `junit.xml` and `report.json` go.
    pub report_dir: PathBuf,
    /// Which cluster the scenarios run on.
    pub cluster: ClusterChoice,
}

/// Which cluster `certify` runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClusterChoice {
    /// A fresh local cluster with the mock CCI and the add-on on the host node (the default).
    #[default]
    Local,
    /// Docker and kind. Not available: see [`KIND_BLOCKED`].
    Kind,
    /// Any cluster, by kubeconfig (e.g. a real cluster with the real add-on). Every scenario
    /// reads the mock CCI's inside view, so each is reported not applicable there.
    Existing(PathBuf),
}

/// Why `--cluster kind` cannot run on this project's machines.
pub const KIND_BLOCKED: &str = "kind needs its node image (kindest/node) from a container registry, \
    and machines here reach only package registries (crates.io, the Go module proxy, PyPI, npm, \
    Maven Central, Debian); the kind CLI itself builds from the Go module proxy, the node image \
    cannot be had. Use --cluster local (the same upstream control plane, as processes)";

/// Reports every selected scenario on an existing cluster: reachable, and not applicable
/// because each needs the mock's inside view.
async fn certify_existing(options: &Options, kubeconfig: &std::path::Path) -> Result<Report> {
    let client = crate::cluster::client_for(kubeconfig).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("reach the cluster of {}", kubeconfig.display()),
            source,
        })?;
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(client.clone());
    let has_node = nodes
        .get_opt(crate::env::VIRTUAL_NODE)
        .await
        .map_err(|source| crate::Error::Kube {
            context: "look for the virtual node".into(),
            source,
        })?
        .is_some();
    let rows = catalogue::entries()
        .iter()
        .map(|entry| Row {
            id: entry.id.to_owned(),
            title: entry.title.to_owned(),
            outcome: match excluded(entry, options) {
                Some(why) => Outcome::Skipped(why),
                None => Outcome::NotApplicable(format!(
                    "needs mock CCI: its assertions read the CCI side through the mock's inside view, which an existing cluster's CCI does not offer{}",
                    if has_node { "" } else { " (and this cluster has no bursting-node)" }
                )),
            },
            seconds: 0.0,
        })
        .collect();
    let report = Report {
        release: options.release.clone(),
        cluster: format!("existing ({})", kubeconfig.display()),
        kubernetes: version.git_version,
        rows,
    };
    report.write(&options.report_dir)?;
    Ok(report)
}

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

impl Report {
    /// How many rows have each outcome label, in a fixed order.
    pub fn totals(&self) -> Vec<(&'static str, usize)> {
        [
            "passed",
            "failed",
            "not applicable",
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

    /// Whether the release is certified: every scenario ran and passed or is not applicable.
    pub fn certified(&self) -> bool {
        self.rows
            .iter()
            .all(|r| matches!(r.outcome, Outcome::Passed | Outcome::NotApplicable(_)))
    }

    /// Whether the run succeeded: nothing that was selected failed or lacks a body (the exit
    /// code of `burstcert certify`; a `--focus` run can succeed without certifying).
    pub fn succeeded(&self) -> bool {
        !self
            .rows
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_) | Outcome::NotImplemented))
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# burstcert report\n\nRelease **{}** on a **{}** cluster (Kubernetes {}).\n\n",
            self.release, self.cluster, self.kubernetes
        );
        let totals: Vec<String> = self
            .totals()
            .iter()
            .map(|(l, n)| format!("{n} {l}"))
            .collect();
        let _ = writeln!(
            md,
            "{}: {}\n",
            if self.certified() {
                "CERTIFIED"
            } else {
                "NOT CERTIFIED"
            },
            totals.join(", ")
        );
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
            .filter(|r| {
                matches!(
                    r.outcome,
                    Outcome::NotApplicable(_) | Outcome::NotImplemented
                )
            })
            .count();
        let time: f64 = self.rows.iter().map(|r| r.seconds).sum();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"burstcert {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.1}\">\n",
            xml_escape(&self.release),
            self.rows.len()
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

    /// Writes `report.md`, `junit.xml` and `report.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).expect("report serializes");
        for (name, text) in [
            ("report.md", self.markdown()),
            ("junit.xml", self.junit()),
            ("report.json", json),
        ] {
            let path = dir.join(name);
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

/// Why an entry is not selected by `--focus` / `--skip`, if it is not.
fn excluded(entry: &Entry, options: &Options) -> Option<String> {
    let matches = |pattern: &String| {
        entry.id.eq_ignore_ascii_case(pattern) || entry.id.starts_with(&format!("{pattern}-"))
    };
    if !options.focus.is_empty() && !options.focus.iter().any(matches) {
        return Some("not selected by --focus".into());
    }
    options
        .skip
        .iter()
        .any(matches)
        .then(|| "excluded by --skip".into())
}

/// Checks a release string is `X.Y.Z`.
pub fn check_release(release: &str) -> Result<()> {
    let parts: Vec<&str> = release.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(crate::Error::Step {
            step: "read --release".into(),
            detail: format!("{release:?} is not a release like 1.5.18 (X.Y.Z)"),
        })
    }
}

/// Runs the selected scenarios one after another on the shared local environment, printing a
/// line per scenario, and returns the report (also written to `options.report_dir`).
pub async fn certify(options: &Options) -> Result<Report> {
    check_release(&options.release)?;
    match &options.cluster {
        ClusterChoice::Local => {}
        ClusterChoice::Kind => {
            return Err(crate::Error::Step {
                step: "bring up a kind cluster".into(),
                detail: KIND_BLOCKED.into(),
            });
        }
        ClusterChoice::Existing(kubeconfig) => return certify_existing(options, kubeconfig).await,
    }
    if !crate::env::configure_release(&options.release) {
        return Err(crate::Error::Step {
            step: "read --release".into(),
            detail: format!(
                "this process already runs the engine as {}",
                crate::env::release()
            ),
        });
    }
    let entries = catalogue::entries();
    let selected = entries
        .iter()
        .filter(|e| e.body.is_some() && excluded(e, options).is_none())
        .count();
    let kubernetes = if selected > 0 {
        let env = crate::env::shared().await?;
        env.client()
            .await?
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .unwrap_or_else(|e| format!("unknown ({e})"))
    } else {
        "not started".into()
    };
    let mut rows = Vec::with_capacity(entries.len());
    let mut ran = 0;
    for entry in &entries {
        let started = Instant::now();
        let outcome = match (entry.body, excluded(entry, options)) {
            (_, Some(why)) => Outcome::Skipped(why),
            (None, None) => Outcome::NotImplemented,
            (Some(_), None) => {
                ran += 1;
                eprintln!(
                    "burstcert: [{ran}/{selected}] {} {} ...",
                    entry.id, entry.title
                );
                catalogue::run(entry.id).await
            }
        };
        let seconds =
            if matches!(outcome, Outcome::NotImplemented) || excluded(entry, options).is_some() {
                0.0
            } else {
                started.elapsed().as_secs_f64()
            };
        if entry.body.is_some() && excluded(entry, options).is_none() {
            eprintln!(
                "burstcert:   {} {} ({seconds:.1}s) {}",
                entry.id,
                outcome.label(),
                first_line(outcome.reason())
            );
        }
        rows.push(Row {
            id: entry.id.to_owned(),
            title: entry.title.to_owned(),
            outcome,
            seconds,
        });
    }
    let report = Report {
        release: options.release.clone(),
        cluster: "local".into(),
        kubernetes,
        rows,
    };
    report.write(&options.report_dir)?;
    Ok(report)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_release_is_certified_only_when_nothing_failed_or_is_missing() {
        assert!(report(vec![Outcome::Passed, Outcome::NotApplicable("gate".into())]).certified());
        assert!(!report(vec![Outcome::Passed, Outcome::Failed("boom".into())]).certified());
        assert!(!report(vec![Outcome::Passed, Outcome::NotImplemented]).certified());
        let partial = report(vec![Outcome::Passed, Outcome::Skipped("--focus".into())]);
        assert!(!partial.certified(), "a partial run certifies nothing");
        assert!(partial.succeeded(), "but a passing partial run succeeds");
        assert!(!report(vec![Outcome::NotImplemented]).succeeded());
    }

    #[test]
    fn junit_counts_failures_and_skips_and_escapes_text() {
        let xml = report(vec![
            Outcome::Passed,
            Outcome::Failed("timed out <waiting>\nmore".into()),
            Outcome::NotApplicable("needs mock CCI".into()),
            Outcome::NotImplemented,
        ])
        .junit();
        assert!(
            xml.contains(r#"tests="4" failures="1" skipped="2""#),
            "{xml}"
        );
        assert!(xml.contains("a &lt;title&gt; &amp; more"), "{xml}");
        assert!(
            xml.contains(r#"<failure message="timed out &lt;waiting&gt;">"#),
            "{xml}"
        );
        assert!(xml.contains("not applicable: needs mock CCI"), "{xml}");
    }

    #[test]
    fn markdown_has_a_row_per_id_with_outcome_and_reason() {
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
            md.contains(
                "CERTIFIED: 1 passed, 0 failed, 1 not applicable, 0 not implemented, 0 skipped"
            ),
            "{md}"
        );
    }

    #[test]
    fn focus_and_skip_select_by_id_or_family() {
        let opts = |focus: &[&str], skip: &[&str]| Options {
            release: "1.5.18".into(),
            focus: focus.iter().map(|s| s.to_string()).collect(),
            skip: skip.iter().map(|s| s.to_string()).collect(),
            report_dir: PathBuf::new(),
            cluster: ClusterChoice::Local,
        };
        let wl02 = catalogue::find("WL-02").unwrap();
        assert_eq!(excluded(&wl02, &opts(&[], &[])), None);
        assert_eq!(excluded(&wl02, &opts(&["WL"], &[])), None);
        assert_eq!(excluded(&wl02, &opts(&["wl-02"], &[])), None);
        assert!(excluded(&wl02, &opts(&["VK"], &[])).is_some());
        assert!(excluded(&wl02, &opts(&[], &["WL-02"])).is_some());
        assert!(
            excluded(&wl02, &opts(&[], &["WL-0"])).is_none(),
            "prefixes match whole families only"
        );
    }

    #[test]
    fn releases_must_be_three_numbers() {
        assert!(check_release("1.5.18").is_ok());
        for bad in ["1.5", "1.5.x", "v1.5.18", "1..5", ""] {
            assert!(check_release(bad).is_err(), "{bad}");
        }
    }
}
