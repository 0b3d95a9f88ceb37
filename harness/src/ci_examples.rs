//! The CI jobs users copy (`docs/ci/`) must keep working as this repository changes: each runs
//! `ci/kind-certify.sh` (which `.ci/run` runs, so the script itself cannot rot), passes it
//! arguments `burstcert certify` still accepts, and uploads the folder the script writes.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use rstest::rstest;

use crate::Cli;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the harness")
        .to_path_buf()
}

/// The value a job gives the variable `name` (`NAME: value`), a `${{ … || 'x' }}` default
/// taken as `x`.
fn variable(job: &str, name: &str) -> String {
    let line = job
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("the job sets no {name}"))
        .trim();
    let value = match line.split_once("|| '") {
        Some((_, rest)) => rest.split('\'').next().unwrap_or_default(),
        None => line,
    };
    value.trim_matches('"').to_owned()
}

/// The words after `ci/kind-certify.sh` up to the end of its shell command, with the job's
/// variables put in.
fn script_arguments(job: &str) -> Vec<Vec<String>> {
    let release = variable(job, "RELEASE");
    job.match_indices("ci/kind-certify.sh")
        .map(|(at, script)| {
            let rest = &job[at + script.len()..];
            let end = rest.find([';', '\n']).unwrap_or(rest.len());
            rest[..end]
                .split_whitespace()
                .map(|w| w.trim_matches('"').replace("$RELEASE", &release))
                .collect()
        })
        .collect()
}

/// The folders a job uploads (`path:` in a GitHub upload step, `paths:` items in GitLab).
fn uploaded(job: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_paths = false;
    for line in job.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("path:") {
            out.push(p.trim().to_owned());
        }
        if in_paths {
            match line.strip_prefix("- ") {
                Some(p) => out.push(p.trim().to_owned()),
                None => in_paths = false,
            }
        }
        if line == "paths:" {
            in_paths = true;
        }
    }
    out
}

#[rstest]
fn the_ci_job_users_copy_certifies_through_the_script_ci_runs_and_uploads_its_report(
    #[values("github-actions.yml", "gitlab-ci.yml")] file: &str,
) {
    let text = std::fs::read_to_string(repo().join("docs/ci").join(file)).expect("read the job");
    // Comments name the script too; only what the job runs counts.
    let job = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let script = repo().join("ci/kind-certify.sh");
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect("read .ci/run");
    assert!(
        ci.contains("ci/kind-certify.sh"),
        ".ci/run no longer runs the script the examples run"
    );
    assert!(
        std::os::unix::fs::PermissionsExt::mode(
            &script.metadata().expect("the script").permissions()
        ) & 0o111
            != 0,
        "{} is not executable",
        script.display()
    );

    let calls = script_arguments(&job);
    assert!(!calls.is_empty(), "{file} never runs ci/kind-certify.sh");
    let script_text = std::fs::read_to_string(&script).expect("read the script");
    assert!(
        script_text.contains("certify --cluster kind --report \"$report\" \"$@\""),
        "ci/kind-certify.sh no longer passes its arguments on to certify"
    );
    for args in calls {
        // The script runs `certify --cluster kind --report $BURSTCERT_REPORT` and then these.
        let mut argv = ["burstcert", "certify", "--cluster", "kind", "--report", "r"]
            .map(String::from)
            .to_vec();
        argv.extend(args.iter().cloned());
        if let Err(e) = Cli::try_parse_from(&argv) {
            panic!("{file} passes arguments certify refuses ({args:?}):\n{e}");
        }
    }

    let report = variable(&job, "BURSTCERT_REPORT");
    let paths = uploaded(&job);
    assert!(
        paths.iter().any(|p| p.trim_end_matches('/') == report),
        "{file} uploads {paths:?}, not the report folder {report}"
    );
}

#[test]
fn a_job_variable_is_read_with_its_default() {
    let job = "env:\n  RELEASE: ${{ inputs.release || '1.5.9' }}\n  BURSTCERT_REPORT: out\n";
    assert_eq!(variable(job, "RELEASE"), "1.5.9");
    assert_eq!(variable(job, "BURSTCERT_REPORT"), "out");
    assert_eq!(
        script_arguments("RELEASE: \"1.5.2\"\nrun: ci/kind-certify.sh --release \"$RELEASE\"; x"),
        vec![vec!["--release".to_owned(), "1.5.2".to_owned()]]
    );
    assert_eq!(
        uploaded("paths:\n  - a/\n  - b\nexpire_in: 1\npath: c/"),
        ["a/", "b", "c/"]
    );
}
