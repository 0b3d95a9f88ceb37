//! A benchmark of the mock on this machine (not a test): pod creates per second with the server
//! on one core, p99 latency at a paced 200 requests/s, and resident memory holding 4000 pods and
//! 4000 ConfigMaps of 300 KB.
//!
//! ```text
//! cargo run -p mock-cci --release --example bench
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use mock_cci::{MockConfig, Server};
use serde_json::{Value, json};

const TOKEN: &str = "bench";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "cci/v2", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}}]},
    })
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    // The server gets a runtime of its own, on one thread.
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let config = MockConfig::default().with_token(TOKEN, "bench");
            let server = Server::bind(config).await?;
            url_tx.send(server.url())?;
            let _ = stop_rx.await;
            server.shutdown().await?;
            Ok(())
        })
    });
    let url = url_rx.recv().context("the server did not start")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Plain HTTP: a TLS config that trusts no server (reqwest is built without a default
        // crypto provider).
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()?;
        let post = |path: String, body: Value| {
            let http = http.clone();
            let url = url.clone();
            async move {
                let started = Instant::now();
                let response = http
                    .post(format!("{url}{path}"))
                    .header("X-Auth-Token", TOKEN)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
                Ok::<_, anyhow::Error>(started.elapsed())
            }
        };
        for ns in ["throughput", "paced", "memory"] {
            post(
                "/apis/cci/v2/namespaces".into(),
                json!({"apiVersion": "cci/v2", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
        }

        // 1. Throughput: 4000 creates, 16 in flight.
        let count = 4000;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            if tasks.len() >= 16 {
                tasks.join_next().await.context("a task")???;
            }
            tasks.spawn(post("/apis/cci/v2/namespaces/throughput/pods".into(), pod(&format!("p{i}"))));
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        let rate = f64::from(count) / started.elapsed().as_secs_f64();
        println!("throughput: {count} pod creates in {:?}: {rate:.0} creates/s", started.elapsed());

        // 2. Latency at a paced 200 requests/s for 10 s.
        let mut ticker = tokio::time::interval(Duration::from_millis(5));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..2000 {
            ticker.tick().await;
            tasks.spawn(post("/apis/cci/v2/namespaces/paced/pods".into(), pod(&format!("p{i}"))));
        }
        let mut latencies = Vec::new();
        while let Some(done) = tasks.join_next().await {
            latencies.push(done??);
        }
        latencies.sort();
        println!(
            "latency at 200 rps over {} creates: p50 {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );

        // 3. Memory: 4000 pods and 4000 ConfigMaps of 300 KB (on top of the 6000 pods above).
        let before = rss_kib();
        let data = "x".repeat(300 * 1024);
        for i in 0..4000 {
            post("/apis/cci/v2/namespaces/memory/pods".into(), pod(&format!("p{i}"))).await?;
            let config_map = json!({"apiVersion": "cci/v2", "kind": "ConfigMap",
                                    "metadata": {"name": format!("cm{i}")}, "data": {"blob": data}});
            post("/apis/cci/v2/namespaces/memory/configmaps".into(), config_map).await?;
        }
        let after = rss_kib();
        println!(
            "memory: resident {} MiB before, {} MiB after 4000 pods + 4000 ConfigMaps of 300 KB (+{} MiB; the client shares the process)",
            before / 1024,
            after / 1024,
            after.saturating_sub(before) / 1024
        );
        Ok::<_, anyhow::Error>(())
    })?;
    let _ = stop_tx.send(());
    server_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    Ok(())
}
