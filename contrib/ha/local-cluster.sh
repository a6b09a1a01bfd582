#!/usr/bin/env bash
# local-cluster.sh - a three-member etcd cluster and three HA masters on
# this machine's loopback ports, to try failover by hand:
#
#   contrib/ha/local-cluster.sh start [DIR]   # etcd e0..e2, masters m1..m3
#   contrib/ha/local-cluster.sh status [DIR]  # who leads
#   contrib/ha/local-cluster.sh stop [DIR]
#
# Then, with the binaries from a build (make -C build install):
#   mlctl --master tcp://127.0.0.1:17070,tcp://127.0.0.1:17072,tcp://127.0.0.1:17074 \
#         --key DIR/keys/admin.key ls
#   mlagent --join "$(cat DIR/keys/join.token)" --name gpu-01 --gpus 2x16G \
#         --master tcp://127.0.0.1:17071,tcp://127.0.0.1:17073,tcp://127.0.0.1:17075
#   kill -9 "$(cat DIR/m1.pid)"   # or whichever leads: another takes over in ~2 s
#
# On three real hosts the shape is the same: one etcd member and one master
# per host, every master given all three etcd endpoints (--store
# etcd://h1:2379,h2:2379,h3:2379) and the same keys (run `mlmaster init` once
# and copy master.key, master.pub, join.token, admins to each master's
# --state-dir), each master's --advertise-client-url/--advertise-agent-url
# set to addresses the others' clients can reach, and agents and mlctl
# given every master's URL.  etcd must run with --max-txn-ops 10000
# --max-request-bytes 10485760 (one scheduler turn commits in one txn).
set -eu
cmd=${1:-}
D=${2:-/tmp/mlsched-ha}
MLMASTER=${MLMASTER:-mlmaster}
ETCD=${ETCD:-etcd}

start() {
	mkdir -p "$D"
	local cluster="e0=http://127.0.0.1:12380,e1=http://127.0.0.1:12382,e2=http://127.0.0.1:12384"
	for i in 0 1 2; do
		"$ETCD" --name "e$i" --data-dir "$D/etcd-$i" \
			--listen-client-urls "http://127.0.0.1:$((12379 + 2 * i))" \
			--advertise-client-urls "http://127.0.0.1:$((12379 + 2 * i))" \
			--listen-peer-urls "http://127.0.0.1:$((12380 + 2 * i))" \
			--initial-advertise-peer-urls "http://127.0.0.1:$((12380 + 2 * i))" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--max-txn-ops 10000 --max-request-bytes 10485760 >>"$D/etcd-$i.log" 2>&1 &
		echo $! >"$D/etcd-$i.pid"
	done
	[ -f "$D/keys/master.key" ] || "$MLMASTER" init --state-dir "$D/keys" >/dev/null
	for i in 1 2 3; do
		mkdir -p "$D/m$i"
		cp "$D/keys/master.key" "$D/keys/master.pub" "$D/keys/join.token" "$D/keys/admins" "$D/m$i/"
		"$MLMASTER" --state-dir "$D/m$i" \
			--listen "tcp://127.0.0.1:$((17068 + 2 * i))" \
			--agent-listen "tcp://127.0.0.1:$((17069 + 2 * i))" \
			--store "etcd://127.0.0.1:12379,127.0.0.1:12381,127.0.0.1:12383" \
			--lease-ttl 2s >>"$D/m$i.log" 2>&1 &
		echo $! >"$D/m$i.pid"
	done
	echo "started in $D; logs: $D/*.log"
}

stop() {
	for f in "$D"/m?.pid "$D"/etcd-?.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
}

status() {
	ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:12379,127.0.0.1:12381,127.0.0.1:12383 \
		get /mlsched/leader --print-value-only
}

case $cmd in
start) start ;;
stop) stop ;;
status) status ;;
*)
	sed -n '2,9p' "$0"
	exit 2
	;;
esac
