#!/usr/bin/env bash
# restart.sh - how long mlmaster takes to come back with N jobs stored:
# from exec to answering `mlctl ls`, with N job records in its sqlite store
# (the last 1% unfinished), against the same start with an empty store.
#
#   tests/bench/restart.sh [-n 100000] [-r 5] [BUILD_DIR]
set -u
N=100000
R=5
while getopts "n:r:h" o; do
	case $o in
	n) N=$OPTARG ;;
	r) R=$OPTARG ;;
	*) echo "usage: $0 [-n JOBS] [-r RUNS] [BUILD_DIR]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
B=${1:-./build}
for p in master/mlmaster master/ctl/mlctl; do
	[ -x "$B/$p" ] || { echo "$B/$p is missing: build first" >&2; exit 2; }
done
command -v sqlite3 >/dev/null || { echo "needs sqlite3 (apt-get install sqlite3)" >&2; exit 2; }
T=$(mktemp -d /tmp/mls-restart.XXXXXX)
MPID=
cleanup() { [ -n "$MPID" ] && kill -9 "$MPID" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 1' INT TERM
PORT=$((20000 + RANDOM % 20000))
URL=tcp://127.0.0.1:$PORT
mkdir -p "$T/img/bin"

start() { # DIR: start the master on DIR, print ms until mlctl ls answers
	local t0 t1
	t0=${EPOCHREALTIME/./}
	"$B/master/mlmaster" --insecure --state-dir "$1" --listen "$URL" \
		--agent-listen "tcp://127.0.0.1:$((PORT + 1))" >>"$T/master.log" 2>&1 &
	MPID=$!
	until "$B/master/ctl/mlctl" --master "$URL" --timeout 200ms ls >/dev/null 2>&1; do
		kill -0 "$MPID" 2>/dev/null || { echo "mlmaster died: $(tail -3 "$T/master.log")" >&2; exit 1; }
	done
	t1=${EPOCHREALTIME/./}
	kill "$MPID"
	wait "$MPID" 2>/dev/null
	MPID=
	echo $(((t1 - t0) / 1000))
}

# One real job record as a template, then N copies with their own ids.
start "$T/full" >/dev/null
"$B/master/mlmaster" --insecure --state-dir "$T/full" --listen "$URL" \
	--agent-listen "tcp://127.0.0.1:$((PORT + 1))" >>"$T/master.log" 2>&1 &
MPID=$!
until "$B/master/ctl/mlctl" --master "$URL" --timeout 200ms run --name tmpl "$T/img" -- true >/dev/null 2>&1; do :; done
kill "$MPID"; wait "$MPID" 2>/dev/null; MPID=
sqlite3 "$T/full/state.db" <<SQL || exit 1
CREATE TEMP TABLE tmpl AS SELECT value AS v FROM kv WHERE key LIKE 'jobs/%' LIMIT 1;
CREATE TEMP TABLE ttmpl AS SELECT value AS v FROM kv WHERE key LIKE 'tasks/%' LIMIT 1;
DELETE FROM kv WHERE key LIKE 'jobs/%' OR key LIKE 'tasks/%';
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $N)
INSERT INTO kv SELECT printf('tasks/%016x/%08x', i, 0), (SELECT v FROM ttmpl) FROM seq;
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $N)
INSERT INTO kv SELECT printf('jobs/%016x', i),
  json_set((SELECT v FROM tmpl), '\$.id', i, '\$.spec.name', 'job-' || i,
           '\$.state', CASE WHEN i > $N * 99 / 100 THEN 'pending' ELSE 'succeeded' END)
  FROM seq;
INSERT OR REPLACE INTO kv VALUES ('meta/next_job_id', '$((N + 1))');
SQL
echo "store: $(sqlite3 "$T/full/state.db" "select count(*) from kv where key like 'jobs/%'") jobs, $(($(stat -c %s "$T/full/state.db") / 1048576)) MiB"

stats() { sort -n | awk -v l="$1" '{v[NR]=$1} END {printf "%-28s runs=%d  min=%dms  median=%dms  max=%dms\n", l, NR, v[1], v[int((NR+1)/2)], v[NR]}'; }
for _ in $(seq 1 "$R"); do start "$T/full"; done >"$T/full.ms"
for _ in $(seq 1 "$R"); do rm -rf "$T/empty"; start "$T/empty"; done >"$T/empty.ms"
stats "restart with $N jobs" <"$T/full.ms"
stats "start with an empty store" <"$T/empty.ms"
median() { sort -n "$1" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
awk -v a="$(median "$T/full.ms")" -v b="$(median "$T/empty.ms")" \
	'BEGIN {printf "ratio (median)               %.1f\n", a / (b > 0 ? b : 1)}'
