//! Bad input never panics the server, is answered in the `Status` shape, and creates nothing.

use crate::common;

use axum::body::Body;
use axum::http::{Method, Request, header};
use common::*;
use serde_json::json;

const ENDPOINTS: [&str; 7] = [
    "/apis/cci/v2/namespaces",
    "/apis/cci/v2/namespaces/ns/pods",
    "/apis/cci/v2/namespaces/ns/configmaps",
    "/apis/cci/v2/namespaces/ns/secrets",
    "/apis/cci/v2/namespaces/ns/persistentvolumeclaims",
    "/apis/yangtse/v2/namespaces/ns/networks",
    "/_mock/faults",
];

fn nasty_bodies() -> Vec<String> {
    let mut bodies: Vec<String> = [
        "",
        "{",
        "null",
        "[]",
        "\"pod\"",
        "{\"metadata\": 5}",
        "{\"metadata\": {\"name\": \"\u{1F600}\"}}",
        "{\"metadata\": {\"name\": \"x\"}, \"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"b\", \"resources\": {\"requests\": {\"cpu\": \"1e999999\"}}}]}}",
        "{\"metadata\": {\"name\": \"x\"}, \"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"b\", \"resources\": {\"requests\": {\"cpu\": \"99999999999999999999999999999999999999\", \"memory\": \"1\"}, \"limits\": {\"cpu\": \"99999999999999999999999999999999999999\", \"memory\": \"1\"}}}]}}",
        "{\"apiVersion\": \"cci/v2\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"x\", \"annotations\": {\"resource.cci.io/pod-size-specs\": \"18446744073709551616_1\", \"mock.cci.io/behaviour\": \"succeed-after=1e308s\"}}, \"spec\": {\"containers\": [{\"name\": \"a\", \"image\": \"b\"}], \"terminationGracePeriodSeconds\": -5}}",
        "{\"apiVersion\": \"cci/v2\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"x\"}, \"binaryData\": {\"k\": \"not base64!\"}}",
        "{\"apiVersion\": \"cci/v2\", \"kind\": \"PersistentVolumeClaim\", \"metadata\": {\"name\": \"x\"}, \"spec\": {\"resources\": {\"requests\": {\"storage\": \"-1\"}}}}",
        "{\"scope\": {\"tenant\": \"\"}, \"fault\": {\"type\": \"latency\", \"millis\": 18446744073709551615}}",
    ]
    .map(String::from)
    .to_vec();
    // A deterministic spray of printable and control characters.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [1, 7, 64, 300] {
        let text: String = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from_u32(u32::try_from(seed % 0x3000).unwrap()).unwrap_or('?')
            })
            .collect();
        bodies.push(text);
    }
    bodies
}

#[tokio::test]
async fn no_bad_body_panics_the_server_or_creates_anything() {
    let (app, state) = mock_with_namespace().await;
    let before = state.with_store(|s, now| s.dump(now));
    for endpoint in ENDPOINTS {
        for body in nasty_bodies() {
            let request = Request::post(endpoint)
                .header("X-Auth-Token", TOKEN_A)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.clone()))
                .unwrap();
            let reply = send(&app, request).await;
            let code = reply.status.as_u16();
            assert!(
                (400..500).contains(&code),
                "{endpoint} {body:?}: {code} {}",
                reply.body
            );
            assert_eq!(reply.body["kind"], "Status", "{endpoint} {body:?}");
        }
    }
    let after = state.with_store(|s, now| s.dump(now));
    assert_eq!(after["tenants"], before["tenants"], "nothing was created");
    assert!(state.with_store(|s, _| s.faults.list().is_empty()));
}

#[tokio::test]
async fn odd_paths_and_queries_are_answered_in_the_status_shape() {
    let (app, _) = mock_with_namespace().await;
    let uris = [
        "/apis/cci/v2/namespaces/ns/pods?watch=maybe",
        "/apis/cci/v2/namespaces/ns/pods?fieldSelector=metadata.name%3Dx",
        "/apis/cci/v2/namespaces/ns/pods?watch=true&resourceVersion=abc",
        "/apis/cci/v2/namespaces/ns/pods?labelSelector=%FF%FE",
        "/apis/cci/v2/namespaces/ns/pods/%F0%9F%98%80",
        "/apis/cci/v2/namespaces/%00/pods",
        "/apis/cci/v2/namespaces/ns/pods/x/log?tailLines=-1",
        "/_mock/peak",
        "/_mock/faults/not-a-number",
    ];
    for uri in uris {
        let method = if uri.starts_with("/_mock/faults") {
            Method::DELETE
        } else {
            Method::GET
        };
        let reply = call(&app, method, uri, Some(TOKEN_A), None).await;
        let code = reply.status.as_u16();
        assert!((400..500).contains(&code), "{uri}: {code} {}", reply.body);
        assert_eq!(reply.body["kind"], "Status", "{uri}");
    }
    let reply = call(
        &app,
        Method::DELETE,
        "/apis/cci/v2/namespaces/ns/pods/x?gracePeriodSeconds=99999999999999999999",
        Some(TOKEN_A),
        Some(json!({"gracePeriodSeconds": -1})),
    )
    .await;
    assert_eq!(reply.body["kind"], "Status");
}
