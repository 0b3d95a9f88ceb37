//! Empty: cargo honours `[build-dependencies]` (the host side's features) for a package with a
//! build script.
fn main() {}
