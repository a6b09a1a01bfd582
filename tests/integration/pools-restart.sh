#!/usr/bin/env bash
# The master killed -9 in the middle of a burst (provision hooks running,
# nodes booting) and restarted: the booting nodes are remembered, their
# agents join the new master process, the jobs run, and no node is
# provisioned twice.  Then killed again while a release is due: the
# released node's record is finished after the restart.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pools-lib.bash"

# A slow "cloud": the machine takes 2 s before local-provision starts it.
cat >"$T/slow-provision" <<SH
#!/bin/sh
sleep 2
echo "\$MLSCHED_NODE" >>"$T/provisioned"
exec $REPO/contrib/cloud/local-provision
SH
chmod +x "$T/slow-provision"
cat >"$T/pools.yaml" <<YAML
burst_after: 500ms
pools:
  - name: onprem
    cost_per_gpu_hour: 1
  - name: cloud
    cost_per_gpu_hour: 4
    max: 3
    template: {gpus: 2x80G, cpus: 2, memory: 2G}
    provision: $T/slow-provision
    release: $REPO/contrib/cloud/local-release
    boot_timeout: 30s
    idle: 2s
YAML
start_master --pools "$T/pools.yaml" || exit 1

# No on-prem node: 2 jobs of 2 GPUs need two cloud nodes.
mlctl run --gpus 2 --name r1 "$MLS_ROOTFS" -- sleep 8 >/dev/null
mlctl run --gpus 2 --name r2 "$MLS_ROOTFS" -- sleep 8 >/dev/null
check "two provision hooks started" wait_for 15 bash -c "[ \$(grep -c 'provision hook started' $T/master.log) = 2 ]"
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
log "master killed with the hooks running"
start_master --pools "$T/pools.yaml" || exit 1
check "the booting node(s) were remembered" grep -q "pool=cloud: [12] booting" "$T/master.log"
check "both jobs run" wait_for 40 bash -c "$(declare -f mlctl job_field job_state_is); CTL_PORT=$CTL_PORT SECURE=$SECURE T=$T MLCTL_BIN=$MLCTL_BIN; { job_state_is r1 running || job_state_is r1 succeeded; } && { job_state_is r2 running || job_state_is r2 succeeded; }"
check "each node provisioned once" [ "$(sort "$T/provisioned" | uniq -d | wc -l)" = 0 ]
check "two nodes in all" [ "$(wc -l <"$T/provisioned")" = 2 ]
check "the store counts 2" pool_is cloud .provisioned 2
check "two agents run" [ "$(cloud_agents)" = 2 ]

# Idle after the jobs: released.  Kill the master as soon as the first
# release is decided; the restarted one runs it again (idempotent) and
# forgets neither node.
check "jobs done" wait_for 30 job_state_is r2 succeeded
from=$(stat -c %s "$T/master.log")
check "a release starts" wait_for 20 master_says "$from" "release hook started"
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
start_master --pools "$T/pools.yaml" || exit 1
check "both released in the end" wait_for 30 pool_is cloud '.provisioned_nodes | length' 0
check "their agents are stopped" wait_for 10 bash -c "[ \"\$(cd $CLOUD && ls */agent.pid 2>/dev/null | wc -l)\" = 0 ]"
check "still no node provisioned twice" [ "$(wc -l <"$T/provisioned")" = 2 ]
check "a hook cut off by the kill is reported" pool_is cloud '[.hooks[] | select(.stderr | contains("master restarted"))] | length > 0' true
mlctl pools cloud | sed 's/^/#   /'
finish
