#!/usr/bin/env bash
# serve-failover.sh - how fast serving and node loss recover, with real
# mlmaster/mlagent daemons (sealed), real runc and busybox httpd replicas on
# loopback.  Four figures, each over N trials (default 20):
#
#   kill    SIGKILL of a serving container's init -> the standby's endpoint
#           is in the --endpoints-dir file AND answers HTTP 200, measured by
#           this script from the kill (bash builtins only, no forks while
#           timing: the file is polled about every 1.2 ms, the GET is bash's
#           /dev/tcp).
#   probe   a serving replica's probe starts failing (its page is removed)
#           -> the master's endpoints list drops it and lists the standby.
#           Two figures: from the agent's "unhealthy" log line (its verdict
#           on the first failed probe; failures: 1) to the master's
#           "endpoints [...]" log line (both ms timestamps, same clock), and
#           end to end from the rm to the standby answering 200 via the file
#           (includes the wait for the next probe, interval 100 ms).
#   lost    SIGKILL of an agent running a serve replica, a train worker and
#           an `mlctl run` task -> all three running on the other node (the
#           master's "node=OTHER running" log lines; the last of the three,
#           against the script's clock at the kill).
#   stale   that agent started again -> the processes of its three stale
#           containers (pids recorded before the kill) are gone (kill -0
#           polled about every 1.2 ms), from just before the new mlagent is
#           exec'd.
#
# usage: tests/bench/serve-failover.sh [-n N] [-b HEARTBEAT] [-l LOGDIR] [BUILD_DIR]
#   -n N       trials of each kind (default 20)
#   -b HB      the agents' --heartbeat (default: theirs, 1s)
#   -l LOGDIR  copy the daemons' logs and the raw samples (ms) into LOGDIR
#   BUILD_DIR  folder with master/mlmaster, agent/mlagent, master/ctl/mlctl
#              (default ./build)
#
# Settings: agents at their default heartbeat (1 s) unless -b, master --node-timeout
# default (3 s) and --grace 200ms; serve job: replicas 2, standby 1,
# health {http: /healthz, interval: 100ms, timeout: 200ms, failures: 1}.
# Needs root, runc, jq, busybox-static, bash 5.  Every process, container and
# temporary file it makes is removed on exit, also on failure or Ctrl-C.
# Percentiles are nearest-rank.

set -u
export LC_ALL=C # $EPOCHREALTIME must use a '.' as its decimal point

N=20
LOGDIR=
HB=()
usage() {
	echo "usage: $0 [-n N] [-b HEARTBEAT] [-l LOGDIR] [BUILD_DIR]" >&2
	exit 2
}
while getopts "n:b:l:h" opt; do
	case $opt in
	n) N=$OPTARG ;;
	b) HB=(--heartbeat "$OPTARG") ;;
	l) LOGDIR=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -le 1 ] || usage
[[ $N =~ ^[1-9][0-9]*$ ]] || usage
BUILD=${1:-./build}

HERE=$(cd "$(dirname "$0")" && pwd)
MKROOTFS=$HERE/../../contrib/mkrootfs.sh
MLMASTER=$BUILD/master/mlmaster
MLAGENT=$BUILD/agent/mlagent
MLCTL_BIN=$BUILD/master/ctl/mlctl

die() {
	echo "serve-failover: $*" >&2
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
	LOGDIR=$(cd "$LOGDIR" && pwd)
fi

T=$(mktemp -d /tmp/mls-servefo.XXXXXX) || die "mktemp failed"
ROOTFS=$T/rootfs
C= # the current cluster's folder: $T/serve or $T/lost
MASTER_PID=
declare -A AGENT_PID=() AGENT_PORTS=()
CTL_PORT=
AGENT_PORT=

# kill_shims DIR: kill -9 the task shims of DIR's agents (they outlive their
# agent; checked against pid reuse).
kill_shims() {
	local f pid dir
	for f in "$1"/agent-*/tasks/*/shim.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		dir=$(realpath "$(dirname "$f")")
		if [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "mlagent-shim shim $dir " ]; then
			kill -9 "$pid" 2>/dev/null
		fi
	done
}

# stop_cluster: kill this cluster's daemons, shims and containers.
stop_cluster() {
	local name root id
	for name in "${!AGENT_PID[@]}"; do
		kill -9 "${AGENT_PID[$name]}" 2>/dev/null
		wait "${AGENT_PID[$name]}" 2>/dev/null
	done
	[ -n "$MASTER_PID" ] && kill -9 "$MASTER_PID" 2>/dev/null
	[ -n "$MASTER_PID" ] && wait "$MASTER_PID" 2>/dev/null
	AGENT_PID=()
	MASTER_PID=
	[ -n "$C" ] || return 0
	kill_shims "$C"
	for root in "$C"/agent-*/runc; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			runc --root "$root" kill "$id" KILL >/dev/null 2>&1
			runc --root "$root" delete --force "$id" >/dev/null 2>&1
		done
		if [ -n "$(runc --root "$root" list -q 2>/dev/null)" ]; then
			echo "serve-failover: containers left in $root:" \
				"$(runc --root "$root" list -q 2>/dev/null | tr '\n' ' ')" >&2
		fi
	done
	# runc removes each container's cgroup, not the per-node parents.
	for name in "$C"/agent-*; do
		[ -d "$name" ] || continue
		rmdir /sys/fs/cgroup/mlsched/"$(basename "$C")-${name##*/agent-}" \
			/sys/fs/cgroup/*/mlsched/"$(basename "$C")-${name##*/agent-}" 2>/dev/null
	done
}

cleanup() {
	trap - EXIT INT TERM
	stop_cluster
	if [ -n "$LOGDIR" ]; then
		for c in serve lost; do
			for f in "$T/$c"/*.log; do
				[ -f "$f" ] && cp -f "$f" "$LOGDIR/$c-$(basename "$f")"
			done
		done
		cp -f "$T"/*.ms "$LOGDIR"/ 2>/dev/null
	fi
	rm -rf "$T"
}
trap 'rc=$?; cleanup; exit $rc' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# fail MESSAGE: show the end of the current cluster's logs, then exit.
fail() {
	local f
	echo "serve-failover: $*" >&2
	for f in "$C"/*.log; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f")" >&2
		tail -n 25 "$f" | sed 's/^/    /' >&2
	done
	exit 1
}

mlctl() { "$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --key "$C/master/admin.key" "$@"; }

# wait_for SECONDS COMMAND...: poll COMMAND every 20 ms until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ((SECONDS <= deadline)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.02
	done
	return 1
}

# Timing without forks: now_us sets REPLY to the wall clock in microseconds;
# nap sleeps about a millisecond (read -t on a pipe nobody writes).
now_us() {
	local t=$EPOCHREALTIME
	REPLY=$((${t%.*} * 1000000 + 10#${t#*.}))
}
exec {NAPFD}<> <(:)
nap() { read -r -t 0.001 -u "$NAPFD"; }

# http_ok HOST:PORT: GET /healthz answers 2xx (bash builtins only).
http_ok() {
	local fd line
	{ exec {fd}<>"/dev/tcp/${1%:*}/${1##*:}"; } 2>/dev/null || return 1
	printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$1" >&"$fd"
	IFS= read -r -t 1 line <&"$fd"
	exec {fd}<&-
	[[ $line == HTTP/1.[01]\ 2* ]]
}

# tod_ms LOGLINE: the line's timestamp (2026-12-02T07:20:13.283Z) as ms since
# midnight UTC; us_tod US: the same for a wall clock in microseconds.
tod_ms() {
	local t=${1#*T}
	t=${t%%Z*}
	REPLY=$(((10#${t:0:2} * 3600 + 10#${t:3:2} * 60 + 10#${t:6:2}) * 1000 + 10#${t:9:3}))
}
us_tod() { REPLY=$((($1 / 1000) % 86400000)); }
# tod_diff A B: B - A in ms, across midnight.
tod_diff() { REPLY=$((($2 - $1 + 86400000) % 86400000)); }

master_says() { tail -c +"$(($1 + 1))" "$C/master.log" | grep -q "$2"; }

# start_cluster NAME [mlmaster options...]: a sealed master in $T/NAME.
start_cluster() {
	local _ from
	C=$T/$1
	shift
	mkdir -p "$C"
	"$MLMASTER" init --state-dir "$C/master" >/dev/null 2>>"$C/master.log" ||
		fail "mlmaster init failed"
	for _ in 1 2 3 4 5; do
		CTL_PORT=$((20000 + RANDOM % 20000))
		AGENT_PORT=$((CTL_PORT + 1))
		from=$(stat -c %s "$C/master.log" 2>/dev/null || echo 0)
		"$MLMASTER" --state-dir "$C/master" --listen "tcp://127.0.0.1:$CTL_PORT" \
			--agent-listen "tcp://127.0.0.1:$AGENT_PORT" --grace 200ms "$@" \
			>>"$C/master.log" 2>&1 &
		MASTER_PID=$!
		wait_for 5 master_says "$from" "listening on tcp://127.0.0.1:$CTL_PORT" && return 0
		kill -9 "$MASTER_PID" 2>/dev/null
		wait "$MASTER_PID" 2>/dev/null
		MASTER_PID=
		master_says "$from" "cannot listen" || break
	done
	fail "mlmaster did not start"
}

node_ready() { mlctl -o json nodes | jq -e --arg n "$1" '.[] | select(.name == $n and .state == "ready")' >/dev/null; }

# spawn_agent NAME: exec an mlagent (default heartbeat) and return at once;
# each agent has its own --ports range (kept across restarts) and a node
# name unique to this run's cluster (its cgroup parent is /mlsched/NAME).
NEXT_PORTS=13000 # integration tests (lib.sh) use 12000 up
spawn_agent() {
	local name=$1
	if [ -z "${AGENT_PORTS[$name]:-}" ]; then
		AGENT_PORTS[$name]="$NEXT_PORTS-$((NEXT_PORTS + 199))"
		NEXT_PORTS=$((NEXT_PORTS + 200))
	fi
	"$MLAGENT" --join "$(cat "$C/master/join.token")" --master "tcp://127.0.0.1:$AGENT_PORT" \
		--name "$(basename "$C")-$name" --state-dir "$C/agent-$name" \
		--ports "${AGENT_PORTS[$name]}" --gpus 1x16G "${HB[@]}" >>"$C/agent-$name.log" 2>&1 &
	AGENT_PID[$name]=$!
}
start_agent() {
	spawn_agent "$1"
	wait_for 10 node_ready "$(basename "$C")-$1" || fail "agent $1 did not register"
}

# runc_ids AGENT: the containers runc lists under AGENT's root.
runc_ids() { runc --root "$C/agent-$1/runc" list -q 2>/dev/null; }

# stats LABEL FILE GOAL: one line of figures from FILE (ms, one a line).
stats() {
	sort -n "$2" | awk -v label="$1" -v goal="$3" '
		{ v[NR] = $1; sum += $1 }
		function rank(p,   r) { r = int(p * NR / 100); if (r < p * NR / 100) r++; return r < 1 ? 1 : r }
		END {
			printf "%-46s n=%d  p50=%.1fms  max=%.1fms  min=%.1fms  mean=%.1fms  (goal %s)\n",
				label, NR, v[rank(50)], v[NR], v[1], sum / NR, goal
		}'
}

sh "$MKROOTFS" "$ROOTFS" >"$T/mkrootfs.log" 2>&1 || {
	cat "$T/mkrootfs.log" >&2
	die "building the rootfs failed"
}
: >"$T/kill-e2e.ms"
: >"$T/kill-listed.ms"
: >"$T/probe-verdict.ms"
: >"$T/probe-e2e.ms"
: >"$T/lost.ms"
: >"$T/lost-node.ms"
: >"$T/stale.ms"

# ==== serving: a standby takes over ========================================

start_cluster serve --endpoints-dir "$T/serve/endpoints"
for a in a1 a2 a3; do start_agent "$a"; done
EPF=$C/endpoints/web.json

cat >"$C/web.yaml" <<YAML
name: web
kind: serve
image: $ROOTFS
command: [sh, -c, 'mkdir -p /work/www && echo ok >/work/www/healthz && exec httpd -f -p \$PORT -h /work/www']
replicas: 2
standby: 1
resources: {memory: 32M, cpus: 0.1}
health: {http: /healthz, interval: 100ms, timeout: 200ms, failures: 1}
restart: {policy: always, max: 100000}
YAML
mlctl submit "$C/web.yaml" >/dev/null || fail "submit web"

# settled: two healthy serving replicas and a healthy standby, all running,
# both serving ones in the endpoints file, and no other container anywhere.
settled() {
	local n=0 a
	mlctl -o json status web | jq -e '
		[.tasks[] | select(.state == "running" and .health == "healthy")] as $ok
		| ($ok | length) == 3 and ([$ok[] | select(.role == "serving")] | length) == 2
		  and ([$ok[] | select(.role == "standby")] | length) == 1' >/dev/null || return 1
	[ "$(jq '.endpoints | length' "$EPF" 2>/dev/null)" = 2 ] || return 1
	for a in a1 a2 a3; do n=$((n + $(runc_ids "$a" | grep -c .))); done
	[ "$n" = 3 ]
}
# stable: settled, and the same tasks (attempt, role, health) 300 ms later.
# With failures: 1 a new replica can fail its first probe (httpd not yet
# listening) and be replaced while status still says healthy for a moment.
sig() { mlctl -o json status web | jq -c '[.tasks[] | [.task, .attempt, .role, .health, .state]]'; }
stable() {
	local a
	settled || return 1
	a=$(sig) || return 1
	sleep 0.3
	settled && [ "$(sig)" = "$a" ]
}
wait_for 30 stable || fail "web did not settle at first"
JID=$(mlctl -o json status web | jq -r .id)

# pick: VNODE VTASK VEP (a serving replica) and SEP (the standby's endpoint).
pick() {
	local st addr sport
	st=$(mlctl -o json status web) || return 1
	read -r VNODE VTASK VPORT < <(jq -r '[.tasks[] | select(.role == "serving" and .state == "running")][0]
		| "\(.node) \(.task) \(.port)"' <<<"$st")
	sport=$(jq -r '.tasks[] | select(.role == "standby" and .state == "running") | .port' <<<"$st")
	addr=$(jq -r '.endpoints[0]' "$EPF")
	addr=${addr%:*}
	VEP=$addr:$VPORT
	SEP=$addr:$sport
	VNODE=${VNODE#serve-}
}

# wait_file WANT [NOT]: poll the endpoints file until WANT is in it (and NOT
# is not), at most 10 s; then poll GET WANT until it answers 2xx.  Sets
# LISTED and OK (wall clock, us).
wait_file() {
	local s dl
	now_us
	dl=$((REPLY + 10000000))
	while :; do
		s=
		IFS= read -r -d '' s <"$EPF"
		if [[ $s == *"\"$1\""* ]] && { [ $# -lt 2 ] || [[ $s != *"\"$2\""* ]]; }; then
			break
		fi
		now_us
		((REPLY < dl)) || return 1
		nap
	done
	now_us
	LISTED=$REPLY
	until http_ok "$1"; do
		now_us
		((REPLY < dl)) || return 1
		nap
	done
	now_us
	OK=$REPLY
}

echo "serve-failover: $N trials of a serving container SIGKILLed" >&2
for ((i = 1; i <= N; i++)); do
	pick || fail "no serving replica to pick"
	vpid=$(runc --root "$C/agent-$VNODE/runc" state "mls-$JID-$VTASK" | jq -r .pid)
	[[ $vpid =~ ^[0-9]+$ ]] || fail "no pid for mls-$JID-$VTASK on $VNODE"
	http_ok "$SEP" || fail "the standby $SEP does not answer before the kill"
	now_us
	t0=$REPLY
	kill -9 "$vpid"
	wait_file "$SEP" || fail "kill $i: $SEP not listed and answering within 10 s"
	echo $(((OK - t0) / 1000)).$((((OK - t0) % 1000) / 100)) >>"$T/kill-e2e.ms"
	echo $(((LISTED - t0) / 1000)).$((((LISTED - t0) % 1000) / 100)) >>"$T/kill-listed.ms"
	wait_for 30 stable || fail "kill $i: web did not settle again"
done

echo "serve-failover: $N trials of a serving replica's probe failing" >&2
for ((i = 1; i <= N; i++)); do
	pick || fail "no serving replica to pick"
	alog=$C/agent-$VNODE.log
	aoff=$(stat -c %s "$alog")
	moff=$(stat -c %s "$C/master.log")
	page=$C/agent-$VNODE/tasks/mls-$JID-$VTASK/work/www/healthz
	[ -f "$page" ] || fail "no $page"
	http_ok "$SEP" || fail "the standby $SEP does not answer before the probe fails"
	now_us
	t0=$REPLY
	rm -f "$page"
	wait_file "$SEP" "$VEP" || fail "probe $i: $SEP not listed (and $VEP not dropped) within 10 s"
	echo $(((OK - t0) / 1000)).$((((OK - t0) % 1000) / 100)) >>"$T/probe-e2e.ms"
	# The agent's verdict on this task, then the master's first endpoints
	# line after it that lists the standby and not the victim.
	vline=$(tail -c +"$((aoff + 1))" "$alog" | grep -m1 " task=$VTASK container=mls-$JID-$VTASK unhealthy: ")
	[ -n "$vline" ] || fail "probe $i: no unhealthy line in $alog"
	mline=$(tail -c +"$((moff + 1))" "$C/master.log" | grep " job=$JID name=web endpoints \[" |
		grep -F "\"$SEP\"" | grep -vF "\"$VEP\"" | head -n1)
	[ -n "$mline" ] || fail "probe $i: no endpoints line without $VEP"
	tod_ms "$vline"
	tv=$REPLY
	tod_ms "$mline"
	tod_diff "$tv" "$REPLY"
	echo "$REPLY" >>"$T/probe-verdict.ms"
	wait_for 30 stable || fail "probe $i: web did not settle again"
done
mlctl cancel web >/dev/null
stop_cluster

# ==== node lost: tasks move, stale copies die ==============================

start_cluster lost
start_agent a1
start_agent a2

# on_node JOB NODE: JOB and its task 0 run on NODE.
on_node() { [ "$(mlctl -o json status "$1" | jq -r '.state + "/" + .tasks[0].state + "/" + .tasks[0].node')" = "running/running/lost-$2" ]; }
alive() {
	local p
	for p in "$@"; do kill -0 "$p" 2>/dev/null && return 0; done
	return 1
}
a1_empty() { [ -z "$(runc_ids a1)" ]; }
no_containers() { [ -z "$(runc_ids a1)$(runc_ids a2)" ]; }
all_cancelled() {
	local j
	for j in "$@"; do [ "$(mlctl -o json status "$j" | jq -r .state)" = cancelled ] || return 1; done
}

echo "serve-failover: $N trials of an agent SIGKILLed and started again" >&2
for ((i = 1; i <= N; i++)); do
	mlctl drain lost-a2 >/dev/null || fail "drain a2"
	printf 'name: svc-%s\nkind: serve\nimage: %s\ncommand: [sleep, "1000"]\nresources: {memory: 16M, cpus: 0.1}\n' \
		"$i" "$ROOTFS" >"$C/svc.yaml"
	printf 'name: trn-%s\nkind: train\nimage: %s\ncommand: [sleep, "1000"]\nworkers: 1\nresources: {memory: 16M, cpus: 0.1}\n' \
		"$i" "$ROOTFS" >"$C/trn.yaml"
	mlctl submit --wait "$C/svc.yaml" >/dev/null || fail "submit svc-$i"
	mlctl submit --wait "$C/trn.yaml" >/dev/null || fail "submit trn-$i"
	mlctl run --wait --name "one-$i" "$ROOTFS" -- sleep 1000 >/dev/null || fail "run one-$i"
	jobs=("svc-$i" "trn-$i" "one-$i")
	for j in "${jobs[@]}"; do on_node "$j" a1 || fail "$j does not run on a1"; done
	mlctl uncordon lost-a2 >/dev/null || fail "uncordon a2"
	ids=()
	for j in "${jobs[@]}"; do ids+=("$(mlctl -o json status "$j" | jq -r .id)"); done
	pids=()
	for id in $(runc_ids a1); do pids+=("$(runc --root "$C/agent-a1/runc" state "$id" | jq -r .pid)"); done
	[ "${#pids[@]}" = 3 ] || fail "$i: a1 runs ${#pids[@]} containers, not 3"
	moff=$(stat -c %s "$C/master.log")

	now_us
	t0=$REPLY
	kill -9 "${AGENT_PID[a1]}"
	wait "${AGENT_PID[a1]}" 2>/dev/null
	# Poll the master's log (one grep a try) until each job has its
	# "node=lost-a2 running" line; the figure is from the lines' stamps.
	pat=" job=(${ids[0]}|${ids[1]}|${ids[2]}) task=0 node=lost-a2 running$"
	moved() { [ "$(tail -c +"$((moff + 1))" "$C/master.log" | grep -cE "$pat")" = 3 ]; }
	wait_for 10 moved || fail "$i: the tasks did not all run on a2 within 10 s"
	us_tod "$t0"
	tk=$REPLY
	last=$(tail -c +"$((moff + 1))" "$C/master.log" | grep -E "$pat" | tail -n1)
	tod_ms "$last"
	tod_diff "$tk" "$REPLY"
	echo "$REPLY" >>"$T/lost.ms"
	lostl=$(tail -c +"$((moff + 1))" "$C/master.log" | grep -m1 " node=lost-a1 lost: ")
	if [ -n "$lostl" ]; then
		tod_ms "$lostl"
		tod_diff "$tk" "$REPLY"
		echo "$REPLY" >>"$T/lost-node.ms"
	fi
	for j in "${jobs[@]}"; do on_node "$j" a2 || fail "$j does not run on a2 after the loss"; done
	alive "${pids[@]}" || fail "$i: a1's containers died with their agent"

	# The same agent again: its three copies are stale.
	now_us
	t0=$REPLY
	spawn_agent a1
	now_us
	dl=$((REPLY + 10000000))
	while alive "${pids[@]}"; do
		now_us
		((REPLY < dl)) || fail "$i: stale copies still alive after 10 s"
		nap
	done
	now_us
	echo $(((REPLY - t0) / 1000)).$((((REPLY - t0) % 1000) / 100)) >>"$T/stale.ms"
	wait_for 10 node_ready lost-a1 || fail "$i: a1 did not come back"
	wait_for 10 a1_empty || fail "$i: a1 still lists containers: $(runc_ids a1 | tr '\n' ' ')"
	for j in "${jobs[@]}"; do on_node "$j" a2 || fail "$j does not run on a2 after a1 came back"; done

	for j in "${jobs[@]}"; do mlctl cancel "$j" >/dev/null || fail "cancel $j"; done
	wait_for 15 all_cancelled "${jobs[@]}" || fail "$i: jobs not cancelled"
	wait_for 15 no_containers || fail "$i: containers left after cancel"
done
stop_cluster

# ==== report ================================================================

stats "1 kill -9 serving -> standby listed + 200" "$T/kill-e2e.ms" "p50 <= 300 ms"
stats "  (kill -9 -> standby listed in the file)" "$T/kill-listed.ms" "-"
stats "2 unhealthy verdict -> master endpoints change" "$T/probe-verdict.ms" "<= 100 ms"
stats "  rm page -> standby listed + 200" "$T/probe-e2e.ms" "-, includes <= 100 ms probe wait"
stats "3 agent kill -9 -> 3 tasks running elsewhere" "$T/lost.ms" "<= 1000 ms"
stats "  (agent kill -9 -> master: node lost)" "$T/lost-node.ms" "-"
stats "4 agent restart -> stale copies' processes gone" "$T/stale.ms" "<= 200 ms"
