//! `mock-cci`: the mock CCI 2.0 API as a process.
//!
//! ```text
//! cargo run -p mock-cci -- --listen 127.0.0.1:8080 --token s3cret=tenant-a --token other
//! curl -H 'X-Auth-Token: s3cret' http://127.0.0.1:8080/apis/cci/v2/namespaces
//! cargo run -p mock-cci -- --aksk-file pairs.txt   # lines AK:SK or AK:SK=TENANT
//! cargo run -p mock-cci -- --token s3cret --tls-cert-file tls.crt --tls-key-file tls.key
//! curl http://127.0.0.1:8080/_mock/state
//! curl -X POST -H 'Content-Type: application/json' http://127.0.0.1:8080/_mock/faults \
//!   -d '{"scope": {"tenant": "tenant-a"}, "fault": {"type": "soldOut"}}'
//! ```
//!
//! It serves HTTPS when given `--tls-cert-file` and `--tls-key-file` (PEM), plain HTTP
//! otherwise. It prints exactly one line to stdout, `mock-cci listening on http://IP:PORT`
//! (`https://` with a certificate), once it
//! accepts connections (so `--listen 127.0.0.1:0` lets the caller learn the port), logs to
//! stderr (`RUST_LOG` filters, default `info`), and exits cleanly on SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use mock_cci::{
    DEFAULT_COMPUTE_TIME, DEFAULT_LISTEN, DEFAULT_NAMESPACE_TERMINATION,
    DEFAULT_NETWORK_READY_AFTER, DEFAULT_RESTART_BACKOFF, DEFAULT_RUNNING_AFTER,
    DEFAULT_SFS_STORAGE_CLASSES, DEFAULT_STOP_TIME, DEFAULT_TIMEOUT, DEFAULT_WATCH_HISTORY,
    MockConfig, Server, TlsIdentity, TokenSpec,
};
use tracing_subscriber::EnvFilter;

/// A strict, stateful mock of the CCI 2.0 API, for conformance tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "MOCK_CCI_LISTEN", default_value_t = DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// An accepted X-Auth-Token, as TOKEN (the tenant is the token) or TOKEN=TENANT. Repeatable.
    #[arg(long = "token", value_name = "TOKEN[=TENANT]")]
    tokens: Vec<TokenSpec>,

    /// A file of accepted tokens, one TOKEN or TOKEN=TENANT per line (`#` starts a comment).
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,

    /// A file of accepted AK/SK pairs, for requests signed SDK-HMAC-SHA256: one AK:SK (the
    /// tenant is the access key) or AK:SK=TENANT per line (`#` starts a comment). Secret keys
    /// are taken from a file only, never from the command line.
    #[arg(long, value_name = "PATH")]
    aksk_file: Option<std::path::PathBuf>,

    /// How long a new pod stays Pending before it turns Running, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RUNNING_AFTER.as_millis() as u64)]
    running_after_ms: u64,

    /// How long the seed's `perl -Mbignum=bpi -wle 'print bpi(2000)'` runs, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_COMPUTE_TIME.as_millis() as u64)]
    compute_time_ms: u64,

    /// A container's first restart back-off (doubling, at most 5 minutes), in milliseconds.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RESTART_BACKOFF.as_millis() as u64)]
    restart_backoff_ms: u64,

    /// How long a container that exits on SIGTERM takes to stop after a graceful delete, in
    /// milliseconds (a container that ignores SIGTERM runs until the grace period ends).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_STOP_TIME.as_millis() as u64)]
    stop_time_ms: u64,

    /// How long a `timeout` fault leaves a request waiting before answering 504, in milliseconds.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,

    /// How many pod changes watches can resume from (older resourceVersions get 410 Gone).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WATCH_HISTORY)]
    watch_history: usize,

    /// How long a new Network takes to turn Ready, in milliseconds (pods of a namespace wait
    /// for a Ready Network).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NETWORK_READY_AFTER.as_millis() as u64)]
    network_ready_after_ms: u64,

    /// How long a deleted namespace stays Terminating after its last pod went, in
    /// milliseconds (CCI deletes namespaces asynchronously); 0 removes an empty one at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_NAMESPACE_TERMINATION.as_millis() as u64)]
    namespace_termination_ms: u64,

    /// A VPC subnet the mock knows, as ID=CIDR: pods of a namespace whose Ready Network names
    /// it get their addresses from the CIDR. Repeatable.
    #[arg(long = "subnet", value_name = "ID=CIDR", value_parser = mock_cci::config::parse_subnet_flag)]
    subnets: Vec<(String, mock_cci::config::SubnetCidr)>,

    /// A storage class accepted as SFS or SFS Turbo. Repeatable; default csi-nas and csi-sfsturbo.
    #[arg(long = "sfs-storage-class", value_name = "CLASS")]
    sfs_storage_classes: Vec<String>,

    /// PEM file with the serving certificate (chain): serve HTTPS (with --tls-key-file).
    #[arg(long, value_name = "PATH", requires = "tls_key_file")]
    tls_cert_file: Option<std::path::PathBuf>,

    /// PEM file with the serving certificate's private key (with --tls-cert-file).
    #[arg(long, value_name = "PATH", requires = "tls_cert_file")]
    tls_key_file: Option<std::path::PathBuf>,
}

impl Args {
    fn config(&self) -> anyhow::Result<MockConfig> {
        let mut specs = self.tokens.clone();
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the token file {}", path.display()))?;
            specs.extend(
                mock_cci::config::parse_token_file(&text).map_err(|problem| {
                    anyhow::anyhow!("the token file {} is malformed: {problem}", path.display())
                })?,
            );
        }
        let tokens = specs
            .iter()
            .map(|spec| (spec.token.clone(), spec.tenant.clone()))
            .collect();
        let mut access_keys = std::collections::BTreeMap::new();
        if let Some(path) = &self.aksk_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the AK/SK file {}", path.display()))?;
            let pairs = mock_cci::config::parse_aksk_file(&text).map_err(|problem| {
                anyhow::anyhow!("the AK/SK file {} is malformed: {problem}", path.display())
            })?;
            for pair in pairs {
                access_keys.insert(pair.credentials.access_key().to_owned(), pair);
            }
        }
        let sfs_storage_classes = if self.sfs_storage_classes.is_empty() {
            DEFAULT_SFS_STORAGE_CLASSES.map(String::from).to_vec()
        } else {
            self.sfs_storage_classes.clone()
        };
        Ok(MockConfig {
            listen: self.listen,
            tokens,
            access_keys,
            running_after: Duration::from_millis(self.running_after_ms),
            compute_time: Duration::from_millis(self.compute_time_ms),
            restart_backoff: Duration::from_millis(self.restart_backoff_ms),
            stop_time: Duration::from_millis(self.stop_time_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            watch_history: self.watch_history,
            sfs_storage_classes,
            network_ready_after: Duration::from_millis(self.network_ready_after_ms),
            namespace_termination: Duration::from_millis(self.namespace_termination_ms),
            subnets: self.subnets.iter().cloned().collect(),
            ..MockConfig::default()
        })
    }

    /// The serving certificate and key, when both are given.
    fn tls(&self) -> anyhow::Result<Option<TlsIdentity>> {
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        let read = |path: &std::path::Path| {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        };
        Ok(Some(TlsIdentity {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = args.config()?;
    let tls = args.tls()?;
    if config.tokens.is_empty() && config.access_keys.is_empty() {
        tracing::warn!(
            "no --token nor --aksk-file given: every API request will be refused with 401"
        );
    }
    let tenants: Vec<_> = config.tokens.values().collect();
    // NB: access keys only; their secret keys are never logged.
    let access_keys: Vec<_> = config
        .access_keys
        .iter()
        .map(|(access_key, spec)| format!("{access_key}={}", spec.tenant))
        .collect();
    tracing::info!(?tenants, ?access_keys, running_after = ?config.running_after, "starting");

    let signal = shutdown_signal()?;
    let server = match tls {
        Some(identity) => Server::bind_tls(config, identity).await?,
        None => Server::bind(config).await?,
    };
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mock-cci listening on {}", server.url())
            .and_then(|()| stdout.flush())
            .context("cannot write the address to stdout")?;
    }

    let signal = signal.await;
    tracing::info!(signal, "shutting down");
    server.shutdown().await?;
    Ok(())
}

/// Listens for SIGINT and SIGTERM now, and answers a future that waits for one and names it.
///
/// NB: the handlers are installed before the address is printed, so a caller that signals as
/// soon as it has read the address never kills the process by the default action.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        })
    }
}
