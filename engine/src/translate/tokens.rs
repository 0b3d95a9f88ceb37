//! The service account token a projected `serviceAccountToken` source stands for. CCI has no API
//! server to issue tokens, so the source becomes the account's long-lived token Secret
//! (`BEHAVIOR.md` §5): which Secrets are token Secrets of an account, which one of several is
//! mounted, and what the pod waits for when there is none.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Pod, PodSpec, Secret, ServiceAccount};

use super::is_kube_api_access;
use crate::Error;

/// The type of a service account's long-lived token Secret.
pub const SERVICE_ACCOUNT_TOKEN_TYPE: &str = "kubernetes.io/service-account-token";
/// Annotation of a token Secret: the name of the service account it holds the token of.
pub const ANNOTATION_SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";
/// Annotation of a token Secret: the UID of that service account (set by the token controller).
pub const ANNOTATION_SERVICE_ACCOUNT_UID: &str = "kubernetes.io/service-account.uid";
/// The key of a token Secret that holds the token.
pub const TOKEN_KEY: &str = "token";

/// What [`choose_token_secret`] found for a service account.
#[derive(Debug, PartialEq)]
pub enum TokenSecret<'a> {
    /// A token Secret of the account with its token filled in: the one to mount.
    Ready(&'a Secret),
    /// Token Secrets of the account exist, but the token controller has filled in none yet;
    /// this is the one that will be mounted once it has.
    NotFilled(&'a Secret),
    /// The account has no token Secret.
    Missing,
}

/// The service account whose token a projected `serviceAccountToken` source of `pod` stands for
/// (the pod's account, `default` when it names none), if the pod has such a source outside the
/// dropped `kube-api-access-*` volume.
pub fn token_account(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    let wants_token = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| !is_kube_api_access(v))
        .flat_map(|v| v.projected.iter().flat_map(|p| p.sources.iter().flatten()))
        .any(|s| s.service_account_token.is_some());
    wants_token.then(|| service_account(spec))
}

/// Whether `secret` is a token Secret of service account `account` (as Kubernetes defines one):
/// type [`SERVICE_ACCOUNT_TOKEN_TYPE`], in the account's namespace, annotated
/// [`ANNOTATION_SERVICE_ACCOUNT_NAME`] with the account's name and, when the Secret carries
/// [`ANNOTATION_SERVICE_ACCOUNT_UID`] and the account has a UID, with that UID (a Secret of an
/// earlier account of the same name is not this one's).
pub fn is_token_secret_of(secret: &Secret, account: &ServiceAccount) -> bool {
    let annotation = |key: &str| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let account_uid = account.metadata.uid.as_deref().filter(|u| !u.is_empty());
    let uid_matches = match (annotation(ANNOTATION_SERVICE_ACCOUNT_UID), account_uid) {
        (Some(on_secret), Some(of_account)) => on_secret == of_account,
        _ => true,
    };
    secret.type_.as_deref() == Some(SERVICE_ACCOUNT_TOKEN_TYPE)
        && secret.metadata.namespace == account.metadata.namespace
        && annotation(ANNOTATION_SERVICE_ACCOUNT_NAME).is_some()
        && annotation(ANNOTATION_SERVICE_ACCOUNT_NAME) == account.metadata.name.as_deref()
        && uid_matches
}

/// Whether the token controller has filled in `secret`'s token.
fn has_token(secret: &Secret) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .is_some_and(|t| !t.0.is_empty())
}

/// The token Secret of service account `account` a projected `serviceAccountToken` source
/// becomes, among `secrets` (those of the account's namespace; any others are ignored).
///
/// Only token Secrets of the account count ([`is_token_secret_of`]). When several do, the choice
/// is stable: one whose token is filled in before one whose token is not, then one the account
/// lists in its `secrets`, then the oldest (`creationTimestamp`; one without comes last), then
/// the first by name.
pub fn choose_token_secret<'a>(account: &ServiceAccount, secrets: &'a [Secret]) -> TokenSecret<'a> {
    let listed: BTreeSet<&str> = account
        .secrets
        .iter()
        .flatten()
        .filter_map(|r| r.name.as_deref())
        .collect();
    let chosen = secrets
        .iter()
        .filter(|s| is_token_secret_of(s, account))
        .min_by_key(|s| {
            let name = s.metadata.name.as_deref().unwrap_or_default();
            let created = s.metadata.creation_timestamp.as_ref();
            (
                !has_token(s),
                !listed.contains(name),
                created.is_none(),
                created,
                name,
            )
        });
    match chosen {
        Some(s) if has_token(s) => TokenSecret::Ready(s),
        Some(s) => TokenSecret::NotFilled(s),
        None => TokenSecret::Missing,
    }
}

/// The pod waits: service account `namespace/account` has no token Secret; says what to create.
pub fn missing_token_secret(namespace: &str, account: &str) -> Error {
    Error::WaitingForToken {
        namespace: namespace.into(),
        account: account.into(),
        reason: format!(
            "none exists; create one in namespace {namespace}: a Secret of type {SERVICE_ACCOUNT_TOKEN_TYPE} with the annotation {ANNOTATION_SERVICE_ACCOUNT_NAME}: {account} (any name; the token controller fills in its token); the pod starts on CCI once it has its token"
        ),
    }
}

fn service_account(spec: &PodSpec) -> &str {
    #[allow(deprecated)]
    let legacy = spec.service_account.as_deref();
    spec.service_account_name
        .as_deref()
        .or(legacy)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures::{LATEST, cluster_pod, pod_with, token_volume};
    use crate::translate::{ObjectKind, references, to_cci_pod};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use rstest::rstest;
    use std::collections::BTreeMap;

    #[test]
    fn without_a_token_secret_a_pod_with_a_token_source_waits_naming_what_to_create() {
        let mut pod = pod_with(vec![token_volume()], vec![]);
        pod.spec.as_mut().unwrap().service_account_name = Some("reporter".into());
        assert_eq!(token_account(&pod), Some("reporter"));
        assert!(
            !references(&pod, None)
                .keys()
                .any(|k| k.kind == ObjectKind::Secret)
        );
        let err = to_cci_pod(&pod, "c1", LATEST, None).unwrap_err();
        let message = err.to_string();
        for needle in [
            "shop/reporter",
            "namespace shop",
            "type kubernetes.io/service-account-token",
            "annotation kubernetes.io/service-account.name: reporter",
        ] {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
        assert!(matches!(
            vk::ProviderError::from(err),
            vk::ProviderError::Transient { .. }
        ));
    }

    #[test]
    fn only_a_token_source_outside_the_api_access_volume_needs_a_token_secret() {
        let mut api_access = token_volume();
        api_access.name = "kube-api-access-x7k2p".into();
        assert_eq!(token_account(&pod_with(vec![api_access], vec![])), None);
        assert_eq!(token_account(&cluster_pod("shop", "web-0")), None);
        let mut unnamed = pod_with(vec![token_volume()], vec![]);
        unnamed.spec.as_mut().unwrap().service_account_name = None;
        assert_eq!(token_account(&unnamed), Some("default"));
    }

    // --- choosing the token Secret ---

    const ACCOUNT_UID: &str = "sa-uid-1";

    fn account(listed: &[&str]) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("reporter".into()),
                uid: Some(ACCOUNT_UID.into()),
                ..ObjectMeta::default()
            },
            secrets: (!listed.is_empty()).then(|| {
                listed
                    .iter()
                    .map(|n| k8s_openapi::api::core::v1::ObjectReference {
                        name: Some((*n).into()),
                        ..Default::default()
                    })
                    .collect()
            }),
            ..ServiceAccount::default()
        }
    }

    /// A filled-in token Secret `name` of `reporter`, created at second `created` of the epoch.
    fn token_secret(name: &str, created: i64) -> Secret {
        Secret {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some(name.into()),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(created).unwrap(),
                )),
                annotations: Some(BTreeMap::from([
                    (ANNOTATION_SERVICE_ACCOUNT_NAME.into(), "reporter".into()),
                    (ANNOTATION_SERVICE_ACCOUNT_UID.into(), ACCOUNT_UID.into()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(SERVICE_ACCOUNT_TOKEN_TYPE.into()),
            data: Some(BTreeMap::from([(
                TOKEN_KEY.into(),
                k8s_openapi::ByteString(b"t0k3n".to_vec()),
            )])),
            ..Secret::default()
        }
    }

    fn chosen(account: &ServiceAccount, secrets: &[Secret]) -> Option<String> {
        match choose_token_secret(account, secrets) {
            TokenSecret::Ready(s) => s.metadata.name.clone(),
            TokenSecret::NotFilled(s) => Some(format!(
                "not filled: {}",
                s.metadata.name.as_deref().unwrap()
            )),
            TokenSecret::Missing => None,
        }
    }

    #[test]
    fn an_account_without_token_secrets_has_none() {
        assert_eq!(
            choose_token_secret(&account(&[]), &[]),
            TokenSecret::Missing
        );
    }

    #[test]
    fn the_one_token_secret_of_the_account_is_chosen_whatever_its_name() {
        let secrets = [token_secret("burster-long-lived", 10)];
        assert_eq!(
            chosen(&account(&[]), &secrets).as_deref(),
            Some("burster-long-lived")
        );
    }

    #[rstest]
    #[case::wrong_type(|s: &mut Secret| s.type_ = Some("Opaque".into()))]
    #[case::no_type(|s: &mut Secret| s.type_ = None)]
    #[case::another_account(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap()
            .insert(ANNOTATION_SERVICE_ACCOUNT_NAME.into(), "builder".into());
    })]
    #[case::no_account_annotation(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap().remove(ANNOTATION_SERVICE_ACCOUNT_NAME);
    })]
    #[case::an_earlier_account_of_the_same_name(|s: &mut Secret| {
        s.metadata.annotations.as_mut().unwrap()
            .insert(ANNOTATION_SERVICE_ACCOUNT_UID.into(), "sa-uid-0".into());
    })]
    #[case::another_namespace(|s: &mut Secret| s.metadata.namespace = Some("lab".into()))]
    fn a_secret_that_is_not_the_accounts_token_secret_is_never_chosen(
        #[case] spoil: fn(&mut Secret),
    ) {
        let mut secret = token_secret("reporter-token", 10);
        spoil(&mut secret);
        assert_eq!(
            choose_token_secret(&account(&["reporter-token"]), std::slice::from_ref(&secret)),
            TokenSecret::Missing
        );
    }

    #[test]
    fn a_token_secret_without_the_uid_annotation_counts_for_the_account() {
        let mut secret = token_secret("manual", 10);
        secret
            .metadata
            .annotations
            .as_mut()
            .unwrap()
            .remove(ANNOTATION_SERVICE_ACCOUNT_UID);
        assert_eq!(chosen(&account(&[]), &[secret]).as_deref(), Some("manual"));
    }

    #[test]
    fn of_several_the_one_listed_in_the_accounts_secrets_is_chosen_then_the_oldest_then_by_name() {
        let secrets = [
            token_secret("a-newest", 30),
            token_secret("b-listed", 20),
            token_secret("c-oldest", 10),
            token_secret("d-oldest-too", 10),
        ];
        assert_eq!(
            chosen(&account(&["b-listed"]), &secrets).as_deref(),
            Some("b-listed")
        );
        assert_eq!(chosen(&account(&[]), &secrets).as_deref(), Some("c-oldest"));
        let mut reversed = secrets.clone();
        reversed.reverse();
        assert_eq!(
            chosen(&account(&[]), &reversed).as_deref(),
            Some("c-oldest"),
            "the choice does not depend on the order the cluster lists them in"
        );
        // A listed name that is not a token Secret of the account changes nothing.
        assert_eq!(
            chosen(&account(&["absent"]), &secrets).as_deref(),
            Some("c-oldest")
        );
    }

    #[test]
    fn a_token_secret_with_its_token_is_chosen_before_one_still_being_filled_in() {
        let mut listed_empty = token_secret("listed-empty", 10);
        listed_empty.data = None;
        let filled = token_secret("filled", 20);
        assert_eq!(
            chosen(&account(&["listed-empty"]), &[listed_empty.clone(), filled]).as_deref(),
            Some("filled")
        );
        assert_eq!(
            chosen(&account(&[]), &[listed_empty]).as_deref(),
            Some("not filled: listed-empty")
        );
    }
}
