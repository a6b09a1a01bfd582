#!/usr/bin/env bash
# Node pools: work pending for capacity bursts into the cloud pool (exactly
# the nodes it needs, through contrib/cloud/local-provision), the jobs run,
# and the idle cloud nodes are released; work pinned to on-prem or capped
# in cost never bursts; new work prefers the cheaper pool.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pools-lib.bash"

cat >"$T/pools.yaml" <<YAML
burst_after: 1s
pools:
  - name: onprem
    cost_per_gpu_hour: 1.0
  - name: cloud
    labels: {zone: us-east1}
    cost_per_gpu_hour: 4.0
    min: 0
    max: 3
    template: {gpus: 4x80G:H100, cpus: 4, memory: 4G}
    provision: $REPO/contrib/cloud/local-provision
    release: $REPO/contrib/cloud/local-release
    boot_timeout: 30s
    idle: 3s
YAML

# A bad pools file is refused with the field named.
sed 's/max: 3/max: 3\n    maxx: 4/' "$T/pools.yaml" >"$T/bad.yaml"
out=$("$MLMASTER" --insecure --state-dir "$T/bad" --pools "$T/bad.yaml" 2>&1)
check "unknown pool field refused ($out)" grep -q "bad.yaml:[0-9]*: pools\[1\].maxx: unknown field" <<<"$out"

start_master --pools "$T/pools.yaml" || exit 1
start_agent onprem-1 --gpus 2x80G --labels pool=onprem || exit 1
check "mlctl pools lists both pools" wait_for 5 pool_is cloud .name cloud

# 10 GPUs of work: 2 on-prem, 8 need two 4-GPU cloud nodes.
for i in 1 2 3 4 5; do
	mlctl run --gpus 2 --name "j$i" "$MLS_ROOTFS" -- sleep 5 >/dev/null
done
check "two cloud nodes join" wait_for 40 pool_is cloud .ready 2
check "every job runs or ran" wait_for 30 bash -c "
	for i in 1 2 3 4 5; do
		s=\$($MLCTL_BIN --master tcp://127.0.0.1:$CTL_PORT ${SECURE/1/--key $T/master/admin.key} -o json status j\$i | jq -r .state)
		[ \"\$s\" = running ] || [ \"\$s\" = succeeded ] || exit 1
	done"
check "exactly 2 nodes provisioned" pool_is cloud .provisioned 2
check "2 agents started by the provider" [ "$(cloud_agents)" = 2 ]
nodes=$(for i in 2 3 4 5; do mlctl -o json status "j$i" | jq -r '.tasks[0].node'; done | sort | uniq -c)
log "placements: $(tr '\n' ' ' <<<"$nodes")"
check "j1 ran on-prem" [ "$(mlctl -o json status j1 | jq -r '.tasks[0].node')" = onprem-1 ]
check "the others on two cloud nodes" [ "$(for i in 2 3 4 5; do mlctl -o json status "j$i" | jq -r '.tasks[0].node'; done | grep -c '^cloud-')" = 4 ]
check "the provision reason names the wait" grep -q "pending for capacity" <<<"$(pool_field cloud .last_provision)"
mlctl pools | sed 's/^/#   /'

# Done: after idle (3s) both are released and their agents stopped.
check "jobs succeed" wait_for 30 job_state_is j5 succeeded
check "cloud nodes released after idle" wait_for 30 pool_is cloud '.provisioned_nodes | length' 0
check "released twice" pool_is cloud .released 2
check "release reason says idle" grep -q "idle for 3s" <<<"$(pool_field cloud .last_release)"
check "the provider's agents are gone" wait_for 10 bash -c "[ \"\$(cd $CLOUD && ls */agent.pid 2>/dev/null | wc -l)\" = 0 ]"
check "four hook runs, all exit 0" [ "$(pool_field cloud '[.hooks[] | select(.exit_code == 0)] | length')" = 4 ]
mlctl pools cloud | sed 's/^/#   /'

# Pinned to on-prem: waits for on-prem, never bursts.  Capped in cost below
# the cloud's price: the same, even with a cloud GPU free, and the reason
# says so.  cloud-static joins the cloud pool by its label (1 GPU).
start_agent cloud-static --gpus 1x80G --labels pool=cloud || exit 1
mlctl run --gpus 2 --name hold --constraint pool=onprem "$MLS_ROOTFS" -- sleep 10 >/dev/null
check "hold runs" wait_for 10 job_state_is hold running
mlctl run --gpus 2 --name pinned --constraint pool=onprem "$MLS_ROOTFS" -- true >/dev/null
cat >"$T/capped.yaml" <<YAML
name: capped
kind: batch
image: $MLS_ROOTFS
command: ["true"]
resources: {gpus: 1}
max_cost_per_gpu_hour: 2
YAML
mlctl submit "$T/capped.yaml" >/dev/null
check "pinned and capped wait" wait_for 10 bash -c "grep -q 'name=pinned pending' $T/master.log && grep -q 'name=capped pending' $T/master.log"
sleep 2 # past burst_after (1s): a burst would have been decided by now
check "pinned is pending" job_state_is pinned pending
check "capped is pending, though cloud-static has a free GPU" job_state_is capped pending
check "capped's reason names the cap ($(job_field capped reason))" grep -q "1 node above max_cost_per_gpu_hour 2" <<<"$(job_field capped reason)"
check "no burst for them" pool_is cloud .provisioned 2
check "nothing booting" pool_is cloud .booting 0
check "pinned runs on-prem once hold ends" wait_for 30 job_state_is pinned succeeded
check "capped too" wait_for 20 job_state_is capped succeeded
check "capped ran on-prem" [ "$(mlctl -o json status capped | jq -r '.tasks[0].node')" = onprem-1 ]
check "still no burst" pool_is cloud .provisioned 2

# Cost-aware placement: a free on-prem node (2 GPUs) and a free cloud node
# (1 GPU, which binpack alone would fill first): the new job goes on-prem.
mlctl run --gpus 1 --name cheap "$MLS_ROOTFS" -- sleep 30 >/dev/null
check "cheap runs" wait_for 10 job_state_is cheap running
check "on-prem, the cheaper pool" [ "$(mlctl -o json status cheap | jq -r '.tasks[0].node')" = onprem-1 ]
mlctl pools | sed 's/^/#   /'
finish
