//! The other sides of the release gates, both releases side by side (see `suites::gates_main`):
//! at 1.3.24, before every gate that starts (`>=`), the gated scenarios whose gate
//! the harness's gate table (`burstcert::gates`) says 1.3.24 is before (VOL-04/VOL-05's DownwardAPI and projected
//! token, VOL-07/HP-05's /etc/localtime, INST-04's LoadBalancer Service, UP-01/UP-02's sidecar
//! v2, INST-03's pod-room check); at 1.5.38, past every gate that ends (`<=`), those it says
//! 1.5.38 is past (INST-02: Arm supported, so the add-on's pods carry no amd64-only affinity and
//! run on a cluster whose nodes are all Arm). Each release in an environment of its own; a
//! scenario with nothing to check there shows as ignored, "not applicable", with the reason.
//! Trials are named `at_1_3_24::vol::vol_04`.

fn main() -> std::process::ExitCode {
    suites::gates_main()
}
