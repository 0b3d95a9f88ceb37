# Sourced by .ci/run: makes sure the tools the project needs are on this machine. Go, Rust and
# what kind needs come from ci/setup-kind.sh (shared with the kind job users copy); the rest is
# checked or installed here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup-kind.sh"
cargo fmt --version >/dev/null 2>&1 || { echo "cargo fmt is missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "cargo clippy is missing: rustup component add clippy" >&2; exit 1; }
command -v pgrep >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq procps; }
# HTML Tidy, which checks report.html as an HTML checker reads it (the report's test skips,
# saying so, without it).
if ! command -v tidy >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tidy >/dev/null
fi
