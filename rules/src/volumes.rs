//! The volume matrix (`BEHAVIOR.md` §5): which volumes a pod may take to CCI, per release.
//!
//! | volume | on CCI |
//! |---|---|
//! | configMap, secret | yes |
//! | emptyDir | yes: no `subPath`/`subPathExpr` on its mounts; a `sizeLimit` must be a whole multiple of 1Gi and at most 10 × the pod's CPU cores (in Gi) |
//! | downwardAPI | `>= 1.3.25` |
//! | projected | `>= 1.3.25`; sources configMap, secret, downwardAPI, serviceAccountToken |
//! | persistentVolumeClaim | only through a StorageClass whose provisioner is `nas.csi.everest.io` (SFS) or `sfsturbo.csi.everest.io` (SFS Turbo) |
//! | hostPath | no; `/etc/localtime` from `>= 1.5.9` |
//! | flexVolume, and every other type | no |
//!
//! Readings of the rules where the documents leave room:
//!
//! - **"the pod's CPU cores"** for the emptyDir limit is the vCPU of the pod's CCI flavour (what
//!   the pod runs as, after rounding), counted in whole cores rounding up: a 0.25 or 0.5 vCPU
//!   pod has 1 core and may have an emptyDir of up to 10Gi. The seed's own example needs this
//!   reading: a 250m pod whose hostPath is replaced by a 10Gi emptyDir, which "must burst and
//!   run" (HP-01); 10 × 0.25 would allow only 2.5Gi. Without a flavour (the pod could not be
//!   sized) the limit is not checked here; sizing reports that problem itself.
//! - A `sizeLimit` of zero is refused like a fractional one (not a positive whole Gi).
//! - A volume with no source at all is an emptyDir, as Kubernetes defaults it.
//! - A projected volume's `clusterTrustBundle` and `podCertificate` sources have no CCI
//!   counterpart and are refused. \[design\]
//! - The projected volume that Kubernetes' ServiceAccount admission injects into every pod
//!   (`kube-api-access-*`: a serviceAccountToken, the `kube-root-ca.crt` ConfigMap and the
//!   namespace from the downward API) is not the user's: before 1.3.25 the engine leaves it
//!   out of the CCI pod rather than refusing every pod. \[design\] A projected volume the user
//!   wrote is gated as §5 says.
//! - A PersistentVolumeClaim that does not exist yet, or has no storage class, or whose class
//!   is unknown, cannot be shown to be SFS and is refused like any other class. A local
//!   PersistentVolume is reached through such a claim (its class has the non-CSI provisioner
//!   `kubernetes.io/no-provisioner`), so "local" is refused by the provisioner rule.

use std::fmt;

use k8s_openapi::api::core::v1::{Container, PodSpec, ProjectedVolumeSource, Volume, VolumeMount};

use crate::decide::ClusterFacts;
use crate::flavour::Flavour;
use crate::hostpath::{ANNOTATION as HOSTPATH_ANNOTATION, is_etc_localtime};
use crate::quantity::{GIB, Quantity, format_memory};
use crate::release::{Gate, Release};

/// The CSI provisioner of SFS StorageClasses (the cluster's Everest CSI driver).
pub const PROVISIONER_SFS: &str = "nas.csi.everest.io";
/// The CSI provisioner of SFS Turbo StorageClasses.
pub const PROVISIONER_SFS_TURBO: &str = "sfsturbo.csi.everest.io";
/// The emptyDir sizeLimit may be at most this many GiB per whole CPU core.
pub const EMPTY_DIR_GIB_PER_CORE: u64 = 10;

/// Which rule of the matrix a volume breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Rule {
    /// hostPath volumes are not supported on CCI.
    HostPath,
    /// A hostPath of `/etc/localtime` needs [`Gate::EtcLocaltimeHostPath`].
    EtcLocaltime,
    /// An emptyDir is mounted with `subPath` or `subPathExpr`.
    EmptyDirSubPath,
    /// An emptyDir sizeLimit is not a positive whole multiple of 1Gi.
    EmptyDirSizeLimitNotWholeGi,
    /// An emptyDir sizeLimit is more than 10 × the pod's CPU cores (Gi).
    EmptyDirSizeLimitTooLarge,
    /// A downwardAPI volume needs [`Gate::DownwardApiAndProjected`].
    DownwardApi,
    /// A projected volume needs [`Gate::DownwardApiAndProjected`].
    Projected,
    /// A projected volume has a source CCI cannot provide.
    ProjectedSource,
    /// A persistentVolumeClaim the cluster facts do not know.
    ClaimNotFound,
    /// A persistentVolumeClaim with no storage class.
    ClaimWithoutStorageClass,
    /// A persistentVolumeClaim whose StorageClass the cluster facts do not know.
    StorageClassNotFound,
    /// A persistentVolumeClaim whose StorageClass is not SFS or SFS Turbo through CSI.
    StorageNotSupported,
    /// flexVolume volumes are not supported on CCI.
    FlexVolume,
    /// Any other volume type.
    UnsupportedType,
}

/// One volume that cannot go to CCI, with a message for the person who wrote the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The volume's name.
    pub volume: String,
    /// The rule it breaks.
    pub rule: Rule,
    /// The release gate that would allow it, if one would.
    pub gate: Option<Gate>,
    /// `volume "x": <rule>; <what to do>`.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The volume's type as its field is spelled in the pod spec: `hostPath`, `emptyDir`, …
pub fn kind_of(volume: &Volume) -> &'static str {
    let v = volume;
    let kinds: [(bool, &'static str); 31] = [
        (v.host_path.is_some(), "hostPath"),
        (v.empty_dir.is_some(), "emptyDir"),
        (v.config_map.is_some(), "configMap"),
        (v.secret.is_some(), "secret"),
        (v.downward_api.is_some(), "downwardAPI"),
        (v.projected.is_some(), "projected"),
        (v.persistent_volume_claim.is_some(), "persistentVolumeClaim"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.csi.is_some(), "csi"),
        (v.ephemeral.is_some(), "ephemeral"),
        (v.image.is_some(), "image"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.azure_file.is_some(), "azureFile"),
        (v.cephfs.is_some(), "cephfs"),
        (v.cinder.is_some(), "cinder"),
        (v.fc.is_some(), "fc"),
        (v.flocker.is_some(), "flocker"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.rbd.is_some(), "rbd"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (true, "emptyDir"),
    ];
    kinds
        .iter()
        .find(|(set, _)| *set)
        .map(|(_, kind)| *kind)
        .expect("the last entry always matches")
}

/// Whether `volume` is the token volume Kubernetes' ServiceAccount admission injects.
pub fn is_injected_token_volume(volume: &Volume) -> bool {
    let Some(projected) = &volume.projected else {
        return false;
    };
    let sources = projected.sources.as_deref().unwrap_or_default();
    volume.name.starts_with("kube-api-access-")
        && sources.iter().any(|s| s.service_account_token.is_some())
        && sources.iter().all(|s| {
            s.service_account_token.is_some()
                || s.downward_api.is_some()
                || s.config_map
                    .as_ref()
                    .is_some_and(|c| c.name == "kube-root-ca.crt")
        })
}

/// The names of the volumes that are cloud storage: persistentVolumeClaim, ephemeral and
/// inline csi volumes (what Volcano `<= 1.17.10` cannot place on CCI).
pub fn cloud_storage_volumes(spec: &PodSpec) -> Vec<&str> {
    spec.volumes
        .iter()
        .flatten()
        .filter(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some() || v.csi.is_some())
        .map(|v| v.name.as_str())
        .collect()
}

/// Checks every volume of `spec` against the matrix, for a pod of `flavour` (if it could be
/// sized) under `release`. The spec is the one that would go to CCI: apply the hostPath
/// replacement first.
pub fn check(
    spec: &PodSpec,
    release: Release,
    cluster: &ClusterFacts,
    flavour: Option<Flavour>,
) -> Result<(), Vec<Violation>> {
    let mut violations = Vec::new();
    for volume in spec.volumes.iter().flatten() {
        check_volume(spec, volume, release, cluster, flavour, &mut violations);
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

fn check_volume(
    spec: &PodSpec,
    volume: &Volume,
    release: Release,
    cluster: &ClusterFacts,
    flavour: Option<Flavour>,
    out: &mut Vec<Violation>,
) {
    let name = volume.name.as_str();
    let mut refuse = |rule: Rule, gate: Option<Gate>, text: String| {
        out.push(Violation {
            volume: name.to_string(),
            rule,
            gate,
            message: format!("volume {name:?}: {text}"),
        });
    };
    let gated = |gate: Gate, what: &str| {
        format!(
            "{what} on CCI {}; upgrade the add-on, or remove the volume",
            gate.explain(release)
        )
    };
    match kind_of(volume) {
        "configMap" | "secret" => {}
        "emptyDir" => {
            for (container, mount) in mounts_of(spec, name) {
                let sub = mount
                    .sub_path
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|s| format!("subPath {s:?}"))
                    .or_else(|| {
                        mount
                            .sub_path_expr
                            .as_deref()
                            .filter(|s| !s.is_empty())
                            .map(|s| format!("subPathExpr {s:?}"))
                    });
                if let Some(sub) = sub {
                    refuse(
                        Rule::EmptyDirSubPath,
                        None,
                        format!(
                            "emptyDir mounts cannot use subPath on CCI ({container} mounts it at \
                             {} with {sub}); mount the whole volume instead",
                            mount.mount_path
                        ),
                    );
                }
            }
            let limit = volume
                .empty_dir
                .as_ref()
                .and_then(|e| e.size_limit.as_ref());
            if let Some(limit) = limit {
                let text = &limit.0;
                match Quantity::parse(text).ok().and_then(|q| q.whole_gib()) {
                    None | Some(0) => refuse(
                        Rule::EmptyDirSizeLimitNotWholeGi,
                        None,
                        format!(
                            "emptyDir sizeLimit {text} is not a positive whole multiple of 1Gi, \
                             as CCI requires; use e.g. 1Gi or 10Gi"
                        ),
                    ),
                    Some(gib) => {
                        if let Some(f) = flavour {
                            let max = EMPTY_DIR_GIB_PER_CORE * f.whole_cores();
                            if gib > max {
                                refuse(
                                    Rule::EmptyDirSizeLimitTooLarge,
                                    None,
                                    format!(
                                        "emptyDir sizeLimit {} is more than {max}Gi, which is \
                                         {EMPTY_DIR_GIB_PER_CORE} × the pod's {} CPU core(s) \
                                         (flavour {f}, counted in whole cores); lower the \
                                         sizeLimit, or give the pod more cpu",
                                        format_memory(gib * GIB),
                                        f.whole_cores()
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        "downwardAPI" => {
            if !release.allows(Gate::DownwardApiAndProjected) {
                let gate = Gate::DownwardApiAndProjected;
                refuse(
                    Rule::DownwardApi,
                    Some(gate),
                    gated(gate, "a downwardAPI volume"),
                );
            }
        }
        "projected" => {
            let projected = volume.projected.as_ref().expect("kind_of said projected");
            if let Some(source) = unsupported_source(projected) {
                refuse(
                    Rule::ProjectedSource,
                    None,
                    format!(
                        "projected source {source} is not supported on CCI; use configMap, \
                         secret, downwardAPI or serviceAccountToken sources"
                    ),
                );
            }
            if !release.allows(Gate::DownwardApiAndProjected) && !is_injected_token_volume(volume) {
                let gate = Gate::DownwardApiAndProjected;
                refuse(
                    Rule::Projected,
                    Some(gate),
                    gated(gate, "a projected volume"),
                );
            }
        }
        "persistentVolumeClaim" => {
            let claim = &volume
                .persistent_volume_claim
                .as_ref()
                .expect("kind_of said persistentVolumeClaim")
                .claim_name;
            if let Some((rule, text)) = check_claim(claim, cluster) {
                refuse(rule, None, text);
            }
        }
        "hostPath" => {
            let path = &volume
                .host_path
                .as_ref()
                .expect("kind_of said hostPath")
                .path;
            if !is_etc_localtime(path) {
                refuse(
                    Rule::HostPath,
                    None,
                    format!(
                        "hostPath is not supported on CCI; add it to {HOSTPATH_ANNOTATION} \
                         (remove or replaceByEmptyDir)"
                    ),
                );
            } else if !release.allows(Gate::EtcLocaltimeHostPath) {
                let gate = Gate::EtcLocaltimeHostPath;
                refuse(
                    Rule::EtcLocaltime,
                    Some(gate),
                    format!(
                        "hostPath {path} on CCI {}; upgrade the add-on, or name this volume in \
                         {HOSTPATH_ANNOTATION} (remove or replaceByEmptyDir; a \"*\" policy \
                         leaves /etc/localtime alone)",
                        gate.explain(release)
                    ),
                );
            }
        }
        "flexVolume" => refuse(
            Rule::FlexVolume,
            None,
            "flexVolume is not supported on CCI; remove it, or keep the pod off CCI".into(),
        ),
        other => refuse(
            Rule::UnsupportedType,
            None,
            format!(
                "{other} volumes are not supported on CCI (it takes configMap, secret, emptyDir, \
                 downwardAPI, projected, and persistentVolumeClaim of SFS or SFS Turbo); remove \
                 it, or keep the pod off CCI"
            ),
        ),
    }
}

/// Why a claim cannot go to CCI, if it cannot.
fn check_claim(claim: &str, cluster: &ClusterFacts) -> Option<(Rule, String)> {
    let only = format!(
        "CCI takes only SFS ({PROVISIONER_SFS}) or SFS Turbo ({PROVISIONER_SFS_TURBO}) through a \
         CSI StorageClass"
    );
    let class = match cluster.pvc_classes.get(claim) {
        None => {
            return Some((
                Rule::ClaimNotFound,
                format!(
                    "persistentVolumeClaim {claim:?} was not found, so its storage cannot be \
                     checked; create the claim before the pod ({only})"
                ),
            ));
        }
        Some(None) => {
            return Some((
                Rule::ClaimWithoutStorageClass,
                format!(
                    "persistentVolumeClaim {claim:?} has no storageClassName; {only}; use a \
                     claim of such a class"
                ),
            ));
        }
        Some(Some(class)) => class,
    };
    match cluster.storage_classes.get(class) {
        None => Some((
            Rule::StorageClassNotFound,
            format!(
                "persistentVolumeClaim {claim:?} names StorageClass {class:?}, which was not \
                 found; {only}"
            ),
        )),
        Some(p) if p == PROVISIONER_SFS || p == PROVISIONER_SFS_TURBO => None,
        Some(p) => Some((
            Rule::StorageNotSupported,
            format!(
                "persistentVolumeClaim {claim:?} uses StorageClass {class:?} (provisioner {p}); \
                 {only}; use a claim of such a class, or keep the pod off CCI"
            ),
        )),
    }
}

/// The first projected source CCI cannot provide.
fn unsupported_source(projected: &ProjectedVolumeSource) -> Option<&'static str> {
    projected.sources.iter().flatten().find_map(|s| {
        if s.cluster_trust_bundle.is_some() {
            Some("clusterTrustBundle")
        } else if s.pod_certificate.is_some() {
            Some("podCertificate")
        } else {
            None
        }
    })
}

/// Every mount of volume `name`, with a description of its container.
fn mounts_of<'a>(spec: &'a PodSpec, name: &'a str) -> Vec<(String, &'a VolumeMount)> {
    let mut out = Vec::new();
    let mut scan = |kind: &str, c: &'a Container| {
        for m in c.volume_mounts.iter().flatten().filter(|m| m.name == name) {
            out.push((format!("{kind} {:?}", c.name), m));
        }
    };
    for c in spec.init_containers.iter().flatten() {
        scan("init container", c);
    }
    for c in &spec.containers {
        scan("container", c);
    }
    out
}
