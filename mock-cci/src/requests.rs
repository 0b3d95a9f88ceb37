//! The request log: every API request the mock served, bounded, oldest first.
//!
//! Requests to the inside view (`/_mock/…`, `/admin/…`) and `/healthz` are not logged, so what
//! a test reads is what the engine did.

use std::collections::VecDeque;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::state::Epoch;

/// One served request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it arrived (wall clock).
    pub time: Time,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path with its query string.
    pub path: String,
    /// The object a create or an update named in its body (`metadata.name`), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tenant its token authenticates as (absent for no or unknown token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The credential it carried, never the secret itself: `token:{fingerprint}`
    /// ([`cci_api::token_fingerprint`]), `aksk:{access key}` for a signed request, absent for
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    /// How long it took to answer (for a watch: until its headers were sent), in milliseconds.
    pub duration_ms: u64,
}

/// What a request asked, as the log records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// Its method.
    pub method: String,
    /// Its path with its query string.
    pub path: String,
    /// The object its body named, as [`RequestRecord::name`].
    pub name: Option<String>,
}

/// Who sent a request, as the log records it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The tenant it authenticates as, if any.
    pub tenant: Option<String>,
    /// The credential it carried, as [`RequestRecord::credential`] names it.
    pub credential: Option<String>,
}

/// The last requests served.
#[derive(Debug)]
pub struct RequestLog {
    records: VecDeque<RequestRecord>,
    capacity: usize,
    next: u64,
    epoch: Epoch,
}

impl RequestLog {
    /// An empty log keeping at most `capacity` requests.
    pub fn new(capacity: usize, epoch: Epoch) -> Self {
        Self {
            records: VecDeque::new(),
            capacity: capacity.max(1),
            next: 0,
            epoch,
        }
    }

    /// Records a request that arrived at `at` and was answered `status` at `done`.
    pub fn push(
        &mut self,
        Asked { method, path, name }: Asked,
        caller: Caller,
        status: u16,
        at: Instant,
        done: Instant,
    ) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.next += 1;
        self.records.push_back(RequestRecord {
            seq: self.next,
            time: self.epoch.wall(at),
            method,
            path,
            name,
            tenant: caller.tenant,
            credential: caller.credential,
            status,
            duration_ms: u64::try_from(done.saturating_duration_since(at).as_millis())
                .unwrap_or(u64::MAX),
        });
    }

    /// The requests kept, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records.iter().cloned().collect()
    }

    /// Forgets every request (the sequence numbers go on).
    pub fn clear(&mut self) {
        self.records.clear();
    }
}
