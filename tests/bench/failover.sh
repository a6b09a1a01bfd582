#!/usr/bin/env bash
# failover.sh - how long until a dead node's tasks run elsewhere, with the
# default settings (heartbeat 1 s, node timeout 3 s).  N one-task jobs with
# restart: on-failure run on node "a"; then a's agent is either
#   killed  (SIGKILL: its connection closes, as when the agent or the node's
#            kernel goes; the master notices the close), or
#   frozen  (SIGSTOP: the connection stays up, as with a hung node or a cut
#            cable; only missed heartbeats tell, after the node timeout),
# and the time from the signal until every job runs again on node "b" is
# measured.  Frozen is the baseline.
#
#   tests/bench/failover.sh [-n 5] [-r 5] [BUILD_DIR]
set -u
export LC_ALL=C
N=5
R=5
while getopts "n:r:h" o; do
	case $o in
	n) N=$OPTARG ;;
	r) R=$OPTARG ;;
	*) echo "usage: $0 [-n JOBS] [-r RUNS] [BUILD_DIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
B=$(cd "${1:-./build}" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/mls-failover.XXXXXX)
PIDS=()
cleanup() {
	local r id
	for p in "${PIDS[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	for r in "$T"/run-*/*/runc; do
		[ -d "$r" ] || continue
		for id in $(runc --root "$r" list -q 2>/dev/null); do
			runc --root "$r" kill "$id" KILL >/dev/null 2>&1
			runc --root "$r" delete --force "$id" >/dev/null 2>&1
		done
	done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
bash "$HERE/../../contrib/mkrootfs.sh" "$T/rootfs" >/dev/null || exit 1

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# one_run MODE RUN: prints the failover time in ms
one_run() {
	local mode=$1 d=$T/run-$1-$2 port=$((20000 + RANDOM % 20000)) m a b t0 i
	mlctl() { "$B/master/ctl/mlctl" --master "tcp://127.0.0.1:$port" --key "$d/m/admin.key" "$@"; }
	"$B/master/mlmaster" init --state-dir "$d/m" >"$d.token" 2>/dev/null || return 1
	"$B/master/mlmaster" --state-dir "$d/m" --listen "tcp://127.0.0.1:$port" \
		--agent-listen "tcp://127.0.0.1:$((port + 1))" >"$d.master.log" 2>&1 &
	m=$!
	PIDS+=("$m")
	for n in a b; do
		"$B/agent/mlagent" --join "$(cat "$d.token")" --master "tcp://127.0.0.1:$((port + 1))" \
			--name "$n" --state-dir "$d/$n" --gpus 1x16G >"$d.$n.log" 2>&1 &
		PIDS+=("$!")
		[ "$n" = a ] && a=$! || b=$!
	done
	until [ "$(mlctl -o json nodes 2>/dev/null | jq '[.[] | select(.state == "ready")] | length')" = 2 ]; do sleep 0.05; done
	mlctl drain b >/dev/null
	printf 'name: j%%s\nkind: batch\nimage: %s\ncommand: [sleep, "1000"]\nrestart: {policy: on-failure, max: 1}\nresources: {memory: 16M, cpus: 0.1}\n' "$T/rootfs" >"$d.tmpl"
	for i in $(seq 1 "$N"); do
		sed "s/^name: j%s/name: j$i/" "$d.tmpl" >"$d.yaml"
		mlctl submit --wait "$d.yaml" >/dev/null || return 1
	done
	mlctl uncordon b >/dev/null
	t0=$(now_ms)
	if [ "$mode" = killed ]; then kill -9 "$a"; else kill -STOP "$a"; fi
	until [ "$(mlctl -o json ls | jq '[.[] | select(.state == "running" and .restarts == 1)] | length')" = "$N" ]; do
		sleep 0.02
	done
	echo $(($(now_ms) - t0))
	kill -CONT "$a" 2>/dev/null
	kill -9 "$a" "$b" "$m" 2>/dev/null
	wait 2>/dev/null
}

stats() { sort -n | awk -v l="$1" '{v[NR]=$1} END {printf "%-34s runs=%d  min=%dms  median=%dms  max=%dms\n", l, NR, v[1], v[int((NR+1)/2)], v[NR]}'; }
for r in $(seq 1 "$R"); do one_run killed "$r" 2>>"$T/noise" || exit 1; done >"$T/killed.ms"
for r in $(seq 1 "$R"); do one_run frozen "$r" 2>>"$T/noise" || exit 1; done >"$T/frozen.ms"
stats "agent killed: $N jobs elsewhere" <"$T/killed.ms"
stats "agent frozen (baseline): $N jobs" <"$T/frozen.ms"
median() { sort -n "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
awk -v a="$(median "$T/killed.ms")" -v b="$(median "$T/frozen.ms")" \
	'BEGIN {printf "ratio killed/frozen (median)       %.2f\n", a / b}'
