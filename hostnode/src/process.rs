//! Child processes that cannot outlive the process that started them (the harness, or a test
//! binary): the host node runs every container under [`Guarded`], and the harness its mock,
//! control plane and cleanups.
//!
//! A test binary keeps its shared cluster in a `static`, which Rust never drops, and a panic or a
//! `kill` skips destructors. So every long-lived process is put under a tiny `sh` supervisor
//! whose stdin is a pipe from us: when our process ends, however it ends, the kernel closes the
//! pipe, the supervisor's `cat` sees end-of-file, and it stops what it guards. Dropping the
//! [`Guarded`] handle does the same on purpose.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

use crate::error::{Error, Result};

/// The supervisor: run the program in the background, wait for stdin to close (or a signal),
/// then stop the program with SIGTERM, escalating to SIGKILL after 10 s.
const SUPERVISE: &str = r#"
"$@" </dev/null &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null
  i=0
  while kill -0 "$child" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$child" 2>/dev/null
  wait "$child" 2>/dev/null
  exit 0
}
trap stop TERM INT HUP
cat >/dev/null
stop
"#;

/// The cleanup runner: wait for stdin to close, then run the command (e.g. `kwokctl delete
/// cluster`). It is put in its own process group so a Ctrl-C meant for the test run does not
/// kill it before it has cleaned up.
const ON_EXIT: &str = r#"
trap '' INT
cat >/dev/null
exec "$@"
"#;

/// A process that stops when this handle is dropped or when the process that made it ends.
#[derive(Debug)]
pub struct Guarded {
    name: String,
    supervisor: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Guarded {
    /// Starts `program args…` under a supervisor, with stdout and stderr appended to `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> Result<Self> {
        let out = open_log(log)?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("open {}", log.display())))?;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SUPERVISE)
            .arg(name)
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        let mut supervisor = cmd
            .spawn()
            .map_err(Error::io(format!("start {name} ({})", program.display())))?;
        let stdin = supervisor.stdin.take();
        Ok(Self {
            name: name.to_owned(),
            supervisor,
            stdin,
            log: log.to_owned(),
        })
    }

    /// The log file the process writes to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, for diagnoses.
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log, lines)
    }

    /// Whether the supervised program is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.supervisor.try_wait(), Ok(None))
    }

    /// Kills the supervised program with SIGKILL, as a crash would (the supervisor stays, so
    /// dropping the handle later is still clean). Returns the pids killed.
    pub fn kill_program(&mut self) -> Result<Vec<u32>> {
        let sup = self.supervisor.id();
        let children =
            std::fs::read_to_string(format!("/proc/{sup}/task/{sup}/children")).map_err(
                Error::io(format!("list children of the {} supervisor", self.name)),
            )?;
        let mut killed = Vec::new();
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
        {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            // The supervisor's other child is the `cat` that watches our pipe.
            if comm.trim() == "cat" {
                continue;
            }
            let status = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .map_err(Error::io(format!("kill {pid}")))?;
            if status.success() {
                killed.push(pid);
            }
        }
        Ok(killed)
    }

    /// Stops the program and waits for it (at most ~15 s).
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if !matches!(self.supervisor.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        tracing::warn!(name = %self.name, "supervisor did not stop in time; killing it");
        let _ = self.supervisor.kill();
        let _ = self.supervisor.wait();
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a command when this handle is dropped or the process that armed it ends, whichever is
/// first.
#[derive(Debug)]
pub struct OnExit {
    runner: Child,
    stdin: Option<ChildStdin>,
}

impl OnExit {
    /// Arms `program args…` to run at exit, with its output appended to `log`.
    pub fn arm(
        program: &Path,
        args: &[String],
        envs: &[(String, String)],
        log: &Path,
    ) -> Result<Self> {
        let out = open_log(log)?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("open {}", log.display())))?;
        let mut runner = Command::new("sh")
            .arg("-c")
            .arg(ON_EXIT)
            .arg("burstcert-cleanup")
            .arg(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(Error::io(format!("arm cleanup `{}`", program.display())))?;
        let stdin = runner.stdin.take();
        Ok(Self { runner, stdin })
    }

    /// Runs the command now and waits for it to finish.
    pub fn run_now(mut self) -> Result<std::process::ExitStatus> {
        drop(self.stdin.take());
        self.runner.wait().map_err(Error::io("wait for cleanup"))
    }

    /// Forgets the command: it will not run, not even at exit.
    pub fn disarm(mut self) {
        let _ = self.runner.kill();
        let _ = self.runner.wait();
        // Closing stdin after the kill cannot trigger it any more.
        drop(self.stdin.take());
    }
}

impl Drop for OnExit {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.runner.wait();
        }
    }
}

fn open_log(log: &Path) -> Result<File> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io(format!("create {}", dir.display())))?;
    }
    let mut f = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(Error::io(format!("open {}", log.display())))?;
    let _ = writeln!(
        f,
        "---- started by burstcert (pid {}) ----",
        std::process::id()
    );
    Ok(f)
}

/// The last `lines` lines of a text file ("" if unreadable).
pub fn tail_file(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: &str) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn dropping_a_guarded_process_stops_the_program_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sleeper.log");
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 300", pidfile.display());
        let guarded = Guarded::spawn(
            "sleeper",
            Path::new("/bin/sh"),
            &["-c".into(), script],
            &[],
            &log,
        )
        .unwrap();
        wait_for("pid file", || {
            std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
        });
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
        assert!(alive(&pid), "the program should run while the handle lives");
        drop(guarded);
        wait_for("the program to stop", || !alive(&pid));
    }

    /// A cleanup that touches a marker file: (handle, marker, the folder holding both).
    fn armed_marker() -> (OnExit, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("cleaned");
        let armed = OnExit::arm(
            Path::new("/bin/sh"),
            &["-c".into(), format!("touch {}", marker.display())],
            &[],
            &dir.path().join("cleanup.log"),
        )
        .unwrap();
        (armed, marker, dir)
    }

    #[test]
    fn an_armed_cleanup_runs_when_asked_and_not_before() {
        let (armed, marker, _dir) = armed_marker();
        assert!(!marker.exists(), "cleanup ran before it was triggered");
        assert!(armed.run_now().unwrap().success());
        assert!(marker.exists(), "cleanup did not run");
    }

    #[test]
    fn a_disarmed_cleanup_never_runs() {
        let (armed, marker, _dir) = armed_marker();
        armed.disarm();
        assert!(!marker.exists());
    }
}
