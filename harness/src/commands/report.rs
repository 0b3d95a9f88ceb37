//! `burstcert verify` and `burstcert diff`: reading report folders a run wrote.

use std::process::ExitCode;

use burstcert::binaries::user_path;
use clap::Args;

/// The arguments of `verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// The report folder (what `certify --report` wrote).
    pub dir: std::path::PathBuf,
}

/// Checks a report folder against its report.json: exit 0 when nothing differs.
pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let VerifyArgs { dir } = args;
    let dir = user_path(dir);
    let differences = burstcert::report::verify::verify(&dir);
    for difference in &differences {
        println!("{difference}");
    }
    if differences.is_empty() {
        eprintln!(
            "burstcert: {} holds exactly what its report.json says",
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "burstcert: {} differs from its report.json ({} differences)",
        dir.display(),
        differences.len()
    );
    Ok(ExitCode::FAILURE)
}

/// The arguments of `diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The earlier report folder.
    pub old: std::path::PathBuf,
    /// The later report folder.
    pub new: std::path::PathBuf,
}

/// Compares two report folders: exit 0 when nothing changed.
pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let DiffArgs { old, new } = args;
    use burstcert::report::diff::{Side, diff};
    let read = |dir: std::path::PathBuf| Side::read(&user_path(dir)).map_err(anyhow::Error::msg);
    let lines = diff(&read(old)?, &read(new)?);
    for line in &lines {
        println!("{line}");
    }
    eprintln!(
        "burstcert: diff: {}",
        if lines.is_empty() {
            "no difference".to_owned()
        } else {
            format!("{} differences", lines.len())
        }
    );
    Ok(if lines.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
