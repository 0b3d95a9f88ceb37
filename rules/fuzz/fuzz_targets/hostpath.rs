//! The hostPath replacement annotation parser on arbitrary text, and the replacement applied to a
//! pod with hostPath volumes. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run hostpath` in `rules/`.
#![no_main]

use burst_rules::hostpath::{Replacement, is_etc_localtime};
use k8s_openapi::api::core::v1::PodSpec;
use libfuzzer_sys::fuzz_target;

fn spec() -> PodSpec {
    serde_json::from_value(serde_json::json!({
        "containers": [{"name": "app", "volumeMounts": [
            {"name": "logs", "mountPath": "/logs"},
            {"name": "tz", "mountPath": "/etc/localtime"},
            {"name": "conf", "mountPath": "/conf"}]}],
        "initContainers": [{"name": "init", "volumeMounts": [{"name": "logs", "mountPath": "/l"}]}],
        "volumes": [
            {"name": "logs", "hostPath": {"path": "/var/log"}},
            {"name": "*", "hostPath": {"path": "/star"}},
            {"name": "tz", "hostPath": {"path": "/etc/localtime"}},
            {"name": "conf", "configMap": {"name": "conf"}}]
    }))
    .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(replacement) = Replacement::parse(text) else {
        return;
    };
    let spec = spec();
    let Ok(applied) = replacement.apply(&spec) else {
        return;
    };
    // Nothing the annotation covers is left, every change is a hostPath that was there, and no
    // mount points at a removed volume.
    assert!(!replacement.is_pending(&applied.spec));
    let names: Vec<&str> = applied
        .spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    for c in applied
        .spec
        .containers
        .iter()
        .chain(applied.spec.init_containers.iter().flatten())
    {
        for m in c.volume_mounts.iter().flatten() {
            assert!(names.contains(&m.name.as_str()), "mount {} dangles", m.name);
        }
    }
    for change in &applied.changes {
        assert!(
            spec.volumes
                .iter()
                .flatten()
                .any(|v| v.name == change.volume && v.host_path.is_some())
        );
        if is_etc_localtime(&change.path) {
            assert!(
                replacement
                    .policies()
                    .iter()
                    .any(|p| p.target
                        == burst_rules::hostpath::Target::Volume(change.volume.clone()))
            );
        }
    }
    let _ = replacement.apply(&applied.spec);
});
