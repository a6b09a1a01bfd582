#!/usr/bin/env bash
# A multi-role gang that waits for capacity bursts into a cloud pool sized
# for its roles, not for the job's default resources: a chief that fits
# on-prem and two 4-GPU workers need exactly two 4-GPU cloud nodes, and the
# whole gang then runs.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pools-lib.bash"

cat >"$T/pools.yaml" <<YAML
burst_after: 1s
pools:
  - name: onprem
    cost_per_gpu_hour: 1.0
  - name: cloud
    cost_per_gpu_hour: 4.0
    min: 0
    max: 3
    template: {gpus: 4x80G:H100, cpus: 4, memory: 4G}
    provision: $REPO/contrib/cloud/local-provision
    release: $REPO/contrib/cloud/local-release
    boot_timeout: 30s
    idle: 30s
YAML
start_master --pools "$T/pools.yaml" || exit 1
start_agent onprem-1 --gpus 2x80G --labels pool=onprem || exit 1
check "the cloud pool is there" wait_for 5 pool_is cloud .name cloud

# The job's own resources ask for no GPU: only the roles' do.
cat >"$T/gang.yaml" <<YAML
name: big-gang
kind: train
image: $MLS_ROOTFS
command: [sleep, "1000"]
resources: {memory: 32M}
roles:
  chief: {resources: {gpus: 1, memory: 32M}}
  worker: {count: 2, resources: {gpus: 4, memory: 32M}}
YAML
mlctl submit "$T/gang.yaml" >/dev/null || fail "submit big-gang"
check "two cloud nodes join for the workers" wait_for 40 pool_is cloud .ready 2
check "the gang runs whole" wait_for 30 job_state_is big-gang running
check "exactly 2 nodes provisioned" pool_is cloud .provisioned 2
st=$(mlctl -o json status big-gang)
check "the chief on-prem" [ "$(jq -r '.tasks[0].node' <<<"$st")" = onprem-1 ]
check "the workers on two cloud nodes" \
	[ "$(jq -r '.tasks[1,2].node' <<<"$st" | grep '^cloud-' | sort -u | grep -c .)" = 2 ]
mlctl cancel big-gang >/dev/null
finish
