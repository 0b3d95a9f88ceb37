//! kind clusters from locally made images (`--cluster kind`).
//!
//! No container registry is reachable from this project's machines, so every image a kind
//! cluster runs is made here (see `docs/kind.md`, which records the measurements):
//!
//! - **node image** `burstcert/kind-node:{kubernetes}-{key}`: Debian trixie from `debootstrap`
//!   (its systemd still boots on cgroup v1) with Debian's containerd, runc and CNI plugins, the
//!   files of `tools/kind/node/` (an entrypoint of our own, the kubelet's units, containerd's
//!   config, a ptp CNI: kind's kindnetd module is not served by the Go module proxy), the
//!   kubelet, kubeadm and kubectl, and every image `kubeadm config images list` names, built from
//!   the same Kubernetes, etcd and CoreDNS the harness builds from the Go module proxy, and pause
//!   from its C source, imported into the node's containerd. Cached by a key of all its inputs:
//!   cold about 3 minutes on 2 cores, then a `docker image inspect`.
//! - **the add-on's image** `{swr_addr}/{swr_user}/bursting-engine:{release}` and the mock's
//!   image: the binaries built from the current source (the same build the local cluster runs),
//!   `FROM scratch` with the loader and libraries `ldd` names.
//!
//! The kind CLI (built from the Go module proxy like kwokctl) makes the cluster; the mock CCI runs
//! as a container on kind's Docker network. Cluster and mock container are removed when the
//! harness ends, however it ends ([`OnExit`]), or by `burstcert cluster down --all`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::cluster::ClusterProvider;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::tools::{Tools, cache_root};
use vk_hostnode::process::OnExit;

pub mod kwok;
pub mod nodes;

/// Name prefix of the kind clusters and containers the harness makes.
pub const PREFIX: &str = "burstcert-";
/// Docker label on every container the harness makes for a kind cluster (value: the cluster).
pub const LABEL: &str = "io.burstcert.cluster";
/// The Docker network kind puts its nodes on.
pub const NETWORK: &str = "kind";
/// The mock CCI's port inside its container.
pub const MOCK_PORT: u16 = 8080;
/// The Debian release of the node image.
const SUITE: &str = "trixie";
/// What the node's root file system holds besides `minbase`.
const PACKAGES: &str = "systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,\
    iptables,conntrack,iproute2,ethtool,socat,kmod,ca-certificates,procps,mount";
/// Where debootstrap fetches from (Debian's packages are reachable here).
const MIRROR: &str = "http://deb.debian.org/debian";

/// The node image's files: (path under `/`, content, executable).
const NODE_FILES: [(&str, &str, bool); 9] = [
    (
        "usr/local/bin/entrypoint",
        include_str!("../../../tools/kind/node/usr/local/bin/entrypoint"),
        true,
    ),
    (
        "kind/bin/kubelet-cgroup-v2",
        include_str!("../../../tools/kind/node/kind/bin/kubelet-cgroup-v2"),
        true,
    ),
    (
        "etc/containerd/config.toml",
        include_str!("../../../tools/kind/node/etc/containerd/config.toml"),
        false,
    ),
    (
        "etc/systemd/system/kubelet.service",
        include_str!("../../../tools/kind/node/etc/systemd/system/kubelet.service"),
        false,
    ),
    (
        "etc/systemd/system/kubelet.service.d/10-kubeadm.conf",
        include_str!(
            "../../../tools/kind/node/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
        ),
        false,
    ),
    (
        "etc/systemd/system/kubelet.slice",
        include_str!("../../../tools/kind/node/etc/systemd/system/kubelet.slice"),
        false,
    ),
    (
        "etc/default/kubelet",
        include_str!("../../../tools/kind/node/etc/default/kubelet"),
        false,
    ),
    (
        "etc/sysctl.d/10-burstcert-network.conf",
        include_str!("../../../tools/kind/node/etc/sysctl.d/10-burstcert-network.conf"),
        false,
    ),
    (
        CNI_TEMPLATE,
        include_str!("../../../tools/kind/node/kind/cni/10-burstcert.conflist"),
        false,
    ),
];
/// The node's CNI config with `POD_SUBNET` for its pod CIDR, written to `/etc/cni/net.d/` once
/// the node has one ([`KindCluster::create`]).
const CNI_TEMPLATE: &str = "kind/cni/10-burstcert.conflist";
const BASE_DOCKERFILE: &str = include_str!("../../../tools/kind/Dockerfile.base");
/// The cluster's kind config: no kindnetd (a CNI baked into the node instead), the kubelet
/// allowed on cgroup v1, and no negative oom_score_adj (KIND.md).
pub const CLUSTER_CONFIG: &str = include_str!("../../../tools/kind/cluster.yaml");

/// Runs `program args`, returning its stdout; a failure names `step` and shows the output.
fn run(step: &str, program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Step {
            step: step.into(),
            detail: format!("cannot run `{program}`: {e}"),
        })?;
    if !out.status.success() {
        return Err(Error::Step {
            step: step.into(),
            detail: format!(
                "`{program} {}` exited with {}:\n{}{}",
                args.join(" "),
                out.status,
                tail(&String::from_utf8_lossy(&out.stdout), 15),
                tail(&String::from_utf8_lossy(&out.stderr), 25)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = lines[lines.len().saturating_sub(n)..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Checks that a Docker engine answers, and says how to start one when it does not.
pub fn check_docker() -> Result<()> {
    let answer = Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output();
    match answer {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(Error::Step {
            step: "reach the Docker engine (kind runs its nodes as containers)".into(),
            detail: format!(
                "`docker info` failed: {}\nstart one with `tools/docker/dockerd-up` (Debian: \
                 `apt-get install docker.io` first; it adds what this VM needs, see docs/kind.md)",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
        Err(e) => Err(Error::Step {
            step: "reach the Docker engine (kind runs its nodes as containers)".into(),
            detail: format!(
                "cannot run `docker`: {e}; install Docker (Debian: `apt-get install docker.io`) and \
                 start it with `tools/docker/dockerd-up`"
            ),
        }),
    }
}

fn image_exists(tag: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A scratch folder under the cache, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Result<Self> {
        let dir = cache_root()?
            .join("kind-build")
            .join(format!("{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }

    fn write(&self, path: &str, content: &[u8], executable: bool) -> Result<()> {
        let file = self.0.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .io_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(&file, content).io_context(|| format!("write {}", file.display()))?;
        if executable {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                .io_context(|| format!("chmod {}", file.display()))?;
        }
        Ok(())
    }

    fn copy(&self, from: &Path, name: &str) -> Result<()> {
        let to = self.0.join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .io_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::copy(from, &to)
            .io_context(|| format!("copy {} to {}", from.display(), to.display()))?;
        Ok(())
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A short hex digest of `parts`.
fn key_of(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    crate::tools::short_hex(&hasher.finalize())
}

/// Builds (or finds in Docker's cache) the node image for the pinned Kubernetes; returns its tag.
pub fn ensure_node_image(k8s: &Tools, kind_tools: &Tools, progress: &Progress) -> Result<String> {
    let pins = &k8s.pins;
    let rootfs = format!(
        "burstcert/kind-rootfs:{SUITE}-{}",
        key_of(&[PACKAGES.as_bytes(), MIRROR.as_bytes()])
    );
    let mut inputs: Vec<&[u8]> = vec![
        rootfs.as_bytes(),
        BASE_DOCKERFILE.as_bytes(),
        pins.kubernetes.as_bytes(),
        pins.etcd.as_bytes(),
        pins.coredns.as_bytes(),
    ];
    for (path, content, _) in &NODE_FILES {
        inputs.push(path.as_bytes());
        inputs.push(content.as_bytes());
    }
    let node = format!(
        "burstcert/kind-node:{}-{}",
        pins.kubernetes,
        key_of(&inputs)
    );
    if image_exists(&node) {
        return Ok(node);
    }
    if !image_exists(&rootfs) {
        build_rootfs(&rootfs, progress)?;
    }
    let step = progress.spinner("build the kind node's base image");
    let base = node.replace("kind-node", "kind-base");
    {
        let ctx = Scratch::new("base")?;
        for (path, content, executable) in &NODE_FILES {
            ctx.write(&format!("node/{path}"), content.as_bytes(), *executable)?;
        }
        let dockerfile = BASE_DOCKERFILE.replace("burstcert/kind-rootfs:trixie", &rootfs);
        ctx.write("Dockerfile", dockerfile.as_bytes(), false)?;
        run(
            "build the kind node's base image",
            "docker",
            &["build", "-q", "-t", &base, ctx.path()],
        )?;
    }
    step.finish("kind node base image built");
    let images = component_images(k8s, kind_tools, &rootfs, progress)?;
    let step = progress.spinner(&format!("assemble the kind node image {node}"));
    assemble_node(&base, &node, k8s, kind_tools, &images)?;
    let _ = run("remove the base image", "docker", &["rmi", &base]);
    step.finish(&format!("kind node image {node} built"));
    Ok(node)
}

fn build_rootfs(tag: &str, progress: &Progress) -> Result<()> {
    let step = progress.spinner(&format!(
        "debootstrap Debian {SUITE} for the kind node (about a minute)"
    ));
    let dir = Scratch::new("rootfs")?;
    let target = format!("{}/rootfs", dir.path());
    run(
        "debootstrap the kind node's root file system (needs root and Debian's debootstrap)",
        "debootstrap",
        &[
            "--variant=minbase",
            &format!("--include={PACKAGES}"),
            SUITE,
            &target,
            MIRROR,
        ],
    )?;
    run(
        "import the kind node's root file system",
        "sh",
        &[
            "-c",
            "tar -C \"$1\" -c . | docker import - \"$2\" >/dev/null",
            "import",
            &target,
            tag,
        ],
    )?;
    step.finish(&format!("{tag} imported"));
    Ok(())
}

/// Builds every image `kubeadm config images list` names; returns their tags.
fn component_images(
    k8s: &Tools,
    kind_tools: &Tools,
    rootfs: &str,
    progress: &Progress,
) -> Result<Vec<String>> {
    let step = progress.spinner("build the control plane's images (kubeadm's list)");
    let listed = run(
        "list the images kubeadm wants",
        kind_tools.bin("kubeadm").to_str().unwrap_or("kubeadm"),
        &[
            "config",
            "images",
            "list",
            "--kubernetes-version",
            &k8s.pins.kubernetes,
        ],
    )?;
    let ctx = Scratch::new("images")?;
    let mut tags = Vec::new();
    for tag in listed.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = tag
            .rsplit_once(':')
            .map_or(tag, |(n, _)| n)
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let (from, binary, dest, extra) = match name {
            "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "etcd" => (
                "scratch",
                k8s.bin(name),
                format!("/usr/local/bin/{name}"),
                "",
            ),
            "kube-proxy" => (
                rootfs,
                kind_tools.bin(name),
                "/usr/local/bin/kube-proxy".into(),
                // The base's STOPSIGNAL is systemd's; kube-proxy stops on SIGTERM.
                "STOPSIGNAL SIGTERM",
            ),
            "coredns" => (
                "scratch",
                kind_tools.bin("coredns"),
                "/coredns".into(),
                "ENTRYPOINT [\"/coredns\"]",
            ),
            "pause" => (
                "scratch",
                build_pause(&k8s.pins.kubernetes, &ctx)?,
                "/pause".into(),
                "ENTRYPOINT [\"/pause\"]",
            ),
            other => {
                return Err(Error::Step {
                    step: "build the control plane's images".into(),
                    detail: format!(
                        "kubeadm wants {tag} and burstcert knows no source for {other}"
                    ),
                });
            }
        };
        if !binary.starts_with(&ctx.0) {
            ctx.copy(&binary, name)?;
        }
        let dockerfile = format!(
            "FROM {from}\nCOPY {name} {dest}\nENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n{extra}\n"
        );
        ctx.write(&format!("Dockerfile.{name}"), dockerfile.as_bytes(), false)?;
        run(
            &format!("build the image {tag}"),
            "docker",
            &[
                "build",
                "-q",
                "-f",
                &format!("{}/Dockerfile.{name}", ctx.path()),
                "-t",
                tag,
                ctx.path(),
            ],
        )?;
        tags.push(tag.to_owned());
    }
    step.finish(&format!("{} control plane images built", tags.len()));
    Ok(tags)
}

/// pause from its C source inside the pinned Kubernetes module, as a static binary.
fn build_pause(kubernetes: &str, ctx: &Scratch) -> Result<PathBuf> {
    let json = run(
        "find the Kubernetes module's source (for pause.c)",
        "go",
        &[
            "mod",
            "download",
            "-json",
            &format!("k8s.io/kubernetes@{kubernetes}"),
        ],
    )?;
    let dir: serde_json::Value = serde_json::from_str(&json).map_err(|e| Error::Step {
        step: "find the Kubernetes module's source (for pause.c)".into(),
        detail: format!("`go mod download -json` printed no JSON: {e}"),
    })?;
    let source =
        Path::new(dir["Dir"].as_str().unwrap_or_default()).join("build/pause/linux/pause.c");
    let out = ctx.0.join("pause");
    run(
        "compile pause (needs a C compiler: Debian's gcc)",
        "cc",
        &[
            "-Os",
            "-Wall",
            "-static",
            "-DVERSION=burstcert",
            "-o",
            out.to_str().unwrap_or_default(),
            source.to_str().unwrap_or_default(),
        ],
    )?;
    Ok(out)
}

/// What `kind build node-image` would do, without a registry: the base with the node binaries,
/// `/kind/version` and every image imported into its containerd, committed.
fn assemble_node(
    base: &str,
    node: &str,
    k8s: &Tools,
    kind_tools: &Tools,
    images: &[String],
) -> Result<()> {
    let builder = format!("{PREFIX}node-build-{}", std::process::id());
    let _ = Command::new("docker").args(["rm", "-f", &builder]).output();
    // NB: no `-v /var` (kind's runtime flag), or the imported images would not be committed.
    run(
        "start the node image builder",
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &builder,
            "--label",
            &format!("{LABEL}=node-image-build"),
            "--privileged",
            // An init that reaps: containerd, once stopped, must not linger as a zombie.
            "--init",
            "--entrypoint",
            "sleep",
            base,
            "infinity",
        ],
    )?;
    let result = (|| {
        for (binary, from) in [
            ("kubelet", kind_tools),
            ("kubeadm", kind_tools),
            ("kubectl", k8s),
        ] {
            run(
                &format!("copy {binary} into the node image"),
                "docker",
                &[
                    "cp",
                    from.bin(binary).to_str().unwrap_or_default(),
                    &format!("{builder}:/usr/bin/{binary}"),
                ],
            )?;
        }
        // containerd's sandbox image is the pause kubeadm names for this minor (3.9 for 1.30,
        // 3.10.2 for 1.36): the one imported below; any other would be pulled, and fail.
        let pause = images
            .iter()
            .find(|tag| tag.contains("/pause:"))
            .map_or("registry.k8s.io/pause:3.10.2", String::as_str);
        run(
            "start containerd in the node image builder",
            "docker",
            &[
                "exec",
                &builder,
                "sh",
                "-c",
                &format!(
                    "sed -i 's#^  sandbox_image = .*#  sandbox_image = \"{pause}\"#' /etc/containerd/config.toml && \
                     echo {} > /kind/version && (containerd >/tmp/containerd.log 2>&1 &) && \
                     for i in $(seq 100); do ctr version >/dev/null 2>&1 && exit 0; sleep 0.1; done; \
                     cat /tmp/containerd.log; exit 1",
                    k8s.pins.kubernetes
                ),
            ],
        )?;
        for image in images {
            run(
                &format!("import {image} into the node's containerd"),
                "sh",
                &[
                    "-c",
                    "docker save \"$1\" | docker exec -i \"$2\" ctr -n k8s.io images import \
                     --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null",
                    "import",
                    image,
                    &builder,
                ],
            )?;
        }
        run(
            "stop containerd in the node image builder",
            "docker",
            &[
                "exec",
                &builder,
                "sh",
                "-c",
                "pkill containerd; for i in $(seq 300); do pgrep -x containerd >/dev/null || \
                 { rm -f /tmp/containerd.log; exit 0; }; sleep 0.1; done; echo containerd did not stop; exit 1",
            ],
        )?;
        run(
            "commit the node image",
            "docker",
            &[
                "commit",
                "--change",
                "ENTRYPOINT [ \"/usr/local/bin/entrypoint\", \"/sbin/init\" ]",
                "--change",
                "CMD []",
                &builder,
                node,
            ],
        )?;
        Ok(())
    })();
    let _ = Command::new("docker").args(["rm", "-f", &builder]).output();
    result
}

/// Builds a `FROM scratch` image of one binary (with the loader and libraries it needs) under
/// each of `tags`, with `env` in the image's environment.
pub fn binary_image(binary: &Path, tags: &[String], env: &[(&str, &str)]) -> Result<()> {
    let ctx = Scratch::new("binary")?;
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("binary");
    ctx.copy(binary, name)?;
    // A dynamic executable brings the loader and libraries it was linked against (this host's
    // glibc: the same build the local cluster runs, so no second, static build is needed).
    let libraries = shared_libraries(binary)?;
    for library in &libraries {
        let inside = library.strip_prefix("/").unwrap_or(library);
        ctx.copy(library, &format!("rootfs/{}", inside.display()))?;
    }
    let rootfs = if libraries.is_empty() {
        ""
    } else {
        "COPY rootfs/ /\n"
    };
    let env: String = env
        .iter()
        .map(|(key, value)| format!("ENV {key}={}\n", serde_json::Value::from(*value)))
        .collect();
    ctx.write(
        "Dockerfile",
        format!("FROM scratch\n{rootfs}COPY {name} /{name}\n{env}ENTRYPOINT [\"/{name}\"]\n")
            .as_bytes(),
        false,
    )?;
    let mut args = vec!["build", "-q"];
    for tag in tags {
        args.extend(["-t", tag.as_str()]);
    }
    args.push(ctx.path());
    run(&format!("build the image of {name}"), "docker", &args)?;
    Ok(())
}

/// The loader and shared libraries the executable `binary` needs, as `ldd` lists them (none
/// for a static executable).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let step = format!("list the libraries of {}", binary.display());
    let out = Command::new("ldd")
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Step {
            step: step.clone(),
            detail: format!("cannot run `ldd`: {e}"),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && !text.contains("not a dynamic executable") {
        return Err(Error::Step {
            step,
            detail: format!("`ldd` exited with {}:\n{}", out.status, tail(&text, 10)),
        });
    }
    parse_ldd(&text).map_err(|detail| Error::Step { step, detail })
}

/// The library paths of `ldd`'s output: `name => /path (0x…)` and `/path (0x…)` (the loader);
/// the vDSO has no file. A library `ldd` cannot find is an error naming it.
fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut paths = Vec::new();
    for line in text.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((name, target)) => {
                let target = target.trim();
                if target.starts_with("not found") {
                    return Err(format!("`ldd` cannot find {}", name.trim()));
                }
                target
            }
            None => line,
        };
        if let Some(path) = target
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            paths.push(PathBuf::from(path));
        }
    }
    Ok(paths)
}

/// Images the scenarios' workloads name that run on ordinary nodes (on the local cluster those
/// are kwok nodes, which run any image). No registry is reachable here, so on kind they are
/// stand-ins: the pause image under their names (a container that runs until stopped is all a
/// scenario asks of them). Only tags with an `IfNotPresent` default: `:latest` is always pulled.
pub const STAND_INS: [&str; 1] = ["nginx:alpine"];

/// Tags the pause image (left in Docker by [`ensure_node_image`]) as each of [`STAND_INS`].
pub fn stand_in_images() -> Result<Vec<String>> {
    let pause = run(
        "find the pause image",
        "docker",
        &[
            "images",
            "registry.k8s.io/pause",
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
    )?;
    let Some(pause) = pause.lines().next().filter(|l| !l.is_empty()) else {
        return Err(Error::Step {
            step: "make the stand-in workload images".into(),
            detail:
                "no registry.k8s.io/pause image in Docker (remove the burstcert/kind-node image \
                     to rebuild it with its parts)"
                    .into(),
        });
    };
    for stand_in in STAND_INS {
        run(
            &format!("tag {pause} as {stand_in}"),
            "docker",
            &["tag", pause, stand_in],
        )?;
    }
    Ok(STAND_INS.iter().map(|s| (*s).to_owned()).collect())
}

/// A kind cluster the harness made; deleted when dropped or when the harness ends.
#[derive(Debug)]
pub struct KindCluster {
    name: String,
    kubeconfig: PathBuf,
    kind: PathBuf,
    nodes: Vec<KindNode>,
    cleanup: Option<OnExit>,
}

impl KindCluster {
    /// `kind create cluster` from `node_image` (a control plane and a worker), then each node's
    /// network (its CNI config from its pod CIDR, routes to the other nodes' pods), waiting
    /// until every node is Ready, then the worker reserved for the add-on
    /// ([`reserve_host_node`]).
    pub fn create(
        tools: &Tools,
        k8s: &Tools,
        name: &str,
        node_image: &str,
        progress: &Progress,
    ) -> Result<Self> {
        let kind = tools.bin("kind");
        let dir = cache_root()?.join("kind").join(name);
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        let config = dir.join("cluster.yaml");
        std::fs::write(&config, CLUSTER_CONFIG)
            .io_context(|| format!("write {}", config.display()))?;
        // Armed before anything exists, so even a crash during creation removes the cluster.
        let cleanup = OnExit::arm(
            &kind,
            &[
                "delete".into(),
                "cluster".into(),
                "--name".into(),
                name.into(),
            ],
            &[],
            &dir.join("cleanup.log"),
        )?;
        let step = progress.spinner(&format!("kind create cluster {name} (about 20 s)"));
        let kind_str = kind.to_str().unwrap_or("kind");
        run(
            &format!("create the kind cluster {name}"),
            kind_str,
            &[
                "create",
                "cluster",
                "--name",
                name,
                "--image",
                node_image,
                "--config",
                config.to_str().unwrap_or_default(),
                "--kubeconfig",
                kubeconfig.to_str().unwrap_or_default(),
            ],
        )?;
        step.finish(&format!("kind cluster {name} created"));
        let step = progress.spinner("configure the nodes' pod network");
        let nodes = configure_network(k8s, &kubeconfig)?;
        step.finish(&format!("kind cluster {name} Ready"));
        let step = progress.spinner("reserve the worker for the add-on (the host node)");
        reserve_host_node(k8s, &kubeconfig)?;
        step.finish("the worker is the host node");
        Ok(Self {
            nodes,
            name: name.into(),
            kubeconfig,
            kind,
            cleanup: Some(cleanup),
        })
    }

    /// Its nodes: the control plane first, then the worker.
    pub fn nodes(&self) -> &[KindNode] {
        &self.nodes
    }

    /// The control plane's node (its container's name).
    pub fn control_plane(&self) -> &str {
        self.nodes_with_role("control-plane")
    }

    /// The worker: the host node, where the add-on's pods run.
    pub fn worker(&self) -> &str {
        self.nodes_with_role("worker")
    }

    /// The name kind gives the node of `role` (`{cluster}-{role}` for a cluster of one of each).
    fn nodes_with_role(&self, role: &str) -> &str {
        let want = format!("{}-{role}", self.name);
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .find(|n| *n == want)
            .unwrap_or_default()
    }

    /// Starts kwok's controller in the cluster ([`kwok`]): its image must be loaded; waits
    /// until its Deployment is available.
    pub fn start_kwok(&self, k8s: &Tools) -> Result<()> {
        let manifests = kwok::manifests(k8s)?;
        let file = cache_root()?
            .join("kind")
            .join(&self.name)
            .join("kwok-controller.yaml");
        std::fs::write(&file, manifests).io_context(|| format!("write {}", file.display()))?;
        kubectl(
            k8s,
            &self.kubeconfig,
            "apply kwok's controller",
            &["apply", "-f", file.to_str().unwrap_or_default()],
        )?;
        kubectl(
            k8s,
            &self.kubeconfig,
            "wait for kwok's controller to be available",
            &[
                "rollout",
                "status",
                "-n",
                "kube-system",
                &format!("deployment/{}", kwok::NAME),
                "--timeout=120s",
            ],
        )?;
        Ok(())
    }

    /// Puts a local image on every node (`kind load docker-image`).
    pub fn load(&self, images: &[String]) -> Result<()> {
        let mut args = vec!["load", "docker-image", "--name", self.name.as_str()];
        args.extend(images.iter().map(String::as_str));
        run(
            &format!("load {} into the kind cluster", images.join(", ")),
            self.kind.to_str().unwrap_or("kind"),
            &args,
        )?;
        Ok(())
    }
}

impl ClusterProvider for KindCluster {
    fn kind(&self) -> &'static str {
        "kind"
    }

    /// Its name (kind's, also the node containers' prefix).
    fn name(&self) -> &str {
        &self.name
    }

    fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `kind export logs`: every node's journal, the control plane's and the pods' logs.
    fn export_logs(&self, dir: &Path) -> Result<()> {
        run(
            &format!("export the logs of the kind cluster {}", self.name),
            self.kind.to_str().unwrap_or("kind"),
            &[
                "export",
                "logs",
                dir.to_str().unwrap_or_default(),
                "--name",
                &self.name,
            ],
        )?;
        Ok(())
    }

    /// Deletes the cluster now (`kind delete cluster`) and, once it is gone, its folder (the
    /// kubeconfig; a failed delete leaves the folder and its `cleanup.log`); later calls do
    /// nothing.
    fn destroy(&mut self) -> Result<()> {
        if let Some(cleanup) = self.cleanup.take()
            && cleanup.run_now()?.success()
            && let Some(dir) = self.kubeconfig.parent()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }
}

/// One node of a kind cluster, as its network knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindNode {
    /// Its name (also its container's).
    pub name: String,
    /// The pod CIDR the controller manager gave it.
    pub pod_cidr: String,
    /// Its address on kind's Docker network.
    pub ip: String,
}

/// Each node's network facts.
fn node_networks(k8s: &Tools, kubeconfig: &Path) -> Result<Vec<KindNode>> {
    let out = run(
        "read the kind nodes' pod CIDRs",
        k8s.bin("kubectl").to_str().unwrap_or("kubectl"),
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap_or_default(),
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.podCIDR} \
             {.status.addresses[?(@.type==\"InternalIP\")].address}{\"\\n\"}{end}",
        ],
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some(KindNode {
                name: w.next()?.to_owned(),
                pod_cidr: w.next()?.to_owned(),
                ip: w.next()?.to_owned(),
            })
        })
        .collect())
}

/// Writes each node's CNI config from its pod CIDR and routes every other node's pod CIDR
/// through that node (all nodes share kind's Docker network), then waits until all are Ready;
/// answers the nodes. Until then no pod has an address, so none gets a wrong one. Routes do not
/// survive a node container's restart.
fn configure_network(k8s: &Tools, kubeconfig: &Path) -> Result<Vec<KindNode>> {
    let want = NODES_IN_CONFIG;
    let nodes = crate::wait::until_blocking(
        &format!("the controller manager to give the {want} kind nodes their pod CIDRs"),
        std::time::Duration::from_secs(90),
        || {
            node_networks(k8s, kubeconfig)
                .ok()
                .filter(|n| n.len() == want)
        },
        || format!("{:?}", node_networks(k8s, kubeconfig)),
    )?;
    for node in &nodes {
        let (name, cidr) = (&node.name, &node.pod_cidr);
        let mut script = format!(
            "sed 's#POD_SUBNET#{cidr}#' /{CNI_TEMPLATE} > /etc/cni/net.d/10-burstcert.conflist"
        );
        for other in &nodes {
            if other.name != *name {
                script.push_str(&format!(
                    " && ip route replace {} via {}",
                    other.pod_cidr, other.ip
                ));
            }
        }
        run(
            &format!("configure the pod network of the kind node {name}"),
            "docker",
            &["exec", name, "sh", "-c", &script],
        )?;
    }
    kubectl(
        k8s,
        kubeconfig,
        "wait for the kind nodes to be Ready",
        &[
            "wait",
            "--for=condition=Ready",
            "nodes",
            "--all",
            "--timeout=180s",
        ],
    )?;
    Ok(nodes)
}

/// Runs `kubectl --kubeconfig KUBECONFIG args…` as step `step`.
fn kubectl(k8s: &Tools, kubeconfig: &Path, step: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap_or_default()];
    all.extend(args);
    run(step, k8s.bin("kubectl").to_str().unwrap_or("kubectl"), &all)
}

/// The taint and label key that reserve the host node ([`vk_hostnode::HOST_NODE_LABEL`]), as
/// `tools/kind/cluster.yaml` puts them on the worker.
pub const HOST_NODE_LABEL: &str = vk_hostnode::HOST_NODE_LABEL;

/// Makes the worker the host node, as the local cluster's: every pod created in `kube-system`
/// (the add-on's, its gc jobs', kwok's controller) tolerates the worker's taint and selects the
/// label the control plane and the worker carry (the PodTolerationRestriction and
/// PodNodeSelector admission plugins `tools/kind/cluster.yaml` turns on), so the add-on keeps
/// its production rendering and lands on the worker; scenario workloads tolerate no such taint
/// and go to kwok nodes. kube-proxy is kept to the real nodes: on kwok nodes it would only be
/// pretended, and a pod slot it took there would skew the room scenarios choose.
fn reserve_host_node(k8s: &Tools, kubeconfig: &Path) -> Result<()> {
    use crate::addon::lifecycle::{DEFAULT_TOLERATIONS_ANNOTATION, NODE_SELECTOR_ANNOTATION};
    let selector = format!("{NODE_SELECTOR_ANNOTATION}={HOST_NODE_LABEL}=true");
    let tolerations = format!(
        "{DEFAULT_TOLERATIONS_ANNOTATION}=[{{\"key\":\"{HOST_NODE_LABEL}\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}}]"
    );
    kubectl(
        k8s,
        kubeconfig,
        "annotate kube-system with the host node's placement",
        &[
            "annotate",
            "--overwrite",
            "namespace",
            "kube-system",
            &selector,
            &tolerations,
        ],
    )?;
    // OnDelete: the running kube-proxy pods (on the real nodes already) stay; the affinity
    // applies to the pods of nodes added later.
    let patch = serde_json::json!({"spec": {
        "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
        "template": {"spec": {"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
                "matchExpressions": [
                    {"key": HOST_NODE_LABEL, "operator": "In", "values": ["true"]},
                    {"key": crate::cluster::nodes::KWOK_NODE_LABEL.0, "operator": "NotIn",
                     "values": [crate::cluster::nodes::KWOK_NODE_LABEL.1]},
                ],
            }]},
        }}}},
    }});
    kubectl(
        k8s,
        kubeconfig,
        "keep kube-proxy to the kind cluster's real nodes",
        &[
            "patch",
            "daemonset",
            "kube-proxy",
            "-n",
            "kube-system",
            "--type",
            "merge",
            "-p",
            &patch.to_string(),
        ],
    )?;
    Ok(())
}

/// How many nodes `tools/kind/cluster.yaml` makes.
const NODES_IN_CONFIG: usize = 2;

/// A container on kind's network, removed when dropped or when the harness ends.
#[derive(Debug)]
pub struct Container {
    name: String,
    cluster: String,
    cleanup: std::sync::Mutex<Option<OnExit>>,
}

impl Container {
    /// `docker run -d` of `image` with `args`, named `name`, labelled for `cluster`, on kind's
    /// network, with `port` published on loopback; `mounts` are (host file, container path)
    /// read-only binds.
    pub fn run(
        name: &str,
        cluster: &str,
        image: &str,
        port: u16,
        mounts: &[(&Path, &str)],
        args: &[&str],
        log_dir: &Path,
    ) -> Result<Self> {
        let cleanup = OnExit::arm(
            Path::new("docker"),
            &["rm".into(), "-f".into(), name.into()],
            &[],
            &log_dir.join(format!("{name}-cleanup.log")),
        )?;
        let label = format!("{LABEL}={cluster}");
        let publish = format!("127.0.0.1::{port}");
        let binds: Vec<String> = mounts
            .iter()
            .map(|(host, inside)| format!("{}:{inside}:ro", host.display()))
            .collect();
        let mut all = vec![
            "run",
            "-d",
            "--name",
            name,
            "--label",
            &label,
            "--network",
            NETWORK,
            "-p",
            &publish,
        ];
        for bind in &binds {
            all.extend(["-v", bind.as_str()]);
        }
        all.push(image);
        all.extend(args);
        run(&format!("start the container {name}"), "docker", &all)?;
        Ok(Self {
            name: name.into(),
            cluster: cluster.into(),
            cleanup: std::sync::Mutex::new(Some(cleanup)),
        })
    }

    /// Routes each node's pod CIDR through that node in the container's network namespace, so
    /// it reaches the cluster's pods as the nodes do (and they answer it: a pod's reply to an
    /// address on kind's network leaves through its node). `helper` is an image with `ip`
    /// (the node image), run for a moment in the container's namespace with `NET_ADMIN`.
    pub fn route_to_pods(&self, helper: &str, nodes: &[KindNode]) -> Result<()> {
        let script: Vec<String> = nodes
            .iter()
            .map(|n| format!("ip route replace {} via {}", n.pod_cidr, n.ip))
            .collect();
        let network = format!("container:{}", self.name);
        let label = format!("{LABEL}={}", self.cluster);
        run(
            &format!("route {}'s traffic to the cluster's pods", self.name),
            "docker",
            &[
                "run",
                "--rm",
                "--label",
                &label,
                "--network",
                &network,
                "--cap-add",
                "NET_ADMIN",
                "--entrypoint",
                "sh",
                helper,
                "-c",
                &script.join(" && "),
            ],
        )?;
        Ok(())
    }

    /// Removes the container now.
    pub fn remove(&self) -> Result<()> {
        let cleanup = self.cleanup.lock().ok().and_then(|mut c| c.take());
        if let Some(cleanup) = cleanup {
            cleanup.run_now()?;
        }
        Ok(())
    }

    /// Its name, which containers and pods on kind's network resolve.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The loopback address its `port` is published at, e.g. `127.0.0.1:32768`.
    pub fn published(&self, port: u16) -> Result<String> {
        let out = run(
            &format!("read the published port of {}", self.name),
            "docker",
            &["port", &self.name, &format!("{port}/tcp")],
        )?;
        out.lines()
            .map(str::trim)
            .find(|l| l.starts_with("127.0.0.1:"))
            .map(str::to_owned)
            .ok_or_else(|| Error::Step {
                step: format!("read the published port of {}", self.name),
                detail: format!("`docker port` printed {out:?}"),
            })
    }

    /// Its log (stdout and stderr), for diagnoses.
    pub fn logs(&self, lines: usize) -> String {
        Command::new("docker")
            .args(["logs", "--tail", &lines.to_string(), &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }
}

/// The kind clusters the harness made that still exist (`burstcert-*`).
pub fn list(tools: &Tools) -> Result<Vec<String>> {
    let out = run(
        "list kind clusters",
        tools.bin("kind").to_str().unwrap_or("kind"),
        &["get", "clusters"],
    )?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_owned)
        .collect())
}

/// Deletes every kind cluster and container the harness made that no running burstcert owns (a
/// killed run's leftovers): a cluster or container a live clean-up guard of this machine is
/// armed for ([`guarded_names`]) belongs to a run still going, perhaps another person's, and is
/// kept. Names outside burstcert's (`burstcert-*` clusters, containers labelled [`LABEL`]) are
/// never touched.
pub fn delete_all(tools: &Tools, out: &mut impl std::io::Write) -> Result<usize> {
    let owned = guarded_names();
    let clusters = list(tools)?;
    let mut deleted = 0;
    for name in &clusters {
        if owned.contains(name) {
            let _ = writeln!(
                out,
                "kept kind cluster {name}: a running burstcert owns it (its clean-up is armed)"
            );
            continue;
        }
        run(
            &format!("delete the kind cluster {name}"),
            tools.bin("kind").to_str().unwrap_or("kind"),
            &["delete", "cluster", "--name", name],
        )?;
        let _ = writeln!(out, "deleted kind cluster {name}");
        deleted += 1;
    }
    // A kind node names its cluster in kind's label; it also carries ours, inherited from the
    // node image's build (value `node-image-build`), so kind's label decides whose it is.
    let containers = run(
        "list burstcert's containers",
        "docker",
        &[
            "ps",
            "-a",
            "--filter",
            &format!("label={LABEL}"),
            "--format",
            &format!(
                "{{{{.ID}}}} {{{{.Names}}}} {{{{.Label \"{LABEL}\"}}}} {{{{.Label \"{KIND_LABEL}\"}}}}"
            ),
        ],
    )?;
    for line in containers.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [id, name, ours, rest @ ..] = words.as_slice() else {
            continue;
        };
        let cluster = rest.first().copied().unwrap_or(ours);
        if owned.contains(*name) || owned.contains(cluster) || building(name) {
            let _ = writeln!(
                out,
                "kept container {name}: a running burstcert owns it (its clean-up is armed)"
            );
            continue;
        }
        run("remove a container", "docker", &["rm", "-f", id])?;
        let _ = writeln!(out, "removed container {name}");
    }
    // The folders (kubeconfig, clean-up log) of clusters that are gone, except a running
    // burstcert's: its folder is made before `kind create` lists the cluster.
    let alive = list(tools)?;
    if let Ok(entries) = std::fs::read_dir(cache_root()?.join("kind")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(PREFIX) && !alive.contains(&name) && !owned.contains(&name) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(deleted)
}

/// kind's label on a node container: the cluster it belongs to.
const KIND_LABEL: &str = "io.x-k8s.kind.cluster";

/// Whether `name` is the node image's builder of a burstcert still running
/// (`burstcert-node-build-{pid}`, see [`ensure_node_image`]).
fn building(name: &str) -> bool {
    name.strip_prefix(&format!("{PREFIX}node-build-"))
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
}

/// What the clean-up guards of running burstcert processes on this machine are armed to remove
/// (the last word of each guard's command: a kind cluster's or a container's name). A guard
/// runs its command when its burstcert ends, so what it names is still in use.
pub fn guarded_names() -> std::collections::BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Default::default();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            std::fs::read(format!("/proc/{pid}/cmdline")).ok()
        })
        .filter_map(|cmdline| guarded_name(&cmdline))
        .collect()
}

/// The name a guard's command line (`sh -c … burstcert-cleanup PROGRAM ARGS…`, NUL-separated)
/// is armed to remove: its last word, for the commands the kind target arms (`kind delete
/// cluster --name NAME`, `docker rm -f NAME`).
fn guarded_name(cmdline: &[u8]) -> Option<String> {
    let words: Vec<&[u8]> = cmdline
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .collect();
    let at = words.iter().position(|w| *w == b"burstcert-cleanup")?;
    let command: Vec<String> = words[at + 1..]
        .iter()
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    let program = Path::new(command.first()?).file_name()?.to_str()?;
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    match (program, args.as_slice()) {
        ("kind", ["delete", "cluster", "--name", name]) | ("docker", ["rm", "-f", name]) => {
            Some((*name).to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jobs users copy run the script CI runs, and upload the folder it writes: a change to
    /// the script reaches them, and CI (which runs it) would fail first.
    #[test]
    fn the_ci_examples_run_the_script_ci_runs_and_keep_its_report() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |path: &str| {
            std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let script = read("ci/kind-certify.sh");
        assert!(script.contains("certify --cluster kind --report \"$report\" \"$@\""));
        assert!(script.contains("report=${BURSTCERT_REPORT:-burstcert-report}"));
        assert!(script.contains("exit \"$rc\""));
        assert!(read(".ci/run").contains("ci/kind-certify.sh\n"));
        for example in ["docs/ci/github-actions.yml", "docs/ci/gitlab-ci.yml"] {
            let text = read(example);
            assert!(text.contains("ci/kind-certify.sh --release"), "{example}");
            assert!(
                text.contains("BURSTCERT_REPORT: burstcert-report"),
                "{example}"
            );
            assert!(
                text.contains("- burstcert-report/") || text.contains("path: burstcert-report/"),
                "{example}"
            );
            assert!(text.contains("timeout") && text.contains("90"), "{example}");
        }
    }

    #[test]
    fn a_clean_up_guard_names_the_cluster_or_container_it_is_armed_for() {
        let guard = |words: &[&str]| {
            let mut line = words.join("\0").into_bytes();
            line.push(0);
            guarded_name(&line)
        };
        let script = "\ntrap '' INT\ncat >/dev/null\nexec \"$@\"\n";
        assert_eq!(
            guard(&[
                "sh",
                "-c",
                script,
                "burstcert-cleanup",
                "/c/kind",
                "delete",
                "cluster",
                "--name",
                "burstcert-1a2b3c"
            ]),
            Some("burstcert-1a2b3c".into())
        );
        assert_eq!(
            guard(&[
                "sh",
                "-c",
                script,
                "burstcert-cleanup",
                "docker",
                "rm",
                "-f",
                "burstcert-1a2b3c-mock-cci"
            ]),
            Some("burstcert-1a2b3c-mock-cci".into())
        );
        // Another guard (a local cluster's), or not a guard at all.
        assert_eq!(
            guard(&[
                "sh",
                "-c",
                script,
                "burstcert-cleanup",
                "/c/kwokctl",
                "delete",
                "cluster",
                "--name",
                "burstcert-1a2b3c"
            ]),
            None
        );
        assert_eq!(
            guard(&["kind", "delete", "cluster", "--name", "burstcert-1a2b3c"]),
            None
        );
    }

    #[test]
    fn ldd_output_gives_the_loader_and_the_libraries_but_not_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f1b)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1a)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f1c)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            parse_ldd("\tstatically linked\n").unwrap(),
            Vec::<PathBuf>::new()
        );
        let missing = parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err();
        assert!(missing.contains("libfoo.so.1"), "{missing}");
    }

    #[test]
    fn the_cluster_config_keeps_what_this_vm_needs() {
        // Without these three the cluster does not come up here (KIND.md).
        assert!(CLUSTER_CONFIG.contains("disableDefaultCNI: true"));
        assert!(CLUSTER_CONFIG.contains("failCgroupV1: false"));
        assert!(CLUSTER_CONFIG.contains("restrict_oom_score_adj = true"));
        assert_eq!(
            CLUSTER_CONFIG.matches("- role: ").count(),
            NODES_IN_CONFIG,
            "the network step waits for this many nodes"
        );
    }

    #[test]
    fn the_node_image_key_changes_with_any_input() {
        assert_ne!(key_of(&[b"a", b"bc"]), key_of(&[b"ab", b"c"]));
        assert_eq!(key_of(&[b"a"]), key_of(&[b"a"]));
        assert_eq!(key_of(&[b"a"]).len(), 12);
    }

    #[test]
    fn the_base_dockerfile_starts_from_the_rootfs_it_is_rewritten_to() {
        assert!(BASE_DOCKERFILE.contains("FROM burstcert/kind-rootfs:trixie\n"));
    }

    #[test]
    fn every_node_file_is_embedded() {
        for (path, content, _) in &NODE_FILES {
            assert!(!content.trim().is_empty(), "{path} is empty");
        }
    }
}
