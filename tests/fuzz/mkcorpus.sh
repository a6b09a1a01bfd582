#!/usr/bin/env bash
# mkcorpus.sh - write the seed corpora in tests/fuzz/corpus/ (committed; run
# this again only to change them).  Seeds are small real inputs: frames of
# every type as mlctl, the master and the agent send them, the spec files in
# tests/data/specs and contrib/examples, specs in their JSON form, and
# programs for the harnesses that build their input (fuzz_seal's modes,
# fuzz_spec_json's builder).
set -eu
export LC_ALL=C
cd "$(dirname "$0")"
C=corpus
rm -rf "$C"
mkdir -p "$C/wire" "$C/seal" "$C/spec_yaml" "$C/spec_json" "$C/bodies"

# Big-endian integers as bytes.
be() { # be BYTES VALUE
	local n=$1 v=$2 i out=
	for ((i = n - 1; i >= 0; i--)); do
		out+=$(printf '\\x%02x' $(((v >> (8 * i)) & 255)))
	done
	printf '%b' "$out"
}
# frame TYPE SEQ SENDER BODY: a plaintext frame as wire_encode makes it.
frame() {
	printf 'MLSC'
	be 2 1
	be 2 "$1"
	be 4 0
	be 4 "${#4}"
	be 8 "$2"
	be 8 "$3"
	printf '%s' "$4"
}

SPEC_TRAIN='{"name":"resnet50","kind":"train","image":"/var/lib/mlsched/images/busybox","command":["sh","-c","echo $RANK"],"workers":2,"resources":{"gpus_milli":1000,"memory":8589934592,"cpu_milli":2000},"priority":50,"restart":{"policy":"on-failure","max":3},"env":{"NCCL_DEBUG":"INFO"},"constraints":["zone=a"]}'
SPEC_SERVE='{"name":"web","kind":"serve","image":"/img","command":"httpd -f -p $PORT","replicas":2,"standby":1,"resources":{"gpus_milli":250},"health":{"http":"/healthz","interval_ms":1000,"timeout_ms":500,"failures":3,"successes":1,"grace_ms":0},"autoscale":{"min":1,"max":8,"target_gpu_util":70,"window_ms":30000,"cooldown_ms":30000},"rollout":{"deadline_ms":120000},"policy":"spread"}'
SPEC_BATCH='{"name":"sweep","kind":"batch","image":"oci:/layouts/x:latest","command":["run","$ARRAY_INDEX"],"array":10,"parallelism":2,"reschedule":{"max":0},"workdir":"/work"}'
SPEC_TCP='{"name":"db","kind":"serve","image":"/img","command":["db"],"health":{"tcp":"127.0.0.1:$PORT"}}'
SPEC_EXEC='{"name":"cache","kind":"serve","image":"/img","command":["c"],"health":{"exec":["sh","-c","test -f /tmp/ok"],"grace_ms":2000}}'

SYNC='{"node":"gpu-01","boot":"b1","master_boot":"m1","ack":3,"capacity":{"address":"10.0.0.7","cpu_milli":8000,"memory":34359738368,"gpus":[{"index":0,"memory":85899345920,"model":"A100"},{"index":1,"memory":85899345920,"model":"A100"}],"labels":{"zone":"a"},"ports":[20000,29999]},"util":{"cpu_pct":12,"mem_used":1073741824,"gpus":[{"index":0,"util":55}]},"events":[{"seq":4,"type":"started","job":1,"task":0,"attempt":0},{"seq":5,"type":"exited","job":1,"task":1,"attempt":0,"code":1,"signal":0},{"seq":6,"type":"health","job":2,"task":0,"healthy":true,"at":1700000000000,"reason":"GET /healthz: 200"},{"seq":7,"type":"log","req":9,"data":"aGVsbG8K","offset":6,"eof":true,"running":false}],"tasks":[{"job":1,"task":0,"attempt":0,"state":"running","cpu_ns":123456789,"mem":1048576,"health":"healthy"}],"ping":true}'
JOIN='{"node":"gpu-02","boot":"b2","ack":0,"join":"mlsj1.TisME5RU8dUo7reJCDh08uUcqEmQMar1QxSpNIcIGX4.RSZXgaRGFddeCjbFD06EiOGffOEpvQDXduSP-Nhu_DU"}'
ORDERS='{"boot":"m1","ack":7,"orders":[{"seq":1,"op":"start","job":2,"task":0,"attempt":0,"image":"/img","workdir":"/work","command":["httpd","-f"],"env":{"PORT":"20001","RANK":"0"},"gpus":[0,1],"gpus_milli":250,"memory":134217728,"cpu_milli":100,"port":20001,"health":{"http":"http://127.0.0.1:20001/healthz","interval_ms":1000,"timeout_ms":500,"failures":3,"successes":1,"grace_ms":0}},{"seq":2,"op":"start","job":3,"task":0,"port":20002,"health":{"tcp":"[::1]:20002"}},{"seq":3,"op":"start","job":4,"task":0,"health":{"exec":["sh","-c","true"]}},{"seq":4,"op":"stop","job":1,"task":0,"attempt":0,"grace_ms":10000,"reason":"cancelled"},{"seq":5,"op":"log","job":1,"task":0,"req":9,"offset":0,"max":65536}]}'

w() { cat >"$1"; }
frame 1 1 0 "{\"spec\":$SPEC_TRAIN,\"request_id\":\"r-1\"}" | w "$C/wire/submit"
frame 2 2 0 '{"all":true}' | w "$C/wire/list"
frame 3 3 0 '{"job":"resnet50"}' | w "$C/wire/status"
frame 5 4 0 '' | w "$C/wire/nodes-empty"
frame 6 5 0 '{"job":"1","task":0,"offset":0,"max":65536}' | w "$C/wire/logs"
frame 7 6 0 '{"node":"gpu-01","evict":false}' | w "$C/wire/drain"
frame 10 7 0 '{"job":"web","replicas":3,"standby":1}' | w "$C/wire/scale"
frame 11 8 0 '{"job":"web","env":{"GREETING":"bonjour"},"command":["sh"]}' | w "$C/wire/rollout"
frame 12 9 0 '{"job":"web","to":1}' | w "$C/wire/rollback"
frame 16 10 0 '{"id":1,"name":"resnet50"}' | w "$C/wire/ok"
frame 17 11 0 '{"code":-30,"message":"not the leader","leader_agents":"tcp://h2:7071"}' | w "$C/wire/error"
frame 32 12 4242 "$SYNC" | w "$C/wire/sync"
frame 33 13 0 "$ORDERS" | w "$C/wire/orders"
frame 3 14 0 ' {"job":"x\u00e9\\\\u0000"} ' | w "$C/wire/escapes"
# Regressions: inputs of findings fixed in common/ (see the unit tests).
frame 32 15 1 '{"node":"a","ack":1e999}' | w "$C/wire/regress-inf"
frame 32 16 1 '{"node":"a","ack":1,"events":[{"seq":1e20}]}' | w "$C/wire/regress-seq-2e64"
cp "$C/wire/"* "$C/bodies/"
frame 1 20 0 "{\"spec\":$SPEC_SERVE}" | w "$C/bodies/submit-serve"
frame 1 21 0 "{\"spec\":$SPEC_BATCH}" | w "$C/bodies/submit-batch"
frame 1 22 0 "{\"spec\":$SPEC_TCP}" | w "$C/bodies/submit-tcp"
frame 11 23 0 "{\"spec\":$SPEC_EXEC}" | w "$C/bodies/rollout-spec"
frame 32 24 77 "$JOIN" | w "$C/bodies/sync-join"

# fuzz_seal: mode byte, then the mode's program (see fuzz_seal.c).
printf '\x00' | w "$C/seal/raw-empty"
frame 32 1 1 "$JOIN" | w "$C/seal/raw-plain"
{ printf '\x00'; printf 'MLSC\x00\x01\x00\x20\x00\x00\x00\x01\x00\x00\x00\x80'; head -c 144 /dev/zero; } | w "$C/seal/raw-sealed-zero"
# mode 1: type(2) seq(8) sender(8) nmut(1) offset_s(1) offset_ms(2) len(2) body
# cut/extend(1) - the frame opens (no mutation, offset 0).
{ printf '\x01'; be 2 32; be 8 5; be 8 99; printf '\x00\x00'; be 2 0; printf '\x00\x0b%s\x02' '{"ping":true}'; } | w "$C/seal/one-ok"
{ printf '\x01'; be 2 33; be 8 1; be 8 0; printf '\x00\xc5'; be 2 500; printf '\x00\x02{}\x02'; } | w "$C/seal/one-old"
{ printf '\x01'; be 2 1; be 8 1; be 8 0; printf '\x02\x00'; be 2 0; printf '\x00\x02{}'; be 2 40; printf '\x01'; be 2 100; printf '\x80\x02'; } | w "$C/seal/one-flipped"
# mode 2: a stream of sends and resends from five senders.
printf '\x02\x00\x01\x02\x03\x04\x80\x81\x05\x45\x00\x00\x00\x46\xc4\x00\x00\x00\x82\x07\x08\x09\x0a\x8b\x8c' | w "$C/seal/stream"
printf '\x03mlsj1.TisME5RU8dUo7reJCDh08uUcqEmQMar1QxSpNIcIGX4.RSZXgaRGFddeCjbFD06EiOGffOEpvQDXduSP-Nhu_DU' | w "$C/seal/token"
printf '\x03TisME5RU8dUo7reJCDh08uUcqEmQMar1QxSpNIcIGX4' | w "$C/seal/pk"
printf '\x03mlsj1.TisME5RU8dUo7reJCDh08uUcqEmQMar1QxSpNIcIGX4.RSZXgaRGFddeCjbFD06EiOGffOEpvQDXd\x90SP-Nhu_DU' | w "$C/seal/regress-token-0x90"

for f in ../data/specs/good/*.yaml ../data/specs/bad/*.yaml ../../contrib/examples/*.yaml; do
	[ -f "$f" ] || continue
	d=$(basename "$(dirname "$f")")
	cp "$f" "$C/spec_yaml/$d-$(basename "$f")"
done

printf '%s' "$SPEC_TRAIN" | w "$C/spec_json/train.json"
printf '%s' "$SPEC_SERVE" | w "$C/spec_json/serve.json"
printf '%s' "$SPEC_BATCH" | w "$C/spec_json/batch.json"
printf '%s' "$SPEC_TCP" | w "$C/spec_json/tcp.json"
printf '%s' "$SPEC_EXEC" | w "$C/spec_json/exec.json"
# Builder programs: bit 0 of the first byte starts from the required fields.
printf '\x01\x01\x08\x00\x07\x02\x05\x02\x09\x11\x00\x03' | w "$C/spec_json/build-serve"
printf '\x01\x00\x05\x02\x04\x00\x00\x00\x08' | w "$C/spec_json/build-train"
printf '\x00\x00\x07\x08\x0b\x02\x0c\x02\x0d\x02\x0e\x02' | w "$C/spec_json/build-bare"
ls "$C"/* | wc -l
