//! `echo-backend`: a stand-in cluster workload for the network scenarios (NET-01, UP-02): the
//! pod behind the cluster Service a CCI pod probes, so the probe can show that the Service's
//! own answer came back through the add-on's proxy.
//!
//! ```text
//! echo-backend --listen 127.100.0.7:8080 --reply "web-5d8f answers 3f9a"
//! curl http://127.100.0.7:8080/    # 200, body: web-5d8f answers 3f9a
//! ```
//!
//! Answers every HTTP/1.x request with `200 OK` and the `--reply` text, then closes the
//! connection. Prints `echo-backend listening on IP:PORT` once it accepts connections; exits
//! cleanly on SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A stand-in cluster workload: answers every HTTP request with its reply text.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The body of every answer.
    #[arg(long)]
    reply: String,
}

/// How long a client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    println!("echo-backend listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let reply: &'static str = Box::leak(args.reply.into_boxed_str());
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((conn, _)) = accepted else { continue };
                tokio::spawn(answer(conn, reply));
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// Reads one request head and answers it with `reply`.
async fn answer(mut conn: tokio::net::TcpStream, reply: &str) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        true
    };
    let whole = tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .unwrap_or(false);
    // NB: only an HTTP request gets an answer; anything else is closed unanswered.
    if !whole || !head.windows(7).any(|w| w == b" HTTP/1") {
        return;
    }
    let body = format!("{reply}\n");
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(answer.as_bytes()).await;
    let _ = conn.shutdown().await;
}
