#!/usr/bin/env bash
# demo.sh - the README's first command: build mlsched, start a master and
# one agent on localhost with the embedded sqlite store, submit the sample
# training job, follow its logs to the end, show `mlctl ls`, stop both.
set -u
cd "$(dirname "$0")/.."
. contrib/deps.sh

install_deps build || exit 1
echo "== building"
build_tree || exit 1
B=$PWD/build
IMG=/var/lib/mlsched/images/busybox
if [ ! -f "$IMG/.mlsched-rootfs" ]; then
	echo "== building the busybox image in $IMG"
	bash contrib/mkrootfs.sh "$IMG" >/dev/null || exit 1
fi

D=$(mktemp -d /tmp/mlsched-demo.XXXXXX)
export MLSCHED_MASTER=tcp://127.0.0.1:7070
cleanup() {
	[ -n "${AGENT:-}" ] && kill -TERM "$AGENT" 2>/dev/null && wait "$AGENT" 2>/dev/null
	[ -n "${MASTER:-}" ] && kill -TERM "$MASTER" 2>/dev/null && wait "$MASTER" 2>/dev/null
	rm -rf "$D"
}
trap cleanup EXIT

echo "== mlmaster init (keys, join token and an admin key for mlctl in $D/master)"
"$B/master/mlmaster" init --state-dir "$D/master" >"$D/token" || exit 1
export MLSCHED_KEY=$D/master/admin.key
echo "== starting mlmaster and mlagent (sealed traffic)"
"$B/master/mlmaster" --state-dir "$D/master" >"$D/master.log" 2>&1 &
MASTER=$!
gpus=()
# No NVIDIA driver here: declare two GPUs so the GPU job has somewhere to go.
ldconfig -p | grep -q libnvidia-ml.so.1 || gpus=(--gpus 2x24G:demo)
sleep 0.3
"$B/agent/mlagent" --join "$(cat "$D/token")" --name "$(hostname -s | tr 'A-Z' 'a-z' | tr -c 'a-z0-9._\n-' '-')" \
	--state-dir "$D/agent" "${gpus[@]}" >"$D/agent.log" 2>&1 &
AGENT=$!
for _ in $(seq 1 100); do
	"$B/master/ctl/mlctl" nodes 2>/dev/null | grep -q ready && break
	sleep 0.1
done
"$B/master/ctl/mlctl" nodes
echo
echo "== mlctl submit contrib/examples/train.yaml"
"$B/master/ctl/mlctl" submit --wait contrib/examples/train.yaml || { cat "$D"/*.log; exit 1; }
echo "== mlctl logs -f demo-train"
"$B/master/ctl/mlctl" logs -f demo-train
sleep 0.3
echo
echo "== mlctl ls"
"$B/master/ctl/mlctl" ls
echo
"$B/master/ctl/mlctl" status demo-train | grep -q '^state: *succeeded' || { echo "demo job did not succeed"; "$B/master/ctl/mlctl" status demo-train; exit 1; }
echo "== stopping mlagent and mlmaster"
