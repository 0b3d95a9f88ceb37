//! A pod's folder: its volumes as files, its service account token and kubeconfig, and the
//! environment of its containers (read from the API like a kubelet reads it).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::config::Kubeconfig;

use super::expand::{Mounts, expand};
use crate::error::{Error, Result};

/// Where Kubernetes mounts a pod's service account credentials.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Lifetime asked for each service account token (refreshed at 80 %).
pub const TOKEN_SECONDS: i64 = 3600;
/// `PATH` of every container (Docker's default).
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The API server's address and CA, from the admin kubeconfig: what pods' kubeconfigs name.
#[derive(Clone, Debug)]
pub struct Admin {
    /// `https://127.0.0.1:port`.
    pub server: String,
    /// The cluster CA, PEM.
    pub ca_pem: Vec<u8>,
}

impl Admin {
    /// Reads the current context's cluster of `kubeconfig`.
    pub fn read(kubeconfig: &Path) -> Result<Self> {
        let step = |detail: String| Error::Kubeconfig {
            path: kubeconfig.to_owned(),
            detail: format!("cannot read the cluster address: {detail}"),
        };
        let config = Kubeconfig::read_from(kubeconfig).map_err(|e| step(e.to_string()))?;
        let context_name = config
            .current_context
            .clone()
            .or_else(|| config.contexts.first().map(|c| c.name.clone()))
            .ok_or_else(|| step("no context".into()))?;
        let cluster_name = config
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.as_ref())
            .map(|c| c.cluster.clone())
            .ok_or_else(|| step(format!("no context {context_name}")))?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| step(format!("no cluster {cluster_name}")))?;
        let server = cluster
            .server
            .ok_or_else(|| step(format!("cluster {cluster_name} has no server")))?;
        let ca_pem = if let Some(data) = cluster.certificate_authority_data {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| step(format!("certificate-authority-data: {e}")))?
        } else if let Some(path) = cluster.certificate_authority {
            std::fs::read(&path).map_err(|e| step(format!("read {path}: {e}")))?
        } else {
            return Err(step(format!("cluster {cluster_name} names no CA")));
        };
        Ok(Self { server, ca_pem })
    }
}

/// What the pod's containers share: the pod folder and its volumes.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Each volume's local folder (or, for `hostPath`, the host path).
    pub volumes: HashMap<String, PathBuf>,
    /// `{dir}/serviceaccount` and `{dir}/kubeconfig`, unless the token is not mounted.
    pub service_account: Option<(PathBuf, PathBuf)>,
    /// When the current token expires.
    pub token_expires: Option<Timestamp>,
}

/// The pod's folder under `logs`.
pub fn pod_dir(logs: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    logs.join("pods").join(format!("{namespace}_{name}_{uid}"))
}

fn meta(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

fn service_account_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

/// Whether the pod gets its service account token (`automountServiceAccountToken` unset or true).
pub fn automount(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.automount_service_account_token)
        .unwrap_or(true)
}

/// The mode of a Secret volume's files when the pod gives none.
const SECRET_FILE_MODE: i32 = 0o600;
/// The mode of a Secret volume's folder.
const SECRET_DIR_MODE: u32 = 0o700;

/// Writes `bytes` to `path` through a temporary file and a rename, with `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> std::result::Result<(), String> {
    let fail = |e: std::io::Error| format!("write {}: {e}", path.display());
    // NB: left alone when it holds the bytes already, so a refresh changes nothing a reader
    // watches (its modification time) unless the object changed.
    if std::fs::read(path).is_ok_and(|old| old == bytes)
        && std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o777 == mode)
    {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("burstcert-tmp");
    // Created with its mode, never readable by others for a moment before a chmod.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(bytes).map_err(fail)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(fail)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(fail)
}

/// A token for the pod's service account, bound to the pod, and when it expires.
pub async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<&str>,
    seconds: i64,
) -> std::result::Result<(String, Timestamp), String> {
    let (ns, name, uid) = meta(pod);
    let sa = service_account_name(pod);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(name.to_owned()),
                uid: Some(uid.to_owned()),
            }),
            expiration_seconds: Some(seconds),
        }),
        ..TokenRequest::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("request a token for service account {ns}/{sa}: {e}"))?;
    let status = answer.status.unwrap_or_default();
    let token = status
        .token
        .ok_or_else(|| format!("the token request for service account {ns}/{sa} gave no token"))?;
    let expires = status
        .expiration_timestamp
        .map(|t| t.0)
        .unwrap_or_else(|| Timestamp::now() + std::time::Duration::from_secs(seconds as u64));
    Ok((token, expires))
}

/// The kubeconfig a pod's containers get: the admin kubeconfig's server and CA, and the token
/// file (re-read by clients, so a refreshed token is picked up).
pub fn pod_kubeconfig(admin: &Admin, namespace: &str, account: &str, token_file: &Path) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let user = format!("system:serviceaccount:{namespace}:{account}");
    let ca = base64::engine::general_purpose::STANDARD.encode(&admin.ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: host-node\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    tokenFile: {file}\n\
         contexts:\n- name: host-node\n  context:\n    cluster: host-node\n    user: {user}\n    \
         namespace: {ns}\ncurrent-context: host-node\n",
        server = q(&admin.server),
        ca = q(&ca),
        user = q(&user),
        file = q(&token_file.display().to_string()),
        ns = q(namespace),
    )
}

/// Writes the token (and, the first time, `ca.crt`, `namespace` and the kubeconfig).
fn write_service_account(
    admin: &Admin,
    pod: &Pod,
    dir: &Path,
    token: &str,
) -> std::result::Result<(PathBuf, PathBuf), String> {
    let (ns, _, _) = meta(pod);
    let sa_dir = dir.join("serviceaccount");
    let token_file = sa_dir.join("token");
    write_file(&token_file, token.as_bytes(), 0o600)?;
    write_file(&sa_dir.join("ca.crt"), &admin.ca_pem, 0o644)?;
    write_file(&sa_dir.join("namespace"), ns.as_bytes(), 0o644)?;
    let kubeconfig = dir.join("kubeconfig");
    write_file(
        &kubeconfig,
        pod_kubeconfig(admin, ns, service_account_name(pod), &token_file).as_bytes(),
        0o600,
    )?;
    Ok((sa_dir, kubeconfig))
}

/// Requests a fresh token and writes it over the old one; returns its expiry.
pub async fn refresh_token(
    client: &kube::Client,
    admin: &Admin,
    pod: &Pod,
    dir: &Path,
) -> std::result::Result<Timestamp, String> {
    let (token, expires) = request_token(client, pod, None, TOKEN_SECONDS).await?;
    write_service_account(admin, pod, dir, &token)?;
    Ok(expires)
}

/// Writes the Secret and ConfigMap volumes of `pod` again from what the cluster holds now, as a
/// kubelet keeps them in step with their objects while the pod runs: a renewed Secret reaches
/// the running process. A file whose content is unchanged is left as it is.
pub async fn refresh_volumes(
    client: &kube::Client,
    pod: &Pod,
    dir: &Path,
    ip: Ipv4Addr,
) -> std::result::Result<(), String> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in volumes
        .iter()
        .filter(|v| v.secret.is_some() || v.config_map.is_some())
    {
        materialize(client, pod, volume, dir, ip, None).await?;
    }
    Ok(())
}

/// Lays out the pod folder: the service account token and kubeconfig (unless
/// `automountServiceAccountToken: false`) and every volume. An error is the message for the
/// pod's containers (they wait `ContainerCreating`); the caller retries.
pub async fn prepare(
    client: &kube::Client,
    admin: &Admin,
    pod: &Pod,
    dir: &Path,
    ip: Ipv4Addr,
) -> std::result::Result<Sandbox, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut sandbox = Sandbox {
        volumes: HashMap::new(),
        service_account: None,
        token_expires: None,
    };
    let mut token = None;
    if automount(pod) {
        let (t, expires) = request_token(client, pod, None, TOKEN_SECONDS).await?;
        sandbox.service_account = Some(write_service_account(admin, pod, dir, &t)?);
        sandbox.token_expires = Some(expires);
        token = Some(t);
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in &volumes {
        let local = materialize(client, pod, volume, dir, ip, token.as_deref()).await?;
        sandbox.volumes.insert(volume.name.clone(), local);
    }
    Ok(sandbox)
}

/// Key → bytes of a ConfigMap (`data` and `binaryData`).
fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    data
}

fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    data.extend(
        secret
            .string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
    );
    data
}

/// `base/relative`, refusing absolute paths and `..`.
fn inside(base: &Path, relative: &str) -> std::result::Result<PathBuf, String> {
    let rel = Path::new(relative);
    if rel
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "volume path {relative:?} must be relative, without `..`"
        ));
    }
    Ok(base.join(rel))
}

/// Writes `data` into `dir`: the `items` (key → path), or every key under its own name.
fn write_keys(
    dir: &Path,
    what: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> std::result::Result<(), String> {
    let mode = |m: Option<i32>| m.or(default_mode).unwrap_or(0o644) as u32 & 0o777;
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                match data.get(&item.key) {
                    Some(bytes) => write_file(&inside(dir, &item.path)?, bytes, mode(item.mode))?,
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "{what} has no key {:?} (named in the volume's items)",
                            item.key
                        ));
                    }
                }
            }
        }
        _ => {
            for (key, bytes) in data {
                write_file(&inside(dir, key)?, bytes, mode(None))?;
            }
        }
    }
    Ok(())
}

async fn get_config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> std::result::Result<Option<ConfigMap>, String> {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("get configmap {ns}/{name}: {e}"))
}

async fn get_secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> std::result::Result<Option<Secret>, String> {
    Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| format!("get secret {ns}/{name}: {e}"))
}

/// The value of a downward-API field of the pod (`fieldRef.fieldPath`).
pub fn field_value(pod: &Pod, path: &str, ip: Ipv4Addr) -> std::result::Result<String, String> {
    let (ns, name, uid) = meta(pod);
    let spec = pod.spec.as_ref();
    let map_entry = |map: Option<&BTreeMap<String, String>>, key: &str| {
        map.and_then(|m| m.get(key)).cloned().unwrap_or_default()
    };
    let whole_map = |map: Option<&BTreeMap<String, String>>| {
        map.into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let key_of = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_owned)
    };
    Ok(match path {
        "metadata.name" => name.to_owned(),
        "metadata.namespace" => ns.to_owned(),
        "metadata.uid" => uid.to_owned(),
        "metadata.labels" => whole_map(pod.metadata.labels.as_ref()),
        "metadata.annotations" => whole_map(pod.metadata.annotations.as_ref()),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| super::HOST_NODE.to_owned()),
        "spec.serviceAccountName" => service_account_name(pod).to_owned(),
        "status.podIP" | "status.podIPs" => ip.to_string(),
        "status.hostIP" | "status.hostIPs" => "127.0.0.1".to_owned(),
        _ => {
            if let Some(key) = key_of("metadata.labels['") {
                map_entry(pod.metadata.labels.as_ref(), &key)
            } else if let Some(key) = key_of("metadata.annotations['") {
                map_entry(pod.metadata.annotations.as_ref(), &key)
            } else {
                return Err(format!(
                    "fieldRef {path:?} is not supported by the host node"
                ));
            }
        }
    })
}

fn write_downward(
    dir: &Path,
    pod: &Pod,
    ip: Ipv4Addr,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> std::result::Result<(), String> {
    for item in items {
        let Some(field) = &item.field_ref else {
            // resourceFieldRef: limits are not modelled on the host node; the file is left out.
            continue;
        };
        let value = field_value(pod, &field.field_path, ip)?;
        let mode = item.mode.or(default_mode).unwrap_or(0o644) as u32 & 0o777;
        write_file(&inside(dir, &item.path)?, value.as_bytes(), mode)?;
    }
    Ok(())
}

/// Materializes one volume; returns its local folder.
async fn materialize(
    client: &kube::Client,
    pod: &Pod,
    volume: &Volume,
    dir: &Path,
    ip: Ipv4Addr,
    token: Option<&str>,
) -> std::result::Result<PathBuf, String> {
    let (ns, _, _) = meta(pod);
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        if matches!(host.type_.as_deref(), Some("DirectoryOrCreate")) {
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("hostPath {}: {e}", path.display()))?;
        }
        return Ok(path);
    }
    let local = dir.join("volumes").join(&volume.name);
    std::fs::create_dir_all(&local).map_err(|e| format!("create {}: {e}", local.display()))?;
    if let Some(src) = &volume.config_map {
        let optional = src.optional.unwrap_or(false);
        match get_config_map(client, ns, &src.name).await? {
            Some(cm) => write_keys(
                &local,
                &format!("configmap {ns}/{}", src.name),
                &config_map_data(&cm),
                src.items.as_deref(),
                src.default_mode,
                optional,
            )?,
            None if optional => {}
            None => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume {:?}: configmap \"{}\" not found",
                    volume.name, src.name
                ));
            }
        }
    } else if let Some(src) = &volume.secret {
        let name = src.secret_name.clone().unwrap_or_default();
        let optional = src.optional.unwrap_or(false);
        // Every container of the host node runs as the same local user: a Secret's folder and
        // files are that user's alone unless the pod asks for a mode.
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(SECRET_DIR_MODE))
            .map_err(|e| format!("restrict {}: {e}", local.display()))?;
        match get_secret(client, ns, &name).await? {
            Some(secret) => write_keys(
                &local,
                &format!("secret {ns}/{name}"),
                &secret_data(&secret),
                src.items.as_deref(),
                src.default_mode.or(Some(SECRET_FILE_MODE)),
                optional,
            )?,
            None if optional => {}
            None => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume {:?}: secret \"{name}\" not found",
                    volume.name
                ));
            }
        }
    } else if let Some(src) = &volume.downward_api {
        write_downward(
            &local,
            pod,
            ip,
            src.items.as_deref().unwrap_or_default(),
            src.default_mode,
        )?;
    } else if let Some(src) = &volume.projected {
        for source in src.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                let optional = cm.optional.unwrap_or(false);
                match get_config_map(client, ns, &cm.name).await? {
                    Some(found) => write_keys(
                        &local,
                        &format!("configmap {ns}/{}", cm.name),
                        &config_map_data(&found),
                        cm.items.as_deref(),
                        src.default_mode,
                        optional,
                    )?,
                    // The control plane publishes kube-root-ca.crt late or not at all; the
                    // cluster CA it would hold is what `ca.crt` is anyway.
                    None if optional || cm.name == "kube-root-ca.crt" => {}
                    None => {
                        return Err(format!(
                            "MountVolume.SetUp failed for volume {:?}: configmap \"{}\" not found",
                            volume.name, cm.name
                        ));
                    }
                }
            }
            if let Some(s) = &source.secret {
                let optional = s.optional.unwrap_or(false);
                match get_secret(client, ns, &s.name).await? {
                    Some(found) => write_keys(
                        &local,
                        &format!("secret {ns}/{}", s.name),
                        &secret_data(&found),
                        s.items.as_deref(),
                        src.default_mode,
                        optional,
                    )?,
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "MountVolume.SetUp failed for volume {:?}: secret \"{}\" not found",
                            volume.name, s.name
                        ));
                    }
                }
            }
            if let Some(d) = &source.downward_api {
                write_downward(
                    &local,
                    pod,
                    ip,
                    d.items.as_deref().unwrap_or_default(),
                    src.default_mode,
                )?;
            }
            if let Some(sat) = &source.service_account_token {
                let own;
                let value = match (sat.audience.as_deref(), token) {
                    (None, Some(t)) => t,
                    (audience, _) => {
                        own = request_token(
                            client,
                            pod,
                            audience,
                            sat.expiration_seconds.unwrap_or(TOKEN_SECONDS),
                        )
                        .await?
                        .0;
                        &own
                    }
                };
                write_file(&inside(&local, &sat.path)?, value.as_bytes(), 0o600)?;
            }
        }
    }
    // emptyDir, and volume types the host node does not model: an empty folder.
    Ok(local)
}

/// The mounts of a container: each volumeMount's `mountPath` → its volume's local folder
/// (`subPath` appended), and the service account path → `{pod}/serviceaccount`.
pub fn container_mounts(sandbox: &Sandbox, container: &Container) -> Mounts {
    let mut entries = Vec::new();
    if let Some((sa_dir, _)) = &sandbox.service_account {
        entries.push((SERVICE_ACCOUNT_PATH.to_owned(), sa_dir.clone()));
    }
    for mount in container.volume_mounts.iter().flatten() {
        let Some(local) = sandbox.volumes.get(&mount.name) else {
            continue;
        };
        let local = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => match inside(local, sub) {
                Ok(path) => path,
                Err(_) => continue,
            },
            None => local.clone(),
        };
        entries.push((mount.mount_path.clone(), local));
    }
    Mounts::new(entries)
}

/// An ordered environment where a later definition replaces an earlier one in place.
#[derive(Default)]
struct EnvList {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl EnvList {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|&i| self.vars[i].1.clone())
    }
}

/// Objects read while resolving one container's environment, read once each.
#[derive(Default)]
struct Objects {
    config_maps: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Objects {
    async fn config_map(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> std::result::Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        if !self.config_maps.contains_key(name) {
            let found = get_config_map(client, ns, name).await?;
            self.config_maps
                .insert(name.to_owned(), found.as_ref().map(config_map_data));
        }
        Ok(self.config_maps[name].clone())
    }

    async fn secret(
        &mut self,
        client: &kube::Client,
        ns: &str,
        name: &str,
    ) -> std::result::Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        if !self.secrets.contains_key(name) {
            let found = get_secret(client, ns, name).await?;
            self.secrets
                .insert(name.to_owned(), found.as_ref().map(secret_data));
        }
        Ok(self.secrets[name].clone())
    }
}

/// One key of a ConfigMap's or Secret's data as an env value, in the kubelet's words when the
/// object or key is missing; `None` when missing and `optional`. `kind` is (as in messages about a
/// key, as in messages about the object).
fn key_value(
    data: Option<BTreeMap<String, Vec<u8>>>,
    kind: (&str, &str),
    ns: &str,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> std::result::Result<Option<String>, String> {
    let optional = optional.unwrap_or(false);
    match data {
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(text(v))),
            None if optional => Ok(None),
            None => Err(format!("couldn't find key {key} in {} {ns}/{name}", kind.0)),
        },
        None if optional => Ok(None),
        None => Err(format!("{} \"{name}\" not found", kind.1)),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The container's environment as the manifest defines it, before any path rewrite: `KUBECONFIG`
/// (when the token is mounted), then `envFrom`, then `env` (`$(VAR)` expanded against what came
/// before; a later name replaces an earlier one). A missing non-optional object or key is the
/// `CreateContainerConfigError` message.
pub async fn container_env(
    client: &kube::Client,
    pod: &Pod,
    container: &Container,
    sandbox: &Sandbox,
    ip: Ipv4Addr,
) -> std::result::Result<Vec<(String, String)>, String> {
    let (ns, _, _) = meta(pod);
    let mut env = EnvList::default();
    if let Some((_, kubeconfig)) = &sandbox.service_account {
        env.set("KUBECONFIG".into(), kubeconfig.display().to_string());
    }
    let mut objects = Objects::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, what, optional) = if let Some(r) = &from.config_map_ref {
            (
                objects.config_map(client, ns, &r.name).await?,
                format!("configmap \"{}\"", r.name),
                r.optional.unwrap_or(false),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                objects.secret(client, ns, &r.name).await?,
                format!("secret \"{}\"", r.name),
                r.optional.unwrap_or(false),
            )
        } else {
            continue;
        };
        match data {
            Some(data) => {
                for (k, v) in data {
                    env.set(format!("{prefix}{k}"), text(&v));
                }
            }
            None if optional => {}
            None => return Err(format!("{what} not found")),
        }
    }
    for var in container.env.iter().flatten() {
        let value = if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                Some(field_value(pod, &f.field_path, ip)?)
            } else if let Some(r) = &from.secret_key_ref {
                let data = objects.secret(client, ns, &r.name).await?;
                key_value(data, ("Secret", "secret"), ns, &r.name, &r.key, r.optional)?
            } else if let Some(r) = &from.config_map_key_ref {
                let data = objects.config_map(client, ns, &r.name).await?;
                key_value(
                    data,
                    ("ConfigMap", "configmap"),
                    ns,
                    &r.name,
                    &r.key,
                    r.optional,
                )?
            } else {
                return Err(format!(
                    "env {}: only fieldRef, secretKeyRef and configMapKeyRef are supported by the host node",
                    var.name
                ));
            }
        } else {
            Some(expand(var.value.as_deref().unwrap_or_default(), |n| {
                env.get(n)
            }))
        };
        if let Some(value) = value {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env.vars)
}

/// Variables every container gets unless it defines them: `PATH`, `HOME` (the pod folder) and
/// `HOSTNAME` (the pod name).
pub fn base_env(pod: &Pod, dir: &Path) -> Vec<(String, String)> {
    vec![
        ("PATH".into(), PATH.into()),
        ("HOME".into(), dir.display().to_string()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, VolumeMount};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn a_written_file_has_its_mode_even_over_a_stale_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("tls.key");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // A temporary file left readable by everyone (a crash mid-write) is not reused.
        std::fs::write(path.with_extension("burstcert-tmp"), "old").unwrap();
        write_file(&path, b"secret", 0o600).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
    }

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("ns1".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some("engine".into()),
                node_name: Some("burstcert-host".into()),
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn downward_fields_come_from_the_pod_and_its_loopback_address() {
        let ip = Ipv4Addr::new(127, 100, 0, 9);
        let p = pod();
        let f = |path: &str| field_value(&p, path, ip);
        assert_eq!(f("metadata.name").unwrap(), "web-0");
        assert_eq!(f("metadata.namespace").unwrap(), "ns1");
        assert_eq!(f("metadata.uid").unwrap(), "u-1");
        assert_eq!(f("spec.nodeName").unwrap(), "burstcert-host");
        assert_eq!(f("spec.serviceAccountName").unwrap(), "engine");
        assert_eq!(f("status.podIP").unwrap(), "127.100.0.9");
        assert_eq!(f("status.hostIP").unwrap(), "127.0.0.1");
        assert_eq!(f("metadata.labels['app']").unwrap(), "web");
        assert_eq!(f("metadata.labels").unwrap(), "app=\"web\"");
        assert!(f("spec.priority").unwrap_err().contains("not supported"));
    }

    #[test]
    fn the_pod_kubeconfig_names_the_server_the_ca_and_the_token_file() {
        let admin = Admin {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: b"PEM".to_vec(),
        };
        let text = pod_kubeconfig(
            &admin,
            "ns1",
            "engine",
            Path::new("/p/serviceaccount/token"),
        );
        let config = Kubeconfig::from_yaml(&text).unwrap();
        let cluster = config.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://127.0.0.1:6443"));
        assert_eq!(cluster.certificate_authority_data.as_deref(), Some("UEVN"));
        let user = config.auth_infos[0].auth_info.as_ref().unwrap();
        assert_eq!(user.token_file.as_deref(), Some("/p/serviceaccount/token"));
        assert_eq!(
            config.auth_infos[0].name,
            "system:serviceaccount:ns1:engine"
        );
        assert_eq!(
            config.contexts[0]
                .context
                .as_ref()
                .unwrap()
                .namespace
                .as_deref(),
            Some("ns1")
        );
    }

    #[test]
    fn mounts_map_to_volume_folders_with_sub_paths_and_the_service_account_folder() {
        let sandbox = Sandbox {
            volumes: HashMap::from([
                ("certs".to_owned(), PathBuf::from("/p/volumes/certs")),
                ("cfg".to_owned(), PathBuf::from("/p/volumes/cfg")),
            ]),
            service_account: Some(("/p/serviceaccount".into(), "/p/kubeconfig".into())),
            token_expires: None,
        };
        let mount = |name: &str, path: &str, sub: Option<&str>| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            sub_path: sub.map(Into::into),
            ..VolumeMount::default()
        };
        let container = Container {
            name: "c".into(),
            volume_mounts: Some(vec![
                mount("certs", "/etc/certs", None),
                mount("cfg", "/etc/app/config.yaml", Some("config.yaml")),
                mount("missing", "/nowhere", None),
            ]),
            ..Container::default()
        };
        let m = container_mounts(&sandbox, &container);
        assert_eq!(
            m.rewrite_value("/etc/certs/tls.key"),
            "/p/volumes/certs/tls.key"
        );
        assert_eq!(
            m.rewrite_value("/etc/app/config.yaml"),
            "/p/volumes/cfg/config.yaml"
        );
        assert_eq!(
            m.rewrite_value("/var/run/secrets/kubernetes.io/serviceaccount/token"),
            "/p/serviceaccount/token"
        );
        assert_eq!(m.rewrite_value("/nowhere/x"), "/nowhere/x");
    }

    #[test]
    fn volume_item_paths_stay_inside_the_volume() {
        assert!(inside(Path::new("/v"), "a/b").is_ok());
        assert!(inside(Path::new("/v"), "../x").is_err());
        assert!(inside(Path::new("/v"), "/etc/passwd").is_err());
    }
}
