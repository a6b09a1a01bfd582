#!/usr/bin/env bash
# kill -9 of the master loses no acknowledged job: every job mlctl saw
# acknowledged is there after a restart, in the same state or further on,
# and a task that was running keeps running and can still be cancelled.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x80G || exit 1

mlctl run --wait --name longrun "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "longrun runs" job_state_is longrun running
acked=()
for i in $(seq 1 20); do
	if out=$(mlctl run --gpus 8 --name "queued-$i" "$MLS_ROOTFS" -- true); then
		acked+=("queued-$i")
	fi
done
check "all 20 submissions acknowledged" [ "${#acked[@]}" -eq 20 ]
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
start_master || exit 1

names=$(mlctl -o json ls | jq -r '.[].name')
for n in "${acked[@]}"; do
	grep -qx "$n" <<<"$names" || fail "acknowledged job $n lost after kill -9"
done
check "21 jobs after restart" [ "$(mlctl -o json ls | jq length)" -eq 21 ]
check "queued jobs still pending" [ "$(mlctl -o json ls | jq '[.[] | select(.state == "pending")] | length')" -eq 20 ]
check "agent comes back" wait_for 5 node_ready a1
check "longrun still running" job_state_is longrun running
check "its container still runs" grep -qx "mls-1-0" <<<"$(runc --root "$T/agent-a1/runc" list -q)"
check "new ids continue after the old ones" [ "$(mlctl run --name after "$MLS_ROOTFS" -- true | sed 's/^job \([0-9]*\).*/\1/')" = 22 ]
mlctl cancel longrun >/dev/null
check "cancel after restart works" wait_for 10 job_state_is longrun cancelled

# Kill the master in the middle of a burst of submissions: whatever was
# acknowledged must be there.
acked=()
( for i in $(seq 1 400); do
	mlctl --timeout 1s run --gpus 8 --name "burst-$i" "$MLS_ROOTFS" -- true >/dev/null 2>&1 || break
	echo "burst-$i"
done ) >"$T/acked" &
burst=$!
wait_for 10 grep -q burst-20 "$T/acked"
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
wait "$burst"
start_master || exit 1
names=$(mlctl -o json ls | jq -r '.[].name')
lost=0
while read -r n; do
	grep -qx "$n" <<<"$names" || { lost=1; log "lost $n"; }
done <"$T/acked"
n=$(wc -l <"$T/acked")
log "$n burst submissions were acknowledged before the kill"
check "the kill came in the middle of the burst ($n)" test "$n" -ge 20 -a "$n" -lt 400
check "no acknowledged burst job lost" [ "$lost" = 0 ]
finish
