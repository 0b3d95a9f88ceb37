//! The harness's view of CCI through the tenant's public CCI 2.0 API (the paths, header and
//! objects of the published reference, see `mock-cci/README.md`): what a user of the add-on can
//! read about the CCI side. The same code reads the mock and the real service; what only the
//! mock can tell (faults, peak counts) is in [`crate::mock_admin`].
//!
//! Scenarios read the CCI side only from here, never from the engine.
//!
//! HTTPS is checked against the system's CA roots, or only against a CA given for a private
//! endpoint (the local mock's); no redirect is followed, so the token goes to the endpoint only.
//!
//! The tenant authenticates with a token (`X-Auth-Token`) or an AK/SK pair that signs every
//! request ([`CciAuth`]), as the add-on itself may.

use cci_api::signing::Credentials;
use cci_api::{AUTH_HEADER, List, Pod};

use crate::error::{Error, Result};

/// How burstcert's own client of CCI authenticates. `Debug` shows neither the token nor the
/// secret key.
#[derive(Clone, PartialEq, Eq)]
pub enum CciAuth {
    /// An IAM token, sent in `X-Auth-Token`.
    Token(String),
    /// An AK/SK pair: every request is signed (`cci_api::aksk::sign_request`), no token sent.
    AkSk(Credentials),
}

impl std::fmt::Debug for CciAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CciAuth::Token(_) => f.write_str("Token([redacted])"),
            CciAuth::AkSk(pair) => write!(f, "AkSk({}:[redacted])", pair.access_key()),
        }
    }
}

impl CciAuth {
    /// The one credential given: `token` (from `CCI_TOKEN` or a token file), or an AK/SK pair
    /// (the text of an AK/SK file, else `CCI_ACCESS_KEY` and `CCI_SECRET_KEY`; see
    /// [`cci_api::aksk::pair_from`]). `Ok(None)` when none is given; an error when both are, or
    /// half a pair; no error repeats a secret.
    pub fn choose(
        token: Option<String>,
        aksk_file: Option<&str>,
        access_key: Option<String>,
        secret_key: Option<String>,
    ) -> std::result::Result<Option<Self>, String> {
        Ok(
            match cci_api::aksk::one_credential(token, aksk_file, access_key, secret_key)? {
                Some(cci_api::aksk::Given::Token(token)) => Some(CciAuth::Token(token)),
                Some(cci_api::aksk::Given::Pair(pair)) => Some(CciAuth::AkSk(pair)),
                None => None,
            },
        )
    }

    /// The one credential a command was given: the token of `token_file` (`--cci-token-file`),
    /// else of `CCI_TOKEN`; or the AK/SK pair of `aksk_file` (`--cci-aksk-file`, one `AK:SK`
    /// line), else of `CCI_ACCESS_KEY` and `CCI_SECRET_KEY`. `Ok(None)` when none is given.
    /// Never from a flag: a command line is seen by everyone on the machine.
    pub fn from_files_or_env(
        token_file: Option<&std::path::Path>,
        aksk_file: Option<&std::path::Path>,
    ) -> std::result::Result<Option<Self>, String> {
        let read = |path: &std::path::Path, what: &str| {
            std::fs::read_to_string(path)
                .map_err(|e| format!("read the {what} from {}: {e}", path.display()))
        };
        let token = match token_file {
            Some(path) => {
                let text = read(path, "CCI token")?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(format!(
                        "--cci-token-file {}: the file is empty",
                        path.display()
                    ));
                }
                Some(token.to_owned())
            }
            None => std::env::var(crate::certify::TOKEN_ENV).ok(),
        };
        let aksk = aksk_file.map(|path| read(path, "AK/SK pair")).transpose()?;
        let env = |name| std::env::var(name).ok();
        Self::choose(
            token,
            aksk.as_deref(),
            env(cci_api::aksk::ACCESS_KEY_ENV),
            env(cci_api::aksk::SECRET_KEY_ENV),
        )
    }

    /// What must never be shown: the token, or the secret key.
    pub fn secret(&self) -> &str {
        match self {
            CciAuth::Token(token) => token,
            CciAuth::AkSk(pair) => pair.secret_key(),
        }
    }
}

/// A client of CCI's public API for one tenant.
#[derive(Clone)]
pub struct CciClient {
    url: String,
    auth: CciAuth,
    ca_pem: Option<String>,
    http: reqwest::Client,
}

/// The credential is never printed.
impl std::fmt::Debug for CciClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CciClient")
            .field("url", &self.url)
            .field("auth", &self.auth)
            .field("ca", &self.ca_pem.as_ref().map(|_| "given"))
            .finish()
    }
}

/// An HTTP client for CCI (or the mock's admin side) at `url`: HTTPS checked against the CA
/// certificates of `ca_pem` only, or without one against the system's CA roots (rustls with
/// ring, as the engine); no redirect followed; no idle connection kept (see [`CciClient::new`]).
pub(crate) fn http_client(url: &str, ca_pem: Option<&str>) -> Result<reqwest::Client> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    use rustls_platform_verifier::BuilderVerifierExt as _;

    let fail = |detail: String| Error::Step {
        step: format!("set up the HTTP client of {url}"),
        detail,
    };
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(e.to_string()))?;
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| fail(format!("the CA bundle is not PEM: {e}")))?;
                roots.add(cert).map_err(|e| {
                    fail(format!("the CA bundle holds an unusable certificate: {e}"))
                })?;
            }
            if roots.is_empty() {
                return Err(fail("the CA bundle holds no certificate".into()));
            }
            builder.with_root_certificates(roots)
        }
        // NB: plain HTTP needs no roots (and a host without a CA store still reaches the mock).
        None if url.starts_with("http://") => {
            builder.with_root_certificates(rustls::RootCertStore::empty())
        }
        None => builder
            .with_platform_verifier()
            .map_err(|e| fail(format!("the system's CA roots: {e}")))?,
    };
    reqwest::Client::builder()
        // No idle connections kept: the clients live in the shared environment, and each test
        // has its own tokio runtime; a pooled connection made on a runtime that has ended fails
        // the next request ("dispatch task is gone").
        .pool_max_idle_per_host(0)
        // A redirect would carry the token to another address: CCI does not redirect.
        .redirect(reqwest::redirect::Policy::none())
        .tls_backend_preconfigured(builder.with_no_client_auth())
        .build()
        .map_err(|e| fail(e.to_string()))
}

impl CciClient {
    /// A client for the CCI API at `url` (e.g. `https://127.0.0.1:4321`) as the tenant of
    /// `token`; HTTPS is checked against the CA certificates of `ca_pem` (PEM) only, or, without
    /// one, against the system's CA roots.
    pub fn new(url: &str, token: &str, ca_pem: Option<&str>) -> Result<Self> {
        Self::with_auth(url, CciAuth::Token(token.to_owned()), ca_pem)
    }

    /// [`CciClient::new`] authenticating as `auth` says.
    pub fn with_auth(url: &str, auth: CciAuth, ca_pem: Option<&str>) -> Result<Self> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            auth,
            ca_pem: ca_pem.map(str::to_owned),
            http: http_client(url, ca_pem)?,
        })
    }

    /// The endpoint's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The CA (PEM) HTTPS is checked against, when one was given (else the system's roots).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The tenant token, when the client authenticates with one (not an AK/SK pair).
    pub fn token(&self) -> Option<&str> {
        match &self.auth {
            CciAuth::Token(token) => Some(token),
            CciAuth::AkSk(_) => None,
        }
    }

    /// How the client authenticates.
    pub fn auth(&self) -> &CciAuth {
        &self.auth
    }

    /// Sends the request `builder` makes with this client's credential: the token, or the
    /// signature of the request as it is sent (signed at this moment, so a request is built
    /// afresh for each send).
    async fn send(
        &self,
        builder: reqwest::RequestBuilder,
    ) -> std::result::Result<reqwest::Response, reqwest::Error> {
        let request = match &self.auth {
            CciAuth::Token(token) => builder.header(AUTH_HEADER, token).build()?,
            CciAuth::AkSk(pair) => {
                let mut request = builder.build()?;
                cci_api::aksk::sign_request(&mut request, pair, std::time::SystemTime::now());
                request
            }
        };
        self.http.execute(request).await
    }

    /// GETs a tenant path under the CCI API and decodes it; `None` on 404.
    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        context: &str,
    ) -> Result<Option<T>> {
        self.get_json_under(cci_api::API_PREFIX, path, context)
            .await
    }

    /// GETs a tenant path under API prefix `prefix` and decodes it; `None` on 404.
    async fn get_json_under<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        path: &str,
        context: &str,
    ) -> Result<Option<T>> {
        let http = |source| Error::Http {
            context: context.to_owned(),
            source,
        };
        let resp = self
            .send(self.http.get(format!("{}{prefix}{path}", self.url)))
            .await
            .map_err(http)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        resp.error_for_status()
            .map_err(http)?
            .json()
            .await
            .map(Some)
            .map_err(http)
    }

    /// Every pod in a CCI namespace (empty when the namespace does not exist).
    pub async fn pods(&self, namespace: &str) -> Result<Vec<Pod>> {
        let list: Option<List<Pod>> = self
            .get_json(
                &format!("/namespaces/{namespace}/pods"),
                &format!("list CCI pods in {namespace}"),
            )
            .await?;
        Ok(list.map(|l| l.items).unwrap_or_default())
    }

    /// Every Network (`yangtse/v2`) of a CCI namespace (empty when the namespace does not exist).
    pub async fn networks(&self, namespace: &str) -> Result<Vec<cci_api::Network>> {
        let list: Option<List<cci_api::Network>> = self
            .get_json_under(
                cci_api::NETWORK_API_PREFIX,
                &format!("/namespaces/{namespace}/networks"),
                &format!("list CCI networks in {namespace}"),
            )
            .await?;
        Ok(list.map(|l| l.items).unwrap_or_default())
    }

    /// One object of a namespace by its plural (`configmaps`, `secrets`, …); `None` if absent.
    pub async fn object<T: serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        plural: &str,
        name: &str,
    ) -> Result<Option<T>> {
        self.get_json(
            &format!("/namespaces/{namespace}/{plural}/{name}"),
            &format!("get CCI {plural} {namespace}/{name}"),
        )
        .await
    }

    /// Sends `method` to a tenant API path (under the API prefix) with an optional JSON body;
    /// `Ok(None)` for 404, the decoded answer otherwise.
    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        context: &str,
    ) -> Result<Option<serde_json::Value>> {
        self.send_json_under(cci_api::API_PREFIX, method, path, body, context)
            .await
    }

    /// [`send_json`](Self::send_json) under API prefix `prefix`.
    async fn send_json_under(
        &self,
        prefix: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
        context: &str,
    ) -> Result<Option<serde_json::Value>> {
        let http = |source| Error::Http {
            context: context.to_owned(),
            source,
        };
        let mut request = self
            .http
            .request(method, format!("{}{prefix}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = self.send(request).await.map_err(http)?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = resp.status();
        let text = resp.text().await.map_err(http)?;
        if !status.is_success() {
            return Err(Error::Step {
                step: context.to_owned(),
                detail: format!("CCI answered {status}: {text}"),
            });
        }
        Ok(Some(
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// Creates a Network (`yangtse/v2`) in a CCI namespace, as another client of CCI would.
    pub async fn create_network(
        &self,
        namespace: &str,
        network: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let path = format!("/namespaces/{namespace}/networks");
        let context = format!("POST CCI {}{path}", cci_api::NETWORK_API_PREFIX);
        self.send_json_under(
            cci_api::NETWORK_API_PREFIX,
            reqwest::Method::POST,
            &path,
            Some(network),
            &context,
        )
        .await?
        .ok_or_else(|| Error::Step {
            step: context,
            detail: "CCI answered 404".into(),
        })
    }

    /// Creates an object through the tenant API (`POST {path}`), as another client of CCI would.
    pub async fn create(
        &self,
        path: &str,
        object: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let context = format!("POST CCI {path}");
        self.send_json(reqwest::Method::POST, path, Some(object), &context)
            .await?
            .ok_or_else(|| Error::Step {
                step: context,
                detail: "CCI answered 404".into(),
            })
    }

    /// Deletes an object through the tenant API; a missing one is fine.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let context = format!("DELETE CCI {path}");
        self.send_json(reqwest::Method::DELETE, path, None, &context)
            .await
            .map(|_| ())
    }

    /// Runs a command in a CCI pod's container (`POST …/pods/{name}/exec` with a JSON body):
    /// the mock's own exec, which simulates `probe <service>[.<namespace>]` with its network
    /// model; the published exec streams instead (`mock-cci/README.md`), so only scenarios that
    /// need the mock call this.
    pub async fn exec(
        &self,
        namespace: &str,
        pod: &str,
        command: &[&str],
    ) -> Result<cci_api::ExecResult> {
        let context = format!("exec {command:?} in CCI pod {namespace}/{pod}");
        let body = serde_json::json!({ "command": command });
        let answer = self
            .send_json(
                reqwest::Method::POST,
                &format!("/namespaces/{namespace}/pods/{pod}/exec"),
                Some(&body),
                &context,
            )
            .await?
            .ok_or_else(|| Error::Step {
                step: context.clone(),
                detail: "no such pod".into(),
            })?;
        serde_json::from_value(answer).map_err(|e| Error::Step {
            step: context,
            detail: e.to_string(),
        })
    }

    /// The log the mock holds for a container of a CCI pod (`GET …/pods/{pod}/log`), the last
    /// `tail_lines` lines when given.
    pub async fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        tail_lines: Option<i64>,
    ) -> Result<String> {
        let context = format!("read the log of container {container} of CCI pod {namespace}/{pod}");
        let http = |source| Error::Http {
            context: context.clone(),
            source,
        };
        let mut query = vec![("container", container.to_owned())];
        if let Some(n) = tail_lines {
            query.push(("tailLines", n.to_string()));
        }
        let url = reqwest::Url::parse_with_params(
            &format!(
                "{}{}/namespaces/{namespace}/pods/{pod}/log",
                self.url,
                cci_api::API_PREFIX
            ),
            &query,
        )
        .map_err(|e| Error::Step {
            step: context.clone(),
            detail: e.to_string(),
        })?;
        let resp = self.send(self.http.get(url)).await.map_err(http)?;
        let status = resp.status();
        let text = resp.text().await.map_err(http)?;
        if !status.is_success() {
            return Err(Error::Step {
                step: context,
                detail: format!("CCI answered {status}: {text}"),
            });
        }
        Ok(text)
    }

    /// Whether a CCI namespace exists.
    pub async fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        Ok(self.namespace(namespace).await?.is_some())
    }

    /// A CCI namespace as CCI answers it (`None` once it is gone).
    pub async fn namespace(&self, namespace: &str) -> Result<Option<cci_api::Namespace>> {
        self.get_json::<cci_api::Namespace>(
            &format!("/namespaces/{namespace}"),
            &format!("get CCI namespace {namespace}"),
        )
        .await
    }

    /// A one-paragraph summary of a namespace for timeout diagnoses.
    pub async fn describe(&self, namespace: &str) -> String {
        match self.pods(namespace).await {
            Ok(pods) => {
                let rows: Vec<String> = pods
                    .iter()
                    .map(|p| {
                        format!(
                            "  {} {}",
                            p.metadata.name.as_deref().unwrap_or("?"),
                            p.status
                                .as_ref()
                                .and_then(|s| s.phase.as_deref())
                                .unwrap_or("?")
                        )
                    })
                    .collect();
                format!(
                    "CCI namespace {namespace}: {} pods\n{}",
                    pods.len(),
                    rows.join("\n")
                )
            }
            Err(e) => format!("CCI namespace {namespace}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A server answering every connection's request with `answer`, counting connections.
    async fn answering(answer: String) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&count);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let mut request = [0; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        (addr, count)
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed_so_the_token_goes_nowhere_else() {
        let (elsewhere, reached) =
            answering("HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".into())
                .await;
        let (endpoint, _) = answering(format!(
            "HTTP/1.1 302 Found\r\nlocation: http://{elsewhere}/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
        .await;
        let cci = CciClient::new(&format!("http://{endpoint}"), "secret", None).unwrap();
        assert!(cci.namespace_exists("bursting-c1").await.is_err());
        assert_eq!(
            reached.load(Ordering::SeqCst),
            0,
            "the redirect was followed"
        );
    }

    #[tokio::test]
    async fn a_client_holding_an_ak_sk_pair_signs_as_its_tenant_and_a_wrong_secret_is_refused() {
        let pair = |secret: &str| Credentials::new("TENANTAK", secret).unwrap();
        let mock = mock_cci::Server::bind(
            mock_cci::MockConfig::default().with_access_key(pair("the-secret-key"), "tenant-a"),
        )
        .await
        .unwrap();
        let signing =
            CciClient::with_auth(&mock.url(), CciAuth::AkSk(pair("the-secret-key")), None).unwrap();
        assert!(signing.pods("bursting-c1").await.unwrap().is_empty());
        assert_eq!(signing.token(), None);
        let wrong =
            CciClient::with_auth(&mock.url(), CciAuth::AkSk(pair("another-secret")), None).unwrap();
        let err = wrong.pods("bursting-c1").await.unwrap_err();
        assert!(err.to_string().contains("401"), "{err}");
        let shown = format!("{signing:?} {:?}", signing.auth());
        assert!(!shown.contains("the-secret-key"), "{shown}");
        mock.shutdown().await.unwrap();
    }

    // NB: which credentials are refused, and how, is `cci_api::aksk::one_credential`'s and
    // tested there; this is only the mapping onto burstcert's client.
    #[test]
    fn no_credential_is_none_and_one_is_that_one() {
        assert_eq!(CciAuth::choose(None, None, None, None), Ok(None));
        assert_eq!(
            CciAuth::choose(Some("tok".into()), None, None, None),
            Ok(Some(CciAuth::Token("tok".into())))
        );
        let pair = CciAuth::choose(None, None, Some("AK".into()), Some("sk".into()))
            .unwrap()
            .unwrap();
        assert_eq!(pair.secret(), "sk");
    }

    #[test]
    fn a_ca_bundle_without_a_certificate_is_refused() {
        let err = CciClient::new("https://cci.example", "secret", Some("not PEM")).unwrap_err();
        assert!(err.to_string().contains("CA bundle"), "{err}");
    }
}
