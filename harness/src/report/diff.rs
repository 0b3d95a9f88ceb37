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

/// Pod names a scenario makes for as long as something lasts, so how many there are and which
/// of them CCI got while what (the engine of one release or the other) follows timing, not the
/// release: (scenario ID, the names' prefix before their number, why). Their number becomes
/// `[n]`: the pods of such a name compare as one, by the writes made for any of them and the
/// set of bodies asked for, so a body no pod had before still shows. Names are not
/// normalised so elsewhere: a StatefulSet's ordinals are what its scenario checks.
pub const TIMED_NAMES: &[(&str, &str, &str)] = &[(
    "UP-03",
    "through-",
    "it creates a pod every 250 ms for as long as the upgrade lasts; which engine bursts each \
     one depends on when the old one stops",
)];

/// `text` with every `PREFIX<digits>` of scenario `id`'s [`TIMED_NAMES`] as `PREFIX[n]`, the
/// prefix starting a name (after `.`, `/`, `(` or at the start).
fn class_names(id: &str, text: &str) -> String {
    let mut text = text.to_owned();
    for (_, prefix, _) in TIMED_NAMES.iter().filter(|(i, _, _)| *i == id) {
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(prefix) {
            let starts = at == 0 || rest[..at].ends_with(['.', '/', '(']);
            let after = &rest[at + prefix.len()..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            out.push_str(&rest[..at + prefix.len()]);
            if starts && digits > 0 {
                out.push_str("[n]");
                rest = &after[digits..];
            } else {
                rest = after;
            }
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// A body that changed, in one scenario's transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyChange {
    /// The normalised name of the CCI object(s).
    pub object: String,
    /// How the body changed, one line a field (`PATH: OLD -> NEW`), when both bodies are in
    /// the transcripts; the fields of each body only the new run had, against the old run's
    /// closest one (and of each body only the old run had, against the new run's closest).
    pub fields: Vec<String>,
}

/// What changed in one scenario's transcript.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TranscriptChange {
    /// Writes ([`compared`]) only the new run made.
    pub requests_added: Vec<String>,
    /// Writes only the old run made.
    pub requests_removed: Vec<String>,
    /// CCI objects both runs had, with a body only one of them had.
    pub bodies_changed: Vec<BodyChange>,
}

impl TranscriptChange {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The requests of a transcript a diff compares, as `METHOD path (object)`: the writes CCI
/// carried out (a 2xx answer to anything but a GET), without their query, timed names as one
/// ([`TIMED_NAMES`]). Reads, and writes CCI refused, are in the transcript but not compared:
/// how many there are and what they were answered follows timing (polls, a retry's 409, a GET
/// or DELETE racing the deletion of what it names: 404), and two runs of one release differ in
/// them. So do query values, e.g. a delete's grace, which depends on the pod's phase when it is
/// deleted.
fn compared(t: &Transcript) -> BTreeSet<String> {
    t.requests
        .iter()
        .filter(|r| r.method != "GET" && (200..300).contains(&r.status))
        .map(|r| {
            let path = r.path.split_once('?').map_or(r.path.as_str(), |(p, _)| p);
            let line = match &r.object {
                Some(object) => format!("{} {path} ({object})", r.method),
                None => format!("{} {path}", r.method),
            };
            class_names(&t.id, &line)
        })
        .collect()
}

/// A transcript's objects by name, and their bodies by digest, timed names as one
/// ([`TIMED_NAMES`]): in the names and in the bodies, whose digests are then taken again (a
/// body names its pod).
fn objects(
    t: &Transcript,
) -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, serde_json::Value>,
) {
    let timed = TIMED_NAMES.iter().any(|(id, _, _)| *id == t.id);
    let mut by_name: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut bodies = BTreeMap::new();
    for (name, digests) in &t.objects {
        let kept = by_name.entry(class_names(&t.id, name)).or_default();
        for digest in &digests.0 {
            let Some(body) = t.bodies.get(digest) else {
                kept.insert(digest.clone());
                continue;
            };
            let (digest, body) = if timed {
                let text = class_names(&t.id, &body.to_string());
                let body = serde_json::from_str(&text).unwrap_or_else(|_| body.clone());
                (super::provenance::sha256_hex(text.as_bytes()), body)
            } else {
                (digest.clone(), body.clone())
            };
            kept.insert(digest.clone());
            bodies.insert(digest, body);
        }
    }
    (by_name, bodies)
}

/// A JSON value's leaves by path (`metadata.annotations["a/b"]`, `spec.containers[0].image`).
fn leaves(value: &serde_json::Value, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, v) in map {
                let plain = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                let step = match (plain, path.is_empty()) {
                    (true, true) => key.clone(),
                    (true, false) => format!("{path}.{key}"),
                    (false, _) => format!("{path}[{}]", serde_json::Value::from(key.as_str())),
                };
                leaves(v, step, out);
            }
        }
        serde_json::Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                leaves(v, format!("{path}[{i}]"), out);
            }
        }
        leaf => {
            out.insert(path, leaf.to_string());
        }
    }
}

/// How body `new` differs from body `old`, one line a field: `PATH: OLD -> NEW` (`absent`
/// for a field one of them lacks).
pub fn field_changes(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    leaves(old, String::new(), &mut a);
    leaves(new, String::new(), &mut b);
    let paths: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .map(|p| {
            let side = |m: &BTreeMap<String, String>| {
                m.get(p).cloned().unwrap_or_else(|| "absent".to_owned())
            };
            format!("{p}: {} -> {}", side(&a), side(&b))
        })
        .collect()
}

/// The field changes between the bodies only the old run had (`olds`) and those only the new
/// run had (`news`): each paired with one of the other side so that the pairs differ in the
/// fewest fields in all (an upgrade's old pods with the old pods, its new ones with the new
/// ones), and a body left over against the closest body of the other side (`old_all`,
/// `new_all`). Bodies not in the transcripts give no fields.
fn body_fields(
    olds: &[&serde_json::Value],
    news: &[&serde_json::Value],
    old_all: &[&serde_json::Value],
    new_all: &[&serde_json::Value],
) -> Vec<String> {
    /// The cheapest assignment of `news[i..]` to the `olds` not `taken` (at most as many pairs
    /// as the smaller side has): its cost and, per new body, its old one.
    fn cheapest(
        cost: &[Vec<usize>],
        i: usize,
        taken: &mut Vec<bool>,
        pairs_left: usize,
    ) -> (usize, Vec<Option<usize>>) {
        if i == cost.len() {
            return (0, Vec::new());
        }
        let rest = cost.len() - i - 1;
        let mut best = (usize::MAX, Vec::new());
        // Left unpaired, when the other news can still make up the pairs.
        if rest >= pairs_left {
            let (c, mut a) = cheapest(cost, i + 1, taken, pairs_left);
            a.insert(0, None);
            best = (c, a);
        }
        if pairs_left > 0 {
            for j in 0..taken.len() {
                if taken[j] {
                    continue;
                }
                taken[j] = true;
                let (c, mut a) = cheapest(cost, i + 1, taken, pairs_left - 1);
                taken[j] = false;
                let c = c.saturating_add(cost[i][j]);
                if c < best.0 {
                    a.insert(0, Some(j));
                    best = (c, a);
                }
            }
        }
        best
    }
    let mut fields = Vec::new();
    let closest = |body: &serde_json::Value, others: &[&serde_json::Value], flip: bool| {
        others
            .iter()
            .map(|other| {
                if flip {
                    field_changes(body, other)
                } else {
                    field_changes(other, body)
                }
            })
            .min_by_key(Vec::len)
            .unwrap_or_default()
    };
    // NB: the search tries every assignment; past a few bodies a side it would take long, and
    // each body is then shown against its closest.
    let (assigned, paired_olds) = if olds.len().max(news.len()) <= 6 {
        let cost: Vec<Vec<usize>> = news
            .iter()
            .map(|n| olds.iter().map(|o| field_changes(o, n).len()).collect())
            .collect();
        let mut taken = vec![false; olds.len()];
        let (_, assigned) = cheapest(&cost, 0, &mut taken, olds.len().min(news.len()));
        let paired: BTreeSet<usize> = assigned.iter().flatten().copied().collect();
        (assigned, paired)
    } else {
        (vec![None; news.len()], BTreeSet::new())
    };
    for (new, old) in news.iter().zip(&assigned) {
        match old {
            Some(j) => fields.extend(field_changes(olds[*j], new)),
            None => fields.extend(closest(new, old_all, false)),
        }
    }
    for (j, old) in olds.iter().enumerate() {
        if !paired_olds.contains(&j) {
            fields.extend(closest(old, new_all, true));
        }
    }
    let mut seen = BTreeSet::new();
    fields.retain(|f| seen.insert(f.clone()));
    fields
}

/// How `new`'s transcript differs from `old`'s: the writes ([`compared`]) only one made, and
/// the CCI objects both had with a body only one had.
///
/// Which objects were there when the body ended is not compared, only their bodies: an object
/// is made and removed by writes, which are compared, so an object only one side had with the
/// same writes on both is one that a write caught just before or just after the end (a
/// re-install's pods burst again, a pod its owner's garbage collection deletes).
pub fn transcript_change(old: &Transcript, new: &Transcript) -> TranscriptChange {
    let (a, b) = (compared(old), compared(new));
    let ((old_objects, old_bodies), (new_objects, new_bodies)) = (objects(old), objects(new));
    let mut bodies_changed = Vec::new();
    for (name, old_digests) in &old_objects {
        let Some(new_digests) = new_objects.get(name) else {
            continue;
        };
        if old_digests == new_digests {
            continue;
        }
        fn bodies<'b>(
            digests: impl Iterator<Item = &'b String>,
            of: &'b BTreeMap<String, serde_json::Value>,
        ) -> Vec<&'b serde_json::Value> {
            digests.filter_map(|d| of.get(d)).collect()
        }
        let fields = body_fields(
            &bodies(old_digests.difference(new_digests), &old_bodies),
            &bodies(new_digests.difference(old_digests), &new_bodies),
            &bodies(old_digests.iter(), &old_bodies),
            &bodies(new_digests.iter(), &new_bodies),
        );
        bodies_changed.push(BodyChange {
            object: name.clone(),
            fields,
        });
    }
    TranscriptChange {
        requests_added: b.difference(&a).cloned().collect(),
        requests_removed: a.difference(&b).cloned().collect(),
        bodies_changed,
    }
}

/// The differences between two sides, as lines; empty when there are none. Scenarios in only
/// one side, outcomes that changed, then transcripts that changed, by ID; last, each body field
/// change seen in more than one scenario, once, with the scenarios (a change of every pod, as
/// a new sidecar, reads as one).
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
    let mut fields_seen: BTreeMap<String, BTreeSet<&String>> = BTreeMap::new();
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
        ] {
            for item in items {
                let _ = write!(text, "\n  {what}: {item}");
            }
        }
        for body in &change.bodies_changed {
            let _ = write!(
                text,
                "\n  CCI object with a different body: {}",
                body.object
            );
            for field in &body.fields {
                let _ = write!(text, "\n    {field}");
                fields_seen.entry(field.clone()).or_default().insert(*id);
            }
        }
        lines.push(text);
    }
    let common: Vec<String> = fields_seen
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(field, ids)| {
            format!(
                "\n  {field}: in {} scenarios ({})",
                ids.len(),
                ids.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !common.is_empty() {
        lines.push(format!(
            "body changes in more than one scenario:{}",
            common.concat()
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::evidence::{Digests, TranscriptRequest, transcript_objects};

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
                .map(|(k, v)| ((*k).to_owned(), Digests([(*v).to_owned()].into())))
                .collect(),
            ..Transcript::default()
        }
    }

    fn side(outcome: &str, t: Transcript) -> Side {
        Side {
            outcomes: BTreeMap::from([(t.id.clone(), outcome.to_owned())]),
            transcripts: BTreeMap::from([(t.id.clone(), t)]),
        }
    }

    /// A CCI pod as the engine asks for it, in scenario namespace `ns`, burst by `release` with
    /// sidecar `protocol`.
    fn cci_pod(ns: &str, name: &str, release: &str, protocol: &str) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": format!("{ns}.{name}"), "namespace": "bursting-1",
                "uid": format!("{ns}-{name}"), "resourceVersion": "7",
                "annotations": {cci_api::ANNOTATION_RELEASE: release,
                                cci_api::ANNOTATION_SIDECAR_PROTOCOL: protocol}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            "status": {"phase": "Running"}
        })
    }

    /// Scenario `id`'s transcript of `pods` as the report writes it (normalised the same way,
    /// for the release certified) after the writes `posted` (the objects a create named).
    fn written(
        id: &str,
        ns: &str,
        release: &str,
        pods: &[serde_json::Value],
        posted: &[&str],
    ) -> Transcript {
        let (objects, bodies) = transcript_objects(pods, ns, "bursting-1", release, &[]);
        Transcript {
            id: id.into(),
            requests: posted
                .iter()
                .map(|object| TranscriptRequest {
                    method: "POST".into(),
                    path: "/apis/cci/v2/namespaces/[cci-ns]/pods".into(),
                    object: Some(format!("[scenario-ns].{object}")),
                    status: 201,
                    count: 1,
                })
                .collect(),
            objects,
            bodies,
            gaps: Vec::new(),
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

    /// The diff must see a body that changed, as the report writes transcripts, and say which
    /// field: two releases that differ in a pod's sidecar, and nothing else (each pod stamped
    /// with the release that burst it, which is the run's own).
    #[test]
    fn a_changed_body_is_seen_and_named_by_its_field_and_the_release_stamp_alone_is_not() {
        let old = written(
            "WL-01",
            "wl-01-aaaaaa",
            "1.5.17",
            &[cci_pod("wl-01-aaaaaa", "web", "1.5.17", "v1")],
            &["web"],
        );
        let new = written(
            "WL-01",
            "wl-01-bbbbbb",
            "1.5.18",
            &[cci_pod("wl-01-bbbbbb", "web", "1.5.18", "v2")],
            &["web"],
        );
        assert_eq!(
            diff(&side("passed", old.clone()), &side("passed", new)),
            [concat!(
                "WL-01: CCI transcript changed\n",
                "  CCI object with a different body: [scenario-ns].web\n",
                "    metadata.annotations[\"bursting.cci.io/sidecar-protocol\"]: \"v1\" -> \"v2\""
            )]
        );
        let same = written(
            "WL-01",
            "wl-01-cccccc",
            "1.5.18",
            &[cci_pod("wl-01-cccccc", "web", "1.5.18", "v1")],
            &["web"],
        );
        assert_eq!(
            diff(&side("passed", old), &side("passed", same)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_outcome_writes_and_bodies_are_compared_and_which_objects_were_left_at_the_end_is_not() {
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
                "WL-01: CCI transcript changed\n  request added: PUT /p/a\n  request removed: DELETE /p/a\n  CCI object with a different body: web".to_owned(),
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

    /// UP-03's pods, made for as long as an upgrade lasts, compare as one: other numbers of
    /// them, and another split between the old engine's and the new one's, are no difference;
    /// a body none of them had before is. Another scenario's numbered names stay apart.
    #[test]
    fn timed_names_compare_as_one_by_their_writes_and_bodies_and_other_numbers_stay_apart() {
        let ns = "up-03-aaaaaa";
        let pods = |split: usize, n: usize, new_protocol: &str| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| {
                    if i < split {
                        cci_pod(ns, &format!("through-{i}"), "1.5.17", "v1")
                    } else {
                        cci_pod(ns, &format!("through-{i}"), "1.5.18", new_protocol)
                    }
                })
                .collect()
        };
        let t = |split, n, protocol| {
            let posted: Vec<String> = (0..n).map(|i| format!("through-{i}")).collect();
            let posted: Vec<&str> = posted.iter().map(String::as_str).collect();
            written("UP-03", ns, "1.5.18", &pods(split, n, protocol), &posted)
        };
        let a = t(3, 19, "v2");
        let b = t(7, 23, "v2");
        assert_eq!(transcript_change(&a, &b), TranscriptChange::default());
        let c = t(3, 19, "v3");
        let change = transcript_change(&a, &c);
        assert_eq!(
            change.bodies_changed,
            [BodyChange {
                object: "[scenario-ns].through-[n]".into(),
                fields: vec![
                    "metadata.annotations[\"bursting.cci.io/sidecar-protocol\"]: \"v2\" -> \"v3\""
                        .into()
                ],
            }]
        );
        // WL-03's ordinals are what it checks: a pod made only on one side is a change.
        let mut d = a.clone();
        d.id = "WL-03".into();
        let mut e = b.clone();
        e.id = "WL-03".into();
        assert!(transcript_change(&d, &e).requests_added.contains(
            &"POST /apis/cci/v2/namespaces/[cci-ns]/pods ([scenario-ns].through-22)".to_owned()
        ));
    }

    /// An upgrade's pods at two releases: each run has its old pods (burst by the release
    /// before) and its new ones. The old are paired with the old and the new with the new, so
    /// the fields named are what changed between them, not between an old pod and a new one.
    #[test]
    fn bodies_of_one_name_are_paired_so_they_differ_least() {
        let ns = "up-03-aaaaaa";
        let old = written(
            "UP-03",
            ns,
            "1.5.17",
            &[
                cci_pod(ns, "through-0", "1.5.16", "v1"),
                cci_pod(ns, "through-1", "1.5.17", "v1"),
            ],
            &["through-0", "through-1"],
        );
        let new = written(
            "UP-03",
            ns,
            "1.5.18",
            &[
                cci_pod(ns, "through-0", "1.5.17", "v1"),
                cci_pod(ns, "through-1", "1.5.18", "v2"),
            ],
            &["through-0", "through-1"],
        );
        let change = transcript_change(&old, &new);
        assert_eq!(change.bodies_changed.len(), 1, "{change:?}");
        let mut fields = change.bodies_changed[0].fields.clone();
        fields.sort();
        assert_eq!(
            fields,
            [
                "metadata.annotations[\"bursting.cci.io/release\"]: \"1.5.16\" -> \"1.5.17\"",
                "metadata.annotations[\"bursting.cci.io/sidecar-protocol\"]: \"v1\" -> \"v2\"",
            ]
        );
    }

    /// [`TIMED_NAMES`] is held to the scenarios it names: each prefix is what the scenario's
    /// file numbers its pods with.
    #[test]
    fn timed_names_are_the_names_their_scenarios_make() {
        for (id, prefix, _) in TIMED_NAMES {
            let (family, _) = id.split_once('-').unwrap();
            let file = match family {
                "UP" => include_str!("../scenarios/up.rs"),
                other => panic!("no file read for the family {other}"),
            };
            assert!(
                file.contains(&format!("format!(\"{prefix}{{i}}\")")),
                "scenarios/{}.rs no longer names pods {prefix}N",
                family.to_ascii_lowercase()
            );
        }
        assert_eq!(
            class_names(
                "UP-03",
                "[scenario-ns].through-12 /pods/[scenario-ns].through-3"
            ),
            "[scenario-ns].through-[n] /pods/[scenario-ns].through-[n]"
        );
        assert_eq!(
            class_names("UP-03", "[scenario-ns].go-through-12"),
            "[scenario-ns].go-through-12"
        );
        assert_eq!(
            class_names("UP-01", "[scenario-ns].through-12"),
            "[scenario-ns].through-12"
        );
    }

    #[test]
    fn a_body_change_seen_in_several_scenarios_is_summed_up_once_with_them() {
        let mut old = Side::default();
        let mut new = Side::default();
        for id in ["VOL-01", "WL-01"] {
            let o = written(
                id,
                "x-01-aaaaaa",
                "1.5.17",
                &[cci_pod("x-01-aaaaaa", "web", "1.5.17", "v1")],
                &["web"],
            );
            let n = written(
                id,
                "x-01-bbbbbb",
                "1.5.18",
                &[cci_pod("x-01-bbbbbb", "web", "1.5.18", "v2")],
                &["web"],
            );
            for (s, t) in [(&mut old, o), (&mut new, n)] {
                s.outcomes.insert(id.into(), "passed".into());
                s.transcripts.insert(id.into(), t);
            }
        }
        let lines = diff(&old, &new);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert_eq!(
            lines[2],
            "body changes in more than one scenario:\n  metadata.annotations[\"bursting.cci.io/sidecar-protocol\"]: \"v1\" -> \"v2\": in 2 scenarios (VOL-01, WL-01)"
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
        let t = transcript(&[("GET", "/p/a")], &[("web", "d1")]);
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
