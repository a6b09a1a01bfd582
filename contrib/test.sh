#!/usr/bin/env bash
# test.sh - the README's second command: install what is missing, build with
# -Werror, run the unit tests under valgrind and the integration tests
# (real mlmaster, mlagents and runc containers on loopback).  The last line
# is "N passed, N failed"; the exit status is 0 only when nothing failed.
#
#   contrib/test.sh [unit|integration] [NAME...]
set -u
cd "$(dirname "$0")/.."
. contrib/deps.sh

what=${1:-all}
[ $# -gt 0 ] && shift
case $what in all | unit | integration) ;; *)
	echo "usage: contrib/test.sh [all|unit|integration] [NAME...]" >&2
	exit 2
	;;
esac

install_deps test || exit 1
echo "== building"
build_tree || exit 1
(cd build && make -s -j"$(nproc)" check TESTS= >/dev/null) || exit 1

passed=0
failed=0
R=$(mktemp -d /tmp/mls-test.XXXXXX)
trap 'rm -rf "$R"' EXIT

if [ "$what" != integration ]; then
	echo "== unit tests (valgrind)"
	for t in build/tests/unit/*/*-test; do
		name=${t#build/tests/unit/}
		[ $# -gt 0 ] && ! [[ " $* " == *" $(basename "$t") "* ]] && continue
		log=$R/$(basename "$t").log
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
			--trace-children=no "$t" >"$log" 2>&1
		rc=$?
		# A binary may run several cmocka groups (store-test: one per
		# store): sum every group's summary line.
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		if [ "$rc" = 99 ]; then
			echo "not ok - $name: valgrind found errors"
			f=$((f + 1))
		elif [ "$rc" != 0 ] && [ "$f" = 0 ]; then
			echo "not ok - $name: exit status $rc"
			f=1
		fi
		echo "$name: $p passed, $f failed"
		[ "$f" != 0 ] && sed 's/^/#   /' "$log" | tail -n 60
		passed=$((passed + p))
		failed=$((failed + f))
	done
fi

if [ "$what" != unit ]; then
	echo "== integration tests"
	export MLS_BUILD=$PWD/build MLS_ROOTFS=$R/rootfs
	bash contrib/mkrootfs.sh "$MLS_ROOTFS" >/dev/null || exit 1
	for t in tests/integration/*.sh; do
		name=$(basename "$t" .sh)
		[ "$name" = lib ] && continue
		[ $# -gt 0 ] && ! [[ " $* " == *" $name "* ]] && continue
		start=$SECONDS
		timeout -k 5 300 bash "$t" >"$R/$name.log" 2>&1
		rc=$?
		if [ "$rc" = 0 ]; then
			echo "ok - $name ($((SECONDS - start))s, $(grep -c '^# ok:' "$R/$name.log") checks)"
			passed=$((passed + 1))
		else
			echo "not ok - $name (exit $rc after $((SECONDS - start))s)"
			sed 's/^/    /' "$R/$name.log"
			failed=$((failed + 1))
		fi
	done
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
