//! Waiting on conditions with deadlines, never with fixed sleeps.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// Environment variable scaling every patience (e.g. `2` on a slow machine).
pub const PATIENCE_ENV: &str = "BURSTCERT_PATIENCE";

/// `base` scaled by [`PATIENCE_ENV`].
pub fn patience(base: Duration) -> Duration {
    let factor = std::env::var(PATIENCE_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| *f > 0.0)
        .unwrap_or(1.0);
    base.mul_f64(factor)
}

/// What a wait's check saw last, for the diagnosis when the deadline passes: the check
/// [`note`](LastSeen::note)s it, the diagnosis puts it first ([`LastSeen::before`]).
#[derive(Debug, Default)]
pub struct LastSeen(std::sync::Mutex<String>);

impl LastSeen {
    /// Records what the check saw this time.
    pub fn note(&self, seen: String) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    /// What was seen last (empty if nothing yet).
    pub fn last(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What was seen last, then the `diagnosis` on the next line.
    pub async fn before(&self, diagnosis: impl Future<Output = String>) -> String {
        format!("{}\n{}", self.last(), diagnosis.await)
    }
}

/// Polls `check` until it yields `Some`, or fails after `base` (scaled by [`patience`]) with
/// `what` and the diagnosis `diagnose` gathers at that moment.
///
/// `check` errors are treated as "not yet" (an API server restarting is not a failure of the
/// condition) and the last one is part of the diagnosis; except [`Error::Stuck`]: a container
/// that will not start ends the wait at once (see [`crate::stuck`]).
pub async fn until<T, F, Fut, D, DFut>(
    what: &str,
    base: Duration,
    check: F,
    diagnose: D,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    until_exactly(what, patience(base), check, diagnose).await
}

/// [`until`] with a deadline that is behaviour, not patience: `limit` is not scaled by
/// [`PATIENCE_ENV`] (e.g. the add-on's own gc timeout, which a scenario measures).
pub async fn until_exactly<T, F, Fut, D, DFut>(
    what: &str,
    limit: Duration,
    mut check: F,
    diagnose: D,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
    D: FnOnce() -> DFut,
    DFut: Future<Output = String>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut interval = Duration::from_millis(100);
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(Error::Stuck { detail, .. }) => {
                return Err(Error::Stuck {
                    what: what.to_owned(),
                    detail,
                });
            }
            Err(e) => last_error = Some(e.to_string()),
        }
        if tokio::time::Instant::now() >= deadline {
            let mut diagnosis = diagnose().await;
            if let Some(e) = last_error {
                diagnosis = format!("last error: {e}\n{diagnosis}");
            }
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: limit.as_secs(),
                diagnosis,
            });
        }
        // Poll the cluster gently: start fast, back off to 1 s.
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(Duration::from_secs(1));
    }
}

/// The blocking twin of [`until`], for code without a runtime: polls `check` until it yields
/// `Some`, or returns the timeout error with `diagnose()`'s text.
pub fn until_blocking<T>(
    what: &str,
    base: Duration,
    mut check: impl FnMut() -> Option<T>,
    diagnose: impl FnOnce() -> String,
) -> Result<T> {
    let limit = patience(base);
    let deadline = std::time::Instant::now() + limit;
    let mut interval = Duration::from_millis(50);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                seconds: limit.as_secs(),
                diagnosis: diagnose(),
            });
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn until_returns_the_value_once_the_condition_holds() {
        let calls = AtomicU32::new(0);
        let got = until(
            "three calls",
            Duration::from_secs(60),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                Ok((n >= 3).then_some(n))
            },
            || async { String::new() },
        )
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn until_stops_at_once_on_a_stuck_container_and_names_the_wait() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let err = until::<(), _, _, _, _>(
            "the add-on 1.5.18 to run",
            Duration::from_secs(120),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Stuck {
                    what: String::new(),
                    detail: "container x cannot start: CrashLoopBackOff".into(),
                })
            },
            || async { String::new() },
        )
        .await
        .unwrap_err()
        .to_string();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(
            err,
            "gave up waiting for the add-on 1.5.18 to run: container x cannot start: CrashLoopBackOff"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn until_times_out_with_the_diagnosis_and_the_last_error() {
        let err = until::<(), _, _, _, _>(
            "the impossible",
            Duration::from_secs(5),
            || async {
                Err(Error::Step {
                    step: "probe".into(),
                    detail: "refused".into(),
                })
            },
            || async { "pods: none".to_owned() },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("the impossible"), "{err}");
        assert!(err.contains("pods: none"), "{err}");
        assert!(err.contains("refused"), "{err}");
    }
}
