//! Every scenario ID of `SCENARIOS.md`, with its title and, where it exists, its body.
//!
//! The catalogue is the one list both `cargo test` (the suites call [`run`] by ID) and
//! `burstcert certify` walk, so a report can never miss an ID: a scenario without a body is
//! reported as "not implemented", which is not a pass.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::FutureExt as _;

use burst_rules::release::Release;

use crate::env::{Env, ExtraCluster, Run};
use crate::gates::{Bound, Gate};

use crate::needs::Need;
pub use crate::scenario::Outcome;
use crate::scenario::Scenario;
use crate::scenarios;

/// A scenario body: runs in its own namespace of the shared environment.
pub type Body =
    for<'a> fn(&'a Scenario) -> Pin<Box<dyn Future<Output = anyhow::Result<Outcome>> + Send + 'a>>;

/// One catalogue entry.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The ID, e.g. `WL-02`.
    pub id: &'static str,
    /// One line from `SCENARIOS.md`.
    pub title: &'static str,
    /// The body, if written.
    pub body: Option<Body>,
    /// For a scenario that checks a release gate: what it checks on each side.
    pub gate: Option<GateSides>,
    /// What it needs beyond the cluster's API and CCI's public API ([`Need`]).
    pub needs: &'static [Need],
}

/// What a gated scenario checks on each side of its release gate, so a report row says what
/// this release was checked for, not both sides when only one ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateSides {
    /// The gate (its threshold is the harness's own table, [`crate::gates`], read from the spec).
    pub gate: Gate,
    /// What is checked at a release without the behaviour.
    pub without: &'static str,
    /// What is checked at a release with it.
    pub with: &'static str,
}

const fn gated(gate: Gate, without: &'static str, with: &'static str) -> Option<GateSides> {
    Some(GateSides {
        gate,
        without,
        with,
    })
}

/// Scenarios that change state other scenarios see, beyond what their needs say: they run alone.
const CLUSTER_WIDE: [(&str, &str); 6] = [
    (
        "VK-04",
        "fails every CCI request of the cluster's namespace for 30 s",
    ),
    (
        "LOCK-01",
        "sells out the cluster's CCI namespace and cordons the virtual node",
    ),
    (
        "LOCK-02",
        "sells out the cluster's CCI namespace and cordons the virtual node",
    ),
    (
        "LOCK-03",
        "sells out the cluster's CCI namespace and cordons the virtual node",
    ),
    (
        "R-02",
        "fails and slows every pod creation of the cluster's CCI namespace",
    ),
    ("VK-03", "deletes the virtual node every burst pod runs on"),
];

impl Entry {
    /// Whether this scenario changes what other scenarios see (the add-on, the nodes, the
    /// control plane, the engine's process, the CCI namespace's behaviour): it then runs alone.
    pub fn cluster_wide(&self) -> bool {
        self.needs.iter().any(|n| {
            matches!(
                n,
                Need::Installer | Need::EngineProcess | Need::ControlPlane | Need::ChosenNodes
            )
        }) || CLUSTER_WIDE.iter().any(|(id, _)| *id == self.id)
    }

    /// The title of this entry's report row at `release`: for a gated scenario, the side of
    /// the gate the release is on, e.g. `DownwardAPI refused at 1.3.24 (gate >= 1.3.25)` or
    /// `DownwardAPI works (from 1.3.25; checked at 1.5.18)`; else the catalogue title.
    pub fn title_for(&self, release: Release) -> String {
        let Some(sides) = self.gate else {
            return self.title.to_owned();
        };
        if sides.gate.applies_to(release) {
            let range = match sides.gate.bound() {
                Bound::AtLeast(r) => format!("from {r}"),
                Bound::AtMost(r) => format!("up to {r}"),
            };
            format!("{} ({range}; checked at {release})", sides.with)
        } else {
            format!(
                "{} at {release} (gate {})",
                sides.without,
                sides.gate.condition()
            )
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("id", &self.id)
            .field("implemented", &self.body.is_some())
            .finish()
    }
}

macro_rules! entries {
    ($( $id:literal, $title:literal, $body:expr, [$($need:ident),*] $(, $gate:expr)?; )*) => {
        /// The whole catalogue, in `SCENARIOS.md` order (and the report's test fixtures after
        /// it, when a test asks for them: [`crate::report::fixture`]).
        pub fn entries() -> Vec<Entry> {
            let mut entries = vec![$( Entry {
                id: $id,
                title: $title,
                body: $body,
                gate: entries!(@gate $($gate)?),
                needs: &[$(Need::$need),*],
            } ),*];
            entries.extend(crate::report::fixture::entries());
            entries
        }
    };
    (@gate) => { None };
    (@gate $gate:expr) => { $gate };
}

entries! {
    "WL-01", "A bare enforce Pod (the seed's nginx) runs on bursting-node; the CCI pod exists", Some(scenarios::wl::wl_01), [];
    "WL-02", "Deployment 2 replicas enforce: Running on the virtual node; scale to 5, then 0, CCI follows", Some(scenarios::wl::wl_02), [];
    "WL-03", "StatefulSet 3 replicas: ordinal names kept on CCI; deleting -1 recreates it under the same name", Some(scenarios::wl::wl_03), [];
    "WL-04", "The seed's Job: never more than 5 pods active on CCI; deadline fails it; without it completes 50", Some(scenarios::wl::wl_04), [MockAdmin];
    "WL-05", "CronJob: batch/v1beta1 refused with a clear error; batch/v1 creates Jobs whose pods burst", Some(scenarios::wl::wl_05), [];
    "WL-06", "DaemonSet labelled enforce: its pods never reach the virtual node", Some(scenarios::wl::wl_06), [ChosenNodes];
    "WL-07", "Policy matrix enforce/auto/localPrefer/off/none x nodes with room/full", Some(scenarios::wl::wl_07), [ChosenNodes];
    "WL-08", "Label added to a running Deployment moves nothing; after a rollout restart new pods burst", Some(scenarios::wl::wl_08), [];
    "VOL-01", "ConfigMap mounted: mirrored to CCI with equal data; an update reaches CCI", Some(scenarios::vol::vol_01), [];
    "VOL-02", "Secret mounted: mirrored; its data never appears in engine logs or events", Some(scenarios::vol::vol_02), [AddonLogs];
    "VOL-03", "EmptyDir: plain works; subPath refused; 1Gi works; 1536Mi refused; > 10 x CPU refused", Some(scenarios::vol::vol_03), [];
    "VOL-04", "DownwardAPI: refused on 1.3.24, works on 1.3.25", Some(scenarios::vol::vol_04), [],
        gated(Gate::DownwardApiAndProjected, "DownwardAPI volume refused", "DownwardAPI volume runs on CCI");
    "VOL-05", "Projected serviceAccountToken: gated as VOL-04; long-lived token Secret on CCI", Some(scenarios::vol::vol_05), [],
        gated(Gate::DownwardApiAndProjected, "Projected serviceAccountToken refused", "Projected serviceAccountToken runs on CCI as the long-lived token Secret");
    "VOL-06", "PVC: SFS and SFS Turbo through CSI work; other classes refused", Some(scenarios::vol::vol_06), [];
    "VOL-07", "HostPath refused; /etc/localtime works on 1.5.9, refused on 1.5.8", Some(scenarios::vol::vol_07), [],
        gated(Gate::EtcLocaltimeHostPath, "HostPath refused, /etc/localtime too", "HostPath refused; /etc/localtime runs on CCI");
    "VOL-08", "flexVolume and local volumes refused", Some(scenarios::vol::vol_08), [];
    "HP-01", "The seed's hostPath Deployment runs; snapshot of the CCI pod's volumes and mounts", Some(scenarios::hp::hp_01), [];
    "HP-02", "One hostPath named replaceByEmptyDir", Some(scenarios::hp::hp_02), [];
    "HP-03", "One hostPath named remove", Some(scenarios::hp::hp_03), [];
    "HP-04", "* with remove", Some(scenarios::hp::hp_04), [];
    "HP-05", "* leaves an /etc/localtime hostPath alone (refused before 1.5.9, runs from 1.5.9)", Some(scenarios::hp::hp_05), [],
        gated(Gate::EtcLocaltimeHostPath, "* with an /etc/localtime hostPath: refused", "* leaves an /etc/localtime hostPath alone, it runs on CCI");
    "HP-06", "A policy naming the /etc/localtime volume replaces it", Some(scenarios::hp::hp_06), [];
    "HP-07", "Malformed JSON, unknown policyType, bad sizeLimit: refused, the message quotes the entry", Some(scenarios::hp::hp_07), [];
    "RES-01", "Requests/limits table to expected flavour and annotations, including init containers", Some(scenarios::res::res_01), [];
    "RES-02", "pod-size-specs pins the size; no flavour or too small is refused", Some(scenarios::res::res_02), [];
    "RES-03", "A pod bigger than every flavour: Warning event on the CCE pod, nothing on CCI", Some(scenarios::res::res_03), [MockAdmin];
    "LOCK-01", "CCI sold out: the burst pod fails, the node turns SchedulingDisabled, new enforce pods wait", Some(scenarios::lock::lock_01), [MockAdmin];
    "LOCK-02", "kubectl uncordon unlocks it and the waiting pods run", Some(scenarios::lock::lock_02), [MockAdmin];
    "LOCK-03", "The lock lifts by itself when its (shortened) duration ends", Some(scenarios::lock::lock_03), [MockAdmin];
    "LOCK-04", "CCI leaves burst pods Pending (no capacity) past the threshold: the node locks; with CHECK_RESOURCE_PRESSURE=false it never does", Some(scenarios::lock::lock_04), [MockAdmin, Installer];
    "UN-01", "Normal uninstall: gc jobs finish; everything of the add-on and its CCI namespace gone; others untouched", Some(scenarios::un::un_01), [Installer];
    "UN-02", "No schedulable node: uninstall fails (delete-failed), CCI intact; after a node is added it succeeds", Some(scenarios::un::un_02), [Installer, ChosenNodes];
    "UN-03", "Wrong swr_addr: gc jobs cannot pull; uninstall again and delete both jobs within 210 s completes", Some(scenarios::un::un_03), [Installer];
    "UN-04", "Cluster deleted without uninstall: CCI namespace and billable pods left; the cleanup command removes them", Some(scenarios::un::un_04), [Installer];
    "UP-01", "1.5.17 to 1.5.18 with burst pods: same UIDs both sides; only new pods get the new sidecar", Some(scenarios::up::up_01), [Installer],
        gated(Gate::SidecarV2, "No sidecar upgrade to check", "Upgrade from 1.5.17 with burst pods: same UIDs both sides; only new pods get the new sidecar");
    "UP-02", "Rollback 1.5.18 to 1.5.17: A cannot reach a Service, B can; upgrade or recreate restores A", Some(scenarios::up::up_02), [Installer, MockAdmin, ClusterNetwork],
        gated(Gate::SidecarV2, "No sidecar rollback caveat to check", "Rollback to 1.5.17: A cannot reach a Service, B can; upgrade or recreate restores A");
    "UP-03", "Pods created through an upgrade: none unmutated, none refused for the webhook being down", Some(scenarios::up::up_03), [Installer];
    "INST-01", "Subnet overlapping 10.247.0.0/16: refused, nothing created", Some(scenarios::inst::inst_01), [Installer];
    "INST-02", "Arm nodes with release <= 1.5.37: add-on pods avoid them; only-Arm cluster refused", Some(scenarios::inst::inst_02), [Installer],
        gated(Gate::ArmUnsupported, "Arm supported: no amd64-only affinity on the add-on's pods; on an Arm-only cluster they run", "Arm nodes: add-on pods avoid them; only-Arm cluster refused");
    "INST-03", "Pod room: single needs 7 (8) free slots on a node, ha two such nodes; else refused with numbers", Some(scenarios::inst::inst_03), [Installer, ChosenNodes],
        gated(Gate::FootprintCheck, "No pod-room check", "Pod room: single needs 7 (8) free slots on a node, ha two such nodes; else refused with numbers");
    "INST-04", "LoadBalancer Service for burst pods refused before 1.5.5, works from 1.5.5", Some(scenarios::inst::inst_04), [],
        gated(Gate::LoadBalancerService, "LoadBalancer Service for burst pods refused", "LoadBalancer Service for burst pods works");
    "INST-05", "Volcano <= 1.17.10 with a cloud-storage volume: the pod stays off CCI with an event", Some(scenarios::inst::inst_05), [Installer];
    "NET-01", "With interconnect, a CCI pod reaches a cluster Service and back", Some(scenarios::net::net_01), [MockAdmin, Installer, ClusterNetwork];
    "NET-02", "Without interconnect, a CCI pod cannot reach a cluster Service", Some(scenarios::net::net_02), [MockAdmin, Installer];
    "VK-01", "Graceful delete (grace period honoured) and force delete both remove the CCI pod", Some(scenarios::vk::vk_01), [];
    "VK-02", "Optional missing ConfigMap/Secret: runs; mandatory missing: waits with an event naming it", Some(scenarios::vk::vk_02), [];
    "VK-03", "The virtual node deleted by hand is recreated with a new UID within a minute; pods keep running", Some(scenarios::vk::vk_03), [];
    "VK-04", "A CCI outage of 30 s shows as the virtual node NotReady with a reason and heals without losing or duplicating a pod", Some(scenarios::vk::vk_04), [MockAdmin];
    "R-01", "Engine killed while bursting 100 pods and restarted: all Running, exactly one CCI pod each", Some(scenarios::r::r_01), [EngineProcess];
    "R-02", "CCI answering 5xx or slowly for a while: pods converge once it recovers; no duplicates", Some(scenarios::r::r_02), [MockAdmin];
    "R-03", "The API server restarted: the engine reconnects; node lease and pods unaffected", Some(scenarios::r::r_03), [ControlPlane];
    "CCI-01", "Before its first pod, the cluster's CCI namespace has a Ready Network on the add-on's subnet; burst pods get their addresses from it", Some(scenarios::cci::cci_01), [];
    "CCI-02", "The engine's token expires during a run: renewed without a pod lost or a request refused twice; with AK/SK every request is signed", Some(scenarios::cci::cci_02), [MockAdmin, Installer];
    "CCI-03", "Deletes as CCI does them: the CCI pod Terminating for the delete's grace period with its finalizer; uninstall ends once the Terminating CCI namespace is gone", Some(scenarios::cci::cci_03), [MockAdmin, Installer];
    "SAFE-01", "Pods owned through an operator's custom resource are admitted as without the add-on; labelled enforce, they burst", Some(scenarios::safe::safe_01), [];
    "SAFE-02", "Webhook down: DaemonSet, mirror and kube-system pods still created; a judged pod answered within timeoutSeconds", Some(scenarios::safe::safe_02), [Installer];
    "SAFE-03", "Least privilege asked of the API server as the add-on's accounts; its pods pass Pod Security restricted", Some(scenarios::safe::safe_03), [];
    "SAFE-04", "The CCI credential in no argument, env value, log, event or command line; the tunnel and the kubelet API refuse who may not use them", Some(scenarios::safe::safe_04), [AddonLogs, ClusterNetwork];
}

/// How a running scenario holds its environment's lock ([`Run::footprint`](crate::env::Run)):
/// shared by the scenarios confined to their namespace, exclusively by a cluster-wide one
/// ([`Entry::cluster_wide`]). With extra clusters a cluster-wide scenario holds one of them (and
/// its lock), so it excludes no confined scenario on the shared one.
enum Footprint {
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
}

impl Footprint {
    /// Waits for environment `index`'s lock: `alone`, or beside the other confined scenarios.
    async fn hold(run: &Run, index: usize, alone: bool) -> Self {
        let footprint = run.footprint(index);
        if alone {
            Footprint::Alone(footprint.write_owned().await)
        } else {
            Footprint::Shared(footprint.read_owned().await)
        }
    }
}

/// The shared environment of `run` held beside the confined scenarios, for a trial that is not
/// in the catalogue and stays in its own namespace.
pub async fn hold_shared(run: &Arc<Run>) -> crate::Result<(Arc<Env>, SharedHold)> {
    let env = run.shared().await?;
    Ok((env, SharedHold(Footprint::hold(run, 0, false).await)))
}

/// How a trial holds the shared environment ([`hold_shared`]).
pub struct SharedHold(#[allow(dead_code)] Footprint);

/// An environment of `run` held alone, as a cluster-wide scenario holds one, for a trial that is
/// not in the catalogue and changes its cluster (e.g. the suites' existing-cluster trial): an
/// extra cluster when the run has them, so the confined scenarios go on beside it on the shared
/// one (it held the shared one for ~2 minutes and the confined batch waited for it); else the
/// shared one, the others waiting until the guard is dropped.
pub async fn hold_alone(run: &Arc<Run>) -> crate::Result<(Arc<Env>, AloneHold)> {
    let extra = run.hold_extra_cluster().await;
    let index = extra.as_ref().map_or(0, ExtraCluster::index);
    let env = run.at(index).await?;
    let footprint = Footprint::hold(run, index, true).await;
    Ok((
        env,
        AloneHold {
            _footprint: footprint,
            _extra: extra,
        },
    ))
}

/// How a trial holds an environment alone ([`hold_alone`]); the lock is let go before the
/// extra cluster (fields drop in order).
pub struct AloneHold {
    _footprint: Footprint,
    _extra: Option<ExtraCluster>,
}

/// Scenarios proposed for `SCENARIOS.md` and not yet in it: the suites run them (by ID, like any
/// other), `certify` does not (a certificate covers the spec's IDs).
pub fn proposed() -> Vec<Entry> {
    Vec::new()
}

/// IDs of `docs/spec/SCENARIOS.md` this catalogue does not list yet, with what they wait for.
/// `certify` does not run them and the README names them: a certificate never claims them.
pub const NOT_YET: &[(&str, &str)] = &[];

/// The entry of one ID (of the catalogue, or [`proposed`]).
pub fn find(id: &str) -> Option<Entry> {
    entries().into_iter().chain(proposed()).find(|e| e.id == id)
}

/// Runs one scenario by ID in a fresh namespace of `run`'s shared environment (a cluster-wide
/// one on an extra cluster, when the run has them) and returns its outcome; a body's error or
/// panic becomes [`Outcome::Failed`] with the diagnosis.
pub async fn run(run: &Arc<Run>, id: &str) -> Outcome {
    run_held(run, id, hold_cluster_for(run, id).await).await
}

/// For a cluster-wide scenario, waits for an extra cluster of `run`'s own, if there are any
/// (`None` otherwise: the scenario runs on the shared environment), and for it to be up (it may
/// still be booting, see [`Run::bring_up_all`]; a failed bring-up is left to [`run_held`] to
/// report). `certify` waits for it before timing the scenario, so a scenario's time is its own,
/// not its wait.
pub async fn hold_cluster_for(run: &Arc<Run>, id: &str) -> Option<ExtraCluster> {
    match find(id) {
        Some(entry) if entry.body.is_some() && entry.cluster_wide() => {
            let held = run.hold_extra_cluster().await?;
            let _ = run.at(held.index()).await;
            Some(held)
        }
        _ => None,
    }
}

/// [`run`] with the extra cluster (from [`hold_cluster_for`]) already held.
pub async fn run_held(run: &Arc<Run>, id: &str, extra: Option<ExtraCluster>) -> Outcome {
    run_held_then(run, id, extra, &|_, _| Box::pin(async {})).await
}

/// What runs once a scenario's body ended, with its outcome, while its namespace is still
/// there: `certify` keeps the scenario's transcript and, for a failure, its evidence.
pub type AfterBody = dyn for<'a> Fn(&'a Scenario, &'a Outcome) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>
    + Sync;

/// [`run_held`], calling `after` between the body's end and the namespace's removal.
pub async fn run_held_then(
    run: &Arc<Run>,
    id: &str,
    extra: Option<ExtraCluster>,
    after: &AfterBody,
) -> Outcome {
    let Some(entry) = find(id) else {
        return Outcome::Failed(format!("no scenario {id} in the catalogue"));
    };
    let Some(body) = entry.body else {
        return Outcome::NotImplemented;
    };
    let wide = entry.cluster_wide();
    let index = extra.as_ref().map_or(0, ExtraCluster::index);
    let env = match run.at(index).await {
        Ok(env) => env,
        Err(e) => return Outcome::Failed(format!("setting up {id}: {e}")),
    };
    if let Some(why) = crate::needs::unmet(entry.needs, &env.offers()) {
        return Outcome::NotRun(why);
    }
    // Isolation, whoever runs scenarios side by side (certify --jobs, the test harness's
    // threads): a cluster-wide scenario runs alone, the others together.
    let _footprint = Footprint::hold(run, index, wide).await;
    let scenario = match Scenario::new(id, env).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(format!("setting up {id}: {e}")),
    };
    let result = std::panic::AssertUnwindSafe(body(&scenario))
        .catch_unwind()
        .await;
    let outcome = match result {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
        Err(panic) => Outcome::Failed(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)")
        )),
    };
    after(&scenario, &outcome).await;
    if let Err(e) = scenario.finish().await {
        tracing::warn!(%id, "clean-up failed: {e}");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gated_row_says_which_side_of_its_gate_this_release_was_checked_on() {
        let vol04 = find("VOL-04").unwrap();
        assert_eq!(
            vol04.title_for(Release::new(1, 3, 24)),
            "DownwardAPI volume refused at 1.3.24 (gate >= 1.3.25)"
        );
        assert_eq!(
            vol04.title_for(Release::new(1, 5, 18)),
            "DownwardAPI volume runs on CCI (from 1.3.25; checked at 1.5.18)"
        );
        let arm = find("INST-02").unwrap();
        assert!(
            arm.title_for(Release::new(1, 5, 38))
                .ends_with("at 1.5.38 (gate <= 1.5.37)")
        );
        assert!(
            arm.title_for(Release::new(1, 5, 37))
                .ends_with("(up to 1.5.37; checked at 1.5.37)")
        );
        let wl02 = find("WL-02").unwrap();
        assert_eq!(wl02.title_for(Release::new(1, 3, 24)), wl02.title);
    }

    #[test]
    fn ids_are_unique_and_follow_the_family_number_shape() {
        let entries = entries();
        let mut ids: Vec<&str> = entries.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), entries.len(), "duplicate IDs");
        for id in ids {
            let (family, number) = id.split_once('-').expect("FAMILY-NN");
            assert!(family.chars().all(|c| c.is_ascii_uppercase()), "{id}");
            assert!(
                number.len() == 2 && number.chars().all(|c| c.is_ascii_digit()),
                "{id}"
            );
        }
    }

    /// Every body lives in the file named after its family (`scenarios/wl.rs` holds WL-01…WL-08,
    /// as `scenarios::wl::wl_01`), read off the entries as this file writes them.
    #[test]
    fn every_body_lives_in_the_file_named_after_its_family() {
        let mut checked = 0;
        for line in include_str!("catalogue.rs").lines() {
            let line = line.trim_start();
            let (Some(rest), Some((_, path))) =
                (line.strip_prefix('"'), line.split_once("Some(scenarios::"))
            else {
                continue;
            };
            let (id, _) = rest
                .split_once('"')
                .expect("an entry starts with its quoted ID");
            let (module, function) = path
                .split_once(')')
                .and_then(|(p, _)| p.split_once("::"))
                .expect("scenarios::module::function");
            let family = id
                .split_once('-')
                .expect("FAMILY-NN")
                .0
                .to_ascii_lowercase();
            assert_eq!(
                module, family,
                "{id}'s body is not in scenarios/{family}.rs"
            );
            assert_eq!(
                function,
                id.to_ascii_lowercase().replace('-', "_"),
                "{id}'s body is not named after it"
            );
            checked += 1;
        }
        let bodies = entries().iter().filter(|e| e.body.is_some()).count();
        assert_eq!(checked, bodies, "entries with a body read off this file");
    }

    /// The scenario IDs a `SCENARIOS.md` names.
    fn ids_of_scenarios_md(text: &str) -> std::collections::BTreeSet<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| {
                w.split_once('-').is_some_and(|(f, n)| {
                    [
                        "WL", "VOL", "HP", "RES", "LOCK", "UN", "UP", "INST", "NET", "VK", "R",
                        "CCI", "SAFE",
                    ]
                    .contains(&f)
                        && n.len() == 2
                        && n.chars().all(|c| c.is_ascii_digit())
                })
            })
            .map(str::to_owned)
            .collect()
    }

    /// The spec the catalogue is written against, in the repository (`docs/spec/`): compiled
    /// in, so this test cannot skip itself for a missing file.
    const SCENARIOS_MD: &str = include_str!("../../docs/spec/SCENARIOS.md");

    /// The catalogue and [`NOT_YET`] together name exactly the IDs of the spec, and never the
    /// same ID twice: a certificate covers every ID of the spec but those `NOT_YET` names.
    #[test]
    fn the_catalogue_and_not_yet_name_every_id_of_scenarios_md_and_no_other() {
        let ours: std::collections::BTreeSet<String> =
            entries().iter().map(|e| e.id.to_owned()).collect();
        let not_yet: std::collections::BTreeSet<String> =
            NOT_YET.iter().map(|(id, _)| (*id).to_owned()).collect();
        let both: Vec<_> = ours.intersection(&not_yet).collect();
        assert!(
            both.is_empty(),
            "IDs both in the catalogue and in NOT_YET: {both:?}"
        );
        let spec = ids_of_scenarios_md(SCENARIOS_MD);
        assert!(
            spec.len() >= 49,
            "docs/spec/SCENARIOS.md lost IDs: {spec:?}"
        );
        let named: std::collections::BTreeSet<String> = ours.union(&not_yet).cloned().collect();
        let missing: Vec<_> = spec.difference(&named).collect();
        let extra: Vec<_> = named.difference(&spec).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "docs/spec/SCENARIOS.md IDs in neither the catalogue nor NOT_YET: {missing:?}; \
             catalogue or NOT_YET IDs not in docs/spec/SCENARIOS.md: {extra:?}"
        );
    }

    /// Where the project's copy of the spec ends a sentence as the project would: (the words
    /// both copies share up to there, how ours ends it). Everything else in `docs/spec/` is the
    /// published text.
    const SPEC_WORDING: &[(&str, &str)] = &[("say so in ", "`docs/decisions.md`.")];

    /// `text` with each sentence [`SPEC_WORDING`] covers cut after its shared words; in our
    /// copy (`ours`) only where it ends as the project words it, so a changed ending differs.
    fn comparable(text: &str, ours: bool) -> String {
        let cut = |line: &str| {
            SPEC_WORDING.iter().find_map(|(lead, ending)| {
                let at = line.find(lead)? + lead.len();
                (!ours || &line[at..] == *ending).then(|| line[..at].to_owned())
            })
        };
        text.lines()
            .map(|line| cut(line).unwrap_or_else(|| line.to_owned()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `docs/spec/` is, byte for byte, the spec as published beside the repository when a
    /// checkout has it there (the `spec` folder of a `shared` folder next to the checkout's root),
    /// but for [`SPEC_WORDING`]; a clone without it skips this test and says so. Nothing else
    /// reads outside the repository.
    #[test]
    fn docs_spec_is_the_spec_beside_the_checkout_when_there_is_one() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let published = root.join("..").join("shared").join("spec");
        let Ok(files) = std::fs::read_dir(&published) else {
            eprintln!(
                "skipped: {} is not beside this checkout; docs/spec/ is the spec",
                published.display()
            );
            return;
        };
        let names = |dir: &std::path::Path| -> std::collections::BTreeSet<std::ffi::OsString> {
            std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .map(|f| f.unwrap().file_name())
                .collect()
        };
        let ours = root.join("docs/spec");
        let theirs: std::collections::BTreeSet<_> = files.map(|f| f.unwrap().file_name()).collect();
        assert_eq!(
            names(&ours),
            theirs,
            "docs/spec/ and {} hold different files",
            published.display()
        );
        for name in theirs {
            let a = comparable(&std::fs::read_to_string(ours.join(&name)).unwrap(), true);
            let b = comparable(
                &std::fs::read_to_string(published.join(&name)).unwrap(),
                false,
            );
            assert!(
                a == b,
                "docs/spec/{} differs from {}: copy it again",
                name.to_string_lossy(),
                published.join(&name).display()
            );
        }
    }
}
