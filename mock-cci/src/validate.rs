//! Validation of objects sent to the API, with the rules Kubernetes and CCI apply.
//!
//! Pure functions: each check returns the problem as a phrase, and the object validators collect
//! every broken rule as a [`FieldError`] (field path, Kubernetes error type, detail) so one
//! refusal tells the whole story, e.g.
//! `spec.volumes[1].hostPath: Forbidden: hostPath volume "logs" …`.
//!
//! What the mock checks on a pod, beyond Kubernetes syntax (BEHAVIOR.md §4, §5):
//!
//! - **Resources.** A container that declares resources must declare `cpu` and `memory` in both
//!   `requests` and `limits`, with limits equal to requests (compared as quantities: `500m` equals
//!   `0.5`). A container may declare none at all, as long as another container declares them or
//!   the pod pins its size with [`ANNOTATION_POD_SIZE_SPECS`].
//! - **Size.** The pod's demand is the larger of the app containers' sum and the largest init
//!   container; it is rounded up to the nearest flavour ([`crate::flavour`]), or pinned by
//!   [`ANNOTATION_POD_SIZE_SPECS`] (which must name a flavour no smaller than the demand). A
//!   pod larger than every flavour is refused. The service writes the size as
//!   [`ANNOTATION_SIZE`] in its own form (`2.00_4.0`), over any value the client sent.
//! - **Volumes.** ConfigMap, Secret, emptyDir, downwardAPI, projected (without
//!   `serviceAccountToken` sources: CCI issues no tokens for the cluster's service accounts) and
//!   persistentVolumeClaim volumes are accepted; hostPath only for the path `/etc/localtime`;
//!   every other type (flexVolume, nfs, csi, …) is refused. emptyDir: no `subPath` on its
//!   mounts, `sizeLimit` a whole number of Gi, at most 10 × the size's vCPUs in Gi. A claim must
//!   exist in the namespace with an SFS / SFS Turbo storage class (see
//!   [`MockConfig::sfs_storage_classes`](crate::MockConfig::sfs_storage_classes)).
//! - **References.** ConfigMaps and Secrets named by volumes, projections, `env` and `envFrom`
//!   must exist in the namespace unless marked `optional`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cci_api::{
    ANNOTATION_NETWORK_DOMAIN_ID, ANNOTATION_NETWORK_PROJECT_ID, API_VERSION, ConfigMap,
    NETWORK_API_VERSION, NETWORK_TYPE_UNDERLAY, Namespace, Network, PersistentVolumeClaim, Pod,
    ProxyRegistration, Secret, Service,
};
use k8s_openapi::api::core::v1::{Container, ResourceRequirements, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::behaviour::{self, ANNOTATION_BEHAVIOUR, ANNOTATION_ON_SIGTERM};
use crate::flavour::{self, Demand, Flavour};
use crate::quantity::Quantity;

/// The longest DNS-1123 label (namespace names, container names).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// The longest DNS-1123 subdomain (pod names, label key prefixes).
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// The longest label value and label key name part.
pub const QUALIFIED_NAME_MAX_LEN: usize = 63;
/// The most bytes all annotations of an object may hold together (as Kubernetes).
pub const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;
/// The most bytes the data of a ConfigMap or Secret may hold (as Kubernetes).
pub const DATA_MAX_BYTES: usize = 1024 * 1024;
/// The pod annotation that pins the pod's size, `{cpu}_{mem}`.
pub const ANNOTATION_POD_SIZE_SPECS: &str = "resource.cci.io/pod-size-specs";
/// The pod annotation the service writes with the size it chose, `{cpu}_{mem}`.
pub const ANNOTATION_SIZE: &str = "resource.cci.io/size";
/// The only hostPath CCI mounts.
pub const LOCALTIME_PATH: &str = "/etc/localtime";

const DNS1123_LABEL_RULE: &str = "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
const DNS1123_SUBDOMAIN_RULE: &str = "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";

/// The kind of a broken rule, spelled as Kubernetes spells its field error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorType {
    /// A required field is missing.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value is well-formed but not allowed here.
    Forbidden,
    /// The value names an object that does not exist.
    NotFound,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The value is not one of the supported ones.
    NotSupported,
    /// The value is too long or too large.
    TooLong,
}

impl ErrorType {
    /// As Kubernetes writes it in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Required => "Required value",
            ErrorType::Invalid => "Invalid value",
            ErrorType::Forbidden => "Forbidden",
            ErrorType::NotFound => "Not found",
            ErrorType::Duplicate => "Duplicate value",
            ErrorType::NotSupported => "Unsupported value",
            ErrorType::TooLong => "Too long",
        }
    }
}

/// One broken rule: the field path, its kind and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.containers[0].name`.
    pub field: String,
    /// The kind of rule broken.
    pub type_: ErrorType,
    /// What is wrong, as a phrase the person who wrote the manifest can act on.
    pub message: String,
}

macro_rules! constructors {
    ($($(#[$meta:meta])* $fn:ident => $type:ident),+ $(,)?) => {
        $(
            $(#[$meta])*
            pub fn $fn(field: impl Into<String>, message: impl Into<String>) -> Self {
                Self { field: field.into(), type_: ErrorType::$type, message: message.into() }
            }
        )+
    };
}

impl FieldError {
    constructors!(
        /// A missing required field.
        required => Required,
        /// A malformed or out-of-range value.
        invalid => Invalid,
        /// A value not allowed here.
        forbidden => Forbidden,
        /// A reference to an object that does not exist.
        not_found => NotFound,
        /// A repeated value that must be unique.
        duplicate => Duplicate,
        /// A value that is not one of the supported ones.
        not_supported => NotSupported,
        /// A value that is too long.
        too_long => TooLong,
    );
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.field,
            self.type_.as_str(),
            self.message
        )
    }
}

fn is_label_syntax(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

fn is_qualified_name_syntax(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Checks a DNS-1123 label (RFC 1123): lower-case alphanumerics and `-`, at most 63 characters.
pub fn check_dns1123_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > DNS1123_LABEL_MAX_LEN {
        return Err(format!(
            "{value:?} must be no more than {DNS1123_LABEL_MAX_LEN} characters (it has {})",
            value.len()
        ));
    }
    if !is_label_syntax(value) {
        return Err(format!("{value:?} {DNS1123_LABEL_RULE}"));
    }
    Ok(())
}

/// Checks a DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn check_dns1123_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX_LEN {
        return Err(format!(
            "{value:?} must be no more than {DNS1123_SUBDOMAIN_MAX_LEN} characters (it has {})",
            value.len()
        ));
    }
    if !value.split('.').all(is_label_syntax) {
        return Err(format!("{value:?} {DNS1123_SUBDOMAIN_RULE}"));
    }
    Ok(())
}

/// Checks a qualified name, the syntax of label and annotation keys: `[prefix/]name`, where the
/// optional prefix is a DNS-1123 subdomain and the name is at most 63 alphanumerics, `-`, `_`,
/// `.`, starting and ending with an alphanumeric.
pub fn check_qualified_name(value: &str) -> Result<(), String> {
    let (prefix, name) = match value.split_once('/') {
        None => (None, value),
        Some((_, rest)) if rest.contains('/') => {
            return Err(format!(
                "{value:?} has more than one '/': a key is an optional DNS subdomain prefix and a name, as in 'example.com/MyName'"
            ));
        }
        Some((prefix, name)) => (Some(prefix), name),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!(
                "{value:?}: the prefix before '/' must not be empty"
            ));
        }
        check_dns1123_subdomain(prefix)
            .map_err(|problem| format!("{value:?}: the prefix {problem}"))?;
    }
    if name.is_empty() {
        return Err(format!("{value:?}: the name part must not be empty"));
    }
    if name.len() > QUALIFIED_NAME_MAX_LEN {
        return Err(format!(
            "{value:?}: the name part must be no more than {QUALIFIED_NAME_MAX_LEN} characters (it has {})",
            name.len()
        ));
    }
    if !is_qualified_name_syntax(name) {
        return Err(format!("{value:?}: the name part {QUALIFIED_NAME_RULE}"));
    }
    Ok(())
}

/// Checks a label value: empty, or at most 63 alphanumerics, `-`, `_`, `.`, starting and ending
/// with an alphanumeric.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > QUALIFIED_NAME_MAX_LEN {
        return Err(format!(
            "{value:?} must be no more than {QUALIFIED_NAME_MAX_LEN} characters (it has {})",
            value.len()
        ));
    }
    if !is_qualified_name_syntax(value) {
        return Err(format!("{value:?} {QUALIFIED_NAME_RULE}"));
    }
    Ok(())
}

/// Checks every label key and value of a map.
pub fn check_labels(labels: &BTreeMap<String, String>, field: &str, errors: &mut Vec<FieldError>) {
    for (key, value) in labels {
        if let Err(problem) = check_qualified_name(key) {
            errors.push(FieldError::invalid(field, format!("label key {problem}")));
        }
        if let Err(problem) = check_label_value(value) {
            errors.push(FieldError::invalid(
                format!("{field}[{key}]"),
                format!("label value {problem}"),
            ));
        }
    }
}

fn check_type_meta(
    api_version: &str,
    kind: &str,
    expected_kind: &str,
    errors: &mut Vec<FieldError>,
) {
    check_type_meta_of(API_VERSION, api_version, kind, expected_kind, errors);
}

fn check_type_meta_of(
    expected_api_version: &str,
    api_version: &str,
    kind: &str,
    expected_kind: &str,
    errors: &mut Vec<FieldError>,
) {
    let api = expected_api_version;
    if api_version.is_empty() {
        errors.push(FieldError::required(
            "apiVersion",
            format!("must be {api:?}"),
        ));
    } else if api_version != api {
        errors.push(FieldError::invalid(
            "apiVersion",
            format!("{api_version:?}: must be {api:?}"),
        ));
    }
    if kind.is_empty() {
        errors.push(FieldError::required(
            "kind",
            format!("must be {expected_kind:?}"),
        ));
    } else if kind != expected_kind {
        errors.push(FieldError::invalid(
            "kind",
            format!("{kind:?}: must be {expected_kind:?}"),
        ));
    }
}

/// Whether the object is being created (the service assigns `resourceVersion`) or updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// POST.
    Create,
    /// PUT.
    Update,
}

fn check_common_metadata(metadata: &ObjectMeta, write: Write, errors: &mut Vec<FieldError>) {
    if write == Write::Create
        && let Some(rv) = &metadata.resource_version
    {
        errors.push(FieldError::invalid(
            "metadata.resourceVersion",
            format!("{rv:?}: must not be set on create: the service assigns it"),
        ));
    }
    if let Some(labels) = &metadata.labels {
        check_labels(labels, "metadata.labels", errors);
    }
    if let Some(annotations) = &metadata.annotations {
        let mut total = 0usize;
        for (key, value) in annotations {
            total = total.saturating_add(key.len()).saturating_add(value.len());
            if let Err(problem) = check_qualified_name(key) {
                errors.push(FieldError::invalid(
                    "metadata.annotations",
                    format!("annotation key {problem}"),
                ));
            }
        }
        if total > ANNOTATIONS_MAX_BYTES {
            errors.push(FieldError::too_long(
                "metadata.annotations",
                format!(
                    "may not have more than {ANNOTATIONS_MAX_BYTES} bytes in all (it has {total})"
                ),
            ));
        }
    }
}

fn check_name(
    metadata: &ObjectMeta,
    kind: &str,
    example: &str,
    subdomain: bool,
    errors: &mut Vec<FieldError>,
) {
    match metadata.name.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "metadata.name",
            format!("name the {kind} (e.g. {example:?})"),
        )),
        Some(name) => {
            let checked = if subdomain {
                check_dns1123_subdomain(name)
            } else {
                check_dns1123_label(name)
            };
            if let Err(problem) = checked {
                errors.push(FieldError::invalid("metadata.name", problem));
            }
        }
    }
}

fn check_namespace_field(metadata: &ObjectMeta, namespace: &str, errors: &mut Vec<FieldError>) {
    if let Some(sent) = metadata.namespace.as_deref()
        && !sent.is_empty()
        && sent != namespace
    {
        errors.push(FieldError::invalid(
            "metadata.namespace",
            format!(
                "{sent:?} does not match the namespace {namespace:?} of the request path: omit it or make them equal"
            ),
        ));
    }
}

/// Every rule a namespace sent for creation breaks (empty when it is valid).
pub fn validate_namespace(namespace: &Namespace) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(
        &namespace.api_version,
        &namespace.kind,
        "Namespace",
        &mut errors,
    );
    check_name(
        &namespace.metadata,
        "namespace (a DNS-1123 label)",
        "bursting-cluster-1",
        false,
        &mut errors,
    );
    check_common_metadata(&namespace.metadata, Write::Create, &mut errors);
    errors
}

/// What a pod's references are checked against: the objects of its namespace.
pub trait References {
    /// Whether the ConfigMap exists.
    fn has_config_map(&self, name: &str) -> bool;
    /// Whether the Secret exists.
    fn has_secret(&self, name: &str) -> bool;
    /// The storage class of the claim (`Some(None)` when it has none), or `None` when no such
    /// claim exists.
    fn claim_class(&self, name: &str) -> Option<Option<String>>;
}

/// Where a pod is created, for the checks that look beyond the pod.
pub struct PodContext<'a> {
    /// The namespace of the request path.
    pub namespace: &'a str,
    /// The namespace's objects.
    pub references: &'a dyn References,
    /// The storage classes that are SFS or SFS Turbo.
    pub sfs_storage_classes: &'a [String],
}

/// Checks a pod sent for creation: answers the size the service gives it, or every rule it
/// breaks.
pub fn validate_pod(pod: &Pod, context: &PodContext<'_>) -> Result<Flavour, Vec<FieldError>> {
    let mut errors = Vec::new();
    check_type_meta(&pod.api_version, &pod.kind, "Pod", &mut errors);
    check_name(
        &pod.metadata,
        "pod (a DNS-1123 subdomain)",
        "web-0",
        true,
        &mut errors,
    );
    check_namespace_field(&pod.metadata, context.namespace, &mut errors);
    check_common_metadata(&pod.metadata, Write::Create, &mut errors);

    if pod.spec.containers.is_empty() {
        errors.push(FieldError::required(
            "spec.containers",
            "at least one container is required",
        ));
    }
    if let Some(policy) = pod.spec.restart_policy.as_deref()
        && !matches!(policy, "Always" | "OnFailure" | "Never")
    {
        errors.push(FieldError::not_supported(
            "spec.restartPolicy",
            format!("{policy:?}: supported values: \"Always\", \"OnFailure\", \"Never\""),
        ));
    }
    // NB: Kubernetes requires container names to be unique across init and app containers.
    let mut seen = BTreeSet::new();
    let mut app = Demand::default();
    let mut init = Demand::default();
    let mut declared = false;
    for (group, containers, is_init) in containers_of(pod) {
        for (index, container) in containers.iter().enumerate() {
            let field = format!("{group}[{index}]");
            check_container(container, &field, &mut seen, &mut errors);
            check_env_references(container, &field, context, &mut errors);
            if let Some(demand) = check_resources(container.resources.as_ref(), &field, &mut errors)
            {
                declared = true;
                if is_init {
                    init = init.max(demand);
                } else {
                    app = app.plus(demand);
                }
            }
        }
    }
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    check_behaviour_annotations(&annotations, pod, &mut errors);
    let size = if pod.spec.containers.is_empty() {
        None
    } else {
        choose_size(&annotations, app.max(init), declared, &mut errors)
    };
    check_volumes(pod, size, context, &mut errors);
    match size {
        Some(size) if errors.is_empty() => Ok(size),
        _ => {
            if errors.is_empty() {
                // NB: unreachable in practice: no size always comes with an error.
                errors.push(FieldError::invalid("spec", "the pod has no size"));
            }
            Err(errors)
        }
    }
}

fn containers_of(pod: &Pod) -> [(&'static str, &[Container], bool); 2] {
    [
        (
            "spec.initContainers",
            pod.spec.init_containers.as_deref().unwrap_or_default(),
            true,
        ),
        ("spec.containers", pod.spec.containers.as_slice(), false),
    ]
}

fn check_container(
    container: &Container,
    field: &str,
    seen: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    if container.name.is_empty() {
        errors.push(FieldError::required(
            format!("{field}.name"),
            "name the container (a DNS-1123 label, e.g. \"app\")",
        ));
    } else if let Err(problem) = check_dns1123_label(&container.name) {
        errors.push(FieldError::invalid(format!("{field}.name"), problem));
    } else if !seen.insert(container.name.clone()) {
        errors.push(FieldError::duplicate(
            format!("{field}.name"),
            format!(
                "{:?} is used by another container: container names must be unique within a pod",
                container.name
            ),
        ));
    }
    if container
        .image
        .as_deref()
        .is_none_or(|image| image.trim().is_empty())
    {
        errors.push(FieldError::required(
            format!("{field}.image"),
            "name the image to run, e.g. \"nginx:1.27\"",
        ));
    }
}

/// Checks one container's resources; answers its demand when it declares any.
fn check_resources(
    resources: Option<&ResourceRequirements>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Demand> {
    let empty = BTreeMap::new();
    let requests = resources
        .and_then(|r| r.requests.as_ref())
        .unwrap_or(&empty);
    let limits = resources.and_then(|r| r.limits.as_ref()).unwrap_or(&empty);
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    let mut demand = Demand::default();
    for resource in ["cpu", "memory"] {
        let parse = |map: &BTreeMap<_, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
                     side: &str,
                     errors: &mut Vec<FieldError>| {
            let path = format!("{field}.resources.{side}.{resource}");
            match map.get(resource) {
                None => {
                    errors.push(FieldError::required(
                        path,
                        format!(
                            "CCI needs {resource} in both requests and limits, with limits equal to requests, for every container that declares resources"
                        ),
                    ));
                    None
                }
                Some(q) => match q.0.parse::<Quantity>() {
                    Ok(quantity) => Some(quantity),
                    Err(problem) => {
                        errors.push(FieldError::invalid(path, problem));
                        None
                    }
                },
            }
        };
        let request = parse(requests, "requests", errors);
        let limit = parse(limits, "limits", errors);
        if let (Some(request), Some(limit)) = (request, limit) {
            if request != limit {
                errors.push(FieldError::invalid(
                    format!("{field}.resources.limits.{resource}"),
                    format!(
                        "{:?} must equal the request {:?}: CCI requires limits equal to requests for each container",
                        limits[resource].0, requests[resource].0
                    ),
                ));
            }
            if resource == "cpu" {
                demand.cpu_milli = request.millis_ceil();
            } else {
                demand.mem_bytes = request.units_ceil();
            }
        }
    }
    Some(demand)
}

fn check_env_references(
    container: &Container,
    field: &str,
    context: &PodContext<'_>,
    errors: &mut Vec<FieldError>,
) {
    for (index, env) in container.env.iter().flatten().enumerate() {
        let Some(source) = &env.value_from else {
            continue;
        };
        if let Some(r) = &source.config_map_key_ref {
            check_config_map_exists(
                &r.name,
                r.optional,
                &format!("{field}.env[{index}].valueFrom.configMapKeyRef.name"),
                context,
                errors,
            );
        }
        if let Some(r) = &source.secret_key_ref {
            check_secret_exists(
                &r.name,
                r.optional,
                &format!("{field}.env[{index}].valueFrom.secretKeyRef.name"),
                context,
                errors,
            );
        }
    }
    for (index, from) in container.env_from.iter().flatten().enumerate() {
        if let Some(r) = &from.config_map_ref {
            check_config_map_exists(
                &r.name,
                r.optional,
                &format!("{field}.envFrom[{index}].configMapRef.name"),
                context,
                errors,
            );
        }
        if let Some(r) = &from.secret_ref {
            check_secret_exists(
                &r.name,
                r.optional,
                &format!("{field}.envFrom[{index}].secretRef.name"),
                context,
                errors,
            );
        }
    }
}

fn check_config_map_exists(
    name: &str,
    optional: Option<bool>,
    field: &str,
    context: &PodContext<'_>,
    errors: &mut Vec<FieldError>,
) {
    if name.is_empty() {
        errors.push(FieldError::required(field, "name the ConfigMap"));
    } else if optional != Some(true) && !context.references.has_config_map(name) {
        errors.push(FieldError::not_found(
            field,
            format!(
                "ConfigMap {name:?} does not exist in namespace {:?}: create it first, or mark the reference optional",
                context.namespace
            ),
        ));
    }
}

fn check_secret_exists(
    name: &str,
    optional: Option<bool>,
    field: &str,
    context: &PodContext<'_>,
    errors: &mut Vec<FieldError>,
) {
    if name.is_empty() {
        errors.push(FieldError::required(field, "name the Secret"));
    } else if optional != Some(true) && !context.references.has_secret(name) {
        errors.push(FieldError::not_found(
            field,
            format!(
                "Secret {name:?} does not exist in namespace {:?}: create it first, or mark the reference optional",
                context.namespace
            ),
        ));
    }
}

fn check_behaviour_annotations(
    annotations: &BTreeMap<String, String>,
    pod: &Pod,
    errors: &mut Vec<FieldError>,
) {
    for (key, value) in annotations {
        let container = match key.strip_prefix(ANNOTATION_BEHAVIOUR) {
            Some("") => None,
            Some(rest) => match rest.strip_prefix('.') {
                Some(container) => Some(container),
                None => continue,
            },
            None => continue,
        };
        let field = format!("metadata.annotations[{key}]");
        if let Some(container) = container
            && !pod.spec.containers.iter().any(|c| c.name == container)
        {
            errors.push(FieldError::not_found(
                &field,
                format!("the pod has no app container named {container:?}"),
            ));
        }
        if let Err(problem) = behaviour::parse_annotation(value) {
            errors.push(FieldError::invalid(&field, problem));
        }
    }
    if let Some(value) = annotations.get(ANNOTATION_ON_SIGTERM)
        && let Err(problem) = behaviour::parse_on_sigterm(value)
    {
        errors.push(FieldError::invalid(
            format!("metadata.annotations[{ANNOTATION_ON_SIGTERM}]"),
            problem,
        ));
    }
}

/// The pod's size: pinned by the annotation or rounded up from the demand.
fn choose_size(
    annotations: &BTreeMap<String, String>,
    demand: Demand,
    declared: bool,
    errors: &mut Vec<FieldError>,
) -> Option<Flavour> {
    let pinned_field = format!("metadata.annotations[{ANNOTATION_POD_SIZE_SPECS}]");
    let needed = || {
        format!(
            "{} vCPU and {} MiB",
            demand.cpu_milli as f64 / 1000.0,
            demand.mem_bytes.div_ceil(flavour::MIB)
        )
    };
    let size = if let Some(pinned) = annotations.get(ANNOTATION_POD_SIZE_SPECS) {
        match pinned.parse::<Flavour>() {
            Err(problem) => {
                errors.push(FieldError::invalid(&pinned_field, problem));
                return None;
            }
            Ok(size) if !size.is_sold() => {
                let nearest = flavour::round_up(Demand {
                    cpu_milli: u64::from(size.cpu_milli),
                    mem_bytes: u64::from(size.mem_mib) * flavour::MIB,
                });
                errors.push(FieldError::invalid(
                    &pinned_field,
                    format!(
                        "{pinned:?} is not a CCI flavour{}",
                        nearest.map_or(String::new(), |n| format!(
                            ": the nearest larger one is \"{n}\""
                        ))
                    ),
                ));
                return None;
            }
            Ok(size) if !size.fits(demand) => {
                errors.push(FieldError::invalid(
                    &pinned_field,
                    format!(
                        "{pinned:?} is smaller than the containers need ({}): pin a larger flavour or remove the annotation",
                        needed()
                    ),
                ));
                return None;
            }
            Ok(size) => size,
        }
    } else if !declared {
        errors.push(FieldError::required(
            "spec.containers[0].resources",
            format!(
                "at least one container needs cpu and memory requests and limits, or the pod needs the annotation {ANNOTATION_POD_SIZE_SPECS}: \"{{cpu}}_{{mem}}\""
            ),
        ));
        return None;
    } else {
        match flavour::round_up(demand) {
            Some(size) => size,
            None => {
                errors.push(FieldError::forbidden(
                    "spec.containers",
                    format!(
                        "the pod needs {}, more than the largest CCI flavour (64 vCPU, 512 GiB): lower its requests and limits",
                        needed()
                    ),
                ));
                return None;
            }
        }
    };
    Some(size)
}

/// The volume types CCI refuses, by their field name.
fn unsupported_sources(volume: &Volume) -> Vec<&'static str> {
    let mut set = Vec::new();
    let mut check = |present: bool, name: &'static str| {
        if present {
            set.push(name);
        }
    };
    check(
        volume.aws_elastic_block_store.is_some(),
        "awsElasticBlockStore",
    );
    check(volume.azure_disk.is_some(), "azureDisk");
    check(volume.azure_file.is_some(), "azureFile");
    check(volume.cephfs.is_some(), "cephfs");
    check(volume.cinder.is_some(), "cinder");
    check(volume.csi.is_some(), "csi");
    check(volume.ephemeral.is_some(), "ephemeral");
    check(volume.fc.is_some(), "fc");
    check(volume.flex_volume.is_some(), "flexVolume");
    check(volume.flocker.is_some(), "flocker");
    check(volume.gce_persistent_disk.is_some(), "gcePersistentDisk");
    check(volume.git_repo.is_some(), "gitRepo");
    check(volume.glusterfs.is_some(), "glusterfs");
    check(volume.image.is_some(), "image");
    check(volume.iscsi.is_some(), "iscsi");
    check(volume.nfs.is_some(), "nfs");
    check(
        volume.photon_persistent_disk.is_some(),
        "photonPersistentDisk",
    );
    check(volume.portworx_volume.is_some(), "portworxVolume");
    check(volume.quobyte.is_some(), "quobyte");
    check(volume.rbd.is_some(), "rbd");
    check(volume.scale_io.is_some(), "scaleIO");
    check(volume.storageos.is_some(), "storageos");
    check(volume.vsphere_volume.is_some(), "vsphereVolume");
    set
}

fn supported_sources(volume: &Volume) -> Vec<&'static str> {
    [
        (volume.config_map.is_some(), "configMap"),
        (volume.secret.is_some(), "secret"),
        (volume.empty_dir.is_some(), "emptyDir"),
        (volume.downward_api.is_some(), "downwardAPI"),
        (volume.projected.is_some(), "projected"),
        (
            volume.persistent_volume_claim.is_some(),
            "persistentVolumeClaim",
        ),
        (volume.host_path.is_some(), "hostPath"),
    ]
    .into_iter()
    .filter_map(|(present, name)| present.then_some(name))
    .collect()
}

fn check_volumes(
    pod: &Pod,
    size: Option<Flavour>,
    context: &PodContext<'_>,
    errors: &mut Vec<FieldError>,
) {
    let mut names = BTreeSet::new();
    let mut empty_dirs = BTreeSet::new();
    for (index, volume) in pod.spec.volumes.iter().flatten().enumerate() {
        let field = format!("spec.volumes[{index}]");
        let name = &volume.name;
        if name.is_empty() {
            errors.push(FieldError::required(
                format!("{field}.name"),
                "name the volume",
            ));
        } else if let Err(problem) = check_dns1123_label(name) {
            errors.push(FieldError::invalid(format!("{field}.name"), problem));
        } else if !names.insert(name.clone()) {
            errors.push(FieldError::duplicate(
                format!("{field}.name"),
                format!("{name:?}: volume names must be unique within a pod"),
            ));
        }
        let unsupported = unsupported_sources(volume);
        let supported = supported_sources(volume);
        match unsupported.len() + supported.len() {
            0 => {
                errors.push(FieldError::required(
                    &field,
                    format!("volume {name:?} must specify a volume type (configMap, secret, emptyDir, downwardAPI, projected or persistentVolumeClaim on CCI)"),
                ));
                continue;
            }
            1 => {}
            _ => {
                errors.push(FieldError::forbidden(
                    &field,
                    format!("volume {name:?} may not specify more than 1 volume type"),
                ));
                continue;
            }
        }
        if let Some(kind) = unsupported.first() {
            errors.push(FieldError::forbidden(
                format!("{field}.{kind}"),
                format!(
                    "{kind} volume {name:?} is not supported on CCI: CCI mounts configMap, secret, emptyDir, downwardAPI, projected and SFS / SFS Turbo persistentVolumeClaim volumes; remove the volume or replace it"
                ),
            ));
            continue;
        }
        if let Some(host_path) = &volume.host_path
            && host_path.path != LOCALTIME_PATH
        {
            errors.push(FieldError::forbidden(
                format!("{field}.hostPath"),
                format!(
                    "hostPath volume {name:?} (path {:?}) is not supported on CCI, a shared cluster; only the path {LOCALTIME_PATH:?} is allowed: remove the volume, or replace it with coordinator.cci.io/hostpath-replacement",
                    host_path.path
                ),
            ));
        }
        if let Some(source) = &volume.config_map {
            check_config_map_exists(
                &source.name,
                source.optional,
                &format!("{field}.configMap.name"),
                context,
                errors,
            );
        }
        if let Some(source) = &volume.secret {
            check_secret_exists(
                source.secret_name.as_deref().unwrap_or_default(),
                source.optional,
                &format!("{field}.secret.secretName"),
                context,
                errors,
            );
        }
        if let Some(projected) = &volume.projected {
            for (j, projection) in projected.sources.iter().flatten().enumerate() {
                let at = format!("{field}.projected.sources[{j}]");
                if let Some(source) = &projection.config_map {
                    check_config_map_exists(
                        &source.name,
                        source.optional,
                        &format!("{at}.configMap.name"),
                        context,
                        errors,
                    );
                }
                if let Some(source) = &projection.secret {
                    check_secret_exists(
                        &source.name,
                        source.optional,
                        &format!("{at}.secret.name"),
                        context,
                        errors,
                    );
                }
                if projection.service_account_token.is_some() {
                    errors.push(FieldError::forbidden(
                        format!("{at}.serviceAccountToken"),
                        format!("projected volume {name:?}: CCI issues no tokens for the cluster's service accounts: project the service account's token Secret instead"),
                    ));
                }
                if projection.cluster_trust_bundle.is_some() || projection.pod_certificate.is_some()
                {
                    errors.push(FieldError::forbidden(
                        at.clone(),
                        format!("projected volume {name:?}: clusterTrustBundle and podCertificate sources are not supported on CCI"),
                    ));
                }
            }
        }
        if let Some(source) = &volume.persistent_volume_claim {
            check_claim(
                &source.claim_name,
                &format!("{field}.persistentVolumeClaim.claimName"),
                context,
                errors,
            );
        }
        if let Some(empty_dir) = &volume.empty_dir {
            empty_dirs.insert(name.clone());
            if let Some(limit) = &empty_dir.size_limit {
                check_empty_dir_size(
                    name,
                    &limit.0,
                    size,
                    &format!("{field}.emptyDir.sizeLimit"),
                    errors,
                );
            }
        }
    }
    for (group, containers, _) in containers_of(pod) {
        for (index, container) in containers.iter().enumerate() {
            for (j, mount) in container.volume_mounts.iter().flatten().enumerate() {
                let field = format!("{group}[{index}].volumeMounts[{j}]");
                if !names.contains(&mount.name) {
                    errors.push(FieldError::not_found(
                        format!("{field}.name"),
                        format!("{:?}: the pod has no volume of that name", mount.name),
                    ));
                }
                if mount.mount_path.is_empty() {
                    errors.push(FieldError::required(
                        format!("{field}.mountPath"),
                        "say where to mount the volume",
                    ));
                }
                if empty_dirs.contains(&mount.name) {
                    for (key, value) in [
                        ("subPath", &mount.sub_path),
                        ("subPathExpr", &mount.sub_path_expr),
                    ] {
                        if value.as_deref().is_some_and(|v| !v.is_empty()) {
                            errors.push(FieldError::forbidden(
                                format!("{field}.{key}"),
                                format!("emptyDir volume {:?} cannot be mounted with {key} on CCI: mount the whole volume", mount.name),
                            ));
                        }
                    }
                }
            }
        }
    }
}

fn check_claim(claim: &str, field: &str, context: &PodContext<'_>, errors: &mut Vec<FieldError>) {
    let classes = context.sfs_storage_classes.join(", ");
    match context.references.claim_class(claim) {
        _ if claim.is_empty() => errors.push(FieldError::required(
            field,
            "name the PersistentVolumeClaim",
        )),
        None => errors.push(FieldError::not_found(
            field,
            format!(
                "PersistentVolumeClaim {claim:?} does not exist in namespace {:?}: create it first",
                context.namespace
            ),
        )),
        Some(class)
            if !class
                .as_ref()
                .is_some_and(|c| context.sfs_storage_classes.contains(c)) =>
        {
            errors.push(FieldError::forbidden(
                field,
                format!(
                    "PersistentVolumeClaim {claim:?} has storage class {}: CCI mounts only SFS and SFS Turbo volumes (classes {classes})",
                    class.map_or("none".to_owned(), |c| format!("{c:?}"))
                ),
            ));
        }
        Some(_) => {}
    }
}

fn check_empty_dir_size(
    name: &str,
    limit: &str,
    size: Option<Flavour>,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    const GIB: u64 = 1 << 30;
    let bytes = match limit.parse::<Quantity>() {
        Ok(q) => q.units_ceil(),
        Err(problem) => {
            errors.push(FieldError::invalid(field, problem));
            return;
        }
    };
    if bytes == 0 || bytes % GIB != 0 {
        errors.push(FieldError::invalid(
            field,
            format!("emptyDir volume {name:?}: sizeLimit {limit:?} is not a whole number of Gi (at least 1Gi): CCI sizes emptyDir volumes in whole Gi, e.g. \"1Gi\", \"10Gi\""),
        ));
        return;
    }
    if let Some(size) = size {
        // NB: at most 10 GiB per CPU core of the size, counting a fraction of a core as a whole
        // core. The seed's own example (a 0.25 vCPU pod with a 10Gi emptyDir) must burst, and a
        // strict 10 × 0.25 = 2.5 GiB would refuse it; the seed wins over a literal reading.
        let cores = u64::from(size.cpu_milli).div_ceil(1000);
        let max_bytes = cores * 10 * GIB;
        if bytes > max_bytes {
            errors.push(FieldError::invalid(
                field,
                format!(
                    "emptyDir volume {name:?}: sizeLimit {limit:?} is more than 10 × the pod's {cores} CPU core(s) (a {} vCPU size; at most {} GiB): lower it or give the pod more CPU",
                    f64::from(size.cpu_milli) / 1000.0,
                    max_bytes / GIB
                ),
            ));
        }
    }
}

/// Checks the keys of a ConfigMap's or Secret's data; answers their total size in bytes.
fn check_data_keys<'a>(
    keys: impl Iterator<Item = (&'a str, usize, &'static str)>,
    errors: &mut Vec<FieldError>,
) -> usize {
    let mut total = 0usize;
    let mut seen = BTreeSet::new();
    for (key, len, field) in keys {
        total = total.saturating_add(key.len()).saturating_add(len);
        let valid = !key.is_empty()
            && key.len() <= DNS1123_SUBDOMAIN_MAX_LEN
            && key != "."
            && key != ".."
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            errors.push(FieldError::invalid(
                format!("{field}[{key}]"),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name'), at most 253 of them, and not be '.' or '..'",
            ));
        }
        if !seen.insert(key) {
            errors.push(FieldError::duplicate(
                format!("{field}[{key}]"),
                "the key appears in both data and binaryData (or data and stringData)",
            ));
        }
    }
    total
}

fn check_data_size(total: usize, errors: &mut Vec<FieldError>) {
    if total > DATA_MAX_BYTES {
        errors.push(FieldError::too_long(
            "data",
            format!("must have at most {DATA_MAX_BYTES} bytes (it has {total}): split the data or mount it from a volume"),
        ));
    }
}

/// Every rule a ConfigMap sent for `write` in `namespace` breaks (empty when it is valid).
pub fn validate_config_map(
    config_map: &ConfigMap,
    namespace: &str,
    write: Write,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(
        &config_map.api_version,
        &config_map.kind,
        "ConfigMap",
        &mut errors,
    );
    check_name(
        &config_map.metadata,
        "ConfigMap (a DNS-1123 subdomain)",
        "app-config",
        true,
        &mut errors,
    );
    check_namespace_field(&config_map.metadata, namespace, &mut errors);
    check_common_metadata(&config_map.metadata, write, &mut errors);
    let data = config_map
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.len(), "data"));
    let binary = config_map
        .binary_data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.len(), "binaryData"));
    let total = check_data_keys(data.chain(binary), &mut errors);
    check_data_size(total, &mut errors);
    errors
}

/// The Secret types Kubernetes knows, with the data key each requires.
const SECRET_TYPES: &[(&str, Option<&str>)] = &[
    ("Opaque", None),
    ("kubernetes.io/dockerconfigjson", Some(".dockerconfigjson")),
    ("kubernetes.io/dockercfg", Some(".dockercfg")),
    ("kubernetes.io/service-account-token", None),
    ("kubernetes.io/basic-auth", None),
    ("kubernetes.io/ssh-auth", Some("ssh-privatekey")),
    ("kubernetes.io/tls", Some("tls.crt")),
    ("bootstrap.kubernetes.io/token", None),
];

/// Every rule a Secret sent for `write` in `namespace` breaks (empty when it is valid).
/// `stringData` must already be merged into `data`.
pub fn validate_secret(secret: &Secret, namespace: &str, write: Write) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(&secret.api_version, &secret.kind, "Secret", &mut errors);
    check_name(
        &secret.metadata,
        "Secret (a DNS-1123 subdomain)",
        "imagepull-secret",
        true,
        &mut errors,
    );
    check_namespace_field(&secret.metadata, namespace, &mut errors);
    check_common_metadata(&secret.metadata, write, &mut errors);
    let data = secret.data.clone().unwrap_or_default();
    let total = check_data_keys(
        data.iter().map(|(k, v)| (k.as_str(), v.0.len(), "data")),
        &mut errors,
    );
    check_data_size(total, &mut errors);
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    match SECRET_TYPES.iter().find(|(t, _)| *t == type_) {
        // NB: custom types ("example.com/x") are allowed, as in Kubernetes.
        None if !type_.contains('/') => errors.push(FieldError::not_supported(
            "type",
            format!("{type_:?}: use Opaque, kubernetes.io/dockerconfigjson, kubernetes.io/tls, ... or a domain-prefixed custom type"),
        )),
        Some((_, Some(key))) if !data.contains_key(*key) => errors.push(FieldError::required(
            format!("data[{key}]"),
            format!("a Secret of type {type_:?} needs the key {key:?}"),
        )),
        Some(("kubernetes.io/dockerconfigjson", _)) => {
            let valid = data
                .get(".dockerconfigjson")
                .is_some_and(|v| serde_json::from_slice::<serde_json::Value>(&v.0).is_ok_and(|j| j.is_object()));
            if !valid {
                errors.push(FieldError::invalid(
                    "data[.dockerconfigjson]",
                    "must be a JSON object, as `docker login` writes to ~/.docker/config.json",
                ));
            }
        }
        _ => {}
    }
    errors
}

/// The CIDR CCI gives Service cluster IPs from (BEHAVIOR.md §10).
pub const SERVICE_CIDR: &str = "10.247.0.0/16";

/// Every rule a Service sent for `write` in `namespace` breaks (empty when it is valid).
pub fn validate_service(service: &Service, namespace: &str, write: Write) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(&service.api_version, &service.kind, "Service", &mut errors);
    check_name(
        &service.metadata,
        "Service (a DNS-1035 label)",
        "web",
        false,
        &mut errors,
    );
    if let Some(name) = service.metadata.name.as_deref()
        && name.starts_with(|c: char| c.is_ascii_digit())
    {
        errors.push(FieldError::invalid(
            "metadata.name",
            format!("{name:?}: a Service name must start with a letter (DNS-1035)"),
        ));
    }
    check_namespace_field(&service.metadata, namespace, &mut errors);
    check_common_metadata(&service.metadata, write, &mut errors);
    let spec = &service.spec;
    match spec.type_.as_deref() {
        None | Some("ClusterIP" | "LoadBalancer") => {}
        Some(other) => errors.push(FieldError::not_supported(
            "spec.type",
            format!("{other:?}: CCI Services are ClusterIP or LoadBalancer"),
        )),
    }
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && spec.cluster_ip.as_deref() != Some("None") {
        errors.push(FieldError::required(
            "spec.ports",
            "at least one port is required",
        ));
    }
    let mut names = BTreeSet::new();
    for (index, port) in ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        if !(1..=65535).contains(&port.port) {
            errors.push(FieldError::invalid(
                format!("{field}.port"),
                format!("{}: must be between 1 and 65535, inclusive", port.port),
            ));
        }
        if let Some(protocol) = port.protocol.as_deref()
            && !matches!(protocol, "TCP" | "UDP" | "SCTP")
        {
            errors.push(FieldError::not_supported(
                format!("{field}.protocol"),
                format!("{protocol:?}: supported values: \"TCP\", \"UDP\", \"SCTP\""),
            ));
        }
        if ports.len() > 1 && port.name.as_deref().is_none_or(str::is_empty) {
            errors.push(FieldError::required(
                format!("{field}.name"),
                "ports must be named when there is more than one",
            ));
        }
        if let Some(name) = port.name.as_deref()
            && !name.is_empty()
            && !names.insert(name)
        {
            errors.push(FieldError::duplicate(
                format!("{field}.name"),
                format!("{name:?}"),
            ));
        }
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && !ip.is_empty()
        && ip != "None"
        && !ip.starts_with("10.247.")
    {
        errors.push(FieldError::invalid(
            "spec.clusterIP",
            format!("{ip:?} is not in the CCI Service CIDR {SERVICE_CIDR}: leave it empty, the service assigns one"),
        ));
    }
    errors
}

/// Every rule a proxy registration sent for `write` in `namespace` breaks (empty when valid).
pub fn validate_proxy_registration(
    registration: &ProxyRegistration,
    namespace: &str,
    write: Write,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(
        &registration.api_version,
        &registration.kind,
        "ProxyRegistration",
        &mut errors,
    );
    check_name(
        &registration.metadata,
        "proxy registration (a DNS-1123 subdomain)",
        "cluster-proxy",
        true,
        &mut errors,
    );
    check_namespace_field(&registration.metadata, namespace, &mut errors);
    check_common_metadata(&registration.metadata, write, &mut errors);
    if registration.spec.protocols.is_empty() {
        errors.push(FieldError::required(
            "spec.protocols",
            "name the sidecar protocols the proxy speaks, e.g. [\"v1\", \"v2\"]",
        ));
    }
    for (index, protocol) in registration.spec.protocols.iter().enumerate() {
        if let Err(problem) = check_label_value(protocol).and_then(|()| {
            if protocol.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        }) {
            errors.push(FieldError::invalid(
                format!("spec.protocols[{index}]"),
                problem,
            ));
        }
    }
    for (index, service) in registration.spec.services.iter().enumerate() {
        let valid = service == "*"
            || service.split_once('/').is_some_and(|(ns, name)| {
                check_dns1123_label(ns).is_ok() && check_dns1123_label(name).is_ok()
            });
        if !valid {
            errors.push(FieldError::invalid(
                format!("spec.services[{index}]"),
                format!(
                    "{service:?}: write a cluster Service as \"namespace/name\", or \"*\" for all"
                ),
            ));
        }
    }
    if let Some(endpoint) = &registration.spec.endpoint {
        // Sidecars dial it as it is: no name to resolve, no port to guess.
        let valid = endpoint
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|a| a.port() != 0 && !a.ip().is_unspecified());
        if !valid {
            errors.push(FieldError::invalid(
                "spec.endpoint",
                format!(
                    "{endpoint:?}: write where sidecars reach the proxy as IP:port, e.g. \"10.0.0.5:8900\""
                ),
            ));
        }
    }
    errors
}

/// Every rule a network sent for `write` in `namespace` breaks (empty when it is valid).
pub fn validate_network(network: &Network, namespace: &str, write: Write) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta_of(
        NETWORK_API_VERSION,
        &network.api_version,
        &network.kind,
        "Network",
        &mut errors,
    );
    check_name(
        &network.metadata,
        "network (a DNS-1123 label)",
        "bursting-net",
        false,
        &mut errors,
    );
    check_namespace_field(&network.metadata, namespace, &mut errors);
    check_common_metadata(&network.metadata, write, &mut errors);
    let annotations = network.metadata.annotations.clone().unwrap_or_default();
    // NB: the published getting-started lists both IDs among what "you must specify".
    for (key, what) in [
        (ANNOTATION_NETWORK_PROJECT_ID, "the tenant's project ID"),
        (
            ANNOTATION_NETWORK_DOMAIN_ID,
            "the tenant's account (domain) ID",
        ),
    ] {
        if annotations.get(key).is_none_or(|v| v.trim().is_empty()) {
            errors.push(FieldError::required(
                format!("metadata.annotations[{key}]"),
                what,
            ));
        }
    }
    let spec = &network.spec;
    if let Some(kind) = spec.network_type.as_deref()
        && kind != NETWORK_TYPE_UNDERLAY
    {
        errors.push(FieldError::not_supported(
            "spec.networkType",
            format!("{kind:?}: supported values: \"{NETWORK_TYPE_UNDERLAY}\""),
        ));
    }
    for (index, family) in spec.ip_families.iter().flatten().enumerate() {
        if family != "IPv4" && family != "IPv6" {
            errors.push(FieldError::not_supported(
                format!("spec.ipFamilies[{index}]"),
                format!("{family:?}: supported values: \"IPv4\", \"IPv6\""),
            ));
        }
    }
    // NB: the reference table lets `securityGroups` be omitted ("nil means not enable security
    // group"), its getting-started says it must be specified: the mock holds the stricter.
    match spec.security_groups.as_deref() {
        None | Some([]) => errors.push(FieldError::required(
            "spec.securityGroups",
            "name the security group IDs of the pods' interfaces ([\"\"] enables one denying all)",
        )),
        Some(groups) if groups.len() > 1 && groups.iter().any(|g| g.trim().is_empty()) => {
            errors.push(FieldError::invalid(
                "spec.securityGroups",
                "an empty ID is allowed only alone ([\"\"]: deny all)",
            ));
        }
        Some(_) => {}
    }
    let subnets = spec.subnets.as_deref().unwrap_or_default();
    if subnets.is_empty() {
        errors.push(FieldError::required(
            "spec.subnets",
            "name at least one VPC subnet: [{\"subnetID\": \"…\"}]",
        ));
    }
    for (index, subnet) in subnets.iter().enumerate() {
        if subnet.subnet_id.trim().is_empty() {
            errors.push(FieldError::required(
                format!("spec.subnets[{index}].subnetID"),
                "the VPC subnet id",
            ));
        }
    }
    errors
}

/// The access modes Kubernetes knows.
const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// Every rule a claim sent for `write` in `namespace` breaks (empty when it is valid); its
/// class must be one of `sfs_storage_classes`.
pub fn validate_claim(
    claim: &PersistentVolumeClaim,
    namespace: &str,
    write: Write,
    sfs_storage_classes: &[String],
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(
        &claim.api_version,
        &claim.kind,
        "PersistentVolumeClaim",
        &mut errors,
    );
    check_name(
        &claim.metadata,
        "PersistentVolumeClaim (a DNS-1123 subdomain)",
        "shared-data",
        true,
        &mut errors,
    );
    check_namespace_field(&claim.metadata, namespace, &mut errors);
    check_common_metadata(&claim.metadata, write, &mut errors);
    let spec = &claim.spec;
    let modes = spec.access_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errors.push(FieldError::required(
            "spec.accessModes",
            "at least 1 access mode is required, e.g. ReadWriteMany",
        ));
    }
    for (index, mode) in modes.iter().enumerate() {
        if !ACCESS_MODES.contains(&mode.as_str()) {
            errors.push(FieldError::not_supported(
                format!("spec.accessModes[{index}]"),
                format!("{mode:?}: supported values: {}", ACCESS_MODES.join(", ")),
            ));
        }
    }
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    match storage.map(|q| q.0.parse::<Quantity>()) {
        None => errors.push(FieldError::required(
            "spec.resources.requests.storage",
            "say how much storage to claim, e.g. \"10Gi\"",
        )),
        Some(Err(problem)) => errors.push(FieldError::invalid(
            "spec.resources.requests.storage",
            problem,
        )),
        Some(Ok(q)) if q.is_zero() => errors.push(FieldError::invalid(
            "spec.resources.requests.storage",
            "must be greater than zero",
        )),
        Some(Ok(_)) => {}
    }
    let classes = sfs_storage_classes.join(", ");
    match spec.storage_class_name.as_deref() {
        None | Some("") => errors.push(FieldError::required(
            "spec.storageClassName",
            format!("CCI claims must name an SFS or SFS Turbo storage class ({classes})"),
        )),
        Some(class) if !sfs_storage_classes.iter().any(|c| c == class) => {
            errors.push(FieldError::forbidden(
                "spec.storageClassName",
                format!("{class:?} is not an SFS or SFS Turbo class: CCI provides only {classes}"),
            ))
        }
        Some(_) => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        EmptyDirVolumeSource, PersistentVolumeClaimVolumeSource, PodSpec,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use rstest::rstest;

    #[rstest]
    #[case::single_letter("a")]
    #[case::digits("123")]
    #[case::dashes_inside("my-name-1")]
    #[case::sixty_three_characters(&"a".repeat(63))]
    fn dns1123_label_accepts(#[case] value: &str) {
        assert_eq!(check_dns1123_label(value), Ok(()));
    }

    #[rstest]
    #[case::empty("", "must not be empty")]
    #[case::upper_case("Web", "lower case")]
    #[case::leading_dash("-web", "start and end")]
    #[case::trailing_dash("web-", "start and end")]
    #[case::dot("a.b", "lower case")]
    #[case::underscore("a_b", "lower case")]
    #[case::sixty_four_characters(&"a".repeat(64), "no more than 63")]
    fn dns1123_label_refuses(#[case] value: &str, #[case] hint: &str) {
        let problem = check_dns1123_label(value).unwrap_err();
        assert!(problem.contains(hint), "{problem}");
    }

    #[rstest]
    #[case::label("web-0")]
    #[case::dotted("web.example.com")]
    #[case::two_hundred_fifty_three_characters(&format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61)))]
    fn dns1123_subdomain_accepts(#[case] value: &str) {
        assert_eq!(check_dns1123_subdomain(value), Ok(()));
    }

    #[rstest]
    #[case::empty("", "must not be empty")]
    #[case::empty_label("a..b", "lower case")]
    #[case::leading_dot(".a", "lower case")]
    #[case::upper_case("Web.example", "lower case")]
    #[case::two_hundred_fifty_four_characters(&"a".repeat(254), "no more than 253")]
    fn dns1123_subdomain_refuses(#[case] value: &str, #[case] hint: &str) {
        let problem = check_dns1123_subdomain(value).unwrap_err();
        assert!(problem.contains(hint), "{problem}");
    }

    #[rstest]
    #[case::plain("app")]
    #[case::mixed_case_and_punctuation("My_App.name-1")]
    #[case::prefixed("bursting.cci.io/cluster-pod-uid")]
    #[case::sixty_three_character_name(&"a".repeat(63))]
    fn label_key_accepts(#[case] key: &str) {
        assert_eq!(check_qualified_name(key), Ok(()));
    }

    #[rstest]
    #[case::empty("", "name part must not be empty")]
    #[case::empty_prefix("/app", "prefix before '/' must not be empty")]
    #[case::empty_name("example.com/", "name part must not be empty")]
    #[case::two_slashes("a/b/c", "more than one '/'")]
    #[case::upper_case_prefix("Example.com/app", "prefix")]
    #[case::space("my app", "name part must consist")]
    #[case::leading_dot(".app", "name part must consist")]
    #[case::sixty_four_character_name(&"a".repeat(64), "no more than 63")]
    fn label_key_refuses(#[case] key: &str, #[case] hint: &str) {
        let problem = check_qualified_name(key).unwrap_err();
        assert!(problem.contains(hint), "{problem}");
    }

    #[rstest]
    #[case::empty("")]
    #[case::plain("v1.2_3-rc")]
    #[case::upper_case("Production")]
    #[case::sixty_three_characters(&"a".repeat(63))]
    fn label_value_accepts(#[case] value: &str) {
        assert_eq!(check_label_value(value), Ok(()));
    }

    #[rstest]
    #[case::slash("a/b")]
    #[case::trailing_dash("a-")]
    #[case::space("a b")]
    #[case::sixty_four_characters(&"a".repeat(64))]
    fn label_value_refuses(#[case] value: &str) {
        assert!(check_label_value(value).is_err());
    }

    /// A namespace holding ConfigMap `cm`, Secret `sec` and claims `nas` (SFS) and `disk`.
    struct Objects;

    impl References for Objects {
        fn has_config_map(&self, name: &str) -> bool {
            name == "cm"
        }

        fn has_secret(&self, name: &str) -> bool {
            name == "sec"
        }

        fn claim_class(&self, name: &str) -> Option<Option<String>> {
            match name {
                "nas" => Some(Some("csi-nas".into())),
                "disk" => Some(Some("csi-disk".into())),
                "classless" => Some(None),
                _ => None,
            }
        }
    }

    fn check(pod: &Pod) -> Result<Flavour, Vec<FieldError>> {
        let classes = ["csi-nas".to_owned(), "csi-sfsturbo".to_owned()];
        validate_pod(
            pod,
            &PodContext {
                namespace: "ns",
                references: &Objects,
                sfs_storage_classes: &classes,
            },
        )
    }

    fn pod(name: &str, containers: &[(&str, Option<&str>)]) -> Pod {
        let both = BTreeMap::from([
            ("cpu".to_owned(), Quantity("250m".into())),
            ("memory".to_owned(), Quantity("512Mi".into())),
        ]);
        let containers = containers
            .iter()
            .map(|(name, image)| Container {
                name: (*name).into(),
                image: image.map(Into::into),
                resources: Some(ResourceRequirements {
                    requests: Some(both.clone()),
                    limits: Some(both.clone()),
                    claims: None,
                }),
                ..Container::default()
            })
            .collect();
        Pod::new(
            ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            PodSpec {
                containers,
                ..PodSpec::default()
            },
        )
    }

    fn fields(result: Result<Flavour, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_pod_with_a_named_container_image_and_resources_gets_its_size() {
        let size = check(&pod("web-0", &[("app", Some("nginx"))])).unwrap();
        assert_eq!(size.to_string(), "0.25_0.5");
    }

    #[test]
    fn a_pod_without_containers_is_told_one_is_required() {
        let errors = check(&pod("web-0", &[])).unwrap_err();
        assert_eq!(
            errors,
            vec![FieldError::required(
                "spec.containers",
                "at least one container is required"
            )]
        );
        assert_eq!(
            errors[0].to_string(),
            "spec.containers: Required value: at least one container is required"
        );
    }

    #[test]
    fn a_pod_collects_every_broken_rule() {
        let mut bad = pod(
            "Web",
            &[("App", None), ("ok", Some("x")), ("ok", Some("y"))],
        );
        bad.api_version = "v1".into();
        bad.metadata.namespace = Some("other".into());
        bad.metadata.labels = Some([("bad key".to_owned(), "v".to_owned())].into());
        assert_eq!(
            fields(check(&bad)),
            [
                "apiVersion",
                "metadata.name",
                "metadata.namespace",
                "metadata.labels",
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[2].name",
            ]
        );
    }

    #[test]
    fn a_pod_may_not_bring_its_own_resource_version() {
        let mut sent = pod("web-0", &[("app", Some("nginx"))]);
        sent.metadata.resource_version = Some("7".into());
        assert_eq!(fields(check(&sent)), ["metadata.resourceVersion"]);
    }

    #[test]
    fn an_init_container_may_not_share_a_name_with_an_app_container() {
        let mut sent = pod("web-0", &[("app", Some("nginx"))]);
        sent.spec.init_containers = Some(vec![Container {
            name: "app".into(),
            image: Some("busybox".into()),
            ..Container::default()
        }]);
        let errors = check(&sent).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.containers[0].name");
        assert_eq!(errors[0].type_, ErrorType::Duplicate);
    }

    #[rstest]
    #[case::sfs("nas", None)]
    #[case::not_sfs("disk", Some(ErrorType::Forbidden))]
    #[case::no_class("classless", Some(ErrorType::Forbidden))]
    #[case::missing("nope", Some(ErrorType::NotFound))]
    fn a_claim_must_exist_and_be_of_an_sfs_class(
        #[case] claim: &str,
        #[case] refused: Option<ErrorType>,
    ) {
        let mut sent = pod("web-0", &[("app", Some("nginx"))]);
        sent.spec.volumes = Some(vec![Volume {
            name: "data".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.into(),
                read_only: None,
            }),
            ..Volume::default()
        }]);
        let got = check(&sent).err().map(|errors| errors[0].type_);
        assert_eq!(got, refused);
    }

    #[rstest]
    #[case::quarter_core_counts_as_one_core_like_the_seeds_example("250m", "512Mi", "10Gi", true)]
    #[case::quarter_core_refuses_eleven_gi("250m", "512Mi", "11Gi", false)]
    #[case::four_cores_take_forty_gi("4", "8Gi", "40Gi", true)]
    #[case::four_cores_refuse_forty_one_gi("4", "8Gi", "41Gi", false)]
    fn an_empty_dir_holds_at_most_ten_gi_per_started_core(
        #[case] cpu: &str,
        #[case] memory: &str,
        #[case] limit: &str,
        #[case] accepted: bool,
    ) {
        let mut sent = pod("web-0", &[("app", Some("nginx"))]);
        let both = BTreeMap::from([
            ("cpu".to_owned(), Quantity(cpu.into())),
            ("memory".to_owned(), Quantity(memory.into())),
        ]);
        sent.spec.containers[0].resources = Some(ResourceRequirements {
            requests: Some(both.clone()),
            limits: Some(both),
            claims: None,
        });
        sent.spec.volumes = Some(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: Some(Quantity(limit.into())),
            }),
            ..Volume::default()
        }]);
        assert_eq!(check(&sent).is_ok(), accepted, "{:?}", check(&sent));
    }

    #[rstest]
    #[case::valid("bursting-c1", "Namespace", &[])]
    #[case::dotted_name("a.b", "Namespace", &["metadata.name"])]
    #[case::wrong_kind("ok", "Pod", &["kind"])]
    #[case::no_name("", "Namespace", &["metadata.name"])]
    fn namespace_validation(#[case] name: &str, #[case] kind: &str, #[case] fields: &[&str]) {
        let mut ns = Namespace::new(ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        });
        ns.kind = kind.into();
        let got: Vec<_> = validate_namespace(&ns)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(got, fields);
    }
}
