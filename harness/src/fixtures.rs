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
    serde_saphyr::from_str(&text).map_err(|e| Error::Step {
        step: format!("parse fixture {relative}"),
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
    fn a_missing_fixture_names_its_path() {
        let err = load::<Deployment>("workloads/nope.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.yaml"), "{err}");
    }
}
