//! The add-on as the cloud installs it: typed install parameters and their preconditions
//! ([`params`]), the objects they render to ([`render`]), and install / upgrade / rollback /
//! uninstall / status on a cluster ([`lifecycle`]).

pub mod cli;
pub mod lifecycle;
pub mod params;
pub mod purge;
pub mod render;

pub use lifecycle::{AddonState, Status, UninstallOptions};
pub use params::{ClusterType, InstallParams, NetworkMode, Spec};
pub use render::Target;
