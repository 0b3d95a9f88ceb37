//! The mock CCI's admin side (`/_mock/…`, no tenant token): typed faults and the inside view
//! (peak counts) that only the mock can give. Scenarios that use it declare
//! [`Need::MockAdmin`](crate::needs::Need::MockAdmin); on a target without the mock (an
//! existing cluster with a real CCI endpoint) they do not run, and nothing here is reachable.

use std::time::Duration;

use mock_cci::faults::ActiveFault;
use mock_cci::{Fault, FaultSpec, Scope};

use crate::error::{Error, Result};

/// A client of the mock's admin API.
#[derive(Clone, Debug)]
pub struct MockAdmin {
    url: String,
    http: reqwest::Client,
}

impl MockAdmin {
    /// The admin side of the mock at `url` (its base URL; the admin API needs no token), its
    /// HTTPS checked against `ca_pem` as the tenant client's ([`crate::cci::CciClient::new`]).
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Self> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http: crate::cci::http_client(url, ca_pem)?,
        })
    }

    /// Sets `fault` on `scope` (`POST /_mock/faults`). The guard clears it when dropped,
    /// whatever happens in between; [`FaultGuard::clear`] clears it now and says if that failed.
    pub async fn set_fault(&self, scope: Scope, fault: Fault) -> Result<FaultGuard> {
        let spec = FaultSpec { scope, fault };
        let context = format!("set mock fault {:?} on {:?}", spec.fault, spec.scope);
        let set: ActiveFault = self
            .json(
                self.http
                    .post(format!("{}/_mock/faults", self.url))
                    .json(&spec),
                &context,
            )
            .await?;
        Ok(FaultGuard {
            admin: self.clone(),
            id: Some(set.id),
        })
    }

    /// Clears one fault (`DELETE /_mock/faults/{id}`); clearing one already gone is fine.
    pub async fn clear_fault(&self, id: u64) -> Result<()> {
        let context = || format!("clear mock fault {id}");
        let resp = self
            .http
            .delete(format!("{}/_mock/faults/{id}", self.url))
            .send()
            .await
            .map_err(|source| Error::Http {
                context: context(),
                source,
            })?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        resp.error_for_status().map_err(|source| Error::Http {
            context: context(),
            source,
        })?;
        Ok(())
    }

    /// The faults that are set, with how often each matched and fired.
    pub async fn faults(&self) -> Result<Vec<ActiveFault>> {
        let value = self.inside("/_mock/faults").await?;
        serde_json::from_value(value).map_err(|e| Error::Step {
            step: "read the mock's faults".into(),
            detail: e.to_string(),
        })
    }

    /// The mock's request log (`/_mock/requests`, oldest first; the last `limit` when given):
    /// every request that reached it, whoever sent it.
    pub async fn requests(&self, limit: Option<usize>) -> Result<Vec<LoggedRequest>> {
        let path = match limit {
            Some(n) => format!("/_mock/requests?limit={n}"),
            None => "/_mock/requests".to_owned(),
        };
        serde_json::from_value(self.inside(&path).await?).map_err(|e| Error::Step {
            step: "read the mock's request log".into(),
            detail: e.to_string(),
        })
    }

    /// Issues (or renews) `token` for `tenant`, valid for `ttl` from now, as IAM issues tokens
    /// (`PUT /_mock/tokens/{token}`).
    pub async fn issue_token(&self, token: &str, tenant: &str, ttl: Duration) -> Result<()> {
        let context = "issue a token on the mock";
        self.http
            .put(format!("{}/_mock/tokens/{token}", self.url))
            .json(&serde_json::json!({"tenant": tenant, "ttlSeconds": ttl.as_secs()}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|source| Error::Http {
                context: context.to_owned(),
                source,
            })?;
        Ok(())
    }

    /// A GET of the mock's inside view, e.g. `/_mock/peak?namespace=NS` (WL-04, RES-03), as JSON.
    pub async fn inside(&self, path_and_query: &str) -> Result<serde_json::Value> {
        self.json(
            self.http.get(format!("{}{path_and_query}", self.url)),
            &format!("GET mock {path_and_query}"),
        )
        .await
    }

    /// Sends `request`, fails on an error status, decodes the JSON answer.
    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        context: &str,
    ) -> Result<T> {
        let http = |source| Error::Http {
            context: context.to_owned(),
            source,
        };
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(http)?
            .json()
            .await
            .map_err(http)
    }
}

/// One entry of the mock's request log ([`MockAdmin::requests`]): the mock's own record.
pub use mock_cci::requests::RequestRecord as LoggedRequest;

/// What a logged request did, by [`cci_api::requests::RequestKind::of`].
pub trait RequestKind {
    /// In the words of the engine's own request counts (its log line `cci requests …
    /// counts={…}`): `"{METHOD} {verb} {collection}"`, e.g. `"GET list pods"`.
    fn kind(&self) -> String;
}

impl RequestKind for LoggedRequest {
    fn kind(&self) -> String {
        cci_api::requests::RequestKind::of(&self.method, &self.path).to_string()
    }
}

/// A fault that is set; cleared when the guard is dropped (a failed or panicking scenario too).
#[derive(Debug)]
pub struct FaultGuard {
    admin: MockAdmin,
    id: Option<u64>,
}

impl FaultGuard {
    /// The fault's id on the mock.
    pub fn id(&self) -> u64 {
        self.id.unwrap_or_default()
    }

    /// How many requests the fault acted on so far (failed, delayed, refused).
    pub async fn fired(&self) -> Result<u64> {
        Ok(self
            .admin
            .faults()
            .await?
            .iter()
            .find(|f| Some(f.id) == self.id)
            .map_or(0, |f| f.fired))
    }

    /// Clears the fault now.
    pub async fn clear(mut self) -> Result<()> {
        match self.id.take() {
            Some(id) => self.admin.clear_fault(id).await,
            None => Ok(()),
        }
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        // The scenario's runtime may be unwinding or gone: clear on a fresh thread and runtime,
        // and wait for it, so the next scenario never meets this fault.
        let admin = self.admin.clone();
        let cleared = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(admin.clear_fault(id)))
        })
        .join();
        if !matches!(cleared, Ok(Ok(Ok(())))) {
            tracing::warn!(id, "could not clear mock fault {id} when its guard ended");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The classification itself is tested in `cci_api::requests`.
    #[test]
    fn a_logged_request_reads_as_the_engine_counts_it() {
        let logged: LoggedRequest = serde_json::from_value(serde_json::json!({
            "seq": 1,
            "time": "2026-12-02T00:00:00Z",
            "method": "GET",
            "path": "/apis/cci/v2/namespaces/bursting-a/pods?watch=true&resourceVersion=7",
            "status": 200,
            "durationMs": 3,
        }))
        .unwrap();
        assert_eq!(logged.kind(), "GET watch pods");
    }
}
