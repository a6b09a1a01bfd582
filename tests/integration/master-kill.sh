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

: >"$T/acked"
killed_mid=0
for ((r = 1; r <= ROUNDS; r++)); do
	before=$(wc -l <"$T/acked")
	burst_submit mlctl 2s "r$r" "$PER_ROUND" &
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
	if ! check "round $r: every acknowledged job is there once, the runnable ones succeeded" wait_for 120 burst_all_done mlctl; then
		burst_show_missing
		break
	fi
	check "round $r: no duplicate job names" [ -z "$(burst_dup_names)" ]
	check "round $r: no task started twice" burst_started_once
done
log "$(wc -l <"$T/acked") jobs acknowledged in $ROUNDS rounds; $killed_mid kills came in the middle of a burst"
check "most kills came in the middle of a burst" [ "$killed_mid" -ge $((ROUNDS / 2)) ]
finish
