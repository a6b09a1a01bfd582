#!/usr/bin/env bash
# agent-footprint.sh - what mlagent costs on a node: its RSS and CPU with
# no task (the baseline) and with N running containers (default 50), at the
# default 1 s heartbeat, measured from /proc over a window (default 60 s).
# The per-task shims ("mlagent-shim shim DIR", one per container) are reported
# apart: they are the containers' parents, not the agent.
#
#   tests/bench/agent-footprint.sh [-n 50] [-w 60] [BUILD_DIR]
set -u
export LC_ALL=C
N=50
W=60
while getopts "n:w:h" o; do
	case $o in
	n) N=$OPTARG ;;
	w) W=$OPTARG ;;
	*) echo "usage: $0 [-n CONTAINERS] [-w WINDOW_S] [BUILD_DIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
B=$(cd "${1:-./build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/mls-footprint.XXXXXX)
PIDS=()
cleanup() {
	local id
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	pkill -9 -f "mlagent-shim shim $T/" 2>/dev/null
	for id in $(runc --root "$T/a/runc" list -q 2>/dev/null); do
		runc --root "$T/a/runc" kill "$id" KILL >/dev/null 2>&1
		runc --root "$T/a/runc" delete --force "$id" >/dev/null 2>&1
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bash "$HERE/../../contrib/mkrootfs.sh" "$T/rootfs" >/dev/null || exit 1

port=$((20000 + RANDOM % 20000))
mlctl() { "$B/master/ctl/mlctl" --master "tcp://127.0.0.1:$port" --key "$T/m/admin.key" "$@"; }
"$B/master/mlmaster" init --state-dir "$T/m" >"$T/token" 2>/dev/null || exit 1
"$B/master/mlmaster" --state-dir "$T/m" --listen "tcp://127.0.0.1:$port" \
	--agent-listen "tcp://127.0.0.1:$((port + 1))" >"$T/master.log" 2>&1 &
PIDS+=("$!")
"$B/agent/mlagent" --join "$(cat "$T/token")" --master "tcp://127.0.0.1:$((port + 1))" \
	--name a --state-dir "$T/a" --cpus 64000 --memory 64G >"$T/agent.log" 2>&1 &
agent=$!
PIDS+=("$agent")

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
# PSS: shared pages (libraries, the binary) divided among the processes
# that map them, so that N shims of one binary are not counted N times.
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# measure LABEL: the agent's RSS at the end and CPU % of one core over W s.
measure() {
	local c0 c1 hz shims=0 srss=0 spss=0 p
	hz=$(getconf CLK_TCK)
	c0=$(cpu_ticks "$agent")
	sleep "$W"
	kill -0 "$agent" 2>/dev/null || { echo "mlagent exited:"; tail -5 "$T/agent.log"; exit 1; }
	c1=$(cpu_ticks "$agent")
	for p in $(pgrep -f "mlagent-shim shim $T/"); do
		shims=$((shims + 1))
		srss=$((srss + $(rss_kib "$p")))
		spss=$((spss + $(pss_kib "$p")))
	done
	printf '%-14s agent: RSS %5.2f MiB, PSS %5.2f MiB, CPU %5.2f%% of a core; %3d shims: RSS %6.1f MiB, PSS %5.1f MiB (%.0f KiB each)\n' \
		"$1" "$(echo "$(rss_kib "$agent") / 1024" | bc -l)" "$(echo "$(pss_kib "$agent") / 1024" | bc -l)" \
		"$(echo "($c1 - $c0) * 100 / $hz / $W" | bc -l)" "$shims" \
		"$(echo "$srss / 1024" | bc -l)" "$(echo "$spss / 1024" | bc -l)" \
		"$(echo "$spss / ($shims + ($shims == 0))" | bc -l)"
}
for _ in $(seq 50); do mlctl nodes 2>/dev/null | grep -q ready && break; sleep 0.2; done
measure "0 containers"
for i in $(seq "$N"); do
	mlctl run --name "c$i" --memory 8M --cpus 0.1 "$T/rootfs" -- sleep 100000 >/dev/null || exit 1
done
for _ in $(seq 300); do
	[ "$(mlctl -o json ls | jq '[.[] | select(.state == "running")] | length')" = "$N" ] && break
	sleep 0.2
done
mlctl ls | awk 'NR > 1 { print $4 }' | sort | uniq -c | sed "s/^/# jobs: /"
measure "$N containers"
[ -n "${MLS_SMAPS:-}" ] && cat "/proc/$(pgrep -f "mlagent-shim shim $T/" | head -1)/smaps" > "$MLS_SMAPS"
