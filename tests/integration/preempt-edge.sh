#!/usr/bin/env bash
# Edge cases around preemption, reservations and eviction: a victim that is
# cancelled while it is being preempted does not leave its preemptor stuck;
# cancelling a job that holds a reservation frees the reserved nodes at once;
# evicted tasks of a batch array are requeued one by one, not after the
# whole array ends.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 4x16G || exit 1
start_agent a2 --gpus 4x16G || exit 1

run() { mlctl run --memory 32M "$@" >/dev/null; }
node_of() { mlctl -o json status "$1" | jq -r '.tasks[0].node'; }

# 1. Preempt, then cancel the victim while it stops.
run --wait --gpus 4 --priority -10 --name lowa "$MLS_ROOTFS" -- sleep 1000
run --wait --gpus 4 --priority -10 --name lowb "$MLS_ROOTFS" -- sleep 1000
run --gpus 4 --priority 100 --name high "$MLS_ROOTFS" -- sleep 1000
victim_seen() { mlctl -o json ls | jq -e '[.[] | select(.name == "lowa" or .name == "lowb") | select(.preempted_by > 0)] | length == 1' >/dev/null; }
check "one low job is being preempted" wait_for 5 victim_seen
victim=$(mlctl -o json ls | jq -r '.[] | select(.preempted_by > 0) | .name')
other=lowa
[ "$victim" = lowa ] && other=lowb
mlctl cancel "$victim" >/dev/null
check "the victim ends cancelled" wait_for 10 job_state_is "$victim" cancelled
check "high runs" wait_for 10 job_state_is high running
check "high waits for no victim" [ "$(mlctl -o json status high | jq .victims)" = 0 ]
# high can preempt again: evict it from its node; the only room is where
# the other low job runs.
from=$(node_of high)
to=a1
[ "$from" = a1 ] && to=a2
mlctl drain --evict "$from" >/dev/null
high_on() { [ "$(mlctl -o json status high | jq -r '.state + "/" + .tasks[0].node')" = "running/$1" ]; }
check "high requeued and running again on $to" wait_for 15 high_on "$to"
check "by preempting $other" [ "$(mlctl -o json status "$other" | jq .preemptions)" -ge 1 ]
mlctl uncordon "$from" >/dev/null
for j in high "$other"; do mlctl cancel "$j" >/dev/null; done
check "all cancelled" wait_for 10 job_state_is "$other" cancelled
check "high cancelled" wait_for 10 job_state_is high cancelled

# 2. A reservation is released when its job is cancelled.
run --wait --gpus 2 --name fill1 "$MLS_ROOTFS" -- sleep 1000
run --wait --gpus 2 --name fill2 "$MLS_ROOTFS" -- sleep 1000
run --wait --gpus 2 --name fill3 "$MLS_ROOTFS" -- sleep 1000
run --gpus 4 --name hh "$MLS_ROOTFS" -- true
check "hh waits" wait_for 5 job_state_is hh pending
run --gpus 1 --name ss "$MLS_ROOTFS" -- sleep 1000
check "ss waits" wait_for 5 job_state_is ss pending
log "ss: $(job_field ss state): $(job_field ss reason)"
check "ss is held back by hh's reservation" grep -q "reservation" <<<"$(job_field ss reason)"
mlctl cancel hh >/dev/null
check "ss runs once hh is cancelled" wait_for 3 job_state_is ss running
for j in fill1 fill2 fill3 ss; do mlctl cancel "$j" >/dev/null; done
check "fills cancelled" wait_for 10 job_state_is ss cancelled
check "fill3 cancelled" wait_for 10 job_state_is fill3 cancelled

# 3. Evicted batch tasks are requeued one by one.
cat >"$T/array.yaml" <<YAML
name: arr
kind: batch
image: $MLS_ROOTFS
command: [sleep, "1000"]
array: 4
resources: {gpus: 1, memory: 32M, cpus: 0.1}
YAML
mlctl submit --wait "$T/array.yaml" >/dev/null
check "array runs" wait_for 10 job_state_is arr running
start_agent a3 --gpus 4x16G || exit 1
first=$(node_of arr)
mlctl drain --evict "$first" >/dev/null
all_running_off() { mlctl -o json status arr | jq -e --arg n "$first" '[.tasks[] | select(.state == "running" and .node != $n)] | length == 4' >/dev/null; }
check "every array task runs off $first again" wait_for 15 all_running_off
check "the array counts one requeue" [ "$(mlctl -o json status arr | jq .preemptions)" = 1 ]
mlctl cancel arr >/dev/null
check "array cancelled" wait_for 10 job_state_is arr cancelled
check "no GPU is left in use" [ "$(mlctl -o json nodes | jq '[.[].gpus[].used_milli] | add')" = 0 ]
finish
