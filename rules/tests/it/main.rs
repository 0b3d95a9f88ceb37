//! The rules' integration tests, one module per area, in one test binary: on 2 cores each test binary
//! costs a link of its own (~9 s here), so `cargo test -p rules` builds one
//! (`cargo test -p rules --test it api::` runs one module).

mod common;
mod hostpath;
mod install;
mod rounding;
mod scheduling;
mod seed;
mod volumes;
