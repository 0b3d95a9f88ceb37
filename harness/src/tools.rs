//! The upstream binaries a local cluster runs: built from the Go module proxy on first use.
//!
//! The pins live in one place, the wrapper modules under `tools/k8s/` (their `go.mod` files name
//! the Kubernetes, etcd and kwok releases). Those files are compiled into the harness, so the
//! harness can build the binaries from any working directory, and their hash keys the cache: a new
//! pin means a new cache folder, never a stale binary.
//!
//! Each Kubernetes minor the harness runs ([`Minor::SUPPORTED`], chosen with `--kubernetes`) has
//! one pinned patch release and wrapper modules of its own (`tools/k8s/kubernetes/` for
//! [`Minor::PINNED`], `tools/k8s/v1.Y/` for the others), and runs on the etcd its kubeadm
//! pairs it with; kwok, kind and CoreDNS are one pin for all (see `docs/versions.md`).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;

/// Environment variable naming a folder of prebuilt binaries; when set nothing is built.
pub const PREBUILT_ENV: &str = "BURSTCERT_K8S_BIN";
/// Environment variable overriding the cache root (default `$XDG_CACHE_HOME/burstcert` or
/// `~/.cache/burstcert`).
pub const CACHE_ENV: &str = "BURSTCERT_CACHE_DIR";

/// Every binary a local cluster needs, as file names inside the tools folder.
pub const BINARIES: [&str; 7] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "kwok",
    "kwokctl",
];

/// One wrapper Go module and what it builds.
struct Wrapper {
    /// Folder name under `tools/k8s/` and in the build tree.
    dir: &'static str,
    go_mod: &'static str,
    go_sum: &'static str,
    /// The module whose `require` line is the pin.
    pinned_module: &'static str,
    /// (package path, output binary name)
    packages: &'static [(&'static str, &'static str)],
    /// Kubernetes binaries: stamped with the pinned version (see [`ldflags`]).
    stamped: bool,
}

const KUBERNETES: Wrapper = Wrapper {
    dir: "kubernetes",
    go_mod: include_str!("../../tools/k8s/kubernetes/go.mod"),
    go_sum: include_str!("../../tools/k8s/kubernetes/go.sum"),
    pinned_module: "k8s.io/kubernetes",
    packages: &[
        ("k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
        (
            "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-controller-manager",
        ),
        ("k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
        ("k8s.io/kubernetes/cmd/kubectl", "kubectl"),
    ],
    stamped: true,
};

const ETCD: Wrapper = Wrapper {
    dir: "etcd",
    go_mod: include_str!("../../tools/k8s/etcd/go.mod"),
    go_sum: include_str!("../../tools/k8s/etcd/go.sum"),
    pinned_module: "go.etcd.io/etcd/server/v3",
    packages: &[("go.etcd.io/etcd/server/v3", "etcd")],
    stamped: false,
};

const KWOK: Wrapper = Wrapper {
    dir: "kwok",
    go_mod: include_str!("../../tools/k8s/kwok/go.mod"),
    go_sum: include_str!("../../tools/k8s/kwok/go.sum"),
    pinned_module: "sigs.k8s.io/kwok",
    packages: &[
        ("sigs.k8s.io/kwok/cmd/kwok", "kwok"),
        ("sigs.k8s.io/kwok/cmd/kwokctl", "kwokctl"),
    ],
    stamped: false,
};

/// etcd 3.5, which kubeadm pairs with Kubernetes up to 1.33 (1.30: 3.5.15, 1.33: 3.5.21).
const ETCD_3_5: Wrapper = Wrapper {
    dir: "etcd-v3.5",
    go_mod: include_str!("../../tools/k8s/etcd-v3.5/go.mod"),
    go_sum: include_str!("../../tools/k8s/etcd-v3.5/go.sum"),
    ..ETCD
};

/// The control plane and kubectl of a minor other than the pinned one, from `tools/k8s/{dir}`.
macro_rules! control_plane {
    ($dir:literal) => {
        Wrapper {
            dir: concat!($dir, "/kubernetes"),
            go_mod: include_str!(concat!("../../tools/k8s/", $dir, "/kubernetes/go.mod")),
            go_sum: include_str!(concat!("../../tools/k8s/", $dir, "/kubernetes/go.sum")),
            ..KUBERNETES
        }
    };
}

/// The kind node binaries of a minor other than the pinned one, from `tools/k8s/{dir}`.
macro_rules! kind_node {
    ($dir:literal) => {
        Wrapper {
            dir: concat!($dir, "/kind-node"),
            go_mod: include_str!(concat!("../../tools/k8s/", $dir, "/kind-node/go.mod")),
            go_sum: include_str!(concat!("../../tools/k8s/", $dir, "/kind-node/go.sum")),
            ..KIND_NODE
        }
    };
}

/// A Kubernetes minor the harness brings clusters up at: its pinned patch release (the
/// `k8s.io/kubernetes` require line of its control plane's wrapper module) and the modules that
/// build its binaries.
pub struct Minor {
    control_plane: Wrapper,
    kind_node: Wrapper,
    etcd: &'static Wrapper,
}

impl Minor {
    /// The minor this harness pins by default: what `certify` runs without `--kubernetes`.
    pub const PINNED: &'static Minor = &Minor {
        control_plane: KUBERNETES,
        kind_node: KIND_NODE,
        etcd: &ETCD,
    };

    /// Every minor the harness runs, oldest first; [`Minor::PINNED`] is the newest. The oldest is
    /// the oldest whose every module the Go module proxy serves (`docs/versions.md`).
    pub const SUPPORTED: &'static [&'static Minor] = &[
        &Minor {
            control_plane: control_plane!("v1.30"),
            kind_node: kind_node!("v1.30"),
            etcd: &ETCD_3_5,
        },
        &Minor {
            control_plane: control_plane!("v1.33"),
            kind_node: kind_node!("v1.33"),
            etcd: &ETCD_3_5,
        },
        Minor::PINNED,
    ];

    /// The oldest supported minor.
    pub fn oldest() -> &'static Minor {
        Minor::SUPPORTED[0]
    }

    /// The pinned release, e.g. `v1.30.14`.
    pub fn release(&self) -> String {
        required_version(self.control_plane.go_mod, self.control_plane.pinned_module)
            .unwrap_or_else(|| {
                panic!(
                    "tools/k8s/{}/go.mod requires no {}",
                    self.control_plane.dir, self.control_plane.pinned_module
                )
            })
    }

    /// The minor, e.g. `1.30`.
    pub fn minor(&self) -> String {
        let release = self.release();
        let mut parts = release.trim_start_matches('v').split('.');
        format!(
            "{}.{}",
            parts.next().unwrap_or("1"),
            parts.next().unwrap_or("0")
        )
    }

    /// The minor number alone, e.g. `30`.
    pub fn number(&self) -> u32 {
        self.minor()
            .split('.')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// The supported minor `text` names: `1.30`, `v1.30`, its pinned release (`1.30.14`,
    /// `v1.30.14`), or `oldest` / `pinned` (so CI names the oldest without repeating it); an
    /// error names what is supported.
    pub fn parse(text: &str) -> std::result::Result<&'static Minor, String> {
        match text.trim() {
            "oldest" => return Ok(Minor::oldest()),
            "pinned" => return Ok(Minor::PINNED),
            _ => {}
        }
        let wanted = text.trim().trim_start_matches('v');
        let supported = || {
            Minor::SUPPORTED
                .iter()
                .map(|m| format!("{} ({})", m.minor(), m.release()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let parts: Vec<&str> = wanted.split('.').collect();
        let well_formed = matches!(parts.len(), 2 | 3)
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        if !well_formed {
            return Err(format!(
                "{text:?} is not a Kubernetes minor like 1.30, nor oldest or pinned (supported: {})",
                supported()
            ));
        }
        let minor = format!("{}.{}", parts[0], parts[1]);
        let found = Minor::SUPPORTED
            .iter()
            .copied()
            .find(|m| m.minor() == minor)
            .ok_or_else(|| {
                format!(
                    "Kubernetes {minor} is not supported (supported: {}; see docs/versions.md)",
                    supported()
                )
            })?;
        if parts.len() == 3 && found.release() != format!("v{wanted}") {
            return Err(format!(
                "Kubernetes {minor} is pinned at {}, not v{wanted}",
                found.release()
            ));
        }
        Ok(found)
    }

    /// A comma-separated list of minors (`1.30,1.36`), each once, in the order given.
    pub fn parse_list(text: &str) -> std::result::Result<Vec<&'static Minor>, String> {
        let mut minors: Vec<&'static Minor> = Vec::new();
        for part in text.split(',') {
            let minor = Minor::parse(part)?;
            if !minors.iter().any(|m| std::ptr::eq(*m, minor)) {
                minors.push(minor);
            }
        }
        Ok(minors)
    }

    /// The wrapper modules of a local cluster at this minor.
    fn wrappers(&self) -> [&Wrapper; 3] {
        [&self.control_plane, self.etcd, &KWOK]
    }

    /// What a kind cluster at this minor needs on top of [`Minor::wrappers`] (built only for
    /// `--cluster kind`, into a cache folder of its own, so the local cluster's cache is never
    /// invalidated by it).
    fn kind_wrappers(&self) -> [&Wrapper; 3] {
        [&self.kind_node, &KIND, &COREDNS]
    }
}

impl Default for &'static Minor {
    fn default() -> Self {
        Minor::PINNED
    }
}

impl PartialEq for Minor {
    fn eq(&self, other: &Self) -> bool {
        self.control_plane.go_mod == other.control_plane.go_mod
    }
}

impl Eq for Minor {}

impl std::fmt::Debug for Minor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Minor({})", self.release())
    }
}

impl std::fmt::Display for Minor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.release())
    }
}

/// The node binaries of a kind node image, at the pin of [`KUBERNETES`].
const KIND_NODE: Wrapper = Wrapper {
    dir: "kind-node",
    go_mod: include_str!("../../tools/k8s/kind-node/go.mod"),
    go_sum: include_str!("../../tools/k8s/kind-node/go.sum"),
    pinned_module: "k8s.io/kubernetes",
    packages: &[
        ("k8s.io/kubernetes/cmd/kubelet", "kubelet"),
        ("k8s.io/kubernetes/cmd/kubeadm", "kubeadm"),
        ("k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"),
    ],
    stamped: true,
};

const KIND: Wrapper = Wrapper {
    dir: "kind",
    go_mod: include_str!("../../tools/k8s/kind/go.mod"),
    go_sum: include_str!("../../tools/k8s/kind/go.sum"),
    pinned_module: "sigs.k8s.io/kind",
    packages: &[("sigs.k8s.io/kind", "kind")],
    stamped: false,
};

const COREDNS: Wrapper = Wrapper {
    dir: "coredns",
    go_mod: include_str!("../../tools/k8s/coredns/go.mod"),
    go_sum: include_str!("../../tools/k8s/coredns/go.sum"),
    pinned_module: "github.com/coredns/coredns",
    packages: &[("github.com/coredns/coredns", "coredns")],
    stamped: false,
};

/// Every binary of [`Minor::kind_wrappers`].
pub const KIND_BINARIES: [&str; 5] = ["kubelet", "kubeadm", "kube-proxy", "kind", "coredns"];

/// The pinned versions, read from the wrapper modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pins {
    /// Kubernetes release, e.g. `v1.36.3`.
    pub kubernetes: String,
    /// etcd release, e.g. `v3.6.16`.
    pub etcd: String,
    /// kwok release, e.g. `v0.8.0`.
    pub kwok: String,
    /// kind release, e.g. `v0.33.0`.
    pub kind: String,
    /// CoreDNS release of the kind cluster, e.g. `v1.14.2`.
    pub coredns: String,
}

impl Pins {
    /// The pins compiled into this harness for the pinned minor ([`Minor::PINNED`]).
    pub fn current() -> Self {
        Self::of(Minor::PINNED)
    }

    /// The pins of a cluster at `minor`.
    pub fn of(minor: &Minor) -> Self {
        let get = |w: &Wrapper| {
            required_version(w.go_mod, w.pinned_module).unwrap_or_else(|| {
                panic!("tools/k8s/{}/go.mod requires no {}", w.dir, w.pinned_module)
            })
        };
        Self {
            kubernetes: minor.release(),
            etcd: get(minor.etcd),
            kwok: get(&KWOK),
            kind: get(&KIND),
            coredns: get(&COREDNS),
        }
    }

    /// The Kubernetes minor version, e.g. `36`.
    pub fn kubernetes_minor(&self) -> &str {
        self.kubernetes.split('.').nth(1).unwrap_or("0")
    }
}

/// The version a `go.mod` requires of `module`, from a `require` line or block.
pub fn required_version(go_mod: &str, module: &str) -> Option<String> {
    go_mod.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let first = words.next()?;
        let first = if first == "require" {
            words.next()?
        } else {
            first
        };
        (first == module).then(|| words.next().map(str::to_owned))?
    })
}

/// A folder that holds every binary of [`BINARIES`].
#[derive(Clone, Debug)]
pub struct Tools {
    dir: PathBuf,
    /// The versions these binaries were built at (the compiled-in pins).
    pub pins: Pins,
}

impl Tools {
    /// Binaries in `dir`, unchecked (see [`Tools::ensure`] for the checked way).
    pub fn at(dir: impl Into<PathBuf>, pins: Pins) -> Self {
        Self {
            dir: dir.into(),
            pins,
        }
    }

    /// Path of one binary, e.g. `tools.bin("kwokctl")`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Finds the binaries of the pinned minor ([`Tools::ensure_for`] [`Minor::PINNED`]).
    pub fn ensure(progress: &Progress) -> Result<Self> {
        Self::ensure_for(Minor::PINNED, progress)
    }

    /// Finds the binaries of `minor`: the folder named by [`PREBUILT_ENV`] (when its
    /// kube-apiserver is that minor's pinned release), else the cache, building into it on first
    /// use (minutes on 2 cores; progress is shown). Each minor has a cache folder of its own.
    pub fn ensure_for(minor: &Minor, progress: &Progress) -> Result<Self> {
        let pins = Pins::of(minor);
        if let Some(dir) = std::env::var_os(PREBUILT_ENV) {
            let dir = crate::binaries::user_path(PathBuf::from(dir));
            check_complete(&dir, &BINARIES).map_err(|binary| Error::PrebuiltMissing {
                env: PREBUILT_ENV,
                dir: dir.clone(),
                binary,
                binaries: BINARIES.join(", "),
            })?;
            check_prebuilt_version(&dir, &pins.kubernetes)?;
            return Ok(Self { dir, pins });
        }
        let wrappers = minor.wrappers();
        let dir = cache_root()?.join(format!(
            "k8s-{}-etcd-{}-kwok-{}-{}",
            pins.kubernetes,
            pins.etcd,
            pins.kwok,
            hash_of(&wrappers)
        ));
        ensure_built(&dir, &BINARIES, progress, || {
            build_all(&dir, &pins, &wrappers, &BINARIES, progress)
        })?;
        Ok(Self { dir, pins })
    }
}

/// Checks that the prebuilt kube-apiserver in `dir` is `release`: a folder of another release
/// would bring up a cluster the run does not claim.
fn check_prebuilt_version(dir: &Path, release: &str) -> Result<()> {
    let binary = dir.join("kube-apiserver");
    let out = Command::new(&binary)
        .arg("--version")
        .output()
        .io_context(|| format!("run {} --version", binary.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    // `Kubernetes v1.36.3`
    let version = said.split_whitespace().last().unwrap_or_default();
    if version == release {
        return Ok(());
    }
    Err(Error::Step {
        step: format!("use the binaries of {PREBUILT_ENV}"),
        detail: format!(
            "{} says {:?}, but this run is for Kubernetes {release} (--kubernetes); name a folder of {release} binaries, or unset {PREBUILT_ENV} to build them",
            binary.display(),
            said.trim()
        ),
    })
}

/// The kind binaries of the pinned minor ([`ensure_kind_for`] [`Minor::PINNED`]).
pub fn ensure_kind(progress: &Progress) -> Result<Tools> {
    ensure_kind_for(Minor::PINNED, progress)
}

/// The binaries a kind cluster at `minor` needs besides [`Tools`]: kubelet, kubeadm,
/// kube-proxy, the kind CLI and CoreDNS ([`KIND_BINARIES`]), built from the Go module proxy on
/// first use and cached by their pins (about 3 minutes on 2 cores with Go's build cache warm
/// from [`Tools::ensure_for`]).
pub fn ensure_kind_for(minor: &Minor, progress: &Progress) -> Result<Tools> {
    let pins = Pins::of(minor);
    let wrappers = minor.kind_wrappers();
    let dir = cache_root()?.join(format!(
        "kind-{}-k8s-{}-coredns-{}-{}",
        pins.kind,
        pins.kubernetes,
        pins.coredns,
        hash_of(&wrappers)
    ));
    ensure_built(&dir, &KIND_BINARIES, progress, || {
        build_all(&dir, &pins, &wrappers, &KIND_BINARIES, progress)
    })?;
    Ok(Tools { dir, pins })
}

/// The root of the harness's caches.
pub fn cache_root() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return Ok(crate::binaries::user_path(PathBuf::from(dir)));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(crate::binaries::user_path(PathBuf::from(dir)).join("burstcert"));
    }
    match std::env::var_os("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("burstcert")),
        None => Err(Error::Step {
            step: "locate cache".into(),
            detail: format!("neither {CACHE_ENV}, XDG_CACHE_HOME nor HOME is set"),
        }),
    }
}

fn check_complete(dir: &Path, binaries: &[&str]) -> Result<(), String> {
    for &name in binaries {
        if !dir.join(name).is_file() {
            return Err(name.to_owned());
        }
    }
    Ok(())
}

/// A short hash of every file of `wrappers`: the cache key beside the versions.
fn hash_of(wrappers: &[&Wrapper]) -> String {
    let mut hasher = Sha256::new();
    for w in wrappers {
        hasher.update(w.go_mod.as_bytes());
        hasher.update(w.go_sum.as_bytes());
    }
    short_hex(&hasher.finalize())
}

/// The first 6 bytes of a digest in hex: the harness's cache keys.
pub(crate) fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(6).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Runs `build` (which puts `binaries` into `dest`) unless they are there, one builder at a time: the threads of
/// one process (a run brings up its clusters at once, each asking for the binaries) and other
/// processes (another `burstcert`, a test binary) wait for the one building, then find the
/// result. Without this, builders of one process shared a scratch folder and removed each
/// other's work ("build kube-apiserver failed" on a cold machine).
fn ensure_built(
    dest: &Path,
    binaries: &[&str],
    progress: &Progress,
    build: impl FnOnce() -> Result<()>,
) -> Result<()> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if check_complete(dest, binaries).is_ok() {
        return Ok(());
    }
    // A panic while building poisons the lock, not the cache (the scratch folder is removed).
    let _in_process = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let parent = dest.parent().expect("cache folder has a parent");
    std::fs::create_dir_all(parent).io_context(|| format!("create {}", parent.display()))?;
    let lock_path = parent.join(format!(
        ".lock-{}",
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let lock = std::fs::File::create(&lock_path)
        .io_context(|| format!("create {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        let bar = progress.spinner(&format!(
            "wait for another process building {} (lock {})",
            dest.display(),
            lock_path.display()
        ));
        lock.lock()
            .io_context(|| format!("lock {}", lock_path.display()))?;
        bar.finish("the other process finished building");
    }
    // Released when `lock` is dropped (closed), also if this process dies.
    if check_complete(dest, binaries).is_ok() {
        return Ok(());
    }
    build()
}

fn build_all(
    dest: &Path,
    pins: &Pins,
    wrappers: &[&Wrapper],
    binaries: &[&str],
    progress: &Progress,
) -> Result<()> {
    match Command::new("go").arg("version").output() {
        Ok(out) if out.status.success() => {}
        _ => {
            return Err(Error::GoMissing {
                kube: pins.kubernetes.clone(),
                env: PREBUILT_ENV,
                binaries: BINARIES.join(", "),
            });
        }
    }
    let parent = dest.parent().expect("cache folder has a parent");
    std::fs::create_dir_all(parent).io_context(|| format!("create {}", parent.display()))?;
    // Build into a scratch folder and rename it into place, so an interrupted build never
    // leaves a folder that looks complete.
    let scratch = parent.join(format!(
        ".building-{}-{}",
        std::process::id(),
        dest.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    let result = (|| {
        for wrapper in wrappers {
            build_wrapper(wrapper, &scratch, pins, progress)?;
        }
        match std::fs::rename(scratch.join("bin"), dest) {
            // Another process finished the same build first: theirs is as good as ours.
            Err(_) if check_complete(dest, binaries).is_ok() => Ok(()),
            other => other.io_context(|| format!("move built binaries to {}", dest.display())),
        }
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn build_wrapper(w: &Wrapper, scratch: &Path, pins: &Pins, progress: &Progress) -> Result<()> {
    let src = scratch.join("src").join(w.dir);
    let bin = scratch.join("bin");
    std::fs::create_dir_all(&src).io_context(|| format!("create {}", src.display()))?;
    std::fs::create_dir_all(&bin).io_context(|| format!("create {}", bin.display()))?;
    std::fs::write(src.join("go.mod"), w.go_mod).io_context(|| "write go.mod".into())?;
    std::fs::write(src.join("go.sum"), w.go_sum).io_context(|| "write go.sum".into())?;
    let version = required_version(w.go_mod, w.pinned_module).unwrap_or_default();
    for (package, name) in w.packages {
        let step = format!("build {name} {version}");
        let mut bar = progress.spinner(&step);
        let mut cmd = Command::new("go");
        cmd.current_dir(&src)
            .env("CGO_ENABLED", "0")
            .args(["build", "-v", "-trimpath", "-tags", "selinux,notest"])
            .arg(format!("-ldflags={}", ldflags(w, pins)))
            .arg("-o")
            .arg(bin.join(name))
            .arg(package)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .io_context(|| format!("start `go build {package}`"))?;
        let mut tail = std::collections::VecDeque::with_capacity(30);
        let mut compiled = 0usize;
        if let Some(stderr) = child.stderr.take() {
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                compiled += 1;
                bar.set_message(format!("{step}: {compiled} packages compiled"));
                if tail.len() == 30 {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        }
        let status = child
            .wait()
            .io_context(|| format!("wait for `go build {package}`"))?;
        if !status.success() {
            bar.fail(&format!("{step} failed"));
            return Err(Error::GoBuild {
                what: format!("{name} ({package})"),
                status,
                tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
            });
        }
        bar.finish(&format!("{step}: done"));
    }
    Ok(())
}

/// Version stamps, as upstream's release builds set them (kwokctl reads `--version` of each
/// binary and distrusts `v0.0.0-master`).
fn ldflags(w: &Wrapper, pins: &Pins) -> String {
    if !w.stamped {
        return "-s -w".into();
    }
    let v = &pins.kubernetes;
    format!(
        "-s -w -X k8s.io/component-base/version.gitVersion={v} -X k8s.io/component-base/version.gitMajor=1 \
         -X k8s.io/component-base/version.gitMinor={minor} -X k8s.io/component-base/version.gitTreeState=clean \
         -X k8s.io/client-go/pkg/version.gitVersion={v}",
        minor = pins.kubernetes_minor()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::single_line("module x\n\nrequire k8s.io/kubernetes v1.36.3\n", Some("v1.36.3"))]
    #[case::block_with_comment(
        "require (\n\tk8s.io/kubernetes v1.36.3 // indirect\n)\n",
        Some("v1.36.3")
    )]
    #[case::other_module_only("require (\n\tk8s.io/api v0.36.3\n)\n", None)]
    #[case::replace_line_is_not_a_require("replace k8s.io/kubernetesx => k8s.io/x v1\n", None)]
    fn required_version_reads_require_lines_and_blocks(
        #[case] go_mod: &str,
        #[case] want: Option<&str>,
    ) {
        assert_eq!(
            required_version(go_mod, "k8s.io/kubernetes").as_deref(),
            want
        );
    }

    #[test]
    fn pins_come_from_the_wrapper_modules_and_agree_with_the_staging_replaces() {
        let pins = Pins::current();
        assert!(pins.kubernetes.starts_with("v1."), "{pins:?}");
        assert!(pins.etcd.starts_with("v3."), "{pins:?}");
        assert!(pins.kwok.starts_with("v0."), "{pins:?}");
        for minor in Minor::SUPPORTED {
            // Every staging module must be replaced by the v0.Y.Z twin of the pinned v1.Y.Z.
            let staging = format!("v0.{}", minor.release().trim_start_matches("v1."));
            for wrapper in [&minor.control_plane, &minor.kind_node] {
                let replaces: Vec<&str> = wrapper
                    .go_mod
                    .lines()
                    .filter(|l| l.contains("=>"))
                    .collect();
                assert!(
                    replaces.len() >= 29,
                    "{}: only {} replace lines",
                    wrapper.dir,
                    replaces.len()
                );
                for line in replaces {
                    assert!(
                        line.trim_end().ends_with(&staging),
                        "{}: {line} is not at {staging}",
                        wrapper.dir
                    );
                }
            }
        }
    }

    #[test]
    fn each_wrapper_module_is_named_after_its_folder() {
        let mut wrappers: Vec<&Wrapper> = Minor::SUPPORTED
            .iter()
            .flat_map(|m| m.wrappers().into_iter().chain(m.kind_wrappers()))
            .collect();
        wrappers.dedup_by_key(|w| w.dir);
        for w in wrappers {
            let module = format!("module burstcert.local/tools/k8s/{}", w.dir);
            assert!(
                w.go_mod.lines().any(|l| l == module),
                "tools/k8s/{}/go.mod does not say `{module}`",
                w.dir
            );
        }
    }

    #[test]
    fn minors_are_listed_oldest_first_each_once_the_pinned_one_last() {
        let numbers: Vec<u32> = Minor::SUPPORTED.iter().map(|m| m.number()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        assert!(std::ptr::eq(
            *Minor::SUPPORTED.last().unwrap(),
            Minor::PINNED
        ));
        assert_eq!(Minor::oldest().number(), numbers[0]);
        assert_eq!(<&Minor>::default(), Minor::PINNED);
    }

    #[test]
    fn k8s_openapi_is_compiled_for_the_newest_minor_the_harness_brings_up() {
        let manifest =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
                .unwrap();
        let line = manifest
            .lines()
            .find(|l| l.starts_with("k8s-openapi ="))
            .expect("the workspace names k8s-openapi");
        let newest = Minor::SUPPORTED.last().unwrap().number();
        assert!(
            line.contains(&format!("\"v1_{newest}\"")),
            "{line}: not the newest supported minor 1.{newest}"
        );
    }

    #[test]
    fn each_minor_runs_on_the_etcd_its_kubeadm_pairs_it_with() {
        // kubeadm pairs Kubernetes up to 1.33 with etcd 3.5 and 1.34 on with etcd 3.6.
        for minor in Minor::SUPPORTED {
            let etcd = Pins::of(minor).etcd;
            let want = if minor.number() <= 33 {
                "v3.5."
            } else {
                "v3.6."
            };
            assert!(etcd.starts_with(want), "{minor}: etcd {etcd}");
        }
    }

    #[rstest]
    #[case::minor("1.30", Ok("v1.30.14"))]
    #[case::with_v("v1.30", Ok("v1.30.14"))]
    #[case::pinned_patch("1.30.14", Ok("v1.30.14"))]
    #[case::pinned_patch_with_v(" v1.36.3", Ok("v1.36.3"))]
    #[case::other_patch("1.30.2", Err("pinned at v1.30.14"))]
    #[case::unsupported("1.28", Err("Kubernetes 1.28 is not supported"))]
    #[case::malformed("1.x", Err("not a Kubernetes minor"))]
    #[case::oldest("oldest", Ok("v1.30.14"))]
    #[case::pinned("pinned", Ok("v1.36.3"))]
    #[case::major_only("1", Err("not a Kubernetes minor"))]
    fn a_kubernetes_argument_names_a_supported_minor(
        #[case] text: &str,
        #[case] want: std::result::Result<&str, &str>,
    ) {
        match (Minor::parse(text), want) {
            (Ok(minor), Ok(release)) => assert_eq!(minor.release(), release),
            (Err(e), Err(part)) => {
                assert!(e.contains(part), "{e}");
                assert!(e.contains("1.36") || part.contains("pinned"), "{e}");
            }
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn a_list_of_minors_keeps_its_order_and_names_each_once() {
        let list = Minor::parse_list("1.36,1.30,v1.36.3").unwrap();
        let releases: Vec<String> = list.iter().map(|m| m.release()).collect();
        assert_eq!(releases, ["v1.36.3", "v1.30.14"]);
        assert!(Minor::parse_list("1.30,1.99").is_err());
        assert!(Minor::parse_list("").is_err());
    }

    #[test]
    fn kubernetes_binaries_get_version_stamps_and_others_do_not() {
        let pins = Pins::current();
        assert!(ldflags(&KUBERNETES, &pins).contains(&format!("gitVersion={}", pins.kubernetes)));
        assert!(ldflags(&KIND_NODE, &pins).contains(&format!("gitVersion={}", pins.kubernetes)));
        assert_eq!(ldflags(&ETCD, &pins), "-s -w");
        assert_eq!(ldflags(&KIND, &pins), "-s -w");
    }

    #[test]
    fn the_kind_node_binaries_are_pinned_with_the_control_plane() {
        for minor in Minor::SUPPORTED {
            assert_eq!(
                required_version(minor.kind_node.go_mod, "k8s.io/kubernetes"),
                Some(minor.release())
            );
            let mut built: Vec<&str> = minor
                .kind_wrappers()
                .iter()
                .flat_map(|w| w.packages.iter().map(|p| p.1))
                .collect();
            built.sort_unstable();
            let mut want = KIND_BINARIES.to_vec();
            want.sort_unstable();
            assert_eq!(built, want);
        }
    }

    #[test]
    fn concurrent_callers_build_once_and_all_find_the_binaries() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let cache = tempfile::tempdir().unwrap();
        let dest = cache.path().join("k8s-test");
        let builds = AtomicUsize::new(0);
        let arrived = AtomicUsize::new(0);
        let progress = Progress::quiet();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    arrived.fetch_add(1, SeqCst);
                    ensure_built(&dest, &["one", "two"], &progress, || {
                        builds.fetch_add(1, SeqCst);
                        // A build takes minutes: the others arrive while it is under way.
                        let deadline =
                            std::time::Instant::now() + std::time::Duration::from_secs(5);
                        while arrived.load(SeqCst) < 4 && std::time::Instant::now() < deadline {
                            std::thread::yield_now();
                        }
                        std::fs::create_dir_all(&dest).unwrap();
                        std::fs::write(dest.join("one"), "").unwrap();
                        std::fs::write(dest.join("two"), "").unwrap();
                        Ok(())
                    })
                    .unwrap();
                    assert!(check_complete(&dest, &["one", "two"]).is_ok());
                });
            }
        });
        assert_eq!(builds.into_inner(), 1);
    }

    #[test]
    fn every_binary_is_built_by_exactly_one_wrapper() {
        for minor in Minor::SUPPORTED {
            let mut built: Vec<&str> = minor
                .wrappers()
                .iter()
                .flat_map(|w| w.packages.iter().map(|p| p.1))
                .collect();
            built.sort_unstable();
            let mut want = BINARIES.to_vec();
            want.sort_unstable();
            assert_eq!(built, want, "{minor}");
        }
    }
}
