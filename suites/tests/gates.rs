//! Both sides of every release gate's edge (see `suites::gates_main`): for each gate of the
//! harness's gate table (`burstcert::gates`, read from the spec), its gated scenarios at the
//! release just before the gate's behaviour and at the first release with it (`>= 1.5.9`:
//! 1.5.8 and 1.5.9; `<= 1.5.37`: 1.5.38 and 1.5.37), so an engine whose threshold is off by one
//! release fails on one side. Each release in an environment of its own, torn down when its
//! trials end; a scenario with nothing to check on one side shows as ignored, "not
//! applicable", with the reason. Trials are named `at_1_5_8::vol::vol_07`.

fn main() -> std::process::ExitCode {
    suites::gates_main()
}
