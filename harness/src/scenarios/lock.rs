//! LOCK: capacity exhaustion and the node lock (BEHAVIOR.md §7).
//!
//! The lock is cluster-wide state (the one virtual node), so these scenarios run one after the
//! other in their own test binary. Each clears its fault and leaves the node uncordoned when it
//! ends, failed or not.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

use super::{BodyFuture, POLICY_LABEL, cluster_uid_of, converge};
use crate::addon::lifecycle;
use crate::cluster::VIRTUAL_NODE;
use crate::env::{PENDING_LOCK_SECONDS, lock_seconds};
use crate::mock_admin::{FaultGuard, MockAdmin};
use crate::progress::Progress;
use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::{fixtures, wait};
use mock_cci::{Fault, Scope};

/// The engine's annotation holding the lock's end.
pub const ANNOTATION_LOCKED_UNTIL: &str = "bursting.cci.io/locked-until";
/// The pod status reason of a sold-out refusal.
const REASON_SOLD_OUT: &str = "SoldOut";
const PATIENCE: Duration = Duration::from_secs(60);

/// How much later than the engine cordoned the node the harness may see it: one poll.
const LOCK_SEEN_LATE: Duration = Duration::from_secs(1);
/// Label naming each pod of these scenarios.
const POD_LABEL: &str = "lock";

fn nodes(s: &Scenario) -> Api<Node> {
    Api::all(s.client.clone())
}

fn cordoned(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

fn locked_until(node: &Node) -> Option<&str> {
    node.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_LOCKED_UNTIL)
        .map(String::as_str)
}

async fn virtual_node(s: &Scenario) -> crate::Result<Node> {
    nodes(s)
        .get(VIRTUAL_NODE)
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("get node {VIRTUAL_NODE}"),
            source,
        })
}

async fn pod(s: &Scenario, name: &str) -> crate::Result<Option<Pod>> {
    s.api::<Pod>()
        .get_opt(name)
        .await
        .map_err(|source| crate::Error::Kube {
            context: format!("get pod {name}"),
            source,
        })
}

/// A diagnosis: the node's lock state, then the scenario's.
async fn diagnose(s: &Scenario) -> String {
    let node = match virtual_node(s).await {
        Ok(n) => format!(
            "{VIRTUAL_NODE}: unschedulable={} locked-until={:?}",
            cordoned(&n),
            locked_until(&n)
        ),
        Err(e) => format!("{VIRTUAL_NODE}: {e}"),
    };
    format!("{node}\n{}", s.diagnose().await)
}

/// Creates the seed's nginx pod labelled `enforce`, named `name`.
async fn create_nginx(s: &Scenario, name: &str) -> anyhow::Result<()> {
    let mut pod: Pod = fixtures::load("seed/nginx-pod.yaml")?;
    pod.metadata.name = Some(name.to_owned());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(POLICY_LABEL.into(), "enforce".into());
    labels.insert(POD_LABEL.into(), name.to_owned());
    s.api::<Pod>().create(&PostParams::default(), &pod).await?;
    Ok(())
}

/// Sells CCI out (every size) for this cluster's namespace, until the guard ends.
async fn sell_out(s: &Scenario) -> anyhow::Result<FaultGuard> {
    Ok(s.mock_admin()?
        .set_fault(
            Scope::Namespace(s.cci_namespace().to_owned()),
            Fault::SoldOut {
                flavours: Vec::new(),
            },
        )
        .await?)
}

/// The virtual node's lock, as the harness saw it begin.
struct Lock {
    /// The end the engine recorded in [`ANNOTATION_LOCKED_UNTIL`].
    until: Timestamp,
    /// When the harness first saw the node cordoned (the lock began at most a poll earlier).
    seen: Instant,
}

/// With CCI sold out: a burst pod `name` fails with reason `SoldOut`, never reaches CCI, and
/// the virtual node is cordoned with a lock end recorded.
async fn burst_and_lock(s: &Scenario, name: &str) -> anyhow::Result<Lock> {
    create_nginx(s, name).await?;
    wait::until(
        &format!("pod {name} Failed with reason {REASON_SOLD_OUT}"),
        PATIENCE,
        || async {
            let p = pod(s, name).await?;
            let status = p.as_ref().and_then(|p| p.status.as_ref());
            Ok((status.and_then(|s| s.phase.as_deref()) == Some("Failed")
                && status.and_then(|s| s.reason.as_deref()) == Some(REASON_SOLD_OUT))
            .then_some(()))
        },
        || diagnose(s),
    )
    .await?;
    let (until, seen) = wait::until(
        &format!("{VIRTUAL_NODE} cordoned (SchedulingDisabled) with {ANNOTATION_LOCKED_UNTIL}"),
        PATIENCE,
        || async {
            let node = virtual_node(s).await?;
            Ok(if cordoned(&node) {
                locked_until(&node).map(|until| (until.to_owned(), Instant::now()))
            } else {
                None
            })
        },
        || diagnose(s),
    )
    .await?;
    let until: Timestamp = until
        .parse()
        .with_context(|| format!("{ANNOTATION_LOCKED_UNTIL}={until:?} is not RFC 3339"))?;
    let uid = pod(s, name)
        .await?
        .and_then(|p| p.metadata.uid)
        .context("the failed pod has a uid")?;
    anyhow::ensure!(
        !s.cci_pods()
            .await?
            .iter()
            .any(|p| cluster_uid_of(p) == Some(uid.as_str())),
        "the sold-out pod {name} has a CCI pod"
    );
    Ok(Lock { until, seen })
}

/// A new `enforce` pod `name` waits: Pending, the scheduler found no node for it, no CCI pod
/// (CCI holds `on_cci` pods of the scenario, none of them this one).
async fn create_waiting(s: &Scenario, name: &str, on_cci: usize) -> anyhow::Result<()> {
    create_nginx(s, name).await?;
    wait::until(
        &format!("pod {name} Pending and Unschedulable (the virtual node is locked)"),
        PATIENCE,
        || async {
            let Some(p) = pod(s, name).await? else {
                return Ok(None);
            };
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let status = p.status.as_ref();
            let unschedulable = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "PodScheduled"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("Unschedulable")
                    })
                });
            Ok((bound.is_none()
                && status.and_then(|s| s.phase.as_deref()) == Some("Pending")
                && unschedulable)
                .then_some(()))
        },
        || diagnose(s),
    )
    .await?;
    let held = s.cci_pods().await?.len();
    anyhow::ensure!(
        held == on_cci,
        "{held} CCI pods exist while the node is locked, not {on_cci}: the waiting pod reached CCI"
    );
    Ok(())
}

/// Waits until the waiting pod runs on CCI, and the node is schedulable with no lock recorded.
async fn waiting_runs(s: &Scenario, name: &str) -> anyhow::Result<()> {
    converge(s, &format!("{POD_LABEL}={name}"), 1, PATIENCE).await?;
    wait::until(
        &format!("{VIRTUAL_NODE} schedulable with no {ANNOTATION_LOCKED_UNTIL}"),
        PATIENCE,
        || async {
            let node = virtual_node(s).await?;
            Ok((!cordoned(&node) && locked_until(&node).is_none()).then_some(()))
        },
        || diagnose(s),
    )
    .await?;
    Ok(())
}

/// Clears the fault and leaves the node uncordoned with no lock recorded, whatever happened.
/// The scenario's pods go first: a pod still waiting must not be scheduled by the uncordon
/// into the next scenario's sold-out CCI. Their CCI pods are deleted before it returns (the node
/// and the fault restored first, whatever the engine does), so the engine's deletes are within
/// the scenario whatever its speed: its transcript, which `burstcert diff` compares between
/// runs, holds them every time, not only when the engine was quick.
async fn restore(s: &Scenario, fault: Option<FaultGuard>) -> anyhow::Result<()> {
    s.api::<Pod>()
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await?;
    if let Some(fault) = fault {
        fault.clear().await?;
    }
    let patch = serde_json::json!({
        "metadata": { "annotations": { ANNOTATION_LOCKED_UNTIL: null } },
        "spec": { "unschedulable": null },
    });
    nodes(s)
        .patch(VIRTUAL_NODE, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait::until(
        "the CCI pods of the scenario's deleted pods deleted",
        PATIENCE,
        || async {
            let left = s.cci_pods().await?;
            Ok(left
                .iter()
                .all(|p| p.metadata.deletion_timestamp.is_some())
                .then_some(()))
        },
        || diagnose(s),
    )
    .await?;
    Ok(())
}

/// Runs `body` with CCI sold out for this cluster, then restores the fault and the node.
async fn with_sold_out<'a, F, Fut>(s: &'a Scenario, body: F) -> anyhow::Result<Outcome>
where
    F: FnOnce(&'a Scenario, &'a MockAdmin, u64) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Outcome>> + 'a,
{
    // A lock left by an earlier run must not be mistaken for this one.
    restore(s, None).await?;
    // The guard clears the fault even if the body panics; `restore` clears it first otherwise.
    let fault = sell_out(s).await?;
    let result = body(s, s.mock_admin()?, fault.id()).await;
    let restored = restore(s, Some(fault)).await;
    let outcome = result?;
    restored.context("restoring the node and the mock after the scenario")?;
    Ok(outcome)
}

/// LOCK-01: with CCI sold out, a burst pod fails, the node turns `SchedulingDisabled`, and a
/// new `enforce` pod waits, unscheduled.
pub fn lock_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(with_sold_out(s, |s, _admin, _fault| async move {
        burst_and_lock(s, "sold-out").await?;
        create_waiting(s, "waiting", 0).await?;
        Ok(Outcome::Passed)
    }))
}

/// How long after a lock's recorded end the engine has surely looked at the node again (it reads
/// it at least every 10 s), with a margin.
const ENGINE_RECHECK: Duration = Duration::from_secs(12);

/// LOCK-02: `kubectl uncordon` unlocks the node before its lock ends; once CCI has capacity
/// again the waiting pod runs, and the engine drops its lock rather than cordon again: the node
/// is never seen cordoned again until the lock's recorded end and one engine recheck later (an
/// engine that re-locks and lifts it later ends schedulable too, but was not unlocked by hand).
pub fn lock_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(with_sold_out(s, |s, admin, fault| async move {
        let until = burst_and_lock(s, "sold-out").await?.until;
        create_waiting(s, "waiting", 0).await?;
        admin.clear_fault(fault).await?;
        anyhow::ensure!(
            Timestamp::now() < until,
            "the lock (until {until}) ended before the uncordon; raise {}",
            crate::env::LOCK_SECONDS_ENV
        );
        // `kubectl uncordon`.
        nodes(s)
            .patch(
                VIRTUAL_NODE,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "spec": { "unschedulable": false } })),
            )
            .await?;
        let watch_until = until
            .checked_add(ENGINE_RECHECK)
            .context("the lock end plus a recheck")?;
        let relocked = wait::until(
            &format!(
                "{VIRTUAL_NODE} to stay schedulable until {watch_until} (its lock's end and an engine recheck)"
            ),
            PATIENCE,
            || async {
                let node = virtual_node(s).await?;
                Ok(if cordoned(&node) {
                    Some(Some(format!("locked-until={:?}", locked_until(&node))))
                } else if Timestamp::now() >= watch_until {
                    Some(None)
                } else {
                    None
                })
            },
            || diagnose(s),
        )
        .await?;
        if let Some(lock) = relocked {
            anyhow::bail!(
                "{VIRTUAL_NODE} was cordoned again after `kubectl uncordon` ({lock}): the uncordon did not unlock it"
            );
        }
        waiting_runs(s, "waiting").await?;
        Ok(Outcome::Passed)
    }))
}

/// LOCK-03: the lock lifts by itself when its (shortened) duration ends; the waiting pod then
/// runs.
pub fn lock_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(with_sold_out(s, |s, admin, fault| async move {
        let lock = burst_and_lock(s, "sold-out").await?;
        create_waiting(s, "waiting", 0).await?;
        admin.clear_fault(fault).await?;
        // Measured against the configured duration from when the harness saw the node
        // cordoned, not against the engine's own note of the end.
        let duration = Duration::from_secs(lock_seconds());
        // NB: the engine writes its lock end in whole seconds, so it may lift up to 1 s early.
        let early = LOCK_SEEN_LATE + Duration::from_millis(1500);
        let late = wait::patience(Duration::from_secs(10));
        let lifted = wait::until(
            &format!(
                "{VIRTUAL_NODE} uncordoned by the engine when its {}s lock ends",
                duration.as_secs()
            ),
            duration + late,
            || async {
                let node = virtual_node(s).await?;
                Ok((!cordoned(&node)).then(Instant::now))
            },
            || diagnose(s),
        )
        .await?;
        let held = lifted.duration_since(lock.seen);
        anyhow::ensure!(
            held + early >= duration,
            "the lock lifted {:.1}s after the harness saw the node cordoned, before the \
             configured {}s were over (the engine noted its end as {})",
            held.as_secs_f64(),
            duration.as_secs(),
            lock.until
        );
        anyhow::ensure!(
            held <= duration + late,
            "the lock lifted {:.1}s after the harness saw the node cordoned, long after the \
             configured {}s",
            held.as_secs_f64(),
            duration.as_secs()
        );
        eprintln!(
            "LOCK-03: lock of {}s lifted {:.1}s after the harness saw it",
            duration.as_secs(),
            held.as_secs_f64()
        );
        waiting_runs(s, "waiting").await?;
        Ok(Outcome::Passed)
    }))
}

/// Leaves CCI without capacity (every size) for this cluster's namespace: pods are accepted but
/// stay Pending, unschedulable, until the guard ends.
async fn starve(s: &Scenario) -> anyhow::Result<FaultGuard> {
    Ok(s.mock_admin()?
        .set_fault(
            Scope::Namespace(s.cci_namespace().to_owned()),
            Fault::NoCapacity {
                flavours: Vec::new(),
            },
        )
        .await?)
}

/// Whether a CCI pod waits for capacity: Pending, `PodScheduled` False with reason
/// `Unschedulable`.
fn waits_for_capacity(pod: &cci_api::Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Pending")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
}

/// A burst pod `name` reaches CCI, which accepts it and leaves it Pending, unschedulable;
/// answers the cluster pod's UID.
async fn burst_pending(s: &Scenario, name: &str) -> anyhow::Result<String> {
    create_nginx(s, name).await?;
    let uid = wait::until(
        &format!("the CCI pod of {name} Pending with PodScheduled False (Unschedulable)"),
        PATIENCE,
        || async {
            let Some(uid) = pod(s, name).await?.and_then(|p| p.metadata.uid) else {
                return Ok(None);
            };
            let pods = s.cci_pods().await?;
            Ok(pods
                .iter()
                .find(|p| cluster_uid_of(p) == Some(uid.as_str()))
                .filter(|p| waits_for_capacity(p))
                .map(|_| uid.clone()))
        },
        || diagnose(s),
    )
    .await?;
    Ok(uid)
}

/// Whether the CCI pod of cluster pod `uid` still waits for capacity.
async fn still_pending(s: &Scenario, uid: &str) -> anyhow::Result<bool> {
    Ok(s.cci_pods()
        .await?
        .iter()
        .any(|p| cluster_uid_of(p) == Some(uid) && waits_for_capacity(p)))
}

/// How long past the threshold the engine may take to lock: its status rounds (about a second)
/// and the node patch, with a margin.
const PENDING_LOCK_LATE: Duration = Duration::from_secs(15);

/// LOCK-04: CCI accepts burst pods but leaves them Pending for lack of capacity: past the
/// engine's (shortened) threshold the node locks as in LOCK-01 and a new `enforce` pod waits;
/// with `CHECK_RESOURCE_PRESSURE=false` on the add-on the node is never locked while a pod
/// stays Pending well past the threshold. The fault, the node and the add-on are restored
/// whatever happens.
pub fn lock_04(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // A lock left by an earlier run must not be mistaken for this one.
        restore(s, None).await?;
        let fault = starve(s).await?;
        let result = lock_04_body(s).await;
        let restored = restore(s, Some(fault)).await;
        let addon = s.env.restore_addon().await;
        let outcome = result?;
        restored.context("restoring the node and the mock after the scenario")?;
        addon.context("restoring the add-on after the scenario")?;
        Ok(outcome)
    })
}

async fn lock_04_body(s: &Scenario) -> anyhow::Result<Outcome> {
    let threshold = Duration::from_secs(PENDING_LOCK_SECONDS);
    // The check on (the add-on's default): the pending pod locks the node.
    let uid = burst_pending(s, "no-capacity").await?;
    let seen_pending = Instant::now();
    wait::until(
        &format!(
            "{VIRTUAL_NODE} cordoned (SchedulingDisabled) with {ANNOTATION_LOCKED_UNTIL} once a CCI pod stayed Pending past {threshold:?}"
        ),
        threshold + PENDING_LOCK_LATE,
        || async {
            let node = virtual_node(s).await?;
            Ok((cordoned(&node) && locked_until(&node).is_some()).then_some(()))
        },
        || diagnose(s),
    )
    .await?;
    anyhow::ensure!(
        // The harness saw the pod Pending up to a poll or two after CCI held it.
        seen_pending.elapsed() + 2 * LOCK_SEEN_LATE >= threshold,
        "the node was locked {:?} after the CCI pod was seen Pending, before the {threshold:?} threshold",
        seen_pending.elapsed()
    );
    anyhow::ensure!(
        still_pending(s, &uid).await?,
        "the CCI pod of no-capacity no longer waits for capacity while the fault holds"
    );
    create_waiting(s, "waiting", 1).await?;

    // The check off: the same shortage never locks the node.
    let mut params = s.env.addon_defaults().clone();
    params.check_resource_pressure = Some(false);
    lifecycle::upgrade(&s.client, &params, s.env.addon_target(), &Progress::quiet())
        .await
        .context("upgrade the add-on with CHECK_RESOURCE_PRESSURE=false")?;
    // The scenario's pods go, and the node is uncordoned, with the check off from here on.
    restore(s, None).await?;
    let uid = burst_pending(s, "unchecked").await?;
    let watch_until = Instant::now() + threshold * 2 + PENDING_LOCK_LATE;
    let locked = wait::until_exactly(
        &format!(
            "{VIRTUAL_NODE} to stay schedulable for {:?} while a CCI pod stays Pending",
            threshold * 2 + PENDING_LOCK_LATE
        ),
        threshold * 2 + PENDING_LOCK_LATE + PATIENCE,
        || async {
            let node = virtual_node(s).await?;
            Ok(if cordoned(&node) || locked_until(&node).is_some() {
                Some(Some(format!(
                    "unschedulable={} locked-until={:?}",
                    cordoned(&node),
                    locked_until(&node)
                )))
            } else if Instant::now() >= watch_until {
                Some(None)
            } else {
                None
            })
        },
        || diagnose(s),
    )
    .await?;
    if let Some(lock) = locked {
        anyhow::bail!(
            "{VIRTUAL_NODE} was locked with CHECK_RESOURCE_PRESSURE=false ({lock}): the switch does not turn the check off"
        );
    }
    anyhow::ensure!(
        still_pending(s, &uid).await?,
        "the CCI pod of unchecked no longer waits for capacity: the check-off side proved nothing"
    );
    Ok(Outcome::Passed)
}
