//! The list in this crate's `Cargo.toml` is complete: `cargo run -p burstcert`, the engine and
//! mock build it runs, and `cargo test --workspace` resolve the same features for every
//! dependency they share (else each compiles tokio, hyper, kube… again; see the manifest).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Features of each package (`name vX.Y.Z`) in `cargo tree` for `selection`, host and target
/// sides merged.
fn features(selection: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .arg("tree")
        .args(selection)
        .args(["--format", "{p} {f}", "--prefix", "none", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree {selection:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_tree(&String::from_utf8_lossy(&out.stdout))
}

/// `cargo tree --format "{p} {f}" --prefix none` lines: `name vX.Y.Z [(path)] [features] [(*)]`.
fn parse_tree(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut all: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line
            .split_whitespace()
            .filter(|w| !w.starts_with('('))
            .collect();
        let [name, version, rest @ ..] = words.as_slice() else {
            continue;
        };
        let set = all.entry(format!("{name} {version}")).or_default();
        if let Some(list) = rest.last() {
            set.extend(list.split(',').map(str::to_owned));
        }
    }
    all
}

#[test]
fn the_first_command_its_engine_build_and_the_tests_resolve_the_same_features() {
    let tests = features(&["--workspace", "-e", "normal,build,dev"]);
    for selection in [
        &["-p", "burstcert", "-e", "normal,build"][..],
        &[
            "-p",
            "bursting-engine",
            "-p",
            "mock-cci",
            "-e",
            "normal,build",
        ][..],
    ] {
        let stale: Vec<String> = features(selection)
            .into_iter()
            .filter_map(|(package, have)| {
                let want = tests.get(&package)?;
                let missing: Vec<&String> = want.difference(&have).collect();
                (!missing.is_empty()).then(|| format!("{package}: add {missing:?}"))
            })
            .collect();
        assert!(
            stale.is_empty(),
            "`cargo test --workspace` switches on features {selection:?} does not; add them to \
             workspace-hack/Cargo.toml: {stale:#?}"
        );
    }
}

#[test]
fn a_tree_line_gives_its_package_and_features_and_repeats_merge() {
    let tree = parse_tree(
        "tokio v1.54.1 bytes,net\nvk v0.1.0 (/w/vk)\ntokio v1.54.1 test-util (*)\nsyn v2.0.1 (proc-macro) visit\n",
    );
    assert_eq!(
        tree["tokio v1.54.1"],
        BTreeSet::from(["bytes".into(), "net".into(), "test-util".into()])
    );
    assert!(tree["vk v0.1.0"].is_empty());
    assert_eq!(tree["syn v2.0.1"], BTreeSet::from(["visit".into()]));
}
