#!/usr/bin/env bash
# Node loss is not the task's fault: kill -9 the agent that runs a serve
# replica, a training worker and an `mlctl run` task (no restart policy):
# all three are rescheduled and run on the other node, and status counts the
# reschedule.  When the agent comes back, its stale copies are killed at
# once: after 2 s no task has a second copy anywhere (runc's lists and the
# processes themselves).
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 || exit 1
start_agent a2 || exit 1
mlctl drain a2 >/dev/null

cat >"$T/svc.yaml" <<YAML
name: svc
kind: serve
image: $MLS_ROOTFS
command: [sleep, "1000"]
resources: {memory: 32M}
YAML
cat >"$T/trn.yaml" <<YAML
name: trn
kind: train
image: $MLS_ROOTFS
command: [sleep, "1000"]
workers: 1
resources: {memory: 32M}
YAML
mlctl submit --wait "$T/svc.yaml" >/dev/null || fail "submit svc"
mlctl submit --wait "$T/trn.yaml" >/dev/null || fail "submit trn"
mlctl run --wait --name one "$MLS_ROOTFS" -- sleep 1000 >/dev/null || fail "run one"
on_node() { [ "$(mlctl -o json status "$1" | jq -r '.state + "/" + .tasks[0].state + "/" + .tasks[0].node')" = "running/running/$2" ]; }
for j in svc trn one; do check "$j runs on a1" on_node $j a1; done
check "status says rescheduling is on" grep -q "^reschedule: on node loss, 0 of 3 used" <<<"$(mlctl status one)"
mlctl uncordon a2 >/dev/null

kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
for j in svc trn one; do check "$j runs on a2" wait_for 10 on_node $j a2; done
check "status counts the reschedule" grep -q "^reschedule: on node loss, 1 of 3 used (last: node a1 lost)" <<<"$(mlctl status one)"
check "no restart was used" [ "$(job_field one restarts)" = 0 ]
check "the master log says so" grep -q "job=.* name=one reschedule 1 of 3: node a1 lost" "$T/master.log"

# a1 comes back with the three old copies still running under their shims.
count_copies() {
	local n=0 a
	for a in a1 a2; do n=$((n + $(runc --root "$T/agent-$a/runc" list -q | grep -c .))); done
	echo "$n"
}
check "a1's old copies outlived their agent" [ "$(runc --root "$T/agent-a1/runc" list -q | grep -c .)" = 3 ]
start_agent a1 || exit 1
sleep 2
check "no copy left on a1 after 2 s" [ -z "$(runc --root "$T/agent-a1/runc" list -q)" ]
check "one copy of each task in all" [ "$(count_copies)" = 3 ]
# The processes themselves: none left in a1's container cgroups.
a1_procs() { grep -l "/mlsched/a1/mls-" /proc/[0-9]*/cgroup 2>/dev/null | grep -c .; }
check "no process left in a1's containers" [ "$(a1_procs)" = 0 ]
check "a1 says it killed stale copies" grep -q "killed at once: stale copy" "$T/agent-a1.log"
for j in svc trn one; do check "$j still runs on a2" on_node $j a2; done
finish
