#!/usr/bin/env bash
# A container runs through mlctl -> mlmaster -> mlagent -> runc, and its
# output comes back through `mlctl logs`, also while it runs (-f).
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x80G:A100 || exit 1
start_agent a2 --gpus 4x40G:H100 || exit 1

out=$(mlctl run --wait --name hello "$MLS_ROOTFS" -- sh -c 'echo "hello from $MLSCHED_JOB_NAME"; echo to-stderr >&2')
check "run acknowledged" grep -q "submitted" <<<"$out"
check "job succeeds" wait_for 10 job_state_is hello succeeded
logs=$(mlctl logs hello)
check "stdout in mlctl logs" grep -qx "hello from hello" <<<"$logs"
check "stderr in mlctl logs" grep -qx "to-stderr" <<<"$logs"
check "task exited 0" [ "$(mlctl -o json status hello | jq '.tasks[0].exit_code')" = 0 ]

# Follow a running task to its end: lines printed after we start following
# must arrive, and -f must return by itself when the task ends.
mlctl run --wait --name ticker "$MLS_ROOTFS" -- sh -c 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done' >/dev/null
check "ticker is running" job_state_is ticker running
follow=$(mlctl_within 20 logs -f ticker)
check "logs -f returned on its own" [ $? -eq 0 ]
check "logs -f saw every line" [ "$(grep -c '^tick' <<<"$follow")" -eq 5 ]
check "logs -f kept order" [ "$(tail -n1 <<<"$follow")" = "tick 5" ]

# GPUs: a 2-GPU job gets two concrete indices in its environment.
mlctl run --wait --gpus 2 --name gpujob "$MLS_ROOTFS" -- sh -c 'echo "cuda=$CUDA_VISIBLE_DEVICES nvidia=$NVIDIA_VISIBLE_DEVICES"' >/dev/null
check "gpu job succeeds" wait_for 10 job_state_is gpujob succeeded
g=$(mlctl logs gpujob)
check "CUDA_VISIBLE_DEVICES names two GPUs ($g)" grep -Eq '^cuda=[0-9],[0-9] nvidia=[0-9],[0-9]$' <<<"$g"
check "status lists the same GPUs" [ "$(mlctl -o json status gpujob | jq -r '.tasks[0].gpus | map(tostring) | join(",")')" = "$(sed 's/^cuda=\([^ ]*\) .*/\1/' <<<"$g")" ]

# mlctl ls shows all three.
check "ls lists three jobs" [ "$(mlctl -o json ls | jq length)" -eq 3 ]

# Logs across attempts: each run of a task keeps its own log.
cat >"$T/crash.yaml" <<YAML
name: crash
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'echo "run \$MLSCHED_ATTEMPT"; exit 1']
restart: {policy: on-failure, max: 2}
resources: {memory: 16M}
YAML
mlctl submit "$T/crash.yaml" >/dev/null
check "crash fails after its restarts" wait_for 15 job_state_is crash failed
check "the latest run's log by default" [ "$(mlctl logs crash)" = "run 2" ]
check "the first run's log with --attempt 0" [ "$(mlctl logs crash --attempt 0)" = "run 0" ]
check "the second run's log with --attempt 1" [ "$(mlctl logs crash --attempt 1)" = "run 1" ]
out=$(mlctl logs crash --attempt 7 2>&1)
check "an attempt not on record is refused, naming those kept" grep -Eq "has no attempt 7 on record \(attempts kept: 0 on a[12], 1 on a[12], 2 on a[12]\)" <<<"$out"
check "status lists where each run's log is" grep -Eq "^task 0 logs: attempt 0 on a[12], attempt 1 on a[12], attempt 2 on a[12]" <<<"$(mlctl status crash)"
check "three log files on the node" [ "$(ls "$T"/agent-a1/logs/ "$T"/agent-a2/logs/ | grep -c '^[0-9]*-0\.[0-2]\.log$')" -ge 3 ]
finish
