#!/usr/bin/env bash
# Pools whose provisioning fails: a hook that exits non-zero, and one whose
# agent never joins.  Each failure is released, reported by mlctl pools
# (exit code, stderr tail, reason), retried later with a growing back-off,
# and a pool never holds more than max nodes.  Bad pools files are refused
# with the field named.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pools-lib.bash"

cat >"$T/fail-provision" <<'SH'
#!/bin/sh
echo "creating $MLSCHED_NODE in $MLSCHED_POOL" >&2
echo "ERROR: quota exceeded for H100 in us-east1" >&2
exit 3
SH
cat >"$T/ghost-provision" <<'SH'
#!/bin/sh
# Accepted by the "cloud", but the machine never boots.
echo "$MLSCHED_NODE accepted" >&2
echo "$MLSCHED_NODE" >>"$(dirname "$0")/ghost.provisioned"
SH
cat >"$T/release" <<'SH'
#!/bin/sh
echo "$MLSCHED_ACTION $MLSCHED_NODE" >>"$(dirname "$0")/released"
SH
chmod +x "$T/fail-provision" "$T/ghost-provision" "$T/release"

bad() { # bad NAME EXPECTED-MESSAGE: a pools file body must be refused so
	printf '%s\n' "$2" >"$T/$1.yaml"
	local out
	out=$("$MLMASTER" --insecure --state-dir "$T/bad" --pools "$T/$1.yaml" 2>&1)
	check "refused: $1 ($out)" grep -q -- "$3" <<<"$out"
}
bad nopools "burst_after: 5s" "pools: expected a list"
bad badname "pools: [{name: Big}]" "pools\[0\].name: \"Big\""
bad dup "pools: [{name: a}, {name: a}]" 'pool "a" is defined twice'
bad onprem-max "pools: [{name: a, max: 3}]" "pools\[0\].max: only for pools the master provisions"
bad nomax "pools: [{name: c, provision: $T/release, release: $T/release, template: {gpus: 4x80G, cpus: 4, memory: 4G}}]" "pools\[0\].max: required"
bad minmax "pools: [{name: c, provision: $T/release, release: $T/release, max: 1, min: 2, template: {gpus: 4x80G, cpus: 4, memory: 4G}}]" "pools\[0\].min: must be at most max (1)"
bad tmpl "pools: [{name: c, provision: $T/release, release: $T/release, max: 1, template: {gpus: 4y80G, cpus: 4, memory: 4G}}]" "pools\[0\].template.gpus: GPU group"
bad hook "pools: [{name: c, provision: $T/nope, release: $T/release, max: 1, template: {gpus: 4x80G, cpus: 4, memory: 4G}}]" "pools\[0\].provision: $T/nope: no such file"
bad label "pools: [{name: c, labels: {pool: x}}]" "pools\[0\].labels.pool: the pool label is the pool's name"
bad cost "pools: [{name: c, cost_per_gpu_hour: cheap}]" "pools\[0\].cost_per_gpu_hour: \"cheap\" is not a price"
bad dur "burst_after: soon
pools: [{name: c}]" "burst_after: \"soon\" is not a duration"

cat >"$T/pools.yaml" <<YAML
burst_after: 1s
pools:
  - name: flaky
    cost_per_gpu_hour: 3
    max: 2
    template: {gpus: 2x80G, cpus: 2, memory: 2G}
    provision: $T/fail-provision
    release: $T/release
  - name: ghost
    cost_per_gpu_hour: 3
    max: 1
    template: {gpus: 2x80G, cpus: 2, memory: 2G}
    provision: $T/ghost-provision
    release: $T/release
    boot_timeout: 2s
YAML
start_master --pools "$T/pools.yaml" || exit 1

# Two jobs pinned to flaky (room for both on one node), one to ghost.
mlctl run --gpus 1 --name f1 --constraint pool=flaky "$MLS_ROOTFS" -- true >/dev/null
mlctl run --gpus 1 --name f2 --constraint pool=flaky "$MLS_ROOTFS" -- true >/dev/null
mlctl run --gpus 2 --name g1 --constraint pool=ghost "$MLS_ROOTFS" -- true >/dev/null

over_max=0
sample() {
	local f g
	f=$(pool_field flaky '[.nodes[] | select(.provisioned)] | length')
	g=$(pool_field ghost '[.nodes[] | select(.provisioned)] | length')
	[ "$f" -le 2 ] && [ "$g" -le 1 ] || over_max=1
}
start=$SECONDS
while ((SECONDS - start < 9)); do
	sample
	sleep 0.3
done
check "never more than max nodes at once" [ "$over_max" = 0 ]

log "flaky: $(pool_field flaky '[.hooks[] | "\(.action) \(.node) \(.exit_code)"] | join(", ")')"
check "flaky: failed provisions recorded" [ "$(pool_field flaky .failed)" -ge 2 ]
check "flaky: the hook's exit code is kept" [ "$(pool_field flaky '[.hooks[] | select(.action == "provision" and .exit_code == 3)] | length')" -ge 2 ]
check "flaky: and its stderr" pool_is flaky '.hooks[0].stderr | contains("quota exceeded")' true
check "flaky: released with the reason" grep -q "provision hook exited 3: ERROR: quota exceeded" <<<"$(pool_field flaky .last_release)"
check "flaky: one node per try (one need)" [ "$(pool_field flaky '[.hooks[] | select(.action == "provision")] | length')" = "$(pool_field flaky .provisioned)" ]
# burst_after 1s doubling: tries near 1, 2, 4, 8 s: at most 4 in 9 s (no
# back-off would be 9 or more).
check "flaky: retried with back-off ($(pool_field flaky .provisioned) tries)" [ "$(pool_field flaky .provisioned)" -le 4 ]
check "ghost: never joined, released" grep -q "did not join within boot_timeout 2s" <<<"$(pool_field ghost .last_release)"
check "ghost: release hook ran" grep -q "release ghost-1" "$T/released"
check "ghost: counted as a failure" [ "$(pool_field ghost .failed)" -ge 1 ]
check "mlctl pools flaky shows the exit code and stderr" bash -c "$(declare -f mlctl); CTL_PORT=$CTL_PORT SECURE=$SECURE T=$T MLCTL_BIN=$MLCTL_BIN mlctl pools flaky | grep -q 'exit 3' && CTL_PORT=$CTL_PORT SECURE=$SECURE T=$T MLCTL_BIN=$MLCTL_BIN mlctl pools flaky | grep -q 'stderr: ERROR: quota exceeded'"
mlctl pools flaky | sed 's/^/#   /'
check "jobs still pending" job_state_is f1 pending
check "unknown pool refused" bash -c "! $(declare -f mlctl); CTL_PORT=$CTL_PORT SECURE=$SECURE T=$T MLCTL_BIN=$MLCTL_BIN mlctl pools nosuch 2>&1 | grep -q 'no pool \"nosuch\"'"
finish
