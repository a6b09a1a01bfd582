#!/usr/bin/env bash
# Limits at the edge (docs/limits.md) against real daemons: each refusal
# names its limit and value, and the daemon is alive and answering after it.
# A spec too big, too many tasks, env entries and constraints; too many
# --labels; a message over WIRE_MAX_BODY and one far over the socket's
# receive limit (raw frames over TCP); a spec over SPEC_MAX_BYTES on the wire;
# a burst over --rate-limit while an agent keeps heartbeating; more
# connections than --max-conns; a task whose output passes --log-max.
#
# The master runs in the clear (--insecure) so that bash can speak the wire
# protocol itself for the raw frames; sealing does not change what is
# checked, only how a peer is named (sealed.sh covers sealing).
. "$(dirname "$0")/lib.sh"
SECURE=0

start_master || exit 1
start_agent a1 --log-max 64K --labels zone=a || exit 1

alive() { mlctl_within 10 ls >/dev/null; }

# ---- specs -------------------------------------------------------------
spec_head() { # NAME: the start of a batch spec
	printf 'name: %s\nkind: batch\nimage: %s\ncommand: [sh, -c, "true"]\n' "$1" "$MLS_ROOTFS"
}
{
	spec_head big
	head -c 270000 /dev/zero | tr '\0' '#' | fold -w 200 | sed 's/^/# /'
} >"$T/big.yaml"
err=$(mlctl submit "$T/big.yaml" 2>&1)
check "a spec over 256 KiB is refused ($err)" \
	grep -q "larger than 262144 bytes, the limit (SPEC_MAX_BYTES)" <<<"$err"

{ spec_head many; echo "array: 10001"; } >"$T/many.yaml"
err=$(mlctl submit "$T/many.yaml" 2>&1)
check "submit exits non-zero for too many tasks" [ $? -ne 0 ]
check "too many tasks names the limit ($err)" \
	grep -q "array: 10001 tasks is more than 10000, the limit (SPEC_MAX_TASKS)" <<<"$err"

{
	spec_head envs
	echo "env:"
	for i in $(seq 1 257); do echo "  V$i: x"; done
} >"$T/env.yaml"
err=$(mlctl submit "$T/env.yaml" 2>&1)
check "too many env entries names the limit ($err)" \
	grep -q "env: more than 256 variables, the limit (SPEC_MAX_ENV)" <<<"$err"

{
	spec_head cons
	echo "constraints:"
	for i in $(seq 1 17); do echo "  - k$i=v"; done
} >"$T/cons.yaml"
err=$(mlctl submit "$T/cons.yaml" 2>&1)
check "too many constraints names the limit ($err)" \
	grep -q "constraints: more than 16 entries, the limit (SPEC_MAX_CONSTRAINTS)" <<<"$err"
check "nothing was stored" [ "$(mlctl -o json ls | jq length)" -eq 0 ]

# ---- labels ------------------------------------------------------------
labels=$(for i in $(seq 1 17); do printf 'k%d=v,' "$i"; done)
err=$(timeout 10 "$MLAGENT" --insecure --master "tcp://127.0.0.1:$AGENT_PORT" --name a2 \
	--state-dir "$T/agent-a2" --labels "${labels%,}" 2>&1)
check "an agent with 17 labels does not start" [ $? -ne 0 ]
check "it names the label limit ($err)" grep -q "labels: 17 labels, over the limit of 16 per node" <<<"$err"
long=$(head -c 300 /dev/zero | tr '\0' v)
err=$(timeout 10 "$MLAGENT" --insecure --master "tcp://127.0.0.1:$AGENT_PORT" --name a2 \
	--state-dir "$T/agent-a2" --labels "zone=$long" 2>&1)
check "a 300-byte label value names its limit ($err)" \
	grep -q "labels: zone: the value is 300 bytes, over the limit of 63" <<<"$err"

# ---- raw frames --------------------------------------------------------
# The SP protocol over TCP: an 8-byte handshake each way, then each
# message is a 64-bit length and its bytes; a request starts with a 4-byte
# request id (top bit set) that the reply carries back.
be() { # WIDTH VALUE: VALUE as WIDTH big-endian bytes
	local i out=
	for ((i = $1 - 1; i >= 0; i--)); do out+=$(printf '\\x%02x' $((($2 >> (8 * i)) & 255))); done
	printf "$out"
}
sp_open() { # FD: connect to the client listener on FD and shake hands
	eval "exec $1<>/dev/tcp/127.0.0.1/$CTL_PORT" || return 1
	printf '\x00SP\x00\x00\x30\x00\x00' >&"$1"
	timeout 3 head -c 8 <&"$1" >/dev/null
}
sp_request() { # FD TYPE BODYLEN: a wire frame header; the caller sends the body
	be 8 $((4 + 32 + $3)) >&"$1"
	printf '\x80\x00\x00\x01MLSC\x00\x01' >&"$1"
	be 2 "$2" >&"$1"
	be 4 0 >&"$1"
	be 4 "$3" >&"$1"
	be 8 1 >&"$1"
	be 8 0 >&"$1"
}
reply_text() { timeout 3 cat <&"$1" | tr -c '[:print:]' '.'; }

sp_open 3
sp_request 3 1 8388609 # submit, one byte over WIRE_MAX_BODY
head -c 8388609 /dev/zero | tr '\0' ' ' >&3
out=$(reply_text 3)
exec 3<&-
check "a message over WIRE_MAX_BODY gets a reply naming it ($out)" \
	grep -q "over the limit of 8388608 bytes a message body (WIRE_MAX_BODY)" <<<"$out"
check "the master logged it" grep -q "client request refused: message refused: a message of 8388641 bytes" "$T/master.log"
check "the master answers after it" alive

sp_open 3
be 8 $((100 << 20)) >&3 # announces 100 MiB: nng drops the connection unread
start=$SECONDS
timeout 10 cat <&3 >/dev/null
rc=$?
exec 3<&-
check "a 100 MiB message closes its connection at once (rc $rc)" [ "$rc" -eq 0 ] && [ $((SECONDS - start)) -lt 5 ]
check "the master answers after it" alive

# A spec over SPEC_MAX_BYTES on the wire, refused before it is parsed.
body='{"spec":{"name":"x","pad":"'$(head -c 300000 /dev/zero | tr '\0' p)'"}}'
sp_open 3
sp_request 3 1 ${#body}
printf '%s' "$body" >&3
out=$(reply_text 3)
exec 3<&-
check "a 300 KB submit names SPEC_MAX_BYTES ($out)" \
	grep -q "spec: the submit request is 300030 bytes, over the limit of 262144 bytes for a spec (SPEC_MAX_BYTES)" <<<"$out"

# ---- log bytes kept per attempt ---------------------------------------
mlctl run --name chatty "$MLS_ROOTFS" -- sh -c 'yes 0123456789abcdef | head -c 3000000; echo last line' >/dev/null
check "chatty ran" wait_for 30 job_state_is chatty succeeded
mlctl logs chatty >"$T/chatty.out" 2>"$T/chatty.err"
check "mlctl logs says older bytes were dropped ($(cat "$T/chatty.err"))" \
	grep -q "older bytes of this log were dropped: its node keeps the newest 64K of each attempt's log (mlagent --log-max)" "$T/chatty.err"
n=$(stat -c %s "$T/chatty.out")
check "at most 64K of it is shown ($n bytes)" [ "$n" -le 65536 ] && [ "$n" -gt 60000 ]
check "the tail is kept" [ "$(tail -c 10 "$T/chatty.out")" = "last line" ]
used=$(du -B1 "$T"/agent-a1/logs/*.log | awk '{s += $1} END {print s}')
check "the log takes at most the cap on disk ($used bytes)" [ "$used" -le $((65536 + 8192)) ]
check "the agent said so" grep -q "log over --log-max 64K" "$T/agent-a1.log"

# ---- request rate per client -------------------------------------------
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
start_master --rate-limit 3 || exit 1
check "a1 is back" wait_for 10 node_ready a1
sleep 1.2 # a full bucket
pids=()
t0=$(date +%s%N)
for i in $(seq 1 30); do
	mlctl_within 20 ls >"$T/burst.$i" 2>&1 &
	pids+=($!)
done
wait "${pids[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
refused=$(grep -l "rate limit: 3 requests/s per client (mlmaster --rate-limit); retry later" "$T"/burst.* | wc -l)
answered=$(grep -l chatty "$T"/burst.* | wc -l)
log "$refused of 30 requests refused, $answered answered, in $ms ms"
check "a burst over the rate is refused, naming the limit" [ "$refused" -ge 5 ]
# A full bucket (3) and 3 a second for as long as the burst lasted.
check "no more than the rate got through" [ "$answered" -le $((3 + 3 * (ms + 999) / 1000)) ]
check "every request was answered or refused" [ $((refused + answered)) -eq 30 ]
check "no node was lost meanwhile" bash -c "! grep -q 'node=a1 lost' '$T/master.log'"
sleep 1
check "the master answers after the burst" alive
check "a1 is still ready" node_ready a1

# ---- connections per listener ---------------------------------------
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
start_master --max-conns 3 || exit 1
for fd in 4 5 6; do sp_open $fd || fail "connection $fd"; done
sp_open 7
timeout 5 cat <&7 >/dev/null
rc=$?
check "a fourth connection is closed at once (rc $rc)" [ "$rc" -eq 0 ]
timeout 1 cat <&4 >/dev/null
check "the first three stay open" [ $? -eq 124 ]
check "the refusal names --max-conns" \
	wait_for 5 grep -q "client listener: connection refused: 3 connections open is the limit (--max-conns 3)" "$T/master.log"
for fd in 4 5 6 7; do eval "exec $fd<&-"; done
check "the master answers once they close" wait_for 10 alive
check "a1 is still ready" node_ready a1
finish
