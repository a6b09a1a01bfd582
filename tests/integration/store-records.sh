#!/usr/bin/env bash
# Per-task records: a job is "jobs/<id>" plus one "tasks/<id>/<index>" per
# task, and a turn writes only the records that changed, so the progress of
# one task of a 300-task array is a small write, not the whole job.  A master
# restart reads the job back whole.
. "$(dirname "$0")/lib.sh"

start_master --log-level debug --debug store || exit 1
start_agent a1 || exit 1

cat >"$T/arr.yaml" <<YAML
name: arr
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'sleep 0.2']
array: 300
parallelism: 2
resources: {memory: 16M}
YAML
mlctl submit "$T/arr.yaml" >/dev/null || fail "submit"
ntasks() { sqlite3 "$T/master/state.db" "select count(*) from kv where key like 'tasks/%'"; }
check "300 task records" [ "$(ntasks)" = 300 ]
done_some() { [ "$(mlctl -o json status arr | jq '[.tasks[] | select(.state == "exited")] | length')" -ge 10 ]; }
check "tasks run" wait_for 30 done_some
# The submission wrote every task; later turns only what changed.
counts=$(grep -o 'commit: [0-9]* records' "$T/master.log" | grep -o '[0-9]*')
big=$(sort -n <<<"$counts" | tail -n1)
# every commit after the submission's (the largest)
later=$(awk -v big="$big" 'seen { if ($1 > m) m = $1 } $1 == big { seen = 1 } END { print m + 0 }' <<<"$counts")
log "commits: largest $big records, largest after the submission $later"
check "the submission wrote the job whole ($big records)" [ "$big" -ge 301 ]
check "later commits are small (largest: $later records)" [ "$later" -le 10 ]
mlctl cancel arr >/dev/null
check "cancelled" wait_for 15 job_state_is arr cancelled
before=$(mlctl -o json status arr | jq -c '[.tasks[] | [.task, .state, .attempt, .exit_code]]')
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
start_master || exit 1
after=$(mlctl -o json status arr | jq -c '[.tasks[] | [.task, .state, .attempt, .exit_code]]')
check "every task reads back the same after a restart" [ "$before" = "$after" ]
finish
