#!/usr/bin/env bash
# Prometheus metrics of a real master and agent (scraped over HTTP), checked
# after known events (a placement, a restart, a node loss), and `mlctl top
# -o json` against what containers are known to use: one that writes 200 MiB
# to its /tmp (page cache, charged to its cgroup), one that burns a core.
. "$(dirname "$0")/lib.sh"

MP=$((30000 + RANDOM % 2000))
start_master --metrics-listen "127.0.0.1:$MP" || exit 1
AP1=$((MP + 2000))
start_agent a1 --gpus 2x16G:T4 --metrics-listen "127.0.0.1:$AP1" || exit 1
start_agent a2 --labels box=b || exit 1

scrape() { http_get "127.0.0.1:$1" /metrics; }
# value PORT SERIES: the sample value of one series line (exact match of
# name and labels).
value() { scrape "$1" | awk -v s="$2" '$1 == s { print $2 }'; }
is() { [ "$(value "$1" "$2")" = "$3" ]; }
at_least() { local v; v=$(value "$1" "$2"); [ -n "$v" ] && awk -v v="$v" -v n="$3" 'BEGIN { exit !(v >= n) }'; }

scrape_ok() { scrape "$1" >/dev/null; }
check "master metrics answer" scrape_ok "$MP"
check "two ready nodes" is "$MP" 'mlsched_nodes{state="ready"}' 2
check "two GPUs in all" is "$MP" 'mlsched_gpus{kind="total"}' 2
check "a GPU's utilization series" is "$MP" 'mlsched_gpu_utilization_ratio{node="a1",gpu="0"}' 0.00
out=$(http_get "127.0.0.1:$MP" /nope 2>&1 || true)
check "another path is not found" [ -z "$out" ]

mlctl run --wait --name g --gpus 1 "$MLS_ROOTFS" -- sleep 1000 >/dev/null || fail "run g"
check "a placement counted" at_least "$MP" mlsched_placements_total 1
check "a submission counted" at_least "$MP" mlsched_submitted_total 1
check "one GPU allocated" is "$MP" 'mlsched_gpus{kind="allocated"}' 1.000
check "submit-to-running observed" at_least "$MP" mlsched_submit_to_running_seconds_count 1
check "store commits observed" at_least "$MP" mlsched_store_commit_seconds_count 1
check "scheduler passes observed" at_least "$MP" mlsched_sched_pass_seconds_count 1
jid=$(job_field g id)
check "the agent lists its task" is "$AP1" "mlagent_tasks" 1
check "the agent counts the start" at_least "$AP1" mlagent_containers_started_total 1
check "the task's memory series" at_least "$AP1" "mlagent_task_memory_bytes{job=\"$jid\",task=\"0\"}" 1

# A restart under restart: on-failure.
cat >"$T/r.yaml" <<YAML
name: r
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'exit 3']
restart: {policy: on-failure, max: 1}
resources: {memory: 32M}
YAML
mlctl submit "$T/r.yaml" >/dev/null
check "the restart is counted" wait_for 10 at_least "$MP" mlsched_restarts_total 1

# What top shows of containers whose use is known.
cat >"$T/mem.yaml" <<YAML
name: mem
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'dd if=/dev/zero of=/tmp/fill bs=1M count=200 2>/dev/null; exec sleep 1000']
resources: {memory: 512M}
constraints: [box=b]
YAML
cat >"$T/burn.yaml" <<YAML
name: burn
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'while :; do :; done']
resources: {memory: 32M, cpus: 1}
constraints: [box=b]
YAML
mlctl submit --wait "$T/mem.yaml" >/dev/null || fail "submit mem"
mlctl submit --wait "$T/burn.yaml" >/dev/null || fail "submit burn"
top_field() { mlctl top -o json | jq -r --arg j "$1" ".jobs[] | select(.name == \$j) | .$2"; }
mem_ok() { local v; v=$(top_field mem mem_used); [ -n "$v" ] && [ "$v" -ge $((180 << 20)) ] && [ "$v" -le $((320 << 20)) ]; }
cpu_ok() { local v; v=$(top_field burn cpu_pct); [ -n "$v" ] && awk -v v="$v" 'BEGIN { exit !(v >= 60 && v <= 130) }'; }
check "top shows about 200 MiB for mem" wait_for 10 mem_ok
log "top: mem uses $(top_field mem mem_used) bytes, burn $(top_field burn cpu_pct)% CPU"
check "top shows about one core for burn" wait_for 10 cpu_ok
check "top lists the nodes" [ "$(mlctl top -o json | jq '.nodes | length')" = 2 ]
check "top prints a table once" grep -q "^NODE" <<<"$(mlctl top --once)"
check "nodes shows GPU utilization" grep -q "GPU%" <<<"$(mlctl nodes)"

# A node loss.
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
check "the node loss is counted" wait_for 5 is "$MP" mlsched_node_losses_total 1
check "one node lost" is "$MP" 'mlsched_nodes{state="lost"}' 1
check "the reschedule is counted" is "$MP" mlsched_reschedules_total 1
out=$("$MLMASTER" --metrics-listen nonsense --state-dir "$T/x" --insecure 2>&1)
check "a bad --metrics-listen is refused" grep -q "is not HOST:PORT" <<<"$out"
finish
