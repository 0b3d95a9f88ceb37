//! The suites cover the catalogue: every catalogue ID is run by exactly one suite test at the
//! default release, every gated ID also at a release on the other side of its gate
//! (`gates_*.rs`), and no suite runs an ID the catalogue does not have. (No cluster: this reads
//! the suites' sources.)

use std::collections::BTreeMap;

#[test]
fn every_catalogue_id_is_run_by_exactly_one_suite_test_and_no_other_id_is() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut runs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut other: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let folders = [dir.clone(), dir.join("scenarios")];
    let files = folders
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("a suites' tests folder"));
    for file in files.flatten() {
        let path = file.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let other_side = file_name.starts_with("gates_");
        let text = std::fs::read_to_string(&path).expect("a suite file");
        let call = if other_side {
            "at_1_3_24(\""
        } else {
            "assert_passes(\""
        };
        for piece in text.split(call).skip(1) {
            let id = piece.split('"').next().unwrap_or_default().to_owned();
            let runs = if other_side { &mut other } else { &mut runs };
            runs.entry(id).or_default().push(file_name.clone());
        }
    }
    assert!(
        !runs.is_empty(),
        "no assert_passes found under {}",
        dir.display()
    );
    // The spec's IDs and the proposed ones (run by the suites, not yet in SCENARIOS.md).
    let catalogue: Vec<&str> = burstcert::catalogue::entries()
        .iter()
        .chain(burstcert::catalogue::proposed().iter())
        .map(|e| e.id)
        .collect();
    let missing: Vec<&&str> = catalogue
        .iter()
        .filter(|id| !runs.contains_key(**id))
        .collect();
    assert!(
        missing.is_empty(),
        "catalogue IDs no suite runs: {missing:?}"
    );
    let unknown: Vec<&String> = runs
        .keys()
        .filter(|id| !catalogue.contains(&id.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "suites run IDs the catalogue lacks: {unknown:?}"
    );
    let twice: Vec<(&String, &Vec<String>)> = runs.iter().filter(|(_, f)| f.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "IDs run by more than one suite test: {twice:?}"
    );
}
