//! WL-07: the scheduling policy matrix. Its own test binary (so its own cluster): it fills the
//! kwok nodes' CPU for a while, which no other scenario may see.

use burstcert::catalogue::assert_passes;

/// WL-07: enforce/auto/localPrefer/off/no label on nodes with room and on full nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wl_07_each_policy_lands_where_it_should_with_room_and_when_the_nodes_are_full() {
    assert_passes("WL-07").await;
}
