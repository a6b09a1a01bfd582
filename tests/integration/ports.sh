#!/usr/bin/env bash
# Ports: two gangs and two serve replicas on one node get four different
# ports from its agent's --ports range; a gang's workers see rank 0's port
# as MASTER_PORT (and their own as PORT), a replica sees PORT; a port is
# free again once its task has ended; and a port something else on the
# node listens on is refused at start with a reason.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 --ports 13000-13003 || exit 1

for g in g1 g2; do
	mlctl run --wait --kind train --workers 1 --name "$g" "$MLS_ROOTFS" -- \
		sh -c 'echo "PORT=$PORT MASTER_PORT=$MASTER_PORT"; exec sleep 1000' >/dev/null || fail "run $g"
done
cat >"$T/svc.yaml" <<YAML
name: svc
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'echo "PORT=\$PORT"; exec sleep 1000']
replicas: 2
resources: {memory: 32M}
YAML
mlctl submit --wait "$T/svc.yaml" >/dev/null || fail "submit svc"
ports() { for j in g1 g2 svc; do mlctl -o json status $j | jq -r '.tasks[] | select(.state == "running") | .port'; done; }
check "four ports" [ "$(ports | grep -c .)" = 4 ]
check "all different" [ "$(ports | sort -u | grep -c .)" = 4 ]
check "all in 13000-13003" [ "$(ports | sort -n | tr '\n' ' ')" = "13000 13001 13002 13003 " ]
g1port=$(mlctl -o json status g1 | jq -r '.tasks[0].port')
logs_say() { mlctl logs "$1" | grep -q "$2"; }
check "g1 sees its port as PORT and MASTER_PORT" wait_for 5 logs_say g1 "^PORT=$g1port MASTER_PORT=$g1port\$"
svcport=$(mlctl -o json status svc | jq -r '.tasks[1].port')
check "a replica sees PORT" wait_for 5 logs_say svc/1 "^PORT=$svcport\$"

# The range is full: a fifth task cannot start, and says why (ports are not
# a scheduling resource: a node whose range is exhausted fails the start).
mlctl run --name g3 --kind train --workers 1 "$MLS_ROOTFS" -- sleep 1000 >/dev/null
g3_failed() { job_state_is g3 failed; }
check "no port left: g3 fails" wait_for 5 g3_failed
check "the reason names the range" grep -q "no free port on node a1 (its range is 13000-13003)" <<<"$(job_field g3 reason)"

# A port freed by an ended task is handed out again.
mlctl cancel g1 >/dev/null
check "g1 cancelled" wait_for 10 job_state_is g1 cancelled
mlctl run --wait --name g4 --kind train --workers 1 "$MLS_ROOTFS" -- sleep 1000 >/dev/null || fail "run g4"
check "g4 got g1's port" [ "$(mlctl -o json status g4 | jq -r '.tasks[0].port')" = "$g1port" ]

# Something else listens on the next free port: the agent refuses the start.
mlctl cancel g4 >/dev/null
check "g4 cancelled" wait_for 10 job_state_is g4 cancelled
"$MLS_ROOTFS/bin/busybox" nc -l -p "$g1port" >/dev/null 2>&1 &
ncpid=$!
sleep 0.2
mlctl run --name g5 --kind train --workers 1 "$MLS_ROOTFS" -- sleep 1000 >/dev/null
check "g5 fails" wait_for 5 job_state_is g5 failed
check "the reason says the port is taken" grep -q "port $g1port on node a1 is in use by another process" <<<"$(job_field g5 reason)"
kill "$ncpid" 2>/dev/null
wait "$ncpid" 2>/dev/null
finish
