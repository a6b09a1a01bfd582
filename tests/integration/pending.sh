#!/usr/bin/env bash
# A job that needs more GPUs than any node has stays pending and says why;
# a gang that fits only across nodes is placed all at once or not at all.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --gpus 2x80G:A100 || exit 1
start_agent a2 --gpus 4x40G:H100 || exit 1

mlctl run --gpus 8 --name big "$MLS_ROOTFS" -- true >/dev/null
check "big job is pending" wait_for 5 job_state_is big pending
check "reason says what is missing ($(job_field big reason))" grep -q "needs 8 GPUs on one node; largest node has 4$" <<<"$(job_field big reason)"
sleep 1
check "still pending a second later" job_state_is big pending
check "no task was placed" [ "$(mlctl -o json status big | jq -r '.tasks[0].node')" = "" ]

# Two workers of 3 GPUs each: only a2 could hold one; all or nothing means
# neither runs, and a1's GPUs stay free.
mlctl run --kind train --workers 2 --gpus 3 --name gang "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "gang is pending" wait_for 5 job_state_is gang pending
log "gang: $(job_field gang reason)"
check "no worker placed" [ "$(mlctl -o json status gang | jq '[.tasks[] | select(.node != "")] | length')" = 0 ]
check "a2 keeps its 4 GPUs free" [ "$(mlctl -o json nodes | jq '[.[] | select(.name == "a2") | .gpus[] | select(.used_milli == 0)] | length')" = 4 ]

# Memory that no node has.
mlctl run --memory 100T --name huge "$MLS_ROOTFS" -- true >/dev/null
check "huge job pending" wait_for 5 job_state_is huge pending
check "reason mentions memory ($(job_field huge reason))" grep -q "needs 100T memory on one node" <<<"$(job_field huge reason)"
finish
