//! The suites cover the catalogue: every catalogue ID (and every proposed one) is a trial of
//! `tests/scenarios.rs` under its own name, and every gated ID is also run on the other side of
//! its gate by a gates binary. (No cluster: this asks the generator what it would run.)

use std::collections::BTreeSet;

use burstcert::catalogue;

#[test]
fn every_catalogue_id_is_a_trial_of_the_scenarios_suite_under_a_name_of_its_own() {
    let ids: Vec<&str> = catalogue::entries()
        .iter()
        .chain(catalogue::proposed().iter())
        .map(|e| e.id)
        .collect();
    assert!(ids.len() >= 49, "the catalogue lost IDs: {ids:?}");
    let names: Vec<String> = suites::trials(suites::every_scenario())
        .iter()
        .map(|t| t.name().to_owned())
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "two trials share a name: {names:?}"
    );
    let missing: Vec<&&str> = ids
        .iter()
        .filter(|id| !names.contains(&suites::trial_name(id)))
        .collect();
    assert!(
        missing.is_empty(),
        "catalogue IDs no trial runs: {missing:?}"
    );
    assert_eq!(
        names.len(),
        ids.len(),
        "trials beyond the catalogue: {names:?}"
    );
}

#[test]
fn every_gate_is_also_run_on_its_other_side() {
    let gated: Vec<&str> = catalogue::entries()
        .iter()
        .filter(|e| e.gate.is_some())
        .map(|e| e.id)
        .collect();
    assert!(!gated.is_empty(), "the catalogue has no gated scenario");
    let other_side: BTreeSet<&str> = [suites::BEFORE_EVERY_GATE, suites::AFTER_EVERY_GATE]
        .iter()
        .flat_map(|release| suites::other_side_of_gates(release))
        .map(|e| e.id)
        .collect();
    let one_sided: Vec<&&str> = gated
        .iter()
        .filter(|id| !other_side.contains(**id))
        .collect();
    assert!(
        one_sided.is_empty(),
        "gated scenarios no gates binary runs on the other side of their gate (add a release \
         to suites/src/lib.rs and a gates binary for it): {one_sided:?}"
    );
}
