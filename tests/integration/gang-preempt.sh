#!/usr/bin/env bash
# The scheduler core end to end, with three agents: a 2-worker training gang
# lands all or nothing and every worker sees RANK, WORLD_SIZE, LOCAL_RANK,
# MASTER_ADDR, MASTER_PORT and TF_CONFIG; a high-priority job preempts a
# low-priority one, which is requeued with a reason and runs again later;
# drain keeps new work off a node; batch arrays get ARRAY_INDEX.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x80G:A100 --labels zone=a,gpu=a100 --address 10.0.0.1 || exit 1
start_agent a2 --gpus 2x80G:A100 --labels zone=b,gpu=a100 --address 10.0.0.2 || exit 1
start_agent a3 --gpus 4x40G:H100 --labels zone=b,gpu=h100 --address 10.0.0.3 || exit 1

# A gang of two 2-GPU workers on the A100 nodes.
cat >"$T/gang.yaml" <<YAML
name: gang
kind: train
image: $MLS_ROOTFS
command: [sh, -c, 'echo "rank=\$RANK world=\$WORLD_SIZE local=\$LOCAL_RANK addr=\$MASTER_ADDR port=\$MASTER_PORT cuda=\$CUDA_VISIBLE_DEVICES"; echo "tf=\$TF_CONFIG"']
workers: 2
resources: {gpus: 2, gpu_model: A100, memory: 64M, cpus: 0.1}
YAML
mlctl submit "$T/gang.yaml" >/dev/null
check "gang succeeds" wait_for 15 job_state_is gang succeeded
st=$(mlctl -o json status gang)
n0=$(jq -r '.tasks[0].node' <<<"$st")
n1=$(jq -r '.tasks[1].node' <<<"$st")
check "workers on the two A100 nodes ($n0, $n1)" [ "$(printf '%s\n' "$n0" "$n1" | sort | tr '\n' ' ')" = "a1 a2 " ]
addr0=10.0.0.${n0#a}
for r in 0 1; do
	l=$(mlctl logs "gang/$r")
	log "worker $r: $(head -n1 <<<"$l")"
	check "worker $r env" grep -Eq "^rank=$r world=2 local=0 addr=$addr0 port=[0-9]+ cuda=0,1$" <<<"$l"
	check "worker $r TF_CONFIG" grep -Eq "^tf=\{\"cluster\":\{\"worker\":\[\"10\.0\.0\.[12]:[0-9]+\",\"10\.0\.0\.[12]:[0-9]+\"\]\},\"task\":\{\"type\":\"worker\",\"index\":$r\}\}$" <<<"$l"
done
p0=$(mlctl logs gang/0 | sed -n 's/.* port=\([0-9]*\) .*/\1/p')
p1=$(mlctl logs gang/1 | sed -n 's/.* port=\([0-9]*\) .*/\1/p')
check "both workers agree on MASTER_PORT" test -n "$p0" -a "$p0" = "$p1"

# A gang that cannot fit whole is never partly placed.
mlctl run --kind train --workers 3 --gpus 2 --name toobig --memory 64M "$MLS_ROOTFS" -- true >/dev/null
check "3x2-GPU A100+H100 gang fits (a1, a2, a3)" wait_for 10 job_state_is toobig succeeded

# Preemption: low-priority work fills every GPU (a gang on a1+a2, a 4-GPU
# job on a3); then a high-priority job needs four GPUs on one node.  Only
# evicting low2 helps, so only low2 goes, even though the gang's priority is
# lower still.
# low is pinned to the A100 nodes: binpack keeps nodes that model-constrained
# work of the mix (the A100 gang above) needs free while others fit, so an
# unconstrained gang would go to a3.
mlctl run --kind train --workers 2 --gpus 2 --priority -20 --name low --memory 64M \
	--constraint gpu=a100 "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "low gang runs" wait_for 10 job_state_is low running
mlctl run --gpus 4 --priority -10 --name low2 --memory 64M "$MLS_ROOTFS" -- sh -c 'echo "low2 run"; sleep 1000' >/dev/null
check "low2 runs" wait_for 10 job_state_is low2 running
check "low2 on a3" [ "$(mlctl -o json status low2 | jq -r '.tasks[0].node')" = a3 ]

# A job that would not fit even with preemption preempts nothing.
mlctl run --gpus 8 --priority 500 --name impossible "$MLS_ROOTFS" -- true >/dev/null
check "impossible job pending" wait_for 5 job_state_is impossible pending
sleep 0.5
check "nothing preempted for it" [ "$(mlctl -o json ls | jq '[.[] | select(.preemptions > 0)] | length')" = 0 ]
mlctl cancel impossible >/dev/null

mlctl run --gpus 4 --priority 100 --name high "$MLS_ROOTFS" -- sh -c 'sleep 0.5; echo high ran' >/dev/null
check "high runs and succeeds" wait_for 20 job_state_is high succeeded
check "low2 was preempted once" [ "$(mlctl -o json status low2 | jq .preemptions)" = 1 ]
check "the gang was not touched" [ "$(mlctl -o json status low | jq .preemptions)" = 0 ]
check "low gang still running" job_state_is low running
check "low2 requeued and running again" wait_for 20 job_state_is low2 running
# Each run has its own log: the first (attempt 0) and the latest.
ran_twice() { [ "$(mlctl logs low2 --attempt 0 | grep -c 'low2 run')$(mlctl logs low2 | grep -c 'low2 run')" = 11 ] && [ "$(mlctl -o json status low2 | jq '.tasks[0].attempt')" = 1 ]; }
check "low2 ran twice" wait_for 5 ran_twice
st=$(mlctl status low2)
check "status says it was requeued and why" grep -q "^requeued: 1 time (last: preempted by job [0-9]* (priority 100))" <<<"$st"
mlctl cancel low >/dev/null
mlctl cancel low2 >/dev/null
check "low cancelled" wait_for 10 job_state_is low cancelled
check "low2 cancelled" wait_for 10 job_state_is low2 cancelled

# Drain: nothing new lands on a drained node.
mlctl drain a3 >/dev/null
check "a3 shows drained" [ "$(mlctl -o json nodes | jq -r '.[] | select(.name == "a3") | .drained')" = true ]
mlctl run --gpus 4 --name wants-a3 "$MLS_ROOTFS" -- true >/dev/null
check "4-GPU job pending while a3 is drained" wait_for 5 job_state_is wants-a3 pending
mlctl uncordon a3 >/dev/null
check "placed after uncordon" wait_for 10 job_state_is wants-a3 succeeded

# Drain with --evict moves running work: the job is requeued and runs on
# another node.
mlctl run --wait --gpus 1 --name mover --memory 32M "$MLS_ROOTFS" -- sleep 1000 >/dev/null
from=$(mlctl -o json status mover | jq -r '.tasks[0].node')
out=$(mlctl drain --evict "$from")
check "drain --evict reports the job ($out)" grep -q "1 jobs requeued" <<<"$out"
moved() { local n; n=$(mlctl -o json status mover | jq -r '.tasks[0].node + "/" + .state'); [ "${n#*/}" = running ] && [ "${n%/*}" != "$from" ]; }
check "mover runs again elsewhere" wait_for 15 moved
check "status says it was evicted" grep -q "^requeued: 1 time (last: evicted from drained node $from)" <<<"$(mlctl status mover)"
mlctl cancel mover >/dev/null
check "mover cancelled" wait_for 10 job_state_is mover cancelled
mlctl uncordon "$from" >/dev/null

# Batch array with parallelism: ARRAY_INDEX per task, all succeed.
cat >"$T/array.yaml" <<YAML
name: shards
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'echo "shard \$ARRAY_INDEX"']
array: 6
parallelism: 2
resources: {memory: 32M, cpus: 0.1}
YAML
mlctl submit "$T/array.yaml" >/dev/null
check "array succeeds" wait_for 20 job_state_is shards succeeded
check "task 4 saw ARRAY_INDEX=4" [ "$(mlctl logs shards/4)" = "shard 4" ]

# Label constraints: zone=a is only a1.
mlctl run --gpus 1 --constraint zone=a --name in-zone-a --memory 64M "$MLS_ROOTFS" -- true >/dev/null
check "constrained job succeeds" wait_for 10 job_state_is in-zone-a succeeded
check "it ran on a1" [ "$(mlctl -o json status in-zone-a | jq -r '.tasks[0].node')" = a1 ]
mlctl run --constraint 'zone in (c, d)' --name nowhere "$MLS_ROOTFS" -- true >/dev/null
check "unsatisfiable constraint pending" wait_for 5 job_state_is nowhere pending
log "reason: $(job_field nowhere reason)"
check "reason names the constraint" grep -q "zone in (c,d)" <<<"$(job_field nowhere reason)"
err=$(mlctl run --constraint 'zone ~ a' --name badcons "$MLS_ROOTFS" -- true 2>&1)
check "bad constraint refused by the master" grep -q "constraints\[0\]" <<<"$err"
finish
