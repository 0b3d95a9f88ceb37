//! The binary's command line, run as a user would.

use std::process::{Command, Output};

fn engine(args: &[&str]) -> Output {
    engine_with(args, &[])
}

/// The binary with the token in `CCI_TOKEN`, where it comes from (no flag takes it).
fn engine_with_token(args: &[&str]) -> Output {
    engine_with(args, &[("CCI_TOKEN", "t")])
}

fn engine_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bursting-engine"))
        .args(args)
        .env_remove("CCI_TOKEN")
        .env_remove("CCI_ACCESS_KEY")
        .env_remove("CCI_SECRET_KEY")
        .env_remove("KUBECONFIG")
        .envs(env.iter().copied())
        .output()
        .expect("the bursting-engine binary runs")
}

#[test]
fn help_lists_every_subcommand() {
    let out = engine(&["--help"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for subcommand in ["virtual-kubelet", "webhook", "proxy", "gc"] {
        assert!(
            stdout.contains(subcommand),
            "{subcommand} missing from:\n{stdout}"
        );
    }
}

#[test]
fn virtual_kubelet_help_lists_its_flags() {
    let out = engine(&["virtual-kubelet", "--help"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--kubeconfig",
        "--cci-endpoint",
        "--cci-token-file",
        "--cluster-id",
        "--node-name",
        "--status-interval-ms",
        "--cci-resync-seconds",
        "--cci-request-log-seconds",
        "--node-ip",
        "--release",
        "1.5.18",
        "CCI_TOKEN",
        "bursting-node",
    ] {
        assert!(stdout.contains(flag), "{flag} missing from:\n{stdout}");
    }
}

#[test]
fn a_missing_required_flag_is_named_in_the_error() {
    let out = engine_with_token(&["virtual-kubelet", "--cci-endpoint", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--cluster-id"), "{stderr}");
}

#[test]
fn the_token_comes_from_the_environment_or_a_file_never_a_flag() {
    let out = engine(&[
        "virtual-kubelet",
        "--cci-endpoint",
        "http://127.0.0.1:1",
        "--cluster-id",
        "c1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CCI_TOKEN") && stderr.contains("--cci-token-file"),
        "{stderr}"
    );
    let flag = engine(&[
        "virtual-kubelet",
        "--cci-endpoint",
        "http://127.0.0.1:1",
        "--cluster-id",
        "c1",
        "--cci-token",
        "t",
    ]);
    assert_eq!(
        flag.status.code(),
        Some(2),
        "a token given as a flag is refused"
    );
}

#[test]
fn a_bad_cluster_id_is_refused_before_anything_starts() {
    let out = engine_with_token(&[
        "virtual-kubelet",
        "--cci-endpoint",
        "http://127.0.0.1:1",
        "--cluster-id",
        "Not_A_Label",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Not_A_Label"), "{stderr}");
}

#[test]
fn a_bad_release_is_refused_naming_the_flag() {
    let out = engine_with_token(&[
        "virtual-kubelet",
        "--cci-endpoint",
        "http://127.0.0.1:1",
        "--cluster-id",
        "c1",
        "--release",
        "1.5",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--release"), "{stderr}");
    assert!(stderr.contains("1.5"), "{stderr}");
}

#[test]
fn a_bad_kubelet_listen_is_refused_naming_the_flag_and_what_it_takes() {
    let out = engine_with_token(&[
        "virtual-kubelet",
        "--cci-endpoint",
        "http://127.0.0.1:1",
        "--cluster-id",
        "c1",
        "--kubelet-listen",
        "10250",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--kubelet-listen"), "{stderr}");
    assert!(stderr.contains("off"), "{stderr}");
}
