#!/usr/bin/env bash
# HA masters on a real three-member etcd cluster (loopback ports), two agents
# and mlctl given every master:
#  - rounds of 200 submissions during which the leader is killed with
#    SIGKILL: a new leader within the lease TTL (2 s) + 1 s, every
#    acknowledged job present exactly once, the runnable ones (one in ten)
#    succeeded, no task started twice, scheduling resumed;
#  - a leader frozen (SIGSTOP) past its lease: another takes over, and the
#    old one, woken (SIGCONT), steps down without writing or placing;
#  - an etcd member killed and restarted during submissions: nothing lost.
. "$(dirname "$0")/lib.sh"

ROUNDS=${MLS_HA_ROUNDS:-5}
PER_ROUND=${MLS_HA_JOBS:-200}

start_etcd_cluster 3 || { fail "etcd cluster"; finish; }
"$MLMASTER" init --state-dir "$T/master" >/dev/null 2>>"$T/master.log" || exit 1

base=$((20000 + (RANDOM % 1000) * 10))
declare -a CP AP
CTL_LIST= AGENT_LIST=
for i in 1 2 3; do
	CP[i]=$((base + 2 * i))
	AP[i]=$((base + 2 * i + 1))
	CTL_LIST+="${CTL_LIST:+,}tcp://127.0.0.1:${CP[i]}"
	AGENT_LIST+="${AGENT_LIST:+,}tcp://127.0.0.1:${AP[i]}"
	mkdir -p "$T/m$i"
	cp -a "$T/master/." "$T/m$i/"
done

start_m() {
	"$MLMASTER" --state-dir "$T/m$1" --listen "tcp://127.0.0.1:${CP[$1]}" \
		--agent-listen "tcp://127.0.0.1:${AP[$1]}" --store "etcd://$ETCD_CLIENTS" --store-prefix /ha-test/ \
		--lease-ttl 2s --grace 1s --log-level debug --debug store >>"$T/m$1.log" 2>&1 &
	EXTRA_PID[m$1]=$!
}
hactl() { "$MLCTL_BIN" --master "$CTL_LIST" --key "$T/master/admin.key" "$@"; }
# The master whose record the leader key holds (1..3), or nothing.
leader() {
	local rec
	rec=$(ETCDCTL_API=3 etcdctl --endpoints "$ETCD_CLIENTS" get /ha-test/leader --print-value-only 2>/dev/null)
	for i in 1 2 3; do
		grep -q "\"client\":\"tcp://127.0.0.1:${CP[i]}\"" <<<"$rec" && echo "$i" && return 0
	done
	return 1
}
has_leader() { [ -n "$(leader)" ]; }

for i in 1 2 3; do start_m "$i"; done
check "a leader is elected" wait_for 10 has_leader
check "records live under --store-prefix" bash -c "ETCDCTL_API=3 etcdctl --endpoints '$ETCD_CLIENTS' get /ha-test/ --prefix --keys-only | grep -q '^/ha-test/leader\$'"
mapfile -t sec < <(agent_sec)
for a in a1 a2; do
	"$MLAGENT" "${sec[@]}" --master "$AGENT_LIST" --name "$a" --state-dir "$T/agent-$a" \
		--heartbeat 200ms --ports "$((12000 + ${a#a} * 200))-$((12199 + ${a#a} * 200))" \
		>>"$T/agent-$a.log" 2>&1 &
	AGENT_PID[$a]=$!
done
nodes_ready() { [ "$(hactl -o json nodes | jq '[.[] | select(.state == "ready")] | length')" = 2 ]; }
check "both agents registered with the leader" wait_for 15 nodes_ready
hactl run --wait --name warmup "$MLS_ROOTFS" -- true >/dev/null || fail "warm-up job"

: >"$T/acked"
for ((r = 1; r <= ROUNDS; r++)); do
	old=$(leader)
	burst_submit hactl 5s "r$r" "$PER_ROUND" &
	spid=$!
	sleep 1
	kill -9 "${EXTRA_PID[m$old]}"
	wait "${EXTRA_PID[m$old]}" 2>/dev/null
	t0=${EPOCHREALTIME/./}
	new_leader() { local l; l=$(leader) && [ "$l" != "$old" ]; }
	wait_for 10 new_leader
	t1=${EPOCHREALTIME/./}
	ms=$(((t1 - t0) / 1000))
	log "round $r: leader m$old killed; m$(leader) leads after $ms ms"
	check "round $r: a new leader within 3 s ($ms ms)" [ "$ms" -le 3000 ]
	start_m "$old"
	wait "$spid"
	t2=${EPOCHREALTIME/./}
	check "round $r: every acknowledged job there once, the runnable ones succeeded" wait_for 60 burst_all_done hactl
	log "round $r: submissions took $(((t2 - t0) / 1000)) ms after the kill, the jobs $(((${EPOCHREALTIME/./} - t2) / 1000)) ms more"
	check "round $r: no duplicate job names" [ -z "$(burst_dup_names)" ]
	check "round $r: no task started twice" burst_started_once
done
log "$(wc -l <"$T/acked") jobs acknowledged in $ROUNDS rounds"
check "the agents moved to each new leader" grep -q "is not the leader\|does not answer" "$T/agent-a1.log"
check "a new leader took the standby's model as it was" grep -q "the standby's model, current" "$T"/m?.log

# A frozen leader: SIGSTOP past its lease, another takes over, SIGCONT.
old=$(leader)
kill -STOP "${EXTRA_PID[m$old]}"
f=$((old % 3 + 1))
out=$("$MLCTL_BIN" --master "tcp://127.0.0.1:${CP[f]}" --key "$T/master/admin.key" --timeout 1s -o json ls --all)
check "a standby answers reads itself (its model is warm)" [ "$(jq 'length' <<<"$out")" -ge "$(wc -l <"$T/acked")" ]
out=$("$MLCTL_BIN" --master "tcp://127.0.0.1:${CP[f]}" --key "$T/master/admin.key" --timeout 1s cancel warmup 2>&1)
check "a standby sends writes to the leader" grep -q "no answer from the master at tcp://127.0.0.1:${CP[old]}" <<<"$out"
new_leader() { local l; l=$(leader) && [ "$l" != "$old" ]; }
check "another master leads while m$old is frozen" wait_for 10 new_leader
hactl run --wait --name during-freeze "$MLS_ROOTFS" -- true >/dev/null || fail "a job during the freeze"
from=$(stat -c %s "$T/m$old.log")
kill -CONT "${EXTRA_PID[m$old]}"
sleep 2
after=$(tail -c +"$((from + 1))" "$T/m$old.log")
check "the woken master steps down" grep -q "no longer the leader" <<<"$after"
check "it wrote nothing" bash -c "! grep -q 'commit:' <<<\"\$1\"" _ "$after"
check "it placed and started nothing" bash -c "! grep -qE 'placed:|task=[0-9]+ node=[a-z0-9]+ running|-> ' <<<\"\$1\"" _ "$after"
check "scheduling goes on" hactl run --wait --name after-freeze "$MLS_ROOTFS" -- true >/dev/null

# An etcd member killed and restarted during submissions.
: >"$T/acked"
burst_submit hactl 5s etcd 60 &
spid=$!
sleep 0.5
kill -9 "${EXTRA_PID[etcd0]}"
wait "${EXTRA_PID[etcd0]}" 2>/dev/null
sleep 1
start_etcd 0
wait "$spid"
check "with an etcd member restarted: every acknowledged job once" wait_for 60 burst_all_done hactl
burst_show_missing
check "no task started twice" burst_started_once
log "$(wc -l <"$T/acked") of 60 acknowledged while an etcd member restarted"
finish
