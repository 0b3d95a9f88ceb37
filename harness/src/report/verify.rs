//! `burstcert verify DIR`: does a report folder hold what its `report.json` says it held?
//!
//! `report.json` carries a manifest (the SHA-256 of every other file, see
//! [`super::provenance::Provenance::manifest`]) and a seal over its own bytes: the SHA-256 of
//! the file with the seal's value zeroed ([`seal`]). Any byte changed anywhere shows.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::provenance::{manifest, sha256_hex};

/// The key of `report.json`'s seal, written last in the file (see [`seal`]).
pub const SEAL_KEY: &str = "report_json_sha256";

/// What stands in for the seal's value while it is computed.
const UNSEALED: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One way a report folder differs from what its `report.json` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Difference {
    /// There is no readable `report.json`.
    NoReport(String),
    /// `report.json` has no manifest (written before manifests, or edited).
    ManifestMissing,
    /// `report.json` has no seal, or a malformed one.
    SealMissing,
    /// `report.json`'s bytes are not those it was sealed with.
    ReportChanged,
    /// A file the manifest does not name.
    Added(String),
    /// A file the manifest names that is not there.
    Removed(String),
    /// A file whose bytes differ from the manifest's digest.
    Changed(String),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::NoReport(why) => write!(f, "no report.json: {why}"),
            Difference::ManifestMissing => write!(f, "manifest missing from report.json"),
            Difference::SealMissing => write!(f, "report.json has no {SEAL_KEY}"),
            Difference::ReportChanged => {
                write!(f, "changed: report.json (its {SEAL_KEY} does not match)")
            }
            Difference::Added(path) => write!(f, "added: {path}"),
            Difference::Removed(path) => write!(f, "removed: {path}"),
            Difference::Changed(path) => write!(f, "changed: {path}"),
        }
    }
}

/// `report_json` (pretty JSON ending in `}`) with its seal added as the last key: the SHA-256
/// of the text with the seal's value zeroed, so the seal covers every other byte of the file.
pub fn seal(report_json: &str) -> String {
    let body = report_json.trim_end();
    let body = body.strip_suffix('}').unwrap_or(body).trim_end();
    let unsealed = format!("{body},\n  \"{SEAL_KEY}\": \"{UNSEALED}\"\n}}\n");
    let digest = sha256_hex(unsealed.as_bytes());
    unsealed.replace(
        &format!("\"{SEAL_KEY}\": \"{UNSEALED}\""),
        &format!("\"{SEAL_KEY}\": \"{digest}\""),
    )
}

/// Whether `text`'s seal matches its bytes; `None` when it has no well-formed seal.
fn seal_holds(text: &str) -> Option<bool> {
    let key = format!("\"{SEAL_KEY}\": \"");
    let at = text.rfind(&key)? + key.len();
    let value = text.get(at..at + 64)?;
    if !value.bytes().all(|b| b.is_ascii_hexdigit()) || text.get(at + 64..at + 65) != Some("\"") {
        return None;
    }
    let unsealed = format!("{}{UNSEALED}{}", &text[..at], &text[at + 64..]);
    Some(sha256_hex(unsealed.as_bytes()) == value)
}

/// Every way the report folder `dir` differs from its `report.json`, in path order after the
/// report's own problems; empty when it holds exactly what it says.
pub fn verify(dir: &Path) -> Vec<Difference> {
    let text = match std::fs::read_to_string(dir.join("report.json")) {
        Ok(text) => text,
        Err(e) => return vec![Difference::NoReport(e.to_string())],
    };
    let mut found = Vec::new();
    match seal_holds(&text) {
        None => found.push(Difference::SealMissing),
        Some(false) => found.push(Difference::ReportChanged),
        Some(true) => {}
    }
    let claimed: Option<BTreeMap<String, String>> =
        serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|json| serde_json::from_value(json["provenance"]["manifest"].clone()).ok());
    let Some(claimed) = claimed else {
        found.push(Difference::ManifestMissing);
        return found;
    };
    let actual = match manifest(dir, "report.json") {
        Ok(files) => files,
        Err(e) => {
            found.push(Difference::NoReport(e.to_string()));
            return found;
        }
    };
    let mut files: Vec<(&String, Difference)> = Vec::new();
    for (path, digest) in &claimed {
        match actual.get(path) {
            None => files.push((path, Difference::Removed(path.clone()))),
            Some(d) if d != digest => files.push((path, Difference::Changed(path.clone()))),
            Some(_) => {}
        }
    }
    for path in actual.keys().filter(|p| !claimed.contains_key(*p)) {
        files.push((path, Difference::Added(path.clone())));
    }
    files.sort_by(|a, b| a.0.cmp(b.0));
    found.extend(files.into_iter().map(|(_, d)| d));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed report folder: report.md, an evidence file, and report.json with their manifest.
    fn folder() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.md"), "# report\n").unwrap();
        std::fs::create_dir_all(dir.path().join("evidence/WL-01")).unwrap();
        std::fs::write(dir.path().join("evidence/WL-01/events.yaml"), "[]\n").unwrap();
        let files = manifest(dir.path(), "report.json").unwrap();
        let json = serde_json::to_string_pretty(
            &serde_json::json!({"provenance": {"manifest": files}, "verdict": "CERTIFIED"}),
        )
        .unwrap();
        std::fs::write(dir.path().join("report.json"), seal(&json)).unwrap();
        dir
    }

    #[test]
    fn a_folder_as_written_verifies() {
        let dir = folder();
        assert_eq!(verify(dir.path()), vec![]);
    }

    #[test]
    fn one_changed_byte_in_any_file_is_named() {
        let dir = folder();
        std::fs::write(dir.path().join("evidence/WL-01/events.yaml"), "[]\r").unwrap();
        assert_eq!(
            verify(dir.path()),
            vec![Difference::Changed("evidence/WL-01/events.yaml".into())]
        );
        let dir = folder();
        let path = dir.path().join("report.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("CERTIFIED", "CERTIFIEd")).unwrap();
        assert_eq!(verify(dir.path()), vec![Difference::ReportChanged]);
    }

    #[test]
    fn added_and_removed_files_and_a_missing_manifest_are_named() {
        let dir = folder();
        std::fs::remove_file(dir.path().join("report.md")).unwrap();
        std::fs::write(dir.path().join("evidence/WL-01/extra.txt"), "x").unwrap();
        assert_eq!(
            verify(dir.path()),
            vec![
                Difference::Added("evidence/WL-01/extra.txt".into()),
                Difference::Removed("report.md".into()),
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("report.json"), seal("{\n  \"rows\": []\n}")).unwrap();
        assert_eq!(verify(dir.path()), vec![Difference::ManifestMissing]);
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        assert_eq!(
            verify(dir.path()),
            vec![Difference::SealMissing, Difference::ManifestMissing]
        );
        assert!(matches!(
            verify(&dir.path().join("nowhere"))[..],
            [Difference::NoReport(_)]
        ));
    }

    #[test]
    fn a_sealed_report_is_still_json_with_the_seal_as_a_key() {
        let sealed = seal("{\n  \"a\": 1\n}");
        let json: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        assert_eq!(json[SEAL_KEY].as_str().unwrap().len(), 64);
        assert_eq!(seal_holds(&sealed), Some(true));
    }
}
