#!/usr/bin/env bash
# Sealed traffic: mlmaster init makes the keys; agents join with the token;
# mlctl needs an admin key.  Requests in the clear, from a key that is not
# an admin, or from an agent without the join secret are refused with a
# message, and nothing they asked for happens.
. "$(dirname "$0")/lib.sh"
# This test checks mlctl itself: the build under test, not MLS_CTL.
MLCTL_BIN=$MLCTL_UNDER_TEST
[ "$SECURE" = 1 ] || { log "skipped: MLS_INSECURE=1"; finish; }

start_master || exit 1
start_agent a1 --gpus 1x16G || exit 1
check "the master records the agent's key" [ "$(mlctl -o json nodes | jq -r '.[0].pubkey | length')" = 43 ]
mlctl run --wait --name sealed-job "$MLS_ROOTFS" -- echo sealed >/dev/null
check "a sealed job runs" wait_for 10 job_state_is sealed-job succeeded
check "its log comes back sealed" [ "$(mlctl logs sealed-job)" = sealed ]

# mlctl without a key: refused, with advice.
err=$(MLSCHED_KEY= "$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --timeout 3s ls 2>&1)
rc=$?
check "unsealed mlctl exits 1" [ "$rc" -eq 1 ]
check "and is told what to do ($err)" grep -q "accepts only sealed messages: set MLSCHED_KEY" <<<"$err"

# A key this master does not list as an admin.
"$MLMASTER" init --state-dir "$T/other" >/dev/null 2>&1
cp "$T/master/master.pub" "$T/other/master.pub"
err=$("$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --key "$T/other/admin.key" --timeout 3s run --name intruder "$MLS_ROOTFS" -- true 2>&1)
check "a non-admin key is refused ($err)" grep -q "is not listed in .*/admins" <<<"$err"
check "nothing was submitted" [ "$(mlctl -o json ls | jq '[.[] | select(.name == "intruder")] | length')" = 0 ]

# An agent with the right master key but a wrong join secret.
good=$(cat "$T/master/join.token")
bad="${good%.*}.$(cut -d. -f3 "$T/other/join.token")"
"$MLAGENT" --join "$bad" --master "tcp://127.0.0.1:$AGENT_PORT" --name rogue --state-dir "$T/agent-rogue" \
	--heartbeat 200ms --gpus 8x80G >"$T/agent-rogue.log" 2>&1 &
AGENT_PID[rogue]=$!
check "the rogue agent is told it is refused" wait_for 5 grep -q "the master refuses this agent: not joined" "$T/agent-rogue.log"
check "it is not a node" [ "$(mlctl -o json nodes | jq '[.[] | select(.name == "rogue")] | length')" = 0 ]

# An agent that takes an existing node's name with its own key, without the
# secret, cannot take over the node.
"$MLAGENT" --join "${good%.*}.$(cut -d. -f3 "$T/other/join.token")" --master "tcp://127.0.0.1:$AGENT_PORT" \
	--name a1 --state-dir "$T/agent-imposter" --heartbeat 200ms >"$T/agent-imposter.log" 2>&1 &
AGENT_PID[imposter]=$!
check "the imposter is refused" wait_for 5 grep -q "the master refuses this agent: this node name is registered with another agent key" "$T/agent-imposter.log"
check "a1 keeps its GPU" [ "$(mlctl -o json nodes | jq '.[] | select(.name == "a1") | .gpus | length')" = 1 ]

# A second agent with the valid token but the name of a live node (a copied
# config, a twin host name) cannot take the node over.
"$MLAGENT" --join "$good" --master "tcp://127.0.0.1:$AGENT_PORT" --name a1 --state-dir "$T/agent-twin" \
	--heartbeat 200ms --gpus 8x80G >"$T/agent-twin.log" 2>&1 &
AGENT_PID[twin]=$!
check "the twin is refused" wait_for 5 grep -q "in use by another agent that is alive" "$T/agent-twin.log"
sleep 0.5
check "a1 still has its own GPU" [ "$(mlctl -o json nodes | jq '.[] | select(.name == "a1") | .gpus | length')" = 1 ]
mlctl run --wait --name after-twin "$MLS_ROOTFS" -- echo still-here >/dev/null
check "work still runs on a1" wait_for 10 job_state_is after-twin succeeded

# An agent without --join or --insecure does not start.
err=$("$MLAGENT" --master "tcp://127.0.0.1:$AGENT_PORT" --name x --state-dir "$T/x" 2>&1)
check "mlagent needs --join or --insecure" grep -q -- "--join TOKEN is required" <<<"$err"
check "mlmaster token prints the token" [ "$("$MLMASTER" token --state-dir "$T/master")" = "$good" ]
finish
