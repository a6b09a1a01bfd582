#!/usr/bin/env bash
# The README's serving walk-through: contrib/examples/web-serve.yaml (image
# path swapped for $MLS_ROOTFS) behind contrib/nginx/mlsched-nginx-sync.
# Two endpoints reach the endpoints file and the generated upstream; a
# serving container SIGKILLed makes the standby take over, and the next sync
# rewrites the upstream with the new endpoint.  The reload command runs only
# when the upstream changed.
. "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/../.." && pwd)
SYNC=$SRC/contrib/nginx/mlsched-nginx-sync

start_master --endpoints-dir "$T/endpoints" || exit 1
for a in a1 a2 a3; do start_agent "$a" || exit 1; done

sed "s|^image: .*|image: $MLS_ROOTFS|" "$SRC/contrib/examples/web-serve.yaml" >"$T/web.yaml"
check "the example's image line was replaced" grep -qx "image: $MLS_ROOTFS" "$T/web.yaml"
mlctl submit "$T/web.yaml" >/dev/null || fail "submit"

eps() { mlctl endpoints web | sort; }
neps() { [ "$(mlctl endpoints web | grep -c .)" = "$1" ]; }
file_eps() { jq -r '.endpoints[]' "$T/endpoints/web.json" | sort; }
file_neps() { [ "$(jq '.endpoints | length' "$T/endpoints/web.json")" = "$1" ]; }
standby_healthy() {
	mlctl -o json status web | jq -e '[.tasks[] | select(.role == "standby" and .health == "healthy" and .state == "running")] | length == 1' >/dev/null
}
check "two endpoints" wait_for 20 neps 2
check "two endpoints in the endpoints file" wait_for 5 file_neps 2
check "a healthy standby" wait_for 10 standby_healthy
for ep in $(eps); do
	check "GET $ep /" grep -q "^hello from task [0-9]*, version 1, on a[123]$" <<<"$(http_get "$ep" /)"
done

# The sync, with a reload command that counts its runs.
export MLSCHED_NGINX_RELOAD="echo reload >>'$T/reloads'"
UP=$T/nginx/web.upstream
mkdir -p "$T/nginx"
reloads() { [ -f "$T/reloads" ] && grep -c . "$T/reloads" || echo 0; }
up_eps() { sed -n 's/^server \(.*\);$/\1/p' "$UP" | sort; }

"$SYNC" "$T/endpoints/web.json" "$UP" >/dev/null || fail "first sync"
check "the upstream lists exactly the two endpoints" [ "$(up_eps)" = "$(file_eps)" ]
check "two server lines" [ "$(grep -c '^server ' "$UP")" = 2 ]
check "the first sync reloaded" [ "$(reloads)" = 1 ]
"$SYNC" "$T/endpoints/web.json" "$UP" >/dev/null || fail "second sync"
check "no reload when nothing changed" [ "$(reloads)" = 1 ]
before=$(up_eps)

# SIGKILL the process of one serving container.
victim=$(mlctl -o json status web | jq -r '[.tasks[] | select(.role == "serving" and .state == "running")][0] | "\(.node) \(.task)"')
read -r vnode vtask <<<"$victim"
jid=$(job_field web id)
vpid=$(runc --root "$T/agent-$vnode/runc" state "mls-$jid-$vtask" | jq -r .pid)
standby=$(mlctl -o json status web | jq -r '.tasks[] | select(.role == "standby") | .task')
sport=$(mlctl -o json status web | jq -r --argjson s "$standby" '.tasks[$s].port')
kill -9 "$vpid"
promoted() { mlctl -o json status web | jq -e --argjson s "$standby" '.tasks[$s].role == "serving"' >/dev/null; }
check "the standby is promoted" wait_for 5 promoted
check "two endpoints again" wait_for 5 neps 2
check "the endpoints file follows" wait_for 5 test "$(file_eps)" = "$(eps)"
check "status records the promotion" grep -q "promoted in place of task $vtask" <<<"$(mlctl status web)"

"$SYNC" "$T/endpoints/web.json" "$UP" >/dev/null || fail "sync after the promotion"
check "the upstream changed" [ "$(up_eps)" != "$before" ]
check "the upstream lists exactly the two endpoints now" [ "$(up_eps)" = "$(file_eps)" ]
check "the promoted standby's endpoint is in it" grep -q ":$sport;\$" "$UP"
check "the reload ran for the change" [ "$(reloads)" = 2 ]
"$SYNC" "$T/endpoints/web.json" "$UP" >/dev/null || fail "sync again"
check "and not again" [ "$(reloads)" = 2 ]
check "a new standby comes up" wait_for 15 standby_healthy

# No endpoint: a placeholder server that nginx still parses.
mlctl cancel web >/dev/null
check "the endpoints file empties" wait_for 15 file_neps 0
"$SYNC" "$T/endpoints/web.json" "$UP" >/dev/null || fail "sync after cancel"
check "the placeholder when nothing serves" [ "$(grep '^server ' "$UP")" = "server 127.0.0.1:1 down;  # no healthy endpoint" ]
check "the reload ran for it" [ "$(reloads)" = 3 ]
finish
