#!/usr/bin/env bash
# Team queues (mlmaster --queues): a queue that may borrow runs beyond its
# quota on another queue's idle GPUs (mlctl queues shows them as borrowed);
# when the owner needs them, the borrower's gang is preempted whole,
# requeued, and runs again once the owner's job is done.  A queue that may
# not borrow waits at its quota and says so; unknown queues are refused;
# a bad queues file stops mlmaster with the field named; fair-share usage
# survives a kill -9 of the master.
. "$(dirname "$0")/lib.sh"

cat >"$T/queues.yaml" <<'YAML'
queues:
  - {name: team-a, gpus: 2, weight: 1, borrow: true}
  - {name: team-b, gpus: 2}
  - {name: capped, gpus: 1, borrow: false}
fair_share_half_life: 1h
YAML

# A bad file: mlmaster refuses to start and names the field.
printf 'queues:\n  - {name: x, gpus: 2, gpuz: 3}\n' >"$T/bad.yaml"
out=$("$MLMASTER" --insecure --state-dir "$T/bad" --queues "$T/bad.yaml" 2>&1)
rc=$?
check "a bad queues file stops mlmaster (rc $rc)" [ "$rc" = 2 ]
check "and names the field ($out)" grep -q 'bad.yaml:2: queues\[0\].gpuz: unknown field' <<<"$out"
printf 'queues:\n  - {name: x, gpus: -1}\n' >"$T/bad.yaml"
out=$("$MLMASTER" --insecure --state-dir "$T/bad" --queues "$T/bad.yaml" 2>&1)
check "a negative quota is refused ($out)" grep -q 'queues\[0\].gpus: "-1" is not a whole number of GPUs' <<<"$out"

start_master --queues "$T/queues.yaml" || exit 1
start_agent a1 --gpus 4x80G || exit 1

q() { mlctl -o json queues | jq -r --arg q "$1" ".queues[] | select(.name == \$q) | .$2"; }

# Refusals at submission.
out=$(mlctl run --queue nope --gpus 1 --name x "$MLS_ROOTFS" -- true 2>&1)
check "an unknown queue is refused with the list ($out)" grep -q 'queue: unknown queue "nope" (queues: team-a, team-b, capped)' <<<"$out"
out=$(mlctl run --gpus 1 --name x "$MLS_ROOTFS" -- true 2>&1)
check "a job without a queue is refused when there is no default queue ($out)" grep -q 'queue: required on this cluster' <<<"$out"

# team-a's gang needs 4 GPUs: 2 of its own, 2 borrowed from team-b's idle quota.
mlctl run --queue team-a --kind train --workers 2 --gpus 2 --memory 64M --name a-gang \
	"$MLS_ROOTFS" -- sh -c 'echo "a-gang run"; sleep 1000' >/dev/null
check "team-a's gang runs on borrowed GPUs" wait_for 15 job_state_is a-gang running
check "team-a: 4 GPUs in use" [ "$(q team-a gpus_in_use)" = 4 ]
check "team-a: 2 borrowed" [ "$(q team-a borrowed)" = 2 ]
check "team-b: nothing in use" [ "$(q team-b gpus_in_use)" = 0 ]
mlctl queues | sed 's/^/#   /'

# team-b wants 2 GPUs of its quota: the borrower's gang is preempted whole.
# (submitted as a spec file: queue: is a spec field)
cat >"$T/b-job.yaml" <<YAML
name: b-job
kind: batch
image: $MLS_ROOTFS
command: [sh, -c, 'sleep 10']
queue: team-b
resources: {gpus: 2, memory: 64M}
YAML
mlctl submit "$T/b-job.yaml" >/dev/null
check "team-b's job runs" wait_for 20 job_state_is b-job running
# Counted once the whole gang has stopped (b-job may start on the GPUs the
# first task freed a moment before the second task's exit is in).
preempted_once() { [ "$(mlctl -o json status a-gang | jq .preemptions)" = 1 ]; }
check "a-gang was preempted once" wait_for 10 preempted_once
st=$(mlctl status a-gang)
check "and says team-b took its quota back" grep -q "queue team-b takes back GPUs of its quota (2) that queue team-a borrowed" <<<"$st"
check "a-gang is requeued, not lost" job_state_is a-gang pending
check "mlctl status names the queue" grep -q "^queue:    team-b$" <<<"$(mlctl status b-job)"
log "a-gang waits: $(job_field a-gang reason)"
check "a-gang may not borrow what team-b uses" grep -q "queue team-a would go 2 GPUs beyond its quota of 2" <<<"$(job_field a-gang reason)"
check "no task of a-gang holds a GPU" [ "$(mlctl -o json status a-gang | jq '[.tasks[] | select(.node != "")] | length')" = 0 ]
check "team-b: 2 in use, none borrowed" [ "$(q team-b gpus_in_use)/$(q team-b borrowed)" = 2/0 ]
check "team-a: 1 pending" [ "$(q team-a pending)" = 1 ]
check "b-job succeeds" wait_for 30 job_state_is b-job succeeded
check "a-gang runs again after b-job" wait_for 20 job_state_is a-gang running
ran_twice() { [ "$(mlctl -o json status a-gang | jq '.tasks[0].attempt')" = 1 ]; }
check "a-gang's second run is attempt 1" ran_twice

# A queue that may not borrow waits at its quota even with GPUs free.
mlctl cancel a-gang >/dev/null
check "a-gang cancelled" wait_for 10 job_state_is a-gang cancelled
mlctl run --queue capped --gpus 1 --memory 64M --name c1 "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "c1 runs" wait_for 10 job_state_is c1 running
mlctl run --queue capped --gpus 1 --memory 64M --name c2 "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "c2 pending" wait_for 5 job_state_is c2 pending
sleep 0.5
log "c2 waits: $(job_field c2 reason)"
check "c2 waits at capped's quota" grep -q "queue capped is at its quota: 1 of 1 GPUs in use, this job needs 1 (borrow: false)" <<<"$(job_field c2 reason)"
check "with 3 GPUs free" [ "$(mlctl -o json nodes | jq '[.[] | .gpus[] | select(.used_milli == 0)] | length')" = 3 ]
mlctl cancel c1 >/dev/null
check "c2 runs once c1 is gone" wait_for 15 job_state_is c2 running

# Usage is kept across a kill -9 of the master.
mlctl queues | sed 's/^/#   /'
before=$(q team-a gpu_hours)
check "team-a has used GPU-hours ($before)" awk -v u="$before" 'BEGIN { exit !(u > 0) }'
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
start_master --queues "$T/queues.yaml" || exit 1
after=$(q team-a gpu_hours)
log "team-a GPU-hours before $before, after restart $after"
check "team-a's usage survived (decay only)" awk -v a="$before" -v b="$after" 'BEGIN { exit !(b >= a * 0.99 && b <= a) }'
c0=$(q capped gpu_hours)
grown() { awk -v u="$(q capped gpu_hours)" -v v="$c0" 'BEGIN { exit !(u > v) }'; }
check "capped's usage goes on growing after the restart (c2 still runs)" wait_for 10 grown
finish
