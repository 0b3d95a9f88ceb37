//! Deliberate breakages of the engine, for `burstcert breakages`: each one is a plausible bug at
//! a decision point only a cluster shows, and the harness runs each through `certify --focus` to
//! prove that some scenario catches it.
//!
//! They exist only in a build with the cargo feature `breakages` (`cargo build -p
//! bursting-engine --features breakages`), which nothing ships: without it [`is`] is a `const fn`
//! answering `false`, so every `if breakage::is(…)` is dead code the compiler removes and the
//! shipped binary behaves as if this module did not exist. The enum is there in both builds so
//! that call sites need no `cfg`.
//!
//! With the feature, the environment variable [`ENV`] names the one breakage to switch on (read
//! once). The engine refuses to start when it names no breakage ([`from_env`]), so a typo never
//! runs an intact engine that "passes" as a broken one.

use burst_rules::release::{Gate, Release};

/// Environment variable naming the active breakage (feature `breakages` only).
pub const ENV: &str = "BURSTCERT_BREAKAGE";

macro_rules! breakages {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $description:literal; )*) => {
        /// One deliberate breakage (see the module docs); the doc of each says what it breaks.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Breakage {
            $( $(#[$doc])* $variant, )*
        }

        impl Breakage {
            /// Every breakage, in catalogue order.
            pub const ALL: &[Breakage] = &[$(Breakage::$variant),*];

            /// Its kebab-case name, the value of [`ENV`].
            pub const fn name(self) -> &'static str {
                match self {
                    $( Breakage::$variant => $name, )*
                }
            }

            /// One line: the engine bug it models.
            pub const fn description(self) -> &'static str {
                match self {
                    $( Breakage::$variant => $description, )*
                }
            }

            /// The breakage named `name`.
            pub fn from_name(name: &str) -> Option<Breakage> {
                Breakage::ALL.iter().copied().find(|b| b.name() == name)
            }
        }
    };
}

breakages! {
    /// translate: a container's limits become its limits, not its requests.
    LimitsNotRequests = "limits-not-requests",
        "CCI containers get their limit as both request and limit, not their request (§4)";
    /// translate: the pod is sized without its init containers.
    InitContainersNotSized = "init-containers-not-sized",
        "the pod's size ignores its init containers (§4: largest init container counts)";
    /// translate: an `/etc/localtime` hostPath is dropped instead of passed through.
    LocaltimeHostPathDropped = "localtime-hostpath-dropped",
        "an /etc/localtime hostPath volume and its mounts are silently dropped from the CCI pod";
    /// translate: an emptyDir loses its sizeLimit.
    EmptyDirSizeLimitDropped = "emptydir-size-limit-dropped",
        "emptyDir volumes reach CCI without their sizeLimit";
    /// webhook: the emptyDir cap is a flat 10Gi, not 10Gi per core.
    EmptyDirCapFlat = "emptydir-cap-flat",
        "an emptyDir sizeLimit above 10Gi is refused whatever the pod's cores (§5: 10 × cores)";
    /// translate: `env[].valueFrom.configMapKeyRef` keeps the cluster name.
    EnvConfigMapRefNotRenamed = "env-configmap-ref-not-renamed",
        "an env variable from a ConfigMap key names the cluster ConfigMap, not its CCI mirror";
    /// translate: a projected `serviceAccountToken` source is sent to CCI as it is.
    ProjectedTokenPassedThrough = "projected-token-passed-through",
        "a projected serviceAccountToken source is sent as is, not as the token Secret (§5)";
    /// translate: the cluster pod's labels are not carried to the CCI pod.
    ClusterLabelsDropped = "cluster-labels-dropped",
        "CCI pods carry only the engine's UID label, none of the cluster pod's labels";
    /// translate: the sidecar protocol ignores the release.
    SidecarAlwaysV1 = "sidecar-always-v1",
        "new CCI pods get the v1 sidecar whatever the release (§9: v2 from 1.5.18)";
    /// cci: the token file is read once, at start.
    TokenReadOnce = "token-read-once",
        "the CCI token file is read once: a renewed token is never used without a restart";
    /// provider: a changed ConfigMap is not copied to CCI again.
    ConfigMapUpdateNotMirrored = "configmap-update-not-mirrored",
        "a ConfigMap changed in the cluster keeps its first content on CCI";
    /// provider: Secret updates are not copied to CCI.
    SecretUpdateNotMirrored = "secret-update-not-mirrored",
        "a Secret's update never reaches its copy on CCI";
    /// provider: a mirrored Secret's data is logged.
    SecretDataLogged = "secret-data-logged",
        "the Secret's data is written to the engine's log when it is mirrored";
    /// provider: an `optional` missing object is waited for like a mandatory one.
    OptionalObjectRequired = "optional-object-required",
        "a missing ConfigMap/Secret marked optional makes the pod wait as if it were mandatory";
    /// provider: a missing Secret the pod needs is not waited for.
    MandatorySecretNotWaited = "mandatory-secret-not-waited",
        "a pod whose mandatory Secret is missing is sent to CCI anyway (refused there) instead of waiting for it";
    /// provider: a cluster delete never reaches CCI.
    DeleteNotSent = "delete-not-sent",
        "deleting a burst pod leaves its CCI pod running (leaked, billed)";
    /// provider: the delete's grace period is not passed to CCI.
    GracePeriodDropped = "grace-period-dropped",
        "a graceful delete reaches CCI without its grace period (CCI applies its default 30 s)";
    /// provider: every delete reaches CCI with grace 0.
    DeletesIgnoreGrace = "deletes-ignore-grace",
        "a graceful delete reaches CCI as a delete at once (containers killed, no grace period)";
    /// provider: a create retried after a lost answer makes a second CCI pod.
    ConflictCreatesDuplicate = "conflict-creates-duplicate",
        "a create retried after a lost answer (409, the pod exists) creates a second CCI pod";
    /// provider: CCI statuses never reach the cluster pods.
    StatusNotSynced = "status-not-synced",
        "the cluster pods' status is never updated from CCI (they never show Running)";
    /// provider: a sold-out answer does not lock the node.
    SoldOutDoesNotLock = "sold-out-does-not-lock",
        "CCI answering sold out fails the pod but leaves the virtual node schedulable (§7)";
    /// provider: a CCI pod left Pending for lack of capacity never locks the node.
    LockOnlyOnRefusal = "lock-only-on-refusal",
        "the node is locked only when CCI refuses a create, never when pods stay Pending for lack of capacity (§7)";
    /// provider: the CCI namespace gets no Network.
    NoNetwork = "no-network",
        "the engine creates its CCI namespace but no Network on the add-on's subnet, so burst pods get no address (§12)";
    /// lock: an expired lock is never lifted.
    LockNeverExpires = "lock-never-expires",
        "the node lock outlives its duration: the node stays cordoned until an operator acts";
    /// lock: an operator's uncordon is undone.
    UncordonRelocks = "uncordon-relocks",
        "after `kubectl uncordon` the engine finds its lock lifted and takes it again";
    /// node: the node lease is not renewed.
    LeaseNotRenewed = "lease-not-renewed",
        "the virtual node's lease is created but never renewed";
    /// node: the node advertises room for 3 pods.
    NodePodCapacityTooSmall = "node-pod-capacity-too-small",
        "the virtual node advertises capacity for 3 pods instead of the configured count";
    /// node: the node registers without its taint.
    NodeUntainted = "node-untainted",
        "the virtual node registers without its NoSchedule taint: pods that never asked to burst (a DaemonSet's) are placed on it";
    /// webhook: every owner kind is read, and a refused read denies the pod.
    Owner403Denies = "owner-403-denies",
        "the webhook reads owners of any kind and denies the pod when it may not (an operator's custom resource stops its pods)";
    /// webhook: the seed's label key is not read.
    SeedLabelIgnored = "seed-label-ignored",
        "the webhook reads only bursting.cci.io/burst-to-cci, not the seed's virtual-kubelet.io key";
    /// webhook: a CronJob's own labels are not read (only its Jobs' and pods').
    CronJobLabelIgnored = "cronjob-label-ignored",
        "the webhook stops the owner walk at the Job: a CronJob labelled enforce never bursts";
    /// webhook: the newer manuals' label key is not read.
    NewLabelIgnored = "new-label-ignored",
        "the webhook reads only the seed's virtual-kubelet.io key, not bursting.cci.io/burst-to-cci";
    /// webhook: `localPrefer` is applied as `enforce`.
    LocalPreferAsEnforce = "local-prefer-as-enforce",
        "the webhook treats localPrefer as enforce (pods burst while the cluster has room)";
    /// webhook: refusals are turned into admissions.
    RefusalsFailOpen = "refusals-fail-open",
        "the webhook admits, unmutated, every pod it should refuse";
    /// webhook: a Bound claim is taken for cloud storage without a look at its class.
    BoundClaimsTrusted = "bound-claims-trusted",
        "a Bound persistentVolumeClaim is taken for SFS whatever its class (a local PV bursts)";
    /// webhook: a pod it should keep local is refused instead.
    KeptLocalRefused = "kept-local-refused",
        "an auto or localPrefer pod CCI cannot take is refused instead of kept in the cluster (§5)";
    /// webhook: a pod's admission never looks at the LoadBalancer Services that select it.
    LoadBalancedPodsUnchecked = "load-balanced-pods-unchecked",
        "below 1.5.5 a pod bursts behind a LoadBalancer Service made before it (§2: >= 1.5.5)";
    /// webhook: the installed Volcano's version is never read.
    VolcanoNotChecked = "volcano-not-checked",
        "the webhook never reads Volcano's version, so old Volcano pods with cloud storage burst";
    /// gc: the namespace scope does not remove the namespace.
    GcKeepsNamespace = "gc-keeps-namespace",
        "the namespace gc job empties the CCI namespace but never deletes it";
    /// gc: the namespace scope deletes the namespace and ends without waiting for it to go.
    GcDoesNotWait = "gc-does-not-wait",
        "the namespace gc job deletes the CCI namespace and ends while it is still Terminating";
    /// proxy: only the v1 protocol is registered.
    ProxySpeaksV1Only = "proxy-speaks-v1-only",
        "the proxy registers only sidecar protocol v1, so v2 pods reach no Service";
    /// proxy: a tunnel is opened without the registration's key.
    TunnelOpen = "tunnel-open",
        "the proxy opens a tunnel to any Service for anyone who connects, without the registration's key";
    /// proxy: tunnels are accepted and never forwarded.
    ProxyForwardsNothing = "proxy-forwards-nothing",
        "the proxy registers and accepts tunnels, but never dials the Service: nothing comes back";
    /// provider: ConfigMaps and Secrets are watched with a streaming list only.
    WatchListOnly = "watch-list-only",
        "ConfigMaps and Secrets are watched with a streaming list (sendInitialEvents, the WatchList API), which API servers serve by default only at 1.32 and from 1.34: on other minors the watch is refused and no update reaches CCI";
    /// translate: CCI pod names carry a fragment of the pod's UID.
    CciNamesUidSuffixed = "cci-names-uid-suffixed",
        "CCI pods are named {namespace}.{name}-{uid prefix}, so a StatefulSet's ordinal names are not kept on CCI";
    /// status: a container's restarts and last state are not carried back.
    ContainerRestartsDropped = "container-restarts-dropped",
        "a container crash-looping on CCI shows no restarts and no last state in the cluster";
    /// translate: a pod that succeeded on CCI is reported Failed.
    SucceededReportedFailed = "succeeded-reported-failed",
        "a CCI pod whose containers all succeeded is mirrored as Failed: a Job's completions count as failures";
    /// webhook: the owner cache takes objects it has not seen, never changes to them.
    OwnerCacheMissesUpdates = "owner-cache-misses-updates",
        "the webhook's owner cache keeps the labels an owner had when first seen: a label added to a Deployment never applies";
    /// webhook and translate: downwardAPI and projected volumes allowed from 1.3.24.
    DownwardApiOneReleaseEarly = "downward-api-one-release-early",
        "the downwardAPI/projected gate is applied one release early: 1.3.24 admits the volumes (§5: >= 1.3.25)";
    /// translate: a mirrored claim loses its storage class.
    ClaimClassNotMirrored = "claim-class-not-mirrored",
        "the CCI copy of a PersistentVolumeClaim has no storageClassName, which CCI refuses (§5: SFS or SFS Turbo only)";
    /// webhook: a hostPath removed by the replacement annotation keeps its mounts.
    RemovedHostPathMountsKept = "removed-hostpath-mounts-kept",
        "a hostPath removed by coordinator.cci.io/hostpath-replacement leaves its volumeMounts: the API server refuses the pod";
    /// webhook: no policy applies to an /etc/localtime hostPath.
    LocaltimePolicyIgnored = "localtime-policy-ignored",
        "the webhook leaves every /etc/localtime hostPath alone, also one a policy names (§6: only `*` does)";
    /// translate: resource.cci.io/pod-size-specs is not carried to CCI.
    PodSizeSpecsIgnored = "pod-size-specs-ignored",
        "a pod's resource.cci.io/pod-size-specs is ignored: CCI sizes the pod from its containers";
    /// virtual kubelet: its CCI pods are deleted when it stops.
    PodsDeletedOnShutdown = "pods-deleted-on-shutdown",
        "the virtual kubelet deletes every CCI pod when it stops (an upgrade or an uninstall takes the burst pods down)";
    /// provider: a CCI pod burst by another release is replaced.
    RecreatedOnUpgrade = "recreated-on-upgrade",
        "after an upgrade or a rollback the engine replaces each CCI pod burst by another release (§9: they are kept)";
    /// translate: the v2 sidecar from 1.5.17.
    SidecarV2OneReleaseEarly = "sidecar-v2-one-release-early",
        "the sidecar gate is applied one release early: pods burst at 1.5.17 get the v2 sidecar its proxy does not speak";
    /// webhook: LoadBalancer Services allowed from 1.5.4.
    LbGateOneReleaseEarly = "lb-gate-one-release-early",
        "the LoadBalancer gate is applied one release early: 1.5.4 admits a LoadBalancer Service for burst pods (§2: >= 1.5.5)";
    /// provider: any HTTP answer counts as CCI being up.
    OutageNotReported = "outage-not-reported",
        "the node's health check takes any HTTP answer, a 503 too, for CCI being up: an outage never shows NotReady";
    /// node: the virtual node is registered once, at start.
    NodeNotRecreated = "node-not-recreated",
        "a virtual node deleted by hand is not registered again until the engine restarts";
}

/// The release `gate` is judged at: `release`, or, under a breakage that applies the gate one
/// release early (`downward-api-one-release-early`, `sidecar-v2-one-release-early`,
/// `lb-gate-one-release-early`), the next patch release when that one has the gate and `release`
/// has not.
pub fn judged_at(release: Release, gate: Gate) -> Release {
    let early = match gate {
        Gate::DownwardApiAndProjected => is(Breakage::DownwardApiOneReleaseEarly),
        Gate::SidecarV2 => is(Breakage::SidecarV2OneReleaseEarly),
        Gate::LoadBalancerService => is(Breakage::LbGateOneReleaseEarly),
        _ => false,
    };
    let next = Release::new(release.major, release.minor, release.patch + 1);
    if early && !release.allows(gate) && next.allows(gate) {
        next
    } else {
        release
    }
}

/// Whether breakage `b` is active: never, in a build without the feature `breakages`.
#[cfg(not(feature = "breakages"))]
#[inline(always)]
pub const fn is(b: Breakage) -> bool {
    let _ = b;
    false
}

/// Whether breakage `b` is the one [`ENV`] names.
#[cfg(feature = "breakages")]
pub fn is(b: Breakage) -> bool {
    active() == Some(b)
}

/// The breakage [`ENV`] names (`None` when unset, empty, or naming none: [`from_env`] refuses
/// the last at start-up).
#[cfg(feature = "breakages")]
fn active() -> Option<Breakage> {
    static ACTIVE: std::sync::OnceLock<Option<Breakage>> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(|| parse(std::env::var(ENV).ok().as_deref()).ok().flatten())
}

/// The breakage a value of [`ENV`] names: `None` when unset or empty; an error naming every
/// breakage when it names none.
pub fn parse(value: Option<&str>) -> Result<Option<Breakage>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => Breakage::from_name(name).map(Some).ok_or_else(|| {
            format!(
                "{ENV}={name:?} names no breakage; known: {}",
                Breakage::ALL
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }),
    }
}

/// Reads [`ENV`] at start-up: the active breakage, or an error when it names none. Without the
/// feature `breakages` the variable is ignored, so the shipped binary never reads it.
pub fn from_env() -> Result<Option<Breakage>, String> {
    if cfg!(feature = "breakages") {
        parse(std::env::var(ENV).ok().as_deref())
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_kebab_case_and_parse_back() {
        let mut names: Vec<&str> = Breakage::ALL.iter().map(|b| b.name()).collect();
        for b in Breakage::ALL {
            assert_eq!(parse(Some(b.name())), Ok(Some(*b)));
            assert!(
                b.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{}",
                b.name()
            );
            assert!(!b.description().is_empty());
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Breakage::ALL.len(), "duplicate names");
        assert!(Breakage::ALL.len() >= 20);
    }

    #[test]
    fn an_unknown_name_is_refused_and_an_empty_one_is_none() {
        assert_eq!(parse(None), Ok(None));
        assert_eq!(parse(Some(" ")), Ok(None));
        let err = parse(Some("delete-not-snet")).unwrap_err();
        assert!(
            err.contains("delete-not-snet") && err.contains("delete-not-sent"),
            "{err}"
        );
    }

    #[cfg(not(feature = "breakages"))]
    #[test]
    fn without_the_feature_no_breakage_is_ever_active() {
        assert!(Breakage::ALL.iter().all(|b| !is(*b)));
        assert_eq!(from_env(), Ok(None));
        for gate in Gate::ALL {
            for release in [
                Release::new(1, 3, 24),
                Release::new(1, 5, 4),
                Release::new(1, 5, 17),
            ] {
                assert_eq!(judged_at(release, gate), release, "{gate:?} at {release}");
            }
        }
    }
}
