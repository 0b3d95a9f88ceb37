//! BEHAVIOR.md §5 (the volume matrix), VOL-01…VOL-08: every volume type × both sides of every
//! gate, through `volumes::check` (which rule) and `decide` (what the user is told).

use crate::common;

use burst_rules::decide::Decision;
use burst_rules::flavour::parse_pod_size_specs;
use burst_rules::release::{Gate, Release};
use burst_rules::volumes::{self, Rule};
use common::*;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use rstest::rstest;

/// A pod of `cpu` (requests = limits, 512Mi) with one volume (YAML flow mapping) mounted at
/// /mnt by container `app`, with `mount_extra` added to the mount.
fn pod_with(policy: &str, cpu: &str, volume: &str, mount_extra: &str) -> Pod {
    pod(&format!(
        r#"
metadata:
  name: web
  namespace: default
  labels: {{virtual-kubelet.io/burst-to-cci: {policy}}}
spec:
  containers:
    - name: app
      image: nginx
      resources:
        requests: {{cpu: "{cpu}", memory: 512Mi}}
      volumeMounts:
        - {{name: v, mountPath: /mnt{mount_extra}}}
  volumes:
    - {volume}
"#
    ))
}

const CONFIG_MAP: &str = "{name: v, configMap: {name: conf}}";
const SECRET: &str = "{name: v, secret: {secretName: creds}}";
const EMPTY_DIR: &str = "{name: v, emptyDir: {}}";
const NO_SOURCE: &str = "{name: v}";
const DOWNWARD_API: &str =
    "{name: v, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}";
const PROJECTED_TOKEN: &str = "{name: v, projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 3600, audience: vault}}]}}";
const PROJECTED_CONFIG: &str =
    "{name: v, projected: {sources: [{configMap: {name: conf}}, {secret: {name: creds}}]}}";
const INJECTED_TOKEN: &str = "{name: kube-api-access-x7k2p, projected: {sources: [{serviceAccountToken: {path: token, expirationSeconds: 3607}}, {configMap: {name: kube-root-ca.crt, items: [{key: ca.crt, path: ca.crt}]}}, {downwardAPI: {items: [{path: namespace, fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}]}}]}}";
const TRUST_BUNDLE: &str =
    "{name: v, projected: {sources: [{clusterTrustBundle: {name: ca, path: ca.pem}}]}}";
const HOST_PATH: &str = "{name: v, hostPath: {path: /var/log, type: ''}}";
const LOCALTIME: &str = "{name: v, hostPath: {path: /etc/localtime}}";
const FLEX: &str = "{name: v, flexVolume: {driver: huawei.com/fuxivol}}";
const NFS: &str = "{name: v, nfs: {server: 10.0.0.1, path: /export}}";
const INLINE_CSI: &str = "{name: v, csi: {driver: nas.csi.everest.io}}";
const EPHEMERAL: &str = "{name: v, ephemeral: {volumeClaimTemplate: {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}}}";
const GIT_REPO: &str = "{name: v, gitRepo: {repository: 'https://example.invalid/r.git'}}";

fn claim(name: &str) -> String {
    format!("{{name: v, persistentVolumeClaim: {{claimName: {name}}}}}")
}

fn sized_empty_dir(limit: &str) -> String {
    format!("{{name: v, emptyDir: {{sizeLimit: {limit}}}}}")
}

fn rules(pod: &Pod, release: Release) -> Vec<(Rule, Option<Gate>)> {
    let flavour = burst_rules::flavour::size_pod(pod).ok().map(|s| s.flavour);
    match volumes::check(pod.spec.as_ref().unwrap(), release, &cluster(), flavour) {
        Ok(()) => vec![],
        Err(vs) => vs.into_iter().map(|v| (v.rule, v.gate)).collect(),
    }
}

const BEFORE_PROJECTED: &str = "1.3.24";
const AT_PROJECTED: &str = "1.3.25";

#[rstest]
// VOL-01, VOL-02: ConfigMap and Secret, on every release.
#[case::config_map_old(CONFIG_MAP.into(), "", BEFORE_PROJECTED, None)]
#[case::config_map(CONFIG_MAP.into(), "", "1.5.18", None)]
#[case::secret_old(SECRET.into(), "", BEFORE_PROJECTED, None)]
#[case::secret(SECRET.into(), "", "1.5.18", None)]
// VOL-03: EmptyDir.
#[case::empty_dir_plain(EMPTY_DIR.into(), "", BEFORE_PROJECTED, None)]
#[case::no_source_is_an_empty_dir(NO_SOURCE.into(), "", BEFORE_PROJECTED, None)]
#[case::empty_dir_sub_path(EMPTY_DIR.into(), ", subPath: logs", "1.5.18", Some((Rule::EmptyDirSubPath, None)))]
#[case::empty_dir_sub_path_expr(EMPTY_DIR.into(), ", subPathExpr: '$(POD)'", "1.5.18", Some((Rule::EmptyDirSubPath, None)))]
#[case::empty_dir_1gi(sized_empty_dir("1Gi"), "", "1.5.18", None)]
#[case::empty_dir_1024mi(sized_empty_dir("1024Mi"), "", "1.5.18", None)]
#[case::empty_dir_1536mi(sized_empty_dir("1536Mi"), "", "1.5.18", Some((Rule::EmptyDirSizeLimitNotWholeGi, None)))]
#[case::empty_dir_decimal_giga(sized_empty_dir("1G"), "", "1.5.18", Some((Rule::EmptyDirSizeLimitNotWholeGi, None)))]
#[case::empty_dir_zero(sized_empty_dir("0"), "", "1.5.18", Some((Rule::EmptyDirSizeLimitNotWholeGi, None)))]
#[case::empty_dir_10gi_on_a_quarter_core(sized_empty_dir("10Gi"), "", "1.5.18", None)]
#[case::empty_dir_11gi_on_a_quarter_core(sized_empty_dir("11Gi"), "", "1.5.18", Some((Rule::EmptyDirSizeLimitTooLarge, None)))]
// VOL-04: DownwardAPI, both sides of 1.3.25.
#[case::downward_api_before(DOWNWARD_API.into(), "", BEFORE_PROJECTED, Some((Rule::DownwardApi, Some(Gate::DownwardApiAndProjected))))]
#[case::downward_api_at(DOWNWARD_API.into(), "", AT_PROJECTED, None)]
// VOL-05: Projected, both sides of 1.3.25.
#[case::projected_token_before(PROJECTED_TOKEN.into(), "", BEFORE_PROJECTED, Some((Rule::Projected, Some(Gate::DownwardApiAndProjected))))]
#[case::projected_token_at(PROJECTED_TOKEN.into(), "", AT_PROJECTED, None)]
#[case::projected_config_before(PROJECTED_CONFIG.into(), "", BEFORE_PROJECTED, Some((Rule::Projected, Some(Gate::DownwardApiAndProjected))))]
#[case::projected_config_at(PROJECTED_CONFIG.into(), "", AT_PROJECTED, None)]
#[case::injected_token_volume_before(INJECTED_TOKEN.into(), "", BEFORE_PROJECTED, None)]
#[case::injected_token_volume_at(INJECTED_TOKEN.into(), "", AT_PROJECTED, None)]
#[case::projected_trust_bundle(TRUST_BUNDLE.into(), "", "1.5.18", Some((Rule::ProjectedSource, None)))]
// VOL-06: PersistentVolumeClaim by the class's provisioner.
#[case::pvc_sfs(claim("sfs-claim"), "", BEFORE_PROJECTED, None)]
#[case::pvc_sfs_turbo(claim("turbo-claim"), "", "1.5.18", None)]
#[case::pvc_evs_disk(claim("disk-claim"), "", "1.5.18", Some((Rule::StorageNotSupported, None)))]
#[case::pvc_obs(claim("obs-claim"), "", "1.5.18", Some((Rule::StorageNotSupported, None)))]
#[case::pvc_flexvolume_class(claim("flex-claim"), "", "1.5.18", Some((Rule::StorageNotSupported, None)))]
#[case::pvc_without_class(claim("classless-claim"), "", "1.5.18", Some((Rule::ClaimWithoutStorageClass, None)))]
#[case::pvc_unknown_class(claim("ghost-class-claim"), "", "1.5.18", Some((Rule::StorageClassNotFound, None)))]
#[case::pvc_unknown_claim(claim("nope"), "", "1.5.18", Some((Rule::ClaimNotFound, None)))]
// VOL-07: HostPath; /etc/localtime both sides of 1.5.9.
#[case::host_path(HOST_PATH.into(), "", "1.5.18", Some((Rule::HostPath, None)))]
#[case::localtime_before(LOCALTIME.into(), "", "1.5.8", Some((Rule::EtcLocaltime, Some(Gate::EtcLocaltimeHostPath))))]
#[case::localtime_at(LOCALTIME.into(), "", "1.5.9", None)]
// VOL-08: flexVolume and local (a local PV comes through a no-provisioner class).
#[case::flex_volume(FLEX.into(), "", "1.5.18", Some((Rule::FlexVolume, None)))]
#[case::local_pv(claim("local-claim"), "", "1.5.18", Some((Rule::StorageNotSupported, None)))]
// Everything else.
#[case::nfs(NFS.into(), "", "1.5.18", Some((Rule::UnsupportedType, None)))]
#[case::inline_csi(INLINE_CSI.into(), "", "1.5.18", Some((Rule::UnsupportedType, None)))]
#[case::ephemeral(EPHEMERAL.into(), "", "1.5.18", Some((Rule::UnsupportedType, None)))]
#[case::git_repo(GIT_REPO.into(), "", "1.5.18", Some((Rule::UnsupportedType, None)))]
fn each_volume_type_on_each_side_of_its_gate(
    #[case] volume: String,
    #[case] mount_extra: &str,
    #[case] release_text: &str,
    #[case] expected: Option<(Rule, Option<Gate>)>,
) {
    let r = release(release_text);
    let p = pod_with("enforce", "250m", &volume, mount_extra);
    assert_eq!(rules(&p, r), expected.into_iter().collect::<Vec<_>>());

    // Under enforce a violation refuses the pod; under auto and localPrefer it stays local with
    // the same words; without one all three burst.
    let enforce = decide_pod(&p, r);
    let auto = decide_pod(&pod_with("auto", "250m", &volume, mount_extra), r);
    let local = decide_pod(&pod_with("localPrefer", "250m", &volume, mount_extra), r);
    match expected {
        None => {
            for d in [&enforce, &auto, &local] {
                assert!(matches!(d, Decision::Mutate { .. }), "{d:?}");
            }
        }
        Some((_, gate)) => {
            let Decision::Refuse { message } = &enforce else {
                panic!("{enforce:?}")
            };
            assert!(message.contains("volume \"v\": "), "{message}");
            if let Some(gate) = gate {
                assert!(message.contains(&gate.explain(r)), "{message}");
            }
            for d in [&auto, &local] {
                let Decision::KeepLocal { reason } = d else {
                    panic!("{d:?}")
                };
                let problem = message.split_once(": ").unwrap().1;
                assert!(
                    reason.contains(problem.split_once(": ").unwrap().1),
                    "{reason}"
                );
            }
        }
    }
}

#[rstest]
#[case::half_core_is_one_core("500m", "10Gi", true)]
#[case::one_core("1", "10Gi", true)]
#[case::one_core_over("1", "11Gi", false)]
#[case::two_cores("2", "20Gi", true)]
#[case::two_cores_over("2", "21Gi", false)]
#[case::rounded_up_to_two_cores("1500m", "20Gi", true)]
#[case::sixteen_cores("16", "160Gi", true)]
fn an_empty_dir_may_hold_ten_gib_per_core_of_the_pods_flavour(
    #[case] cpu: &str,
    #[case] limit: &str,
    #[case] ok: bool,
) {
    let p = pod_with("enforce", cpu, &sized_empty_dir(limit), "");
    assert_eq!(
        rules(&p, latest()).is_empty(),
        ok,
        "{:?}",
        rules(&p, latest())
    );
}

#[test]
fn the_hostpath_refusal_reads_as_documented() {
    let p = pod_with(
        "enforce",
        "250m",
        "{name: test-log, hostPath: {path: /var/log}}",
        "",
    );
    let p = {
        let mut p = p;
        p.spec.as_mut().unwrap().containers[0].volume_mounts = None;
        p
    };
    let Decision::Refuse { message } = decide_pod(&p, latest()) else {
        panic!("not refused")
    };
    assert_eq!(
        message,
        "pod default/web cannot run on CCI, as virtual-kubelet.io/burst-to-cci=enforce on Pod \
         default/web requires: volume \"test-log\": hostPath is not supported on CCI; add it to \
         coordinator.cci.io/hostpath-replacement (remove or replaceByEmptyDir)"
    );
}

#[rstest]
#[case::localtime(
    LOCALTIME,
    "1.5.8",
    "volume \"v\": hostPath /etc/localtime on CCI requires add-on release >= 1.5.9; this is 1.5.8; upgrade the add-on, or name this volume in coordinator.cci.io/hostpath-replacement"
)]
#[case::downward_api(
    DOWNWARD_API,
    "1.3.24",
    "volume \"v\": a downwardAPI volume on CCI requires add-on release >= 1.3.25; this is 1.3.24; upgrade the add-on, or remove the volume"
)]
#[case::projected(
    PROJECTED_TOKEN,
    "1.3.24",
    "volume \"v\": a projected volume on CCI requires add-on release >= 1.3.25; this is 1.3.24"
)]
#[case::evs(&claim("disk-claim"), "1.5.18", "volume \"v\": persistentVolumeClaim \"disk-claim\" uses StorageClass \"csi-disk\" (provisioner disk.csi.everest.io); CCI takes only SFS (nas.csi.everest.io) or SFS Turbo (sfsturbo.csi.everest.io) through a CSI StorageClass")]
#[case::sub_path(
    EMPTY_DIR,
    "1.5.18",
    "volume \"v\": emptyDir mounts cannot use subPath on CCI (container \"app\" mounts it at /mnt with subPath \"x\"); mount the whole volume instead"
)]
#[case::not_whole(&sized_empty_dir("1536Mi"), "1.5.18", "volume \"v\": emptyDir sizeLimit 1536Mi is not a positive whole multiple of 1Gi, as CCI requires")]
#[case::too_large(&sized_empty_dir("11Gi"), "1.5.18", "volume \"v\": emptyDir sizeLimit 11Gi is more than 10Gi, which is 10 × the pod's 1 CPU core(s) (flavour 0.25 vCPU / 0.5 GiB, counted in whole cores)")]
#[case::flex(FLEX, "1.5.18", "volume \"v\": flexVolume is not supported on CCI")]
#[case::nfs(NFS, "1.5.18", "volume \"v\": nfs volumes are not supported on CCI")]
fn refusals_name_the_volume_the_rule_the_gate_and_what_to_do(
    #[case] volume: &str,
    #[case] release_text: &str,
    #[case] expected: &str,
) {
    let extra = if volume == EMPTY_DIR {
        ", subPath: x"
    } else {
        ""
    };
    let p = pod_with("enforce", "250m", volume, extra);
    let message = decide_pod(&p, release(release_text))
        .message()
        .unwrap()
        .to_string();
    assert!(
        message.contains(expected),
        "{message}\n  wanted: {expected}"
    );
}

#[test]
fn several_violations_are_all_listed_numbered() {
    let p = pod(r#"
metadata: {name: web, namespace: default, labels: {virtual-kubelet.io/burst-to-cci: enforce}}
spec:
  containers:
    - {name: app, image: nginx, resources: {requests: {cpu: 250m, memory: 512Mi}}}
  volumes:
    - {name: a, hostPath: {path: /var/log}}
    - {name: b, flexVolume: {driver: x}}
"#);
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(
        message.contains("2 problems: (1) volume \"a\": hostPath"),
        "{message}"
    );
    assert!(
        message.contains("; (2) volume \"b\": flexVolume"),
        "{message}"
    );
}

#[test]
fn init_container_sub_paths_on_an_empty_dir_count_too() {
    let mut p = pod_with("enforce", "250m", EMPTY_DIR, "");
    let spec: &mut PodSpec = p.spec.as_mut().unwrap();
    spec.init_containers = Some(vec![
        serde_json::from_value(serde_json::json!({
            "name": "setup", "image": "busybox",
            "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "s"}]
        }))
        .unwrap(),
    ]);
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(
        message.contains("init container \"setup\" mounts it at /x"),
        "{message}"
    );
}

#[test]
fn without_a_flavour_the_core_limit_is_not_judged_but_sizing_is_reported() {
    // `auto`: kept local for the size alone.
    let p = pod_with("auto", "100", &sized_empty_dir("500Gi"), "");
    let message = decide_pod(&p, latest()).message().unwrap().to_string();
    assert!(message.contains("fits no CCI flavour"), "{message}");
    assert!(!message.contains("emptyDir"), "{message}");
    // `enforce`: admitted for the virtual kubelet to refuse (RES-03), the emptyDir not judged.
    let p = pod_with("enforce", "100", &sized_empty_dir("500Gi"), "");
    let Decision::Mutate { reasons, .. } = decide_pod(&p, latest()) else {
        panic!("not admitted")
    };
    assert!(
        reasons.iter().any(|r| r.contains("fits no CCI flavour")),
        "{reasons:?}"
    );
    assert!(
        !reasons.iter().any(|r| r.contains("emptyDir")),
        "{reasons:?}"
    );
    let f = parse_pod_size_specs("64_128").unwrap();
    let spec = p.spec.as_ref().unwrap();
    assert!(volumes::check(spec, latest(), &cluster(), Some(f)).is_ok());
}

#[test]
fn cloud_storage_volumes_are_claims_ephemeral_and_inline_csi() {
    let spec: PodSpec = serde_json::from_value(serde_json::json!({
        "containers": [],
        "volumes": [
            {"name": "a", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "b", "configMap": {"name": "x"}},
            {"name": "c", "csi": {"driver": "d"}},
            {"name": "d", "ephemeral": {}},
        ]
    }))
    .unwrap();
    assert_eq!(volumes::cloud_storage_volumes(&spec), ["a", "c", "d"]);
}
