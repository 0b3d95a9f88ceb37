//! The mock on a TCP port, in-process: plain HTTP, or HTTPS with a serving certificate (the
//! real CCI speaks HTTPS only).

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::{MockConfig, MockState, app};

/// A serving certificate (chain) and its private key, both PEM: what [`Server::bind_tls`] serves
/// HTTPS with.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate, then any intermediates, PEM.
    pub cert_pem: Vec<u8>,
    /// The certificate's private key, PEM.
    pub key_pem: Vec<u8>,
}

/// The key is a secret: never printed.
impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// A running mock, serving on [`addr`](Self::addr) from a task of the current tokio runtime.
///
/// Dropping it stops accepting connections (gracefully, in the background); call
/// [`shutdown`](Self::shutdown) to also wait until it has stopped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    /// Whether it serves HTTPS.
    https: bool,
    state: MockState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Listens on `config.listen` (port 0 picks a free port) and starts serving plain HTTP.
    pub async fn bind(config: MockConfig) -> Result<Self> {
        Self::start(config, None).await
    }

    /// Listens on `config.listen` (port 0 picks a free port) and starts serving HTTPS with
    /// `identity` (TLS 1.2 and 1.3, rustls with ring).
    pub async fn bind_tls(config: MockConfig, identity: TlsIdentity) -> Result<Self> {
        let tls =
            axum_server::tls_rustls::RustlsConfig::from_pem(identity.cert_pem, identity.key_pem)
                .await
                .map_err(Error::Tls)?;
        Self::start(config, Some(tls)).await
    }

    async fn start(
        config: MockConfig,
        tls: Option<axum_server::tls_rustls::RustlsConfig>,
    ) -> Result<Self> {
        let listen = config.listen;
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| Error::Bind {
                addr: listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: listen,
            source,
        })?;
        let state = MockState::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let router = app(state.clone());
        let https = tls.is_some();
        let task = match tls {
            None => tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        // NB: resolves on `send` and on drop of the sender alike.
                        let _ = stopped.await;
                    })
                    .await
            }),
            Some(tls) => {
                let listener = listener.into_std().map_err(|source| Error::Bind {
                    addr: listen,
                    source,
                })?;
                let handle = axum_server::Handle::new();
                let stop = handle.clone();
                tokio::spawn(async move {
                    let _ = stopped.await;
                    // As `axum::serve` above: open requests (watches too) may finish.
                    stop.graceful_shutdown(None);
                });
                let server =
                    axum_server::from_tcp_rustls(listener, tls).map_err(|source| Error::Bind {
                        addr: listen,
                        source,
                    })?;
                tokio::spawn(async move {
                    server
                        .handle(handle)
                        .serve(router.into_make_service())
                        .await
                })
            }
        };
        tracing::info!(%addr, https, "mock CCI serving");
        Ok(Self {
            addr,
            https,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on, with the real port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API, e.g. `http://127.0.0.1:40123` (`https://` when serving HTTPS).
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The mock's state, for assertions without HTTP.
    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// Stops accepting connections, lets open requests finish, and waits until it has stopped.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(served) => served.map_err(Error::Serve),
            Err(join) => Err(Error::Serve(std::io::Error::other(join))),
        }
    }
}
