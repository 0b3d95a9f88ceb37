//! What a scenario leaves in the report folder: for a failed one, the evidence a person needs
//! to see why, gathered for its time window before its namespace goes (`evidence/<ID>/`); for
//! every one, its CCI-side transcript (`transcripts/<ID>.json`), which `burstcert diff`
//! compares between runs.
//!
//! Everything written goes through the report's redaction ([`super::redact`]). Names that vary
//! from run to run (the scenario namespace, the cluster's CCI namespace, generated name
//! suffixes, uids) are normalised in transcripts, so two runs of the same release compare equal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use serde::{Deserialize, Serialize};

use super::provenance::sha256_hex;
use crate::catalogue::Outcome;
use crate::error::{IoContext, Result};
use crate::needs::Need;
use crate::scenario::Scenario;

/// The folder of scenario `id`'s evidence, relative to the report folder.
pub fn evidence_dir(id: &str) -> String {
    format!("evidence/{id}")
}

/// The file of scenario `id`'s transcript, relative to the report folder.
pub fn transcript_file(id: &str) -> String {
    format!("transcripts/{id}.json")
}

/// What stands for the scenario's namespace in normalised text.
pub const SCENARIO_NS: &str = "[scenario-ns]";
/// What stands for the cluster's CCI namespace in normalised text.
pub const CCI_NS: &str = "[cci-ns]";

/// The characters Kubernetes draws generated names from (`utilrand.String`, and the
/// pod-template hash's encoding): no vowels, no 0, 1 or 3, so words are rarely mistaken for one.
const GENERATED: &str = "bcdfghjklmnpqrstvwxz2456789";

/// One `-`-separated token of a name, normalised: a template hash (6 to 10 generated
/// characters) → `[hash]`, a generated suffix (5, last in a name of several tokens) →
/// `[suffix]`, a long number (a CronJob's schedule time) → `[n]`.
fn normalise_token(token: &str, last: bool, several: bool) -> &str {
    let generated = !token.is_empty() && token.chars().all(|c| GENERATED.contains(c));
    if token.len() >= 6 && token.chars().all(|c| c.is_ascii_digit()) {
        "[n]"
    } else if generated && (6..=10).contains(&token.len()) && several {
        "[hash]"
    } else if generated && token.len() == 5 && last && several {
        "[suffix]"
    } else {
        token
    }
}

/// Whether `s` starts with a UUID (8-4-4-4-12 hex digits).
fn starts_with_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 36
        && (0..36).all(|i| match i {
            8 | 13 | 18 | 23 => b[i] == b'-',
            _ => b[i].is_ascii_hexdigit(),
        })
}

/// `text` with the names that vary between runs replaced: `namespace` (the scenario's) by
/// [`SCENARIO_NS`], `cci_namespace` by [`CCI_NS`], UUIDs by `[uid]`, and in every name (a run
/// of `[a-z0-9-]`) the generated tokens ([`normalise_token`]).
pub fn normalise_text(text: &str, namespace: &str, cci_namespace: &str) -> String {
    let mut text = text.to_owned();
    for (name, stand_in) in [(namespace, SCENARIO_NS), (cci_namespace, CCI_NS)] {
        if !name.is_empty() {
            text = text.replace(name, stand_in);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while !rest.is_empty() {
        if starts_with_uuid(rest) {
            out.push_str("[uid]");
            rest = &rest[36..];
            continue;
        }
        let word_len = rest
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let (word, after) = rest.split_at(word_len);
        let tokens: Vec<&str> = word.split('-').collect();
        let several = tokens.len() > 1;
        let last = tokens.len() - 1;
        let normalised: Vec<&str> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| normalise_token(t, i == last, several))
            .collect();
        out.push_str(&normalised.join("-"));
        rest = after;
    }
    out
}

/// A request path normalised ([`normalise_text`]), its query reduced to the parameters' names
/// (their values, resourceVersions and timeouts, vary) but `watch`'s.
pub fn normalise_path(path: &str, namespace: &str, cci_namespace: &str) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some(("watch", v)) => format!("watch={v}"),
            Some((k, _)) => format!("{k}=[v]"),
            None => p.to_owned(),
        })
        .collect();
    params.sort();
    params.dedup();
    let path = normalise_text(path, namespace, cci_namespace);
    if params.is_empty() {
        path
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// What stands for the release certified where a CCI object records the release it was made
/// under ([`cci_api::ANNOTATION_RELEASE`]).
pub const RELEASE: &str = "[release]";

/// A CCI object (a pod) as what was asked of CCI, normalised: no status (it depends on when it
/// was read), none of the fields the server sets per object (uid, resourceVersion, timestamps,
/// managedFields, generation), names normalised, and the release annotation [`RELEASE`] when
/// it names `release`, the release certified. That annotation names the run as the namespace
/// does: two releases compared would otherwise differ in every object by it alone, hiding what
/// else changed; an object made under another release (an upgrade's old pods) keeps its value.
pub fn normalise_object(
    object: &serde_json::Value,
    namespace: &str,
    cci_namespace: &str,
    release: &str,
) -> String {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
    {
        if let Some(stamp) = meta
            .get_mut("annotations")
            .and_then(|a| a.get_mut(cci_api::ANNOTATION_RELEASE))
            .filter(|v| v.as_str() == Some(release))
        {
            *stamp = RELEASE.into();
        }
        for key in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
    }
    // serde_json's maps are ordered by key: the text is the same for the same object.
    let text = serde_json::to_string(&object).expect("JSON serializes");
    normalise_text(&text, namespace, cci_namespace)
}

/// One kind of request the mock served a scenario, normalised.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TranscriptRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The normalised path ([`normalise_path`]).
    pub path: String,
    /// The object a create or an update named in its body, normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The status answered.
    pub status: u16,
    /// How many such requests (not compared: polls and retries vary with timing).
    pub count: u32,
}

/// The bodies of the CCI objects of one normalised name: the SHA-256 of each distinct
/// normalised object. Several pods can share a normalised name (a Deployment's replicas are all
/// `web-[hash]-[suffix]`) and differ (an upgrade's old and new pods): each body is kept.
/// Written as a list; a transcript that holds one digest as a string reads as a set of one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "DigestsOnDisk")]
pub struct Digests(pub std::collections::BTreeSet<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum DigestsOnDisk {
    One(String),
    Several(std::collections::BTreeSet<String>),
}

impl From<DigestsOnDisk> for Digests {
    fn from(on_disk: DigestsOnDisk) -> Self {
        match on_disk {
            DigestsOnDisk::One(digest) => Digests([digest].into()),
            DigestsOnDisk::Several(digests) => Digests(digests),
        }
    }
}

/// The CCI side of one scenario, normalised so two runs of the same release are equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The scenario ID.
    pub id: String,
    /// The requests, within the scenario's window, whose path or object names the scenario's
    /// namespace (the CCI objects the engine named for its pods), once per method, path, object
    /// and status. The mock logs no request bodies: what a create asked for is in `objects`.
    pub requests: Vec<TranscriptRequest>,
    /// The CCI pods standing for the scenario's pods when its body ended: normalised name →
    /// the SHA-256 of each normalised object of that name ([`normalise_object`]), which
    /// changes when what the engine asked CCI for does.
    pub objects: BTreeMap<String, Digests>,
    /// Each normalised object of `objects`, by its SHA-256: what a diff shows of a body that
    /// changed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bodies: BTreeMap<String, serde_json::Value>,
    /// Why a part could not be read (e.g. the target has no mock admin side), if one could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<String>,
}

/// One request of the mock's log, as far as a transcript needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// When it arrived.
    pub time: DateTime<Utc>,
    /// Its method.
    pub method: String,
    /// Its path and query.
    pub path: String,
    /// The object a create or an update named in its body.
    pub name: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// Whether a request the mock logged at `time` is within `[from, to]`. NB: the mock logs times
/// to the whole second, so the window starts at `from`'s second: a request in the scenario's
/// first second is its own.
fn in_window(time: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    use chrono::Timelike as _;
    let from = from.with_nanosecond(0).unwrap_or(from);
    time >= from && time <= to
}

/// The `objects` and `bodies` of a transcript from the CCI pods `pods` (as JSON) standing for
/// the scenario's pods: each normalised ([`normalise_object`]) and redacted ([`super::redact`])
/// before it is hashed and kept.
pub fn transcript_objects(
    pods: &[serde_json::Value],
    namespace: &str,
    cci_namespace: &str,
    release: &str,
    secrets: &[String],
) -> (
    BTreeMap<String, Digests>,
    BTreeMap<String, serde_json::Value>,
) {
    let mut objects: BTreeMap<String, Digests> = BTreeMap::new();
    let mut bodies = BTreeMap::new();
    for pod in pods {
        let name = normalise_text(
            pod["metadata"]["name"].as_str().unwrap_or(""),
            namespace,
            cci_namespace,
        );
        let text = super::redact(
            normalise_object(pod, namespace, cci_namespace, release),
            secrets,
        );
        let digest = sha256_hex(text.as_bytes());
        objects.entry(name).or_default().0.insert(digest.clone());
        bodies.insert(
            digest,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        );
    }
    (objects, bodies)
}

/// The transcript requests: those of `log` within `[from, to]` (see [`in_window`]) whose path
/// or object names `namespace`, normalised, counted.
pub fn transcript_requests(
    log: &[Logged],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    namespace: &str,
    cci_namespace: &str,
) -> Vec<TranscriptRequest> {
    type Key = (String, String, Option<String>, u16);
    let mut counts: BTreeMap<Key, u32> = BTreeMap::new();
    let names_it = |r: &Logged| {
        r.path.contains(namespace) || r.name.as_deref().is_some_and(|n| n.contains(namespace))
    };
    for r in log
        .iter()
        .filter(|r| in_window(r.time, from, to) && names_it(r))
    {
        *counts
            .entry((
                r.method.clone(),
                normalise_path(&r.path, namespace, cci_namespace),
                r.name
                    .as_deref()
                    .map(|n| normalise_text(n, namespace, cci_namespace)),
                r.status,
            ))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(
            |((method, path, object, status), count)| TranscriptRequest {
                method,
                path,
                object,
                status,
                count,
            },
        )
        .collect()
}

/// `line` without terminal colour codes (the add-on logs with them).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter).
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The lines of a log `text` written within `[from, to]`, colour codes stripped. A line that
/// starts with an RFC 3339 time is placed by it; a line without (a continuation, a banner)
/// goes with the line before it.
pub fn lines_in_window(text: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<String> {
    let mut inside = false;
    let mut kept = Vec::new();
    for line in text.lines() {
        let line = strip_ansi(line);
        let stamp = line
            .split_whitespace()
            .next()
            .and_then(|w| DateTime::parse_from_rfc3339(w).ok());
        if let Some(at) = stamp {
            let at = at.with_timezone(&Utc);
            inside = at >= from && at <= to;
        }
        if inside {
            kept.push(line);
        }
    }
    kept
}

/// The line that runs scenario `id` again as this run did: the environment variables that
/// chose what ran (`env`, see [`reproduce_env`]), then `burstcert certify --focus ID --release
/// R` and the target's flags (`cluster_args`, e.g. `--cluster kind`).
pub fn reproduce_line(
    id: &str,
    release: &str,
    cluster_args: &str,
    env: &[(String, String)],
) -> String {
    let mut line: String = env
        .iter()
        .map(|(name, value)| format!("{name}={} ", sh_word(value)))
        .collect();
    line.push_str(&format!(
        "burstcert certify --focus {id} --release {release}"
    ));
    if !cluster_args.is_empty() {
        line.push(' ');
        line.push_str(cluster_args);
    }
    line
}

/// The flags that choose the target (`cluster_args`) and how the add-on burstcert installs
/// authenticates (`--cci-auth aksk`; the default, a token, needs no flag): a failure only
/// an add-on signing with AK/SK shows must be run again so.
pub fn target_args(cluster_args: &str, auth: crate::env::AddonAuth) -> String {
    match auth {
        crate::env::AddonAuth::Token => cluster_args.to_owned(),
        crate::env::AddonAuth::AkSk if cluster_args.is_empty() => "--cci-auth aksk".to_owned(),
        crate::env::AddonAuth::AkSk => format!("{cluster_args} --cci-auth aksk"),
    }
}

/// `text` as one word of `sh`: as it is when it holds only characters without a meaning to
/// the shell, else in single quotes (a single quote inside becomes `'\''`).
fn sh_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// The environment variables of this process that change what a run certifies, as a
/// reproduction must repeat them: the binaries run as the add-on's image and as the mock
/// (`burstcert breakages` names an engine with a breakage on this way), a breakage of the
/// add-on's manifests, the engine's lock duration, the waits' patience and the report's test
/// fixtures. Without them the line would run the shipped engine and pass where this run
/// failed. A binary's relative path becomes absolute: the line may be run from elsewhere.
pub fn reproduce_env() -> Vec<(String, String)> {
    let binaries = [
        crate::binaries::ENGINE.env,
        crate::binaries::MOCK.env,
        crate::binaries::ECHO_BACKEND.env,
    ];
    let others = [
        crate::addon::render::MANIFEST_BREAKAGE_ENV,
        crate::env::LOCK_SECONDS_ENV,
        crate::wait::PATIENCE_ENV,
        super::fixture::ENV,
    ];
    binaries
        .iter()
        .map(|name| (name, true))
        .chain(others.iter().map(|name| (name, false)))
        .filter_map(|(name, path)| {
            let value = std::env::var(name).ok().filter(|v| !v.is_empty())?;
            let value = if path {
                std::path::absolute(&value).map_or(value, |p| p.display().to_string())
            } else {
                value
            };
            Some(((*name).to_owned(), value))
        })
        .collect()
}

/// Gathers what each scenario leaves in the report folder `dir` when its body ends (see
/// [`crate::catalogue::run_held_then`]).
#[derive(Clone, Debug)]
pub struct Gatherer {
    /// The report folder.
    pub dir: PathBuf,
    /// The release certified.
    pub release: String,
    /// The flags that select this run's target, for `reproduce.txt`.
    pub cluster_args: String,
    /// What [`super::redact`] hides in every file.
    pub secrets: Vec<String>,
}

impl Gatherer {
    /// Removes what an earlier run left (its evidence and transcripts): the folder then holds
    /// only this run's.
    pub fn clear(&self) -> Result<()> {
        for sub in ["evidence", "transcripts"] {
            let path = self.dir.join(sub);
            match std::fs::remove_dir_all(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).io_context(|| format!("remove {}", path.display()));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn write(&self, relative: &str, text: String) -> Result<()> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .io_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(&path, super::redact(text, &self.secrets))
            .io_context(|| format!("write {}", path.display()))
    }

    /// Called once `scenario`'s body ended with `outcome`, its window having started at
    /// `from`: writes its transcript, and, when it failed, its evidence. Problems reading the
    /// cluster or the mock go into the files, not into the outcome.
    pub async fn after(&self, scenario: &Scenario, outcome: &Outcome, from: DateTime<Utc>) {
        let to = Utc::now();
        let log = self.mock_log(scenario).await;
        let cci_pods = scenario.cci_pods().await;
        let namespace = scenario.namespace.as_str();
        let cci_namespace = scenario.cci_namespace();
        let mut transcript = Transcript {
            id: scenario.id.clone(),
            ..Transcript::default()
        };
        match &log {
            Ok(log) => {
                transcript.requests = transcript_requests(log, from, to, namespace, cci_namespace);
            }
            Err(why) => transcript.gaps.push(format!("requests: {why}")),
        }
        match &cci_pods {
            Ok(pods) => {
                let pods: Vec<serde_json::Value> = pods
                    .iter()
                    .map(|pod| serde_json::to_value(pod).expect("pods serialize"))
                    .collect();
                (transcript.objects, transcript.bodies) = transcript_objects(
                    &pods,
                    namespace,
                    cci_namespace,
                    &self.release,
                    &self.secrets,
                );
            }
            Err(e) => transcript.gaps.push(format!("CCI pods: {e}")),
        }
        let json = serde_json::to_string_pretty(&transcript).expect("transcripts serialize");
        if let Err(e) = self.write(&transcript_file(&scenario.id), json + "\n") {
            tracing::warn!(id = %scenario.id, "cannot write the transcript: {e}");
        }
        if matches!(outcome, Outcome::Failed(_))
            && let Err(e) = self
                .evidence(scenario, outcome, from, to, log, cci_pods)
                .await
        {
            tracing::warn!(id = %scenario.id, "cannot write the evidence: {e}");
        }
    }

    /// The mock's request log, when this target has the mock's admin side.
    async fn mock_log(&self, scenario: &Scenario) -> std::result::Result<Vec<Logged>, String> {
        let Some(admin) = scenario.env.mock_admin() else {
            return Err(format!("this target has no {}", Need::MockAdmin.describe()));
        };
        let records = admin.requests(None).await.map_err(|e| e.to_string())?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let value = serde_json::to_value(&r).ok()?;
                let time = DateTime::parse_from_rfc3339(value["time"].as_str()?)
                    .ok()?
                    .with_timezone(&Utc);
                Some(Logged {
                    time,
                    method: r.method,
                    path: r.path,
                    name: r.name,
                    status: r.status,
                })
            })
            .collect())
    }

    async fn evidence(
        &self,
        scenario: &Scenario,
        outcome: &Outcome,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        log: std::result::Result<Vec<Logged>, String>,
        cci_pods: Result<Vec<cci_api::Pod>>,
    ) -> Result<()> {
        let dir = evidence_dir(&scenario.id);
        let file = |name: &str| format!("{dir}/{name}");
        let yaml = |value: std::result::Result<serde_json::Value, String>| match value {
            Ok(value) => serde_saphyr::to_string(&value).unwrap_or_else(|e| format!("# {e}\n")),
            Err(why) => format!("# could not be read: {why}\n"),
        };
        let events = scenario
            .api::<Event>()
            .list(&ListParams::default())
            .await
            .map(|l| {
                let mut items = l.items;
                items.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
                for event in &mut items {
                    event.metadata.managed_fields = None;
                }
                serde_json::to_value(items).expect("events serialize")
            })
            .map_err(|e| e.to_string());
        self.write(&file("events.yaml"), yaml(events))?;
        let pods = scenario
            .api::<Pod>()
            .list(&ListParams::default())
            .await
            .map(|l| {
                let mut items = l.items;
                for pod in &mut items {
                    pod.metadata.managed_fields = None;
                }
                serde_json::to_value(items).expect("pods serialize")
            })
            .map_err(|e| e.to_string());
        self.write(&file("pods.yaml"), yaml(pods))?;
        let cci = cci_pods
            .map(|pods| serde_json::to_value(pods).expect("pods serialize"))
            .map_err(|e| e.to_string());
        self.write(&file("cci-pods.yaml"), yaml(cci))?;
        let cci_namespace = scenario.cci_namespace();
        let requests = match log {
            Ok(log) => log
                .iter()
                .filter(|r| {
                    in_window(r.time, from, to)
                        && (r.path.contains(&format!("/namespaces/{cci_namespace}/"))
                            || r.path.contains(&format!("/namespaces/{cci_namespace}?"))
                            || r.path.ends_with(&format!("/namespaces/{cci_namespace}")))
                })
                .map(|r| {
                    format!(
                        "{} {} {}{} {}\n",
                        r.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        r.method,
                        r.path,
                        r.name
                            .as_deref()
                            .map(|n| format!(" ({n})"))
                            .unwrap_or_default(),
                        r.status
                    )
                })
                .collect(),
            Err(why) => format!("# not gathered: {why}\n"),
        };
        self.write(&file("mock-requests.log"), requests)?;
        let logs = if scenario.env.offers().contains(&Need::AddonLogs) {
            match scenario.env.addon_log_texts().await {
                Ok(texts) => texts
                    .iter()
                    .filter_map(|(name, text)| {
                        let lines = lines_in_window(text, from, to);
                        (!lines.is_empty())
                            .then(|| format!("==> {name} <==\n{}\n", lines.join("\n")))
                    })
                    .collect(),
                Err(e) => format!("# could not be read: {e}\n"),
            }
        } else {
            format!(
                "# not gathered: this target has no {}\n",
                Need::AddonLogs.describe()
            )
        };
        self.write(&file("addon.log"), logs)?;
        self.write(
            &file("failure.txt"),
            format!(
                "{} in namespace {} from {} to {}\n\n{}\n",
                scenario.id,
                scenario.namespace,
                from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                outcome.reason()
            ),
        )?;
        self.write(
            &file("reproduce.txt"),
            reproduce_line(
                &scenario.id,
                &self.release,
                &self.cluster_args,
                &reproduce_env(),
            ) + "\n",
        )
    }
}

/// The files of evidence gathered per failure, in the order a reader wants them.
pub const FILES: [&str; 7] = [
    "failure.txt",
    "reproduce.txt",
    "events.yaml",
    "pods.yaml",
    "cci-pods.yaml",
    "mock-requests.log",
    "addon.log",
];

/// Scenario `id`'s evidence in the report folder `dir`, as (file name, text), in [`FILES`]'
/// order; the files that are not there are left out.
pub fn read(dir: &Path, id: &str) -> Vec<(String, String)> {
    let folder = dir.join(evidence_dir(id));
    FILES
        .iter()
        .filter_map(|name| {
            let bytes = std::fs::read(folder.join(name)).ok()?;
            Some((
                (*name).to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

/// Whether scenario `id` has evidence in the report folder `dir`.
pub fn has_evidence(dir: &Path, id: &str) -> bool {
    dir.join(evidence_dir(id)).join("reproduce.txt").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::deployment_pod("web-65467cb447-h4rv7", "web-[hash]-[suffix]")]
    #[case::job_pod("pi-x2x4z", "pi-[suffix]")]
    #[case::words_stay("nginx-web", "nginx-web")]
    #[case::an_ordinal_stays("web-0", "web-0")]
    #[case::a_cronjob_time("hello-28912345-bq7w2", "hello-[n]-[suffix]")]
    #[case::a_single_word_stays("xkcdz", "xkcdz")]
    #[case::namespaces(
        "/namespaces/bursting-5eaf84/pods/wl-01-h4rv7x.nginx",
        "/namespaces/[cci-ns]/pods/[scenario-ns].nginx"
    )]
    #[case::a_uid("uid ee7abfc5-a792-44b0-8e5e-ca47ce03ce4f end", "uid [uid] end")]
    fn names_that_vary_between_runs_are_normalised(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(
            normalise_text(text, "wl-01-h4rv7x", "bursting-5eaf84"),
            expected
        );
    }

    #[test]
    fn a_query_keeps_its_parameter_names_and_watch_only() {
        assert_eq!(
            normalise_path(
                "/api/namespaces/b-1/pods?resourceVersion=71&watch=true&timeoutSeconds=290",
                "ns",
                "b-1"
            ),
            "/api/namespaces/[cci-ns]/pods?resourceVersion=[v]&timeoutSeconds=[v]&watch=true"
        );
    }

    #[test]
    fn two_runs_of_one_object_normalise_to_the_same_text_and_a_changed_spec_does_not() {
        let pod = |ns: &str, uid: &str, rv: &str, image: &str, release: &str| {
            serde_json::json!({
                "metadata": {"name": format!("{ns}.web-65467cb447-h4rv7"), "uid": uid,
                             "resourceVersion": rv, "creationTimestamp": "2026-12-07T02:51:07Z",
                             "labels": {"bursting.cci.io/cluster-pod-uid": uid},
                             "annotations": {cci_api::ANNOTATION_RELEASE: release}},
                "spec": {"containers": [{"name": "web", "image": image}]},
                "status": {"phase": "Running", "podIP": "10.0.0.7"}
            })
        };
        let (uid_a, uid_b) = (
            "ee7abfc5-a792-44b0-8e5e-ca47ce03ce4f",
            "6653f362-1b86-4d78-86ae-27a53428d6f0",
        );
        let a = normalise_object(
            &pod("wl-02-aaaaaa", uid_a, "7", "nginx", "1.5.17"),
            "wl-02-aaaaaa",
            "bursting-1",
            "1.5.17",
        );
        let b = normalise_object(
            &pod("wl-02-bbbbbb", uid_b, "19", "nginx", "1.5.18"),
            "wl-02-bbbbbb",
            "bursting-2",
            "1.5.18",
        );
        assert_eq!(a, b, "each stamped with the release it certified");
        assert!(a.contains(&format!("\"{RELEASE}\"")), "{a}");
        let c = normalise_object(
            &pod("wl-02-bbbbbb", uid_b, "19", "nginx:2", "1.5.18"),
            "wl-02-bbbbbb",
            "bursting-2",
            "1.5.18",
        );
        assert_ne!(a, c);
        assert!(!a.contains("Running"), "{a}");
        // A pod made under another release than the one certified (an upgrade's old pod) says so.
        let old = normalise_object(
            &pod("wl-02-bbbbbb", uid_b, "19", "nginx", "1.5.17"),
            "wl-02-bbbbbb",
            "bursting-2",
            "1.5.18",
        );
        assert!(old.contains("\"1.5.17\""), "{old}");
        assert_ne!(old, b);
    }

    #[test]
    fn pods_of_one_normalised_name_keep_each_distinct_body_and_read_back_from_either_form() {
        let pod = |name: &str, protocol: &str| {
            serde_json::json!({"metadata": {"name": format!("up-03-aaaaaa.{name}"),
                "annotations": {cci_api::ANNOTATION_SIDECAR_PROTOCOL: protocol}}})
        };
        let pods = [
            pod("web-65467cb447-h4rv7", "v1"),
            pod("web-7d4b9c8f6d-x2x4z", "v2"),
            pod("web-7d4b9c8f6d-bq7w2", "v2"),
        ];
        let (objects, bodies) = transcript_objects(&pods, "up-03-aaaaaa", "b-1", "1.5.18", &[]);
        let digests = &objects["[scenario-ns].web-[hash]-[suffix]"].0;
        assert_eq!(digests.len(), 2, "{objects:?}");
        assert_eq!(bodies.len(), 2);
        for digest in digests {
            assert_eq!(
                sha256_hex(serde_json::to_string(&bodies[digest]).unwrap().as_bytes()),
                *digest
            );
        }
        let one: Digests = serde_json::from_str("\"ab\"").unwrap();
        assert_eq!(one.0, ["ab".to_owned()].into());
        let several: Digests = serde_json::from_str("[\"ab\", \"cd\"]").unwrap();
        assert_eq!(several.0.len(), 2);
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn transcript_requests_are_those_of_the_window_naming_the_namespace_counted_once_each() {
        // The mock logs whole seconds: the request at 10:00:00 is in a window from 10:00:00.4.
        let logged = |t: &str, method: &str, path: &str| Logged {
            time: at(t),
            method: method.into(),
            path: path.into(),
            name: None,
            status: 200,
        };
        let created = |name: &str| Logged {
            name: Some(name.into()),
            status: 201,
            ..logged("2026-12-07T10:00:02Z", "POST", "/ns/b-1/pods")
        };
        let log = [
            logged(
                "2026-12-07T10:00:00Z",
                "GET",
                "/ns/b-1/pods/wl-01-aaaaaa.web",
            ),
            logged(
                "2026-12-07T10:00:05Z",
                "GET",
                "/ns/b-1/pods/wl-01-aaaaaa.web",
            ),
            logged(
                "2026-12-07T10:00:05Z",
                "GET",
                "/ns/b-1/pods/wl-01-aaaaaa.web",
            ),
            logged(
                "2026-12-07T10:00:06Z",
                "GET",
                "/ns/b-1/pods/vol-01-bbbbbb.web",
            ),
            logged("2026-12-07T10:00:07Z", "GET", "/ns/b-1/pods?watch=true"),
            logged(
                "2026-12-07T10:09:00Z",
                "DELETE",
                "/ns/b-1/pods/wl-01-aaaaaa.web",
            ),
            created("wl-01-aaaaaa.web-65467cb447-h4rv7"),
            created("vol-01-bbbbbb.web"),
        ];
        let requests = transcript_requests(
            &log,
            at("2026-12-07T10:00:00.400Z"),
            at("2026-12-07T10:01:00Z"),
            "wl-01-aaaaaa",
            "b-1",
        );
        assert_eq!(
            requests,
            vec![
                TranscriptRequest {
                    method: "GET".into(),
                    path: "/ns/[cci-ns]/pods/[scenario-ns].web".into(),
                    object: None,
                    status: 200,
                    count: 3,
                },
                TranscriptRequest {
                    method: "POST".into(),
                    path: "/ns/[cci-ns]/pods".into(),
                    object: Some("[scenario-ns].web-[hash]-[suffix]".into()),
                    status: 201,
                    count: 1,
                },
            ]
        );
    }

    #[test]
    fn log_lines_are_kept_by_their_time_continuations_with_their_line_and_colours_stripped() {
        let text = "---- started by burstcert (pid 1) ----\n\
            \u{1b}[2m2026-12-07T10:00:00.1Z\u{1b}[0m INFO before\n\
            \u{1b}[2m2026-12-07T10:00:02.5Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m inside\n\
            continued\n\
            2026-12-07T10:00:09Z WARN after\n\
            continued after\n";
        assert_eq!(
            lines_in_window(text, at("2026-12-07T10:00:01Z"), at("2026-12-07T10:00:05Z")),
            vec!["2026-12-07T10:00:02.5Z  INFO inside", "continued"]
        );
    }

    #[test]
    fn the_reproduce_line_names_the_scenario_the_release_the_target_and_what_chose_the_binaries() {
        assert_eq!(
            reproduce_line("WL-01", "1.5.18", "", &[]),
            "burstcert certify --focus WL-01 --release 1.5.18"
        );
        assert_eq!(
            reproduce_line("WL-01", "1.5.18", "--cluster kind", &[]),
            "burstcert certify --focus WL-01 --release 1.5.18 --cluster kind"
        );
        let env = [
            (
                "BURSTCERT_ENGINE_BIN".to_owned(),
                "/r/delete-not-sent/bursting-engine".to_owned(),
            ),
            ("BURSTCERT_PATIENCE".to_owned(), "a b'c".to_owned()),
        ];
        assert_eq!(
            reproduce_line("VK-01", "1.5.17", "", &env),
            "BURSTCERT_ENGINE_BIN=/r/delete-not-sent/bursting-engine BURSTCERT_PATIENCE='a b'\\''c' \
             burstcert certify --focus VK-01 --release 1.5.17"
        );
        use crate::env::AddonAuth;
        assert_eq!(target_args("", AddonAuth::Token), "");
        assert_eq!(target_args("", AddonAuth::AkSk), "--cci-auth aksk");
        assert_eq!(
            target_args("--cluster kind", AddonAuth::AkSk),
            "--cluster kind --cci-auth aksk"
        );
    }

    #[test]
    fn evidence_and_transcripts_never_hold_the_credential() {
        let dir = tempfile::tempdir().unwrap();
        let canary = "token-canary-5e1d9b".to_owned();
        let gatherer = Gatherer {
            dir: dir.path().to_owned(),
            release: "1.5.18".into(),
            cluster_args: String::new(),
            secrets: vec![canary.clone()],
        };
        gatherer
            .write(
                &format!("{}/mock-requests.log", evidence_dir("WL-01")),
                format!("GET /x?token={canary} 401\n"),
            )
            .unwrap();
        let text =
            std::fs::read_to_string(dir.path().join("evidence/WL-01/mock-requests.log")).unwrap();
        assert_eq!(text, "GET /x?token=(redacted) 401\n");
        gatherer.clear().unwrap();
        assert!(!dir.path().join("evidence").exists());
    }
}
