//! The manifests in the repository's `fixtures/` folder.

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The `fixtures/` folder of this checkout.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// Reads and parses one fixture, e.g. `load::<Deployment>("workloads/wl-02-deployment.yaml")`.
/// The error names the file and what in it did not parse.
pub fn load<T: DeserializeOwned>(relative: &str) -> Result<T> {
    let path = dir().join(relative);
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        context: format!("read fixture {}", path.display()),
        source,
    })?;
    // NB: through a JSON value, not `serde_saphyr::from_str::<T>`: that instantiates the YAML
    // reader for every Kubernetes type a scenario loads and was measured the heaviest part of
    // this crate's build. Untyped, `off` or `yes` read as booleans, as Kubernetes' own YAML
    // reader takes them: a fixture quotes such values (`every_fixture_parses_as_its_kind`).
    let step = || format!("parse fixture {relative}");
    let value: serde_json::Value = serde_saphyr::from_str(&text).map_err(|e| Error::Step {
        step: step(),
        detail: e.to_string(),
    })?;
    serde_json::from_value(value).map_err(|e| Error::Step {
        step: step(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;

    #[test]
    fn the_wl_02_deployment_parses_and_opts_in_with_enforce() {
        let d: Deployment = load("workloads/wl-02-deployment.yaml").unwrap();
        let labels = d.metadata.labels.unwrap();
        assert_eq!(labels["virtual-kubelet.io/burst-to-cci"], "enforce");
        assert_eq!(d.spec.unwrap().replicas, Some(2));
    }

    #[test]
    fn every_fixture_parses_as_its_kind() {
        use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
        use k8s_openapi::api::batch::v1::Job;
        use k8s_openapi::api::core::v1::Pod;
        let mut seen = 0;
        for folder in ["seed", "workloads"] {
            for entry in std::fs::read_dir(dir().join(folder)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let relative = format!("{folder}/{name}");
                let raw: serde_json::Value = load(&relative).unwrap();
                let parsed = match (raw["apiVersion"].as_str(), raw["kind"].as_str()) {
                    (Some("v1"), Some("Pod")) => load::<Pod>(&relative).map(|_| ()),
                    (Some("apps/v1"), Some("Deployment")) => {
                        load::<Deployment>(&relative).map(|_| ())
                    }
                    (Some("apps/v1"), Some("StatefulSet")) => {
                        load::<StatefulSet>(&relative).map(|_| ())
                    }
                    (Some("apps/v1"), Some("DaemonSet")) => {
                        load::<DaemonSet>(&relative).map(|_| ())
                    }
                    (Some("batch/v1"), Some("Job")) => load::<Job>(&relative).map(|_| ()),
                    // The seed's CronJob keeps batch/v1beta1 (WL-05 is about exactly that).
                    (Some("batch/v1beta1"), Some("CronJob")) => Ok(()),
                    other => panic!("{relative}: no type for {other:?}"),
                };
                parsed.unwrap_or_else(|e| panic!("{relative}: {e}"));
                seen += 1;
            }
        }
        assert!(seen >= 8, "only {seen} fixtures");
    }

    #[test]
    fn a_missing_fixture_names_its_path() {
        let err = load::<Deployment>("workloads/nope.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.yaml"), "{err}");
    }
}
