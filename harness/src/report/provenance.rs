//! Where a report came from: what ran (the add-on's images as the cluster runs them, the
//! harness and its catalogue, the mock), when, and a manifest of the report folder's files, so a
//! certificate handed on can be checked against what it claims (`burstcert verify`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result};

/// What a report was made from, beside the release, target and Kubernetes version the report
/// itself names.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The harness that made it.
    pub harness: Harness,
    /// SHA-256 of the catalogue's IDs and titles ([`catalogue_sha256`]): two reports with the
    /// same hash were judged against the same list of scenarios.
    pub catalogue_sha256: String,
    /// The mock CCI the add-on burst to, when it was the harness's.
    pub mock: Mock,
    /// The images of the add-on's Deployments' pods as the cluster ran them.
    pub addon_images: Vec<Image>,
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// When the run ended (RFC 3339, UTC).
    pub ended: String,
    /// SHA-256 of every other file of the report folder, by path relative to it (`/`
    /// separated). `report.json` itself is sealed by [`crate::report::verify::SEAL_KEY`].
    pub manifest: BTreeMap<String, String>,
}

/// The harness that made a report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Harness {
    /// Its crate version.
    pub version: String,
    /// The git commit it was built from (`+dirty` when the checkout had changes), or `unknown`
    /// when it ran without its checkout.
    pub commit: String,
}

impl Harness {
    /// This harness.
    pub fn current() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: git_commit(Path::new(env!("CARGO_MANIFEST_DIR"))),
        }
    }
}

/// The mock CCI of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mock {
    /// Its version, when the harness started it (it is built from the same workspace).
    pub version: String,
    /// How it ran: `local process`, `kind container`, or `none` (a CCI endpoint the harness
    /// did not start).
    pub mode: String,
}

/// One container image of the add-on, as its pod ran it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Image {
    /// The pod's Deployment (its ReplicaSet's name without the template hash).
    pub deployment: String,
    /// The container.
    pub container: String,
    /// The image reference the pod asks for.
    pub image: String,
    /// The image the runtime resolved it to (`imageID` of the container status), when the
    /// runtime says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// SHA-256 of the catalogue: one `ID<TAB>title` line per entry, in catalogue order.
pub fn catalogue_sha256<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let text: String = entries
        .into_iter()
        .map(|(id, title)| format!("{id}\t{title}\n"))
        .collect();
    sha256_hex(text.as_bytes())
}

/// The SHA-256 of every file under `dir` but `except` (a path relative to `dir`), by relative
/// `/`-separated path.
pub fn manifest(dir: &Path, except: &str) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).io_context(|| format!("list {}", folder.display()))?;
        for entry in entries {
            let entry = entry.io_context(|| format!("list {}", folder.display()))?;
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .expect("walked from dir")
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if relative == except {
                continue;
            }
            let bytes = std::fs::read(&path).io_context(|| format!("read {}", path.display()))?;
            files.insert(relative, sha256_hex(&bytes));
        }
    }
    Ok(files)
}

/// The commit of the checkout at `dir` (`git rev-parse HEAD`, `+dirty` when `git status` shows
/// changes to tracked files), or `unknown` when there is no checkout or no git.
pub fn git_commit(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{commit}+dirty")
            } else {
                commit
            }
        }
        _ => "unknown".to_owned(),
    }
}

/// The images of the add-on's Deployments' pods (pods owned by a ReplicaSet) among `pods`,
/// sorted, without repeats (replicas run the same image).
pub fn images_of(pods: &[k8s_openapi::api::core::v1::Pod]) -> Vec<Image> {
    let mut images: Vec<Image> = pods
        .iter()
        .filter_map(|pod| {
            let owner = pod
                .metadata
                .owner_references
                .as_ref()?
                .iter()
                .find(|o| o.kind == "ReplicaSet")?;
            // `web-5d8f9c7b6` → `web`: a Deployment's ReplicaSet is named `{deployment}-{hash}`.
            let deployment = owner
                .name
                .rsplit_once('-')
                .map_or(owner.name.as_str(), |(d, _)| d)
                .to_owned();
            let spec = pod.spec.as_ref()?;
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            Some(
                spec.containers
                    .iter()
                    .map(|c| {
                        let status = statuses.iter().find(|s| s.name == c.name);
                        Image {
                            deployment: deployment.clone(),
                            container: c.name.clone(),
                            image: c.image.clone().unwrap_or_default(),
                            image_id: status
                                .map(|s| s.image_id.clone())
                                .filter(|id| !id.is_empty()),
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The add-on's images as the cluster runs them: the pods of `namespace` the add-on's label
/// selects, or, where the add-on was installed by someone else and is labelled otherwise, every
/// Deployment's pod of that namespace whose name starts with `bursting`.
pub async fn addon_images(client: &kube::Client, namespace: &str) -> Result<Vec<Image>> {
    use kube::api::{Api, ListParams};
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let list = |params: ListParams| {
        let pods = pods.clone();
        async move {
            pods.list(&params)
                .await
                .map(|l| l.items)
                .map_err(|source| crate::Error::Kube {
                    context: format!("list the add-on's pods in {namespace}"),
                    source,
                })
        }
    };
    let labelled = list(ListParams::default().labels(&crate::addon::render::selector())).await?;
    let pods = if labelled.is_empty() {
        list(ListParams::default())
            .await?
            .into_iter()
            .filter(|p| {
                p.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("bursting"))
            })
            .collect()
    } else {
        labelled
    };
    Ok(images_of(&pods))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    #[test]
    fn sha256_is_the_standard_digest_in_lower_case_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_catalogue_hash_changes_with_an_id_or_a_title_and_not_otherwise() {
        let a = catalogue_sha256([("WL-01", "a pod"), ("WL-02", "a deployment")]);
        assert_eq!(
            a,
            catalogue_sha256([("WL-01", "a pod"), ("WL-02", "a deployment")])
        );
        assert_ne!(
            a,
            catalogue_sha256([("WL-01", "a pod"), ("WL-03", "a deployment")])
        );
        assert_ne!(
            a,
            catalogue_sha256([("WL-01", "a pod"), ("WL-02", "a deployment!")])
        );
        // The separators keep "A" + "B C" apart from "A B" + "C".
        assert_ne!(
            catalogue_sha256([("A", "B C")]),
            catalogue_sha256([("A B", "C")])
        );
    }

    #[test]
    fn the_manifest_hashes_every_file_in_subfolders_too_but_the_one_left_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        std::fs::write(dir.path().join("report.md"), "abc").unwrap();
        std::fs::create_dir_all(dir.path().join("evidence/WL-01")).unwrap();
        std::fs::write(dir.path().join("evidence/WL-01/events.yaml"), "").unwrap();
        let files = manifest(dir.path(), "report.json").unwrap();
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            ["evidence/WL-01/events.yaml", "report.md"]
        );
        assert_eq!(files["report.md"], sha256_hex(b"abc"));
    }

    fn pod(owner: Option<&str>, image_id: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                owner_references: owner.map(|name| {
                    vec![OwnerReference {
                        kind: "ReplicaSet".into(),
                        name: name.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "vk".into(),
                    image: Some("swr/vk:1.5.18".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "vk".into(),
                    image_id: image_id.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn images_are_read_from_deployment_pods_once_each_with_the_runtime_digest_when_known() {
        let images = images_of(&[
            pod(Some("bursting-virtual-kubelet-65467cb447"), "sha256:aa"),
            pod(Some("bursting-virtual-kubelet-65467cb447"), "sha256:aa"),
            pod(Some("bursting-webhook-7d9f8c6b5"), ""),
            pod(None, "sha256:bb"),
        ]);
        assert_eq!(
            images,
            vec![
                Image {
                    deployment: "bursting-virtual-kubelet".into(),
                    container: "vk".into(),
                    image: "swr/vk:1.5.18".into(),
                    image_id: Some("sha256:aa".into()),
                },
                Image {
                    deployment: "bursting-webhook".into(),
                    container: "vk".into(),
                    image: "swr/vk:1.5.18".into(),
                    image_id: None,
                },
            ]
        );
    }

    #[test]
    fn a_folder_outside_any_checkout_has_an_unknown_commit() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(git_commit(dir.path()), "unknown");
        let here = git_commit(Path::new(env!("CARGO_MANIFEST_DIR")));
        assert!(here == "unknown" || here.len() >= 40, "{here}");
    }
}
