//! `certify --kubernetes 1.30,1.36`: one certification per Kubernetes minor, each in a report
//! folder of its own (`DIR/v1.30.14/`), and a summary of them all (`DIR/summary.md`,
//! `DIR/summary.json`: version × verdict × failed IDs). The run's exit code is the worst of
//! theirs.
//!
//! Each minor is certified by a child `burstcert certify` with the same arguments but one
//! `--kubernetes` and its own `--report`: a process brings up its environments for one target
//! (its clusters, its release and its mock are set once per process), and a child's clusters go
//! with it, however it ends. The minors run one after another: each run already fills the
//! machine's cores.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::error::{Error, IoContext, Result};
use crate::tools::Minor;

/// The value of `--kubernetes`: the minors to certify, each once, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kubernetes(pub Vec<&'static Minor>);

/// Parses `--kubernetes`: `1.31`, or a list `1.30,1.33,1.36` (see [`Minor::parse`]).
pub fn parse_kubernetes(text: &str) -> std::result::Result<Kubernetes, String> {
    Minor::parse_list(text).map(Kubernetes)
}

/// The report folder of `minor` inside a matrix run's folder.
pub fn folder_of(report_dir: &Path, minor: &Minor) -> PathBuf {
    report_dir.join(minor.release())
}

/// The arguments of the child that certifies `minor`: `args` (the parent's, without the
/// program) with its `--kubernetes` and `--report` replaced by `minor` and `report`.
pub fn child_args(args: &[OsString], minor: &Minor, report: &Path) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--kubernetes" || text == "--report" {
            skip_value = true;
            continue;
        }
        if text.starts_with("--kubernetes=") || text.starts_with("--report=") {
            continue;
        }
        out.push(arg.clone());
    }
    out.extend([
        OsString::from("--kubernetes"),
        OsString::from(minor.minor()),
        OsString::from("--report"),
        report.as_os_str().to_owned(),
    ]);
    out
}

/// How one minor's certification ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Cell {
    /// The minor's pinned release, e.g. `v1.30.14` (also its report folder's name).
    pub kubernetes: String,
    /// The version its cluster served, as its report says (`None`: no report).
    pub served: Option<String>,
    /// `CERTIFIED`, `FAILED`, `INCOMPLETE`, or `ERROR` when certify could not run (no report).
    pub verdict: String,
    /// The IDs that failed.
    pub failed: Vec<String>,
    /// The child's exit code (4 when it had none).
    pub exit_code: u8,
    /// Wall seconds, builds and bring-up included.
    pub seconds: f64,
}

impl Cell {
    /// Reads the cell of `kubernetes` from its child's exit code and its report folder.
    fn read(kubernetes: String, exit: Option<i32>, report_dir: &Path, seconds: f64) -> Self {
        let json: Option<serde_json::Value> =
            std::fs::read_to_string(report_dir.join("report.json"))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok());
        let exit_code = exit
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(crate::certify::ERROR_EXIT_CODE);
        // A report left by an earlier run must not speak for a child that could not run.
        let json = json.filter(|_| exit_code != crate::certify::ERROR_EXIT_CODE);
        let failed = json
            .as_ref()
            .and_then(|j| crate::certify::failed_ids(&j.to_string()).ok())
            .unwrap_or_default();
        Self {
            kubernetes,
            served: json
                .as_ref()
                .and_then(|j| j["kubernetes"].as_str().map(str::to_owned)),
            verdict: json
                .as_ref()
                .and_then(|j| j["verdict"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "ERROR".into()),
            failed,
            exit_code,
            seconds,
        }
    }

    /// How bad the outcome is, for the run's exit code: an error (nothing certified, nothing
    /// known) over a failure over an incomplete run over a certificate.
    fn severity(&self) -> u8 {
        match self.exit_code {
            0 => 0,
            3 => 1,
            1 => 2,
            _ => 3,
        }
    }
}

/// A matrix run: a cell per minor, in the order certified.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Matrix {
    /// The release certified (as given, or the default).
    pub release: String,
    /// One per minor.
    pub cells: Vec<Cell>,
}

impl Matrix {
    /// The run's exit code: the worst cell's.
    pub fn exit_code(&self) -> u8 {
        self.cells
            .iter()
            .max_by_key(|c| c.severity())
            .map_or(crate::certify::ERROR_EXIT_CODE, |c| c.exit_code)
    }

    /// The summary table as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# burstcert: release {} on {} Kubernetes versions\n\n| Kubernetes | served | verdict | failed | seconds | report |\n|---|---|---|---|---|---|\n",
            self.release,
            self.cells.len()
        );
        for c in &self.cells {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:.0} | [{}/report.md]({}/report.md) |\n",
                c.kubernetes,
                c.served.as_deref().unwrap_or("—"),
                c.verdict,
                if c.failed.is_empty() {
                    "—".to_owned()
                } else {
                    c.failed.join(", ")
                },
                c.seconds,
                c.kubernetes,
                c.kubernetes,
            ));
        }
        md.push_str(&format!(
            "\nExit code {} (the worst version's).\n",
            self.exit_code()
        ));
        md
    }

    /// One line per version, for the terminal.
    pub fn lines(&self) -> Vec<String> {
        self.cells
            .iter()
            .map(|c| {
                format!(
                    "Kubernetes {}: {}{} ({:.0}s)",
                    c.kubernetes,
                    c.verdict,
                    if c.failed.is_empty() {
                        String::new()
                    } else {
                        format!(", failed {}", c.failed.join(" "))
                    },
                    c.seconds
                )
            })
            .collect()
    }

    /// Writes `summary.md` and `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let md = dir.join("summary.md");
        std::fs::write(&md, self.markdown()).io_context(|| format!("write {}", md.display()))?;
        let json = dir.join("summary.json");
        let text = serde_json::to_string_pretty(self).expect("a matrix serializes");
        std::fs::write(&json, text).io_context(|| format!("write {}", json.display()))?;
        Ok(())
    }
}

/// Certifies each of `minors` by a child `program args…` (see [`child_args`]), one after
/// another, its output on this process's, and writes the summary into `report_dir`.
pub fn run(
    program: &OsStr,
    args: &[OsString],
    minors: &[&'static Minor],
    release: &str,
    report_dir: &Path,
) -> Result<Matrix> {
    std::fs::create_dir_all(report_dir)
        .io_context(|| format!("create {}", report_dir.display()))?;
    let mut cells = Vec::new();
    for (n, minor) in minors.iter().enumerate() {
        let dir = folder_of(report_dir, minor);
        eprintln!(
            "burstcert: [Kubernetes {}/{}] certify on Kubernetes {minor} (report in {})",
            n + 1,
            minors.len(),
            dir.display()
        );
        let started = Instant::now();
        let status = Command::new(program)
            .args(child_args(args, minor, &dir))
            .stdin(Stdio::null())
            .status()
            .map_err(|source| Error::Io {
                context: format!("run {} certify", Path::new(program).display()),
                source,
            })?;
        let cell = Cell::read(
            minor.release(),
            status.code(),
            &dir,
            started.elapsed().as_secs_f64(),
        );
        eprintln!(
            "burstcert: Kubernetes {minor}: {} ({:.0}s)",
            cell.verdict, cell.seconds
        );
        cells.push(cell);
    }
    let matrix = Matrix {
        release: release.to_owned(),
        cells,
    };
    matrix.write(report_dir)?;
    Ok(matrix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn a_child_gets_one_minor_and_its_own_report_and_every_other_argument() {
        let oldest = Minor::oldest();
        let args = os(&[
            "certify",
            "--kubernetes",
            "1.30,1.36",
            "--focus",
            "WL-01",
            "WL-02",
            "--report=out",
            "--jobs",
            "2",
        ]);
        let child = child_args(&args, oldest, Path::new("out/v1.30.14"));
        assert_eq!(
            child,
            os(&[
                "certify",
                "--focus",
                "WL-01",
                "WL-02",
                "--jobs",
                "2",
                "--kubernetes",
                &oldest.minor(),
                "--report",
                "out/v1.30.14",
            ])
        );
        let args = os(&["certify", "--kubernetes=1.30,1.36", "--report", "r"]);
        assert_eq!(
            child_args(&args, Minor::PINNED, Path::new("r/x")),
            os(&[
                "certify",
                "--kubernetes",
                &Minor::PINNED.minor(),
                "--report",
                "r/x"
            ])
        );
    }

    fn cell(verdict: &str, exit_code: u8) -> Cell {
        Cell {
            kubernetes: format!("v1.{exit_code}.0"),
            served: Some(format!("v1.{exit_code}.0")),
            verdict: verdict.into(),
            failed: Vec::new(),
            exit_code,
            seconds: 1.0,
        }
    }

    #[test]
    fn the_exit_code_is_the_worst_versions() {
        let matrix = |cells: Vec<Cell>| Matrix {
            release: "1.5.18".into(),
            cells,
        };
        let ok = || cell("CERTIFIED", 0);
        let incomplete = || cell("INCOMPLETE", 3);
        let failed = || cell("FAILED", 1);
        let error = || cell("ERROR", 4);
        assert_eq!(matrix(vec![ok(), ok()]).exit_code(), 0);
        assert_eq!(matrix(vec![ok(), incomplete()]).exit_code(), 3);
        assert_eq!(matrix(vec![incomplete(), failed(), ok()]).exit_code(), 1);
        assert_eq!(matrix(vec![failed(), error()]).exit_code(), 4);
        assert_eq!(matrix(vec![]).exit_code(), 4);
    }

    #[test]
    fn a_cell_reads_its_report_and_an_error_leaves_no_verdict() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("report.json"),
            r#"{"kubernetes":"v1.30.14","verdict":"FAILED","rows":[
                {"id":"WL-01","outcome":"passed"},{"id":"VOL-01","outcome":"failed"}]}"#,
        )
        .unwrap();
        let failed = Cell::read("v1.30.14".into(), Some(1), dir.path(), 2.0);
        assert_eq!(failed.verdict, "FAILED");
        assert_eq!(failed.failed, ["VOL-01"]);
        assert_eq!(failed.served.as_deref(), Some("v1.30.14"));
        // The same folder, but certify could not run this time: its old report says nothing.
        let error = Cell::read("v1.30.14".into(), Some(4), dir.path(), 2.0);
        assert_eq!(error.verdict, "ERROR");
        assert!(error.failed.is_empty() && error.served.is_none());
        let killed = Cell::read("v1.30.14".into(), None, dir.path(), 2.0);
        assert_eq!(killed.exit_code, 4);
    }

    #[test]
    fn the_summary_names_each_version_its_verdict_and_failed_ids() {
        let mut failed = cell("FAILED", 1);
        failed.failed = vec!["VOL-01".into(), "VOL-02".into()];
        let matrix = Matrix {
            release: "1.5.18".into(),
            cells: vec![cell("CERTIFIED", 0), failed],
        };
        let md = matrix.markdown();
        assert!(md.contains("| v1.0.0 | v1.0.0 | CERTIFIED | — |"), "{md}");
        assert!(
            md.contains("| v1.1.0 | v1.1.0 | FAILED | VOL-01, VOL-02 |"),
            "{md}"
        );
        assert!(md.contains("Exit code 1"), "{md}");
        let dir = tempfile::tempdir().unwrap();
        matrix.write(dir.path()).unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["cells"][1]["failed"][1], "VOL-02");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("summary.md")).unwrap(),
            md
        );
    }
}
