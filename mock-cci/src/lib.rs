//! A strict, stateful mock of the CCI 2.0 API (a serverless container service), for
//! conformance tests of the bursting engine.
//!
//! It serves Kubernetes-style REST paths under [`cci_api::API_PREFIX`], authenticates every
//! request by its [`cci_api::AUTH_HEADER`] token, validates every object the way the real
//! service would, and simulates the pod lifecycle (`Pending`, then `Running` after
//! [`MockConfig::running_after`]). An admin view under `/admin/v1` shows every tenant's objects
//! for test assertions.
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

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

mod api;
pub mod config;
pub mod error;
pub mod selector;
mod server;
pub mod state;
pub mod validate;

pub use api::app;
pub use config::{DEFAULT_LISTEN, DEFAULT_RUNNING_AFTER, MockConfig, TokenSpec};
pub use error::{Error, Result};
pub use server::Server;
pub use state::{NamespaceRecord, PodRecord};

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
        let store = Store::new(config.running_after, epoch, seed);
        Self {
            shared: Arc::new(Shared {
                config,
                store: Mutex::new(store),
            }),
        }
    }

    /// The configuration the mock was started with.
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// The tenant a token authenticates as, if it is a known token.
    pub fn tenant_for_token(&self, token: &str) -> Option<&str> {
        self.shared.config.tokens.get(token).map(String::as_str)
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

    /// Runs `f` on the store with the current instant, under the lock.
    pub(crate) fn with_store<R>(&self, f: impl FnOnce(&mut Store, Instant) -> R) -> R {
        // NB: a panic in one request must not fail every later one; store operations check
        // everything before they change anything, so a poisoned store is still consistent.
        let mut store = self
            .shared
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // NB: read the clock under the lock, so `now` never goes backwards between operations.
        f(&mut store, Instant::now())
    }
}
