# Sourced by .ci/run: makes sure the tools the project needs are on this machine.
# Go >= 1.26 builds the pinned Kubernetes; Rust builds the workspace. Both ship with the machine
# image; anything else we need is installed here.
set -euo pipefail
need_go="1.26"
if ! command -v go >/dev/null 2>&1; then
  echo "go is missing: the local cluster's binaries are built from the Go module proxy and need Go >= $need_go" >&2
  echo "(or set BURSTCERT_K8S_BIN to a folder of prebuilt kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl)" >&2
  exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -1)" != "$need_go" ]; then
  # The Go module proxy serves toolchains too; this is the one sanctioned way to get a newer Go.
  export GOTOOLCHAIN="go${need_go}.0"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo is missing: install Rust (rustup) >= 1.89" >&2; exit 1; }
cargo fmt --version >/dev/null 2>&1 || { echo "cargo fmt is missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "cargo clippy is missing: rustup component add clippy" >&2; exit 1; }
command -v pgrep >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq procps; }
# The kind path (ci/kind-smoke.sh): Debian's Docker engine, debootstrap for the node image, a C
# compiler for pause (the engine's and mock's images carry the glibc build and its libraries).
# And HTML Tidy, which checks report.html as an HTML checker reads it (the report's test skips,
# saying so, without it).
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v tidy >/dev/null 2>&1 || missing+=(tidy)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
