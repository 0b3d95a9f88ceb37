//! A host-node pod's life: its folder, image "pulls", init containers, containers as guarded
//! processes with restarts, readiness probes and graceful termination.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;

use super::expand::{Mounts, expand};
use super::image::{container_argv, resolve_image};
use super::probe;
use super::provider::{Ctx, PodHandle};
use super::sandbox::{self, Sandbox};
use super::status::{ContainerRecord, RestartPolicy, Run, Term};
use crate::process::Guarded;

/// First restart delay of a container that exited; doubles up to [`RESTART_BACKOFF_MAX`].
pub const RESTART_BACKOFF: Duration = Duration::from_secs(1);
/// Longest restart delay.
pub const RESTART_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest termination grace period the host node grants.
pub const GRACE_MAX: Duration = Duration::from_secs(10);
/// How long `ErrImagePull` shows before `ImagePullBackOff`.
const PULL_ERROR_SHOWN: Duration = Duration::from_secs(3);
/// A run this long resets the restart backoff.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);
/// Retry delay of a pod folder or a container configuration that could not be set up.
const SETUP_RETRY: Duration = Duration::from_secs(2);

/// The stop signal of a pod: `None` while it runs, `Some(grace)` once it is to stop.
pub type Stop = watch::Receiver<Option<Duration>>;

/// Runs each container process: puts the environment in place (`env -i`, so nothing of the
/// harness leaks in), starts the program in its own session (so its whole process group can be
/// signalled), records its pid, forwards SIGTERM (escalating to SIGKILL after 8 s, before the
/// supervisor's 10 s), and once the program ended kills what is left of its group (as a
/// container's end takes its other processes along) and writes the exit code. Arguments: status-file prefix, working folder,
/// the number N of `BURSTCERT_ENV_0..N-1` variables (each `NAME=value`), then the program and
/// its arguments.
const WRAPPER: &str = r#"
st=$1 dir=$2 n=$3
shift 3
i=$n
while [ "$i" -gt 0 ]; do
  i=$((i - 1))
  eval "set -- \"\$BURSTCERT_ENV_$i\" \"\$@\""
done
cd "$dir" 2>/dev/null || cd /
setsid env -i -- "$@" &
child=$!
echo "$child" > "$st.pid.tmp" && mv "$st.pid.tmp" "$st.pid"
stop() {
  kill -TERM "-$child" 2>/dev/null || kill -TERM "$child" 2>/dev/null
  i=0
  while kill -0 "$child" 2>/dev/null && [ "$i" -lt 80 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -KILL "-$child" 2>/dev/null || kill -KILL "$child" 2>/dev/null
}
trap stop TERM HUP INT
wait "$child"
code=$?
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  code=$?
done
kill -KILL "-$child" 2>/dev/null
echo "$code" > "$st.exit.tmp" && mv "$st.exit.tmp" "$st.exit"
"#;

/// One run of a container: a guarded process.
pub struct Instance {
    guarded: Option<Guarded>,
    /// Pid of the program (leader of its own process group).
    pub pid: u32,
    exit_file: PathBuf,
    /// When it started.
    pub started_at: Timestamp,
    /// `host://{uid}/{container}/{run}`.
    pub id: String,
}

impl Instance {
    /// The exit code, once the program ended.
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.exit_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    async fn signal(&self, signal: &str) {
        let group = format!("-{}", self.pid);
        let status = tokio::process::Command::new("kill")
            .args([signal, "--", &group])
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if !status.is_ok_and(|s| s.success()) {
            let _ = tokio::process::Command::new("kill")
                .args([signal, &self.pid.to_string()])
                .stderr(std::process::Stdio::null())
                .status()
                .await;
        }
    }

    async fn wait_exit(&self, limit: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(code) = self.exit_code() {
                return Some(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM to the process group, SIGKILL once the grace period `stop` holds has passed
    /// (re-read as it runs: a delete with a shorter grace period shortens it); the exit code.
    pub async fn terminate(&self, stop: &Stop) -> i32 {
        if let Some(code) = self.exit_code() {
            return code;
        }
        let asked = tokio::time::Instant::now();
        self.signal("-TERM").await;
        // Polled, as `wait_exit` polls the exit file: the grace is read again each time.
        while asked.elapsed() < stop_requested(stop).unwrap_or_default() {
            if let Some(code) = self.exit_code() {
                return code;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.signal("-KILL").await;
        self.wait_exit(Duration::from_secs(5)).await.unwrap_or(137)
    }

    /// Lets go of the supervisor (blocking work, done off the runtime).
    pub async fn release(mut self) {
        if let Some(guarded) = self.guarded.take() {
            let _ = tokio::task::spawn_blocking(move || drop(guarded)).await;
        }
    }
}

/// What a container runs: program, arguments, environment and working folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    /// The program (the image's binary, or a script from a volume).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working folder.
    pub workdir: PathBuf,
}

/// Builds a container's launch: `$(VAR)` expanded in command and args, `command` resolved
/// against the image (or a file under a mount path), then every argument and environment value
/// that starts with a mount path rewritten to the local folder.
pub fn launch(
    binary: &Path,
    container: &Container,
    env: Vec<(String, String)>,
    base_env: Vec<(String, String)>,
    mounts: &Mounts,
    pod_dir: &Path,
) -> Result<Launch, String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let command: Vec<String> = container
        .command
        .iter()
        .flatten()
        .map(|c| expand(c, lookup))
        .collect();
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| expand(a, lookup))
        .collect();
    let image = container.image.as_deref().unwrap_or_default();
    let from_volume = command
        .first()
        .and_then(|c| mounts.map(c))
        .map(PathBuf::from)
        .filter(|p| p.is_file());
    let (program, argv) = match from_volume {
        Some(script) => {
            let mut argv = command[1..].to_vec();
            argv.extend(args);
            (script, argv)
        }
        None => container_argv(binary, image, &command, &args)?,
    };
    let mut all: Vec<(String, String)> = base_env
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .collect();
    all.extend(
        env.iter()
            .map(|(k, v)| (k.clone(), mounts.rewrite_value(v))),
    );
    let workdir = container
        .working_dir
        .as_deref()
        .map(|w| PathBuf::from(mounts.rewrite_value(w)))
        .filter(|w| w.is_dir())
        .unwrap_or_else(|| pod_dir.to_owned());
    Ok(Launch {
        program,
        args: argv.iter().map(|a| mounts.rewrite_arg(a)).collect(),
        env: all,
        workdir,
    })
}

/// Starts one run of a container under a [`Guarded`] supervisor, its output appended to
/// `{pod}/{container}.log`.
async fn spawn(handle: &PodHandle, container: &str, launch: &Launch) -> Result<Instance, String> {
    let run = handle.next_run();
    let run_dir = handle.dir.join("run");
    std::fs::create_dir_all(&run_dir).map_err(|e| format!("create {}: {e}", run_dir.display()))?;
    let prefix = run_dir.join(format!("{container}.{run}"));
    let log = handle.dir.join(format!("{container}.log"));
    handle.mark_log_start(
        container,
        std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0),
    );
    let mut args = vec![
        "-c".to_owned(),
        WRAPPER.to_owned(),
        format!(
            "burstcert-pod:{}/{}/{container}",
            handle.namespace, handle.name
        ),
        prefix.display().to_string(),
        launch.workdir.display().to_string(),
        launch.env.len().to_string(),
        launch.program.display().to_string(),
    ];
    args.extend(launch.args.iter().cloned());
    let envs: Vec<(String, String)> = launch
        .env
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (format!("BURSTCERT_ENV_{i}"), format!("{k}={v}")))
        .collect();
    let name = format!("{}/{}/{container}", handle.namespace, handle.name);
    let guarded = tokio::task::spawn_blocking(move || {
        Guarded::spawn(&name, Path::new("/bin/sh"), &args, &envs, &log)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    let pid_file = run_dir.join(format!("{container}.{run}.pid"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            break pid;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = tokio::task::spawn_blocking(move || drop(guarded)).await;
            return Err(format!(
                "the process of container {container} did not start"
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    Ok(Instance {
        guarded: Some(guarded),
        pid,
        exit_file: run_dir.join(format!("{container}.{run}.exit")),
        started_at: Timestamp::now(),
        id: format!("host://{}/{container}/{run}", handle.uid),
    })
}

fn stop_requested(stop: &Stop) -> Option<Duration> {
    *stop.borrow()
}

/// Sleeps `d`; `true` if the pod is to stop (now or during the sleep).
async fn pause(stop: &mut Stop, d: Duration) -> bool {
    if stop_requested(stop).is_some() {
        return true;
    }
    let stopped = tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.wait_for(Option::is_some) => true,
    };
    stopped || stop_requested(stop).is_some()
}

/// Runs the pod until it ends for good or is stopped.
pub async fn run_pod(ctx: Arc<Ctx>, handle: Arc<PodHandle>, mut stop: Stop) {
    let pod = Arc::clone(&handle.pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let init = spec.init_containers.clone().unwrap_or_default();
    let containers = spec.containers.clone();
    let policy = RestartPolicy::parse(spec.restart_policy.as_deref());

    // The sandbox: folder, token, volumes. Retried while something is missing.
    let mut last_error = String::new();
    let sandbox = loop {
        match sandbox::prepare(&ctx.client, &ctx.admin, &pod, &handle.dir, handle.ip).await {
            Ok(s) => break s,
            Err(message) => {
                tracing::warn!(pod = %handle.key(), %message, "host node: pod setup failed; retrying");
                handle.update(|s| {
                    for c in s.init.iter_mut().chain(s.containers.iter_mut()) {
                        c.set_waiting("ContainerCreating", Some(message.clone()));
                    }
                });
                if message != last_error {
                    ctx.event(&pod, true, "FailedMount", &message);
                    last_error = message;
                }
                if pause(&mut stop, SETUP_RETRY).await {
                    return;
                }
            }
        }
    };
    let app_reason = if init.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    handle.update(|s| {
        s.sandbox_ready = true;
        for c in &mut s.init {
            c.set_waiting("PodInitializing", None);
        }
        for c in &mut s.containers {
            c.set_waiting(app_reason, None);
        }
    });

    // Images: all must resolve before anything starts.
    let resolved: Vec<Result<PathBuf, String>> = init
        .iter()
        .chain(containers.iter())
        .map(|c| {
            resolve_image(
                c.image.as_deref().unwrap_or_default(),
                &ctx.registry,
                &ctx.images,
            )
            .map(Path::to_owned)
        })
        .collect();
    if resolved.iter().any(Result::is_err) {
        pull_failures(
            &ctx,
            &handle,
            &pod,
            &init,
            &containers,
            &resolved,
            &mut stop,
        )
        .await;
        return;
    }
    let binaries: Vec<PathBuf> = resolved.into_iter().flatten().collect();
    handle.update(|s| {
        for (c, bin) in s
            .init
            .iter_mut()
            .chain(s.containers.iter_mut())
            .zip(&binaries)
        {
            c.image_id = format!("host://{}", bin.display());
        }
    });
    let (init_bins, app_bins) = binaries.split_at(init.len());

    // The token is refreshed at 80 % of its life while the pod runs.
    let refresher = sandbox.token_expires.map(|expires| {
        let (ctx, pod, dir) = (Arc::clone(&ctx), Arc::clone(&pod), handle.dir.clone());
        tokio::spawn(refresh_tokens(ctx, pod, dir, expires))
    });
    let _refresher = AbortOnDrop(refresher);
    let volumes = {
        let (ctx, pod, dir, ip) = (
            Arc::clone(&ctx),
            Arc::clone(&pod),
            handle.dir.clone(),
            handle.ip,
        );
        tokio::spawn(refresh_volumes(ctx, pod, dir, ip))
    };
    let _volumes = AbortOnDrop(Some(volumes));

    for (index, container) in init.iter().enumerate() {
        run_container(
            &ctx,
            &handle,
            &sandbox,
            container,
            &init_bins[index],
            (true, index),
            policy.for_init(),
            stop.clone(),
        )
        .await;
        if stop_requested(&stop).is_some() {
            return;
        }
        if !handle.update(|s| s.init[index].succeeded()) {
            return; // failed for good: the pod has failed
        }
    }
    if !init.is_empty() {
        handle.update(|s| {
            for c in &mut s.containers {
                c.set_waiting("ContainerCreating", None);
            }
        });
    }
    let runs = containers.iter().enumerate().map(|(index, container)| {
        run_container(
            &ctx,
            &handle,
            &sandbox,
            container,
            &app_bins[index],
            (false, index),
            policy,
            stop.clone(),
        )
    });
    futures::future::join_all(runs).await;
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// How often a running pod's Secret and ConfigMap volumes are brought in step with their
/// objects (a kubelet takes up to about a minute; the host node is quicker, for tests' sake).
const VOLUME_SYNC: Duration = Duration::from_secs(3);

async fn refresh_volumes(ctx: Arc<Ctx>, pod: Arc<Pod>, dir: PathBuf, ip: std::net::Ipv4Addr) {
    let mut tick = tokio::time::interval(VOLUME_SYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = sandbox::refresh_volumes(&ctx.client, &pod, &dir, ip).await {
            tracing::debug!(error = %e, "host node: volumes not refreshed this time");
        }
    }
}

async fn refresh_tokens(ctx: Arc<Ctx>, pod: Arc<Pod>, dir: PathBuf, mut expires: Timestamp) {
    loop {
        let left = expires.duration_since(Timestamp::now());
        let left = Duration::try_from(left).unwrap_or_default();
        tokio::time::sleep(left.mul_f64(0.8).max(Duration::from_secs(10))).await;
        match sandbox::refresh_token(&ctx.client, &ctx.admin, &pod, &dir).await {
            Ok(new) => expires = new,
            Err(e) => {
                tracing::warn!(error = %e, "host node: token refresh failed; retrying");
                expires = Timestamp::now() + Duration::from_secs(12);
            }
        }
    }
}

/// Reports `ErrImagePull`, then `ImagePullBackOff`, over and over with a growing delay, like a
/// kubelet retrying a pull that keeps failing; nothing starts. Returns when the pod stops.
#[allow(clippy::too_many_arguments)]
async fn pull_failures(
    ctx: &Ctx,
    handle: &PodHandle,
    pod: &Pod,
    init: &[Container],
    containers: &[Container],
    resolved: &[Result<PathBuf, String>],
    stop: &mut Stop,
) {
    let failing: Vec<(bool, usize, String, String)> = init
        .iter()
        .map(|c| (true, c))
        .chain(containers.iter().map(|c| (false, c)))
        .zip(resolved)
        .scan((0usize, 0usize), |(i, a), ((is_init, c), r)| {
            let index = if is_init { *i } else { *a };
            if is_init {
                *i += 1;
            } else {
                *a += 1;
            }
            Some((is_init, index, c, r))
        })
        .filter_map(|(is_init, index, c, r)| {
            r.as_ref().err().map(|message| {
                (
                    is_init,
                    index,
                    c.image.clone().unwrap_or_default(),
                    message.clone(),
                )
            })
        })
        .collect();
    let mut backoff = Duration::from_secs(10);
    loop {
        handle.update(|s| {
            for (is_init, index, _, message) in &failing {
                if let Some(c) = s.container_mut(*is_init, *index) {
                    c.set_waiting("ErrImagePull", Some(message.clone()));
                }
            }
        });
        for (_, _, _, message) in &failing {
            ctx.event(pod, true, "Failed", message);
        }
        if pause(stop, PULL_ERROR_SHOWN).await {
            return;
        }
        handle.update(|s| {
            for (is_init, index, image, message) in &failing {
                if let Some(c) = s.container_mut(*is_init, *index) {
                    c.set_waiting(
                        "ImagePullBackOff",
                        Some(format!(
                            "Back-off pulling image \"{image}\": ErrImagePull: {message}"
                        )),
                    );
                }
            }
        });
        for (_, _, image, _) in &failing {
            ctx.event(
                pod,
                false,
                "BackOff",
                &format!("Back-off pulling image \"{image}\""),
            );
        }
        if pause(stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(Duration::from_secs(300));
    }
}

/// How a watched run ended.
enum Outcome {
    /// The program exited by itself.
    Exited(i32),
    /// The pod was stopped; the program was terminated.
    Stopped(i32),
}

/// Runs one container until it is done for good (per `policy`) or the pod stops.
#[allow(clippy::too_many_arguments)]
async fn run_container(
    ctx: &Ctx,
    handle: &PodHandle,
    sandbox: &Sandbox,
    container: &Container,
    binary: &Path,
    (is_init, index): (bool, usize),
    policy: RestartPolicy,
    mut stop: Stop,
) {
    let pod = &handle.pod;
    let name = container.name.as_str();
    let update =
        |f: &mut dyn FnMut(&mut ContainerRecord)| handle.update_container(is_init, index, f);
    let mounts = sandbox::container_mounts(sandbox, container);
    let mut backoff = RESTART_BACKOFF;
    let mut last_config_error = String::new();
    loop {
        if stop_requested(&stop).is_some() {
            return;
        }
        let env = match sandbox::container_env(&ctx.client, pod, container, sandbox, handle.ip)
            .await
        {
            Ok(env) => env,
            Err(message) => {
                update(&mut |c| c.set_waiting("CreateContainerConfigError", Some(message.clone())));
                if message != last_config_error {
                    ctx.event(pod, true, "Failed", &format!("Error: {message}"));
                    last_config_error = message;
                }
                if pause(&mut stop, SETUP_RETRY).await {
                    return;
                }
                continue;
            }
        };
        last_config_error.clear();
        let started = match launch(
            binary,
            container,
            env,
            sandbox::base_env(pod, &handle.dir),
            &mounts,
            &handle.dir,
        ) {
            Ok(l) => spawn(handle, name, &l).await,
            Err(e) => Err(e),
        };
        let (term, ran) = match started {
            Err(message) => {
                ctx.event(pod, true, "Failed", &format!("Error: {message}"));
                let now = Timestamp::now();
                let term = Term {
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: None,
                    finished_at: now,
                    container_id: None,
                };
                (term, Duration::ZERO)
            }
            Ok(instance) => {
                let probe = if is_init {
                    None
                } else {
                    container.readiness_probe.as_ref()
                };
                update(&mut |c| {
                    c.run = Run::Running {
                        started_at: instance.started_at,
                    };
                    c.container_id = Some(instance.id.clone());
                    c.ready = probe.is_none() && !is_init;
                });
                ctx.event(pod, false, "Started", &format!("Started container {name}"));
                handle.set_pid(name, Some(instance.pid));
                let outcome = watch(
                    handle,
                    &instance,
                    container,
                    probe,
                    &mut stop,
                    (is_init, index),
                )
                .await;
                handle.set_pid(name, None);
                let now = Timestamp::now();
                let ran =
                    Duration::try_from(now.duration_since(instance.started_at)).unwrap_or_default();
                let (code, stopped) = match outcome {
                    Outcome::Exited(code) => (code, false),
                    Outcome::Stopped(code) => (code, true),
                };
                let mut term = Term::exited(
                    code,
                    Some(instance.started_at),
                    Some(instance.id.clone()),
                    now,
                );
                // As a kubelet: a failed container's log tail becomes its termination message
                // when it asks for that, so `kubectl describe` (and waits) can show why.
                if code != 0
                    && container.termination_message_policy.as_deref()
                        == Some("FallbackToLogsOnError")
                {
                    let tail = handle.current_log_tail(name);
                    term.message = (!tail.trim().is_empty()).then_some(tail);
                }
                instance.release().await;
                if stopped {
                    update(&mut |c| {
                        c.run = Run::Terminated(term.clone());
                        c.ready = false;
                        c.done = true;
                    });
                    return;
                }
                (term, ran)
            }
        };
        let code = term.exit_code;
        update(&mut |c| {
            c.run = Run::Terminated(term.clone());
            c.ready = false;
        });
        if !policy.restarts(code) {
            update(&mut |c| c.done = true);
            return;
        }
        if ran >= BACKOFF_RESET_AFTER {
            backoff = RESTART_BACKOFF;
        }
        let message = format!(
            "back-off {}s restarting failed container={name} pod={}_{}({})",
            backoff.as_secs(),
            handle.name,
            handle.namespace,
            handle.uid
        );
        update(&mut |c| {
            c.last = Some(term.clone());
            c.restarts += 1;
            c.set_waiting("CrashLoopBackOff", Some(message.clone()));
        });
        ctx.event(
            pod,
            true,
            "BackOff",
            &format!(
                "Back-off restarting failed container {name} in pod {}",
                handle.name
            ),
        );
        if pause(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(RESTART_BACKOFF_MAX);
    }
}

/// Watches a run: its exit, its readiness probe, the pod's stop.
async fn watch(
    handle: &PodHandle,
    instance: &Instance,
    container: &Container,
    probe: Option<&k8s_openapi::api::core::v1::Probe>,
    stop: &mut Stop,
    (is_init, index): (bool, usize),
) -> Outcome {
    let start = tokio::time::Instant::now();
    let mut next_probe = probe
        .map(|p| start + Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64));
    let mut failures = 0;
    let mut ready = false;
    loop {
        if let Some(code) = instance.exit_code() {
            return Outcome::Exited(code);
        }
        if stop_requested(stop).is_some() {
            return Outcome::Stopped(instance.terminate(stop).await);
        }
        if let (Some(p), Some(due)) = (probe, next_probe)
            && tokio::time::Instant::now() >= due
        {
            let ok = probe::check(p, handle.ip, container).await;
            let threshold = p.failure_threshold.unwrap_or(3).max(1);
            if ok {
                failures = 0;
                if !ready {
                    ready = true;
                    handle.update_container(is_init, index, |c| c.ready = true);
                }
            } else {
                failures += 1;
                if ready && failures >= threshold {
                    ready = false;
                    handle.update_container(is_init, index, |c| c.ready = false);
                }
            }
            next_probe = Some(tokio::time::Instant::now() + probe::period(p));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.wait_for(Option::is_some) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    #[test]
    fn a_launch_expands_references_then_rewrites_mount_paths_once() {
        let container = Container {
            name: "web".into(),
            image: Some("r/u/bursting-engine:1".into()),
            args: Some(vec![
                "webhook".into(),
                "--listen=$(POD_IP):8443".into(),
                "--tls-cert-file=$(CERTS)/tls.crt".into(),
                "$$(POD_IP)".into(),
            ]),
            working_dir: Some("/tmp".into()),
            volume_mounts: Some(vec![VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            }]),
            ..Container::default()
        };
        let env = vec![
            ("POD_IP".to_owned(), "127.100.0.3".to_owned()),
            ("CERTS".to_owned(), "/tmp/certs".to_owned()),
            ("HOME".to_owned(), "/home/app".to_owned()),
        ];
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("volumes/tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let mounts = Mounts::new([("/tmp".to_owned(), tmp.clone())]);
        let base = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("HOME".to_owned(), "/pod".to_owned()),
        ];
        let l = launch(
            Path::new("/bin/engine"),
            &container,
            env,
            base,
            &mounts,
            dir.path(),
        )
        .unwrap();
        assert_eq!(l.program, Path::new("/bin/engine"));
        assert_eq!(
            l.args,
            vec![
                "webhook".to_owned(),
                "--listen=127.100.0.3:8443".to_owned(),
                format!("--tls-cert-file={}/certs/tls.crt", tmp.display()),
                "$(POD_IP)".to_owned(),
            ]
        );
        assert_eq!(
            l.env,
            vec![
                ("PATH".to_owned(), "/bin".to_owned()),
                ("POD_IP".to_owned(), "127.100.0.3".to_owned()),
                ("CERTS".to_owned(), format!("{}/certs", tmp.display())),
                ("HOME".to_owned(), "/home/app".to_owned()),
            ]
        );
        assert_eq!(l.workdir, tmp);
    }

    #[test]
    fn a_command_that_is_not_the_image_binary_does_not_start() {
        let container = Container {
            name: "c".into(),
            image: Some("r/u/bursting-engine:1".into()),
            command: Some(vec!["bash".into()]),
            ..Container::default()
        };
        let err = launch(
            Path::new("/bin/engine"),
            &container,
            vec![],
            vec![],
            &Mounts::default(),
            Path::new("/"),
        )
        .unwrap_err();
        assert!(err.contains("\"bash\""), "{err}");
    }
}
