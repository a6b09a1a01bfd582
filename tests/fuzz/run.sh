#!/usr/bin/env bash
# run.sh - build the libFuzzer harnesses with clang and run each for a while.
#
#   tests/fuzz/run.sh [SECONDS] [NAME...]      (default 30 s; NAME: wire, seal, ...)
#
# Builds into build-fuzz/ (no autotools: the common/*.c the harnesses need
# are compiled directly, with -fsanitize=fuzzer,address,undefined and every
# UBSan finding fatal), then runs each harness for SECONDS with its seed
# corpus tests/fuzz/corpus/NAME (read only) and a working corpus
# build-fuzz/corpus/NAME that keeps what a run learns for the next one.
# Harnesses run FUZZ_JOBS at a time (default: the number of CPUs).
#
# Prints one line per harness, "ok - fuzz/NAME (N runs in S s)" or
# "not ok - fuzz/NAME (...)" followed by the finding; a crash, leak, timeout
# or UB report leaves its input in build-fuzz/artifacts/NAME/ (reproduce:
# build-fuzz/fuzz_NAME FILE).  Exit status 0 only when every harness passed.
set -u
cd "$(dirname "$0")/../.." || exit 1

secs=${1:-30}
[ $# -gt 0 ] && shift
case $secs in '' | *[!0-9]*)
	echo "usage: tests/fuzz/run.sh [SECONDS] [NAME...]" >&2
	exit 2
	;;
esac

# name: extra sources, -max_len, dictionary
declare -A EXTRA=([wire]="" [seal]="" [spec_yaml]="" [spec_json]="" [bodies]="agent/probe.c agent/runc.c"
	[queues]="master/queues_conf.c")
declare -A MAXLEN=([wire]=16384 [seal]=8192 [spec_yaml]=8192 [spec_json]=8192 [bodies]=16384
	[queues]=8192)
declare -A DICT=([wire]=json [seal]="" [spec_yaml]=yaml [spec_json]=json [bodies]=json [queues]=yaml)
ALL="wire seal spec_yaml spec_json bodies queues"
names=${*:-$ALL}
for n in $names; do
	[ -n "${MAXLEN[$n]:-}" ] || { echo "no harness $n (have: $ALL)" >&2; exit 2; }
done

CC=${FUZZ_CC:-clang}
command -v "$CC" >/dev/null || { echo "$CC not found (apt-get install clang)" >&2; exit 1; }
B=build-fuzz
mkdir -p "$B/obj"
PKGS="libsodium libcjson yaml-0.1"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -Icommon -Iplugins -Iagent -Itests/fuzz
 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
 $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -ldl"
COMMON="err util proc log units res spec spec_json ociref wire seal bounds"

# Rebuild an object when its source, or any header it may include, is newer.
newest_hdr=$(ls -t common/*.h agent/*.h master/queues.h plugins/sched/sched.h tests/fuzz/*.h | head -n1)
build() {
	local src=$1 obj=$2 flags=$3
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_hdr" -nt "$obj" ]; then
		# shellcheck disable=SC2086
		$CC $CFLAGS $flags -c "$src" -o "$obj" || return 1
	fi
}
objs=()
for c in $COMMON; do
	build "common/$c.c" "$B/obj/$c.o" -fsanitize=fuzzer-no-link || exit 1
	objs+=("$B/obj/$c.o")
done
for n in $names; do
	extra=()
	for src in ${EXTRA[$n]}; do
		o=$B/obj/$(basename "$src" .c).o
		build "$src" "$o" -fsanitize=fuzzer-no-link || exit 1
		extra+=("$o")
	done
	build "tests/fuzz/fuzz_$n.c" "$B/obj/fuzz_$n.o" -fsanitize=fuzzer || exit 1
	# shellcheck disable=SC2086
	$CC $CFLAGS -fsanitize=fuzzer "$B/obj/fuzz_$n.o" "${extra[@]}" "${objs[@]}" $LIBS \
		-o "$B/fuzz_$n" || exit 1
done

run_one() {
	local n=$1 log=$B/logs/$1.log dict=()
	mkdir -p "$B/corpus/$n" "$B/artifacts/$n" "$B/logs"
	[ -n "${DICT[$n]}" ] && dict=(-dict="tests/fuzz/${DICT[$n]}.dict")
	# Leaks are findings too (libFuzzer checks after each input).
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=print_stacktrace=1 \
		"$B/fuzz_$n" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-max_len="${MAXLEN[$n]}" -artifact_prefix="$B/artifacts/$n/" "${dict[@]}" \
		"$B/corpus/$n" "tests/fuzz/corpus/$n" >"$log" 2>&1
	echo $? >"$B/logs/$n.rc"
}

jobs_max=${FUZZ_JOBS:-$(nproc)}
for n in $names; do
	while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
		wait -n
	done
	run_one "$n" &
done
wait

failed=0
for n in $names; do
	log=$B/logs/$n.log
	rc=$(cat "$B/logs/$n.rc" 2>/dev/null || echo 1)
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -n1)
	if [ "$rc" = 0 ] && [ -n "$runs" ] && ! grep -q "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$log"; then
		echo "ok - fuzz/$n ($runs)"
	else
		echo "not ok - fuzz/$n (exit $rc${runs:+, $runs})"
		grep -m1 -A40 "ERROR: \|runtime error:\|invariant failed\|==ERROR\|deadly signal" "$log" | sed 's/^/#   /'
		grep "Test unit written to" "$log" | sed 's/^/#   /'
		failed=$((failed + 1))
	fi
done
exit $((failed > 0))
