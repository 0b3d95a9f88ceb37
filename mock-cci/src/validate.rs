//! Validation of objects sent to the API, with the syntax rules Kubernetes applies.
//!
//! Pure functions: each check returns the problem as a phrase, and the object validators collect
//! every broken rule as a [`FieldError`] so one refusal tells the whole story.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cci_api::{API_VERSION, Namespace, Pod};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The longest DNS-1123 label (namespace names, container names).
pub const DNS1123_LABEL_MAX_LEN: usize = 63;
/// The longest DNS-1123 subdomain (pod names, label key prefixes).
pub const DNS1123_SUBDOMAIN_MAX_LEN: usize = 253;
/// The longest label value and label key name part.
pub const QUALIFIED_NAME_MAX_LEN: usize = 63;

const DNS1123_LABEL_RULE: &str = "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')";
const DNS1123_SUBDOMAIN_RULE: &str = "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com')";
const QUALIFIED_NAME_RULE: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc')";

/// One broken rule: the field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.containers[0].name`.
    pub field: String,
    /// What is wrong, as a phrase the person who wrote the manifest can act on.
    pub message: String,
}

impl FieldError {
    /// A broken rule at `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
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
            errors.push(FieldError::new(field, format!("label key {problem}")));
        }
        if let Err(problem) = check_label_value(value) {
            errors.push(FieldError::new(
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
    if api_version != API_VERSION {
        errors.push(FieldError::new(
            "apiVersion",
            format!("must be {API_VERSION:?} (got {api_version:?})"),
        ));
    }
    if kind != expected_kind {
        errors.push(FieldError::new(
            "kind",
            format!("must be {expected_kind:?} (got {kind:?})"),
        ));
    }
}

fn check_common_metadata(metadata: &ObjectMeta, errors: &mut Vec<FieldError>) {
    if let Some(rv) = &metadata.resource_version {
        errors.push(FieldError::new(
            "metadata.resourceVersion",
            format!("must not be set on create (got {rv:?}): the service assigns it"),
        ));
    }
    if let Some(labels) = &metadata.labels {
        check_labels(labels, "metadata.labels", errors);
    }
    if let Some(annotations) = &metadata.annotations {
        for key in annotations.keys() {
            if let Err(problem) = check_qualified_name(key) {
                errors.push(FieldError::new(
                    "metadata.annotations",
                    format!("annotation key {problem}"),
                ));
            }
        }
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
    match namespace.metadata.name.as_deref() {
        None | Some("") => errors.push(FieldError::new(
            "metadata.name",
            "is required: name the namespace (a DNS-1123 label, e.g. \"bursting-cluster-1\")",
        )),
        Some(name) => {
            if let Err(problem) = check_dns1123_label(name) {
                errors.push(FieldError::new("metadata.name", problem));
            }
        }
    }
    check_common_metadata(&namespace.metadata, &mut errors);
    errors
}

/// Every rule a pod sent for creation in namespace `namespace` breaks (empty when it is valid).
pub fn validate_pod(pod: &Pod, namespace: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_type_meta(&pod.api_version, &pod.kind, "Pod", &mut errors);
    match pod.metadata.name.as_deref() {
        None | Some("") => errors.push(FieldError::new(
            "metadata.name",
            "is required: name the pod (a DNS-1123 subdomain, e.g. \"web-0\")",
        )),
        Some(name) => {
            if let Err(problem) = check_dns1123_subdomain(name) {
                errors.push(FieldError::new("metadata.name", problem));
            }
        }
    }
    if let Some(sent) = pod.metadata.namespace.as_deref()
        && !sent.is_empty()
        && sent != namespace
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            format!(
                "{sent:?} does not match the namespace {namespace:?} of the request path: omit it or make them equal"
            ),
        ));
    }
    check_common_metadata(&pod.metadata, &mut errors);

    if pod.spec.containers.is_empty() {
        errors.push(FieldError::new(
            "spec.containers",
            "at least one container is required",
        ));
    }
    // NB: Kubernetes requires container names to be unique across init and app containers.
    let mut seen = BTreeSet::new();
    let init = pod.spec.init_containers.iter().flatten();
    let groups = [
        ("spec.initContainers", init.collect::<Vec<_>>()),
        ("spec.containers", pod.spec.containers.iter().collect()),
    ];
    for (group, containers) in groups {
        for (index, container) in containers.into_iter().enumerate() {
            check_container(
                container,
                &format!("{group}[{index}]"),
                &mut seen,
                &mut errors,
            );
        }
    }
    errors
}

fn check_container(
    container: &Container,
    field: &str,
    seen: &mut BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    if container.name.is_empty() {
        errors.push(FieldError::new(
            format!("{field}.name"),
            "is required: name the container (a DNS-1123 label, e.g. \"app\")",
        ));
    } else if let Err(problem) = check_dns1123_label(&container.name) {
        errors.push(FieldError::new(format!("{field}.name"), problem));
    } else if !seen.insert(container.name.clone()) {
        errors.push(FieldError::new(
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
        errors.push(FieldError::new(
            format!("{field}.image"),
            "is required: name the image to run, e.g. \"nginx:1.27\"",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
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

    fn pod(name: &str, containers: &[(&str, Option<&str>)]) -> Pod {
        let containers = containers
            .iter()
            .map(|(name, image)| Container {
                name: (*name).into(),
                image: image.map(Into::into),
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

    #[test]
    fn a_pod_with_a_named_container_and_image_is_valid() {
        assert_eq!(
            validate_pod(&pod("web-0", &[("app", Some("nginx"))]), "ns"),
            vec![]
        );
    }

    #[test]
    fn a_pod_without_containers_is_told_one_is_required() {
        let errors = validate_pod(&pod("web-0", &[]), "ns");
        assert_eq!(
            errors,
            vec![FieldError::new(
                "spec.containers",
                "at least one container is required"
            )]
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
        let fields: Vec<_> = validate_pod(&bad, "ns")
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
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
        let errors = validate_pod(&sent, "ns");
        assert_eq!(errors[0].field, "metadata.resourceVersion");
    }

    #[test]
    fn an_init_container_may_not_share_a_name_with_an_app_container() {
        let mut sent = pod("web-0", &[("app", Some("nginx"))]);
        sent.spec.init_containers = Some(vec![Container {
            name: "app".into(),
            image: Some("busybox".into()),
            ..Container::default()
        }]);
        let errors = validate_pod(&sent, "ns");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.containers[0].name");
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
