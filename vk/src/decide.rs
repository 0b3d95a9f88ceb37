//! The pod controller's decisions, as pure functions of what it knows (as [`crate::leader::step`]
//! is for leader election): `pods.rs` gathers the facts, asks here, and carries the answer out
//! against the API server and the provider. Each branch has a row in the tables below.

/// The cluster pod a reconcile finds in the cache.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached<'a> {
    pub uid: &'a str,
    /// It has a `deletionTimestamp`.
    pub terminating: bool,
    /// Its phase is `Succeeded` or `Failed`.
    pub terminal: bool,
}

/// What the controller remembers of the pod it last handled under the same name.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Remembered<'a> {
    pub uid: &'a str,
    /// The provider created it.
    pub created: bool,
    /// The provider refused it as invalid (not retried until its input changes).
    pub refused: bool,
    /// Its spec and annotations equal the cached pod's (the provider's input is unchanged).
    pub same_input: bool,
}

/// What one reconcile of a pod key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reconcile {
    /// Nothing in the cache and nothing remembered.
    Nothing,
    /// The remembered pod left the cache: delete its remote pod, then forget it.
    DeleteVanished,
    /// The pod is being deleted: ask the provider to delete the remote pod (only the first time
    /// for this UID: the controller's own grace-0 delete that finishes the pod comes back as an
    /// update, and asking again would cut the remote grace period short), then finish the
    /// deletion in the cluster.
    Finalize {
        /// Ask the provider (not yet asked for this UID).
        ask_provider: bool,
    },
    /// The pod lives: first delete the remote pod of the older pod the name held (`replaced`),
    /// then `action`.
    Sync {
        /// The name now holds a new UID.
        replaced: bool,
        /// What to do with the live pod.
        action: Action,
    },
}

/// What a sync does with a live pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Created and unchanged: nothing to call.
    Keep,
    /// Created and its input changed: `update_pod`.
    Update,
    /// Refused and unchanged: stays refused, no call.
    StayRefused,
    /// Finished (e.g. seen again after a restart): remembered, never started again.
    LeaveFinished,
    /// Not created yet (new, or refused and changed since): `create_pod`.
    Create,
}

/// Decides one reconcile from the cached pod, the remembered one, and whether the provider was
/// already asked to delete the cached pod's UID.
pub(crate) fn reconcile(
    cached: Option<Cached<'_>>,
    remembered: Option<Remembered<'_>>,
    delete_asked: bool,
) -> Reconcile {
    let Some(pod) = cached else {
        return match remembered {
            Some(_) => Reconcile::DeleteVanished,
            None => Reconcile::Nothing,
        };
    };
    if pod.terminating {
        return Reconcile::Finalize {
            ask_provider: !delete_asked,
        };
    }
    let replaced = remembered.is_some_and(|r| r.uid != pod.uid);
    let same = remembered.filter(|r| r.uid == pod.uid);
    let action = match same {
        Some(r) if r.created && r.same_input => Action::Keep,
        Some(r) if r.created => Action::Update,
        Some(r) if r.refused && r.same_input => Action::StayRefused,
        _ if pod.terminal => Action::LeaveFinished,
        _ => Action::Create,
    };
    Reconcile::Sync { replaced, action }
}

/// What the status round does for one cached pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusStep {
    /// Nothing to write (being deleted, finished, never created, or not ours to judge).
    Skip,
    /// Merge the provider's status into the pod's and patch what changed.
    FromProvider,
    /// Created but missing from the provider's answer: count the miss; at
    /// `lost` the pod is marked `Failed` (one miss can be a list racing a create).
    Missed {
        /// This miss reaches the limit: mark the pod lost.
        lost: bool,
    },
}

/// The facts the status round has about one cached pod.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatusFacts {
    /// It has a `deletionTimestamp`.
    pub terminating: bool,
    /// The provider's answer has a status for its UID.
    pub on_provider: bool,
    /// The provider created this UID.
    pub created: bool,
    /// Its phase is `Succeeded` or `Failed`.
    pub terminal: bool,
    /// Consecutive rounds it was missing before this one.
    pub misses_before: u32,
}

/// Decides the status round's step for one pod; `lost_after` consecutive misses mark it lost.
pub(crate) fn status_step(facts: StatusFacts, lost_after: u32) -> StatusStep {
    if facts.terminating {
        return StatusStep::Skip;
    }
    if facts.on_provider {
        return StatusStep::FromProvider;
    }
    if !facts.created || facts.terminal {
        return StatusStep::Skip;
    }
    StatusStep::Missed {
        lost: facts.misses_before.saturating_add(1) >= lost_after,
    }
}

/// What the orphan sweep does with one remote pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Orphan {
    /// Keep it (its cluster pod lives, or it cannot be named or checked).
    Keep,
    /// The cache does not have it: ask the API server before deleting anything.
    AskApiServer,
    /// The API server confirms its cluster pod is gone (or the name holds another UID): delete.
    Delete,
}

/// The orphan sweep's first look at a remote pod, from the cache alone: `named` is false when the
/// remote pod lacks a UID, name or namespace (never delete what cannot be named).
pub(crate) fn orphan_by_cache(named: bool, cached_uid: Option<&str>, remote_uid: &str) -> Orphan {
    if !named || cached_uid == Some(remote_uid) {
        Orphan::Keep
    } else {
        Orphan::AskApiServer
    }
}

/// The orphan sweep's decision once the API server answered for the remote pod's name:
/// `Ok(Some(uid))` a pod with that UID holds the name, `Ok(None)` none, `Err(())` no answer.
pub(crate) fn orphan_by_api_server(answer: Result<Option<&str>, ()>, remote_uid: &str) -> Orphan {
    match answer {
        Ok(Some(uid)) if uid == remote_uid => Orphan::Keep,
        Ok(_) => Orphan::Delete,
        // A slow or failing API server must never cost a running pod.
        Err(()) => Orphan::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const A: &str = "uid-a";
    const B: &str = "uid-b";

    fn live(uid: &str) -> Option<Cached<'_>> {
        Some(Cached {
            uid,
            terminating: false,
            terminal: false,
        })
    }

    fn finished(uid: &str) -> Option<Cached<'_>> {
        Some(Cached {
            uid,
            terminating: false,
            terminal: true,
        })
    }

    fn terminating(uid: &str) -> Option<Cached<'_>> {
        Some(Cached {
            uid,
            terminating: true,
            terminal: false,
        })
    }

    fn seen(uid: &str, created: bool, refused: bool, same_input: bool) -> Option<Remembered<'_>> {
        Some(Remembered {
            uid,
            created,
            refused,
            same_input,
        })
    }

    fn sync(replaced: bool, action: Action) -> Reconcile {
        Reconcile::Sync { replaced, action }
    }

    #[rstest]
    #[case::nothing_anywhere(None, None, false, Reconcile::Nothing)]
    #[case::the_remembered_pod_vanished(
        None,
        seen(A, true, false, true),
        false,
        Reconcile::DeleteVanished
    )]
    #[case::a_refused_pod_vanished_too(
        None,
        seen(A, false, true, true),
        false,
        Reconcile::DeleteVanished
    )]
    #[case::terminating_first_time(terminating(A), seen(A, true, false, true), false, Reconcile::Finalize { ask_provider: true })]
    #[case::terminating_again_after_our_own_delete(terminating(A), seen(A, true, false, true), true, Reconcile::Finalize { ask_provider: false })]
    #[case::terminating_never_seen(terminating(A), None, false, Reconcile::Finalize { ask_provider: true })]
    #[case::new_pod(live(A), None, false, sync(false, Action::Create))]
    #[case::created_and_unchanged(
        live(A),
        seen(A, true, false, true),
        false,
        sync(false, Action::Keep)
    )]
    #[case::created_and_changed(
        live(A),
        seen(A, true, false, false),
        false,
        sync(false, Action::Update)
    )]
    #[case::refused_and_unchanged(
        live(A),
        seen(A, false, true, true),
        false,
        sync(false, Action::StayRefused)
    )]
    #[case::refused_and_changed_is_tried_again(
        live(A),
        seen(A, false, true, false),
        false,
        sync(false, Action::Create)
    )]
    #[case::create_failed_before_is_retried(
        live(A),
        seen(A, false, false, true),
        false,
        sync(false, Action::Create)
    )]
    #[case::finished_and_never_created(
        finished(A),
        None,
        false,
        sync(false, Action::LeaveFinished)
    )]
    #[case::finished_after_it_was_created(
        finished(A),
        seen(A, true, false, true),
        false,
        sync(false, Action::Keep)
    )]
    #[case::replaced_under_the_same_name(
        live(B),
        seen(A, true, false, true),
        false,
        sync(true, Action::Create)
    )]
    #[case::replaced_by_a_finished_pod(
        finished(B),
        seen(A, true, false, true),
        false,
        sync(true, Action::LeaveFinished)
    )]
    #[case::replaced_after_a_refusal(
        live(B),
        seen(A, false, true, true),
        false,
        sync(true, Action::Create)
    )]
    fn reconcile_decides_from_the_cache_and_the_memory(
        #[case] cached: Option<Cached<'_>>,
        #[case] remembered: Option<Remembered<'_>>,
        #[case] delete_asked: bool,
        #[case] expected: Reconcile,
    ) {
        assert_eq!(reconcile(cached, remembered, delete_asked), expected);
    }

    fn facts(
        terminating: bool,
        on_provider: bool,
        created: bool,
        terminal: bool,
        misses_before: u32,
    ) -> StatusFacts {
        StatusFacts {
            terminating,
            on_provider,
            created,
            terminal,
            misses_before,
        }
    }

    #[rstest]
    #[case::being_deleted(facts(true, true, true, false, 0), StatusStep::Skip)]
    #[case::the_provider_has_it(facts(false, true, true, false, 2), StatusStep::FromProvider)]
    #[case::a_finished_pod_the_provider_still_reports(
        facts(false, true, false, true, 0),
        StatusStep::FromProvider
    )]
    #[case::never_created(facts(false, false, false, false, 0), StatusStep::Skip)]
    #[case::finished_and_gone_from_the_provider(
        facts(false, false, true, true, 5),
        StatusStep::Skip
    )]
    #[case::first_miss(facts(false, false, true, false, 0), StatusStep::Missed { lost: false })]
    #[case::second_miss(facts(false, false, true, false, 1), StatusStep::Missed { lost: false })]
    #[case::third_miss_is_lost(facts(false, false, true, false, 2), StatusStep::Missed { lost: true })]
    #[case::later_misses_stay_lost(facts(false, false, true, false, 7), StatusStep::Missed { lost: true })]
    fn the_status_round_merges_skips_or_counts_misses(
        #[case] facts: StatusFacts,
        #[case] expected: StatusStep,
    ) {
        assert_eq!(status_step(facts, 3), expected);
    }

    #[rstest]
    #[case::unnamed(false, None, Orphan::Keep)]
    #[case::unnamed_even_if_unknown(false, Some(B), Orphan::Keep)]
    #[case::cached_with_its_uid(true, Some(A), Orphan::Keep)]
    #[case::not_cached(true, None, Orphan::AskApiServer)]
    #[case::cached_under_another_uid(true, Some(B), Orphan::AskApiServer)]
    fn the_orphan_sweep_keeps_what_the_cache_knows(
        #[case] named: bool,
        #[case] cached_uid: Option<&str>,
        #[case] expected: Orphan,
    ) {
        assert_eq!(orphan_by_cache(named, cached_uid, A), expected);
    }

    #[rstest]
    #[case::the_pod_lives(Ok(Some(A)), Orphan::Keep)]
    #[case::the_name_holds_another_pod(Ok(Some(B)), Orphan::Delete)]
    #[case::no_pod_of_that_name(Ok(None), Orphan::Delete)]
    #[case::the_api_server_did_not_answer(Err(()), Orphan::Keep)]
    fn the_orphan_sweep_deletes_only_what_the_api_server_confirms_gone(
        #[case] answer: Result<Option<&str>, ()>,
        #[case] expected: Orphan,
    ) {
        assert_eq!(orphan_by_api_server(answer, A), expected);
    }
}
