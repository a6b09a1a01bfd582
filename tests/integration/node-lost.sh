#!/usr/bin/env bash
# An agent killed with SIGKILL is marked lost after --node-timeout and its
# running task is lost (failover itself is a later feature); the node comes
# back ready when a new agent process with that name registers, and the
# stray container it finds is removed.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1

mlctl run --wait --name victim "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "victim runs" job_state_is victim running
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
node_lost() { mlctl -o json nodes | jq -e --arg n "$1" '.[] | select(.name == $n and .state == "lost")' >/dev/null; }
check "node lost within 5s" wait_for 5 node_lost a1
check "job failed" wait_for 5 job_state_is victim failed
check "task lost" [ "$(mlctl -o json status victim | jq -r '.tasks[0].state')" = lost ]
check "reason names the node" grep -q "node a1 lost" <<<"$(job_field victim reason)"
start_agent a1 --gpus 1x16G || exit 1
check "node ready again" node_ready a1
check "leftover container removed" [ -z "$(runc --root "$T/agent-a1/runc" list -q)" ]
mlctl run --wait --name after "$MLS_ROOTFS" -- true >/dev/null
check "new work runs on the returned node" wait_for 10 job_state_is after succeeded
finish
