//! The README shows the smallest provider as `examples/smallest.rs` has it (the example is
//! compiled; the README's copy is only read).

#[test]
fn the_readme_shows_the_smallest_example_as_the_file_has_it() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/smallest.rs");
    assert!(
        readme.contains(&format!("```rust\n{example}```")),
        "vk/README.md's copy of examples/smallest.rs is stale: paste the file into it again"
    );
}
