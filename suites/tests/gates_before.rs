//! The other side of the gates that start (`>=`): every gated scenario whose gate
//! `burst_rules::release` says 1.3.24 is before (VOL-04/VOL-05's DownwardAPI and projected
//! token, VOL-07/HP-05's /etc/localtime, INST-04's LoadBalancer Service, UP-01/UP-02's sidecar
//! v2, INST-03's pod-room check), each checked at 1.3.24 in an environment of its own. A
//! scenario with nothing to check there shows as ignored, "not applicable", with the reason.

fn main() -> std::process::ExitCode {
    suites::gates_main(suites::BEFORE_EVERY_GATE)
}
