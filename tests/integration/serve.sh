#!/usr/bin/env bash
# Serving with real busybox httpd replicas: ports, http probes, endpoints
# (mlctl and --endpoints-dir), a standby promoted when a serving container
# is SIGKILLed and when its probe fails, a new standby started behind it,
# and scaling up and down.
. "$(dirname "$0")/lib.sh"

start_master --endpoints-dir "$T/endpoints" || exit 1
for a in a1 a2 a3; do start_agent "$a" || exit 1; done

cat >"$T/web.yaml" <<YAML
name: web
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'mkdir -p /work/www && echo "v=\$VERSION task=\$MLSCHED_TASK_INDEX" >/work/www/healthz && exec httpd -f -p \$PORT -h /work/www']
replicas: 2
standby: 1
env: {VERSION: "1"}
resources: {memory: 32M, cpus: 0.1}
health: {http: /healthz, interval: 100ms, timeout: 200ms, failures: 1}
restart: {policy: always, max: 20}
YAML
mlctl submit "$T/web.yaml" >/dev/null || fail "submit"

eps() { mlctl endpoints web | sort; }
neps() { [ "$(mlctl endpoints web | grep -c .)" = "$1" ]; }
standby_healthy() {
	mlctl -o json status web | jq -e '[.tasks[] | select(.role == "standby" and .health == "healthy" and .state == "running")] | length == 1' >/dev/null
}
check "two endpoints" wait_for 15 neps 2
check "a healthy standby" wait_for 10 standby_healthy

# Every endpoint answers with its own replica's page.
for ep in $(eps); do
	check "GET $ep" grep -q "^v=1 task=" <<<"$(http_get "$ep" /healthz)"
done
# Ports come from each agent's range, and no two tasks on a node share one.
ports_ok() {
	mlctl -o json status web | jq -e '[.tasks[] | select(.state == "running") | "\(.node):\(.port)"] | (length == (unique | length)) and length == 3' >/dev/null
}
check "three distinct node:port pairs" ports_ok
ports_in_range() { mlctl -o json status web | jq -e '[.tasks[] | select(.state == "running") | .port >= 12000 and .port < 12600] | all' >/dev/null; }
check "ports from the agents' ranges" ports_in_range

# The endpoints file says the same.
file_eps() { jq -r '.endpoints[]' "$T/endpoints/web.json" | sort; }
check "endpoints file matches" [ "$(file_eps)" = "$(eps)" ]

# SIGKILL the process of one serving container: the standby takes over.
before=$(eps)
victim=$(mlctl -o json status web | jq -r '[.tasks[] | select(.role == "serving" and .state == "running")][0] | "\(.node) \(.task)"')
read -r vnode vtask <<<"$victim"
jid=$(job_field web id)
vpid=$(runc --root "$T/agent-$vnode/runc" state "mls-$jid-$vtask" | jq -r .pid)
standby=$(mlctl -o json status web | jq -r '.tasks[] | select(.role == "standby") | .task')
kill -9 "$vpid"
promoted() { mlctl -o json status web | jq -e --argjson s "$standby" '.tasks[$s].role == "serving"' >/dev/null; }
check "the standby is promoted" wait_for 5 promoted
check "two endpoints again" wait_for 5 neps 2
check "endpoint list changed" [ "$(eps)" != "$before" ]
# The reason is whichever the master learned first: the process's end
# (killed by signal 9) or the probe that found the port closed.
promo_recorded() { mlctl -o json status web | jq -e '.serve.npromos >= 1 and (.serve.promotions[-1].what | test("promoted in place of task [0-9]+: (killed by signal 9|failed its health check: connect .*: connection (refused|reset by peer))"))' >/dev/null; }
check "the promotion is recorded with its reason" promo_recorded
check "a new standby comes up" wait_for 10 standby_healthy
check "the file follows" wait_for 3 test "$(file_eps)" = "$(eps)"

# A probe that fails: remove the page a serving replica's probe fetches.
n0=$(mlctl -o json status web | jq '.serve.npromos')
victim=$(mlctl -o json status web | jq -r '[.tasks[] | select(.role == "serving" and .state == "running")][0] | "\(.node) \(.task)"')
read -r vnode vtask <<<"$victim"
vep=$(mlctl -o json status web | jq -r --argjson t "$vtask" '.tasks[$t] | .port')
rm -f "$T/agent-$vnode/tasks/mls-$jid-$vtask/work/www/healthz"
gone() { ! mlctl endpoints web | grep -q ":$vep\$"; }
check "the unhealthy replica leaves the endpoints" wait_for 5 gone
more_promos() { [ "$(mlctl -o json status web | jq '.serve.npromos')" -gt "$n0" ]; }
check "a standby replaced it" wait_for 5 more_promos
health_counted() { mlctl -o json status web | jq -e '.serve.health_failures >= 1' >/dev/null; }
check "health failure counted" health_counted
check "two endpoints after the probe failure" wait_for 10 neps 2
check "status shows roles and health" grep -q "serving  running   healthy" <<<"$(mlctl status web)"
check "a new standby after the probe failure" wait_for 10 standby_healthy

# Scaling.
mlctl scale web 3 --standby 0 >/dev/null || fail "scale up"
check "three endpoints" wait_for 10 neps 3
check "scale is in the history" grep -q "scaled from 2+1 to 3+0" <<<"$(mlctl history web)"
mlctl scale web 1 >/dev/null || fail "scale down"
check "one endpoint" wait_for 10 neps 1
one_task() { [ "$(runc_count)" = 1 ]; }
runc_count() {
	local n=0 a
	for a in a1 a2 a3; do n=$((n + $(runc --root "$T/agent-$a/runc" list -q | grep -c .))); done
	echo "$n"
}
check "retired replicas are stopped" wait_for 10 one_task
out=$(mlctl scale web 0 2>&1)
check "scale refuses 0 replicas" grep -q "replicas must be at least 1" <<<"$out"
out=$(mlctl scale run-job 1 2>&1)
check "scale names an unknown job" grep -q 'no job "run-job"' <<<"$out"
mlctl run --wait --name plain "$MLS_ROOTFS" -- sleep 100 >/dev/null
out=$(mlctl scale plain 2 2>&1)
check "scale refuses a batch job" grep -q "only serve jobs scale" <<<"$out"
out=$(mlctl endpoints plain 2>&1)
check "endpoints refuses a batch job" grep -q "only serve jobs have endpoints" <<<"$out"

mlctl cancel web >/dev/null
check "the endpoints file empties when the job ends" wait_for 10 test "$(jq -r '.endpoints | length' "$T/endpoints/web.json")" = 0
finish
