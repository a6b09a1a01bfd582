#!/usr/bin/env bash
# test.sh - the README's second command: install what is missing, build with
# -Werror, run the unit tests under valgrind and again built with ASan and
# UBSan, the integration tests (real mlmaster, mlagents and runc containers
# on loopback) against daemons built with ASan and UBSan, and the fuzzers
# (tests/fuzz/run.sh, MLS_FUZZ_SECONDS each, default 30).  The last line is
# "N passed, N failed"; the exit status is 0 only when nothing failed.
#
#   contrib/test.sh [all|unit|integration|fuzz] [NAME...]
#
# Two builds: build/ (plain, for valgrind and the demo) and build-asan/
# (--enable-asan).  The integration tests run once, against build-asan/:
# running them against both builds would double the longest stage (see
# docs/testing.md); MLS_IT_BUILD=build runs them against the plain build.
set -u
cd "$(dirname "$0")/.."
. contrib/deps.sh

what=${1:-all}
[ $# -gt 0 ] && shift
case $what in all | unit | integration | fuzz) ;; *)
	echo "usage: contrib/test.sh [all|unit|integration|fuzz] [NAME...]" >&2
	exit 2
	;;
esac
it_build=${MLS_IT_BUILD:-build-asan}

install_deps test || exit 1
if [ "$what" = all ] || [ "$what" = unit ] || { [ "$what" = integration ] && [ "$it_build" = build ]; }; then
	echo "== building (build/)"
	build_tree || exit 1
	(cd build && make -s -j"$(nproc)" check TESTS= >/dev/null) || exit 1
fi
if [ "$what" != fuzz ]; then
	echo "== building with ASan and UBSan (build-asan/)"
	MLS_BUILD_DIR=build-asan build_tree --enable-asan || exit 1
	(cd build-asan && make -s -j"$(nproc)" check TESTS= >/dev/null) || exit 1
fi

passed=0
failed=0
R=$(mktemp -d /tmp/mls-test.XXXXXX)
trap 'rm -rf "$R"' EXIT

# ASan reports go to files under the given folder (one per process: daemons,
# shims, whose stderr is /dev/null, and mlctl alike), so none is lost in a
# log nobody reads.  UBSan (gcc's, beside ASan) ignores log_path and writes
# to stderr: the daemons' logs are checked by tests/integration/lib.sh, the
# test's own output (mlctl) here, and every UBSan finding aborts the process
# (configure --enable-asan).  Leak checks stay on: the daemons are killed
# with SIGKILL, which LSan never sees, and every process that exits
# normally (mlctl, shims) is checked.
san_env() {
	mkdir -p "$1"
	export ASAN_OPTIONS="log_path=$1/asan:abort_on_error=0:detect_leaks=1"
	export UBSAN_OPTIONS="log_path=$1/ubsan:print_stacktrace=1:halt_on_error=1"
}
# san_reports DIR: print the reports left in DIR; false when there are none.
san_reports() {
	local f found=1
	for f in "$1"/asan.* "$1"/ubsan.*; do
		[ -s "$f" ] || continue
		found=0
		echo "#   --- $(basename "$f")"
		head -n 40 "$f" | sed 's/^/#   /'
	done
	return $found
}

# run_unit LABEL BUILD VALGRIND NAME...: every unit test binary of BUILD.
run_unit() {
	local label=$1 b=$2 vg=$3 t name log rc p f
	shift 3
	for t in "$b"/tests/unit/*/*-test; do
		name=$label${t#"$b"/tests/unit/}
		[ $# -gt 0 ] && ! [[ " $* " == *" $(basename "$t") "* ]] && continue
		log=$R/$(basename "$t").$label.log
		if [ "$vg" = 1 ]; then
			valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
				--trace-children=no "$t" >"$log" 2>&1
		else
			(san_env "$R/san-unit/$(basename "$t")" && "$t") >"$log" 2>&1
		fi
		rc=$?
		# A binary may run several cmocka groups (store-test: one per
		# store): sum every group's summary line.
		p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{ n += $1 } END { print n + 0 }')
		if [ "$vg" = 1 ] && [ "$rc" = 99 ]; then
			echo "not ok - $name: valgrind found errors"
			f=$((f + 1))
		elif [ "$vg" = 0 ] && san_reports "$R/san-unit/$(basename "$t")" >>"$log"; then
			echo "not ok - $name: ASan/UBSan found errors"
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
}

if [ "$what" = all ] || [ "$what" = unit ]; then
	echo "== unit tests (valgrind)"
	run_unit "" build 1 "$@"
	echo "== unit tests (ASan + UBSan)"
	run_unit asan: build-asan 0 "$@"
fi

if [ "$what" = all ] || [ "$what" = integration ]; then
	echo "== integration tests ($it_build/)"
	export MLS_BUILD=$PWD/$it_build MLS_ROOTFS=$R/rootfs
	# The daemons are the build under test; the client that drives them
	# (started thousands of times) is the plain one when there is one:
	# an ASan process takes about 190 ms to start, a plain one 30 ms.
	# bad-spec, sealed and keys still run the build's own mlctl.
	if [ "$it_build" != build ] && [ -x build/master/ctl/mlctl ]; then
		export MLS_CTL=$PWD/build/master/ctl/mlctl
	fi
	bash contrib/mkrootfs.sh "$MLS_ROOTFS" >/dev/null || exit 1
	for t in tests/integration/*.sh; do
		name=$(basename "$t" .sh)
		[ "$name" = lib ] && continue
		[ $# -gt 0 ] && ! [[ " $* " == *" $name "* ]] && continue
		start=$SECONDS
		(san_env "$R/san/$name" && timeout -k 5 300 bash "$t") >"$R/$name.log" 2>&1
		rc=$?
		# A report fails the test even when the test passed: the
		# process it came from may have been one nobody checked.
		if san_reports "$R/san/$name" >>"$R/$name.log" ||
			grep -q "runtime error:\|ERROR: AddressSanitizer\|ERROR: LeakSanitizer" "$R/$name.log"; then
			rc="$rc, and ASan/UBSan reports"
		fi
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

if [ "$what" = all ] || [ "$what" = fuzz ]; then
	secs=${MLS_FUZZ_SECONDS:-30}
	echo "== fuzzing (tests/fuzz/run.sh $secs${*:+ $*})"
	start=$SECONDS
	bash tests/fuzz/run.sh "$secs" "$@" >"$R/fuzz.log" 2>&1
	rc=$?
	cat "$R/fuzz.log"
	p=$(grep -c '^ok - ' "$R/fuzz.log")
	f=$(grep -c '^not ok - ' "$R/fuzz.log")
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "not ok - fuzz: run.sh failed (exit $rc)"
		f=1
	fi
	echo "fuzz: $p passed, $f failed ($((SECONDS - start))s)"
	passed=$((passed + p))
	failed=$((failed + f))
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
