//! `burstcert diff OLD NEW`: what changed between two report folders: the scenarios whose
//! outcome changed, and per scenario how its CCI-side transcript changed (requests added or
//! removed, CCI objects added, removed or asked for differently).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use super::evidence::{Transcript, transcript_file};

/// What one report folder says, as far as a diff needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Side {
    /// Each row's outcome in words (`passed`, `failed 2 of 2`, …), by ID.
    pub outcomes: BTreeMap<String, String>,
    /// Each scenario's transcript, by ID.
    pub transcripts: BTreeMap<String, Transcript>,
}

impl Side {
    /// Reads `dir/report.json` and `dir/transcripts/*.json`.
    pub fn read(dir: &Path) -> Result<Self, String> {
        let path = dir.join("report.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let rows = json["rows"]
            .as_array()
            .ok_or_else(|| format!("{}: no rows", path.display()))?;
        let mut side = Side::default();
        for row in rows {
            let Some(id) = row["id"].as_str() else {
                continue;
            };
            let mut outcome = row["outcome"].as_str().unwrap_or("?").replace('_', " ");
            if let Ok(tries) = serde_json::from_value::<super::Tries>(row["tries"].clone()) {
                outcome = tries.describe();
            }
            side.outcomes.insert(id.to_owned(), outcome);
            let file = dir.join(transcript_file(id));
            if let Ok(text) = std::fs::read_to_string(&file) {
                let transcript: Transcript =
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
                side.transcripts.insert(id.to_owned(), transcript);
            }
        }
        Ok(side)
    }
}

/// What changed in one scenario's transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscriptChange {
    /// Requests (`METHOD path status`) only the new run made.
    pub requests_added: Vec<String>,
    /// Requests only the old run made.
    pub requests_removed: Vec<String>,
    /// CCI objects only the new run had.
    pub objects_added: Vec<String>,
    /// CCI objects only the old run had.
    pub objects_removed: Vec<String>,
    /// CCI objects both had, asked for differently (a different body).
    pub objects_changed: Vec<String>,
}

impl TranscriptChange {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The requests of a transcript a diff compares, as `METHOD path (object)`: the writes CCI
/// carried out (a 2xx answer to anything but a GET), without their query. Reads, and writes CCI
/// refused, are in the transcript but not compared: how many there are and what they were
/// answered follows timing (polls, a retry's 409, a GET or DELETE racing the deletion of what
/// it names: 404), and two runs of one release differ in them. So do query values, e.g. a
/// delete's grace, which depends on the pod's phase when it is deleted.
fn compared(t: &Transcript) -> BTreeSet<String> {
    t.requests
        .iter()
        .filter(|r| r.method != "GET" && (200..300).contains(&r.status))
        .map(|r| {
            let path = r.path.split_once('?').map_or(r.path.as_str(), |(p, _)| p);
            match &r.object {
                Some(object) => format!("{} {path} ({object})", r.method),
                None => format!("{} {path}", r.method),
            }
        })
        .collect()
}

/// How `new`'s transcript differs from `old`'s: the writes ([`compared`]) only one made, and
/// the CCI objects only one had or had with another body.
pub fn transcript_change(old: &Transcript, new: &Transcript) -> TranscriptChange {
    let requests = compared;
    let (a, b) = (requests(old), requests(new));
    TranscriptChange {
        requests_added: b.difference(&a).cloned().collect(),
        requests_removed: a.difference(&b).cloned().collect(),
        objects_added: new
            .objects
            .keys()
            .filter(|k| !old.objects.contains_key(*k))
            .cloned()
            .collect(),
        objects_removed: old
            .objects
            .keys()
            .filter(|k| !new.objects.contains_key(*k))
            .cloned()
            .collect(),
        objects_changed: old
            .objects
            .iter()
            .filter(|(k, digest)| new.objects.get(*k).is_some_and(|d| d != *digest))
            .map(|(k, _)| k.clone())
            .collect(),
    }
}

/// The differences between two sides, as lines; empty when there are none. Scenarios in only
/// one side, outcomes that changed, then transcripts that changed, by ID.
pub fn diff(old: &Side, new: &Side) -> Vec<String> {
    let mut lines = Vec::new();
    let ids: BTreeSet<&String> = old.outcomes.keys().chain(new.outcomes.keys()).collect();
    for id in &ids {
        match (old.outcomes.get(*id), new.outcomes.get(*id)) {
            (Some(a), Some(b)) if a != b => lines.push(format!("{id}: outcome {a} -> {b}")),
            (Some(a), None) => lines.push(format!("{id}: only in OLD ({a})")),
            (None, Some(b)) => lines.push(format!("{id}: only in NEW ({b})")),
            _ => {}
        }
    }
    for id in &ids {
        let change = match (old.transcripts.get(*id), new.transcripts.get(*id)) {
            (Some(a), Some(b)) => transcript_change(a, b),
            // A scenario that did not run on one side has no transcript there: its outcome
            // says so above.
            _ => continue,
        };
        if change.is_empty() {
            continue;
        }
        let mut text = format!("{id}: CCI transcript changed");
        for (what, items) in [
            ("request added", &change.requests_added),
            ("request removed", &change.requests_removed),
            ("CCI object added", &change.objects_added),
            ("CCI object removed", &change.objects_removed),
            ("CCI object with a different body", &change.objects_changed),
        ] {
            for item in items {
                let _ = write!(text, "\n  {what}: {item}");
            }
        }
        lines.push(text);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::evidence::TranscriptRequest;

    fn transcript(requests: &[(&str, &str)], objects: &[(&str, &str)]) -> Transcript {
        Transcript {
            id: "WL-01".into(),
            requests: requests
                .iter()
                .map(|(m, p)| TranscriptRequest {
                    method: (*m).into(),
                    path: (*p).into(),
                    object: None,
                    status: 200,
                    count: 1,
                })
                .collect(),
            objects: objects
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            gaps: Vec::new(),
        }
    }

    fn side(outcome: &str, t: Transcript) -> Side {
        Side {
            outcomes: BTreeMap::from([("WL-01".to_owned(), outcome.to_owned())]),
            transcripts: BTreeMap::from([("WL-01".to_owned(), t)]),
        }
    }

    #[test]
    fn the_same_run_twice_has_no_difference_even_with_other_request_counts() {
        let a = transcript(&[("GET", "/p/[scenario-ns].web")], &[("web", "d1")]);
        let mut b = a.clone();
        b.requests[0].count = 7;
        assert_eq!(
            diff(&side("passed", a), &side("passed", b)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_outcome_and_each_kind_of_transcript_change_are_named() {
        let old = transcript(
            &[("GET", "/p/a"), ("DELETE", "/p/a")],
            &[("web", "d1"), ("db", "d2")],
        );
        let new = transcript(
            &[("GET", "/p/a"), ("PUT", "/p/a")],
            &[("web", "d9"), ("cm", "d3")],
        );
        let lines = diff(&side("passed", old), &side("failed 2 of 2", new));
        assert_eq!(
            lines,
            vec![
                "WL-01: outcome passed -> failed 2 of 2".to_owned(),
                "WL-01: CCI transcript changed\n  request added: PUT /p/a\n  request removed: DELETE /p/a\n  CCI object added: cm\n  CCI object removed: db\n  CCI object with a different body: web".to_owned(),
            ]
        );
    }

    #[test]
    fn reads_refused_writes_and_query_values_are_not_compared() {
        let mut old = transcript(
            &[("GET", "/p/a"), ("DELETE", "/p/a?gracePeriodSeconds=[v]")],
            &[],
        );
        let mut new = transcript(&[("GET", "/p/b"), ("DELETE", "/p/a"), ("POST", "/p")], &[]);
        // A GET of another object, a delete without its grace, a create CCI refused (a retry's 409).
        new.requests[2].status = 409;
        assert_eq!(transcript_change(&old, &new), TranscriptChange::default());
        // A create CCI carried out only on one side is a change, named by its object.
        new.requests[2].status = 201;
        new.requests[2].object = Some("[scenario-ns].web".into());
        old.requests.clear();
        let change = transcript_change(&old, &new);
        assert_eq!(
            change.requests_added,
            ["DELETE /p/a", "POST /p ([scenario-ns].web)"]
        );
    }

    #[test]
    fn a_side_is_read_from_a_report_folder_with_its_tries_and_transcripts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("report.json"),
            r#"{"rows": [
                {"id": "WL-01", "outcome": "failed", "reason": "x", "tries": {"failed": 1, "runs": 2}},
                {"id": "VOL-01", "outcome": "not_applicable", "reason": "gate"}
            ]}"#,
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("transcripts")).unwrap();
        let t = transcript(&[("GET", "/p/a")], &[]);
        std::fs::write(
            dir.path().join("transcripts/WL-01.json"),
            serde_json::to_string(&t).unwrap(),
        )
        .unwrap();
        let side = Side::read(dir.path()).unwrap();
        assert_eq!(side.outcomes["WL-01"], "flaky (failed 1 of 2)");
        assert_eq!(side.outcomes["VOL-01"], "not applicable");
        assert_eq!(side.transcripts["WL-01"], t);
        assert!(Side::read(&dir.path().join("nowhere")).is_err());
    }
}
