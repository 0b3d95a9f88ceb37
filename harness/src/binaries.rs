//! The engine and mock binaries the harness runs, always built from the current source.
//!
//! `cargo run -p burstcert` builds only `burstcert`; the engine and the mock are other packages.
//! So when `burstcert` (or a test binary) runs from this workspace, the first lookup runs
//! `cargo build -p bursting-engine -p mock-cci --bins` itself, with the profile the running
//! executable was built with, showing progress (a no-op, about a second, when they are fresh).
//! A user who edits the engine and runs `certify` again certifies the edited engine.
//!
//! An environment variable ([`ENGINE_BIN_ENV`], [`MOCK_BIN_ENV`])
//! naming a binary wins, resolved against the current directory. Outside a workspace (an
//! installed `burstcert`), the binaries are looked for beside the executable, and the error says
//! what to install or set.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Environment variable naming a prebuilt `bursting-engine` binary (default: built from the
/// current source, see [`crate::binaries`]).
pub const ENGINE_BIN_ENV: &str = "BURSTCERT_ENGINE_BIN";
/// Environment variable naming a prebuilt `mock-cci` binary (default: built from the current
/// source, see [`crate::binaries`]).
pub const MOCK_BIN_ENV: &str = "BURSTCERT_MOCK_CCI_BIN";

/// A binary of this workspace the harness runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkspaceBinary {
    /// The executable's name.
    pub binary: &'static str,
    /// Its package.
    pub package: &'static str,
    /// The environment variable that names a prebuilt one instead.
    pub env: &'static str,
}

/// The engine: the add-on's one image.
pub const ENGINE: WorkspaceBinary = WorkspaceBinary {
    binary: "bursting-engine",
    package: "bursting-engine",
    env: ENGINE_BIN_ENV,
};

/// The mock CCI.
pub const MOCK: WorkspaceBinary = WorkspaceBinary {
    binary: "mock-cci",
    package: "mock-cci",
    env: MOCK_BIN_ENV,
};

/// The stand-in workload behind the network scenarios' cluster Service (the mock's package):
/// an HTTP server answering its `--reply` text, run as a host-node pod.
pub const ECHO_BACKEND: WorkspaceBinary = WorkspaceBinary {
    binary: "echo-backend",
    package: "mock-cci",
    env: "BURSTCERT_ECHO_BACKEND_BIN",
};

/// The harness's own CLI ([`resolve_cli`]).
pub const CLI: WorkspaceBinary = WorkspaceBinary {
    binary: "burstcert",
    package: "burstcert",
    env: "BURSTCERT_CLI_BIN",
};

/// Every binary the harness builds from the workspace, built together in one `cargo build`.
const ALL: [WorkspaceBinary; 3] = [ENGINE, MOCK, ECHO_BACKEND];

/// Resolves a path a user gave (a flag or an environment variable) against the current
/// directory, so it still names the same file when a child process runs elsewhere (the host
/// node starts a container from its pod's folder).
pub fn user_path(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The binary to run for `which`: the one its environment variable names, else the one built
/// from the current source of this workspace, else the one beside this executable.
pub fn resolve(which: WorkspaceBinary) -> Result<PathBuf> {
    // A cache, not environment state: cargo is asked once per process (a second build would
    // only cost seconds to find nothing to do), whatever runs ask for the binaries.
    static BUILT: OnceLock<std::result::Result<Vec<(String, PathBuf)>, String>> = OnceLock::new();
    resolve_for(which, &BUILT)
}

fn resolve_for(
    which: WorkspaceBinary,
    built: &OnceLock<std::result::Result<Vec<(String, PathBuf)>, String>>,
) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(which.env) {
        let path = user_path(PathBuf::from(path));
        if !path.is_file() {
            return Err(Error::Step {
                step: format!("find the `{}` binary", which.binary),
                detail: format!(
                    "{}={} names no file (relative paths are taken from the current directory)",
                    which.env,
                    path.display()
                ),
            });
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        context: "find the running executable".into(),
        source,
    })?;
    match Workspace::of_running(&exe) {
        Some(workspace) => {
            let built = built.get_or_init(|| {
                workspace
                    .build(&Progress::stderr())
                    .map_err(|e| e.to_string())
            });
            match built {
                Ok(paths) => paths
                    .iter()
                    .find(|(name, _)| name == which.binary)
                    .map(|(_, path)| path.clone())
                    .ok_or_else(|| Error::Step {
                        step: format!("build `{}` from the current source", which.binary),
                        detail: format!(
                            "cargo built no executable named {} (built: {})",
                            which.binary,
                            paths
                                .iter()
                                .map(|(n, _)| n.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    }),
                Err(e) => Err(Error::Step {
                    step: "build the engine and the mock CCI from the current source".into(),
                    detail: e.clone(),
                }),
            }
        }
        None => beside(&exe, which),
    }
}

/// Builds the engine from this workspace's source with the cargo `features` of its package (e.g.
/// `breakages`, which nothing ships), with the running executable's profile, and answers the
/// executable. NB: cargo puts it where the ordinary build goes (`target/<profile>/`), so copy it
/// aside before anything builds the engine again.
pub fn build_engine_with_features(features: &[&str], progress: &Progress) -> Result<PathBuf> {
    build(ENGINE, features, progress)
}

/// The `burstcert` CLI itself, for a test that runs it as a user does (the suites' existing-
/// cluster trial; other packages' tests have no `CARGO_BIN_EXE_burstcert`): the one
/// [`CLI`]'s environment variable names, else built from this workspace's source (a no-op
/// after `cargo test --workspace`, which built it with the same features).
pub fn resolve_cli(progress: &Progress) -> Result<PathBuf> {
    match std::env::var_os(CLI.env) {
        Some(path) => Ok(user_path(PathBuf::from(path))),
        None => build(CLI, &[], progress),
    }
}

/// `cargo build` of `which` from this workspace's source with the cargo `features` of its
/// package and the running executable's profile; answers the executable.
fn build(which: WorkspaceBinary, features: &[&str], progress: &Progress) -> Result<PathBuf> {
    let what = if features.is_empty() {
        format!("`{}`", which.binary)
    } else {
        format!(
            "`{}` with the features {}",
            which.binary,
            features.join(",")
        )
    };
    let exe = std::env::current_exe().map_err(|source| Error::Io {
        context: "find the running executable".into(),
        source,
    })?;
    let workspace = Workspace::of_running(&exe).ok_or_else(|| Error::Step {
        step: format!("build {what}"),
        detail: "this executable does not run from its workspace (cargo run / cargo test)".into(),
    })?;
    workspace
        .build_packages(&[which], features, &what, progress)?
        .into_iter()
        .find(|(name, _)| name == which.binary)
        .map(|(_, path)| path)
        .ok_or_else(|| Error::Step {
            step: format!("build {what}"),
            detail: format!("cargo built no executable named {}", which.binary),
        })
}

/// Looks beside an installed executable (`bin/`, or `target/debug/` and one folder up for test
/// executables in `target/debug/deps/`).
fn beside(exe: &Path, which: WorkspaceBinary) -> Result<PathBuf> {
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join(which.binary);
        if candidate.is_file() {
            return Ok(candidate);
        }
        looked.push(dir.display().to_string());
    }
    Err(Error::WorkspaceBinaryMissing {
        binary: which.binary,
        package: which.package,
        looked: looked.join(", "),
        env: which.env,
    })
}

/// The workspace this executable was built from, when it still runs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Workspace {
    root: PathBuf,
    /// The cargo profile of the running executable (`dev`, `release`, …).
    profile: String,
}

impl Workspace {
    /// The workspace when `exe` lives in its target folder (`cargo run`, `cargo test`,
    /// `target/debug/burstcert`) and its source is here; `None` for an installed executable.
    fn of_running(exe: &Path) -> Option<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_owned();
        let sources_here = ALL.iter().all(|b| {
            root.join(package_dir(b.package))
                .join("Cargo.toml")
                .is_file()
        });
        if !sources_here {
            return None;
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(|t| user_path(PathBuf::from(t)))
            .unwrap_or_else(|| root.join("target"));
        let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_owned());
        let target = target.canonicalize().unwrap_or(target);
        let profile = profile_of(exe.strip_prefix(&target).ok()?)?;
        Some(Self { root, profile })
    }

    /// `cargo build` of every workspace binary the harness runs; returns (name, executable).
    fn build(&self, progress: &Progress) -> Result<Vec<(String, PathBuf)>> {
        self.build_packages(&ALL, &[], "the engine and the mock CCI", progress)
    }

    /// `cargo build` of the binaries of `which` with the cargo `features` (of those packages);
    /// returns (name, executable). `what` names them in progress and errors.
    fn build_packages(
        &self,
        which: &[WorkspaceBinary],
        features: &[&str],
        what: &str,
        progress: &Progress,
    ) -> Result<Vec<(String, PathBuf)>> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut args: Vec<String> = vec!["build".into()];
        let mut packages: Vec<&str> = Vec::new();
        for b in which {
            if !packages.contains(&b.package) {
                packages.push(b.package);
            }
        }
        for package in packages {
            args.extend(["-p".into(), package.into()]);
        }
        if !features.is_empty() {
            args.extend(["--features".into(), features.join(",")]);
        }
        args.extend([
            "--bins".into(),
            "--profile".into(),
            self.profile.clone(),
            "--message-format=json-render-diagnostics".into(),
        ]);
        let shown = format!("cargo {}", args[..args.len() - 1].join(" "));
        let mut step = progress.spinner(&format!("build {what} from the current source ({shown})"));
        let fail = |detail: String| Error::Step {
            step: format!("build {what} ({shown})"),
            detail,
        };
        let mut command = Command::new(&cargo);
        // NB: `cargo run` / `cargo test` describe their package to the running executable in
        // the environment (CARGO_MANIFEST_DIR, CARGO_PKG_*, …); a build script that watches one
        // of them (ring's does) would make this build and the outer one rebuild each other.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(set_by_cargo_for_the_running_package)
            {
                command.env_remove(&name);
            }
        }
        let mut child = command
            .args(&args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                fail(format!(
                    "cannot run {}: {e}; install Rust (cargo), or set {} and {} to prebuilt binaries",
                    PathBuf::from(&cargo).display(),
                    ENGINE.env,
                    MOCK.env
                ))
            })?;
        let stdout = child.stdout.take().expect("piped");
        // cargo's JSON goes to stdout; read it on a thread while stderr (its progress) is shown.
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(std::result::Result::ok)
                .filter_map(|line| executable_of(&line))
                .collect::<Vec<_>>()
        });
        let mut tail: Vec<String> = Vec::new();
        for line in BufReader::new(child.stderr.take().expect("piped"))
            .lines()
            .map_while(std::result::Result::ok)
        {
            let trimmed = line.trim();
            if !trimmed.is_empty() {
                step.set_message(format!("cargo: {trimmed}"));
            }
            tail.push(line);
            if tail.len() > 40 {
                tail.remove(0);
            }
        }
        let status = child
            .wait()
            .map_err(|e| fail(format!("wait for cargo: {e}")))?;
        let built = reader.join().unwrap_or_default();
        if !status.success() {
            step.fail("build failed");
            return Err(fail(format!(
                "cargo exited with {status}; its last output:\n{}",
                tail.join("\n")
            )));
        }
        step.finish(&format!("{what} built from the current source"));
        Ok(built)
    }
}

/// Whether cargo sets environment variable `name` to describe the package whose executable it
/// runs (not configuration the user gave it).
fn set_by_cargo_for_the_running_package(name: &str) -> bool {
    [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_BIN_EXE_",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
    ]
    .iter()
    .any(|prefix| name.starts_with(prefix))
        || name == "OUT_DIR"
}

/// The folder of a workspace package.
fn package_dir(package: &str) -> &str {
    match package {
        "bursting-engine" => "engine",
        other => other,
    }
}

/// The cargo profile of an executable from its path inside the target folder:
/// `debug/x` and `debug/deps/x` are `dev`, `release/x` is `release`, `<p>/x` is `p`
/// (also below a `<triple>/` folder).
fn profile_of(inside_target: &Path) -> Option<String> {
    let dirs: Vec<&str> = inside_target
        .parent()?
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    let dirs = match dirs.last() {
        Some(&"deps") => &dirs[..dirs.len() - 1],
        _ => &dirs[..],
    };
    match dirs.last()? {
        &"debug" => Some("dev".into()),
        other => Some((*other).to_owned()),
    }
}

/// `(name, path)` of an executable from one line of cargo's `--message-format=json` output.
fn executable_of(line: &str) -> Option<(String, PathBuf)> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    let executable = message.get("executable")?.as_str()?;
    let name = message.get("target")?.get("name")?.as_str()?;
    Some((name.to_owned(), PathBuf::from(executable)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::run("debug/burstcert", Some("dev"))]
    #[case::test("debug/deps/workloads-0123abcd", Some("dev"))]
    #[case::release("release/burstcert", Some("release"))]
    #[case::custom("profiling/burstcert", Some("profiling"))]
    #[case::cross("x86_64-unknown-linux-musl/release/burstcert", Some("release"))]
    #[case::bare("burstcert", None)]
    fn the_profile_comes_from_the_executables_folder(
        #[case] path: &str,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(profile_of(Path::new(path)).as_deref(), expected);
    }

    #[test]
    fn executables_are_read_from_cargos_json_and_everything_else_is_ignored() {
        let artifact = r#"{"reason":"compiler-artifact","target":{"name":"mock-cci","kind":["bin"]},"executable":"/w/target/debug/mock-cci","fresh":true}"#;
        assert_eq!(
            executable_of(artifact),
            Some(("mock-cci".into(), PathBuf::from("/w/target/debug/mock-cci")))
        );
        let library = r#"{"reason":"compiler-artifact","target":{"name":"vk","kind":["lib"]},"executable":null}"#;
        assert_eq!(executable_of(library), None);
        assert_eq!(
            executable_of(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(executable_of("   Compiling vk v0.1.0"), None);
    }

    #[test]
    fn a_relative_user_path_is_taken_from_the_current_directory() {
        let resolved = user_path("target/release/bursting-engine");
        assert!(resolved.is_absolute(), "{}", resolved.display());
        assert_eq!(
            resolved,
            std::env::current_dir()
                .unwrap()
                .join("target/release/bursting-engine")
        );
        assert_eq!(user_path("/abs/x"), PathBuf::from("/abs/x"));
    }

    #[rstest]
    #[case::manifest_dir("CARGO_MANIFEST_DIR", true)]
    #[case::package_name("CARGO_PKG_NAME", true)]
    #[case::bin_exe("CARGO_BIN_EXE_burstcert", true)]
    #[case::target_dir("CARGO_TARGET_DIR", false)]
    #[case::cargo_home("CARGO_HOME", false)]
    #[case::rustflags("RUSTFLAGS", false)]
    fn only_what_cargo_says_about_the_running_package_is_dropped(
        #[case] name: &str,
        #[case] dropped: bool,
    ) {
        assert_eq!(set_by_cargo_for_the_running_package(name), dropped);
    }

    #[test]
    fn an_installed_executable_is_not_in_a_workspace() {
        assert_eq!(
            Workspace::of_running(Path::new("/usr/local/bin/burstcert")),
            None
        );
    }

    #[test]
    fn this_test_executable_runs_from_its_workspace_with_its_profile() {
        let exe = std::env::current_exe().unwrap();
        let workspace = Workspace::of_running(&exe).expect("the unit tests run from the workspace");
        assert!(workspace.root.join("Cargo.toml").is_file());
        let expected = if cfg!(debug_assertions) {
            "dev"
        } else {
            "release"
        };
        assert_eq!(workspace.profile, expected);
    }
}
