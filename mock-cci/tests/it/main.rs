//! The mock CCI's integration tests, one module per area, in one test binary: on 2 cores each test binary
//! costs a link of its own (~9 s here), so `cargo test -p mock-cci` builds one
//! (`cargo test -p mock-cci --test it api::` runs one module).

mod api;
mod bin;
mod common;
mod flavour_properties;
mod https;
mod inside;
mod logs_and_networks;
mod networks;
mod objects;
mod robustness;
mod signing;
mod validation;
mod watch;
