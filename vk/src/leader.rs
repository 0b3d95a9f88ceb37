//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas of one virtual
//! kubelet (the add-on's `ha` spec: two of each component) never drive the node at once: one
//! leads, the others wait, and one of them takes over when the leader stops renewing.
//!
//! The protocol is client-go's, simplified:
//!
//! - The lease names its holder (`holderIdentity`), when it last renewed (`renewTime`) and for
//!   how long that holds (`leaseDurationSeconds`). A candidate takes a lease that is free (no
//!   holder) or expired (`renewTime + leaseDurationSeconds` in the past), and renews one it
//!   holds; otherwise it waits ([`step`], pure). Every write is a replace at the
//!   `resourceVersion` read, so of two candidates racing for a lease one gets a conflict.
//! - The leader renews every [`LeaderElection::retry_period`]; when it has not managed to for
//!   [`LeaderElection::renew_deadline`], or finds another holder, it has lost the lease and must
//!   stop at once ([`Leadership::hold`] returns); the caller exits and its pod restarts as a
//!   candidate. The deadline is shorter than the duration, so a leader stops before anyone
//!   else may take over.
//! - On shutdown the leader gives the lease up ([`Leadership::release`]), so its successor need
//!   not wait out the duration (a rolling upgrade does not lose 15 s).
//! - Identity is the pod's name: a container restarted in the same pod (a crash) renews its own
//!   lease at once instead of waiting for it to expire.
//!
//! NB: expiry is judged from the lease's `renewTime` against the local clock, so replicas'
//! clocks must agree to well under the lease duration (client-go instead times the observed
//! record; on one cluster's nodes, NTP makes the two the same).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::error::api_code;
use crate::{Error, Result};

/// Default [`LeaderElection::lease_duration`] (client-go's).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
/// Default [`LeaderElection::renew_deadline`] (client-go's).
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// Default [`LeaderElection::retry_period`] (client-go's).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Which lease to elect on, as whom, and its timings.
#[derive(Clone, Debug)]
pub struct LeaderElection {
    /// Namespace of the lease (the add-on's: `kube-system`).
    pub namespace: String,
    /// Name of the lease.
    pub name: String,
    /// This candidate's identity, unique among the replicas (the pod's name).
    pub identity: String,
    /// How long a renewal holds.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal; shorter than
    /// [`lease_duration`](Self::lease_duration).
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate looks again.
    pub retry_period: Duration,
}

/// What a candidate does with the lease as it finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Free or expired (or not there): take it.
    Take,
    /// Ours: renew it.
    Renew,
    /// Someone else's, valid for this long yet.
    Wait(Duration),
}

/// The [`Step`] for `identity` at `now`, given the lease's spec (`None`: no lease yet).
pub fn step(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Step {
    let Some(spec) = spec else {
        return Step::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Step::Take;
    }
    if holder == identity {
        return Step::Renew;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return Step::Take; // held, but never renewed: nothing says it is still valid
    };
    let duration_ms = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0)) * 1000;
    let left_ms = renewed.0.as_millisecond() + duration_ms - now.as_millisecond();
    if left_ms <= 0 {
        Step::Take
    } else {
        Step::Wait(Duration::from_millis(left_ms.unsigned_abs()))
    }
}

impl LeaderElection {
    /// An election on lease `namespace/name` as `identity`, with the default timings.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
        }
    }

    fn api(&self, client: &Client) -> Api<Lease> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn what(&self) -> String {
        format!("lease {}/{}", self.namespace, self.name)
    }

    /// Wait until this candidate holds the lease. Errors only on a refusal that waiting cannot
    /// cure (e.g. no RBAC on leases); transient API errors are retried.
    pub async fn acquire(&self, client: &Client) -> Result<Leadership> {
        let mut waiting_for = None;
        loop {
            match self.try_acquire(client).await {
                Ok(None) => {
                    tracing::info!(lease = %self.what(), identity = %self.identity, "leading");
                    return Ok(Leadership {
                        client: client.clone(),
                        election: self.clone(),
                    });
                }
                Ok(Some((holder, left))) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.what(), %holder, valid_for = ?left, "another replica leads; waiting");
                        waiting_for = Some(holder);
                    }
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(lease = %self.what(), error = %e, "leader election: retrying");
                }
                Err(e) => return Err(e),
            }
            tokio::time::sleep(self.retry_period).await;
        }
    }

    /// One attempt: `Ok(None)` when the lease is now ours, `Ok(Some((holder, valid for)))` when
    /// someone else holds it.
    async fn try_acquire(&self, client: &Client) -> Result<Option<(String, Duration)>> {
        let api = self.api(client);
        let current = api
            .get_opt(&self.name)
            .await
            .map_err(|e| Error::kube(format!("read {}", self.what()), e))?;
        let now = Timestamp::now();
        match step(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        ) {
            Step::Wait(left) => {
                let holder = current
                    .and_then(|l| l.spec?.holder_identity)
                    .unwrap_or_default();
                Ok(Some((holder, left)))
            }
            step @ (Step::Take | Step::Renew) => {
                self.write(client, current, now, step == Step::Take).await?;
                Ok(None)
            }
        }
    }

    /// A new lease naming us, acquired and renewed `now`, with no transition yet.
    fn new_lease(&self, seconds: i32, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(seconds),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Create the lease for us, or replace `current` (at its resourceVersion) naming us, renewed
    /// `now`; `taken` counts a transition.
    async fn write(
        &self,
        client: &Client,
        current: Option<Lease>,
        now: Timestamp,
        taken: bool,
    ) -> Result<()> {
        let api = self.api(client);
        let seconds = i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let result = match current {
            None => {
                let lease = self.new_lease(seconds, now);
                api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if taken {
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.holder_identity = Some(self.identity.clone());
                spec.lease_duration_seconds = Some(seconds);
                spec.renew_time = Some(MicroTime(now));
                lease.metadata.managed_fields = None;
                api.replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        result
            .map(|_| ())
            .map_err(|e| Error::kube(format!("write {}", self.what()), e))
    }
}

/// The lease, held. Keep it with [`hold`](Self::hold); give it up with
/// [`release`](Self::release).
#[derive(Clone)]
pub struct Leadership {
    client: Client,
    election: LeaderElection,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("election", &self.election)
            .finish_non_exhaustive()
    }
}

impl Leadership {
    /// Renew the lease every retry period until leadership is lost, then return why: another
    /// holder took it, or no renewal succeeded for the renew deadline. The caller must stop
    /// leading at once (exit, and let its pod restart as a candidate).
    pub async fn hold(&self) -> Error {
        let e = &self.election;
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(e.retry_period).await;
            match e.try_acquire(&self.client).await {
                Ok(None) => last_renewed = tokio::time::Instant::now(),
                Ok(Some((holder, _))) => {
                    return Error::TaskStopped(format!(
                        "lost the leadership of {}: {holder} holds it now",
                        e.what()
                    ));
                }
                Err(err) => {
                    tracing::warn!(lease = %e.what(), error = %err, "could not renew the leader lease");
                    if last_renewed.elapsed() >= e.renew_deadline {
                        return Error::TaskStopped(format!(
                            "lost the leadership of {}: not renewed for {:?} ({err})",
                            e.what(),
                            e.renew_deadline
                        ));
                    }
                }
            }
        }
    }

    /// Give the lease up if it is still ours, so a successor can take it at once. Best effort:
    /// a failure only means the successor waits for the lease to expire.
    pub async fn release(&self) {
        let e = &self.election;
        match self.give_up().await {
            Ok(true) => tracing::info!(lease = %e.what(), "released the leader lease"),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(lease = %e.what(), error = %err, "could not release the leader lease")
            }
        }
    }

    /// [`release`](Self::release)'s work, apart from its logging so that tests can see the
    /// outcome: `Ok(true)` when the lease was ours and now has no holder, `Ok(false)` when there
    /// was nothing to give up (no lease, another holder, or a conflict: renewed or taken
    /// meanwhile).
    async fn give_up(&self) -> Result<bool> {
        let e = &self.election;
        let api = e.api(&self.client);
        let Some(lease) = api
            .get_opt(&e.name)
            .await
            .map_err(|err| Error::kube(format!("read {}", e.what()), err))?
        else {
            return Ok(false);
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(e.identity.as_str());
        if !ours {
            return Ok(false);
        }
        let mut released = lease.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
        }
        match api
            .replace(&lease.name_any(), &PostParams::default(), &released)
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if api_code(&err) == Some(409) => Ok(false),
            Err(err) => Err(Error::kube(format!("release {}", e.what()), err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lease_names_the_candidate_acquired_and_renewed_now_with_no_transition() {
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let lease =
            LeaderElection::new("kube-system", "bursting-engine", "pod-a").new_lease(15, now);
        assert_eq!(lease.metadata.name.as_deref(), Some("bursting-engine"));
        assert_eq!(lease.metadata.namespace.as_deref(), Some("kube-system"));
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.lease_transitions, Some(0));
    }
    use rstest::rstest;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn held(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[rstest]
    #[case::no_lease(None, 0, Step::Take)]
    #[case::no_holder(Some(LeaseSpec::default()), 0, Step::Take)]
    #[case::released(Some(LeaseSpec { holder_identity: Some(String::new()), ..held("x", 0, 15) }), 1, Step::Take)]
    #[case::ours(Some(held("me", 0, 15)), 100, Step::Renew)]
    #[case::theirs_valid(Some(held("other", 0, 15)), 10, Step::Wait(Duration::from_secs(5)))]
    #[case::theirs_expired_exactly(Some(held("other", 0, 15)), 15, Step::Take)]
    #[case::theirs_expired(Some(held("other", 0, 15)), 60, Step::Take)]
    #[case::theirs_never_renewed(Some(LeaseSpec { renew_time: None, ..held("other", 0, 15) }), 0, Step::Take)]
    fn a_candidate_takes_a_free_or_expired_lease_renews_its_own_and_waits_for_a_valid_one(
        #[case] spec: Option<LeaseSpec>,
        #[case] now: i64,
        #[case] expected: Step,
    ) {
        assert_eq!(step(spec.as_ref(), "me", at(now)), expected);
    }

    #[test]
    fn the_defaults_let_a_leader_stop_before_anyone_may_take_over() {
        let e = LeaderElection::new("kube-system", "l", "me");
        assert!(e.renew_deadline < e.lease_duration);
        assert!(e.retry_period < e.renew_deadline);
    }
}

#[cfg(test)]
#[path = "leader_scripted.rs"]
mod scripted;
