//! The network model behind `exec … probe <service>` (BEHAVIOR.md §9, §10).
//!
//! The verdict comes from recorded state only:
//!
//! - A Service of the pod's own CCI namespace (`name`, `name.{ns}`) is always reachable.
//! - A cluster Service (`name.namespace[.svc[.cluster.local]]`) is reachable only through a
//!   [`ProxyRegistration`] in the pod's namespace that forwards it (`namespace/name` or `*`) and
//!   speaks the pod's sidecar protocol: the annotation [`ANNOTATION_SIDECAR_PROTOCOL`] on the
//!   pod, `v1` when absent. With no registration there is no interconnect; with one that lacks
//!   the pod's protocol (e.g. a pod burst by `>= 1.5.18` after a rollback) the connection is
//!   refused.
//!
//! Any other command exits 127: the mock runs no processes.

use cci_api::{ANNOTATION_SIDECAR_PROTOCOL, ExecRequest, ExecResult, ProxyRegistration};
use tokio::time::Instant;

use super::{Store, owned};
use crate::error::{Error, Result};

/// The protocol a pod's sidecar speaks when the pod does not say.
pub const DEFAULT_SIDECAR_PROTOCOL: &str = "v1";

/// A probe target split into the Service name and its namespace, if given.
fn parse_target(target: &str) -> (&str, Option<&str>) {
    let trimmed = target
        .strip_suffix(".svc.cluster.local")
        .or_else(|| target.strip_suffix(".svc"))
        .unwrap_or(target);
    match trimmed.split_once('.') {
        Some((name, namespace)) => (name, Some(namespace)),
        None => (trimmed, None),
    }
}

fn forwards(registration: &ProxyRegistration, name: &str, namespace: Option<&str>) -> bool {
    registration.spec.services.iter().any(|entry| {
        entry == "*"
            || entry
                .split_once('/')
                .is_some_and(|(ns, svc)| svc == name && namespace.is_none_or(|wanted| wanted == ns))
    })
}

fn result(exit_code: i32, stdout: String, stderr: String) -> ExecResult {
    ExecResult {
        exit_code,
        stdout,
        stderr,
    }
}

impl Store {
    /// Runs `request` in a running container of pod `name` (see the module docs).
    pub fn exec(
        &mut self,
        tenant: &str,
        ns: &str,
        name: &str,
        request: &ExecRequest,
        now: Instant,
    ) -> Result<ExecResult> {
        self.settle(now);
        let entry = owned(&self.namespaces, tenant, ns)?;
        let pod = entry.pods.get(name).ok_or_else(|| Error::NotFound {
            kind: "pod",
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })?;
        pod.check_running(request.container.as_deref())?;
        let target = match request.command.as_slice() {
            [probe, target] if probe == "probe" => target.as_str(),
            [] => {
                return Err(Error::BadRequest(
                    "exec needs a command, e.g. [\"probe\", \"web.default\"]".into(),
                ));
            }
            other => {
                return Ok(result(
                    127,
                    String::new(),
                    format!(
                        "{}: command not found (the mock runs no processes; it understands only `probe <service>`)\n",
                        other[0]
                    ),
                ));
            }
        };
        let (service, namespace) = parse_target(target);
        if namespace.is_none_or(|n| n == ns)
            && let Some(local) = entry.objects.services.get(service)
        {
            let ip = local.spec.cluster_ip.clone().unwrap_or_default();
            return Ok(result(
                0,
                format!("{target}: reachable (CCI Service {service} at {ip} in namespace {ns})\n"),
                String::new(),
            ));
        }
        let protocol = pod
            .pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_SIDECAR_PROTOCOL))
            .map_or(DEFAULT_SIDECAR_PROTOCOL, String::as_str);
        if entry.objects.proxies.is_empty() {
            return Ok(result(
                1,
                String::new(),
                format!(
                    "{target}: no route to host: no network proxy is registered for namespace {ns:?} (network interconnect is off)\n"
                ),
            ));
        }
        let candidates: Vec<&ProxyRegistration> = entry
            .objects
            .proxies
            .values()
            .filter(|p| forwards(p, service, namespace))
            .collect();
        if candidates.is_empty() {
            return Ok(result(
                1,
                String::new(),
                format!("{target}: no route to host: no registered proxy forwards this Service\n"),
            ));
        }
        match candidates
            .iter()
            .find(|p| p.spec.protocols.iter().any(|p| p == protocol))
        {
            Some(proxy) => Ok(result(
                0,
                format!(
                    "{target}: reachable through proxy {:?} (sidecar protocol {protocol})\n",
                    proxy.metadata.name.as_deref().unwrap_or_default()
                ),
                String::new(),
            )),
            None => {
                let spoken: Vec<&str> = candidates
                    .iter()
                    .flat_map(|p| p.spec.protocols.iter().map(String::as_str))
                    .collect();
                Ok(result(
                    1,
                    String::new(),
                    format!(
                        "{target}: connection refused: the pod's sidecar speaks {protocol}, the registered proxy speaks [{}]: upgrade the add-on or recreate the pod\n",
                        spoken.join(", ")
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("web", ("web", None))]
    #[case("web.default", ("web", Some("default")))]
    #[case("web.default.svc", ("web", Some("default")))]
    #[case("web.default.svc.cluster.local", ("web", Some("default")))]
    fn probe_targets_name_a_service_and_maybe_its_namespace(
        #[case] target: &str,
        #[case] expected: (&str, Option<&str>),
    ) {
        assert_eq!(parse_target(target), expected);
    }
}
