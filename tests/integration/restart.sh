#!/usr/bin/env bash
# restart: policies.  A batch task that keeps failing runs 1 + max times and
# then fails the job; a training gang whose worker fails once restarts whole
# and succeeds (MLSCHED_ATTEMPT tells a run which one it is); a serving
# replica that exits is started again on its own while the other serves.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x16G || exit 1
start_agent a2 --gpus 2x16G || exit 1

cat >"$T/flaky.yaml" <<YAML
name: flaky
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'echo "run \$MLSCHED_ATTEMPT"; exit 3']
restart: {policy: on-failure, max: 2}
resources: {memory: 32M}
YAML
mlctl submit "$T/flaky.yaml" >/dev/null
check "flaky fails in the end" wait_for 20 job_state_is flaky failed
# Each run keeps its own log.
runs() { for a in 0 1 2; do mlctl logs flaky --attempt "$a"; done | tr '\n' ' '; }
check "it ran three times" [ "$(runs)" = "run 0 run 1 run 2 " ]
check "two restarts used" [ "$(mlctl -o json status flaky | jq .restarts)" = 2 ]
check "the reason is the last exit" [ "$(job_field flaky reason)" = "task 0 exited with code 3" ]
check "status shows the restarts" grep -q "^restart:  on-failure, 2 of 2 used (last: task 0 exited with code 3)" <<<"$(mlctl status flaky)"

cat >"$T/gang.yaml" <<YAML
name: gang
kind: train
image: $MLS_ROOTFS
command: [sh, -c, 'echo "rank \$RANK attempt \$MLSCHED_ATTEMPT"; if [ "\$RANK" = 1 ] && [ "\$MLSCHED_ATTEMPT" = 0 ]; then exit 5; fi; sleep 0.5']
workers: 2
restart: {policy: on-failure, max: 1}
resources: {gpus: 1, memory: 32M}
YAML
mlctl submit "$T/gang.yaml" >/dev/null
check "the gang succeeds after one restart" wait_for 20 job_state_is gang succeeded
check "one restart used" [ "$(mlctl -o json status gang | jq .restarts)" = 1 ]
# rank 0 never failed; its run is attempt 1 because the gang restarted whole.
# (The log shows the latest run's node: the restart may land elsewhere.)
check "rank 0 restarted with the gang" grep -q "^rank 0 attempt 1$" <(mlctl logs gang/0)
check "rank 1's second run was attempt 1" grep -q "^rank 1 attempt 1$" <(mlctl logs gang/1)

cat >"$T/serve.yaml" <<YAML
name: web
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'echo "replica \$MLSCHED_TASK_INDEX up"; if [ "\$MLSCHED_TASK_INDEX" = 0 ] && [ "\$MLSCHED_ATTEMPT" = 0 ]; then sleep 0.5; exit 1; fi; sleep 1000']
replicas: 2
restart: {policy: always, max: 3}
resources: {memory: 32M}
YAML
mlctl submit "$T/serve.yaml" >/dev/null
back() { [ "$(mlctl -o json status web | jq -r '[.tasks[] | select(.state == "running")] | length')" = 2 ] && [ "$(mlctl -o json status web | jq .restarts)" = 1 ]; }
check "replica 0 restarted, both running" wait_for 20 back
check "replica 1 never stopped" [ "$(mlctl logs web/1 | grep -c up)" = 1 ]
check "replica 0 came up twice" [ "$(mlctl logs web/0 --attempt 0 | grep -c up)$(mlctl logs web/0 | grep -c up)" = 11 ]
check "the replicas are on different nodes" [ "$(mlctl -o json status web | jq -r '[.tasks[].node] | unique | length')" = 2 ]
check "the job stays running" job_state_is web running
mlctl cancel web >/dev/null
check "web cancelled" wait_for 10 job_state_is web cancelled
finish
