# pools-lib.bash - what the pools tests share (sourced after lib.sh): the local
# "cloud" of contrib/cloud/local-provision under $T/cloud, whose agents (and
# their tasks' shims and containers) the clean-up stops, and a pools file
# helper.  Not a test by itself (not *.sh, so contrib/test.sh does not run it).
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CLOUD=$T/cloud
export MLSCHED_LOCAL_DIR=$CLOUD
export MLSCHED_LOCAL_AGENT=$MLAGENT
export MLSCHED_LOCAL_PORT_BASE=$((${MLS_PORT_BASE:-12000} + 400))
export MLSCHED_LOCAL_AGENT_ARGS="--heartbeat 200ms"

# Stop every agent the provider started, then lib.sh's clean-up.
cloud_cleanup() {
	local f pid root id
	# The master first, so that no hook starts after this; then give a
	# provision hook in flight (local-provision takes 0.2 s) time to write
	# its pid file.
	[ -n "$MASTER_PID" ] && kill -9 "$MASTER_PID" 2>/dev/null
	sleep 0.5
	for f in "$CLOUD"/*/agent.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		kill -9 "$pid" 2>/dev/null
	done
	for f in "$CLOUD"/*/tasks/*/shim.pid; do
		[ -f "$f" ] || continue
		kill -9 "$(cat "$f")" 2>/dev/null
	done
	for root in "$CLOUD"/*/runc; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			runc --root "$root" kill "$id" KILL >/dev/null 2>&1
			runc --root "$root" delete --force "$id" >/dev/null 2>&1
		done
	done
	# Their logs join the daemons' (checked for sanitizer reports, shown
	# when the test failed).
	for f in "$CLOUD"/*/agent.log; do
		[ -f "$f" ] && cp "$f" "$T/cloud-agent-$(basename "$(dirname "$f")").log"
	done
	cleanup
}
trap cloud_cleanup EXIT

# pool_field POOL JQ: a jq expression on `mlctl -o json pools POOL`.
pool_field() { mlctl -o json pools "$1" | jq -r "$2"; }
pool_is() { [ "$(pool_field "$1" "$2")" = "$3" ]; }
# Agents of the local cloud that run now.
cloud_agents() {
	local f n=0
	for f in "$CLOUD"/*/agent.pid; do
		[ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && n=$((n + 1))
	done
	echo "$n"
}
