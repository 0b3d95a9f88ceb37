#!/usr/bin/env bash
# The kind smoke of CI: start Docker if none answers (with what this VM needs), certify WL-02,
# HP-01 and UN-01 on a kind cluster made from locally built images, and check that they passed
# and that the cluster, its containers and the dockerd we started are gone afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(tools/docker/dockerd-up)
stop_docker() { [ -n "$started" ] && kill "$started" 2>/dev/null && wait "$started" 2>/dev/null || true; }
trap stop_docker EXIT
report=$(mktemp -d)
set +e
cargo run -p burstcert -- certify --cluster kind --focus WL-02 HP-01 UN-01 --report "$report"
rc=$?
set -e
# A focused run that passes is INCOMPLETE (exit 3): the three must be in it, passed.
python3 - "$report/report.json" "$rc" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
rows = {r["id"]: r["outcome"] for r in report["rows"]}
want = ["WL-02", "HP-01", "UN-01"]
bad = [f"{i}: {rows.get(i)}" for i in want if rows.get(i) != "passed"]
if bad or rc != 3:
    sys.exit(f"kind smoke failed (exit {rc}): {bad or 'unexpected exit code'}")
print("kind smoke: " + ", ".join(f"{i} passed" for i in want))
PY
# The cluster and the mock's container are removed by a guard the moment burstcert exits: give
# it a deadline, then judge.
left=x
for _ in $(seq 1 120); do
  left=$( (docker ps -aq --filter label=io.burstcert.cluster; docker ps -aq --filter name=burstcert-) | sort -u)
  [ -z "$left" ] && break
  sleep 0.5
done
if [ -n "$left" ]; then
  echo "containers left behind by the kind run:" >&2
  docker ps -a --filter label=io.burstcert.cluster >&2
  exit 1
fi
echo "no kind cluster or container left behind"
