//! The CCI pod cache (`CciProvider::watch_cci_pods`) against the strict CCI mock: it follows
//! creates, status changes and deletes through the watch; recovers from a 410, a dropped
//! connection and a CCI that lost everything; and, idle, lists CCI only at its resyncs however
//! often the status round asks. The engine's own request counters (`CciClient::request_counts`)
//! say what it sent.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bursting_engine::cci::Verb;
use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use k8s_openapi::api::core::v1::Pod;
use mock_cci::{MockConfig, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use vk::{Provider, RemotePod};

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";
/// How long any condition below may take to come true.
const PATIENCE: Duration = Duration::from_secs(20);

fn config() -> MockConfig {
    MockConfig::default()
        .with_token(TOKEN, "tenant-a")
        .with_running_after(Duration::from_millis(300))
        .with_stop_time(Duration::from_millis(100))
}

/// A TCP relay in front of the mock that the test can cut (every open connection reset, new
/// ones refused) and mend, towards the same or another upstream.
struct Relay {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn to(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(Mutex::new(upstream));
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let (upstream, open, connections) =
                (upstream.clone(), open.clone(), connections.clone());
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue; // dropped: the client sees the connection closed
                    }
                    let to = *upstream.lock().unwrap();
                    connections.lock().unwrap().push(tokio::spawn(async move {
                        if let Ok(mut server) = TcpStream::connect(to).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }));
                }
            }
        });
        Self {
            addr,
            upstream,
            open,
            connections,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resets every open connection (a watch dies mid-stream) and refuses new ones.
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again, to `upstream` when given.
    fn mend(&self, upstream: Option<SocketAddr>) {
        if let Some(to) = upstream {
            *self.upstream.lock().unwrap() = to;
        }
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

struct Fixture {
    server: Server,
    relay: Relay,
    /// The engine's client: its counters are what the engine sent.
    engine: CciClient,
    provider: Arc<CciProvider>,
    /// Someone else on CCI (the test), straight to the mock.
    outside: CciProvider,
    follower: JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// A mock, a relay to it, and a provider talking through the relay whose cache follows CCI
/// with a full list every `resync`; returns once the cache is live.
async fn fixture(config: MockConfig, resync: Duration) -> Fixture {
    let server = Server::bind(config).await.unwrap();
    let relay = Relay::to(server.addr()).await;
    let engine = CciClient::new(&relay.url(), TOKEN).unwrap();
    let provider = Arc::new(
        CciProvider::new(engine.clone(), MemoryObjects::default(), "c1")
            .unwrap()
            .with_network(crate::common::network()),
    );
    provider.ensure_namespace().await.unwrap();
    let follower = tokio::spawn(Arc::clone(&provider).watch_cci_pods(resync));
    let outside = outside(&server);
    let fixture = Fixture {
        server,
        relay,
        engine,
        provider,
        outside,
        follower,
    };
    fixture.cached(|_| true, "the cache went live").await;
    fixture
}

fn outside(server: &Server) -> CciProvider {
    CciProvider::new(
        CciClient::new(&server.url(), TOKEN).unwrap(),
        MemoryObjects::default(),
        "c1",
    )
    .unwrap()
    .with_network(crate::common::network())
}

fn pod(name: &str) -> Pod {
    let mut pod = common::pod(name, &format!("uid-{name}"), Vec::new());
    pod.metadata.deletion_grace_period_seconds = Some(0);
    pod
}

/// `name=phase` of the cached pods, sorted.
fn described(pods: &[RemotePod]) -> Vec<String> {
    let mut out: Vec<String> = pods
        .iter()
        .map(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            format!("{}={}", p.name, phase.unwrap_or("-"))
        })
        .collect();
    out.sort();
    out
}

impl Fixture {
    /// Waits until the cache is live and its pods satisfy `ok`; answers them.
    async fn cached(&self, ok: impl Fn(&[String]) -> bool, what: &str) -> Vec<String> {
        let cache = self.provider.cci_pods();
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(pods) = cache.pods().map(|p| described(&p))
                    && ok(&pods)
                {
                    return pods;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "{what}: not within {PATIENCE:?}; cache {:?}",
                cache.pods().map(|p| described(&p))
            )
        })
    }

    /// Waits until the engine has sent at least `n` `verb` requests on pods.
    async fn sent(&self, verb: Verb, n: u64) {
        let waited = tokio::time::timeout(PATIENCE, async {
            while self.engine.request_counts().get(verb, "pods") < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "fewer than {n} {verb:?} pods within {PATIENCE:?}: {:?}",
                self.engine.request_counts()
            )
        });
    }

    fn lists(&self) -> u64 {
        self.engine.request_counts().get(Verb::List, "pods")
    }

    /// The HTTP statuses `server` answered the engine's pod watches with, in order.
    fn watch_answers(server: &Server) -> Vec<u16> {
        let watch = format!("/apis/cci/v2/namespaces/{NS}/pods?watch=true");
        server
            .state()
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(&watch))
            .map(|r| r.status)
            .collect()
    }

    fn watches(&self) -> u64 {
        self.engine.request_counts().get(Verb::Watch, "pods")
    }
}

#[tokio::test]
async fn the_cache_follows_creates_status_changes_and_deletes_without_listing_again() {
    let f = fixture(config(), Duration::from_secs(300)).await;
    assert_eq!(f.provider.list_pods().await.unwrap(), Vec::new());

    let created = Instant::now();
    f.provider.create_pod(&pod("web")).await.unwrap();
    f.cached(|p| p.len() == 1, "the created pod is cached")
        .await;
    // The mock's clock turns it Running 300 ms after its creation: the status round must see
    // that within a couple of its (one-second) rounds.
    f.cached(|p| p == ["web=Running"], "the pod turned Running")
        .await;
    assert!(
        created.elapsed() < Duration::from_millis(2500),
        "{:?}",
        created.elapsed()
    );

    f.outside.create_pod(&pod("api")).await.unwrap();
    f.cached(|p| p.len() == 2, "a pod created by someone else is cached")
        .await;
    f.provider.delete_pod(&pod("web")).await.unwrap();
    f.cached(
        |p| p.iter().all(|p| !p.starts_with("web=")),
        "the deleted pod left the cache",
    )
    .await;

    let listed = described(&f.provider.list_pods().await.unwrap());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].starts_with("api="), "{listed:?}");
    assert_eq!(
        f.lists(),
        1,
        "only the first list: {:?}",
        f.engine.request_counts()
    );
    assert_eq!(
        f.watches(),
        1,
        "one watch all along: {:?}",
        f.engine.request_counts()
    );
}

/// The termination protocol's part on the engine's side: `delete_pod` starts CCI's graceful
/// delete and returns, and the pod stays in what the status round reads (Terminating on CCI)
/// until CCI removes it at the grace period's end.
#[tokio::test]
async fn a_pod_deleted_with_a_grace_period_stays_listed_until_cci_removes_it_at_the_grace_end() {
    const GRACE: Duration = Duration::from_secs(2);
    let f = fixture(config(), Duration::from_secs(300)).await;
    let mut web = pod("web");
    // A command as PID 1 has no SIGTERM handler: it runs until the grace period ends.
    web.spec.as_mut().unwrap().containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
    f.provider.create_pod(&web).await.unwrap();
    f.cached(|p| p == ["web=Running"], "the pod turned Running")
        .await;
    web.metadata.deletion_grace_period_seconds = Some(GRACE.as_secs() as i64);
    let asked = Instant::now();
    f.provider.delete_pod(&web).await.unwrap();
    assert!(
        asked.elapsed() < GRACE,
        "delete_pod waited for the grace period: {:?}",
        asked.elapsed()
    );
    let listed = described(&f.provider.list_pods().await.unwrap());
    assert_eq!(listed, ["web=Running"], "terminating, still listed");
    assert!(
        f.provider
            .pod_statuses()
            .await
            .unwrap()
            .contains_key("uid-web"),
        "terminating, still in the statuses"
    );
    f.cached(|p| p.is_empty(), "the pod left the cache").await;
    assert!(
        asked.elapsed() >= GRACE,
        "gone before its grace period ended: {:?}",
        asked.elapsed()
    );
}

#[tokio::test]
async fn a_dropped_watch_is_resumed_from_its_version_without_a_list() {
    let f = fixture(config(), Duration::from_secs(300)).await;
    f.provider.create_pod(&pod("web")).await.unwrap();
    f.cached(|p| p == ["web=Running"], "web runs").await;

    f.relay.cut();
    // The cache stops answering rather than answer stale.
    tokio::time::timeout(PATIENCE, async {
        while f.provider.cci_pods().is_live() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the cache stopped answering once its watch dropped");
    f.outside.create_pod(&pod("api")).await.unwrap();
    f.relay.mend(None);

    f.cached(
        |p| p == ["api=Running", "web=Running"],
        "the change made while cut arrived",
    )
    .await;
    assert_eq!(
        f.lists(),
        1,
        "resumed, not listed: {:?}",
        f.engine.request_counts()
    );
    assert!(f.watches() >= 2, "{:?}", f.engine.request_counts());
}

#[tokio::test]
async fn a_watch_too_far_behind_is_answered_410_and_the_cache_lists_afresh() {
    // Two changes kept: three pods created while the watch is cut are more than CCI remembers.
    let f = fixture(config().with_watch_history(2), Duration::from_secs(300)).await;
    f.provider.create_pod(&pod("web")).await.unwrap();
    f.cached(|p| p == ["web=Running"], "web runs").await;

    f.relay.cut();
    f.outside.delete_pod(&pod("web")).await.unwrap();
    for name in ["a", "b", "c"] {
        f.outside.create_pod(&pod(name)).await.unwrap();
    }
    f.relay.mend(None);

    f.sent(Verb::List, 2).await;
    let pods = f
        .cached(
            |p| p.len() == 3 && !p.iter().any(|p| p.starts_with("web=")),
            "relisted",
        )
        .await;
    assert_eq!(pods.len(), 3, "{pods:?}");
    let answers = Fixture::watch_answers(&f.server);
    assert_eq!(answers[..2], [200, 410], "{answers:?}");
}

#[tokio::test]
async fn the_cache_recovers_when_cci_comes_back_without_what_it_had() {
    let f = fixture(config(), Duration::from_secs(300)).await;
    f.provider.create_pod(&pod("web")).await.unwrap();
    f.cached(|p| p == ["web=Running"], "web runs").await;

    // CCI restarts with nothing: not the namespace, not the pod, resourceVersions from 1.
    f.relay.cut();
    let fresh = Server::bind(config()).await.unwrap();
    f.relay.mend(Some(fresh.addr()));
    // Resuming is refused (404: no such namespace), so the cache lists, and keeps trying.
    f.sent(Verb::List, 2).await;
    assert!(!f.provider.cci_pods().is_live());
    assert_eq!(
        f.provider.list_pods().await.unwrap(),
        Vec::new(),
        "the status round sees CCI as it is"
    );

    assert_eq!(Fixture::watch_answers(&fresh).first(), Some(&404));

    let outside = outside(&fresh);
    outside.create_pod(&pod("api")).await.unwrap();
    f.cached(
        |p| p == ["api=Running"],
        "the cache is CCI's again, web dropped",
    )
    .await;
    drop(f);
    fresh.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_cache_lists_cci_only_at_its_resyncs_however_often_it_is_read() {
    let resync = Duration::from_secs(2);
    let first_list = Instant::now();
    let f = fixture(config(), resync).await;
    for name in ["a", "b", "c"] {
        f.provider.create_pod(&pod(name)).await.unwrap();
    }
    f.cached(
        |p| p.len() == 3 && p.iter().all(|p| p.ends_with("=Running")),
        "all run",
    )
    .await;

    // Status rounds ten times a second until two resyncs have happened.
    let start = Instant::now();
    let rounds = tokio::time::timeout(PATIENCE, async {
        let mut rounds = 0u32;
        while f.lists() < 3 {
            assert_eq!(f.provider.list_pods().await.unwrap().len(), 3);
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        rounds
    })
    .await
    .expect("two resyncs within the patience");
    let idle = start.elapsed();
    let counts = f.engine.request_counts();
    // Two more lists only once two resync periods have passed since the first.
    assert!(first_list.elapsed() >= 2 * resync, "{idle:?}: {counts:?}");
    assert!(rounds >= 10, "{rounds} rounds in {idle:?}");
    assert_eq!(counts.get(Verb::List, "pods"), 3, "{counts:?}");
    // One watch per resync period (each lasts until the next resync), not one per round.
    assert!(counts.get(Verb::Watch, "pods") <= 4, "{counts:?}");
    assert_eq!(f.server.state().pods().len(), 3);
}
