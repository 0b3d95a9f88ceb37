//! `decide` on arbitrary pods given as JSON (seed the corpus with real pods). Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run decide_json` in `rules/`.
#![no_main]

use burst_rules::decide::{AdmissionInput, decide};
use burst_rules::release::Release;
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;

#[path = "check.rs"]
mod check;

fuzz_target!(|data: &[u8]| {
    let Some((&r, rest)) = data.split_first() else {
        return;
    };
    let Ok(pod) = serde_json::from_slice::<Pod>(rest) else {
        return;
    };
    let release = Release::new(1, if r & 1 == 0 { 3 } else { 5 }, u32::from(r >> 1));
    let input = AdmissionInput::new(pod, release).with_cluster(check::cluster());
    check::decision_holds(&input, &decide(&input));
});
