//! The subcommands of `burstcert`, one file each (or one per pair that shares a purpose): their
//! arguments (clap) and how they call the library. `main.rs` only dispatches.

pub mod breakages;
pub mod cci;
pub mod certify;
pub mod cluster;
pub mod measure;
pub mod report;
pub mod tools;
pub mod up;

use anyhow::Context as _;
use burstcert::binaries::user_path;

/// The text of `--cci-ca-file`, when given.
pub fn read_ca_file(path: Option<std::path::PathBuf>) -> anyhow::Result<Option<String>> {
    path.map(|path| {
        let path = user_path(path);
        std::fs::read_to_string(&path)
            .with_context(|| format!("read the CCI CA bundle {}", path.display()))
    })
    .transpose()
}

/// The one CCI credential given (see `CciAuth::from_files_or_env`), the files relative to
/// where burstcert was started.
pub fn read_auth(
    token_file: Option<std::path::PathBuf>,
    aksk_file: Option<std::path::PathBuf>,
) -> anyhow::Result<Option<burstcert::cci::CciAuth>> {
    let (token_file, aksk_file) = (token_file.map(user_path), aksk_file.map(user_path));
    burstcert::cci::CciAuth::from_files_or_env(token_file.as_deref(), aksk_file.as_deref())
        .map_err(|problem| anyhow::anyhow!(problem))
}
