//! CCI: the published CCI 2.0 API (BEHAVIOR.md §12), checked on what CCI holds, through its
//! public API only.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;

use super::{BodyFuture, cluster_uid_of, converge, pod_with};
use crate::addon::lifecycle;
use crate::addon::params::{overlaps, parse_cidr};
use crate::scenario::{Outcome, Scenario};

/// How long a burst pod may take to run: the Network is made before it, so a first pod waits
/// for that too.
const PATIENCE: Duration = Duration::from_secs(90);

/// CCI-01: before its first pod the cluster's CCI namespace has a Ready Network on the add-on's
/// subnet, and burst pods get their addresses from that subnet.
pub fn cci_01(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(async move {
        // The subnet the add-on was installed with, as its installed state records it.
        let params = lifecycle::state(&s.client)
            .await?
            .context("the add-on is not installed (no state)")?
            .params;
        let pod = pod_with("addressed", serde_json::json!([]), &[])?;
        s.api::<Pod>().create(&PostParams::default(), &pod).await?;
        let pods = converge(s, &format!("{}=enforce", super::POLICY_LABEL), 1, PATIENCE).await?;

        let ns = s.cci_namespace();
        let networks = s.cci().networks(ns).await?;
        let network = networks
            .iter()
            .find(|n| n.subnet_ids().contains(&params.subnet_id.as_str()))
            .with_context(|| {
                format!(
                    "CCI namespace {ns} has no Network on the add-on's subnet {:?}; its networks: {:?}",
                    params.subnet_id,
                    networks
                        .iter()
                        .map(|n| (n.metadata.name.clone(), n.subnet_ids().join(",")))
                        .collect::<Vec<_>>()
                )
            })?;
        let name = network.metadata.name.clone().unwrap_or_default();
        anyhow::ensure!(
            network.is_ready(),
            "network {ns}/{name} is not Ready: {:?}",
            network.status
        );
        let network_created = network
            .metadata
            .creation_timestamp
            .clone()
            .context("the Network has no creationTimestamp")?
            .0;
        let cci_pods = s.cci().pods(ns).await?;
        let first = cci_pods
            .iter()
            .filter_map(|p| p.metadata.creation_timestamp.as_ref().map(|t| (t.0, p)))
            .min_by_key(|(t, _)| *t)
            .context("no CCI pod at all")?;
        anyhow::ensure!(
            network_created <= first.0,
            "network {ns}/{name} was created at {network_created}, after the namespace's first pod {:?} ({})",
            first.1.metadata.name,
            first.0
        );

        let (subnet, prefix) = parse_cidr(&params.subnet_cidr)
            .with_context(|| format!("subnet CIDR {:?}", params.subnet_cidr))?;
        let uid = pods[0].metadata.uid.clone().context("uid")?;
        let on_cci = s
            .cci_pods()
            .await?
            .into_iter()
            .find(|p| cluster_uid_of(p) == Some(uid.as_str()))
            .context("no CCI pod for the burst pod")?;
        for (who, ip) in [
            (
                "the CCI pod",
                on_cci.status.as_ref().and_then(|st| st.pod_ip.clone()),
            ),
            (
                "the cluster pod",
                pods[0].status.as_ref().and_then(|st| st.pod_ip.clone()),
            ),
        ] {
            let ip = ip.with_context(|| format!("{who} has no IP"))?;
            let addr: std::net::Ipv4Addr =
                ip.parse().with_context(|| format!("{who}'s IP {ip:?}"))?;
            anyhow::ensure!(
                overlaps((addr, 32), (subnet, prefix)),
                "{who}'s IP {addr} is not in the add-on's subnet {} ({})",
                params.subnet_id,
                params.subnet_cidr
            );
        }
        Ok(Outcome::Passed)
    })
}

/// How long the add-on may take to read a renewed Secret: the host node keeps volumes in step
/// within seconds, a kubelet within about a minute and a half (its sync period and cache).
const SECRET_PROPAGATION: Duration = Duration::from_secs(180);

/// The mock's log entries after `after` (a sequence number).
async fn logged_since(
    s: &Scenario,
    after: u64,
) -> anyhow::Result<Vec<crate::mock_admin::LoggedRequest>> {
    Ok(s.mock_admin()?
        .requests(None)
        .await?
        .into_iter()
        .filter(|r| r.seq > after)
        .collect())
}

/// The last sequence number of the mock's log (0 when empty).
async fn last_seq(s: &Scenario) -> anyhow::Result<u64> {
    Ok(s.mock_admin()?
        .requests(Some(1))
        .await?
        .last()
        .map_or(0, |r| r.seq))
}

/// Writes `token` into the add-on's credentials Secret, as an operator renewing it would.
async fn put_token(s: &Scenario, token: &str) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    kube::Api::<Secret>::namespaced(s.client.clone(), crate::addon::render::NAMESPACE)
        .patch(
            crate::addon::render::CREDENTIALS,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"stringData": {crate::addon::render::TOKEN_KEY: token}}),
            ),
        )
        .await
        .context("write the renewed token into the add-on's credentials Secret")?;
    Ok(())
}

/// Which of the add-on's components sent a request to CCI, by what it asked: the proxy keeps
/// its registration; the virtual kubelet sends everything else a running add-on sends.
fn component(path: &str) -> &'static str {
    if path.contains("/proxyregistrations") {
        "the proxy"
    } else {
        "the virtual kubelet"
    }
}

/// Waits until every component of the add-on that used token `old` since request `old_since`
/// has used `renewed` since request `renewed_since`. Each component reads the credentials
/// Secret through its own pod's volume, which a kubelet refreshes on its own schedule (up to
/// a minute or two apart); an operator renews ahead of expiry by more than that, so the old
/// token may end only once every component holds the new one.
async fn taken_up_by_every_component(
    s: &Scenario,
    old: &str,
    old_since: u64,
    renewed: &str,
    renewed_since: u64,
) -> anyhow::Result<()> {
    let credential = |t: &str| format!("token:{}", cci_api::token_fingerprint(t));
    let (old, renewed) = (credential(old), credential(renewed));
    let last = crate::wait::LastSeen::default();
    crate::wait::until(
        "every component of the add-on that used the first token to use the renewed one",
        SECRET_PROPAGATION,
        || async {
            let log = logged_since(s, old_since)
                .await
                .map_err(|e| crate::Error::Step {
                    step: "read the mock's request log".into(),
                    detail: e.to_string(),
                })?;
            let used = |credential: &str, since: u64| {
                log.iter()
                    .filter(|r| {
                        r.seq > since
                            && r.credential.as_deref() == Some(credential)
                            && r.status < 300
                    })
                    .map(|r| component(&r.path))
                    .collect::<std::collections::BTreeSet<_>>()
            };
            let (on_old, on_renewed) = (used(&old, old_since), used(&renewed, renewed_since));
            last.note(format!(
                "used the first token: {on_old:?}; the renewed one: {on_renewed:?}"
            ));
            Ok((!on_renewed.is_empty() && on_old.is_subset(&on_renewed)).then_some(()))
        },
        || last.before(s.diagnose()),
    )
    .await?;
    Ok(())
}

/// Waits until the mock has served a request carrying `token` since `after`.
async fn served_with(s: &Scenario, token: &str, after: u64, what: &str) -> anyhow::Result<()> {
    let credential = format!("token:{}", cci_api::token_fingerprint(token));
    crate::wait::until(
        what,
        SECRET_PROPAGATION,
        || async {
            let log = logged_since(s, after)
                .await
                .map_err(|e| crate::Error::Step {
                    step: "read the mock's request log".into(),
                    detail: e.to_string(),
                })?;
            Ok(log
                .iter()
                .any(|r| r.credential.as_deref() == Some(credential.as_str()) && r.status < 300)
                .then_some(()))
        },
        || s.diagnose(),
    )
    .await?;
    Ok(())
}

/// The virtual kubelet's pods: (name, restarts), to show it was not restarted.
async fn engine_pods(s: &Scenario) -> anyhow::Result<Vec<(String, i32)>> {
    let pods = kube::Api::<Pod>::namespaced(s.client.clone(), crate::addon::render::NAMESPACE)
        .list(
            &kube::api::ListParams::default().labels("app.kubernetes.io/component=virtual-kubelet"),
        )
        .await?;
    let mut found: Vec<(String, i32)> = pods
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let restarts = p
                .status
                .and_then(|st| st.container_statuses)
                .unwrap_or_default()
                .iter()
                .map(|c| c.restart_count)
                .sum();
            (p.metadata.name.unwrap_or_default(), restarts)
        })
        .collect();
    found.sort();
    Ok(found)
}

/// CCI-02: the engine's credential expires during a run and is renewed without a pod lost or a
/// request refused twice; with AK/SK signing every request is signed and none carries a token.
///
/// The token side: the add-on runs on a token the mock issued (IAM's 24 hours shortened); an
/// operator writes a renewed one into the add-on's Secret; the engine must take it up without a
/// restart (its pod's restarts unchanged), before the old one expires; then the old one expires
/// and the engine bursts a new pod; the burst pods of before keep their CCI pods. The mock's
/// request log (which names each request's credential by fingerprint) shows the renewed token
/// served, never refused, and no request refused twice in a row. The AK/SK side: the add-on is
/// upgraded to sign with a pair (no token in its Secret); every engine request the mock logs
/// afterwards is signed with that pair.
pub fn cci_02(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(super::addon_ops::serially(s, async move {
        let admin = s.mock_admin()?;
        let tenant = s
            .cci()
            .token()
            .context("the mock's environment speaks to CCI with a token")?
            .to_owned();
        // The token side needs the add-on on a token: one installed with AK/SK (`certify
        // --cci-auth aksk`) is switched to the tenant's token first.
        if s.env.addon_defaults().cci_aksk.is_some() {
            let mut on_token = s.env.addon_defaults().clone();
            on_token.cci_aksk = None;
            on_token.cci_token.clone_from(&tenant);
            lifecycle::upgrade(
                &s.client,
                &on_token,
                s.env.addon_target(),
                &crate::progress::Progress::quiet(),
            )
            .await?;
        }
        let first = format!("iam-{}-first", s.namespace);
        let renewed = format!("iam-{}-renewed", s.namespace);
        let start = last_seq(s).await?;
        admin
            .issue_token(&first, &tenant, Duration::from_secs(3600))
            .await?;
        put_token(s, &first).await?;
        served_with(s, &first, start, "the engine to use the issued token").await?;
        let engine_before = engine_pods(s).await?;

        let mut deployment: k8s_openapi::api::apps::v1::Deployment =
            crate::fixtures::load("workloads/wl-02-deployment.yaml")?;
        deployment.metadata.name = Some("renew".into());
        s.api::<k8s_openapi::api::apps::v1::Deployment>()
            .create(&PostParams::default(), &deployment)
            .await?;
        let selector = "app=nginx";
        let before = converge(s, selector, 2, PATIENCE).await?;
        let uids: Vec<String> = before
            .iter()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();

        // Renewed by the operator while the first token is still valid.
        let renewal = last_seq(s).await?;
        admin
            .issue_token(&renewed, &tenant, Duration::from_secs(3600))
            .await?;
        put_token(s, &renewed).await?;
        // Some request must carry the renewed token: a scale makes one.
        super::wl::scale::<k8s_openapi::api::apps::v1::Deployment>(s, "renew", 3).await?;
        taken_up_by_every_component(s, &first, start, &renewed, renewal).await?;
        converge(s, selector, 3, PATIENCE).await?;
        // The first token's life ends; the engine goes on with the renewed one.
        admin.issue_token(&first, &tenant, Duration::ZERO).await?;
        super::wl::scale::<k8s_openapi::api::apps::v1::Deployment>(s, "renew", 4).await?;
        let after = converge(s, selector, 4, PATIENCE).await?;
        let kept: Vec<&String> = uids
            .iter()
            .filter(|uid| after.iter().any(|p| p.metadata.uid.as_ref() == Some(*uid)))
            .collect();
        anyhow::ensure!(
            kept.len() == uids.len(),
            "burst pods lost through the renewal: {} of {} kept",
            kept.len(),
            uids.len()
        );
        let engine_after = engine_pods(s).await?;
        anyhow::ensure!(
            engine_after == engine_before,
            "the engine was restarted to take up the renewed token: {engine_before:?} then {engine_after:?}"
        );
        let log = logged_since(s, start).await?;
        let fingerprint = |t: &str| format!("token:{}", cci_api::token_fingerprint(t));
        let (first_fp, renewed_fp) = (fingerprint(&first), fingerprint(&renewed));
        let engine_log: Vec<_> = log
            .iter()
            .filter(|r| {
                r.credential.as_deref() == Some(first_fp.as_str())
                    || r.credential.as_deref() == Some(renewed_fp.as_str())
            })
            .collect();
        let refused_renewed = engine_log
            .iter()
            .filter(|r| r.credential.as_deref() == Some(renewed_fp.as_str()) && r.status == 401)
            .count();
        let refused_twice = engine_log
            .windows(2)
            .filter(|w| {
                w[0].status == 401
                    && w[1].status == 401
                    && w[0].method == w[1].method
                    && w[0].path == w[1].path
            })
            .count();
        let refused = engine_log.iter().filter(|r| r.status == 401).count();
        anyhow::ensure!(
            refused_renewed == 0 && refused_twice == 0,
            "the renewed token was refused {refused_renewed} times; requests refused twice in a row: {refused_twice}"
        );
        eprintln!(
            "burstcert: CCI-02: token renewed without a restart: {} engine requests, {refused} refused once (the expired token), none twice, {} burst pods kept",
            engine_log.len(),
            kept.len()
        );

        // AK/SK: the add-on signs every request with a pair; its Secret holds no token.
        let mut signing = s.env.addon_defaults().clone();
        signing.cci_aksk = Some(crate::env::aksk_pair(&tenant));
        signing.cci_token = String::new();
        lifecycle::upgrade(
            &s.client,
            &signing,
            s.env.addon_target(),
            &crate::progress::Progress::quiet(),
        )
        .await?;
        let signed_from = last_seq(s).await?;
        super::wl::scale::<k8s_openapi::api::apps::v1::Deployment>(s, "renew", 5).await?;
        converge(s, selector, 5, PATIENCE).await?;
        let access_key = crate::env::aksk_pair(&tenant)
            .split_once(':')
            .map(|(ak, _)| ak.to_owned())
            .unwrap_or_default();
        let own = fingerprint(&tenant);
        let log = logged_since(s, signed_from).await?;
        let signed = log
            .iter()
            .filter(|r| r.credential.as_deref() == Some(&format!("aksk:{access_key}")))
            .count();
        // The harness's own reads carry its token; anything else is the add-on's.
        let not_signed: Vec<String> = log
            .iter()
            .filter(|r| {
                r.credential.as_deref() != Some(own.as_str())
                    && !r
                        .credential
                        .as_deref()
                        .is_some_and(|c| c.starts_with("aksk:"))
            })
            .map(|r| format!("{} {} ({:?})", r.method, r.path, r.credential))
            .collect();
        anyhow::ensure!(
            signed > 0,
            "no signed request reached CCI after the add-on was given an AK/SK pair"
        );
        anyhow::ensure!(
            not_signed.is_empty(),
            "requests of the add-on not signed with its pair: {not_signed:?}"
        );
        eprintln!("burstcert: CCI-02: {signed} signed requests, none with a token");
        Ok(Outcome::Passed)
    }))
}

/// The grace period CCI-03 deletes with: shorter than the pod's own (the API server's default,
/// 30 s), so a CCI pod given the pod's own period, or none, shows.
const DELETE_GRACE: u32 = 6;

/// How long CCI takes to terminate the namespace in CCI-03 (a slow-delete fault): long enough
/// that an uninstall that does not wait for it visibly ends first.
const NAMESPACE_LINGER: Duration = Duration::from_secs(8);

/// CCI-03: deletes as CCI does them. A burst pod deleted with a grace period leaves its CCI pod
/// Terminating for that period with its finalizer (the cluster pod outlives it); an uninstall
/// ends only once the Terminating CCI namespace is gone.
pub fn cci_03(s: &Scenario) -> BodyFuture<'_> {
    Box::pin(super::addon_ops::serially(s, async move {
        graceful_delete(s).await?;
        uninstall_waits_for_the_namespace(s).await?;
        Ok(crate::scenario::Outcome::Passed)
    }))
}

/// A graceful delete of a burst pod, seen on CCI.
async fn graceful_delete(s: &Scenario) -> anyhow::Result<()> {
    let uid = super::vk::burst_pod_with(s, "graceful", |pod| {
        if let Some(spec) = pod.spec.as_mut() {
            // `sleep` as PID 1 ignores SIGTERM: the pod goes when its grace period ends.
            spec.containers[0].command = Some(vec!["sleep".into(), "3600".into()]);
            spec.termination_grace_period_seconds = None;
        }
    })
    .await?;
    let asked = tokio::time::Instant::now();
    s.api::<Pod>()
        .delete(
            "graceful",
            &kube::api::DeleteParams::default().grace_period(DELETE_GRACE),
        )
        .await?;
    let terminating = crate::wait::until(
        "the CCI pod of graceful Terminating",
        Duration::from_secs(20),
        || async {
            let cci = s.cci_pods().await?;
            Ok(cci
                .into_iter()
                .find(|p| cluster_uid_of(p) == Some(&*uid))
                .filter(|p| p.metadata.deletion_timestamp.is_some()))
        },
        || s.diagnose(),
    )
    .await?;
    let grace = terminating.metadata.deletion_grace_period_seconds;
    anyhow::ensure!(
        grace == Some(i64::from(DELETE_GRACE)),
        "the CCI pod of graceful is Terminating with a grace period of {grace:?} s, not the \
         delete's {DELETE_GRACE} s"
    );
    anyhow::ensure!(
        terminating
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| !f.is_empty()),
        "the Terminating CCI pod of graceful has no finalizer: CCI keeps its billing finalizer \
         until the pod is gone"
    );
    super::vk::gone_on_both_sides(s, "graceful", &uid, true).await?;
    let took = asked.elapsed();
    // NB: one second of slack for the mock's clock against ours; far below the grace.
    anyhow::ensure!(
        took >= Duration::from_secs(u64::from(DELETE_GRACE - 1)),
        "the CCI pod of graceful was gone {took:?} after a delete with a {DELETE_GRACE} s grace \
         period"
    );
    Ok(())
}

/// Uninstall while CCI takes [`NAMESPACE_LINGER`] to terminate the namespace: the namespace is
/// seen Terminating during the uninstall, and is gone when the uninstall says it is done.
async fn uninstall_waits_for_the_namespace(s: &Scenario) -> anyhow::Result<()> {
    let ns = s.cci_namespace().to_owned();
    super::vk::burst_pod(s, "resident").await?;
    let slow = s
        .mock_admin()?
        .set_fault(
            mock_cci::Scope::Namespace(ns.clone()),
            mock_cci::Fault::SlowDelete {
                resources: vec![mock_cci::faults::Resource::Namespaces],
                millis: u64::try_from(NAMESPACE_LINGER.as_millis())?,
            },
        )
        .await?;
    let watched = watched_uninstall(s, &ns).await;
    let cleared = slow.clear().await;
    let (took, seen_terminating) = watched?;
    cleared?;
    let left = s.cci().namespace(&ns).await?;
    anyhow::ensure!(
        left.is_none(),
        "the uninstall ended after {took:?} while CCI namespace {ns} was still there \
         (Terminating: {}): the gc must wait until it is gone",
        left.is_some_and(|n| n.is_terminating())
    );
    anyhow::ensure!(
        seen_terminating,
        "CCI namespace {ns} was never seen Terminating during the uninstall"
    );
    Ok(())
}

/// Uninstalls the add-on while watching CCI namespace `ns`: how long the uninstall took, and
/// whether the namespace was seen Terminating meanwhile.
async fn watched_uninstall(s: &Scenario, ns: &str) -> anyhow::Result<(Duration, bool)> {
    let done = std::sync::atomic::AtomicBool::new(false);
    let started = tokio::time::Instant::now();
    let uninstall = async {
        let result = lifecycle::uninstall(
            &s.client,
            s.env.addon_target(),
            &lifecycle::UninstallOptions {
                gc_timeout: Duration::from_secs(120),
            },
            &crate::progress::Progress::quiet(),
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::Release);
        result.map(|_| started.elapsed())
    };
    let watch = async {
        let mut seen = false;
        while !done.load(std::sync::atomic::Ordering::Acquire) {
            seen |= s
                .cci()
                .namespace(ns)
                .await?
                .is_some_and(|n| n.is_terminating());
            // NB: a poll interval, not a wait for an outcome: the loop ends with the uninstall.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok::<_, crate::Error>(seen)
    };
    let (took, seen) = tokio::join!(uninstall, watch);
    Ok((took?, seen?))
}
