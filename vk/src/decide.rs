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
    /// The pod is being deleted: first delete the remote pod of the older pod the name held
    /// (`replaced`), then take the pod's termination one step further ([`terminate`]).
    Terminate {
        /// The name now holds a new UID.
        replaced: bool,
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

/// Decides one reconcile from the cached pod and the remembered one.
pub(crate) fn reconcile(
    cached: Option<Cached<'_>>,
    remembered: Option<Remembered<'_>>,
) -> Reconcile {
    let Some(pod) = cached else {
        return match remembered {
            Some(_) => Reconcile::DeleteVanished,
            None => Reconcile::Nothing,
        };
    };
    let replaced = remembered.is_some_and(|r| r.uid != pod.uid);
    if pod.terminating {
        return Reconcile::Terminate { replaced };
    }
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

/// What the controller knows of a terminating pod's remote deletion (see the termination
/// protocol on [`crate::Provider`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Termination {
    /// The provider accepted a delete of this UID, with this grace period (`Some(None)`: none
    /// given); `None`: not asked yet.
    pub asked: Option<Option<i64>>,
    /// The pod's `deletionGracePeriodSeconds` now.
    pub grace: Option<i64>,
    /// The controller already sent the grace-0 delete that finishes this UID. NB: that delete
    /// comes back as one more update (with grace 0) before the pod leaves the cache; asking
    /// the provider again then would cut the remote grace period short.
    pub finishing: bool,
    /// A provider answer asked for after the delete was accepted lacked the UID.
    pub remote_gone: bool,
    /// Time left until the deletion deadline (`deletionTimestamp` plus the slack); zero once it
    /// has passed.
    pub left: std::time::Duration,
}

/// One step of a pod's termination: what to ask the provider, then what to do in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TerminationStep {
    /// Ask the provider to delete the remote pod: not asked yet for this UID, or the grace
    /// period was shortened since (`kubectl delete --grace-period=1` on a terminating pod).
    pub ask_provider: bool,
    /// Then.
    pub then: Then,
}

/// What a termination step does in the cluster once the provider has been asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// Delete the cluster pod at grace 0 with its UID as precondition (the remote pod is gone,
    /// or the deadline passed): the kubelet's part of deleting a pod.
    Finish,
    /// Keep the pod `Terminating`; look again after this long (the deadline), unless the
    /// status round finds the remote pod gone first.
    Recheck(std::time::Duration),
}

/// Decides the next step of a terminating pod's deletion.
pub(crate) fn terminate(t: Termination) -> TerminationStep {
    if t.finishing || t.remote_gone {
        return TerminationStep {
            ask_provider: false,
            then: Then::Finish,
        };
    }
    let shortened = matches!((t.asked, t.grace), (Some(Some(asked)), Some(now)) if now < asked);
    TerminationStep {
        ask_provider: t.asked.is_none() || shortened,
        then: if t.left.is_zero() {
            Then::Finish
        } else {
            Then::Recheck(t.left)
        },
    }
}

/// What the status round does for one cached pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusStep {
    /// Nothing to write (never created, finished, not ours to judge, or being deleted and not
    /// yet asked for in this answer).
    Skip,
    /// The provider has it but knows no status: nothing to write, and not a miss.
    Present,
    /// Merge the provider's status into the pod's and patch what changed (a terminating pod
    /// too: the cluster shows the deletion's progress).
    FromProvider,
    /// Created but missing from the provider's answer: count the miss; at
    /// `lost` the pod is marked `Failed` (one miss can be a list racing a create).
    Missed {
        /// This miss reaches the limit: mark the pod lost.
        lost: bool,
    },
    /// Being deleted, and missing from an answer asked for after the provider accepted the
    /// delete: the remote pod is gone, so the cluster pod can be finished.
    RemoteGone,
}

/// The facts the status round has about one cached pod.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatusFacts {
    /// It has a `deletionTimestamp`.
    pub terminating: bool,
    /// The provider's answer has its UID.
    pub on_provider: bool,
    /// The provider's answer for it says something (not an empty status).
    pub status_known: bool,
    /// The provider created this UID.
    pub created: bool,
    /// Its phase is `Succeeded` or `Failed`.
    pub terminal: bool,
    /// Consecutive rounds it was missing before this one.
    pub misses_before: u32,
    /// The provider accepted its delete before this round's answer was asked for, and the
    /// controller is still waiting for the remote pod to go.
    pub awaiting_removal: bool,
}

/// Decides the status round's step for one pod; `lost_after` consecutive misses mark it lost.
pub(crate) fn status_step(facts: StatusFacts, lost_after: u32) -> StatusStep {
    if facts.on_provider {
        return if facts.status_known {
            StatusStep::FromProvider
        } else {
            StatusStep::Present
        };
    }
    if facts.terminating {
        return if facts.awaiting_removal {
            StatusStep::RemoteGone
        } else {
            StatusStep::Skip
        };
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
    use std::time::Duration;

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
    #[case::nothing_anywhere(None, None, Reconcile::Nothing)]
    #[case::the_remembered_pod_vanished(
        None,
        seen(A, true, false, true),
        Reconcile::DeleteVanished
    )]
    #[case::a_refused_pod_vanished_too(None, seen(A, false, true, true), Reconcile::DeleteVanished)]
    #[case::terminating(terminating(A), seen(A, true, false, true), Reconcile::Terminate { replaced: false })]
    #[case::terminating_never_seen(terminating(A), None, Reconcile::Terminate { replaced: false })]
    #[case::terminating_under_a_name_that_held_another_pod(terminating(B), seen(A, true, false, true), Reconcile::Terminate { replaced: true })]
    #[case::new_pod(live(A), None, sync(false, Action::Create))]
    #[case::created_and_unchanged(live(A), seen(A, true, false, true), sync(false, Action::Keep))]
    #[case::created_and_changed(live(A), seen(A, true, false, false), sync(false, Action::Update))]
    #[case::refused_and_unchanged(
        live(A),
        seen(A, false, true, true),
        sync(false, Action::StayRefused)
    )]
    #[case::refused_and_changed_is_tried_again(
        live(A),
        seen(A, false, true, false),
        sync(false, Action::Create)
    )]
    #[case::create_failed_before_is_retried(
        live(A),
        seen(A, false, false, true),
        sync(false, Action::Create)
    )]
    #[case::finished_and_never_created(finished(A), None, sync(false, Action::LeaveFinished))]
    #[case::finished_after_it_was_created(
        finished(A),
        seen(A, true, false, true),
        sync(false, Action::Keep)
    )]
    #[case::replaced_under_the_same_name(
        live(B),
        seen(A, true, false, true),
        sync(true, Action::Create)
    )]
    #[case::replaced_by_a_finished_pod(
        finished(B),
        seen(A, true, false, true),
        sync(true, Action::LeaveFinished)
    )]
    #[case::replaced_after_a_refusal(
        live(B),
        seen(A, false, true, true),
        sync(true, Action::Create)
    )]
    fn reconcile_decides_from_the_cache_and_the_memory(
        #[case] cached: Option<Cached<'_>>,
        #[case] remembered: Option<Remembered<'_>>,
        #[case] expected: Reconcile,
    ) {
        assert_eq!(reconcile(cached, remembered), expected);
    }

    const WAIT: Duration = Duration::from_secs(40);

    fn termination(
        asked: Option<Option<i64>>,
        grace: Option<i64>,
        finishing: bool,
        remote_gone: bool,
        left: Duration,
    ) -> Termination {
        Termination {
            asked,
            grace,
            finishing,
            remote_gone,
            left,
        }
    }

    fn step(ask_provider: bool, then: Then) -> TerminationStep {
        TerminationStep { ask_provider, then }
    }

    #[rstest]
    #[case::first_sight_asks_and_waits(
        termination(None, Some(30), false, false, WAIT),
        step(true, Then::Recheck(WAIT))
    )]
    #[case::first_sight_after_the_deadline_asks_and_finishes(
        termination(None, Some(30), false, false, Duration::ZERO),
        step(true, Then::Finish)
    )]
    #[case::asked_and_the_remote_pod_still_there_waits(
        termination(Some(Some(30)), Some(30), false, false, WAIT),
        step(false, Then::Recheck(WAIT))
    )]
    #[case::asked_and_the_remote_pod_gone_finishes(
        termination(Some(Some(30)), Some(30), false, true, WAIT),
        step(false, Then::Finish)
    )]
    #[case::asked_and_the_deadline_passed_finishes(
        termination(Some(Some(30)), Some(30), false, false, Duration::ZERO),
        step(false, Then::Finish)
    )]
    #[case::a_shortened_grace_asks_again(
        termination(Some(Some(30)), Some(1), false, false, WAIT),
        step(true, Then::Recheck(WAIT))
    )]
    #[case::a_force_delete_asks_again_and_finishes(
        termination(Some(Some(30)), Some(0), false, false, Duration::ZERO),
        step(true, Then::Finish)
    )]
    #[case::a_longer_grace_is_not_asked(
        termination(Some(Some(30)), Some(60), false, false, WAIT),
        step(false, Then::Recheck(WAIT))
    )]
    #[case::asked_without_a_grace_is_not_asked_again(
        termination(Some(None), Some(5), false, false, WAIT),
        step(false, Then::Recheck(WAIT))
    )]
    #[case::a_grace_that_went_away_is_not_asked_again(
        termination(Some(Some(30)), None, false, false, WAIT),
        step(false, Then::Recheck(WAIT))
    )]
    #[case::our_own_grace_0_delete_echoed_does_not_ask_again(
        termination(Some(Some(30)), Some(0), true, true, Duration::ZERO),
        step(false, Then::Finish)
    )]
    #[case::finishing_after_the_deadline_with_the_remote_pod_still_there(
        termination(Some(Some(30)), Some(0), true, false, WAIT),
        step(false, Then::Finish)
    )]
    #[case::a_remote_pod_gone_before_a_shortened_grace_is_not_asked_again(
        termination(Some(Some(30)), Some(1), false, true, WAIT),
        step(false, Then::Finish)
    )]
    fn a_termination_asks_the_provider_once_then_finishes_when_the_remote_pod_goes_or_time_is_up(
        #[case] facts: Termination,
        #[case] expected: TerminationStep,
    ) {
        assert_eq!(terminate(facts), expected);
    }

    /// Facts of a pod the status round meets: its status known whenever the provider has it,
    /// no removal awaited (rows change that with `unknown_status` and `awaiting`).
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
            status_known: on_provider,
            created,
            terminal,
            misses_before,
            awaiting_removal: false,
        }
    }

    fn unknown_status(f: StatusFacts) -> StatusFacts {
        StatusFacts {
            status_known: false,
            ..f
        }
    }

    fn awaiting(f: StatusFacts) -> StatusFacts {
        StatusFacts {
            awaiting_removal: true,
            ..f
        }
    }

    #[rstest]
    #[case::the_provider_has_it(facts(false, true, true, false, 2), StatusStep::FromProvider)]
    #[case::a_finished_pod_the_provider_still_reports(
        facts(false, true, false, true, 0),
        StatusStep::FromProvider
    )]
    #[case::the_provider_has_it_without_a_status(
        unknown_status(facts(false, true, true, false, 2)),
        StatusStep::Present
    )]
    #[case::being_deleted_and_still_on_the_provider_shows_its_progress(
        awaiting(facts(true, true, true, false, 0)),
        StatusStep::FromProvider
    )]
    #[case::being_deleted_and_still_on_the_provider_without_a_status(
        unknown_status(awaiting(facts(true, true, true, false, 0))),
        StatusStep::Present
    )]
    #[case::being_deleted_and_gone_after_the_delete(
        awaiting(facts(true, false, true, false, 0)),
        StatusStep::RemoteGone
    )]
    #[case::being_deleted_and_gone_from_an_answer_older_than_the_delete(
        facts(true, false, true, false, 0),
        StatusStep::Skip
    )]
    #[case::being_deleted_never_created_and_gone_after_the_delete(
        awaiting(facts(true, false, false, false, 0)),
        StatusStep::RemoteGone
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
    fn the_status_round_merges_skips_counts_misses_or_sees_a_deleted_pod_gone(
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
