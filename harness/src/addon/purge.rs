//! `burstcert cci purge`: the manual clean-up of a cluster deleted without uninstall (§8, UN-04).
//!
//! It reads what the cluster left on CCI (its `bursting-{id}` namespace), then runs the add-on's
//! own gc (`bursting-engine gc --scope namespace`, the command the uninstall gc jobs run) against
//! the same endpoint, and reports what it removed and the billable time those pods had run up
//! (which stops with them).

use std::fmt;
use std::process::Command;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::cci::CciClient;
use crate::error::{Error, Result};

/// What a purge removed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PurgeReport {
    /// The CCI namespace purged.
    pub namespace: String,
    /// Pods removed.
    pub pods: usize,
    /// Of those, pods that were running (billable).
    pub running: usize,
    /// vCPU-seconds the running pods had accrued when they were stopped.
    pub vcpu_seconds: f64,
    /// GiB-seconds of memory the running pods had accrued when they were stopped.
    pub gib_seconds: f64,
    /// The gc's own summary line.
    pub gc_summary: String,
}

impl fmt::Display for PurgeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "purged {}: {} pods ({} running, billable until now: {:.0} vCPU-s, {:.0} GiB-s, now stopped); {}",
            self.namespace,
            self.pods,
            self.running,
            self.vcpu_seconds,
            self.gib_seconds,
            self.gc_summary
        )
    }
}

/// Parses a CPU quantity to cores (`500m` → 0.5) or memory to GiB (`1Gi` → 1.0); 0 when unknown.
fn amount(q: Option<&Quantity>, memory: bool) -> f64 {
    let Some(text) = q.map(|q| q.0.as_str()) else {
        return 0.0;
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().unwrap_or(0.0);
    let factor = match (memory, unit) {
        (false, "m") => 0.001,
        (false, "") => 1.0,
        (true, "Ki") => 1.0 / 1024.0 / 1024.0,
        (true, "Mi") => 1.0 / 1024.0,
        (true, "Gi") => 1.0,
        (true, "Ti") => 1024.0,
        (true, "") => 1.0 / 1024.0 / 1024.0 / 1024.0,
        _ => 0.0,
    };
    n * factor
}

/// Sums what the billable (running) pods of a list run up to now: (running, vCPU-s, GiB-s).
pub fn billable(pods: &[cci_api::Pod], now: k8s_openapi::jiff::Timestamp) -> (usize, f64, f64) {
    let mut out = (0, 0.0, 0.0);
    for pod in pods {
        let Some(status) = pod.status.as_ref() else {
            continue;
        };
        if status.phase.as_deref() != Some("Running") {
            continue;
        }
        let seconds = status
            .start_time
            .as_ref()
            .map(|t| now.duration_since(t.0).as_secs_f64().max(0.0))
            .unwrap_or(0.0);
        let (mut cpu, mut mem) = (0.0, 0.0);
        for c in &pod.spec.containers {
            let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
            cpu += amount(requests.and_then(|r| r.get("cpu")), false);
            mem += amount(requests.and_then(|r| r.get("memory")), true);
        }
        out.0 += 1;
        out.1 += cpu * seconds;
        out.2 += mem * seconds;
    }
    out
}

/// Purges cluster `cluster_id` from the CCI endpoint of `cci` (its URL, credential and CA): what it
/// left is listed, then removed by the add-on's gc; idempotent (a cluster with nothing left
/// reports zeros).
pub async fn purge(cci: &CciClient, cluster_id: &str) -> Result<PurgeReport> {
    let endpoint = cci.url();
    let namespace = cci_api::namespace_for_cluster(cluster_id);
    let pods = cci.pods(&namespace).await?;
    let (running, vcpu_seconds, gib_seconds) = billable(&pods, k8s_openapi::jiff::Timestamp::now());
    // May run `cargo build` (from a workspace): not on the runtime's threads.
    let engine = tokio::task::spawn_blocking(|| crate::binaries::resolve(crate::binaries::ENGINE))
        .await
        .map_err(|e| crate::Error::Step {
            step: "find the engine binary".into(),
            detail: e.to_string(),
        })??;
    let mut args = vec![
        "gc".to_owned(),
        "--scope".into(),
        "namespace".into(),
        "--cci-endpoint".into(),
        endpoint.to_owned(),
        "--cluster-id".into(),
        cluster_id.to_owned(),
    ];
    // The gc reads the CA from a file (as in the add-on's pods): one of this purge's own,
    // removed when it is dropped.
    let ca_file = match cci.ca_pem() {
        Some(pem) => {
            let file = CaFile::write(&namespace, pem)?;
            args.extend(["--cci-ca-file".into(), file.0.display().to_string()]);
            Some(file)
        }
        None => None,
    };
    // The credential goes to the gc through its environment, never its command line.
    let credential: Vec<(&str, String)> = match cci.auth() {
        crate::cci::CciAuth::Token(token) => vec![(crate::certify::TOKEN_ENV, token.clone())],
        crate::cci::CciAuth::AkSk(pair) => vec![
            (cci_api::aksk::ACCESS_KEY_ENV, pair.access_key().to_owned()),
            (cci_api::aksk::SECRET_KEY_ENV, pair.secret_key().to_owned()),
        ],
    };
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&engine)
            .args(&args)
            .env_remove(crate::certify::TOKEN_ENV)
            .env_remove(cci_api::aksk::ACCESS_KEY_ENV)
            .env_remove(cci_api::aksk::SECRET_KEY_ENV)
            .envs(credential)
            .output()
    });
    let output = output
        .await
        .map_err(|e| Error::Step {
            step: format!("purge {namespace}"),
            detail: e.to_string(),
        })?
        .map_err(|source| Error::Io {
            context: format!("run bursting-engine gc for {namespace}"),
            source,
        })?;
    drop(ca_file);
    if !output.status.success() {
        return Err(Error::Step {
            step: format!("purge {namespace} (bursting-engine gc --scope namespace)"),
            detail: format!(
                "exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    Ok(PurgeReport {
        namespace,
        pods: pods.len(),
        running,
        vcpu_seconds,
        gib_seconds,
        gc_summary: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    })
}

/// A CA bundle written for the gc to read, removed on drop.
struct CaFile(std::path::PathBuf);

impl CaFile {
    fn write(namespace: &str, pem: &str) -> Result<Self> {
        // Not environment state: a counter that keeps two CA files of one process apart.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "burstcert-purge-{namespace}-{}-{n}.crt",
            std::process::id()
        ));
        std::fs::write(&path, pem).map_err(|source| Error::Io {
            context: format!("write {}", path.display()),
            source,
        })?;
        Ok(Self(path))
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("500m", false, 0.5)]
    #[case("2", false, 2.0)]
    #[case("1Gi", true, 1.0)]
    #[case("512Mi", true, 0.5)]
    fn quantities_read_as_cores_and_gib(#[case] q: &str, #[case] memory: bool, #[case] want: f64) {
        assert!((amount(Some(&Quantity(q.into())), memory) - want).abs() < 1e-9);
    }

    #[test]
    fn only_running_pods_are_billable_for_the_time_they_ran() {
        let now: k8s_openapi::jiff::Timestamp = "2026-11-26T12:00:10Z".parse().unwrap();
        let pod = |phase: &str| -> cci_api::Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]},
                "status": {"phase": phase, "startTime": "2026-11-26T12:00:00Z"}
            }))
            .unwrap()
        };
        let (running, cpu, mem) = billable(&[pod("Running"), pod("Pending")], now);
        assert_eq!(running, 1);
        assert!((cpu - 20.0).abs() < 1e-9);
        assert!((mem - 40.0).abs() < 1e-9);
    }
}
