//! The harness's one error type.

use std::path::PathBuf;

/// Everything that can go wrong while preparing tools, clusters and scenarios.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Go toolchain is needed to build the pinned Kubernetes binaries and is not on PATH.
    #[error(
        "the Go toolchain (`go`, 1.26 or newer) is needed to build Kubernetes {kube}, etcd and kwok from the Go \
         module proxy, and `go` was not found on PATH: install Go (Debian: `apt-get install golang-go`, if new \
         enough) or set {env} to a folder that already holds {binaries}"
    )]
    GoMissing {
        /// The pinned Kubernetes version.
        kube: String,
        /// The environment variable that names a folder of prebuilt binaries.
        env: &'static str,
        /// The binaries such a folder must hold.
        binaries: String,
    },
    /// A folder of prebuilt binaries lacks one of them.
    #[error("{env}={dir} has no executable `{binary}` (it must hold {binaries})")]
    PrebuiltMissing {
        /// The environment variable.
        env: &'static str,
        /// The folder it names.
        dir: PathBuf,
        /// The missing binary.
        binary: String,
        /// All binaries the folder must hold.
        binaries: String,
    },
    /// `go build` failed for a wrapper module.
    #[error("building {what} failed (`go build` exited with {status}); its last output:\n{tail}")]
    GoBuild {
        /// What was being built.
        what: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// The last lines `go` printed.
        tail: String,
    },
    /// A step of bringing up or tearing down a cluster failed.
    #[error("step `{step}` failed: {detail}")]
    Step {
        /// The named step.
        step: String,
        /// What went wrong, with the command's output where there was one.
        detail: String,
    },
    /// A command refused to act (a failed precondition); nothing was created or changed.
    #[error("{what} refused:\n  - {}", reasons.join("\n  - "))]
    Refused {
        /// What was refused, e.g. `install of the add-on 1.5.18`.
        what: String,
        /// Each failed rule, with its numbers.
        reasons: Vec<String>,
    },
    /// The target does not offer a capability that was asked of it.
    #[error("{need:?} is not offered on the {target} target: this needs {}", need.describe())]
    NotOffered {
        /// The capability, as scenarios declare it.
        need: crate::needs::Need,
        /// The target's kind (`local`, `kind`, `existing`).
        target: &'static str,
    },
    /// No cluster of that name exists.
    #[error("no local cluster named `{0}` (see `burstcert cluster list`)")]
    NoSuchCluster(String),
    /// A needed binary of this workspace was not found.
    #[error(
        "cannot find the `{binary}` binary (looked in {looked}); build it with `cargo build -p {package}` or set {env}"
    )]
    WorkspaceBinaryMissing {
        /// The binary's name.
        binary: &'static str,
        /// Its package.
        package: &'static str,
        /// Where we looked.
        looked: String,
        /// The environment variable that overrides the lookup.
        env: &'static str,
    },
    /// A condition was not met before its deadline.
    #[error("timed out after {seconds}s waiting for {what}\n{diagnosis}")]
    Timeout {
        /// What was waited on.
        what: String,
        /// The patience, in seconds.
        seconds: u64,
        /// What the harness saw when it gave up.
        diagnosis: String,
    },
    /// A container waited on will not start by waiting longer (crash-looping, its image pull
    /// backing off, …); the detail has its exit code and last log lines.
    #[error("gave up waiting for {what}: {detail}")]
    Stuck {
        /// What was waited on (filled in by [`crate::wait::until`]).
        what: String,
        /// The container, why it is stuck and its own words.
        detail: String,
    },
    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("{context}: {source}")]
    Kube {
        /// What the harness was doing.
        context: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The host node or a guarded process failed (see [`vk_hostnode::Error`]).
    #[error(transparent)]
    HostNode(#[from] vk_hostnode::Error),
    /// A call to the mock CCI failed.
    #[error("{context}: {source}")]
    Http {
        /// What the harness was doing.
        context: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
}

/// Results of the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a context sentence to IO errors.
pub(crate) trait IoContext<T> {
    /// Wraps the error with what the harness was doing.
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}
