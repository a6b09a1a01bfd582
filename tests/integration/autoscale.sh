#!/usr/bin/env bash
# Autoscaling on CPU: replicas that burn their CPU share (the cgroup quota
# caps them at 100% of what they asked for) against a 50% target scale the
# job up to its max; when the load stops they scale back down to min.
# Every decision is logged and shown with its reason.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 || exit 1

until=$(($(date +%s) + 9))
cat >"$T/burn.yaml" <<YAML
name: burn
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'while [ \$(date +%s) -lt \$UNTIL ]; do :; done; exec sleep 1000']
env: {UNTIL: "$until"}
resources: {memory: 32M, cpus: 0.2}
autoscale: {min: 1, max: 3, target_cpu_util: 50, window: 1500ms, cooldown: 500ms}
YAML
mlctl submit --wait "$T/burn.yaml" >/dev/null || fail "submit"
replicas_are() { [ "$(mlctl -o json status burn | jq '[.tasks[] | select(.role == "serving" and .state == "running")] | length')" = "$1" ]; }
check "scaled up to 3 under load" wait_for 15 replicas_are 3
check "the decision says why" grep -q "autoscale: .* -> 3 replicas: CPU [0-9]*% over [0-9.]* s against a target of 50%" "$T/master.log"
check "scaled down to 1 once the load stopped" wait_for 20 replicas_are 1
check "status shows the last decision" grep -q "^autoscale: [0-9] -> 1 replicas: CPU" <<<"$(mlctl status burn)"
check "history has the decisions" [ "$(mlctl history burn | grep -c 'autoscaled')" -ge 2 ]
finish
