#!/usr/bin/env bash
# A malformed spec is refused with a message naming file, line and field,
# and nothing is stored; bad command lines exit 2 with a message.
. "$(dirname "$0")/lib.sh"
# This test checks mlctl itself: the build under test, not MLS_CTL.
MLCTL_BIN=$MLCTL_UNDER_TEST

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1

cat >"$T/job.yaml" <<YAML
name: broken
kind: train
image: $MLS_ROOTFS
command: [sh, -c, "true"]
resources:
  memory: 12Q
YAML
err=$(mlctl submit "$T/job.yaml" 2>&1)
rc=$?
check "submit exits 2" [ "$rc" -eq 2 ]
check "message names file, line and field ($err)" [ "$err" = "mlctl: $T/job.yaml:6: resources.memory: \"12Q\" is not a size" ]
check "nothing listed" [ "$(mlctl -o json ls | jq length)" -eq 0 ]
check "nothing stored" [ "$(sqlite3 "$T/master/state.db" "select count(*) from kv where key like 'jobs/%'")" = 0 ]

# mlctl run checks its flags with the same rules the master applies.
err=$(mlctl run --memory 0 --name zero "$MLS_ROOTFS" -- true 2>&1)
check "zero memory refused" [ $? -eq 2 ]
log "$err"
check "nothing stored after a bad run" [ "$(mlctl -o json ls | jq length)" -eq 0 ]

# Bad command lines.
for args in "frobnicate" "run" "run --gpus x $MLS_ROOTFS -- true" "run --memory 12Q $MLS_ROOTFS -- true" "status" "logs" "submit" "cancel" "run $MLS_ROOTFS"; do
	# shellcheck disable=SC2086
	err=$(mlctl $args 2>&1)
	rc=$?
	[ "$rc" -eq 2 ] || fail "mlctl $args: exit $rc, want 2"
	grep -q '^mlctl: ' <<<"$err" || fail "mlctl $args: no message ($err)"
done
check "every verb has --help" bash -c "for v in run submit ls status logs cancel nodes; do \"$MLCTL_BIN\" \$v --help | grep -q '^usage: mlctl' || exit 1; done"
err=$(mlctl status no-such-job 2>&1)
check "unknown job exits 1" [ $? -eq 1 ]
check "unknown job message" [ "$err" = 'mlctl: no job "no-such-job"' ]
mlctl run --name dup "$MLS_ROOTFS" -- sleep 1000 >/dev/null
err=$(mlctl run --name dup "$MLS_ROOTFS" -- true 2>&1)
check "duplicate active name refused" grep -q 'job name "dup" is in use by job' <<<"$err"
mlctl cancel dup >/dev/null
check "dup cancelled" wait_for 10 job_state_is dup cancelled
err=$(timeout 10 "$MLAGENT" --insecure --runc /nonexistent/runc --state-dir "$T/norunc" --name norunc 2>&1)
check "an agent without a working runc refuses to start" grep -q "does not run.*install runc" <<<"$err"
check "master refuses to start without keys or --insecure" bash -c "! \"$MLMASTER\" --state-dir $T/x 2>/dev/null"
finish
