#!/usr/bin/env bash
# Multi-role training gangs (roles:): a parameter-server job (chief, two
# workers, one ps) spans two agents as one gang; every task prints a
# TF_CONFIG whose cluster lists the four host:port entries (the same in every
# task, distinct, and where the tasks really run) and whose task names its
# own role and index; chief and workers form the torch world (chief is rank
# 0). mlctl status shows each task's role and index, and the roles survive a
# master restart.  A gang with a role that cannot fit does not start at all
# and its reason names the role.  An optional evaluator that does not fit
# does not hold the gang back, and is placed later, when room appears,
# without touching the running gang.  A failing role restarts the gang
# whole.  When the required roles succeed (or,
# with a chief, the chief does), what still runs is stopped and the job
# succeeds.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x16G --cpus 4000 || exit 1
start_agent a2 --gpus 2x16G --cpus 4000 || exit 1

cat >"$T/ps.yaml" <<YAML
name: ps-job
kind: train
image: $MLS_ROOTFS
command: [sh, -c, 'echo "TF_CONFIG=\$TF_CONFIG"; echo "RANK=\${RANK:-none} WORLD_SIZE=\${WORLD_SIZE:-none} MASTER_PORT=\${MASTER_PORT:-none} ROLE=\$MLSCHED_ROLE/\$MLSCHED_ROLE_INDEX"; exec sleep 1000']
resources: {memory: 32M}
roles:
  chief:  {count: 1, resources: {gpus: 1, memory: 32M}}
  worker: {count: 2, resources: {gpus: 1, memory: 32M}}
  ps:     {count: 1, resources: {cpus: 1, memory: 64M}}
YAML
mlctl submit --wait "$T/ps.yaml" >/dev/null || fail "submit ps-job"
check "ps-job running" job_state_is ps-job running
st=$(mlctl -o json status ps-job)
check "four tasks" [ "$(jq '.tasks | length' <<<"$st")" = 4 ]
check "on both agents" [ "$(jq -r '.tasks[].node' <<<"$st" | sort -u | tr '\n' ' ')" = "a1 a2 " ]
check "roles and indices in status" \
	[ "$(jq -r '.tasks[] | "\(.role)/\(.role_index)"' <<<"$st" | tr '\n' ' ')" = "chief/0 worker/0 worker/1 ps/0 " ]
check "mlctl status shows ROLE" grep -q "^1 *worker/0 *running" <<<"$(mlctl status ps-job)"
check "the ps task holds no GPU" [ "$(jq '.tasks[3].gpus | length' <<<"$st")" = 0 ]

# Where each task really is: node address and port.
addr() { mlctl -o json nodes | jq -r --arg n "$1" '.[] | select(.name == $n) | .address'; }
declare -a where
for i in 0 1 2 3; do
	n=$(jq -r ".tasks[$i].node" <<<"$st")
	where[i]="$(addr "$n"):$(jq -r ".tasks[$i].port" <<<"$st")"
done
tf_of() { mlctl logs "ps-job/$1" | sed -n 's/^TF_CONFIG=//p' | head -n1; }
printed() { [ -n "$(tf_of "$1")" ]; }
for i in 0 1 2 3; do
	check "task $i printed TF_CONFIG" wait_for 10 printed "$i"
done
want_cluster=$(jq -cn --arg c "${where[0]}" --arg w0 "${where[1]}" --arg w1 "${where[2]}" \
	--arg p "${where[3]}" '{chief: [$c], worker: [$w0, $w1], ps: [$p]}')
tasks=("chief 0" "worker 0" "worker 1" "ps 0")
for i in 0 1 2 3; do
	tf=$(tf_of "$i")
	check "task $i: cluster lists the four tasks where they run" \
		[ "$(jq -c '.cluster' <<<"$tf")" = "$want_cluster" ]
	check "task $i: task names its role and index (${tasks[i]})" \
		[ "$(jq -r '"\(.task.type) \(.task.index)"' <<<"$tf")" = "${tasks[i]}" ]
done
check "four distinct host:port entries" \
	[ "$(jq -r '.[][]' <<<"$want_cluster" | sort -u | grep -c .)" = 4 ]
env_of() { mlctl logs "ps-job/$1" | grep '^RANK=' | head -n1; }
cport=$(jq -r '.tasks[0].port' <<<"$st")
check "chief is rank 0 of the torch world" \
	[ "$(env_of 0)" = "RANK=0 WORLD_SIZE=3 MASTER_PORT=$cport ROLE=chief/0" ]
check "worker 1 is rank 2" [ "$(env_of 2)" = "RANK=2 WORLD_SIZE=3 MASTER_PORT=$cport ROLE=worker/1" ]
check "ps is outside the torch world" [ "$(env_of 3)" = "RANK=none WORLD_SIZE=none MASTER_PORT=none ROLE=ps/0" ]

# The roles are part of the stored spec: a master killed and restarted
# still knows them, and the gang keeps running as it was.
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
start_master || exit 1
check "ps-job still running after a master restart" wait_for 10 job_state_is ps-job running
st2=$(mlctl -o json status ps-job)
check "the spec keeps its roles" \
	[ "$(jq -r '.spec.roles | keys_unsorted | join(" ")' <<<"$st2")" = "chief worker ps" ]
check "same tasks, same places" \
	[ "$(jq -c '[.tasks[] | [.role, .role_index, .node, .port, .attempt]]' <<<"$st2")" = \
	  "$(jq -c '[.tasks[] | [.role, .role_index, .node, .port, .attempt]]' <<<"$st")" ]

# A higher-priority job that needs two GPUs on one node preempts the gang
# whole: every role's task stops, none keeps running, and the gang comes back
# whole (a new attempt of every task) once the room is free again.
mlctl run --kind train --name urgent --priority 100 --gpus 2 --memory 32M "$MLS_ROOTFS" -- \
	sleep 1000 >/dev/null || fail "run urgent"
check "urgent runs" wait_for 15 job_state_is urgent running
states() { mlctl -o json status ps-job | jq -r '[.tasks[].state] | unique | join(",")'; }
# (urgent may start as soon as two GPUs on one node are free, while the
# gang's other tasks are still stopping.)
requeued() { [ "$(states)" = none ]; }
check "ps-job requeued whole: no task of any role left running" wait_for 10 requeued
check "ps-job pending" job_state_is ps-job pending
mlctl cancel urgent >/dev/null
check "ps-job placed again" wait_for 15 job_state_is ps-job running
check "every role's task runs its next attempt" \
	[ "$(mlctl -o json status ps-job | jq -r '[.tasks[] | "\(.state)/\(.attempt)"] | unique | join(",")')" = running/1 ]

# A role that can never fit holds the whole gang back, and says which role.
cat >"$T/big.yaml" <<YAML
name: big-ps
kind: train
image: $MLS_ROOTFS
command: [sleep, "1000"]
resources: {memory: 32M}
roles:
  worker: {count: 1}
  ps: {count: 1, resources: {cpus: 64, memory: 32M}}
YAML
mlctl submit "$T/big.yaml" >/dev/null || fail "submit big-ps"
reason_says() { job_field "$1" reason | grep -q "$2"; }
check "big-ps pending, the reason names role ps" \
	wait_for 5 reason_says big-ps "role ps: needs 64 CPUs on one node; largest node has 4"
check "big-ps is pending" job_state_is big-ps pending
check "no task of big-ps started (not even the worker that fits)" \
	[ "$(mlctl -o json status big-ps | jq -r '[.tasks[].state] | unique | join(",")')" = none ]
mlctl cancel big-ps >/dev/null

# The last free GPU goes to a filler; an evaluator that wants a GPU does
# not fit, and its gang runs without it.
mlctl run --wait --kind train --name filler --gpus 1 --memory 32M "$MLS_ROOTFS" -- sleep 1000 \
	>/dev/null || fail "run filler"
cat >"$T/ev.yaml" <<YAML
name: ev-job
kind: train
image: $MLS_ROOTFS
command: [sh, -c, 'echo "TF_CONFIG=\$TF_CONFIG"; exec sleep 1000']
resources: {memory: 32M}
roles:
  worker: {count: 1}
  evaluator: {optional: true, resources: {gpus: 1, memory: 32M}}
YAML
mlctl submit "$T/ev.yaml" >/dev/null || fail "submit ev-job"
check "ev-job runs without its evaluator" wait_for 10 job_state_is ev-job running
task_state() { mlctl -o json status "$1" | jq -r ".tasks[$2].state"; }
check "the evaluator is not placed" [ "$(task_state ev-job 1)" = none ]
check "the reason names the evaluator" \
	wait_for 5 reason_says ev-job "role evaluator: needs 1 GPU on one node; best node has 0 free"
wattempt=$(mlctl -o json status ev-job | jq -r '.tasks[0].attempt')

# Room appears: the evaluator is placed; the gang is not touched.
mlctl cancel filler >/dev/null
ev_running() { [ "$(task_state ev-job 1)" = running ]; }
check "the evaluator is placed once a GPU is free" wait_for 10 ev_running
check "the worker kept its run" \
	[ "$(mlctl -o json status ev-job | jq -r '.tasks[0] | "\(.state) \(.attempt)"')" = "running $wattempt" ]
evtf() { mlctl logs ev-job/1 | sed -n 's/^TF_CONFIG=//p' | head -n1; }
evprinted() { [ -n "$(evtf)" ]; }
check "the evaluator printed TF_CONFIG" wait_for 10 evprinted
check "the evaluator's task is evaluator/0" [ "$(evtf | jq -r '"\(.task.type)/\(.task.index)"')" = evaluator/0 ]
check "the evaluator is not in the cluster" [ "$(evtf | jq -c '.cluster | keys')" = '["worker"]' ]
check "ev-job running with its evaluator" job_state_is ev-job running

# The required roles succeed: the optional task still running is stopped
# and the job succeeds.
cat >"$T/done.yaml" <<YAML
name: done-job
kind: train
image: $MLS_ROOTFS
resources: {memory: 32M}
roles:
  worker: {count: 1, command: [sh, -c, 'sleep 1; echo trained']}
  evaluator: {optional: true, command: [sleep, "1000"]}
YAML
mlctl submit "$T/done.yaml" >/dev/null || fail "submit done-job"
check "done-job succeeds although its evaluator would run on" wait_for 15 job_state_is done-job succeeded
check "its evaluator ended" [ "$(task_state done-job 1)" != running ]

# A ps that fails restarts the gang whole (the chief too), under restart:;
# out of restarts, the job fails with the ps's exit.
cat >"$T/rs.yaml" <<YAML
name: rs-job
kind: train
image: $MLS_ROOTFS
resources: {memory: 32M}
restart: {policy: on-failure, max: 1}
roles:
  chief: {command: [sleep, "1000"]}
  ps: {command: [sh, -c, 'sleep 1; exit 3']}
YAML
mlctl submit "$T/rs.yaml" >/dev/null || fail "submit rs-job"
check "rs-job fails once out of restarts" wait_for 20 job_state_is rs-job failed
check "its reason is the ps's exit" [ "$(job_field rs-job reason)" = "task 1 exited with code 3" ]
check "one restart, of the whole gang: the chief ran twice" \
	[ "$(mlctl -o json status rs-job | jq -r '"\(.restarts) \(.tasks[0].attempt) \(.tasks[1].attempt)"')" = "1 1 1" ]

# With a chief, the chief decides (parameter servers never exit): the chief
# succeeds, the ps still running is stopped, the job succeeds.
cat >"$T/chief.yaml" <<YAML
name: chief-job
kind: train
image: $MLS_ROOTFS
resources: {memory: 32M}
roles:
  chief: {command: [sh, -c, 'sleep 1; echo trained']}
  ps: {command: [sleep, "1000"]}
YAML
mlctl submit "$T/chief.yaml" >/dev/null || fail "submit chief-job"
check "chief-job succeeds when its chief does" wait_for 15 job_state_is chief-job succeeded
check "its ps was stopped" [ "$(task_state chief-job 1)" != running ]
finish
