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
finish
