//! A small client of the CCI 2.0 API (plain JSON over HTTP, token in `X-Auth-Token`).

use std::time::Duration;

use cci_api::{
    API_PREFIX, AUTH_HEADER, List, NETWORK_API_PREFIX, Namespace, Network, Pod, PodSummary, Status,
};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Timeout of one CCI request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of connecting to CCI.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A CCI API client. Cheap to clone (the connection pool is shared). It sends each request
/// once, except a 429 with a short `Retry-After` ([`MAX_RETRY_AFTER`]), sent again once after
/// the wait; every other failure is the caller's to retry.
#[derive(Clone)]
pub struct CciClient {
    http: reqwest::Client,
    /// The endpoint without a trailing `/`.
    endpoint: String,
    token: String,
}

impl std::fmt::Debug for CciClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // NB: never the token.
        f.debug_struct("CciClient")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl CciClient {
    /// A client of the CCI API at `endpoint` (e.g. `http://127.0.0.1:8443`), authenticating with
    /// `token`.
    pub fn new(endpoint: &str, token: impl Into<String>) -> Result<Self> {
        let bad = |reason: &str| Error::Endpoint {
            endpoint: endpoint.into(),
            reason: reason.into(),
        };
        let url = Url::parse(endpoint).map_err(|e| bad(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_REQUEST_TIMEOUT)
            .connect_timeout(DEFAULT_CONNECT_TIMEOUT)
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            http,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: token.into(),
        })
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T> {
        let bytes = self.send(method.clone(), &path, body).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            method,
            path,
            source,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<bytes::Bytes> {
        let http_err = |source| Error::Http {
            method: method.clone(),
            path: path.to_string(),
            source,
        };
        let request = || {
            let request = self
                .http
                .request(method.clone(), format!("{}{path}", self.endpoint))
                .header(AUTH_HEADER, &self.token)
                .header(reqwest::header::ACCEPT, "application/json");
            match body {
                Some(body) => request.json(body),
                None => request,
            }
        };
        let mut response = request().send().await.map_err(http_err)?;
        // NB: a 429 was not applied, so even a create may be sent again; once, and only after a
        // short wait, or the caller (the controller's backoff) would be kept waiting here.
        if let Some(wait) = retry_after(&response) {
            tracing::debug!(%method, path, wait_ms = wait.as_millis(), "cci throttled; retrying once");
            tokio::time::sleep(wait).await;
            response = request().send().await.map_err(http_err)?;
        }
        let code = response.status();
        let bytes = response.bytes().await.map_err(http_err)?;
        if code.is_success() {
            // NB: handed on as received, not copied: a pod list can be megabytes.
            return Ok(bytes);
        }
        let (reason, message) = error_body(&bytes, code);
        tracing::debug!(%method, path, code = code.as_u16(), %reason, %message, "cci error");
        Err(Error::Api {
            method,
            path: path.to_string(),
            code: code.as_u16(),
            reason,
            message,
        })
    }

    /// Create a namespace.
    pub async fn create_namespace(&self, namespace: &Namespace) -> Result<Namespace> {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces"),
            Some(namespace),
        )
        .await
    }

    /// Read a namespace.
    pub async fn get_namespace(&self, name: &str) -> Result<Namespace> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{name}"),
            NO_BODY,
        )
        .await
    }

    /// Delete a namespace (with everything in it). One that does not exist is an
    /// [`Error::Api`] with code 404.
    pub async fn delete_namespace(&self, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Create the CCI namespace of cluster `cluster_id` (`bursting-{clusterID}`, labelled with
    /// the ID) unless it exists; answers whether it was created. Every component that needs
    /// the namespace (the virtual kubelet, the proxy) goes through here, so they agree on it.
    pub async fn ensure_cluster_namespace(&self, cluster_id: &str) -> Result<bool> {
        let namespace = crate::translate::cci_namespace(cluster_id);
        match self.create_namespace(&namespace).await {
            Ok(_) => {
                tracing::info!(
                    namespace = namespace.metadata.name.as_deref().unwrap_or_default(),
                    "created CCI namespace"
                );
                Ok(true)
            }
            Err(e) if e.code() == Some(409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Create a pod in `namespace`; answers the stored pod.
    pub async fn create_pod(&self, namespace: &str, pod: &Pod) -> Result<Pod> {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            Some(pod),
        )
        .await
    }

    /// Read a pod.
    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}"),
            NO_BODY,
        )
        .await
    }

    /// List the pods of `namespace`.
    pub async fn list_pods(&self, namespace: &str) -> Result<List<Pod>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            NO_BODY,
        )
        .await
    }

    /// The pods of `namespace` as [`PodSummary`]s: metadata, container names and images,
    /// status. What a status round needs, at a tenth of the memory of [`list_pods`](Self::list_pods).
    pub async fn list_pod_summaries(&self, namespace: &str) -> Result<List<PodSummary>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/pods"),
            NO_BODY,
        )
        .await
    }

    /// The log of one container of a pod, as text (`GET …/pods/{name}/log`): the last
    /// `tail_lines` lines when given, the previous (terminated) instance when `previous`. A pod
    /// that does not exist is an [`Error::Api`] with code 404; a container that has no such log
    /// (still waiting, no previous instance) one with code 400.
    pub async fn pod_log(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
        tail_lines: Option<i64>,
        previous: bool,
    ) -> Result<String> {
        let mut query = vec![("container", container.to_owned())];
        if let Some(n) = tail_lines {
            query.push(("tailLines", n.to_string()));
        }
        if previous {
            query.push(("previous", "true".to_owned()));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let bytes = self
            .send(
                Method::GET,
                &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}/log?{query}"),
                NO_BODY,
            )
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Delete a pod. A pod that does not exist is an [`Error::Api`] with code 404.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Delete a pod with `grace` seconds for its containers to stop (CCI's default when `None`):
    /// the grace period of the cluster pod's graceful delete. A pod that does not exist is an
    /// [`Error::Api`] with code 404.
    pub async fn delete_pod_with_grace(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<()> {
        let query = grace.map_or_else(String::new, |g| format!("?gracePeriodSeconds={g}"));
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}{query}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Delete a pod at once (`gracePeriodSeconds=0`): for clean-up, where nobody waits for the
    /// containers to stop. A pod that does not exist is an [`Error::Api`] with code 404.
    pub async fn delete_pod_now(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }

    /// Create an object of the collection `plural` (`configmaps`, `secrets`,
    /// `persistentvolumeclaims`, `services`, `proxyregistrations`) in `namespace`; answers the
    /// stored object.
    pub async fn create_object<T>(&self, namespace: &str, plural: &str, object: &T) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Sync,
    {
        self.call(
            Method::POST,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}"),
            Some(object),
        )
        .await
    }

    /// List the objects of the collection `plural` in `namespace`.
    pub async fn list_objects<T: DeserializeOwned>(
        &self,
        namespace: &str,
        plural: &str,
    ) -> Result<List<T>> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}"),
            NO_BODY,
        )
        .await
    }

    /// Read object `name` of the collection `plural` in `namespace`.
    pub async fn get_object<T: DeserializeOwned>(
        &self,
        namespace: &str,
        plural: &str,
        name: &str,
    ) -> Result<T> {
        self.call(
            Method::GET,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            NO_BODY,
        )
        .await
    }

    /// Replace object `name` of the collection `plural` in `namespace` (unconditionally when
    /// the object carries no `resourceVersion`); answers the stored object.
    pub async fn replace_object<T>(
        &self,
        namespace: &str,
        plural: &str,
        name: &str,
        object: &T,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned + Sync,
    {
        self.call(
            Method::PUT,
            format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            Some(object),
        )
        .await
    }

    /// Delete object `name` of the collection `plural` in `namespace`. One that does not exist
    /// is an [`Error::Api`] with code 404.
    pub async fn delete_object(&self, namespace: &str, plural: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{API_PREFIX}/namespaces/{namespace}/{plural}/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }
}

/// The network objects live in their own API group (`yangtse/v2`), hence their own methods.
impl CciClient {
    /// Create a network in `namespace`; answers the stored network.
    pub async fn create_network(&self, namespace: &str, network: &Network) -> Result<Network> {
        self.call(
            Method::POST,
            format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks"),
            Some(network),
        )
        .await
    }

    /// List the networks of `namespace`.
    pub async fn list_networks(&self, namespace: &str) -> Result<List<Network>> {
        self.call(
            Method::GET,
            format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks"),
            NO_BODY,
        )
        .await
    }

    /// Delete network `name` of `namespace`. One that does not exist is an [`Error::Api`] with
    /// code 404.
    pub async fn delete_network(&self, namespace: &str, name: &str) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("{NETWORK_API_PREFIX}/namespaces/{namespace}/networks/{name}"),
            NO_BODY,
        )
        .await?;
        Ok(())
    }
}

const NO_BODY: Option<&()> = None;

/// The longest `Retry-After` of a 429 the client waits for before retrying; a longer one (or an
/// HTTP date) is surfaced as the 429 it is, and the caller backs off.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How long to wait before sending a throttled (429) request again: its `Retry-After` in whole
/// seconds, when at most [`MAX_RETRY_AFTER`].
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    if response.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let seconds: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds)).filter(|wait| *wait <= MAX_RETRY_AFTER)
}

/// Reason and message of an error answer: the API's `Status` shape when it is one, else the
/// body's text.
fn error_body(bytes: &[u8], code: reqwest::StatusCode) -> (String, String) {
    if let Ok(status) = serde_json::from_slice::<Status>(bytes) {
        return (status.reason, status.message);
    }
    // Lenient: a Status-like body missing some fields still names its reason.
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let field = |f: &str| value.get(f).and_then(|v| v.as_str()).map(str::to_string);
        if let (Some(reason), message) = (field("reason"), field("message")) {
            return (reason, message.unwrap_or_default());
        }
    }
    let text = String::from_utf8_lossy(bytes).chars().take(500).collect();
    (
        code.canonical_reason()
            .unwrap_or("Unknown")
            .replace(' ', ""),
        text,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_must_be_an_http_url() {
        assert!(CciClient::new("http://127.0.0.1:1/", "t").is_ok());
        let err = CciClient::new("127.0.0.1:1", "t").unwrap_err();
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        assert!(CciClient::new("ftp://x", "t").is_err());
    }

    #[test]
    fn error_bodies_are_read_strictly_then_leniently_then_as_text() {
        let code = reqwest::StatusCode::NOT_FOUND;
        let full = br#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pod x not found","reason":"NotFound","code":404,"errorCode":"CCI.01.404001"}"#;
        assert_eq!(
            error_body(full, code),
            ("NotFound".into(), "pod x not found".into())
        );
        let partial = br#"{"reason":"NotFound","code":404}"#;
        assert_eq!(
            error_body(partial, code),
            ("NotFound".into(), String::new())
        );
        assert_eq!(
            error_body(b"no such thing", code),
            ("NotFound".into(), "no such thing".into())
        );
    }
}
