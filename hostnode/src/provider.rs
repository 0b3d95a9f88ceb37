//! The host node's [`vk::Provider`]: a table of pods, each run by a task of
//! [`super::runner`].

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::Resource as _;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::watch;
use vk::{LogOptions, RemotePod};

use super::ips::IpPool;
use super::probe::container_port;
use super::runner::{self, GRACE_MAX};
use super::sandbox::{self, Admin};
use super::status::{ContainerRecord, PodState};
use super::{HostNodeOptions, Registry};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // NB: nothing panics while these locks are held; a poisoned table is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What every pod task shares: the API, the images, where files go.
pub(crate) struct Ctx {
    pub client: kube::Client,
    pub registry: Registry,
    pub images: Vec<(String, PathBuf)>,
    pub logs: PathBuf,
    pub admin: Admin,
    recorder: Recorder,
}

impl Ctx {
    pub fn new(client: kube::Client, options: &HostNodeOptions, admin: Admin) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "kubelet".into(),
                instance: Some(options.node_name.clone()),
            },
        );
        Self {
            client,
            registry: options.registry.clone(),
            images: options.images.clone(),
            logs: options.logs.clone(),
            admin,
            recorder,
        }
    }

    /// Publishes an event on the pod, as a kubelet would (best effort, in the background).
    pub fn event(&self, pod: &Pod, warning: bool, reason: &str, note: &str) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note.chars().take(1000).collect()),
            action: reason.into(),
            secondary: None,
        };
        let reference = pod.object_ref(&());
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(e) = recorder.publish(&event, &reference).await {
                tracing::debug!(error = %e, "host node: could not publish an event");
            }
        });
    }
}

/// One pod on the host node.
pub(crate) struct PodHandle {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    pub dir: PathBuf,
    /// The pod as it was handed to us.
    pub pod: Arc<Pod>,
    state: Mutex<PodState>,
    stop: watch::Sender<Option<Duration>>,
    /// `true` once the pod's task has ended (its processes are gone), however it ended.
    ended: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    runs: AtomicU32,
    /// Pids of the running processes, by container.
    pids: Mutex<HashMap<String, u32>>,
    /// Per container: where the previous and the current run's output start in its log.
    log_starts: Mutex<HashMap<String, (u64, u64)>>,
}

impl PodHandle {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Changes the pod's state under its lock.
    pub fn update<R>(&self, f: impl FnOnce(&mut PodState) -> R) -> R {
        f(&mut lock(&self.state))
    }

    /// Changes one container's record (`init` picks the init containers).
    pub fn update_container<R: Default>(
        &self,
        init: bool,
        index: usize,
        f: impl FnOnce(&mut ContainerRecord) -> R,
    ) -> R {
        self.update(|s| s.container_mut(init, index).map(f).unwrap_or_default())
    }

    /// Notes the pid of a container's running process (`None` once it ended).
    pub fn set_pid(&self, container: &str, pid: Option<u32>) {
        let mut pids = lock(&self.pids);
        match pid {
            Some(pid) => pids.insert(container.to_owned(), pid),
            None => pids.remove(container),
        };
    }

    /// A new run number for a container start.
    pub fn next_run(&self) -> u32 {
        self.runs.fetch_add(1, Ordering::Relaxed)
    }

    /// Notes where a container's new run starts writing in its log.
    pub fn mark_log_start(&self, container: &str, offset: u64) {
        let mut starts = lock(&self.log_starts);
        let entry = starts.entry(container.to_owned()).or_insert((0, 0));
        *entry = (entry.1, offset);
    }

    /// The end of a container's current run's output, as a kubelet gives it for
    /// `terminationMessagePolicy: FallbackToLogsOnError`: the last 80 lines, at most 2048 bytes.
    pub fn current_log_tail(&self, container: &str) -> String {
        let bytes = std::fs::read(self.dir.join(format!("{container}.log"))).unwrap_or_default();
        let from = lock(&self.log_starts)
            .get(container)
            .map_or(0, |(_, current)| *current as usize)
            .min(bytes.len());
        termination_message_from_log(&log_text(&bytes[from..], Some(80)))
    }

    fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
    }

    fn matches(&self, namespace: &str, selector: &BTreeMap<String, String>) -> bool {
        self.namespace == namespace
            && !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| self.labels().get(k) == Some(v))
    }

    /// Ready, not finished and not being stopped: as in Kubernetes, a terminating pod leaves its
    /// Services' endpoints (here the service proxy's backends) once its deletion starts.
    pub fn ready(&self) -> bool {
        self.stop.borrow().is_none() && self.update(|s| s.ready() && !s.terminal())
    }

    /// The port a Service's `targetPort` names on this pod.
    fn target_port(&self, target: &IntOrString) -> Option<u16> {
        let spec = self.pod.spec.as_ref()?;
        match target {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(_) => spec
                .containers
                .iter()
                .find_map(|c| container_port(target, c)),
        }
    }

    /// Asks every process to stop: SIGTERM now, SIGKILL once `grace` (at most [`GRACE_MAX`])
    /// has passed since. A shorter grace period shortens one already running; a longer one
    /// changes nothing. Returns whether this is the first request.
    pub fn request_stop(&self, grace: Duration) -> bool {
        let grace = grace.min(GRACE_MAX);
        let mut first = false;
        self.stop.send_if_modified(|stop| match *stop {
            None => {
                first = true;
                *stop = Some(grace);
                true
            }
            Some(running) if grace < running => {
                *stop = Some(grace);
                true
            }
            Some(_) => false,
        });
        first
    }

    /// Waits until the pod's task has ended. Bounded: grace + SIGKILL wait + supervisor stop;
    /// a task stuck past that is cut.
    pub async fn stopped(&self) {
        let grace = self.stop.borrow().unwrap_or_default();
        let limit = grace + Duration::from_secs(30);
        let mut ended = self.ended.subscribe();
        if tokio::time::timeout(limit, ended.wait_for(|ended| *ended))
            .await
            .is_err()
        {
            tracing::warn!(pod = %self.key(), "host node: pod task did not stop in time");
            if let Some(task) = lock(&self.task).as_ref() {
                task.abort();
            }
        }
    }

    /// Stops every process (SIGTERM, SIGKILL after `grace`) and waits for the pod's task.
    pub async fn shutdown(&self, grace: Duration) {
        self.request_stop(grace);
        self.stopped().await;
    }
}

/// Marks its pod's task ended when dropped: when the task returns, and when it is aborted.
struct MarkEnded(Arc<PodHandle>);

impl Drop for MarkEnded {
    fn drop(&mut self) {
        self.0.ended.send_replace(true);
    }
}

/// The provider: pods by UID, and the address pool.
///
/// A deleted pod stays in the table (and in [`vk::Provider::list_pods`], its containers shown
/// terminated as they stop) until its processes are gone, so that the virtual kubelet keeps the
/// cluster pod `Terminating` meanwhile, as a kubelet does.
pub(crate) struct HostProvider {
    pub ctx: Arc<Ctx>,
    pods: Arc<Mutex<HashMap<String, Arc<PodHandle>>>>,
    ips: Arc<Mutex<IpPool>>,
}

fn uid_of(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// The grace [`HostProvider::stop_all`] gives each process before SIGKILL. The host node stops
/// only when its environment is torn down, with its cluster: nothing observes a graceful end
/// then, and the webhook's 3 s drain (answering `Connection: close` first) made every teardown
/// 3 s longer. Half a second still lets a process that ends at once write its last log lines.
const STOP_ALL_GRACE: Duration = Duration::from_millis(500);

impl HostProvider {
    pub fn new(ctx: Ctx, block: u8) -> Self {
        Self {
            ctx: Arc::new(ctx),
            pods: Arc::new(Mutex::new(HashMap::new())),
            ips: Arc::new(Mutex::new(IpPool::new(block))),
        }
    }

    /// Takes a pod whose task has ended out of the table and frees its address (once, however
    /// many callers race to do it).
    fn remove(
        pods: &Mutex<HashMap<String, Arc<PodHandle>>>,
        ips: &Mutex<IpPool>,
        handle: &PodHandle,
    ) {
        if lock(pods).remove(&handle.uid).is_some() {
            lock(ips).release(handle.ip);
            tracing::info!(pod = %handle.key(), "host node: pod stopped");
        }
    }

    fn handles(&self) -> Vec<Arc<PodHandle>> {
        lock(&self.pods).values().cloned().collect()
    }

    /// The live pod named `namespace/name` (the newest, should two share the name).
    pub fn find(&self, namespace: &str, name: &str) -> Option<Arc<PodHandle>> {
        self.handles()
            .into_iter()
            .filter(|h| h.namespace == namespace && h.name == name)
            .max_by_key(|h| h.update(|s| s.start_time))
    }

    /// Whether any pod of `namespace` matches `selector`.
    pub fn any_match(&self, namespace: &str, selector: &BTreeMap<String, String>) -> bool {
        self.handles()
            .iter()
            .any(|h| h.matches(namespace, selector))
    }

    /// Addresses of the ready pods matching `selector`, at the port `target` names on each.
    pub fn ready_backends(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
        target: &IntOrString,
    ) -> Vec<SocketAddr> {
        let mut backends: Vec<SocketAddr> = self
            .handles()
            .iter()
            .filter(|h| h.matches(namespace, selector) && h.ready())
            .filter_map(|h| Some(SocketAddr::from((h.ip, h.target_port(target)?))))
            .collect();
        backends.sort();
        backends
    }

    /// Pids of the running processes of container `container` in the pods of `namespace` whose
    /// names start with `prefix`.
    pub fn running_pids(&self, namespace: &str, prefix: &str, container: &str) -> Vec<u32> {
        self.handles()
            .iter()
            .filter(|h| h.namespace == namespace && h.name.starts_with(prefix))
            .filter_map(|h| lock(&h.pids).get(container).copied())
            .collect()
    }

    /// Stops every pod (the host node is going away).
    pub async fn stop_all(&self) {
        let handles = self.handles();
        futures::future::join_all(handles.iter().map(|h| h.shutdown(STOP_ALL_GRACE))).await;
        for h in handles {
            Self::remove(&self.pods, &self.ips, &h);
        }
    }
}

impl vk::Provider for HostProvider {
    async fn create_pod(&self, pod: &Pod) -> vk::ProviderResult<()> {
        let uid = uid_of(pod).to_owned();
        if lock(&self.pods).contains_key(&uid) {
            return Ok(());
        }
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let Some(ip) = lock(&self.ips).allocate() else {
            return Err(vk::ProviderError::PodFailed {
                reason: "OutOfAddresses".into(),
                message: "the host node has no loopback address left for the pod".into(),
            });
        };
        let dir = sandbox::pod_dir(&self.ctx.logs, &namespace, &name, &uid);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            lock(&self.ips).release(ip);
            return Err(vk::ProviderError::transient(
                format!("create the pod folder {}", dir.display()),
                e,
            ));
        }
        if let Ok(text) = serde_json::to_string_pretty(pod) {
            let _ = std::fs::write(dir.join("pod.json"), text);
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let named = |cs: &[k8s_openapi::api::core::v1::Container]| -> Vec<(String, String)> {
            cs.iter()
                .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
                .collect()
        };
        let state = PodState::new(
            ip,
            Timestamp::now(),
            &named(spec.init_containers.as_deref().unwrap_or_default()),
            &named(&spec.containers),
        );
        let (stop, stop_rx) = watch::channel(None);
        let handle = Arc::new(PodHandle {
            namespace,
            name,
            uid: uid.clone(),
            ip,
            dir,
            pod: Arc::new(pod.clone()),
            state: Mutex::new(state),
            stop,
            ended: watch::Sender::new(false),
            task: Mutex::new(None),
            runs: AtomicU32::new(0),
            pids: Mutex::new(HashMap::new()),
            log_starts: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn({
            let (ctx, handle) = (Arc::clone(&self.ctx), Arc::clone(&handle));
            async move {
                let _ended = MarkEnded(Arc::clone(&handle));
                runner::run_pod(ctx, handle, stop_rx).await;
            }
        });
        *lock(&handle.task) = Some(task);
        tracing::info!(pod = %handle.key(), %ip, "host node: pod started");
        lock(&self.pods).insert(uid, handle);
        Ok(())
    }

    /// Starts stopping the pod's processes and returns (the termination protocol of
    /// [`vk::Provider`]): its task sends SIGTERM and, at the grace period's end, SIGKILL; a
    /// background task takes the pod out of the table once its processes are gone.
    async fn delete_pod(&self, pod: &Pod) -> vk::ProviderResult<()> {
        let uid = uid_of(pod);
        let Some(handle) = lock(&self.pods).get(uid).cloned() else {
            return Ok(());
        };
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                handle
                    .pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0);
        if handle.request_stop(Duration::from_secs(grace as u64)) {
            tracing::info!(pod = %handle.key(), grace, "host node: stopping pod");
            let (pods, ips) = (Arc::clone(&self.pods), Arc::clone(&self.ips));
            tokio::spawn(async move {
                handle.stopped().await;
                Self::remove(&pods, &ips, &handle);
            });
        }
        Ok(())
    }

    async fn list_pods(&self) -> vk::ProviderResult<Vec<RemotePod>> {
        let now = Timestamp::now();
        Ok(self
            .handles()
            .iter()
            .map(|h| RemotePod {
                namespace: h.namespace.clone(),
                name: h.name.clone(),
                uid: h.uid.clone(),
                status: Some(h.update(|s| s.pod_status(now))),
                ..RemotePod::default()
            })
            .collect())
    }

    async fn logs(
        &self,
        pod: &Pod,
        container: &str,
        options: &LogOptions,
    ) -> vk::ProviderResult<String> {
        let handle = lock(&self.pods).get(uid_of(pod)).cloned().or_else(|| {
            self.find(
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
            )
        });
        let Some(handle) = handle else {
            return Err(vk::ProviderError::NotFound(format!(
                "pod {}/{} is not on the host node",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default()
            )));
        };
        let path = handle.dir.join(format!("{container}.log"));
        let bytes = std::fs::read(&path).map_err(|_| {
            vk::ProviderError::NotFound(format!(
                "no log for container {container} of {}",
                handle.key()
            ))
        })?;
        let (previous, current) = lock(&handle.log_starts)
            .get(container)
            .copied()
            .unwrap_or((0, 0));
        let (from, to) = if options.previous {
            (previous, current)
        } else {
            (current, bytes.len() as u64)
        };
        let slice = &bytes[(from as usize).min(bytes.len())..(to as usize).min(bytes.len())];
        Ok(log_text(slice, options.tail_lines))
    }
}

/// A log's text without the supervisor's start banner, cut to the last `tail` lines.
/// A log tail cut to the kubelet's 2048 bytes for a termination message (at a character
/// boundary, keeping the end).
pub(crate) fn termination_message_from_log(tail: &str) -> String {
    const LIMIT: usize = 2048;
    if tail.len() <= LIMIT {
        return tail.to_owned();
    }
    let mut start = tail.len() - LIMIT;
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    tail[start..].to_owned()
}

pub(crate) fn log_text(bytes: &[u8], tail: Option<i64>) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("---- started by burstcert"))
        .collect();
    let skip = match tail {
        Some(n) if n >= 0 => lines.len().saturating_sub(n as usize),
        _ => 0,
    };
    let mut out = lines[skip..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_termination_message_keeps_the_last_2048_bytes_of_the_log() {
        let short = "env: 'x': No such file or directory\n";
        assert_eq!(termination_message_from_log(short), short);
        let long = format!("{}é{}", "a".repeat(3000), "z".repeat(2047));
        let cut = termination_message_from_log(&long);
        assert!(
            cut.len() <= 2048 && cut.ends_with(&"z".repeat(2047)),
            "{}",
            cut.len()
        );
    }

    #[test]
    fn logs_drop_the_supervisor_banner_and_honour_tail_lines() {
        let log = b"---- started by burstcert (pid 1) ----\none\ntwo\nthree\n";
        assert_eq!(log_text(log, None), "one\ntwo\nthree\n");
        assert_eq!(log_text(log, Some(2)), "two\nthree\n");
        assert_eq!(log_text(log, Some(0)), "");
    }
}
