#!/usr/bin/env bash
# An agent killed with SIGKILL is marked lost at once (its connection
# closes); a job with rescheduling turned off (reschedule: {max: 0}) loses
# its task, and one with a restart policy restarts it elsewhere under that
# policy.  The node comes back ready when a new agent process with that name
# registers, and the stray containers it takes over (they outlive their
# agent) are killed at once: the master has ended or moved their tasks.
# (Rescheduling, on by default, is tested in reschedule.sh.)
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1

cat >"$T/victim.yaml" <<YAML
name: victim
kind: batch
image: $MLS_ROOTFS
command: [sleep, "1000"]
reschedule: {max: 0}
resources: {memory: 32M}
YAML
mlctl submit --wait "$T/victim.yaml" >/dev/null
check "victim runs" job_state_is victim running
# A job with a restart policy fails over: it must run on a1 now (a2 is
# drained), and on a2 once a1 is gone.
start_agent a2 --gpus 1x16G || exit 1
mlctl drain a2 >/dev/null
cat >"$T/ha.yaml" <<YAML
name: ha
kind: batch
image: $MLS_ROOTFS
command: [sleep, "1000"]
restart: {policy: on-failure, max: 1}
reschedule: {max: 0}
resources: {memory: 32M}
YAML
mlctl submit --wait "$T/ha.yaml" >/dev/null
check "ha runs on a1" [ "$(mlctl -o json status ha | jq -r '.tasks[0].node')" = a1 ]
mlctl uncordon a2 >/dev/null
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
node_lost() { mlctl -o json nodes | jq -e --arg n "$1" '.[] | select(.name == $n and .state == "lost")' >/dev/null; }
# The killed agent's connection closes at once: the master does not wait
# for --node-timeout (3 s) of missed heartbeats.
killed_at=$SECONDS
check "node lost within 2s" wait_for 2 node_lost a1
log "lost after about $((SECONDS - killed_at)) s"
check "the master says why" grep -q "node=a1 lost: its agent's connection closed" "$T/master.log"
check "job failed" wait_for 5 job_state_is victim failed
check "task lost" [ "$(mlctl -o json status victim | jq -r '.tasks[0].state')" = lost ]
check "reason names the node" grep -q "node a1 lost" <<<"$(job_field victim reason)"
ha_moved() { [ "$(mlctl -o json status ha | jq -r '.state + "/" + .tasks[0].node')" = running/a2 ]; }
check "ha fails over to a2" wait_for 10 ha_moved
check "ha used its restart" grep -q "^restart:  on-failure, 1 of 1 used (last: task 0 lost: node a1 lost)" <<<"$(mlctl status ha)"
mlctl cancel ha >/dev/null
start_agent a1 --gpus 1x16G || exit 1
check "node ready again" node_ready a1
no_containers() { [ -z "$(runc --root "$T/agent-a1/runc" list -q)" ]; }
check "leftover containers killed at once" wait_for 2 no_containers
check "the agent says why" grep -q "killed at once: stale copy" "$T/agent-a1.log"
mlctl run --wait --name after "$MLS_ROOTFS" -- true >/dev/null
check "new work runs on the returned node" wait_for 10 job_state_is after succeeded
finish
