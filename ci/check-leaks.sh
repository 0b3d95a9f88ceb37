#!/usr/bin/env bash
# Fails when a control-plane, kwok, mock or engine process outlives the test run.
# Test binaries hand their cluster's teardown to a guard process that runs `kwokctl delete
# cluster` the moment the binary exits; give that guard a deadline to finish, then judge.
set -u
pattern='kube-apiserver|kube-controller-manager|kube-scheduler|kwok-controller|kwok |etcd --|mock-cci|bursting-engine'
deadline=$((SECONDS + ${LEAK_GRACE_SECONDS:-60}))
while :; do
  leaks=$(pgrep -a -f "$pattern" | grep -v -e pgrep -e check-leaks || true)
  [ -z "$leaks" ] && { echo "no leaked processes (after ${SECONDS}s)"; exit 0; }
  [ $SECONDS -ge $deadline ] && break
  sleep 1
done
echo "leaked processes after the tests:" >&2
echo "$leaks" >&2
exit 1
