//! `CciProvider::logs` against the strict CCI mock (`mock_cci`, on a loopback port): `kubectl
//! logs` of a burst pod is CCI's log of the CCI pod standing for it, and the errors say what a
//! kubelet would.

use crate::common;

use std::time::Duration;

use bursting_engine::{CciClient, CciProvider, MemoryObjects};
use k8s_openapi::api::core::v1::Pod;
use mock_cci::{MockConfig, Server};
use vk::{LogOptions, Provider};

const TOKEN: &str = "secret";
const NS: &str = "bursting-c1";

async fn fixture(running_after: Duration) -> (Server, CciProvider) {
    let server = Server::bind(
        MockConfig::default()
            .with_token(TOKEN, "tenant-a")
            .with_running_after(running_after),
    )
    .await
    .unwrap();
    let cci = CciClient::new(&server.url(), TOKEN).unwrap();
    let provider = CciProvider::new(cci, MemoryObjects::default(), "c1")
        .unwrap()
        .with_network(crate::common::network());
    (server, provider)
}

/// What the mock answers a tenant for `GET …/pods/{name}/log?{query}`, read without the engine.
async fn mock_log(server: &Server, name: &str, query: &str) -> String {
    let response = crate::common::plain_http()
        .get(format!(
            "{}/apis/cci/v2/namespaces/{NS}/pods/{name}/log?{query}",
            server.url()
        ))
        .header("X-Auth-Token", TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.unwrap()
}

/// The provider's logs once it has some, within 10 s.
async fn logs_once_running(provider: &CciProvider, pod: &Pod, options: &LogOptions) -> String {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match provider.logs(pod, "app", options).await {
                Ok(text) => break text,
                Err(vk::ProviderError::InvalidInput(_)) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("logs failed: {e}"),
            }
        }
    })
    .await
    .expect("the container started within 10 s")
}

#[tokio::test]
async fn logs_are_cci_logs_of_the_pods_cci_pod_with_tail_lines_passed_on() {
    let (server, provider) = fixture(Duration::from_millis(50)).await;
    let web = pod("web", "uid-1");
    provider.create_pod(&web).await.unwrap();

    let all = logs_once_running(&provider, &web, &LogOptions::default()).await;
    assert!(all.contains("started from image \"nginx:1.27\""), "{all}");
    assert_eq!(all, mock_log(&server, "shop.web", "container=app").await);
    let tail = LogOptions {
        tail_lines: Some(1),
        ..LogOptions::default()
    };
    assert_eq!(
        provider.logs(&web, "app", &tail).await.unwrap(),
        mock_log(&server, "shop.web", "container=app&tailLines=1").await
    );
}

#[tokio::test]
async fn a_pod_without_its_own_cci_pod_is_not_found() {
    let (_server, provider) = fixture(Duration::from_millis(50)).await;
    let never = provider
        .logs(&pod("never", "uid-0"), "app", &LogOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(never, vk::ProviderError::NotFound(_)), "{never}");

    // The name stands for an earlier pod whose CCI pod is still there.
    provider.create_pod(&pod("web", "uid-old")).await.unwrap();
    let newer = provider
        .logs(&pod("web", "uid-new"), "app", &LogOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(newer, vk::ProviderError::NotFound(_)), "{newer}");
    assert!(newer.to_string().contains("earlier pod"), "{newer}");
}

#[tokio::test]
async fn a_container_without_such_a_log_is_invalid_input_in_cci_words() {
    let (_server, provider) = fixture(Duration::from_secs(600)).await;
    let web = pod("web", "uid-1");
    provider.create_pod(&web).await.unwrap();
    let waiting = provider
        .logs(&web, "app", &LogOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&waiting, vk::ProviderError::InvalidInput(m) if m.contains("waiting to start")),
        "{waiting}"
    );
    let previous = LogOptions {
        previous: true,
        ..LogOptions::default()
    };
    let none = provider.logs(&web, "app", &previous).await.unwrap_err();
    assert!(
        matches!(&none, vk::ProviderError::InvalidInput(m) if m.contains("previous")),
        "{none}"
    );
}

fn pod(name: &str, uid: &str) -> Pod {
    common::pod(name, uid, Vec::new())
}
