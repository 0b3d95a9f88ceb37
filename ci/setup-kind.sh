# Sourced by ci/kind-certify.sh (and through ci/setup.sh by .ci/run): makes sure what certifying
# on kind needs is on this machine. Go >= 1.26 builds the pinned Kubernetes and the kind node's
# binaries, Rust builds the workspace; Debian's Docker engine, debootstrap for the node image and
# a C compiler for pause are installed when missing (apt-get, as root).
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
missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
