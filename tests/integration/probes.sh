#!/usr/bin/env bash
# The other probe kinds on real containers: tcp (a connect to $PORT) and exec
# (`runc exec` of a command in the container), with grace and successes:
# a replica is kept out of the endpoints until its exec probe passes, leaves
# them when it fails again, and a tcp-probed replica is served once its port
# listens.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 || exit 1

cat >"$T/tcp.yaml" <<YAML
name: tcp
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'sleep 1; exec httpd -f -p \$PORT -h /tmp']
resources: {memory: 32M}
health: {tcp: \$PORT, interval: 100ms, timeout: 200ms, failures: 2, grace: 3s}
YAML
cat >"$T/exec.yaml" <<YAML
name: ex
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'sleep 1; touch /tmp/ready; exec sleep 1000']
resources: {memory: 32M}
health: {exec: [test, -f, /tmp/ready], interval: 100ms, timeout: 1s, failures: 1, successes: 2, grace: 5s}
restart: {policy: always, max: 5}
YAML
mlctl submit "$T/tcp.yaml" >/dev/null || fail "submit tcp"
mlctl submit "$T/exec.yaml" >/dev/null || fail "submit exec"
health_is() { [ "$(mlctl -o json status "$1" | jq -r '.tasks[0].health')" = "$2" ]; }
neps() { [ "$(mlctl endpoints "$1" | grep -c .)" = "$2" ]; }

# tcp: refused during the first second, inside the grace: never unhealthy.
check "tcp replica healthy once its port listens" wait_for 10 health_is tcp healthy
check "tcp replica is an endpoint" neps tcp 1
check "tcp failures inside the grace did not count" [ "$(mlctl -o json status tcp | jq '.serve.health_failures')" = 0 ]
port=$(mlctl -o json status tcp | jq -r '.tasks[0].port')
check "the endpoint is its port" grep -q ":$port\$" <<<"$(mlctl endpoints tcp)"

# exec: the file appears after 1 s, inside the grace: healthy after two
# successes, never unhealthy before.
jid=$(job_field ex id)
check "exec replica healthy once the file exists" wait_for 10 health_is ex healthy
check "exec replica is an endpoint" neps ex 1
check "no failure counted inside the grace" [ "$(mlctl -o json status ex | jq '.serve.health_failures')" = 0 ]
# Remove it (the container's /tmp is a host folder): unhealthy, out, replaced.
att=$(mlctl -o json status ex | jq '.tasks[0].attempt')
rm -f "$T/agent-a1/tasks/mls-$jid-0/tmp/ready"
replaced() { [ "$(mlctl -o json status ex | jq '.tasks[0].attempt')" -gt "$att" ]; }
check "the replica is replaced" wait_for 10 replaced
counted() { mlctl -o json status ex | jq -e ".serve.health_failures == 1" >/dev/null; }
check "its failure is counted" counted
check "the master logged why" grep -q "job=$jid task=0 node=a1 serving unhealthy: exec test -f /tmp/ready: exit 1" "$T/master.log"
check "the new replica serves again" wait_for 15 health_is ex healthy
finish
