# lib.sh - helpers for integration tests: a real mlmaster and real mlagents
# on loopback, real runc containers, and clean-up that runs even when a test
# fails.  Source it from a test script; see run-one() at the bottom.
#
# Environment: MLS_BUILD (folder with master/, agent/ binaries), MLS_ROOTFS
# (a busybox rootfs made by contrib/mkrootfs.sh), MLS_CTL (the mlctl the
# tests drive the master with; default MLS_BUILD's: contrib/test.sh points
# it at the plain build when the daemons under test are ASan builds, since
# the tests start mlctl thousands of times and an ASan process costs about
# 190 ms to start against 30).  MLCTL_UNDER_TEST is MLS_BUILD's mlctl, for
# the tests that check mlctl itself.

set -u

: "${MLS_BUILD:?MLS_BUILD must name the build folder}"
: "${MLS_ROOTFS:?MLS_ROOTFS must name a busybox rootfs}"

MLMASTER=$MLS_BUILD/master/mlmaster
MLAGENT=$MLS_BUILD/agent/mlagent
MLCTL_UNDER_TEST=$MLS_BUILD/master/ctl/mlctl
MLCTL_BIN=${MLS_CTL:-$MLCTL_UNDER_TEST}

T=$(mktemp -d /tmp/mls-it.XXXXXX)
MASTER_PID=
declare -A AGENT_PID=()
CTL_PORT=
AGENT_PORT=
FAILED=0

log() { printf '# %s\n' "$*"; }

# Daemons run sealed (keys from `mlmaster init`) unless MLS_INSECURE=1.
SECURE=1
[ "${MLS_INSECURE:-0}" = 1 ] && SECURE=0

mlctl() {
	if [ "$SECURE" = 1 ]; then
		"$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --key "$T/master/admin.key" "$@"
	else
		"$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" "$@"
	fi
}

# mlctl_within SECONDS ARGS...: mlctl, killed if it runs longer.
mlctl_within() {
	local t=$1
	shift
	if [ "$SECURE" = 1 ]; then
		timeout "$t" "$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" --key "$T/master/admin.key" "$@"
	else
		timeout "$t" "$MLCTL_BIN" --master "tcp://127.0.0.1:$CTL_PORT" "$@"
	fi
}

# The flags that make a daemon sealed or not.
master_sec() { [ "$SECURE" = 1 ] || echo --insecure; }
agent_sec() {
	if [ "$SECURE" = 1 ]; then
		echo --join
		cat "$T/master/join.token"
	else
		echo --insecure
	fi
}

# fail MESSAGE: record a failed assertion (the test goes on to clean up).
fail() {
	log "FAIL: $*"
	FAILED=1
}

# check DESCRIPTION COMMAND...: assert that COMMAND succeeds.
check() {
	local what=$1
	shift
	if "$@"; then
		log "ok: $what"
	else
		fail "$what"
	fi
}

# wait_for SECONDS COMMAND...: poll COMMAND every 50 ms until it succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	while ((SECONDS <= deadline)); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# master_says FROM PATTERN: master.log matches PATTERN past byte FROM (what
# this master process wrote, not an earlier one: a restarted master reuses
# the ports, and mlctl requests sealed before it is up are refused).
master_says() { tail -c +"$(($1 + 1))" "$T/master.log" | grep -q "$2"; }

start_master() {
	local tries from
	if [ "$SECURE" = 1 ] && [ ! -f "$T/master/master.key" ]; then
		"$MLMASTER" init --state-dir "$T/master" >/dev/null 2>>"$T/master.log" || return 1
	fi
	for tries in 1 2 3 4 5; do
		[ -n "$CTL_PORT" ] || CTL_PORT=$((20000 + RANDOM % 20000))
		[ -n "$AGENT_PORT" ] || AGENT_PORT=$((CTL_PORT + 1))
		from=$(stat -c %s "$T/master.log" 2>/dev/null || echo 0)
		# shellcheck disable=SC2046
		"$MLMASTER" $(master_sec) --state-dir "$T/master" --listen "tcp://127.0.0.1:$CTL_PORT" \
			--agent-listen "tcp://127.0.0.1:$AGENT_PORT" --grace 1s "$@" \
			>>"$T/master.log" 2>&1 &
		MASTER_PID=$!
		if wait_for 5 master_says "$from" "listening on tcp://127.0.0.1:$CTL_PORT"; then
			return 0
		fi
		kill -9 "$MASTER_PID" 2>/dev/null
		wait "$MASTER_PID" 2>/dev/null
		MASTER_PID=
		if master_says "$from" "cannot listen" && [ "$tries" -lt 5 ]; then
			CTL_PORT= AGENT_PORT=
			continue
		fi
		break
	done
	log "mlmaster did not start:"
	sed 's/^/#   /' "$T/master.log"
	return 1
}

# Agents on one host share its ports: each gets its own --ports range
# (below the random master ports and the kernel's ephemeral range), kept
# across restarts of that agent.
declare -A AGENT_PORTS=()
NEXT_PORTS=${MLS_PORT_BASE:-12000}

# start_agent NAME [mlagent options...]
start_agent() {
	local name=$1
	shift
	local sec
	mapfile -t sec < <(agent_sec)
	if [ -z "${AGENT_PORTS[$name]:-}" ]; then
		AGENT_PORTS[$name]="$NEXT_PORTS-$((NEXT_PORTS + 199))"
		NEXT_PORTS=$((NEXT_PORTS + 200))
	fi
	"$MLAGENT" "${sec[@]}" --master "tcp://127.0.0.1:$AGENT_PORT" --name "$name" \
		--state-dir "$T/agent-$name" --heartbeat 200ms --ports "${AGENT_PORTS[$name]}" "$@" \
		>>"$T/agent-$name.log" 2>&1 &
	AGENT_PID[$name]=$!
	wait_for 5 node_ready "$name" || {
		log "agent $name did not register:"; sed "s/^/#   /" "$T/agent-$name.log"
		return 1
	}
}

# http_get HOST:PORT PATH: the body of an HTTP/1.0 GET (bash's /dev/tcp; the
# static busybox wget does not run on every host).  Fails on a non-2xx status.
http_get() {
	local out
	out=$(exec 3<>"/dev/tcp/${1%:*}/${1##*:}" &&
		printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$2" "$1" >&3 &&
		timeout 2 cat <&3) || return 1
	head -n1 <<<"$out" | grep -q '^HTTP/1\.[01] 2' || return 1
	sed '1,/^\r\?$/d' <<<"$out"
}

node_ready() { mlctl -o json nodes | jq -e --arg n "$1" '.[] | select(.name == $n and .state == "ready")' >/dev/null; }

# job_field JOB FIELD: a top-level field of `mlctl -o json status JOB`.
job_field() {
	mlctl -o json status "$1" | jq -r ".$2"
}

job_state_is() { [ "$(job_field "$1" state)" = "$2" ]; }

# kill_shims: kill -9 the task shims ("mlagent-shim shim DIR", one per task;
# they outlive their agent) of this test's agents.  Their containers keep
# running until runc kills them.
kill_shims() {
	local f pid dir
	for f in "$T"/agent-*/tasks/*/shim.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		dir=$(realpath "$(dirname "$f")")
		# shim.pid may be stale: make sure the pid is still that shim.
		if [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "mlagent-shim shim $dir " ]; then
			kill -9 "$pid" 2>/dev/null
		fi
	done
}

# Other processes a test started (etcd members, extra masters): killed -9 by
# cleanup.
declare -A EXTRA_PID=()

# start_etcd_cluster N: N etcd members on loopback; ETCD_CLIENTS is their
# comma-separated host:port list, ETCD_CLIENT[i] and ETCD_ARGS[i] each one's.
ETCD_CLIENTS=
declare -a ETCD_CLIENT=() ETCD_ARGS=()
start_etcd_cluster() {
	local n=$1 i base cluster=
	command -v etcd >/dev/null || { log "etcd not found (apt-get install etcd-server)"; return 1; }
	base=$((10000 + (RANDOM % 300) * 6))
	for ((i = 0; i < n; i++)); do
		cluster+="${cluster:+,}e$i=http://127.0.0.1:$((base + 2 * i + 1))"
	done
	for ((i = 0; i < n; i++)); do
		ETCD_CLIENT[i]=127.0.0.1:$((base + 2 * i))
		ETCD_ARGS[i]="--name e$i --data-dir $T/etcd-$i \
			--listen-client-urls http://${ETCD_CLIENT[i]} --advertise-client-urls http://${ETCD_CLIENT[i]} \
			--listen-peer-urls http://127.0.0.1:$((base + 2 * i + 1)) \
			--initial-advertise-peer-urls http://127.0.0.1:$((base + 2 * i + 1)) \
			--initial-cluster $cluster --initial-cluster-state new \
			--max-txn-ops 10000 --max-request-bytes 10485760"
		ETCD_CLIENTS+="${ETCD_CLIENTS:+,}${ETCD_CLIENT[i]}"
		start_etcd "$i" || return 1
	done
	etcd_healthy() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_CLIENTS" endpoint health >/dev/null 2>&1; }
	wait_for 20 etcd_healthy || { log "etcd cluster did not become healthy"; return 1; }
}

# start_etcd I: (re)start member I with its arguments.
start_etcd() {
	# shellcheck disable=SC2086
	etcd ${ETCD_ARGS[$1]} >>"$T/etcd-$1.log" 2>&1 &
	EXTRA_PID[etcd$1]=$!
}

# ---- bursts of submissions (master-kill.sh, ha.sh) ------------------------
# One job in ten (names ending in 0) runs a container; the others ask for a
# GPU the agents do not have and stay pending: every submission must be
# there exactly once and the runnable ones must run once, without hundreds
# of real containers a round.

# burst_submit CTL TIMEOUT PREFIX N: N submissions through the function or
# binary CTL from four clients at once; the names acknowledged go to
# $T/acked (one short append each, so the clients' lines do not mix).
# Submissions while no master answers fail (not acknowledged); the clients
# go on.
burst_submit() {
	local ctl=$1 to=$2 prefix=$3 n=$4 c
	for c in 0 1 2 3; do
		(
			local k gpus
			for ((k = c + 1; k <= n; k += 4)); do
				gpus=1
				[ $((k % 10)) = 0 ] && gpus=0
				"$ctl" --timeout "$to" run --name "$prefix-$k" --gpus "$gpus" --memory 16M \
					"$MLS_ROOTFS" -- true >/dev/null 2>>"$T/submit.err" &&
					echo "$prefix-$k" >>"$T/acked"
			done
		) &
	done
	wait
}
# burst_all_done CTL: every acknowledged job is listed exactly once, the
# runnable ones succeeded and the others wait (the listing is kept in
# $T/ls.json for the checks below).
burst_all_done() {
	"$1" -o json ls --all >"$T/ls.json" || return 1
	jq -e --slurpfile want <(jq -R . "$T/acked" | jq -s .) '
		[.[] | select(.name as $n | $want[0] | index($n))] as $got |
		($got | length) == ($want[0] | length) and
		($got | all(if (.name | test("0$")) then .state == "succeeded" else .state == "pending" end))' \
		"$T/ls.json" >/dev/null
}
burst_dup_names() { jq -r '.[].name' "$T/ls.json" | sort | uniq -d; }
# Every job that succeeded in the listing was started exactly once, over
# all agents.
burst_started_once() {
	local id n bad=0
	cat "$T"/agent-*.log >"$T/agents.all"
	for id in $(jq -r '.[] | select(.state == "succeeded") | .id' "$T/ls.json"); do
		n=$(grep -c "job=$id task=0 container=mls-$id-0 started" "$T/agents.all")
		[ "$n" = 1 ] || { log "job $id started $n times"; bad=1; }
	done
	[ "$bad" = 0 ]
}
# For a failed check: acknowledged jobs neither succeeded nor waiting.
burst_show_missing() {
	jq -c --slurpfile want <(jq -R . "$T/acked" | jq -s .) \
		'.[] | select((.name as $n | $want[0] | index($n)) and .state != "succeeded" and .state != "pending") | [.id, .name, .state, .reason]' \
		"$T/ls.json" | head -20 | while read -r l; do log "not done: $l"; done
}

# Every test ends here, pass or fail: stop daemons, remove containers.
cleanup() {
	local name root id
	for name in "${!EXTRA_PID[@]}"; do
		kill -9 "${EXTRA_PID[$name]}" 2>/dev/null
	done
	for name in "${!AGENT_PID[@]}"; do
		kill -9 "${AGENT_PID[$name]}" 2>/dev/null
	done
	[ -n "$MASTER_PID" ] && kill -9 "$MASTER_PID" 2>/dev/null
	wait 2>/dev/null
	# Daemons built with --enable-asan (contrib/test.sh runs the tests
	# against build-asan/) write ASan and UBSan reports to their stderr,
	# which is their log: any report fails the test.
	local san
	san=$(grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$T"/*.log 2>/dev/null)
	if [ -n "$san" ]; then
		log "FAIL: sanitizer reports in $(echo "$san" | xargs -n1 basename | tr '\n' ' ')"
		grep -h -A12 "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" $san | sed 's/^/#   /'
		FAILED=1
	fi
	# Before the containers: a shim would write into $T as it is removed.
	kill_shims
	for root in "$T"/agent-*/runc; do
		[ -d "$root" ] || continue
		for id in $(runc --root "$root" list -q 2>/dev/null); do
			runc --root "$root" kill "$id" KILL >/dev/null 2>&1
			runc --root "$root" delete --force "$id" >/dev/null 2>&1
		done
	done
	if [ "$FAILED" != 0 ]; then
		for f in "$T"/*.log; do
			log "--- $(basename "$f")"
			tail -n 40 "$f" | sed 's/^/#   /'
		done
	fi
	# File systems a test mounted under $T (a small tmpfs to fill up).
	awk -v t="$T/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r |
		while read -r mnt; do umount -l "$mnt"; done
	rm -rf "$T"
	# An EXIT trap's exit sets the status: a report found above fails
	# a test whose checks all passed.
	[ "$FAILED" = 0 ] || exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# finish: the last line of every test script.
finish() {
	exit "$FAILED"
}
