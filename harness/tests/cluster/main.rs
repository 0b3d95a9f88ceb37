//! The harness against real local clusters, in one test binary: each test binary costs a link
//! of its own on 2 cores, and `cargo test` runs binaries one after another, so four binaries of
//! 5–21 s each ran in series; here their tests share the test threads. One area:
//! `cargo test -p burstcert --test cluster host_node::`.

mod certify_cli;
mod host_node;
mod leader_election;
mod local_cluster;

use burstcert::cluster::local::{LocalCluster, LocalOptions};
use burstcert::progress::Progress;
use burstcert::tools::Tools;

/// Runs the ignored test `name` of this binary in a child process, which is meant to write what
/// it made to the file named by `BURSTCERT_TEST_REPORT` and then abort (no destructors);
/// answers what it wrote.
fn run_aborting_helper(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--ignored", "--nocapture"])
        .env("BURSTCERT_TEST_REPORT", &report)
        .status()
        .unwrap();
    assert!(!status.success(), "the helper {name} was meant to abort");
    std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("the helper {name} wrote no report before aborting: {e}"))
}

/// A fresh local cluster from the pinned tools that goes with this process however it ends
/// (`cleanup_at_exit`).
fn throwaway_cluster(progress: &Progress) -> burstcert::Result<LocalCluster> {
    let tools = Tools::ensure(progress)?;
    LocalCluster::create(
        &tools,
        LocalOptions {
            name: None,
            cleanup_at_exit: true,
            ..LocalOptions::default()
        },
        progress,
    )
}
