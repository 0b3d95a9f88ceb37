//! Fault injection: typed faults, each scoped to a tenant or a namespace.
//!
//! Pure logic, no clock and no randomness: an error rate of `p` percent fails request `n` (the
//! n-th request the fault matched, from 1) exactly when `⌊n·p/100⌋ > ⌊(n−1)·p/100⌋`, so 50 %
//! fails every 2nd request, 25 % every 4th, 100 % all of them: the same run fails the same
//! requests every time.
//!
//! Faults are set, listed and cleared through the admin API (`/_mock/faults`) as JSON:
//!
//! ```json
//! {"scope": {"namespace": "bursting-c1"}, "fault": {"type": "soldOut", "flavours": ["2_4"]}}
//! {"scope": {"tenant": "tenant-a"}, "fault": {"type": "errorRate", "operations": ["create pods"], "percent": 50, "status": 503}}
//! {"scope": {"namespace": "bursting-c1"}, "fault": {"type": "slowDelete", "millis": 1500}}
//! {"scope": {"namespace": "bursting-c1"}, "fault": {"type": "noCapacity", "flavours": ["2_4"]}}
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::flavour::Flavour;

/// The longest latency a fault may add.
pub const MAX_LATENCY: Duration = Duration::from_secs(600);

/// One fault. Each variant says what the service does while it is set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Fault {
    /// Pod creation fails because CCI has no capacity left for the pod's size: `flavours`
    /// lists the sold-out sizes (`"2_4"`); empty means every size. Answered `400` with the CCI
    /// error code `CCI.01.400002` and a message containing "sold out" and "insufficient
    /// resources" (what the engine's node lock, BEHAVIOR.md §7, keys off). Nothing is created.
    SoldOut {
        /// Sold-out sizes as `{cpu}_{mem}`; empty = all.
        #[serde(default)]
        flavours: Vec<String>,
    },
    /// CCI has no capacity left for the pod's size but accepts it anyway (`201`), as the
    /// provider's manuals describe a shortage (BEHAVIOR.md §7): the pod stays `Pending` with
    /// `PodScheduled` `False`, reason `Unschedulable`, and no address, and is tried again every
    /// restart back-off; once the fault is cleared the next try schedules and starts it.
    /// `flavours` as for [`SoldOut`](Fault::SoldOut): the short sizes, empty = all.
    NoCapacity {
        /// Sizes with no capacity as `{cpu}_{mem}`; empty = all.
        #[serde(default)]
        flavours: Vec<String>,
    },
    /// The scope's pod quota is used up: creating a pod that would make more than `maxPods`
    /// live pods in the scope (the tenant's namespaces, or the namespace) fails with `403`,
    /// reason `Forbidden`, CCI error code `CCI.01.403002`, message "exceeded quota". `0` (the
    /// default) refuses every pod.
    #[serde(rename_all = "camelCase")]
    QuotaExceeded {
        /// How many live pods the scope may hold.
        #[serde(default)]
        max_pods: u32,
    },
    /// A share of the matching requests fails with `status` (default 500) before it does
    /// anything; `percent` from 0 to 100, deterministic (see the module docs).
    ErrorRate {
        /// The operations it applies to; empty = all.
        #[serde(default)]
        operations: Vec<Operation>,
        /// How many of every 100 matching requests fail.
        percent: u8,
        /// The HTTP status answered (4xx or 5xx).
        #[serde(default = "default_error_status")]
        status: u16,
    },
    /// Matching requests are answered `millis` later than they would be.
    Latency {
        /// The operations it applies to; empty = all.
        #[serde(default)]
        operations: Vec<Operation>,
        /// Added delay in milliseconds (at most 600 000).
        millis: u64,
    },
    /// Matching requests get no answer for [`timeout`](crate::MockConfig::timeout) and then
    /// `504` (reason `Timeout`): long enough for any client to give up. With `applied` the
    /// operation takes effect first (the case that tests idempotent retries); without, nothing
    /// happens.
    Timeout {
        /// The operations it applies to; empty = all.
        #[serde(default)]
        operations: Vec<Operation>,
        /// Whether the operation takes effect before the client is left waiting.
        #[serde(default)]
        applied: bool,
    },
    /// Pods with a container whose image matches `imagePattern` (`*` matches any run of
    /// characters, e.g. `"registry.example/*"`) never start: they stay `Pending` with the
    /// container waiting in `ErrImagePull`, then `ImagePullBackOff`, retried with the kubelet's
    /// back-off; once the fault is cleared the next retry starts the pod.
    #[serde(rename_all = "camelCase")]
    ImagePullFailure {
        /// The image pattern.
        image_pattern: String,
    },
    /// Deletes take a while, as on the real service, where tearing down a pod's sandbox or a
    /// namespace's contents does: a pod or namespace deleted in the scope is not removed at once
    /// but stays listed and readable, terminating (`metadata.deletionTimestamp` set, a new
    /// `resourceVersion`), for `millis` more, then goes. A pod lingers `millis` after it would
    /// have gone (even after a grace-0 delete, and a pod that had not started does not start);
    /// a namespace keeps its pods and objects until it goes and refuses new ones (`403`,
    /// "... because it is being terminated"). `resources` narrows it to `pods` or
    /// `namespaces`; empty = both.
    SlowDelete {
        /// `pods`, `namespaces`, or both; empty (or left out) = both.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        resources: Vec<Resource>,
        /// How long a deleted pod or namespace lingers, in milliseconds (at most 600 000).
        millis: u64,
    },
}

fn default_error_status() -> u16 {
    500
}

/// Where a fault applies: every request of a tenant, or every request on a namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Scope {
    /// Requests authenticated as this tenant.
    Tenant(String),
    /// Requests on this namespace (and its objects), whoever sends them.
    Namespace(String),
}

impl Scope {
    fn covers(&self, tenant: &str, namespace: Option<&str>) -> bool {
        match self {
            Scope::Tenant(t) => t == tenant,
            Scope::Namespace(n) => namespace == Some(n.as_str()),
        }
    }
}

/// What a request does, for matching faults: a verb and a resource, written `"create pods"`;
/// `*` stands for any verb or any resource (`"* pods"`, `"create *"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// The verb, `None` for any.
    pub verb: Option<Verb>,
    /// The resource, `None` for any.
    pub resource: Option<Resource>,
}

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }
        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The name as written in operations.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(text: &str) -> Result<Self, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "{text:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

named_enum!(
    /// What a request does to a resource.
    Verb {
        /// POST a new object.
        Create = "create",
        /// GET one object.
        Get = "get",
        /// GET a collection.
        List = "list",
        /// GET a collection with `watch=true`.
        Watch = "watch",
        /// PUT an object.
        Update = "update",
        /// DELETE an object.
        Delete = "delete",
    }
);

named_enum!(
    /// The resources of the API.
    Resource {
        /// CCI namespaces.
        Namespaces = "namespaces",
        /// Pods.
        Pods = "pods",
        /// ConfigMaps.
        ConfigMaps = "configmaps",
        /// Secrets.
        Secrets = "secrets",
        /// PersistentVolumeClaims.
        PersistentVolumeClaims = "persistentvolumeclaims",
        /// Services.
        Services = "services",
        /// Networks (yangtse).
        Networks = "networks",
        /// Pod logs.
        Log = "pods/log",
        /// Commands run in pods.
        Exec = "pods/exec",
        /// Proxy registrations.
        ProxyRegistrations = "proxyregistrations",
    }
);

impl Operation {
    /// The operation `verb resource`.
    pub const fn new(verb: Verb, resource: Resource) -> Self {
        Self {
            verb: Some(verb),
            resource: Some(resource),
        }
    }

    /// Whether this pattern matches the concrete operation `op`.
    pub fn matches(self, op: Operation) -> bool {
        self.verb.is_none_or(|v| Some(v) == op.verb)
            && self.resource.is_none_or(|r| Some(r) == op.resource)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.verb.map_or("*", Verb::as_str),
            self.resource.map_or("*", Resource::as_str)
        )
    }
}

impl FromStr for Operation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut words = text.split_whitespace();
        let (Some(verb), Some(resource), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "operation {text:?} is not \"VERB RESOURCE\", e.g. \"create pods\" or \"* pods\""
            ));
        };
        let verb = match verb {
            "*" => None,
            v => Some(v.parse::<Verb>().map_err(|e| format!("verb {e}"))?),
        };
        let resource = match resource {
            "*" => None,
            r => Some(r.parse::<Resource>().map_err(|e| format!("resource {e}"))?),
        };
        Ok(Self { verb, resource })
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A fault as set through the admin API: where and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Where it applies.
    pub scope: Scope,
    /// What it does.
    pub fault: Fault,
}

/// A fault that is set, as the admin API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveFault {
    /// Its id, for `DELETE /_mock/faults/{id}`.
    pub id: u64,
    /// Where it applies.
    pub scope: Scope,
    /// What it does.
    pub fault: Fault,
    /// How many requests it matched so far.
    pub matched: u64,
    /// How many of them it acted on (failed, delayed, refused).
    pub fired: u64,
}

impl FaultSpec {
    /// Checks the numbers and patterns; the error is a phrase naming the field.
    pub fn check(&self) -> Result<(), String> {
        match &self.scope {
            Scope::Tenant(name) | Scope::Namespace(name) if name.is_empty() => {
                return Err("scope: the tenant or namespace name must not be empty".into());
            }
            _ => {}
        }
        match &self.fault {
            Fault::SoldOut { flavours } | Fault::NoCapacity { flavours } => {
                for text in flavours {
                    let size: Flavour = text.parse().map_err(|e| format!("fault.flavours: {e}"))?;
                    if !size.is_sold() {
                        return Err(format!(
                            "fault.flavours: {text:?} is not a CCI flavour (see BEHAVIOR.md §4)"
                        ));
                    }
                }
            }
            Fault::ErrorRate {
                percent, status, ..
            } => {
                if *percent > 100 {
                    return Err(format!(
                        "fault.percent: {percent} is more than 100: write a share from 0 to 100"
                    ));
                }
                if !(400..=599).contains(status) {
                    return Err(format!(
                        "fault.status: {status} is not an error status: use 400 to 599, e.g. 500 or 503"
                    ));
                }
            }
            Fault::Latency { millis, .. } => check_millis(*millis)?,
            Fault::SlowDelete { resources, millis } => {
                check_millis(*millis)?;
                if let Some(other) = resources
                    .iter()
                    .find(|r| !matches!(r, Resource::Pods | Resource::Namespaces))
                {
                    return Err(format!(
                        "fault.resources: {:?} is not deleted slowly: a slowDelete applies to \"pods\" and \"namespaces\"",
                        other.as_str()
                    ));
                }
            }
            Fault::ImagePullFailure { image_pattern } if image_pattern.is_empty() => {
                return Err(
                    "fault.imagePattern: must not be empty (\"*\" matches every image)".into(),
                );
            }
            Fault::QuotaExceeded { .. }
            | Fault::Timeout { .. }
            | Fault::ImagePullFailure { .. } => {}
        }
        Ok(())
    }
}

/// Refuses a delay over [`MAX_LATENCY`], naming the field.
fn check_millis(millis: u64) -> Result<(), String> {
    if Duration::from_millis(millis) > MAX_LATENCY {
        return Err(format!(
            "fault.millis: {millis} is more than {} (ten minutes)",
            MAX_LATENCY.as_millis()
        ));
    }
    Ok(())
}

/// What the faults say about one request, before it is served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestFaults {
    /// Delay to add.
    pub latency: Duration,
    /// Fail at once with this status (and the id of the fault that did it).
    pub error: Option<(u16, u64)>,
    /// Leave the client waiting: `Some(applied)`.
    pub timeout: Option<bool>,
}

/// Every fault that is set, in the order set.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    next_id: u64,
    active: Vec<ActiveFault>,
}

impl Faults {
    /// Sets a fault; answers it with its id.
    pub fn add(&mut self, spec: FaultSpec) -> Result<ActiveFault, String> {
        spec.check()?;
        self.next_id += 1;
        let fault = ActiveFault {
            id: self.next_id,
            scope: spec.scope,
            fault: spec.fault,
            matched: 0,
            fired: 0,
        };
        self.active.push(fault.clone());
        Ok(fault)
    }

    /// Every fault that is set.
    pub fn list(&self) -> &[ActiveFault] {
        &self.active
    }

    /// Clears one fault; whether it was set.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.active.len();
        self.active.retain(|f| f.id != id);
        self.active.len() != before
    }

    /// Clears every fault.
    pub fn clear(&mut self) {
        self.active.clear();
    }

    /// Counts a request by `tenant` on `namespace` doing `op` against the request faults.
    pub fn on_request(
        &mut self,
        tenant: &str,
        namespace: Option<&str>,
        op: Operation,
    ) -> RequestFaults {
        let mut effects = RequestFaults::default();
        for active in &mut self.active {
            if !active.scope.covers(tenant, namespace) {
                continue;
            }
            let applies = |ops: &[Operation]| ops.is_empty() || ops.iter().any(|p| p.matches(op));
            match &active.fault {
                Fault::ErrorRate {
                    operations,
                    percent,
                    status,
                } if applies(operations) => {
                    active.matched += 1;
                    let n = active.matched;
                    let p = u64::from(*percent);
                    if (n * p) / 100 > ((n - 1) * p) / 100 && effects.error.is_none() {
                        active.fired += 1;
                        effects.error = Some((*status, active.id));
                    }
                }
                Fault::Latency { operations, millis } if applies(operations) => {
                    active.matched += 1;
                    active.fired += 1;
                    effects.latency += Duration::from_millis(*millis);
                }
                Fault::Timeout {
                    operations,
                    applied,
                } if applies(operations) => {
                    active.matched += 1;
                    active.fired += 1;
                    effects.timeout = Some(effects.timeout.unwrap_or(false) || *applied);
                }
                _ => {}
            }
        }
        effects.latency = effects.latency.min(MAX_LATENCY);
        effects
    }

    /// The id of a sold-out fault that refuses a pod of `size`, if any.
    pub fn sold_out(&mut self, tenant: &str, namespace: &str, size: Flavour) -> Option<u64> {
        self.first_firing(tenant, namespace, |fault| match fault {
            Fault::SoldOut { flavours } => flavour_listed(flavours, size),
            _ => false,
        })
    }

    /// The id of a no-capacity fault that holds a pod of `size` unscheduled, if any.
    pub fn no_capacity(&mut self, tenant: &str, namespace: &str, size: Flavour) -> Option<u64> {
        self.first_firing(tenant, namespace, |fault| match fault {
            Fault::NoCapacity { flavours } => flavour_listed(flavours, size),
            _ => false,
        })
    }

    /// The pod quotas that apply: `(fault id, max pods, scope)`.
    pub fn quotas(&self, tenant: &str, namespace: &str) -> Vec<(u64, u32, Scope)> {
        self.active
            .iter()
            .filter(|a| a.scope.covers(tenant, Some(namespace)))
            .filter_map(|a| match a.fault {
                Fault::QuotaExceeded { max_pods } => Some((a.id, max_pods, a.scope.clone())),
                _ => None,
            })
            .collect()
    }

    /// Records that fault `id` matched and acted.
    pub fn record_fired(&mut self, id: u64) {
        if let Some(active) = self.active.iter_mut().find(|a| a.id == id) {
            active.matched += 1;
            active.fired += 1;
        }
    }

    /// The image pattern of an image-pull fault that stops a pod with these images, if any.
    pub fn image_pull(&mut self, tenant: &str, namespace: &str, images: &[&str]) -> Option<String> {
        let id = self.first_firing(tenant, namespace, |fault| match fault {
            Fault::ImagePullFailure { image_pattern } => images
                .iter()
                .any(|image| glob_matches(image_pattern, image)),
            _ => false,
        })?;
        self.active
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| match &a.fault {
                Fault::ImagePullFailure { image_pattern } => Some(image_pattern.clone()),
                _ => None,
            })
    }

    /// How long a `resource` (pods or namespaces) deleted in `namespace` of `tenant` lingers,
    /// if a slow-delete fault says so.
    pub fn slow_delete(
        &mut self,
        tenant: &str,
        namespace: &str,
        resource: Resource,
    ) -> Option<Duration> {
        let id = self.first_firing(tenant, namespace, |fault| match fault {
            Fault::SlowDelete { resources, .. } => {
                resources.is_empty() || resources.contains(&resource)
            }
            _ => false,
        })?;
        self.active
            .iter()
            .find(|a| a.id == id)
            .and_then(|a| match a.fault {
                Fault::SlowDelete { millis, .. } => Some(Duration::from_millis(millis)),
                _ => None,
            })
    }

    fn first_firing(
        &mut self,
        tenant: &str,
        namespace: &str,
        mut applies: impl FnMut(&Fault) -> bool,
    ) -> Option<u64> {
        let active = self
            .active
            .iter_mut()
            .find(|a| a.scope.covers(tenant, Some(namespace)) && applies(&a.fault))?;
        active.matched += 1;
        active.fired += 1;
        Some(active.id)
    }
}

/// Whether `size` is one of `flavours` (`{cpu}_{mem}`), an empty list naming every size.
fn flavour_listed(flavours: &[String], size: Flavour) -> bool {
    flavours.is_empty()
        || flavours
            .iter()
            .any(|f| f.parse::<Flavour>().is_ok_and(|f| f == size))
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if parts.len() == 1 {
        return pattern == text;
    }
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn spec(scope: Scope, fault: Fault) -> FaultSpec {
        FaultSpec { scope, fault }
    }

    #[rstest]
    #[case::fifty(50, "-x-x-x-x")]
    #[case::twenty_five(25, "---x---x")]
    #[case::hundred(100, "xxxxxxxx")]
    #[case::zero(0, "--------")]
    #[case::third(33, "---x--x-")]
    fn error_rates_fail_the_same_requests_every_time(#[case] percent: u8, #[case] pattern: &str) {
        let mut faults = Faults::default();
        faults
            .add(spec(
                Scope::Tenant("a".into()),
                Fault::ErrorRate {
                    operations: vec!["create pods".parse().unwrap()],
                    percent,
                    status: 503,
                },
            ))
            .unwrap();
        let create = Operation::new(Verb::Create, Resource::Pods);
        let got: String = (0..8)
            .map(|_| match faults.on_request("a", Some("ns"), create).error {
                Some((503, _)) => 'x',
                _ => '-',
            })
            .collect();
        assert_eq!(got, pattern);
        let other = faults.on_request("a", Some("ns"), Operation::new(Verb::Get, Resource::Pods));
        assert_eq!(other, RequestFaults::default(), "other operations pass");
        let other_tenant = faults.on_request("b", Some("ns"), create);
        assert_eq!(other_tenant, RequestFaults::default(), "other tenants pass");
    }

    #[test]
    fn a_namespace_scope_covers_only_that_namespace_and_latencies_add_up() {
        let mut faults = Faults::default();
        for millis in [100, 250] {
            faults
                .add(spec(
                    Scope::Namespace("ns".into()),
                    Fault::Latency {
                        operations: vec![],
                        millis,
                    },
                ))
                .unwrap();
        }
        let op = Operation::new(Verb::List, Resource::Pods);
        assert_eq!(
            faults.on_request("a", Some("ns"), op).latency,
            Duration::from_millis(350)
        );
        assert_eq!(
            faults.on_request("a", Some("other"), op).latency,
            Duration::ZERO
        );
        assert_eq!(faults.list()[0].matched, 1);
    }

    #[test]
    fn faults_read_and_write_the_documented_json() {
        let text = json!({"scope": {"namespace": "bursting-c1"}, "fault": {"type": "soldOut", "flavours": ["2_4"]}});
        let parsed: FaultSpec = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(
            parsed,
            spec(
                Scope::Namespace("bursting-c1".into()),
                Fault::SoldOut {
                    flavours: vec!["2_4".into()]
                }
            )
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), text);
        let rate: FaultSpec = serde_json::from_value(json!({"scope": {"tenant": "t"}, "fault": {"type": "errorRate", "operations": ["* pods", "create *"], "percent": 10}})).unwrap();
        assert_eq!(
            rate.fault,
            Fault::ErrorRate {
                operations: vec![
                    Operation {
                        verb: None,
                        resource: Some(Resource::Pods)
                    },
                    Operation {
                        verb: Some(Verb::Create),
                        resource: None
                    },
                ],
                percent: 10,
                status: 500
            }
        );
        let image: FaultSpec = serde_json::from_value(json!({"scope": {"tenant": "t"}, "fault": {"type": "imagePullFailure", "imagePattern": "bad/*"}})).unwrap();
        assert!(matches!(image.fault, Fault::ImagePullFailure { .. }));
    }

    #[rstest]
    #[case::both(json!({"type": "slowDelete", "millis": 1500}), vec![])]
    #[case::namespaces_only(
        json!({"type": "slowDelete", "resources": ["namespaces"], "millis": 1500}),
        vec![Resource::Namespaces]
    )]
    fn a_slow_delete_reads_and_writes_the_documented_json(
        #[case] text: serde_json::Value,
        #[case] resources: Vec<Resource>,
    ) {
        let parsed: Fault = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(
            parsed,
            Fault::SlowDelete {
                resources,
                millis: 1500
            }
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), text);
    }

    #[test]
    fn a_slow_delete_applies_to_its_scope_and_resources_and_counts_what_it_slowed() {
        let mut faults = Faults::default();
        faults
            .add(spec(
                Scope::Namespace("ns".into()),
                Fault::SlowDelete {
                    resources: vec![Resource::Namespaces],
                    millis: 1500,
                },
            ))
            .unwrap();
        assert_eq!(faults.slow_delete("a", "ns", Resource::Pods), None);
        assert_eq!(faults.slow_delete("a", "other", Resource::Namespaces), None);
        assert_eq!(
            faults.slow_delete("a", "ns", Resource::Namespaces),
            Some(Duration::from_millis(1500))
        );
        assert_eq!((faults.list()[0].matched, faults.list()[0].fired), (1, 1));
    }

    #[rstest]
    #[case::both_scopes(json!({"scope": {"tenant": "t", "namespace": "n"}, "fault": {"type": "soldOut"}}))]
    #[case::unknown_type(json!({"scope": {"tenant": "t"}, "fault": {"type": "meteor"}}))]
    #[case::unknown_field(json!({"scope": {"tenant": "t"}, "fault": {"type": "soldOut", "flavor": []}}))]
    #[case::bad_operation(json!({"scope": {"tenant": "t"}, "fault": {"type": "timeout", "operations": ["explode pods"]}}))]
    #[case::slow_delete_without_millis(json!({"scope": {"tenant": "t"}, "fault": {"type": "slowDelete"}}))]
    #[case::slow_delete_of_no_resource(json!({"scope": {"tenant": "t"}, "fault": {"type": "slowDelete", "resources": ["pod"], "millis": 1}}))]
    fn malformed_faults_do_not_parse(#[case] text: serde_json::Value) {
        assert!(serde_json::from_value::<FaultSpec>(text).is_err());
    }

    #[rstest]
    #[case::percent(Fault::ErrorRate { operations: vec![], percent: 101, status: 500 }, "percent")]
    #[case::status(Fault::ErrorRate { operations: vec![], percent: 1, status: 200 }, "status")]
    #[case::flavour(Fault::SoldOut { flavours: vec!["3_3".into()] }, "not a CCI flavour")]
    #[case::latency(Fault::Latency { operations: vec![], millis: 10_000_000 }, "millis")]
    #[case::pattern(Fault::ImagePullFailure { image_pattern: String::new() }, "imagePattern")]
    #[case::slow_delete(Fault::SlowDelete { resources: vec![], millis: 600_001 }, "fault.millis")]
    #[case::slow_delete_of_configmaps(Fault::SlowDelete { resources: vec![Resource::ConfigMaps], millis: 1 }, "fault.resources")]
    fn out_of_range_faults_are_refused(#[case] fault: Fault, #[case] field: &str) {
        let err = Faults::default()
            .add(spec(Scope::Tenant("t".into()), fault))
            .unwrap_err();
        assert!(err.contains(field), "{err}");
    }

    #[test]
    fn sold_out_matches_listed_sizes_or_all() {
        let mut faults = Faults::default();
        faults
            .add(spec(
                Scope::Tenant("t".into()),
                Fault::SoldOut {
                    flavours: vec!["2_4".into()],
                },
            ))
            .unwrap();
        assert!(
            faults
                .sold_out("t", "ns", Flavour::new(2000, 4096))
                .is_some()
        );
        assert!(
            faults
                .sold_out("t", "ns", Flavour::new(1000, 2048))
                .is_none()
        );
        faults
            .add(spec(
                Scope::Namespace("ns".into()),
                Fault::SoldOut { flavours: vec![] },
            ))
            .unwrap();
        assert!(
            faults
                .sold_out("x", "ns", Flavour::new(1000, 2048))
                .is_some()
        );
        faults.clear();
        assert!(
            faults
                .sold_out("t", "ns", Flavour::new(2000, 4096))
                .is_none()
        );
    }

    #[test]
    fn no_capacity_matches_listed_sizes_or_all_and_reads_the_documented_json() {
        let text = json!({"scope": {"namespace": "ns"}, "fault": {"type": "noCapacity", "flavours": ["2_4"]}});
        let parsed: FaultSpec = serde_json::from_value(text.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parsed).unwrap(), text);
        let mut faults = Faults::default();
        faults.add(parsed).unwrap();
        assert!(
            faults
                .no_capacity("t", "ns", Flavour::new(2000, 4096))
                .is_some()
        );
        assert!(
            faults
                .no_capacity("t", "ns", Flavour::new(1000, 2048))
                .is_none()
        );
        assert!(
            faults
                .no_capacity("t", "other", Flavour::new(2000, 4096))
                .is_none()
        );
        assert!(
            faults
                .sold_out("t", "ns", Flavour::new(2000, 4096))
                .is_none(),
            "a shortage is not a refusal"
        );
        let err = Faults::default()
            .add(spec(
                Scope::Tenant("t".into()),
                Fault::NoCapacity {
                    flavours: vec!["3_3".into()],
                },
            ))
            .unwrap_err();
        assert!(err.contains("not a CCI flavour"), "{err}");
    }

    #[rstest]
    #[case("*", "nginx", true)]
    #[case("nginx", "nginx", true)]
    #[case("nginx", "nginx:1", false)]
    #[case("nginx:*", "nginx:1.27", true)]
    #[case("*/bad:*", "registry.example/bad:v1", true)]
    #[case("*bad*", "good", false)]
    #[case("a*a", "a", false)]
    fn image_patterns_glob(#[case] pattern: &str, #[case] image: &str, #[case] expected: bool) {
        assert_eq!(glob_matches(pattern, image), expected);
    }
}
