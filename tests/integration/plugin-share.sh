#!/usr/bin/env bash
# A placement policy loaded from a plugin folder (--plugin-dir, dlopen with a
# version check) drives placement; GPU shares pack onto one card and reach
# the container as MLSCHED_GPU_SHARE.
. "$(dirname "$0")/lib.sh"

top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$T/policies"
check "the example plugin builds" cc -shared -fPIC -I "$top/common" -I "$top/plugins" \
	"$top/contrib/plugins/worstfit.c" -o "$T/policies/worstfit.so"
start_master --plugin-dir "$T/policies" --sched-policy worstfit || exit 1
start_agent small --gpus 2x16G || exit 1
start_agent big --gpus 6x16G || exit 1

# worstfit puts a 1-GPU job on the node with the most free GPUs; binpack
# (asked for by name in the job) on the one with the fewest.
mlctl run --gpus 1 --name wf --memory 32M "$MLS_ROOTFS" -- true >/dev/null
check "worstfit job succeeds" wait_for 10 job_state_is wf succeeded
check "worstfit chose big" [ "$(mlctl -o json status wf | jq -r '.tasks[0].node')" = big ]
mlctl run --gpus 1 --policy binpack --name bp --memory 32M "$MLS_ROOTFS" -- true >/dev/null
check "binpack job succeeds" wait_for 10 job_state_is bp succeeded
check "binpack chose small" [ "$(mlctl -o json status bp | jq -r '.tasks[0].node')" = small ]
err=$(mlctl run --policy nosuch --name np "$MLS_ROOTFS" -- true 2>&1)
check "an unknown policy is refused ($err)" grep -q 'unknown placement policy "nosuch"' <<<"$err"

# Shares: two quarter-GPU jobs land on the same card (binpack packs shares).
for i in 1 2; do
	mlctl run --wait --gpus 0.25 --policy binpack --name "share$i" --memory 32M "$MLS_ROOTFS" -- \
		sh -c 'echo "share=$MLSCHED_GPU_SHARE gpu=$CUDA_VISIBLE_DEVICES"; sleep 1000' >/dev/null
done
check "share1 runs" job_state_is share1 running
check "share2 runs" job_state_is share2 running
s1=$(mlctl -o json status share1 | jq -r '.tasks[0] | "\(.node)/\(.gpus[0])"')
s2=$(mlctl -o json status share2 | jq -r '.tasks[0] | "\(.node)/\(.gpus[0])"')
check "both shares on one GPU ($s1, $s2)" [ "$s1" = "$s2" ]
check "the container sees its share" wait_for 5 grep -q "^share=0.25 gpu=${s1#*/}$" <(mlctl logs share1)
node=${s1%/*}
check "that GPU shows 500 milli used" [ "$(mlctl -o json nodes | jq --arg n "$node" --argjson g "${s1#*/}" '.[] | select(.name == $n) | .gpus[] | select(.index == $g) | .used_milli')" = 500 ]
mlctl cancel share1 >/dev/null
mlctl cancel share2 >/dev/null
check "shares cancelled" wait_for 10 job_state_is share2 cancelled
finish
