#!/usr/bin/env bash
# The store's file system fills up: the master refuses
# new work with the store's reason, keeps answering reads from what was
# committed, leaves running containers alone, and takes work again by
# itself once the store can be written.  (A read-only file system takes
# the same path, any failed commit does; the kernel will not remount the
# tmpfs read-only while the master holds its files open for writing, so
# that case is not staged here.)
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/small"
mount -t tmpfs -o size=3m tmpfs "$T/small" || { log "cannot mount a tmpfs"; exit 1; }
start_master --store "sqlite:$T/small/state.db" || exit 1
start_agent a1 --gpus 2x80G || exit 1
check "agent ready" wait_for 10 node_ready a1

mlctl run --wait --name before "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "a job runs before the disk fills" job_state_is before running

# Fill the file system; sqlite may still have room in its WAL, so submit
# until the first refusal (each submission also adds a record).
dd if=/dev/zero of="$T/small/fill" bs=64k >/dev/null 2>&1
refused= acked=0
for i in $(seq 1 200); do
	if out=$(mlctl run --gpus 8 --name "full-$i" --env "PAD=$(head -c 2000 /dev/zero | tr '\0' x)" \
		"$MLS_ROOTFS" -- true 2>&1); then
		acked=$((acked + 1))
	else
		refused=$out
		break
	fi
done
log "acknowledged before the refusal: $acked; refusal: $refused"
check "a submission is refused once the disk is full" [ -n "$refused" ]
check "the refusal names the store and why" grep -q "store cannot be written.*full" <<<"$refused"
check "the master is still alive" kill -0 "$MASTER_PID"
check "reads are answered: ls" mlctl ls
check "the running job is still running" job_state_is before running
n=$(mlctl -o json ls | jq length)
check "every acknowledged job is there ($n)" [ "$n" -eq $((acked + 1)) ]
check "a cancel is refused too" sh -c "! mlctl cancel before 2>/dev/null"
check "the master log says why" master_says 0 "store write failed (sqlite.*full"
check "the container was not touched" grep -qx "mls-1-0" <<<"$(runc --root "$T/agent-a1/runc" list -q)"

rm -f "$T/small/fill"
check "new work is taken again once there is room" \
	wait_for 10 mlctl run --name after "$MLS_ROOTFS" -- true
check "the job after recovery runs to the end" wait_for 10 job_state_is after succeeded
check "the agent is back in service" wait_for 10 node_ready a1
check "the job from before still runs" job_state_is before running
check "the master log says it recovered" master_says 0 "the store takes writes again"

mlctl cancel before >/dev/null
check "cancel works after recovery" wait_for 10 job_state_is before cancelled
finish
