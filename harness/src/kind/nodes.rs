//! What the harness does inside a kind cluster's node containers, as a person with `docker exec`
//! on the node would: find a pod's container through the node's container runtime (containerd's
//! `ctr`, in its `k8s.io` namespace), signal it, find its processes on this machine, and open
//! TCP connections from the node into the cluster's network.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;

use crate::error::{Error, Result};

/// One container the node's containerd runs for the kubelet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    /// containerd's container id (the pod status's `containerID` without `containerd://`).
    pub id: String,
    /// Its process id inside the node container's pid namespace.
    pub pid: u32,
    /// containerd's task status: `RUNNING`, `STOPPED`, …
    pub status: String,
}

/// The containers named `container` (the kubelet's label `io.kubernetes.container.name`) that
/// containerd on `node` has a task for, running or not.
pub fn tasks(node: &str, container: &str) -> Result<Vec<Task>> {
    let step = format!("list the {container} containers on the kind node {node} (ctr)");
    let script = format!(
        "ctr -n k8s.io containers ls -q 'labels.\"io.kubernetes.container.name\"=={container}' \
         && echo {SEPARATOR} && ctr -n k8s.io tasks ls"
    );
    let out = super::run(&step, "docker", &["exec", node, "sh", "-c", &script])?;
    let (ids, tasks) = out.split_once(SEPARATOR).unwrap_or((&out, ""));
    let ids: Vec<&str> = ids
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Ok(parse_tasks(tasks)
        .into_iter()
        .filter(|t| ids.contains(&t.id.as_str()))
        .collect())
}

/// Between the container ids and the tasks in [`tasks`]' output.
const SEPARATOR: &str = "--burstcert--";

/// The rows of `ctr tasks ls` (`TASK PID STATUS`, a header first).
fn parse_tasks(text: &str) -> Vec<Task> {
    text.lines()
        .skip_while(|l| !l.starts_with("TASK"))
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(Task {
                id: words.next()?.to_owned(),
                pid: words.next()?.parse().ok()?,
                status: words.next()?.to_owned(),
            })
        })
        .collect()
}

/// Sends `signal` (`SIGKILL`, `SIGTERM`) to the container `id`'s task on `node`, as the node's
/// container runtime delivers it to the container's first process.
pub fn signal(node: &str, id: &str, signal: &str) -> Result<()> {
    super::run(
        &format!("send {signal} to container {id} on the kind node {node} (ctr task kill)"),
        "docker",
        &[
            "exec", node, "ctr", "-n", "k8s.io", "task", "kill", "-s", signal, id,
        ],
    )?;
    Ok(())
}

/// The processes on this machine that belong to container `id` of a kind node (every process
/// of a nested container is one of this machine's: its cgroup path names the container,
/// `…/cri-containerd-{id}.scope`).
pub fn host_pids(id: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let scope = format!("cri-containerd-{id}.scope");
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|cgroups| cgroups.contains(&scope))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// A TCP connection to `address` opened from inside `node`'s network namespace (every node
/// routes to every pod and, through kube-proxy, to every Service): `socat` on the node, its
/// standard input and output the connection's two directions. Answers once socat says the
/// connection is open, or an error with socat's words.
pub async fn connect(node: &str, address: &str) -> Result<Box<dyn crate::target::Stream>> {
    let step = format!("connect to {address} from the kind node {node} (socat)");
    let mut child = tokio::process::Command::new("docker")
        .args([
            "exec",
            "-i",
            node,
            "socat",
            "-d",
            "-d",
            "STDIO",
            &format!("TCP:{address},connect-timeout=5"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Step {
            step: step.clone(),
            detail: format!("cannot run `docker exec`: {e}"),
        })?;
    let stderr = child.stderr.take().expect("piped");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut said = Vec::new();
    let opened = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            // socat -d -d: "starting data transfer loop" once both sides are open.
            if line.contains("starting data transfer loop") {
                return true;
            }
            said.push(line);
        }
        false
    })
    .await
    .unwrap_or(false);
    if !opened {
        let _ = child.start_kill();
        return Err(Error::Step {
            step,
            detail: format!("socat did not connect: {}", said.join("; ")),
        });
    }
    // Keep draining socat's diagnostics so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let (stdin, stdout) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
    );
    Ok(Box::new(Connection {
        io: tokio::io::join(stdout, stdin),
        _child: child,
    }))
}

/// A connection through `docker exec … socat` (see [`connect`]); closing it ends socat.
struct Connection {
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    _child: tokio::process::Child,
}

impl tokio::io::AsyncRead for Connection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Connection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctr_task_rows_give_id_pid_and_status() {
        let text = "TASK    PID     STATUS    \n\
                    21ef2e27    478     RUNNING\n\
                    2092dbce    0       STOPPED\n";
        assert_eq!(
            parse_tasks(text),
            vec![
                Task {
                    id: "21ef2e27".into(),
                    pid: 478,
                    status: "RUNNING".into()
                },
                Task {
                    id: "2092dbce".into(),
                    pid: 0,
                    status: "STOPPED".into()
                },
            ]
        );
        assert_eq!(parse_tasks(""), vec![]);
    }
}
