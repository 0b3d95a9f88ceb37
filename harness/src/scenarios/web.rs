//! The cluster Service `web` the network scenarios (UP-02, NET-01, NET-02, SAFE-04) reach for
//! from a CCI pod, and the probes that try.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::PostParams;

use super::addon_ops::cci_by_uid;
use crate::scenario::Scenario;
use crate::wait;

/// The cluster Service the network scenarios probe, and what its pod answers.
pub(crate) struct Web {
    /// The probe's target, `web.{namespace}`.
    pub(crate) target: String,
    /// The text only its pod answers (made for this scenario); `None` where the harness cannot
    /// run the pod (no host node: the Service then has no backend).
    pub(crate) reply: Option<String>,
}

/// A ClusterIP Service `web` in the scenario's namespace and the one pod behind it: the
/// stand-in workload `echo-backend` on the host node (a cluster pod, not burst: the local host
/// node runs it as a process, a kind worker as a container), answering a text made for this
/// scenario. A probe that shows that text got the pod's own answer back through the proxy; no
/// registration or proxy can make it up. Waits until the pod is Ready. Where the harness chose
/// no nodes (an existing cluster) only the Service is made.
pub(crate) async fn web_service(s: &Scenario) -> anyhow::Result<Web> {
    let target = format!("web.{}", s.namespace);
    let Some(host_label) = s.env.target().chosen_nodes().map(|n| n.host.label.clone()) else {
        create_web_service(s).await?;
        return Ok(Web {
            target,
            reply: None,
        });
    };
    let reply = format!("web answers {} {}", s.namespace, std::process::id());
    let image = format!(
        "{}/{}/{}:1",
        crate::env::REGISTRY,
        crate::env::REGISTRY_USER,
        crate::env::ECHO_BACKEND_IMAGE
    );
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "nodeSelector": {host_label.as_str(): "true"},
            "tolerations": [{"key": host_label.as_str(), "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "web",
                "image": image,
                "args": ["--listen=$(POD_IP):8080", format!("--reply={reply}")],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
            }]
        }
    }))?;
    s.api::<Pod>().create(&PostParams::default(), &pod).await?;
    create_web_service(s).await?;
    wait::until(
        "the Service's pod (echo-backend on the host node) to be Ready",
        Duration::from_secs(60),
        || async {
            let pod = s
                .api::<Pod>()
                .get("web")
                .await
                .map_err(|source| crate::Error::Kube {
                    context: "read pod web".into(),
                    source,
                })?;
            let ready = pod
                .status
                .and_then(|st| st.conditions)
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(ready.then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(Web {
        target,
        reply: Some(reply),
    })
}

/// The Service `web` (port 80 to the pods' port named `http`: the proxy must resolve a named
/// target port as Kubernetes does).
async fn create_web_service(s: &Scenario) -> anyhow::Result<()> {
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]}
    }))?;
    s.api::<Service>()
        .create(&PostParams::default(), &service)
        .await?;
    Ok(())
}

/// Probes `target` from the CCI pod of the scenario pod with label `app={app}` until it
/// answers `reachable` (exit 0 or not), or fails with the last answer.
pub(super) async fn probe_until(
    s: &Scenario,
    app: &str,
    target: &str,
    reachable: bool,
) -> anyhow::Result<String> {
    let what = format!(
        "the CCI pod of app={app} to {} {target}",
        if reachable {
            "reach"
        } else {
            "no longer reach"
        }
    );
    let last = crate::wait::LastSeen::default();
    let result = wait::until(
        &what,
        Duration::from_secs(45),
        || async {
            let pods = cci_by_uid(s, app).await.map_err(|e| crate::Error::Step {
                step: format!("find the CCI pod of app={app}"),
                detail: e.to_string(),
            })?;
            let Some(pod) = pods.values().next() else {
                return Ok(None);
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            let answer = s
                .cci()
                .exec(s.cci_namespace(), &name, &["probe", target])
                .await?;
            let text = format!(
                "exit {}: {}{}",
                answer.exit_code, answer.stdout, answer.stderr
            );
            last.note(text.clone());
            Ok(((answer.exit_code == 0) == reachable).then_some(text))
        },
        || async { format!("last probe: {}", last.last()) },
    )
    .await?;
    Ok(result)
}

/// Probes `web` from the CCI pod of app={app} until its pod's answer comes back (through the
/// proxy, the only way to a cluster Service); answers the probe's output.
pub(super) async fn reaches(s: &Scenario, app: &str, web: &Web) -> anyhow::Result<String> {
    let reply = web
        .reply
        .as_deref()
        .context("the Service has no pod to answer (Need::ClusterNetwork)")?;
    let answer = probe_until(s, app, &web.target, true).await?;
    anyhow::ensure!(
        answer.contains("through proxy") && answer.contains(reply),
        "the probe of {} passed, but the Service's pod's answer {:?} did not come back through the proxy: {answer}",
        web.target,
        reply
    );
    Ok(answer)
}
