//! Every scenario family of the catalogue in one test binary with one environment (one link,
//! one bring-up): `cargo test -p suites --test scenarios` runs them all, `… -- volumes::` one
//! family, `… -- vol_05` one scenario. Scenarios confined to their own namespace run side by
//! side on the test threads; a cluster-wide one (install, uninstall, upgrade, network, lock,
//! restarts, node changes) runs alone (`burstcert::catalogue::run` takes care of it).
//!
//! The other side of the release gates needs an engine at another release, so it has its own
//! binary (`gates_before.rs`).

mod hostpath;
mod install;
mod jobs;
mod lock;
mod network;
mod policy;
mod resilience;
mod resources;
mod uninstall;
mod upgrade;
mod vk;
mod volumes;
mod workloads;
