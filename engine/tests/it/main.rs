//! The engine's integration tests, one module per area, in one test binary: on 2 cores each test binary
//! costs a link of its own (~9 s here), so `cargo test -p engine` builds one
//! (`cargo test -p engine --test it api::` runs one module).

mod aksk;
mod cci_protocol;
mod cci_watch;
mod cli;
mod common;
mod gc;
mod logs;
mod mirroring;
mod network;
mod pending_lock;
mod provider;
mod proxy;
mod release;
mod tls;
mod token_file;
