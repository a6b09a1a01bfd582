#!/usr/bin/env bash
# Containers outlive their mlagent: each runs under its own shim, and an
# agent restarted with the same --name and --state-dir (after kill -9 or
# SIGTERM) takes them over.  The master keeps their tasks running, their exit
# codes and logs still arrive, and cancel still stops them.  An exit recorded
# while agent and master were both down arrives when they are back; a task
# whose shim is gone too is reported failed and its container removed.  With
# --stop-tasks-on-exit a SIGTERM stops the containers.  An agent back after
# its node was lost has its old containers stopped before the next attempt
# of their task starts.
#
# The master loses a node 500 ms after its agent's connection closes, so each
# restart starts the new agent as soon as the old one is gone; had the node
# been lost, its tasks would show as lost, which is checked.
. "$(dirname "$0")/lib.sh"

root=$T/agent-a1/runc
alog=$T/agent-a1.log

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1

# restart_agent SIGNAL [mlagent options...]: stop a1 with SIGNAL, start it again.
restart_agent() {
	local sig=$1
	shift
	kill -"$sig" "${AGENT_PID[a1]}"
	wait "${AGENT_PID[a1]}" 2>/dev/null
	start_agent a1 --gpus 1x16G "$@"
}
cpid() { runc --root "$root" state "$1" 2>/dev/null | jq -r .pid; }
alive() { kill -0 "$1" 2>/dev/null; }
task_field() { mlctl -o json status "$1" | jq -r ".tasks[0].$2"; }
no_containers() { [ -z "$(runc --root "$root" list -q)" ]; }
# reattached ID N: the agent log says N times that it took ID over.
reattached() { [ "$(grep -c "container=$1 reattached" "$alog")" = "$2" ]; }

# 1. kill -9: the exit code and the output still reach the master.
mlctl run --wait --name seven "$MLS_ROOTFS" -- sh -c 'sleep 2; echo done; exit 7' >/dev/null
check "seven runs" job_state_is seven running
pid=$(cpid mls-1-0)
check "its container has a pid ($pid)" [ "$pid" -gt 0 ]
restart_agent 9 || exit 1
check "the new agent reattached it" wait_for 5 reattached mls-1-0 1
check "the same container process runs" alive "$pid"
check "runc knows the same pid" [ "$(cpid mls-1-0)" = "$pid" ]
check "seven still running" job_state_is seven running
check "seven ends with its exit code" wait_for 10 job_state_is seven failed
check "exit code 7 recorded" [ "$(task_field seven exit_code)" = 7 ]
check "task exited, never lost" [ "$(task_field seven state)" = exited ]
check "mlctl logs has its output" grep -qx done <<<"$(mlctl logs seven)"
check "its container is removed" wait_for 5 no_containers

# 2. A long task survives a SIGTERM restart and a kill -9 restart, then
# cancel stops it.
mlctl run --wait --name sleeper "$MLS_ROOTFS" -- sleep 1000 >/dev/null
pid=$(cpid mls-2-0)
restart_agent TERM || exit 1
check "after SIGTERM: reattached" wait_for 5 reattached mls-2-0 1
check "after SIGTERM: the same process runs" alive "$pid"
restart_agent 9 || exit 1
check "after kill -9: reattached" wait_for 5 reattached mls-2-0 2
check "after kill -9: the same process runs" alive "$pid"
check "sleeper still running" job_state_is sleeper running
mlctl cancel sleeper >/dev/null
check "sleeper cancelled" wait_for 10 job_state_is sleeper cancelled
check "sleeper's task killed" [ "$(task_field sleeper state)" = killed ]
check "runc lists nothing" wait_for 5 no_containers
check "the process is gone" bash -c "! kill -0 $pid 2>/dev/null"

# A stop under way when the agent restarts still ends in SIGKILL once the
# grace period (1 s) is over: sleep, as PID 1, ignores SIGTERM.
mlctl run --wait --name stubborn "$MLS_ROOTFS" -- sleep 1000 >/dev/null
pid=$(cpid mls-3-0)
mlctl cancel stubborn >/dev/null
check "the agent records the stop" wait_for 5 test -f "$T/agent-a1/tasks/mls-3-0/stop"
restart_agent 9 || exit 1
check "stubborn reattached" wait_for 5 reattached mls-3-0 1
check "stubborn cancelled" wait_for 10 job_state_is stubborn cancelled
check "stubborn's process is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "no node was lost" bash -c "! grep -q 'lost' '$T/master.log'"

# 3. A task whose shim dies while the agent is down is failed, not left
# running unsupervised, and its container is removed.
mlctl run --wait --name orphan "$MLS_ROOTFS" -- sleep 1000 >/dev/null
pid=$(cpid mls-4-0)
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
kill -9 "$(cat "$T/agent-a1/tasks/mls-4-0/shim.pid")"
start_agent a1 --gpus 1x16G || exit 1
check "orphan fails" wait_for 5 job_state_is orphan failed
r=$(job_field orphan reason)
check "the reason says why ($r)" grep -q "container state lost across an agent restart" <<<"$r"
check "its container is removed" wait_for 5 no_containers
check "its process is gone" wait_for 5 bash -c "! kill -0 $pid 2>/dev/null"

# 4. An exit recorded by the shim while master and agent were both down is
# reported when they come back.
mlctl run --wait --name late "$MLS_ROOTFS" -- sh -c 'sleep 0.5; exit 5' >/dev/null
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
check "the shim records the exit" wait_for 5 test -f "$T/agent-a1/tasks/mls-5-0/exit"
start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1
check "late ends with its exit code" wait_for 10 job_state_is late failed
check "exit code 5 recorded" [ "$(task_field late exit_code)" = 5 ]
check "its folder is removed" wait_for 5 test ! -e "$T/agent-a1/tasks/mls-5-0"

# 5. --stop-tasks-on-exit: SIGTERM stops the containers.
restart_agent TERM --stop-tasks-on-exit || exit 1
mlctl run --wait --name stopped "$MLS_ROOTFS" -- sleep 1000 >/dev/null
pid=$(cpid mls-6-0)
check "stopped runs" alive "$pid"
kill -TERM "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
check "the agent says so" grep -q "stopping 1 containers (--stop-tasks-on-exit)" "$alog"
check "runc lists nothing" no_containers
check "the process is gone" bash -c "! kill -0 $pid 2>/dev/null"
check "the job ends" wait_for 5 job_state_is stopped failed
# 6. An agent back too late: the master has rescheduled its task (node loss)
# and places the next attempt on the same node.  The old container, taken
# over by the new agent, is a stale copy and is killed at once; then the new
# attempt starts (both use the same container id; if the start order comes
# first, the agent holds it until the old one has ended).
start_agent a1 --gpus 1x16G || exit 1
cat >"$T/again.yaml" <<YAML
name: again
kind: batch
image: $MLS_ROOTFS
command: [sleep, "1000"]
restart: {policy: on-failure, max: 1}
YAML
mlctl submit --wait "$T/again.yaml" >/dev/null
pid=$(cpid mls-7-0)
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
node_lost() { mlctl -o json nodes | jq -e '.[] | select(.name == "a1" and .state == "lost")' >/dev/null; }
check "a1 is lost" wait_for 5 node_lost
check "the master reschedules the task" wait_for 5 grep -q "job=7 name=again reschedule 1 of 3: node a1 lost" "$T/master.log"
start_agent a1 --gpus 1x16G || exit 1
check "the old attempt is stopped" wait_for 5 bash -c "! kill -0 $pid 2>/dev/null"
second() { [ "$(mlctl -o json status again | jq -r '.state + "/" + (.tasks[0].attempt | tostring)')" = running/1 ]; }
check "the next attempt runs" wait_for 10 second
check "the old copy was killed at once" grep -q "job=7 task=0 container=mls-7-0 killed at once: stale copy" "$alog"
new_runs() { alive "$(cpid mls-7-0)"; }
check "its container runs" wait_for 5 new_runs
check "no restart was used" [ "$(job_field again restarts)" = 0 ]
mlctl cancel again >/dev/null
check "again cancelled" wait_for 10 job_state_is again cancelled
check "runc lists nothing" wait_for 5 no_containers
check "mlagent --help documents it" grep -q -- "--stop-tasks-on-exit" <<<"$("$MLAGENT" --help)"
finish
