//! The far side of the gates that end: INST-02 at 1.5.38, the first release after the Arm rule
//! (`burst_rules::release::Gate::ArmUnsupported`, up to 1.5.37). The add-on's pods must carry no
//! amd64-only affinity and run on a cluster whose nodes are all Arm. The other suites run
//! 1.5.18, inside the gate; this binary brings up its own environment at 1.5.38.

use burstcert::catalogue::assert_passes;

/// The release this binary certifies: the first after the Arm gate.
const AFTER_THE_ARM_GATE: &str = "1.5.38";

/// INST-02 at 1.5.38: Arm supported; on an Arm-only cluster the add-on runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inst_02_the_add_on_runs_on_an_arm_only_cluster_from_1_5_38() {
    assert!(
        burstcert::env::configure_release(AFTER_THE_ARM_GATE),
        "this binary runs the engine as {AFTER_THE_ARM_GATE} only"
    );
    let gate = burst_rules::release::Gate::ArmUnsupported;
    let release = burst_rules::release::Release::parse(AFTER_THE_ARM_GATE).unwrap();
    assert!(
        !gate.applies_to(release),
        "{AFTER_THE_ARM_GATE} must be past the Arm gate ({})",
        gate.condition()
    );
    assert_passes("INST-02").await;
}
