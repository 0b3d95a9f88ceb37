#!/usr/bin/env bash
# Certify the add-on on a kind cluster, as a user's CI job does (docs/ci/github-actions.yml,
# docs/ci/gitlab-ci.yml) and as .ci/run does: start Docker if none answers (with what this VM
# needs, docs/kind.md), run `burstcert certify --cluster kind` with this script's arguments
# (e.g. `--release 1.5.18`), check that the run's kind cluster and containers are gone
# afterwards, and exit with certify's exit code, the job's verdict: 0 CERTIFIED, 1 FAILED,
# 2 usage error, 3 INCOMPLETE, 4 the harness could not run (5: certify ended but left containers).
#
# Usage: ci/kind-certify.sh [certify arguments…]
#   BURSTCERT_REPORT  the report folder to upload (default: burstcert-report)
# Needs: Rust, Go, and, as root: Docker (Debian's docker.io), debootstrap and a C compiler
# (ci/setup-kind.sh checks them and installs what is missing with apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/setup-kind.sh
report=${BURSTCERT_REPORT:-burstcert-report}
started=$(tools/docker/dockerd-up)
stop_docker() { [ -n "$started" ] && kill "$started" 2>/dev/null && wait "$started" 2>/dev/null || true; }
trap stop_docker EXIT
log=$(mktemp)
set +e
cargo run --locked -p burstcert -- certify --cluster kind --report "$report" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# Only this run's cluster is ours to judge: another run (another person's, another Kubernetes
# version) may share the Docker engine. burstcert prints the name of the cluster it made; its
# guard removes the cluster and the mock's container the moment burstcert exits: give it a
# deadline, then judge.
clusters=$(grep -o 'kind cluster burstcert-[0-9a-f]*,' "$log" | sed 's/^kind cluster //; s/,$//' | sort -u || true)
rm -f "$log"
for cluster in $clusters; do
  left=x
  for _ in $(seq 1 120); do
    left=$( (docker ps -aq --filter "label=io.x-k8s.kind.cluster=$cluster"; docker ps -aq --filter "label=io.burstcert.cluster=$cluster") | sort -u)
    [ -z "$left" ] && break
    sleep 0.5
  done
  if [ -n "$left" ]; then
    echo "containers of the kind cluster $cluster left behind:" >&2
    docker ps -a --filter "label=io.x-k8s.kind.cluster=$cluster" >&2
    docker ps -a --filter "label=io.burstcert.cluster=$cluster" >&2
    exit 5
  fi
  echo "kind cluster $cluster and its containers are gone"
done
echo "burstcert certify --cluster kind exited $rc; the report is in $report"
exit "$rc"
