#!/bin/sh
# agents.sh - run `mlbench agents` at several agent counts against a master it
# starts itself (see BENCHMARKS.md, "Many agents").
#
#   tests/bench/agents.sh [-b MLBENCH] [-m MLMASTER] [-o DIR] [COUNT...] [-- MLBENCH-ARGS]
#
# Defaults: ./build/tests/bench/mlbench, ./build/master/mlmaster, counts 1000
# 5000 10000.  Each run's output goes to stdout and, with -o, to DIR/COUNT.txt.
# Extra arguments after -- go to every run (e.g. -- --submit 2000 --clients 64).
set -eu

bench=./build/tests/bench/mlbench
master=./build/master/mlmaster
out=
while getopts b:m:o:h opt; do
	case $opt in
	b) bench=$OPTARG ;;
	m) master=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n 2,9p "$0"; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
counts=
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	counts="$counts $1"
	shift
done
[ $# -gt 0 ] && shift
[ -n "$counts" ] || counts="1000 5000 10000"

# One descriptor per agent connection here and as many in the master.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "ulimit -n: $(ulimit -n); $(nproc) CPUs"
[ -n "$out" ] && mkdir -p "$out"
for n in $counts; do
	echo "== $n agents"
	if [ -n "$out" ]; then
		"$bench" agents --mlmaster "$master" --count "$n" "$@" 2>&1 | tee "$out/$n.txt"
	else
		"$bench" agents --mlmaster "$master" --count "$n" "$@"
	fi
done
