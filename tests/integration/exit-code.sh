#!/usr/bin/env bash
# A failing command's exit code reaches `mlctl status`, and the job fails
# with a reason that says so.  A command that cannot start fails the task.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1

mlctl run --name bad "$MLS_ROOTFS" -- sh -c 'echo failing; exit 3' >/dev/null
check "job fails" wait_for 10 job_state_is bad failed
st=$(mlctl -o json status bad)
check "exit code 3 recorded" [ "$(jq '.tasks[0].exit_code' <<<"$st")" = 3 ]
check "task state exited" [ "$(jq -r '.tasks[0].state' <<<"$st")" = exited ]
check "reason names the code" [ "$(jq -r '.reason' <<<"$st")" = "task 0 exited with code 3" ]
check "plain status shows the code" grep -Eq '^0 +exited +a1 .* 3 ' <<<"$(mlctl status bad)"

mlctl run --name noprog "$MLS_ROOTFS" -- /no/such/program >/dev/null
check "missing program fails the job" wait_for 10 job_state_is noprog failed
r=$(job_field noprog reason)
check "reason says why ($r)" grep -q "no/such/program" <<<"$r"

mlctl run --name noimage /no/such/image -- true >/dev/null
check "missing image fails the job" wait_for 10 job_state_is noimage failed
r=$(job_field noimage reason)
check "reason names the image ($r)" grep -q "/no/such/image: no such folder" <<<"$r"
# A gang fails for the worker that failed, not for the ones stopped because
# of it (they end "killed", with no reason of their own).
mlctl run --kind train --workers 2 --name gfail "$MLS_ROOTFS" -- \
	sh -c '[ "$RANK" = 1 ] && exit 3; exec sleep 1000' >/dev/null
check "the gang fails" wait_for 15 job_state_is gfail failed
r=$(job_field gfail reason)
check "its reason names the failed worker ($r)" [ "$r" = "task 1 exited with code 3" ]
finish
