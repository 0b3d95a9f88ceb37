//! A userspace "kube-proxy" for host-node pods.
//!
//! The API server refuses loopback addresses in EndpointSlices (`may not be in the loopback
//! range`), so nothing routes a Service to a host-node pod. This proxy does, for TCP: every
//! Service (any namespace) whose selector matches at least one host-node pod gets, for each TCP
//! port, a listener on `{service_vip(namespace, name)}:{port}`. Each accepted connection goes to
//! one **Ready** matching pod (round robin; the next one when a pod refuses the connect; a pod
//! being deleted is not ready), at the port the Service's `targetPort` names (a number, or a
//! named `containerPort` looked up per pod; absent means the same as `port`), and bytes are
//! copied both ways. With no ready pod the connection is closed at once, so a caller fails
//! fast.
//!
//! Services are watched (a kube-runtime reflector); pods and their readiness are read from the
//! host node's own table at each connection; listeners are brought in line every 500 ms.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};

use super::provider::{HostProvider, lock};

/// How often listeners are brought in line with Services and pods.
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(500);

/// The stable loopback address of a Service on the host node of address block `block`:
/// `127.254.X.Y`, where `X.Y` come from the SHA-256 of `"{block}/{namespace}/{name}"` (first four
/// bytes, big-endian, modulo 256 × 254; `Y` is never 0 or 255). The same Service of the same
/// block always gets the same address; two may collide (about 1 in 65 000), in which case the
/// second one's listeners fail to bind and are logged.
pub fn service_vip(block: u8, namespace: &str, name: &str) -> Ipv4Addr {
    let digest = Sha256::digest(format!("{block}/{namespace}/{name}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % (256 * 254);
    Ipv4Addr::new(127, 254, (n / 254) as u8, (n % 254 + 1) as u8)
}

/// `https://{service_vip(block, namespace, name)}:{port}`: where a webhook configuration's
/// `url` reaches a host-node Service (the serving certificate needs the VIP as an IP SAN).
pub fn service_url(block: u8, namespace: &str, name: &str, port: u16) -> String {
    format!("https://{}:{port}", service_vip(block, namespace, name))
}

/// Where one Service port sends connections.
#[derive(Clone, Debug, PartialEq)]
struct Target {
    namespace: String,
    selector: BTreeMap<String, String>,
    target_port: IntOrString,
}

/// `(namespace, name, port)`.
type Key = (String, String, u16);

struct Listener {
    target: Arc<Mutex<Target>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What each Service port should listen for now.
fn desired(services: &[Arc<Service>], pods: &HostProvider) -> HashMap<Key, Target> {
    let mut out = HashMap::new();
    for svc in services {
        let (Some(namespace), Some(name), Some(spec)) = (
            svc.metadata.namespace.as_ref(),
            svc.metadata.name.as_ref(),
            svc.spec.as_ref(),
        ) else {
            continue;
        };
        let Some(selector) = spec.selector.clone().filter(|s| !s.is_empty()) else {
            continue;
        };
        if !pods.any_match(namespace, &selector) {
            continue;
        }
        for port in spec.ports.iter().flatten() {
            if port.protocol.as_deref().is_some_and(|p| p != "TCP") {
                continue;
            }
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            out.insert(
                (namespace.clone(), name.clone(), number),
                Target {
                    namespace: namespace.clone(),
                    selector: selector.clone(),
                    target_port: port
                        .target_port
                        .clone()
                        .unwrap_or(IntOrString::Int(port.port)),
                },
            );
        }
    }
    out
}

/// Runs the proxy until the task is dropped.
pub(crate) async fn run(client: kube::Client, pods: Arc<HostProvider>, block: u8) {
    let (store, writer) = reflector::store::<Service>();
    let watch = async move {
        let stream = reflector::reflector(
            writer,
            watcher::watcher(Api::<Service>::all(client), watcher::Config::default())
                .default_backoff(),
        );
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "service proxy: watch failed; retrying");
            }
        }
    };
    tokio::select! {
        () = watch => {}
        () = reconcile(store, pods, block) => {}
    }
}

async fn reconcile(store: Store<Service>, pods: Arc<HostProvider>, block: u8) {
    let mut listeners: HashMap<Key, Listener> = HashMap::new();
    let mut failed: HashMap<Key, String> = HashMap::new();
    let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let want = desired(&store.state(), &pods);
        listeners.retain(|key, _| want.contains_key(key));
        failed.retain(|key, _| want.contains_key(key));
        for (key, target) in want {
            if let Some(existing) = listeners.get(&key) {
                let mut current = lock(&existing.target);
                if *current != target {
                    *current = target;
                }
                continue;
            }
            let vip = service_vip(block, &key.0, &key.1);
            match TcpListener::bind((vip, key.2)).await {
                Ok(socket) => {
                    tracing::info!(service = %format!("{}/{}", key.0, key.1), address = %format!("{vip}:{}", key.2), "service proxy: listening");
                    failed.remove(&key);
                    let target = Arc::new(Mutex::new(target));
                    let task = tokio::spawn(serve(socket, Arc::clone(&target), Arc::clone(&pods)));
                    listeners.insert(key, Listener { target, task });
                }
                Err(e) => {
                    let message = e.to_string();
                    if failed.get(&key) != Some(&message) {
                        tracing::warn!(service = %format!("{}/{}", key.0, key.1), address = %format!("{vip}:{}", key.2), error = %message, "service proxy: cannot listen");
                        failed.insert(key, message);
                    }
                }
            }
        }
    }
}

/// Accepts connections for one Service port and forwards each to a ready pod.
async fn serve(socket: TcpListener, target: Arc<Mutex<Target>>, pods: Arc<HostProvider>) {
    let next = AtomicUsize::new(0);
    loop {
        let conn = match socket.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "service proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let t = lock(&target).clone();
        let backends = pods.ready_backends(&t.namespace, &t.selector, &t.target_port);
        if backends.is_empty() {
            drop(conn); // no ready pod: the caller sees the connection closed at once
            continue;
        }
        let mut backends = backends;
        let first = next.fetch_add(1, Ordering::Relaxed) % backends.len();
        backends.rotate_left(first);
        tokio::spawn(forward(conn, backends));
    }
}

/// Forwards `conn` to the first of `backends` (round-robin order) that accepts a connection:
/// a pod can stop between the backend list and the connect, and the caller should not pay
/// for that while another ready pod answers.
async fn forward(mut conn: TcpStream, backends: Vec<SocketAddr>) {
    for backend in backends {
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(backend)).await {
            Ok(Ok(mut upstream)) => {
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                return;
            }
            Ok(Err(e)) => tracing::debug!(%backend, error = %e, "service proxy: backend refused"),
            Err(_) => tracing::debug!(%backend, "service proxy: backend did not answer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_vip_is_stable_in_127_254_and_differs_between_services() {
        let a = service_vip(100, "kube-system", "bursting-webhook");
        assert_eq!(a, service_vip(100, "kube-system", "bursting-webhook"));
        let [x, y, _, last] = a.octets();
        assert_eq!((x, y), (127, 254));
        assert!((1..=254).contains(&last));
        assert_ne!(a, service_vip(100, "kube-system", "bursting-proxy"));
        assert_ne!(a, service_vip(100, "default", "bursting-webhook"));
        assert_eq!(
            service_url(100, "kube-system", "bursting-webhook", 443),
            format!("https://{a}:443")
        );
    }

    #[test]
    fn vips_spread_over_the_range() {
        let distinct: std::collections::HashSet<Ipv4Addr> = (0..500)
            .map(|i| service_vip(100, "ns", &format!("svc-{i}")))
            .collect();
        assert!(distinct.len() >= 495, "{} distinct of 500", distinct.len());
    }
}
