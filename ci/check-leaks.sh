#!/usr/bin/env bash
# Fails when a control-plane, kwok, mock or engine process started by the tests outlives them.
# Usage: ci/check-leaks.sh [BEFORE_FILE] — BEFORE_FILE lists `pgrep -f` pids taken before the
# tests (what was already running is not ours to judge).
# Test binaries hand their cluster's teardown to a guard process that runs `kwokctl delete
# cluster` the moment the binary exits; give that guard a deadline to finish, then judge.
set -u
pattern='kube-apiserver|kube-controller-manager|kube-scheduler|kwok-controller|kwok |etcd --|mock-cci|bursting-engine'
before=${1:-/dev/null}
deadline=$((SECONDS + ${LEAK_GRACE_SECONDS:-60}))
ours() { pgrep -a -f "$pattern" | grep -v -e pgrep -e check-leaks | grep -v -w -F -f <(cat "$before" /dev/null) || true; }
while :; do
  leaks=$(ours)
  [ -z "$leaks" ] && { echo "no leaked processes"; exit 0; }
  [ $SECONDS -ge $deadline ] && break
  sleep 1
done
echo "leaked processes after the tests:" >&2
echo "$leaks" >&2
exit 1
