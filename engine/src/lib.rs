//! The reference bursting engine: a virtual kubelet ([`vk`]) whose provider runs the pods bound
//! to the virtual node `bursting-node` on CCI.
//!
//! - [`translate`]: cluster pod ⇄ CCI pod, pure functions.
//! - [`cci`]: a small client of the CCI API.
//! - [`cci_watch`]: the CCI pods, followed by a watch, that the status round reads.
//! - [`cluster`]: reading the ConfigMaps, Secrets and claims burst pods use.
//! - [`provider`]: [`CciProvider`], the `vk::Provider` on top of both.
//! - [`node`]: what the virtual node looks like.
//! - [`lock`]: the node lock taken when CCI is sold out.
//! - [`proxy`]: the network-interconnect proxy's registration on CCI.
//! - [`gc`]: the uninstall gc of a cluster's CCI namespace.
//! - [`breakage`]: deliberate breakages for `burstcert breakages` (feature `breakages` only).
#![warn(missing_docs)]

pub mod breakage;
pub mod cci;
pub mod cci_watch;
pub mod cluster;
mod error;
pub mod gc;
pub mod lock;
pub mod node;
pub mod provider;
pub mod proxy;
pub mod translate;
pub mod tunnel;
pub mod webhook;

pub use cci::{CciAuth, CciClient, ClusterNetwork};
pub use cluster::{ClusterObject, ClusterObjects, MemoryObjects};
pub use error::{Error, REASON_SOLD_OUT, Result};
pub use provider::CciProvider;

/// The add-on release the engine runs as unless told otherwise (`--release`).
pub const DEFAULT_RELEASE: burst_rules::release::Release =
    burst_rules::release::Release::new(1, 5, 18);
