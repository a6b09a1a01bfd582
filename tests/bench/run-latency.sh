#!/usr/bin/env bash
# run-latency.sh - time "mlctl run --wait" from submit to container running,
# against bare "runc run" of the same rootfs on the same machine.
#
# usage: tests/bench/run-latency.sh [-n N] [-w W] [-d] [-l LOGDIR] [BUILD_DIR]
#   -n N       timed runs of each kind (default 50)
#   -w W       untimed warm-up runs of each kind before the timed ones (default 1)
#   -d         run both daemons with --log-level debug
#   -l LOGDIR  copy the daemons' logs and the raw samples (microseconds, one a
#              line) into LOGDIR on exit
#   BUILD_DIR  folder with master/mlmaster, agent/mlagent, master/ctl/mlctl
#              (default ./build)
#
# Needs root, runc, jq and busybox-static.  Starts one mlmaster and one mlagent
# on random loopback ports in a temporary folder, and removes every process,
# container and temporary file on exit, also on failure or Ctrl-C.
#
# What is timed:
#   ours: "mlctl run --wait --name bench-I ROOTFS -- sleep 5", from just before
#         mlctl starts to its return, i.e. submit -> placed -> agent writes the
#         bundle -> runc run --detach -> task reported running -> mlctl sees it.
#         Each job is then cancelled and the script waits until it is cancelled
#         and runc no longer lists it (untimed), so runs never overlap.
#   bare: "runc --root R run -b BUNDLE bench-I" in the foreground with args
#         ["true"], i.e. create + start + the process exiting + runc's own
#         teardown; "runc delete" afterwards is untimed.  The bundle is
#         "runc spec" edited to look like ours: no terminal, read-only root,
#         no network or cgroup namespace, 128M memory and 0.1 CPU limits.
# Percentiles are nearest-rank: with n=50, p99 is the largest sample.
# Exits non-zero if any run fails.

set -u
export LC_ALL=C # $EPOCHREALTIME must use a '.' as its decimal point

N=50
WARM=1
SECURE=1
DAEMON_ARGS=()
LOGDIR=

usage() {
	echo "usage: $0 [-n N] [-w W] [-d] [-i] [-l LOGDIR] [BUILD_DIR]" >&2
	echo "  -i  run the daemons --insecure (default: sealed, as users run them)" >&2
	exit 2
}

while getopts "n:w:dil:h" opt; do
	case $opt in
	i) SECURE=0 ;;
	n) N=$OPTARG ;;
	w) WARM=$OPTARG ;;
	d) DAEMON_ARGS=(--log-level debug) ;;
	l) LOGDIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
[[ $N =~ ^[1-9][0-9]*$ ]] || usage
[[ $WARM =~ ^[0-9]+$ ]] || usage
BUILD=${1:-./build}

HERE=$(cd "$(dirname "$0")" && pwd)
MKROOTFS=$HERE/../../contrib/mkrootfs.sh
MLMASTER=$BUILD/master/mlmaster
MLAGENT=$BUILD/agent/mlagent
MLCTL_BIN=$BUILD/master/ctl/mlctl

die() {
	echo "run-latency: $*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (runc)"
for t in runc jq awk; do
	command -v "$t" >/dev/null 2>&1 || die "$t not found"
done
for b in "$MLMASTER" "$MLAGENT" "$MLCTL_BIN"; do
	[ -x "$b" ] || die "$b not found; build first or name the build folder"
done
[ -n "${EPOCHREALTIME:-}" ] || die "bash 5 or newer needed (\$EPOCHREALTIME)"
if [ -n "$LOGDIR" ]; then
	mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
fi

T=$(mktemp -d /tmp/mls-bench.XXXXXX) || die "mktemp failed"
ROOTFS=$T/rootfs
AGENT_ROOT=$T/agent/runc # mlagent's default --runc-root: STATE_DIR/runc
BARE_ROOT=$T/bare-runc
BUNDLE=$T/bundle
NODE=bench-$$ # the agent's containers live in cgroup /mlsched/NODE/...
MASTER_PID=
AGENT_PID=
CTL_PORT=
AGENT_PORT=

# Kill what we started, by pid, then whatever containers are left in either
# runc root, then the node's cgroup parent and the temporary folder.
cleanup() {
	local root id
	trap - EXIT INT TERM
	[ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null
	[ -n "$MASTER_PID" ] && kill -9 "$MASTER_PID" 2>/dev/null
	[ -n "$AGENT_PID" ] && wait "$AGENT_PID" 2>/dev/null
	[ -n "$MASTER_PID" ] && wait "$MASTER_PID" 2>/dev/null
	for root in "$AGENT_ROOT" "$BARE_ROOT"; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			runc --root "$root" kill "$id" KILL >/dev/null 2>&1
			runc --root "$root" delete --force "$id" >/dev/null 2>&1
		done
		if [ -n "$(runc --root "$root" list -q 2>/dev/null)" ]; then
			echo "run-latency: containers left in $root:" \
				"$(runc --root "$root" list -q 2>/dev/null | tr '\n' ' ')" >&2
		fi
	done
	# runc removes each container's cgroup but not the agent's per-node
	# parent; rmdir removes only an empty one.
	rmdir /sys/fs/cgroup/mlsched/"$NODE" /sys/fs/cgroup/*/mlsched/"$NODE" 2>/dev/null
	if [ -n "$LOGDIR" ]; then
		cp -f "$T"/master.log "$T"/agent.log "$T"/ours.us "$T"/bare.us "$LOGDIR"/ 2>/dev/null
	fi
	rm -rf "$T"
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# On failure show the end of the daemons' logs before they are removed.
fail() {
	local f
	echo "run-latency: $*" >&2
	for f in "$T"/master.log "$T"/agent.log; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f")" >&2
		tail -n 30 "$f" | sed 's/^/    /' >&2
	done
	exit 1
}

mlctl() {
	if [ "$SECURE" = 1 ]; then
		"$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --key "$T/master/admin.key" "$@"
	else
		"$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" "$@"
	fi
}

# wait_for SECONDS COMMAND...: poll COMMAND every 10 ms until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ((SECONDS <= deadline)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.01
	done
	return 1
}

# now_us: wall clock in microseconds, without forking.
now_us() {
	local t=$EPOCHREALTIME
	REPLY=$((${t%.*} * 1000000 + 10#${t#*.}))
}

start_master() {
	local _ sec=(--insecure)
	if [ "$SECURE" = 1 ]; then
		"$MLMASTER" init --state-dir "$T/master" >"$T/token" 2>>"$T/master.log" ||
			fail "mlmaster init failed"
		sec=()
	fi
	for _ in 1 2 3 4 5; do
		CTL_PORT=$((20000 + RANDOM % 20000))
		AGENT_PORT=$((CTL_PORT + 1))
		# A short grace: cancelling "sleep" (which ignores SIGTERM as PID 1)
		# waits for it, and that wait is not what we measure.
		"$MLMASTER" "${sec[@]}" --state-dir "$T/master" --listen "tcp://127.0.0.1:$CTL_PORT" \
			--agent-listen "tcp://127.0.0.1:$AGENT_PORT" --grace 100ms "${DAEMON_ARGS[@]}" \
			>>"$T/master.log" 2>&1 &
		MASTER_PID=$!
		wait_for 5 grep -q "listening on tcp://127.0.0.1:$CTL_PORT" "$T/master.log" && return 0
		kill -9 "$MASTER_PID" 2>/dev/null
		wait "$MASTER_PID" 2>/dev/null
		MASTER_PID=
		grep -q "cannot listen" "$T/master.log" || break
	done
	fail "mlmaster did not start"
}

node_ready() {
	mlctl -o json nodes | jq -e --arg n "$NODE" '.[] | select(.name == $n and .state == "ready")'
}

job_cancelled() {
	[ "$(mlctl -o json status "$1" | jq -r .state)" = cancelled ] &&
		[ -z "$(runc --root "$AGENT_ROOT" list -q)" ]
}

# stats LABEL FILE: one line of figures from FILE (microseconds, one a line);
# "p50 p99" in microseconds go to FILE.pct for the ratios.
stats() {
	sort -n "$2" | awk -v label="$1" -v pct="$2.pct" '
		{ v[NR] = $1; sum += $1 }
		function rank(p,   r) { r = int(p * NR / 100); if (r < p * NR / 100) r++; return r < 1 ? 1 : r }
		END {
			p50 = v[rank(50)]; p99 = v[rank(99)]
			printf "%-22s n=%d  p50=%.1fms  p99=%.1fms  min=%.1fms  max=%.1fms  mean=%.1fms\n",
				label, NR, p50 / 1000, p99 / 1000, v[1] / 1000, v[NR] / 1000, sum / NR / 1000
			printf "%d %d\n", p50, p99 > pct
		}'
}

# ---- set up ----------------------------------------------------------------

sh "$MKROOTFS" "$ROOTFS" >"$T/mkrootfs.log" 2>&1 || {
	cat "$T/mkrootfs.log" >&2
	die "building the rootfs failed"
}

start_master
if [ "$SECURE" = 1 ]; then AGENT_SEC=(--join "$(cat "$T/token")"); else AGENT_SEC=(--insecure); fi
"$MLAGENT" "${AGENT_SEC[@]}" --master "tcp://127.0.0.1:$AGENT_PORT" --name "$NODE" \
	--state-dir "$T/agent" --heartbeat 1s --gpus 1x16G "${DAEMON_ARGS[@]}" \
	>>"$T/agent.log" 2>&1 &
AGENT_PID=$!
wait_for 10 node_ready || fail "the agent did not become ready"

mkdir -p "$BUNDLE" "$BARE_ROOT"
runc spec --bundle "$BUNDLE" || fail "runc spec failed"
if ! jq --arg root "$ROOTFS" '
	.process.args = ["true"] | .process.terminal = false
	| .root = {path: $root, readonly: true}
	| .linux.namespaces |= map(select(.type != "network" and .type != "cgroup"))
	| .linux.resources.memory = {limit: 134217728}
	| .linux.resources.cpu = {quota: 10000, period: 100000}' \
	"$BUNDLE/config.json" >"$BUNDLE/config.json.new" ||
	! mv "$BUNDLE/config.json.new" "$BUNDLE/config.json"; then
	fail "editing config.json failed"
fi

# ---- ours ------------------------------------------------------------------

# one_ours NAME: time one submit -> running into ELAPSED (us), then cancel it.
one_ours() {
	local t0 out rc
	now_us
	t0=$REPLY
	out=$(mlctl run --wait --name "$1" "$ROOTFS" -- sleep 5 2>&1)
	rc=$?
	now_us
	ELAPSED=$((REPLY - t0))
	[ $rc = 0 ] || fail "mlctl run $1 failed (exit $rc): $out"
	[ "$(mlctl -o json status "$1" | jq -r .state)" = running ] ||
		fail "$1 is not running after mlctl run --wait returned"
	mlctl cancel "$1" >/dev/null || fail "mlctl cancel $1 failed"
	wait_for 15 job_cancelled "$1" || fail "$1 was not cancelled within 15 s"
}

: >"$T/ours.us"
for ((i = 1; i <= WARM; i++)); do
	one_ours "warm-$i"
	echo "warm-up mlctl run: $((ELAPSED / 1000)) ms" >&2
done
for ((i = 1; i <= N; i++)); do
	one_ours "bench-$i"
	echo "$ELAPSED" >>"$T/ours.us"
done

# ---- bare runc -------------------------------------------------------------

# one_bare ID: time one foreground runc run into ELAPSED (us), then delete it.
one_bare() {
	local t0 rc
	now_us
	t0=$REPLY
	runc --root "$BARE_ROOT" run --bundle "$BUNDLE" "$1" </dev/null >"$T/bare.out" 2>&1
	rc=$?
	now_us
	ELAPSED=$((REPLY - t0))
	[ $rc = 0 ] || fail "runc run $1 failed (exit $rc): $(cat "$T/bare.out")"
	# A foreground run removes its container when the process exits; this
	# only catches one that did not.
	runc --root "$BARE_ROOT" delete --force "$1" >/dev/null 2>&1
	return 0
}

: >"$T/bare.us"
for ((i = 1; i <= WARM; i++)); do
	one_bare "warm-$i"
	echo "warm-up runc run: $((ELAPSED / 1000)) ms" >&2
done
for ((i = 1; i <= N; i++)); do
	one_bare "bench-$i"
	echo "$ELAPSED" >>"$T/bare.us"
done

# ---- report ----------------------------------------------------------------

stats "mlctl run -> running" "$T/ours.us"
stats "bare runc run" "$T/bare.us"
read -r ours50 ours99 <"$T/ours.us.pct"
read -r bare50 bare99 <"$T/bare.us.pct"
awk -v a="$ours50" -v b="$ours99" -v c="$bare50" -v d="$bare99" \
	'BEGIN { printf "ratio p50=%.2f  p99=%.2f\n", a / c, b / d }'
