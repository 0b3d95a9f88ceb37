#!/usr/bin/env bash
# The quick kind check (a minute or two once the images are cached): certify WL-02, HP-01 and
# UN-01 on a kind cluster made from locally built images through ci/kind-certify.sh (Docker
# started if none answers, the run's cluster and containers checked gone afterwards), and check
# that the three passed. CI certifies every scenario on kind (ci/kind-certify.sh in .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
report=$(mktemp -d)
set +e
BURSTCERT_REPORT="$report" ci/kind-certify.sh --focus WL-02 HP-01 UN-01
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
rm -rf "$report"
