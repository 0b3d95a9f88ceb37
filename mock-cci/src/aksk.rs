//! AK/SK signatures on API requests: a middleware that verifies them with
//! [`cci_api::signing::verify`] and hands the tenant to the [`Tenant`](crate::extract::Tenant)
//! extractor.
//!
//! A signature covers the body, which handlers consume; so the middleware reads the body first
//! (within the same limit the handlers have), verifies, and puts the bytes back for them.

use std::borrow::Cow;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cci_api::signing::{self, ALGORITHM};
use cci_api::{API_PREFIX, NETWORK_API_PREFIX};

use crate::MockState;
use crate::error::{Error, Result};

/// The tenant a verified signature authenticates the request as: in the request's extensions
/// for the handlers, and in the response's for the request log.
#[derive(Clone, Debug)]
pub(crate) struct SignedTenant(pub String);

/// Verifies the AK/SK signature of an API request that carries one (`Authorization:
/// SDK-HMAC-SHA256 …`); a refused one is answered 401 naming the reason. Requests without one
/// pass untouched (the token decides), and so do the inside view's.
pub(crate) async fn verify_signature(
    State(state): State<MockState>,
    request: Request,
    next: Next,
) -> Response {
    let signed = request
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .any(|value| value.as_bytes().starts_with(ALGORITHM.as_bytes()));
    if !signed || !is_api(request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // NB: through the `Bytes` extractor, so the router's body limit applies as for handlers.
    let body = match Bytes::from_request(Request::from_parts(parts.clone(), body), &state).await {
        Ok(body) => body,
        Err(rejection) => return Error::UnreadableBody(rejection).into_response(),
    };
    let tenant = match authenticate(&state, &parts, &body) {
        Ok(tenant) => tenant,
        Err(refused) => return refused.into_response(),
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request
        .extensions_mut()
        .insert(SignedTenant(tenant.clone()));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(SignedTenant(tenant));
    response
}

fn is_api(path: &str) -> bool {
    [API_PREFIX, NETWORK_API_PREFIX].iter().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// The tenant of the access key whose signature `parts` and `body` carry, checked against the
/// wall clock.
fn authenticate(state: &MockState, parts: &Parts, body: &[u8]) -> Result<String> {
    // NB: a value that is not UTF-8 cannot have been signed as sent; lossy keeps it refusable.
    let owned: Vec<(&str, Cow<'_, str>)> = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
        .collect();
    let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_ref())).collect();
    let request = signing::Request {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body,
    };
    let access_key = signing::verify(&request, SystemTime::now(), |access_key| {
        state.credentials_for_access_key(access_key)
    })?;
    // NB: verified means known, so the tenant is there.
    Ok(state
        .tenant_for_access_key(&access_key)
        .unwrap_or(&access_key)
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::cci("/apis/cci/v2/namespaces", true)]
    #[case::network("/apis/yangtse/v2/namespaces/ns/networks", true)]
    #[case::prefix_alone("/apis/cci/v2", true)]
    #[case::inside_view("/_mock/state", false)]
    #[case::health("/healthz", false)]
    #[case::a_longer_group("/apis/cci/v2beta/namespaces", false)]
    fn only_api_paths_are_verified(#[case] path: &str, #[case] api: bool) {
        assert_eq!(is_api(path), api);
    }
}
