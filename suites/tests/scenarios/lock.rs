//! LOCK: capacity exhaustion and the node lock (§7), against a real local control plane and the
//! mock CCI. The lock is the one virtual node's state, so the scenarios run in sequence from one
//! test, in this binary's own cluster; the engine runs with a short lock
//! (`BURSTCERT_LOCK_SECONDS`, default 20 s).

use burstcert::catalogue::assert_passes;

/// LOCK-01, LOCK-02, LOCK-03 in order: sold out locks the node and new pods wait; an uncordon
/// unlocks it; the lock lifts by itself when its duration ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_01_to_03_sold_out_locks_the_node_until_uncordoned_or_expired() {
    assert_passes("LOCK-01").await;
    assert_passes("LOCK-02").await;
    assert_passes("LOCK-03").await;
}
