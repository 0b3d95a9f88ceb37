//! Billing and concurrency bookkeeping: pure, O(1) per pod transition.
//!
//! - **Ledger.** A pod is billable while it runs (from the moment it turns `Running` until it
//!   finishes or is deleted; a container waiting to restart still holds its resources, so it
//!   still counts). Each namespace (keyed by tenant and name, so it outlives the namespace: what
//!   was left behind stays visible) accrues pod-seconds, vCPU-seconds and GiB-seconds of the
//!   pods' sizes.
//! - **Peaks.** Each pod's `Running` period and its active period (created, until it finishes
//!   or is deleted) is recorded with its labels and the `resourceVersion`s of its start and end,
//!   which order all changes; the peak for a label selector is a sweep over those intervals.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Instant;

use crate::flavour::Flavour;
use crate::selector::LabelSelector;

/// What one namespace has cost so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bill {
    /// The tenant that owned the namespace.
    pub tenant: String,
    /// The namespace.
    pub namespace: String,
    /// Whether the namespace still exists.
    pub exists: bool,
    /// Pods billed right now.
    pub running_pods: u32,
    /// Billed pod time, in seconds.
    pub pod_seconds: f64,
    /// Billed vCPU time (size × time), in vCPU-seconds.
    pub vcpu_seconds: f64,
    /// Billed memory (size × time), in GiB-seconds.
    pub memory_gib_seconds: f64,
}

#[derive(Clone, Debug)]
struct Account {
    exists: bool,
    running: u32,
    cpu_milli: u64,
    mem_mib: u64,
    pod_ms: u128,
    cpu_milli_ms: u128,
    mem_mib_ms: u128,
    since: Instant,
}

impl Account {
    fn accrue(&mut self, at: Instant) {
        let ms = at.saturating_duration_since(self.since).as_millis();
        self.pod_ms += u128::from(self.running) * ms;
        self.cpu_milli_ms += u128::from(self.cpu_milli) * ms;
        self.mem_mib_ms += u128::from(self.mem_mib) * ms;
        self.since = self.since.max(at);
    }
}

/// The billing ledger of every namespace there ever was.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    accounts: BTreeMap<(String, String), Account>,
}

impl Ledger {
    fn account(&mut self, tenant: &str, namespace: &str, at: Instant) -> &mut Account {
        self.accounts
            .entry((tenant.to_owned(), namespace.to_owned()))
            .or_insert_with(|| Account {
                exists: true,
                running: 0,
                cpu_milli: 0,
                mem_mib: 0,
                pod_ms: 0,
                cpu_milli_ms: 0,
                mem_mib_ms: 0,
                since: at,
            })
    }

    /// The namespace exists (again) from `at`.
    pub fn open(&mut self, tenant: &str, namespace: &str, at: Instant) {
        self.account(tenant, namespace, at).exists = true;
    }

    /// The namespace is gone (its pods were stopped first).
    pub fn close(&mut self, tenant: &str, namespace: &str, at: Instant) {
        let account = self.account(tenant, namespace, at);
        account.accrue(at);
        account.exists = false;
    }

    /// A pod of `size` starts being billed at `at`.
    pub fn start(&mut self, tenant: &str, namespace: &str, size: Flavour, at: Instant) {
        let account = self.account(tenant, namespace, at);
        account.accrue(at);
        account.running += 1;
        account.cpu_milli += u64::from(size.cpu_milli);
        account.mem_mib += u64::from(size.mem_mib);
    }

    /// A pod of `size` stops being billed at `at`.
    pub fn stop(&mut self, tenant: &str, namespace: &str, size: Flavour, at: Instant) {
        let account = self.account(tenant, namespace, at);
        account.accrue(at);
        account.running = account.running.saturating_sub(1);
        account.cpu_milli = account.cpu_milli.saturating_sub(u64::from(size.cpu_milli));
        account.mem_mib = account.mem_mib.saturating_sub(u64::from(size.mem_mib));
    }

    /// Every namespace's bill up to `now`, by tenant and namespace.
    pub fn bills(&self, now: Instant) -> Vec<Bill> {
        self.accounts
            .iter()
            .map(|((tenant, namespace), account)| {
                let mut account = account.clone();
                account.accrue(now);
                Bill {
                    tenant: tenant.clone(),
                    namespace: namespace.clone(),
                    exists: account.exists,
                    running_pods: account.running,
                    pod_seconds: account.pod_ms as f64 / 1000.0,
                    vcpu_seconds: account.cpu_milli_ms as f64 / 1e6,
                    memory_gib_seconds: account.mem_mib_ms as f64 / 1024.0 / 1000.0,
                }
            })
            .collect()
    }
}

/// Which period of a pod an interval records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// From creation until it finishes or is deleted.
    Active,
    /// While its phase is `Running`.
    Running,
}

#[derive(Clone, Debug)]
struct Interval {
    period: Period,
    labels: Arc<BTreeMap<String, String>>,
    start: (u64, Instant),
    end: Option<(u64, Instant)>,
}

/// The highest number of pods at once, for one period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Peak {
    /// The most at once.
    pub peak: u32,
    /// How many now.
    pub current: u32,
    /// The `resourceVersion` of the change that first reached the peak (0 when never).
    pub peak_resource_version: u64,
}

/// The intervals of every namespace's pods.
#[derive(Clone, Debug, Default)]
pub struct Peaks {
    by_namespace: BTreeMap<String, Vec<Interval>>,
}

/// The index of an open interval, to close it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntervalId(usize);

impl Peaks {
    /// Opens an interval at change `rv`.
    pub fn open(
        &mut self,
        namespace: &str,
        period: Period,
        labels: Arc<BTreeMap<String, String>>,
        rv: u64,
        at: Instant,
    ) -> IntervalId {
        let intervals = self.by_namespace.entry(namespace.to_owned()).or_default();
        intervals.push(Interval {
            period,
            labels,
            start: (rv, at),
            end: None,
        });
        IntervalId(intervals.len() - 1)
    }

    /// Closes an interval at change `rv`.
    pub fn close(&mut self, namespace: &str, id: IntervalId, rv: u64, at: Instant) {
        if let Some(interval) = self
            .by_namespace
            .get_mut(namespace)
            .and_then(|intervals| intervals.get_mut(id.0))
            && interval.end.is_none()
        {
            interval.end = Some((rv, at));
        }
    }

    /// The peak of `period` among the pods of `namespace` that `selector` selects.
    pub fn peak(&self, namespace: &str, selector: &LabelSelector, period: Period) -> Peak {
        let mut changes: Vec<(u64, i32)> = Vec::new();
        for interval in self.by_namespace.get(namespace).into_iter().flatten() {
            if interval.period != period || !selector.matches(Some(&interval.labels)) {
                continue;
            }
            changes.push((interval.start.0, 1));
            if let Some((rv, _)) = interval.end {
                changes.push((rv, -1));
            }
        }
        changes.sort_unstable();
        let mut peak = Peak::default();
        let mut current: i64 = 0;
        for (rv, delta) in changes {
            current += i64::from(delta);
            let now = u32::try_from(current.max(0)).unwrap_or(u32::MAX);
            if now > peak.peak {
                peak.peak = now;
                peak.peak_resource_version = rv;
            }
        }
        peak.current = u32::try_from(current.max(0)).unwrap_or(u32::MAX);
        peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn running_pods_accrue_and_stopped_ones_do_not() {
        let t0 = Instant::now();
        let small = Flavour::new(500, 1024);
        let mut ledger = Ledger::default();
        ledger.open("a", "ns", t0);
        ledger.start("a", "ns", small, t0);
        ledger.start("a", "ns", small, t0 + Duration::from_secs(10));
        ledger.stop("a", "ns", small, t0 + Duration::from_secs(20));
        let bill = &ledger.bills(t0 + Duration::from_secs(30))[0];
        // 20 s + 10 s + 10 s
        assert_eq!(bill.pod_seconds, 40.0);
        assert_eq!(bill.vcpu_seconds, 20.0);
        assert_eq!(bill.memory_gib_seconds, 40.0);
        assert_eq!(bill.running_pods, 1);
        assert!(bill.exists);
    }

    #[test]
    fn the_peak_counts_only_selected_overlapping_intervals() {
        let t = Instant::now();
        let web = Arc::new(BTreeMap::from([("app".to_owned(), "web".to_owned())]));
        let db = Arc::new(BTreeMap::from([("app".to_owned(), "db".to_owned())]));
        let mut peaks = Peaks::default();
        let a = peaks.open("ns", Period::Running, web.clone(), 1, t);
        let b = peaks.open("ns", Period::Running, web.clone(), 2, t);
        peaks.close("ns", a, 3, t);
        let _c = peaks.open("ns", Period::Running, web.clone(), 4, t);
        peaks.open("ns", Period::Running, db, 5, t);
        peaks.close("ns", b, 6, t);
        let selector = "app=web".parse().unwrap();
        assert_eq!(
            peaks.peak("ns", &selector, Period::Running),
            Peak {
                peak: 2,
                current: 1,
                peak_resource_version: 2
            }
        );
        let all = LabelSelector::default();
        assert_eq!(peaks.peak("ns", &all, Period::Running).peak, 3);
        assert_eq!(peaks.peak("other", &all, Period::Running), Peak::default());
    }
}
