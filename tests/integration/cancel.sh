#!/usr/bin/env bash
# cancel stops a running container (SIGTERM, then SIGKILL after the grace
# period: sleep as PID 1 ignores SIGTERM) and runc no longer lists it.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1
root=$T/agent-a1/runc

mlctl run --wait --name sleeper "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "sleeper runs" job_state_is sleeper running
check "runc lists the container" grep -qx "mls-1-0" <<<"$(runc --root "$root" list -q)"
pid=$(runc --root "$root" state mls-1-0 | jq .pid)
check "container process exists" kill -0 "$pid"

out=$(mlctl cancel sleeper)
check "cancel acknowledged" grep -q "cancel requested" <<<"$out"
check "job cancelled" wait_for 10 job_state_is sleeper cancelled
check "task killed" [ "$(mlctl -o json status sleeper | jq -r '.tasks[0].state')" = killed ]
check "runc no longer lists it" [ -z "$(runc --root "$root" list -q)" ]
check "the process is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "cancelling again is harmless" mlctl cancel sleeper

# A pending job cancels at once.
mlctl run --gpus 4 --name waiting "$MLS_ROOTFS" -- true >/dev/null
check "waiting job pending" wait_for 5 job_state_is waiting pending
mlctl cancel waiting >/dev/null
check "pending job cancelled" wait_for 5 job_state_is waiting cancelled
finish
