//! `GET …/pods?watch=true`: newline-delimited JSON watch events, as Kubernetes streams them.
//!
//! - Without `resourceVersion` (or with `0`) the stream starts with an `ADDED` event for every
//!   selected pod, then follows changes; with `resourceVersion=N` it sends every change after
//!   `N` (answered `410 Gone`, reason `Expired`, when those changes are no longer kept; a watch
//!   that falls that far behind mid-stream gets an `ERROR` event with the same `Status` and
//!   ends).
//! - The stream itself keeps the simulation on time: while idle it sleeps until the store's
//!   next due change or until any request changes the store, then settles the store and sends
//!   what happened. No background task is needed, and an idle mock does no work.
//! - `timeoutSeconds=N` ends the stream after N seconds, as Kubernetes does.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use cci_api::{Pod, WatchEvent};
use futures::stream;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::MockState;
use crate::error::{Error, Result};
use crate::selector::LabelSelector;

struct Cursor {
    state: MockState,
    tenant: String,
    namespace: String,
    selector: LabelSelector,
    /// Every change up to here has been looked at.
    seen: u64,
    pending: VecDeque<Bytes>,
    changes: watch::Receiver<u64>,
    deadline: Option<Instant>,
    done: bool,
}

fn line<T: Serialize>(type_: &str, object: T) -> Bytes {
    let event = WatchEvent {
        type_: type_.to_owned(),
        object,
    };
    let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Cursor {
    /// Fetches the changes after `seen`; queues them as lines.
    fn fetch(&mut self) {
        let _ = self.changes.borrow_and_update();
        let fetched = self.state.with_store(|s, now| {
            s.pod_events(
                &self.tenant,
                &self.namespace,
                &self.selector,
                self.seen,
                now,
            )
            .map(|events| (events, s.current_resource_version()))
        });
        match fetched {
            Ok((events, current)) => {
                for event in events {
                    self.pending
                        .push_back(line(event.type_.as_str(), &*event.pod));
                }
                self.seen = current;
            }
            Err(error) => {
                self.pending.push_back(line("ERROR", error.to_status()));
                self.done = true;
            }
        }
    }

    async fn next(mut self) -> Option<(std::result::Result<Bytes, Infallible>, Self)> {
        loop {
            if let Some(line) = self.pending.pop_front() {
                return Some((Ok(line), self));
            }
            if self.done {
                return None;
            }
            self.fetch();
            if !self.pending.is_empty() || self.done {
                continue;
            }
            let next_due = self.state.with_store(|s, _| s.next_due());
            tokio::select! {
                changed = self.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                () = sleep_until(next_due) => {}
                () = sleep_until(self.deadline) => return None,
            }
        }
    }
}

/// Starts a watch of the pods of `namespace` that `selector` selects.
pub(crate) fn watch_pods(
    state: MockState,
    tenant: String,
    namespace: String,
    selector: LabelSelector,
    since: Option<u64>,
    timeout: Option<Duration>,
) -> Result<Response> {
    let changes = state.subscribe();
    let (initial, seen) = state.with_store(|s, now| -> Result<(Vec<Pod>, u64)> {
        match since {
            None => {
                let list = s.list_pods(&tenant, &namespace, &selector, now)?;
                Ok((list.items, s.current_resource_version()))
            }
            Some(rv) => {
                s.check_watch(&tenant, &namespace, rv, now)?;
                Ok((Vec::new(), rv))
            }
        }
    })?;
    let cursor = Cursor {
        pending: initial.iter().map(|pod| line("ADDED", pod)).collect(),
        state,
        tenant,
        namespace,
        selector,
        seen,
        changes,
        deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
        done: false,
    };
    let body = Body::from_stream(stream::unfold(cursor, Cursor::next));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(|e| Error::Serve(std::io::Error::other(e)))
}
