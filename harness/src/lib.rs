//! burstcert: the conformance harness for the bursting add-on.
//!
//! It builds the pinned upstream Kubernetes binaries ([`tools`]), brings up clusters
//! ([`cluster`]), runs the mock CCI and the engine beside them ([`env`]), and gives each scenario a
//! namespace, waits with deadlines and snapshot redactions ([`scenario`], [`wait`], [`snapshot`]).
#![warn(missing_docs)]

pub mod addon;
pub mod bench;
pub mod binaries;
pub mod breakages;
pub mod catalogue;
pub mod cci;
pub mod certify;
pub mod cluster;
pub mod discover;
pub mod env;
pub mod error;
pub mod fixtures;
pub mod gates;
pub mod k8s_features;
pub mod kind;
pub mod matrix;
pub mod mock_admin;
pub mod needs;
pub mod pki;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod scenarios;
pub mod snapshot;
pub mod soak;
pub mod stuck;
pub mod target;
pub mod tools;
pub mod wait;

pub use error::{Error, Result};
