//! The harness against real local clusters, in one test binary: each test binary costs a link
//! of its own on 2 cores, and `cargo test` runs binaries one after another, so four binaries of
//! 5–21 s each ran in series; here their tests share the test threads. One area:
//! `cargo test -p burstcert --test cluster host_node::`.

mod certify_cli;
mod host_node;
mod leader_election;
mod local_cluster;
