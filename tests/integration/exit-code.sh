#!/usr/bin/env bash
# A failing command's exit code reaches `mlctl status`, and the job fails
# with a reason that says so.  A command that cannot start, a missing image
# and a runc that fails each fail the task at once, with a reason that says
# which and on which node.
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
check "and on which node" grep -q "^task 0 failed on node a1: " <<<"$r"

mlctl run --name noimage /no/such/image -- true >/dev/null
check "missing image fails the job" wait_for 10 job_state_is noimage failed
r=$(job_field noimage reason)
check "reason names the image ($r)" grep -q "/no/such/image: no such folder" <<<"$r"
check "and the node" grep -q "on node a1: " <<<"$r"
# A gang fails for the worker that failed, not for the ones stopped because
# of it (they end "killed", with no reason of their own).
mlctl run --kind train --workers 2 --name gfail "$MLS_ROOTFS" -- \
	sh -c '[ "$RANK" = 1 ] && exit 3; exec sleep 1000' >/dev/null
check "the gang fails" wait_for 15 job_state_is gfail failed
r=$(job_field gfail reason)
check "its reason names the failed worker ($r)" [ "$r" = "task 1 exited with code 3" ]

# A node whose runc fails to create containers (the rest of runc works, so
# the agent starts): the task fails at once with runc's words.
cat >"$T/badrunc" <<'SH'
#!/bin/sh
# runc's own errors go, as JSON lines, to the --log file it is given.
log= prev=
for a; do
	[ "$prev" = --log ] && log=$a
	prev=$a
	if [ "$a" = run ]; then
		[ -n "$log" ] && echo '{"level":"error","msg":"simulated failure: cannot create the container"}' >>"$log"
		exit 1
	fi
done
exec runc "$@"
SH
chmod +x "$T/badrunc"
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
start_agent b1 --runc "$T/badrunc" || exit 1
check "b1 ready" wait_for 10 node_ready b1
mlctl run --name badrunc "$MLS_ROOTFS" -- true >/dev/null
check "runc failing fails the job" wait_for 10 job_state_is badrunc failed
r=$(job_field badrunc reason)
check "reason names runc's message and the node ($r)" \
	grep -q "^task 0 failed on node b1: .*simulated failure: cannot create the container" <<<"$r"
finish
