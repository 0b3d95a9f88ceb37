//! What a CCI request does, told from its method and path: the one classification the engine
//! counts its requests by and the harness reads the mock's request log with, so both say alike
//! what was sent.

use std::fmt;

/// What a CCI request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    /// `GET` of a collection.
    List,
    /// `GET` of a collection with `watch=true`.
    Watch,
    /// `GET` of one object.
    Get,
    /// `POST` to a collection.
    Create,
    /// `PUT` of one object.
    Replace,
    /// `DELETE` of one object.
    Delete,
    /// `GET` of a pod's log.
    Log,
    /// Anything else.
    Other,
}

impl Verb {
    /// Every verb, in the order of their discriminants (`verb as usize` indexes this).
    pub const ALL: [Verb; 8] = [
        Verb::List,
        Verb::Watch,
        Verb::Get,
        Verb::Create,
        Verb::Replace,
        Verb::Delete,
        Verb::Log,
        Verb::Other,
    ];

    /// The HTTP method and the word, e.g. `GET list`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::List => "GET list",
            Verb::Watch => "GET watch",
            Verb::Get => "GET get",
            Verb::Create => "POST create",
            Verb::Replace => "PUT replace",
            Verb::Delete => "DELETE delete",
            Verb::Log => "GET log",
            Verb::Other => "other",
        }
    }
}

/// The collections told apart; anything else is `other`, the last.
pub const COLLECTIONS: [&str; 9] = [
    "namespaces",
    "pods",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "services",
    "proxyregistrations",
    "networks",
    "other",
];

/// A request's [`Verb`] and the index of its collection in [`COLLECTIONS`]. Displays as
/// `"{METHOD} {verb} {collection}"`, e.g. `"GET list pods"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestKind {
    /// What the request does.
    pub verb: Verb,
    /// The index of its collection in [`COLLECTIONS`].
    pub collection: usize,
}

impl RequestKind {
    /// Classifies a request by its method and its path (with any query) below an API prefix
    /// (`…/namespaces[/{ns}[/{plural}[/{name}[/log]]]][?query]`).
    pub fn of(method: &str, path_and_query: &str) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let below = path
            .split_once("/namespaces")
            .map_or("", |(_, rest)| rest)
            .trim_matches('/');
        let segments: Vec<&str> = below.split('/').filter(|s| !s.is_empty()).collect();
        let (collection, item, log) = match segments.as_slice() {
            [] => ("namespaces", false, false),
            [_] => ("namespaces", true, false),
            [_, plural] => (*plural, false, false),
            [_, plural, _] => (*plural, true, false),
            [_, plural, _, "log"] => (*plural, true, true),
            _ => ("other", true, false),
        };
        let watch = query.split('&').any(|kv| kv == "watch=true");
        let verb = match (method, item) {
            ("GET", _) if log => Verb::Log,
            ("GET", false) if watch => Verb::Watch,
            ("GET", false) => Verb::List,
            ("GET", true) => Verb::Get,
            ("POST", false) => Verb::Create,
            ("PUT", true) => Verb::Replace,
            ("DELETE", true) => Verb::Delete,
            _ => Verb::Other,
        };
        let collection = COLLECTIONS
            .iter()
            .position(|c| *c == collection)
            .unwrap_or(COLLECTIONS.len() - 1);
        Self { verb, collection }
    }

    /// The name of its collection, e.g. `pods` (`other` for one not told apart).
    pub fn collection(self) -> &'static str {
        COLLECTIONS[self.collection]
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.verb.as_str(), self.collection())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::list_pods("GET", "/apis/cci/v2/namespaces/ns/pods", "GET list pods")]
    #[case::watch_pods(
        "GET",
        "/apis/cci/v2/namespaces/ns/pods?watch=true&resourceVersion=7&timeoutSeconds=300",
        "GET watch pods"
    )]
    #[case::not_a_watch("GET", "/apis/cci/v2/namespaces/ns/pods?watch=false", "GET list pods")]
    #[case::list_with_a_query(
        "GET",
        "/apis/cci/v2/namespaces/ns/pods?labelSelector=a",
        "GET list pods"
    )]
    #[case::get_pod("GET", "/apis/cci/v2/namespaces/ns/pods/shop.web-0", "GET get pods")]
    #[case::log(
        "GET",
        "/apis/cci/v2/namespaces/ns/pods/p/log?container=c",
        "GET log pods"
    )]
    #[case::create_pod("POST", "/apis/cci/v2/namespaces/ns/pods", "POST create pods")]
    #[case::delete_pod(
        "DELETE",
        "/apis/cci/v2/namespaces/ns/pods/p?gracePeriodSeconds=0",
        "DELETE delete pods"
    )]
    #[case::replace_configmap(
        "PUT",
        "/apis/cci/v2/namespaces/ns/configmaps/shop.cfg",
        "PUT replace configmaps"
    )]
    #[case::replace_proxy_registration(
        "PUT",
        "/apis/cci/v2/namespaces/ns/proxyregistrations/cluster-proxy",
        "PUT replace proxyregistrations"
    )]
    #[case::list_namespaces("GET", "/apis/cci/v2/namespaces", "GET list namespaces")]
    #[case::create_namespace("POST", "/apis/cci/v2/namespaces", "POST create namespaces")]
    #[case::get_namespace("GET", "/apis/cci/v2/namespaces/ns", "GET get namespaces")]
    #[case::delete_network(
        "DELETE",
        "/apis/yangtse/v2/namespaces/ns/networks/n",
        "DELETE delete networks"
    )]
    #[case::unknown_collection("GET", "/apis/cci/v2/namespaces/ns/widgets", "GET list other")]
    #[case::too_deep("GET", "/apis/cci/v2/namespaces/ns/pods/p/exec/x", "GET get other")]
    #[case::post_to_an_item("POST", "/apis/cci/v2/namespaces/ns/pods/p", "other pods")]
    #[case::patch("PATCH", "/apis/cci/v2/namespaces/ns/pods/p", "other pods")]
    fn requests_are_classified_by_verb_and_collection(
        #[case] method: &str,
        #[case] path: &str,
        #[case] kind: &str,
    ) {
        let classified = RequestKind::of(method, path);
        assert_eq!(classified.to_string(), kind);
        assert_eq!(
            format!("{} {}", classified.verb.as_str(), classified.collection()),
            kind
        );
    }

    #[test]
    fn every_verb_sits_at_its_own_index() {
        for (i, verb) in Verb::ALL.into_iter().enumerate() {
            assert_eq!(verb as usize, i, "{verb:?}");
        }
    }
}
