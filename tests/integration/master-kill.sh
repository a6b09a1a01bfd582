#!/usr/bin/env bash
# kill -9 of a single (sqlite) master at random moments during bursts of
# submissions, ROUNDS times: after each restart every acknowledged job is
# there exactly once, the ones that can run succeed, and no task was started
# twice on the agents (a lost order or an order sent again would show as a
# missing or a double start).  One job in ten runs a real container; the
# others ask for a GPU the agents do not have and stay pending, so that ten
# bursts of 200 stay cheap on a 2-core machine.
. "$(dirname "$0")/lib.sh"

ROUNDS=${MLS_KILL_ROUNDS:-10}
PER_ROUND=${MLS_KILL_JOBS:-200}

start_master || exit 1
start_agent a1 || exit 1
start_agent a2 || exit 1
check "agents ready" wait_for 10 node_ready a2

# submit PREFIX N: N submissions from four clients at once; the names that
# were acknowledged go to $T/acked (one short append each, so the clients'
# lines do not mix).  Submissions while the master is down fail (not
# acknowledged) and the clients go on.
submit() {
	local c
	for c in 0 1 2 3; do
		(
			local k gpus
			for ((k = c + 1; k <= $2; k += 4)); do
				gpus=1
				[ $((k % 10)) = 0 ] && gpus=0
				mlctl --timeout 2s run --name "$1-$k" --gpus "$gpus" --memory 16M \
					"$MLS_ROOTFS" -- true >/dev/null 2>>"$T/submit.err" &&
					echo "$1-$k" >>"$T/acked"
			done
		) &
	done
	wait
}
all_done() {
	mlctl -o json ls --all >"$T/ls.json" || return 1
	jq -e --slurpfile want <(jq -R . "$T/acked" | jq -s .) '
		[.[] | select(.name as $n | $want[0] | index($n))] as $got |
		($got | length) == ($want[0] | length) and
		($got | all(if (.name | test("0$")) then .state == "succeeded" else .state == "pending" end))' \
		"$T/ls.json" >/dev/null
}
dup_names() { jq -r '.[].name' "$T/ls.json" | sort | uniq -d; }
# Every job in the listing was started exactly once, over both agents.
started_once() {
	local id n bad=0
	cat "$T"/agent-a*.log >"$T/agents.all"
	for id in $(jq -r '.[] | select(.state == "succeeded") | .id' "$T/ls.json"); do
		n=$(grep -c "job=$id task=0 container=mls-$id-0 started" "$T/agents.all")
		[ "$n" = 1 ] || { log "job $id started $n times"; bad=1; }
	done
	[ "$bad" = 0 ]
}
show_missing() {
	jq -c --slurpfile want <(jq -R . "$T/acked" | jq -s .) \
		'.[] | select((.name as $n | $want[0] | index($n)) and .state != "succeeded" and .state != "pending") | [.id, .name, .state, .reason]' \
		"$T/ls.json" | head -10 | while read -r l; do log "not done: $l"; done
}

: >"$T/acked"
killed_mid=0
for ((r = 1; r <= ROUNDS; r++)); do
	before=$(wc -l <"$T/acked")
	submit "r$r" "$PER_ROUND" &
	spid=$!
	# A random moment inside the burst (0.1 s to 0.9 s in).
	sleep "$(printf '0.%d' $((RANDOM % 9 + 1)))"
	kill -9 "$MASTER_PID"
	wait "$MASTER_PID" 2>/dev/null
	MASTER_PID=
	at_kill=$(wc -l <"$T/acked")
	[ "$at_kill" -gt "$before" ] && [ "$at_kill" -lt $((before + PER_ROUND)) ] && killed_mid=$((killed_mid + 1))
	start_master || { fail "round $r: the master does not start again"; break; }
	wait "$spid"
	log "round $r: killed after $((at_kill - before)) of $PER_ROUND acknowledged; $(($(wc -l <"$T/acked") - before)) in the round"
	if ! check "round $r: every acknowledged job is there once, the runnable ones succeeded" wait_for 120 all_done; then
		show_missing
		break
	fi
	check "round $r: no duplicate job names" [ -z "$(dup_names)" ]
	check "round $r: no task started twice" started_once
done
log "$(wc -l <"$T/acked") jobs acknowledged in $ROUNDS rounds; $killed_mid kills came in the middle of a burst"
check "most kills came in the middle of a burst" [ "$killed_mid" -ge $((ROUNDS / 2)) ]
finish
