//! A strict, stateful mock of the CCI 2.0 API (a serverless container service), for
//! conformance tests of the bursting engine.
//!
//! It serves Kubernetes-style REST paths under [`cci_api::API_PREFIX`], authenticates every
//! request by its [`cci_api::AUTH_HEADER`] token or its AK/SK signature
//! ([`cci_api::signing`]), validates every object the way the real
//! service would ([`validate`]), and simulates the pod lifecycle ([`state`], [`behaviour`]):
//! `Pending`, `Running` after [`MockConfig::running_after`], then containers that exit and
//! restart as their commands say. Faults ([`faults`]) are set per tenant or namespace, a ledger
//! bills running pods, and an inside view under `/_mock/` shows every tenant's objects, the
//! request log, bills and peak concurrency for test assertions (see [`app`] for every path).
//!
//! Drive it in-process without a socket through [`app`], or on a port through [`Server`]:
//!
//! ```no_run
//! # async fn demo() -> mock_cci::Result<()> {
//! use mock_cci::{MockConfig, Server};
//!
//! let server = Server::bind(MockConfig::default().with_token("secret", "tenant-a")).await?;
//! println!("CCI endpoint: {}", server.url());
//! // ... point the engine at server.url(), assert on server.state().pods() ...
//! server.shutdown().await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cci_api::signing::Credentials;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

/// The mock's version (its crate's), for reports that name what they ran against.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod admin;
mod aksk;
mod api;
pub mod behaviour;
pub mod config;
pub mod error;
mod extract;
pub mod faults;
pub mod flavour;
pub mod quantity;
pub mod requests;
pub mod selector;
mod server;
pub mod state;
pub mod validate;
mod watch_stream;

pub use api::app;
pub use config::{
    AkSkSpec, BILLING_FINALIZER, DEFAULT_COMPUTE_TIME, DEFAULT_GRACE_SECONDS, DEFAULT_LISTEN,
    DEFAULT_NAMESPACE_TERMINATION, DEFAULT_NETWORK_READY_AFTER, DEFAULT_RESTART_BACKOFF,
    DEFAULT_RUNNING_AFTER, DEFAULT_SFS_STORAGE_CLASSES, DEFAULT_STOP_TIME, DEFAULT_TIMEOUT,
    DEFAULT_WATCH_HISTORY, MockConfig, SubnetCidr, TokenSpec,
};
pub use error::{Error, Result};
pub use faults::{Fault, FaultSpec, Scope};
pub use server::{Server, TlsIdentity};
pub use state::{Bill, NamespaceRecord, Peak, PodRecord};

use requests::RequestLog;

use state::{Epoch, Store};

/// The wall-clock time now. (`Timestamp::now` needs jiff's `std` feature, which k8s-openapi
/// leaves off.)
fn wall_clock_now() -> Timestamp {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::UNIX_EPOCH
        .checked_add(since_epoch)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The mock's shared state: its configuration and the store. Cheap to clone; every clone sees
/// the same objects.
#[derive(Clone, Debug)]
pub struct MockState {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: MockConfig,
    store: Mutex<Store>,
    /// The store's `resourceVersion` after the last operation; watches wait on it.
    changes: watch::Sender<u64>,
    requests: Mutex<RequestLog>,
    /// Tokens issued through the admin API, each with its tenant and the end of its life.
    issued: Mutex<BTreeMap<String, (String, Instant)>>,
}

/// What the mock makes of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenCheck {
    /// It authenticates as this tenant.
    Tenant(String),
    /// It was issued, and its life is over.
    Expired,
    /// The mock does not know it.
    Unknown,
}

impl MockState {
    /// An empty mock with this configuration. Its clock starts now (tokio's clock, so a test
    /// with paused time controls the pod lifecycle).
    pub fn new(config: MockConfig) -> Self {
        let epoch = Epoch {
            instant: Instant::now(),
            wall: wall_clock_now(),
        };
        // NB: the seed only has to differ between mocks; the clock is a fine fallback.
        let seed = getrandom::u64().unwrap_or_else(|_| epoch.wall.as_nanosecond() as u64);
        let store = Store::new(config.clone(), epoch, seed);
        let requests = RequestLog::new(config.request_log, epoch);
        Self {
            shared: Arc::new(Shared {
                config,
                store: Mutex::new(store),
                changes: watch::Sender::new(0),
                requests: Mutex::new(requests),
                issued: Mutex::default(),
            }),
        }
    }

    /// The configuration the mock was started with.
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// The tenant a token authenticates as, if it is a known token (one the mock was started
    /// with, or one issued and not expired).
    pub fn tenant_for_token(&self, token: &str) -> Option<String> {
        match self.check_token(token) {
            TokenCheck::Tenant(tenant) => Some(tenant),
            TokenCheck::Expired | TokenCheck::Unknown => None,
        }
    }

    /// What `token` is now: a tenant's, expired, or unknown.
    pub fn check_token(&self, token: &str) -> TokenCheck {
        if let Some(tenant) = self.shared.config.tokens.get(token) {
            return TokenCheck::Tenant(tenant.clone());
        }
        let issued = self.shared.issued.lock().unwrap_or_else(|e| e.into_inner());
        match issued.get(token) {
            Some((_, until)) if Instant::now() >= *until => TokenCheck::Expired,
            Some((tenant, _)) => TokenCheck::Tenant(tenant.clone()),
            None => TokenCheck::Unknown,
        }
    }

    /// Issues `token` for `tenant`, valid for `ttl` from now (an IAM token's 24 hours,
    /// shortened for tests); issuing a token again renews it.
    pub fn issue_token(&self, token: &str, tenant: &str, ttl: Duration) {
        self.shared
            .issued
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_owned(), (tenant.to_owned(), Instant::now() + ttl));
    }

    /// The credentials of an accepted access key, to verify its signatures with.
    pub fn credentials_for_access_key(&self, access_key: &str) -> Option<&Credentials> {
        self.shared
            .config
            .access_keys
            .get(access_key)
            .map(|spec| &spec.credentials)
    }

    /// The tenant an accepted access key authenticates as.
    pub fn tenant_for_access_key(&self, access_key: &str) -> Option<&str> {
        self.shared
            .config
            .access_keys
            .get(access_key)
            .map(|spec| spec.tenant.as_str())
    }

    /// Every pod of every tenant, ordered by namespace and name (what `GET /admin/v1/pods`
    /// answers).
    pub fn pods(&self) -> Vec<PodRecord> {
        self.with_store(|store, now| store.pod_records(now))
    }

    /// Every namespace of every tenant, ordered by name (what `GET /admin/v1/namespaces`
    /// answers).
    pub fn namespaces(&self) -> Vec<NamespaceRecord> {
        self.with_store(|store, now| store.namespace_records(now))
    }

    /// Every namespace's bill so far (what `GET /_mock/ledger` answers).
    pub fn bills(&self) -> Vec<Bill> {
        self.with_store(|store, now| store.bills(now))
    }

    /// The requests served so far, oldest first (what `GET /_mock/requests` answers).
    pub fn requests(&self) -> Vec<requests::RequestRecord> {
        self.request_log(|log| log.records())
    }

    /// Sets a fault, as `POST /_mock/faults` does; answers its id.
    pub fn set_fault(&self, spec: FaultSpec) -> Result<u64> {
        self.with_store(|store, now| {
            store.settle(now);
            store.faults.add(spec).map(|f| f.id)
        })
        .map_err(Error::BadRequest)
    }

    /// Clears every fault.
    pub fn clear_faults(&self) {
        self.with_store(|store, _| store.faults.clear());
    }

    /// Runs `f` on the store with the current instant, under the lock, and wakes the watches
    /// when something changed.
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store, Instant) -> R) -> R {
        // NB: a panic in one request must not fail every later one; store operations check
        // everything before they change anything, so a poisoned store is still consistent.
        let mut store = self
            .shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // NB: read the clock under the lock, so `now` never goes backwards between operations.
        let result = f(&mut store, Instant::now());
        let rv = store.current_resource_version();
        drop(store);
        self.shared.changes.send_if_modified(|seen| {
            let changed = *seen != rv;
            *seen = rv;
            changed
        });
        result
    }

    /// A receiver that wakes whenever the store changes.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changes.subscribe()
    }

    /// Runs `f` on the request log, under its lock.
    pub(crate) fn request_log<R>(&self, f: impl FnOnce(&mut RequestLog) -> R) -> R {
        let mut log = self
            .shared
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut log)
    }
}
