#!/usr/bin/env bash
# ha-failover.sh - HA masters on a real three-member etcd cluster (loopback,
# free ports, etcd --max-txn-ops 10000 --max-request-bytes 10485760):
#
#  1. leader kill -9 -> first job placed by the new leader.  Three masters
#     (--store etcd://..., --lease-ttl 2s), one sealed agent (--join, like
#     tests/integration/ha.sh; heartbeat -b, 200ms as in ha.sh) given every
#     master.  Each trial: find the leader (the etcd key /mlsched/leader),
#     kill -9 it, and at once start a loop of `mlctl --master M1,M2,M3
#     --timeout 500ms run --name tN` (retried until acknowledged); the time
#     is from the kill to the new leader's log line `job=J name=tN placed`
#     (ms timestamps).  The
#     election alone is the kill to the new leader's `leader now` line.  The
#     killed master is restarted (and its standby model loaded) before the
#     next trial.
#  2. submissions/s: N sequential `mlctl run --gpus 1` (no agent, so the jobs
#     stay pending and nothing runs) against one master on the sqlite store
#     and one master on the three-member etcd store (its own key prefix),
#     both running, in alternating blocks of 50; then N more split over C
#     concurrent mlctl loops, alternating the same way.  Each figure is jobs
#     / the wall time of that store's blocks; the ratio etcd/sqlite is
#     printed.  The floor, `mlctl ls` calls/s against the sqlite master
#     (process start, sealed round trip), is printed too.
#
# Every daemon is sealed (mlmaster init keys, --join token, mlctl --key).
#
#   tests/bench/ha-failover.sh [-n 10] [-s 500] [-c 4] [-b 200ms] [-l LOGDIR] [BUILD_DIR]
set -u
export LC_ALL=C
TRIALS=10
NSUB=500
CONC=4
HB=200ms
KEEP=
while getopts "n:s:c:b:l:h" o; do
	case $o in
	n) TRIALS=$OPTARG ;;
	s) NSUB=$OPTARG ;;
	c) CONC=$OPTARG ;;
	b) HB=$OPTARG ;;
	l) KEEP=$OPTARG ;;
	*) echo "usage: $0 [-n TRIALS] [-s SUBMISSIONS] [-c CLIENTS] [-b AGENT_HEARTBEAT] [-l LOGDIR] [BUILD_DIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
B=$(cd "${1:-./build}" && pwd) || exit 2
HERE=$(cd "$(dirname "$0")" && pwd)
for p in master/mlmaster master/ctl/mlctl agent/mlagent; do
	[ -x "$B/$p" ] || { echo "$B/$p is missing: build first" >&2; exit 2; }
done
for c in etcd etcdctl jq runc; do
	command -v "$c" >/dev/null || { echo "needs $c" >&2; exit 2; }
done
T=$(mktemp -d /tmp/mls-hafo.XXXXXX)
# Private copies: a rebuild of BUILD_DIR during the run must not matter.
mkdir -p "$T/bin"
cp "$B/master/mlmaster" "$B/agent/mlagent" "$B/master/ctl/mlctl" "$T/bin/" || exit 2
MLMASTER=$T/bin/mlmaster
MLAGENT=$T/bin/mlagent
MLCTL=$T/bin/mlctl
declare -A PID=()

cleanup() {
	local n r id
	exec 2>/dev/null # no "Killed" notices for the daemons
	for n in "${!PID[@]}"; do kill -CONT "${PID[$n]}" 2>/dev/null; kill -9 "${PID[$n]}" 2>/dev/null; done
	# the submit loops and anything else started in the background
	for n in $(jobs -p); do kill -9 "$n" 2>/dev/null; done
	wait 2>/dev/null
	for f in "$T"/agent/tasks/*/shim.pid; do
		[ -f "$f" ] || continue
		n=$(cat "$f")
		[ "$(tr '\0' ' ' <"/proc/$n/cmdline" 2>/dev/null)" = "mlagent-shim shim $(realpath "$(dirname "$f")") " ] &&
			kill -9 "$n" 2>/dev/null
	done
	r=$T/agent/runc
	if [ -d "$r" ]; then
		for id in $(runc --root "$r" list -q 2>/dev/null); do
			runc --root "$r" kill "$id" KILL >/dev/null 2>&1
			runc --root "$r" delete --force "$id" >/dev/null 2>&1
		done
	fi
	if [ -n "$KEEP" ]; then
		mkdir -p "$KEEP" && cp "$T"/*.log "$T"/*.txt "$KEEP"/ 2>/dev/null
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
die() { echo "ha-failover: $*" >&2; exit 1; }

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# log_ms LINE: the ms epoch of a master log line (2026-12-02T07:39:27.945Z ...)
log_ms() { date -u -d "${1%% *}" +%s%3N; }
wait_for() { # SECONDS COMMAND...: poll every 20 ms
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS > deadline)) && return 1
		sleep 0.02
	done
}

# Free loopback ports: K consecutive ones from a random base, none listening.
free_ports() {
	local k=$1 base i busy
	for _ in $(seq 1 50); do
		base=$((14000 + RANDOM % 18000)) # below the ephemeral range (32768-)
		busy=0
		for ((i = 0; i < k; i++)); do
			ss -Htan "sport = :$((base + i))" | grep -q . && { busy=1; break; }
		done
		[ "$busy" = 0 ] && { echo "$base"; return 0; }
	done
	return 1
}

# ---- etcd: three members --------------------------------------------------
EB=$(free_ports 6) || die "no free ports"
cluster=
for i in 0 1 2; do cluster+="${cluster:+,}e$i=http://127.0.0.1:$((EB + 2 * i + 1))"; done
ETCD=
for i in 0 1 2; do
	c=127.0.0.1:$((EB + 2 * i))
	ETCD+="${ETCD:+,}$c"
	etcd --name "e$i" --data-dir "$T/etcd-$i" \
		--listen-client-urls "http://$c" --advertise-client-urls "http://$c" \
		--listen-peer-urls "http://127.0.0.1:$((EB + 2 * i + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((EB + 2 * i + 1))" \
		--initial-cluster "$cluster" --initial-cluster-state new \
		--max-txn-ops 10000 --max-request-bytes 10485760 >>"$T/etcd-$i.log" 2>&1 &
	PID[etcd$i]=$!
done
ectl() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD" "$@"; }
wait_for 30 ectl endpoint health || die "etcd cluster did not become healthy"

"$MLMASTER" init --state-dir "$T/keys" >/dev/null 2>>"$T/init.log" || die "mlmaster init"
KEY=$T/keys/admin.key
bash "$HERE/../../contrib/mkrootfs.sh" "$T/rootfs" >/dev/null || die "mkrootfs"

# ---- part 1: leader kill -9 ----------------------------------------------
MB=$(free_ports 6) || die "no free ports"
declare -a CP AP
CTL_LIST=
AGENT_LIST=
for i in 1 2 3; do
	CP[i]=$((MB + 2 * (i - 1)))
	AP[i]=$((MB + 2 * (i - 1) + 1))
	CTL_LIST+="${CTL_LIST:+,}tcp://127.0.0.1:${CP[i]}"
	AGENT_LIST+="${AGENT_LIST:+,}tcp://127.0.0.1:${AP[i]}"
	mkdir -p "$T/m$i"
	cp -a "$T/keys/." "$T/m$i/"
done
start_m() {
	"$MLMASTER" --state-dir "$T/m$1" --listen "tcp://127.0.0.1:${CP[$1]}" \
		--agent-listen "tcp://127.0.0.1:${AP[$1]}" --store "etcd://$ETCD" \
		--lease-ttl 2s >>"$T/m$1.log" 2>&1 &
	PID[m$1]=$!
}
hactl() { "$MLCTL" --master "$CTL_LIST" --key "$KEY" "$@"; }
mctl() { local i=$1; shift; "$MLCTL" --master "tcp://127.0.0.1:${CP[i]}" --key "$KEY" "$@"; }
leader() { # the master (1..3) whose record the leader key holds
	local rec i
	rec=$(ectl get /mlsched/leader --print-value-only 2>/dev/null)
	for i in 1 2 3; do
		grep -q "\"client\":\"tcp://127.0.0.1:${CP[i]}\"" <<<"$rec" && echo "$i" && return 0
	done
	return 1
}
has_leader() { [ -n "$(leader)" ]; }
node_ready_on() { # MASTER: the leader M says the agent's node is ready
	[ "$(mctl "$1" --timeout 1s -o json nodes | jq -r '.[] | select(.name == "a1") | .state')" = ready ]
}
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
says_since() { tail -c +"$(($2 + 1))" "$1" | grep -q "$3"; }

for i in 1 2 3; do start_m "$i"; done
wait_for 15 has_leader || die "no leader elected"
"$MLAGENT" --join "$(cat "$T/keys/join.token")" --master "$AGENT_LIST" --name a1 \
	--state-dir "$T/agent" --heartbeat "$HB" --ports 13000-13199 >>"$T/agent.log" 2>&1 &
PID[agent]=$!
wait_for 20 node_ready_on "$(leader)" || die "the agent did not register"
hactl --timeout 5s run --wait --name warmup --memory 16M "$T/rootfs" -- true >/dev/null || die "warm-up job"

: >"$T/failover.txt"
for ((r = 1; r <= TRIALS; r++)); do
	old=$(leader) || die "trial $r: no leader"
	# Steady state: the agent is confirmed on the leader, standbys are warm.
	wait_for 20 node_ready_on "$old" || die "trial $r: node not ready on m$old"
	for i in 1 2 3; do OFF[i]=$(size "$T/m$i.log"); done
	aoff=$(size "$T/agent.log")
	t0=$(now_ms)
	kill -9 "${PID[m$old]}"
	(
		until hactl --timeout 500ms run --name "t$r" --memory 16M "$T/rootfs" -- true >/dev/null 2>"$T/err"; do
			echo "$(date -u +%H:%M:%S.%3N) t$r: $(cat "$T/err")" >>"$T/submit-err.log"
		done
		echo "$(now_ms)" >"$T/ack-$r"
	) &
	spid=$!
	wait "${PID[m$old]}" 2>/dev/null
	placed_line() {
		local i
		for i in 1 2 3; do
			[ "$i" = "$old" ] && continue
			tail -c +"$((OFF[i] + 1))" "$T/m$i.log" | grep -m1 -E "job=[0-9]+ name=t$r placed" && return 0
		done
		return 1
	}
	wait_for 30 placed_line || die "trial $r: job t$r not placed within 30 s"
	wait "$spid"
	new=
	for i in 1 2 3; do
		[ "$i" = "$old" ] && continue
		says_since "$T/m$i.log" "${OFF[i]}" "name=t$r placed" && new=$i
	done
	pl=$(tail -c +"$((OFF[new] + 1))" "$T/m$new.log" | grep -m1 -E "name=t$r placed")
	ll=$(tail -c +"$((OFF[new] + 1))" "$T/m$new.log" | grep -m1 "leader now")
	# The agent's first SYNC answered by the new leader: its node confirmed.
	ml=$(tail -c +"$((aoff + 1))" "$T/agent.log" | grep "moving to" | tail -1)
	tp=$(log_ms "$pl")
	tl=$(log_ms "$ll")
	tm=$([ -n "$ml" ] && log_ms "$ml" || echo "$t0")
	ta=$(cat "$T/ack-$r")
	printf '%d %d %d %d %d m%d m%d %d\n' "$r" $((tp - t0)) $((tl - t0)) $((ta - t0)) $((tm - t0)) \
		"$old" "$new" "$(tail -c +"$((aoff + 1))" "$T/agent.log" | grep -c "moving to")" >>"$T/failover.txt"
	printf '# trial %2d: m%d killed; m%d leader after %5d ms, t%d acknowledged after %5d ms, placed after %5d ms; agent moved %d times, last at %d ms\n' \
		"$r" "$old" "$new" $((tl - t0)) "$r" $((ta - t0)) $((tp - t0)) \
		"$(tail -c +"$((aoff + 1))" "$T/agent.log" | grep -c "moving to")" $((tm - t0))
	# Restart the killed master; wait until its standby model is loaded.
	off=$(size "$T/m$old.log")
	start_m "$old"
	wait_for 15 says_since "$T/m$old.log" "$off" "leader is master" || die "m$old did not come back as a standby"
	sleep 0.5
done
for i in 1 2 3; do kill -9 "${PID[m$i]}" 2>/dev/null; wait "${PID[m$i]}" 2>/dev/null; unset "PID[m$i]"; done
kill -9 "${PID[agent]}"; wait "${PID[agent]}" 2>/dev/null; unset "PID[agent]"

# ---- part 2: submissions/s -----------------------------------------------
# Both masters run at once and take turns, block by block (BLK submissions to
# one, then to the other), so that other load on the machine hits both alike.
mkdir -p "$T/img"
SP=$(free_ports 4) || die "no free ports"
declare -A SURL=([sqlite]=tcp://127.0.0.1:$SP [etcd]=tcp://127.0.0.1:$((SP + 2)))
start_single() { # NAME PORT STORE_ARGS...
	local n=$1 p=$2
	shift 2
	mkdir -p "$T/$n"
	cp -a "$T/keys/." "$T/$n/"
	"$MLMASTER" --state-dir "$T/$n" --listen "tcp://127.0.0.1:$p" --agent-listen "tcp://127.0.0.1:$((p + 1))" \
		"$@" >>"$T/single-$n.log" 2>&1 &
	PID[$n]=$!
	wait_for 15 "$MLCTL" --master "tcp://127.0.0.1:$p" --key "$KEY" --timeout 500ms ls ||
		die "$n master did not answer: $(tail -3 "$T/single-$n.log")"
}
start_single sqlite "$SP"
start_single etcd "$((SP + 2))" --store "etcd://$ETCD/subbench/" --lease-ttl 2s
sub_loop() { # STORE PREFIX FROM TO
	local k
	for ((k = $3; k <= $4; k++)); do
		"$MLCTL" --master "${SURL[$1]}" --key "$KEY" run --name "$2-$k" --gpus 1 --memory 16M "$T/img" -- true >/dev/null ||
			echo "$1 $2-$k failed" >>"$T/submit-err.log"
	done
}
rate() { awk -v n="$1" -v us="$2" 'BEGIN {printf "%.1f", n / (us / 1e6)}'; }
declare -A SEQ_US=([sqlite]=0 [etcd]=0) BUR_US=([sqlite]=0 [etcd]=0)
BLK=50
[ "$NSUB" -lt "$BLK" ] && BLK=$NSUB
PER=$((BLK / CONC))
ROUNDS=$((NSUB / BLK))
for ((b = 0; b < ROUNDS; b++)); do
	for st in sqlite etcd; do
		t0=${EPOCHREALTIME/./}
		sub_loop "$st" seq $((b * BLK + 1)) $(((b + 1) * BLK))
		SEQ_US[$st]=$((SEQ_US[$st] + ${EPOCHREALTIME/./} - t0))
	done
done
for ((b = 0; b < ROUNDS; b++)); do
	for st in sqlite etcd; do
		pids=()
		t0=${EPOCHREALTIME/./}
		for ((c = 0; c < CONC; c++)); do sub_loop "$st" "burst$c" $((b * PER + 1)) $(((b + 1) * PER)) & pids+=($!); done
		wait "${pids[@]}"
		BUR_US[$st]=$((BUR_US[$st] + ${EPOCHREALTIME/./} - t0))
	done
done
t0=${EPOCHREALTIME/./}
for ((k = 0; k < 200; k++)); do "$MLCTL" --master "${SURL[sqlite]}" --key "$KEY" ls >/dev/null || die "ls"; done
floor=$(rate 200 $((${EPOCHREALTIME/./} - t0)))
NS=$((ROUNDS * BLK)) NB=$((ROUNDS * PER * CONC))
sq_seq=$(rate "$NS" "${SEQ_US[sqlite]}") et_seq=$(rate "$NS" "${SEQ_US[etcd]}")
sq_burst=$(rate "$NB" "${BUR_US[sqlite]}") et_burst=$(rate "$NB" "${BUR_US[etcd]}")
sq_n=$("$MLCTL" --master "${SURL[sqlite]}" --key "$KEY" -o json ls | jq length)
et_n=$("$MLCTL" --master "${SURL[etcd]}" --key "$KEY" -o json ls | jq length)
grep -q failed "$T/submit-err.log" 2>/dev/null && echo "# $(grep -c failed "$T/submit-err.log") submissions failed"

# ---- report --------------------------------------------------------------
pct() { # COLUMN: p50 and max (nearest rank) of failover.txt's column
	awk -v c="$1" '{print $c}' "$T/failover.txt" | sort -n |
		awk '{v[NR] = $1} END {printf "p50 %5d ms  max %5d ms  min %5d ms", v[int((NR + 1) / 2)], v[NR], v[1]}'
}
echo "leader kill -9, 3 masters on 3-member etcd, lease TTL 2 s, agent heartbeat $HB, $TRIALS trials"
echo "  kill -> first job placed by the new leader   $(pct 2)   (goal <= 3000 ms)"
echo "  kill -> new leader (election alone)          $(pct 3)"
echo "  kill -> submission acknowledged              $(pct 4)"
echo "  kill -> agent's last move to another master  $(pct 5)"
echo "submissions, one master per store, $NS sequential + $NB in bursts (--gpus 1, no agent: all stay pending), sealed"
printf '  mlctl ls floor (sqlite master)   %8s calls/s\n' "$floor"
printf '  sequential   sqlite %8s jobs/s   etcd %8s jobs/s   ratio etcd/sqlite %s\n' "$sq_seq" "$et_seq" \
	"$(awk -v a="$et_seq" -v b="$sq_seq" 'BEGIN {printf "%.2f", a / b}')"
printf '  %d clients    sqlite %8s jobs/s   etcd %8s jobs/s   ratio etcd/sqlite %s\n' "$CONC" "$sq_burst" "$et_burst" \
	"$(awk -v a="$et_burst" -v b="$sq_burst" 'BEGIN {printf "%.2f", a / b}')"
echo "  jobs stored: sqlite $sq_n, etcd $et_n (of $((NS + NB)) each)"
