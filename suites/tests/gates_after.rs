//! The far side of the gates that end (`<=`): every gated scenario whose gate
//! `burst_rules::release` says 1.5.38 is past (INST-02: Arm supported, so the add-on's pods
//! carry no amd64-only affinity and run on a cluster whose nodes are all Arm), checked at 1.5.38
//! in an environment of its own.

fn main() -> std::process::ExitCode {
    suites::gates_main(suites::AFTER_EVERY_GATE)
}
