//! The mock on a TCP port, in-process.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use crate::{MockConfig, MockState, app};

/// A running mock, serving on [`addr`](Self::addr) from a task of the current tokio runtime.
///
/// Dropping it stops accepting connections (gracefully, in the background); call
/// [`shutdown`](Self::shutdown) to also wait until it has stopped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    state: MockState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Listens on `config.listen` (port 0 picks a free port) and starts serving.
    pub async fn bind(config: MockConfig) -> Result<Self> {
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
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    // NB: resolves on `send` and on drop of the sender alike.
                    let _ = stopped.await;
                })
                .await
        });
        tracing::info!(%addr, "mock CCI serving");
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on, with the real port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of the API, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
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
