#!/usr/bin/env bash
# Versions of a serve job: a rollout to a good version (one replica at a
# time, never fewer than `replicas` endpoints), a rollout to a broken one
# (its replica never gets healthy: rolled back by itself after the
# deadline), `mlctl rollback`, a changed spec submitted under the same name,
# and `mlctl history`.
. "$(dirname "$0")/lib.sh"

start_master || exit 1
start_agent a1 || exit 1
start_agent a2 || exit 1

cat >"$T/web.yaml" <<YAML
name: web
kind: serve
image: $MLS_ROOTFS
command: [sh, -c, 'mkdir -p /work/www && echo "v=\$VERSION" >/work/www/healthz && exec httpd -f -p \$PORT -h /work/www']
replicas: 2
env: {VERSION: "1"}
resources: {memory: 32M, cpus: 0.1}
# A 1 s probe timeout: a replica that answers slowly on a loaded machine
# is not what this test is about (capacity during rollouts is).
health: {http: /healthz, interval: 100ms, timeout: 1s, failures: 1}
rollout: {deadline: 3s}
YAML
mlctl submit "$T/web.yaml" >/dev/null || fail "submit"
neps() { [ "$(mlctl endpoints web | grep -c .)" = "$1" ]; }
check "two endpoints" wait_for 15 neps 2

# every endpoint answers v=N, and every live task runs version N
serves() {
	local ep
	[ "$(mlctl endpoints web | grep -c .)" = 2 ] || return 1
	for ep in $(mlctl endpoints web); do
		[ "$(http_get "$ep" /healthz)" = "v=$1" ] || return 1
	done
}
at_version() {
	mlctl -o json status web | jq -e --argjson v "$1" '(.serve.rollout.active | not) and ([.tasks[] | select(.state == "running") | .version == $v] | all)' >/dev/null && serves "$1"
}
# watch_min SECONDS: poll the endpoint count until the rollout ends; print the least seen
watch_min() {
	local min=99 n deadline=$((SECONDS + $1))
	while ((SECONDS <= deadline)); do
		n=$(mlctl endpoints web | grep -c .)
		((n < min)) && min=$n
		mlctl -o json status web | jq -e '.serve.rollout.active | not' >/dev/null && break
		sleep 0.05
	done
	echo "$min"
}

out=$(mlctl rollout web --env VERSION=2)
check "rollout starts version 2" grep -q "rolling out version 2" <<<"$out"
min=$(watch_min 30)
check "never fewer than 2 endpoints during the rollout (least: $min)" [ "$min" -ge 2 ]
check "every replica runs version 2" wait_for 10 at_version 2
check "status says it rolled out" grep -q "^last rollout: version 2 rolled out" <<<"$(mlctl status web)"

# A version that never gets healthy: no httpd.
mlctl rollout web -- sh -c 'exec sleep 1000' >/dev/null || fail "broken rollout"
rolled_back() { grep -q "^last rollout: version 3 rolled back: task .* not ready within 3000 ms" <<<"$(mlctl status web)"; }
check "the broken version rolls back by itself" wait_for 20 rolled_back
min=$(watch_min 30)
check "never fewer than 2 endpoints during the failed rollout (least: $min)" [ "$min" -ge 2 ]
check "back at version 2" wait_for 15 at_version 2

out=$(mlctl rollback web)
check "rollback goes to version 1" grep -q "rolling back to version 1" <<<"$out"
check "every replica runs version 1" wait_for 30 at_version 1

# The same name with a changed env is a new version; anything else is refused.
sed -i 's/VERSION: "1"/VERSION: "4"/' "$T/web.yaml"
out=$(mlctl submit "$T/web.yaml")
check "submit of a changed spec rolls out" grep -q "version 4, rolling out" <<<"$out"
check "every replica runs version 4" wait_for 30 at_version 4
out=$(mlctl submit "$T/web.yaml")
check "the same spec again changes nothing" grep -q "unchanged" <<<"$out"
sed -i 's/memory: 32M/memory: 64M/' "$T/web.yaml"
out=$(mlctl submit "$T/web.yaml" 2>&1)
check "a resource change is refused with the field" grep -q "resources.memory differs: a rollout may change only image, command and env" <<<"$out"
out=$(mlctl rollback web --to 9 2>&1)
check "rollback to an unknown version is refused" grep -q "has no version 9" <<<"$out"

hist=$(mlctl history web)
check "history lists four versions" [ "$(grep -cE '^[1-4]\*? ' <<<"$hist")" = 4 ]
check "history names who made them" grep -qE "^2 .* key " <<<"$hist"
check "history has the automatic rollback" grep -q "rollout 2 -> 3 failed; rolling back" <<<"$hist"

# A master killed and restarted keeps versions, history, roles and endpoints.
eps=$(mlctl endpoints web | sort)
kill -9 "$MASTER_PID"
wait "$MASTER_PID" 2>/dev/null
MASTER_PID=
start_master || exit 1
same_eps() { [ "$(mlctl endpoints web | sort)" = "$eps" ]; }
check "the same endpoints after a master restart" wait_for 10 same_eps
check "still at version 4" at_version 4
check "history survives" [ "$(mlctl history web)" = "$hist" ]
mlctl rollout web --env VERSION=5 >/dev/null || fail "rollout after restart"
check "a rollout after the restart works" wait_for 30 at_version 5
finish
