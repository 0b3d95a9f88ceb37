//! The bursting add-on's documented rules as pure functions: no IO, no clock, no client.
//!
//! Everything the admission webhook and the engine decide about a pod before it may run on CCI
//! lives here, so that it can be tested to the bone (see `BEHAVIOR.md` §2–§6):
//!
//! | module | rule |
//! |---|---|
//! | [`release`] | add-on releases (`X.Y.Z`) and the one table of release gates |
//! | [`quantity`] | Kubernetes resource quantities (`250m`, `1.5Gi`, `1e3`, …), exactly |
//! | [`flavour`] | the CCI flavour table, pod sizing, rounding up, `resource.cci.io/pod-size-specs` |
//! | [`hostpath`] | the `coordinator.cci.io/hostpath-replacement` annotation: parse and apply |
//! | [`volumes`] | the volume matrix: which volumes a pod may take to CCI, per release |
//! | [`policy`] | the burst policy label and its resolution through the owner chain |
//! | [`decide`] | the one admission decision for a pod (and the Service check) |
//!
//! ```
//! use burst_rules::decide::{decide, AdmissionInput, Decision};
//! use burst_rules::release::Release;
//! use k8s_openapi::api::core::v1::Pod;
//!
//! // A pod without a burst policy is left alone.
//! let input = AdmissionInput::new(Pod::default(), Release::new(1, 5, 18));
//! assert_eq!(decide(&input), Decision::Allow);
//! ```
#![warn(missing_docs)]

pub mod decide;
pub mod flavour;
pub mod hostpath;
pub mod policy;
pub mod quantity;
pub mod release;
pub mod volumes;

mod error;
pub use error::{Error, Result};
