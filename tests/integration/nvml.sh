#!/usr/bin/env bash
# NVML for real: an agent without --gpus loads the fake libnvidia-ml of
# tests/fakenvml/ (mlagent --nvml-lib; the fake answers from the file named
# by MLS_FAKE_NVML, read again at every call): the GPUs the node reports,
# their utilization as the fake sets it, and GPUs that fail (NVML error 15,
# "GPU is lost", then one that vanishes from the count): the node carries
# gpu_error naming the GPU, the call and the error, its GPU list stays as
# found at start, and the error clears when the GPUs answer again.
. "$(dirname "$0")/lib.sh"

FAKE=$MLS_BUILD/tests/fakenvml/.libs/libnvidia-ml.so
if [ ! -f "$FAKE" ]; then
	log "FAIL: $FAKE is not built (make check builds it)"
	exit 1
fi
export MLS_FAKE_NVML=$T/nvml.state
# nvml_set LINE...: the fake's new state, swapped in whole.
nvml_set() {
	printf '%s\n' "$@" >"$MLS_FAKE_NVML.tmp" && mv "$MLS_FAKE_NVML.tmp" "$MLS_FAKE_NVML"
}
H100="NVIDIA H100 80GB HBM3"
A100="NVIDIA A100-SXM4-40GB"
BASE=(count=4 "0.name=$H100" 0.mem_total=85899345920 "1.name=$H100" 1.mem_total=85899345920
	"2.name=$A100" 2.mem_total=42949672960 "3.name=$A100" 3.mem_total=42949672960)
nvml_set "${BASE[@]}"

start_master || exit 1
start_agent g1 --nvml-lib "$FAKE" --log-level debug || exit 1

node() { mlctl -o json nodes | jq -c '.[] | select(.name == "g1")'; }
gpus_are() {
	[ "$(node | jq -c '[.gpus[] | [.index, .model, .memory]]')" = \
		"[[0,\"$H100\",85899345920],[1,\"$H100\",85899345920],[2,\"$A100\",42949672960],[3,\"$A100\",42949672960]]" ]
}
no_gpu_error() { [ "$(node | jq -r 'has("gpu_error")')" = false ]; }
gpu_error_has() { node | jq -e --arg s "$1" '.gpu_error // "" | contains($s)' >/dev/null; }
gpu_error_is() { [ "$(node | jq -r '.gpu_error // ""')" = "$1" ]; }
# util_of GPU: GPU's util_pct in `mlctl top -o json` ("" when not reported).
util_of() {
	mlctl top -o json | jq -r --argjson i "$1" \
		'.nodes[] | select(.name == "g1") | (.util_gpus // [])[] | select(.index == $i) | .util_pct'
}
util_is() { [ "$(util_of "$1")" = "$2" ]; }
agent_logged() { grep -c -- "$1" "$T/agent-g1.log"; }

check "the agent found the GPUs through NVML" grep -q "GPUs: NVML ($FAKE)" "$T/agent-g1.log"
check "the node has the 4 GPUs with their model and memory" gpus_are
check "no gpu_error while all GPUs read" no_gpu_error
check "GPUs read idle" wait_for 5 util_is 0 0

nvml_set "${BASE[@]}" 2.util=42 2.mem_used=1073741824
check "top shows 42% on GPU 2" wait_for 5 util_is 2 42
mem2() { mlctl top -o json | jq -r '.nodes[] | select(.name == "g1") | .util_gpus[] | select(.index == 2) | .mem_used'; }
check "and its memory in use" [ "$(mem2)" = 1073741824 ]

# GPU 1 is lost.
LOST="GPU 1 ($H100): nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)"
nvml_set "${BASE[@]}" 2.util=42 1.error=15
check "the node carries gpu_error with GPU is lost" wait_for 5 gpu_error_has "GPU is lost"
check "gpu_error names the GPU, the call and the error" gpu_error_is "$LOST"
log "gpu_error: $(node | jq -r .gpu_error)"
check "the GPU list stays as found at start" gpus_are
check "GPU 1 has no utilization reading" [ -z "$(util_of 1)" ]
check "GPU 2 still reads" util_is 2 42
sleep 1 # several heartbeats (200ms)
check "the agent logged the error once" [ "$(agent_logged "GPU error (reported to the master): $LOST")" = 1 ]
check "the master logged it" grep -q "node=g1 unschedulable: $LOST" "$T/master.log"
check "mlctl nodes shows it" grep -q "unschedulable: $LOST" <<<"$(mlctl nodes)"

# Back again.
nvml_set "${BASE[@]}"
check "gpu_error clears" wait_for 5 no_gpu_error
check "the agent logged that" [ "$(agent_logged "GPUs read fine again (was: $LOST)")" = 1 ]
check "GPU 1 reads again" wait_for 5 util_is 1 0

# GPU 3 vanishes from the count: lost too, still listed.
nvml_set count=3 "0.name=$H100" "1.name=$H100" "2.name=$A100"
check "a vanished GPU is reported" wait_for 5 gpu_error_is \
	"GPU 3 ($A100): nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)"
check "and stays in the list" gpus_are

# An agent restarted while a GPU is lost: reported from its first SYNC,
# the GPU listed without details.
kill -9 "${AGENT_PID[g1]}"
wait "${AGENT_PID[g1]}" 2>/dev/null
nvml_set "${BASE[@]}" 1.error=15
from=$(stat -c %s "$T/agent-g1.log")
start_agent g1 --nvml-lib "$FAKE" || exit 1
AT_START="GPU 1: nvmlDeviceGetName: GPU is lost (NVML error 15)"
check "a GPU lost at start is reported" wait_for 5 gpu_error_is "$AT_START"
sleep 0.5
check "the same error while it stays lost" gpu_error_is "$AT_START"
check "and listed without details" [ "$(node | jq -c '.gpus[1] | [.model, .memory]')" = '["",0]' ]
nvml_set "${BASE[@]}"
check "its details are read once it answers" wait_for 5 gpus_are
check "and gpu_error clears" no_gpu_error
check "the agent logged the details" grep -q "GPU 1: $H100, 80G (read now)" \
	<(tail -c +"$((from + 1))" "$T/agent-g1.log")

# A --nvml-lib that is not there stops the agent with the reason.
out=$("$MLAGENT" --insecure --master "tcp://127.0.0.1:$AGENT_PORT" --name g2 \
	--state-dir "$T/agent-g2" --nvml-lib /nonexistent/libnvidia-ml.so.1 2>&1)
rc=$?
check "a missing --nvml-lib is fatal" [ "$rc" != 0 ]
check "and says why" grep -q "cannot load /nonexistent/libnvidia-ml.so.1" <<<"$out"
finish
