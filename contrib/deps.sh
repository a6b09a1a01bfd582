# deps.sh - install the Debian packages mlsched needs, when missing.
# Source it, then call: install_deps build|test.  Needs root for apt-get.

# runc and umoci are run-time needs of the agent (umoci unpacks oci: images), in
# this list because contrib/demo.sh installs only it and then runs an agent.
MLS_BUILD_PKGS="build-essential autoconf automake libtool pkg-config libnng-dev libsodium-dev
 libsqlite3-dev libcurl4-openssl-dev libyaml-dev libcjson-dev libmicrohttpd-dev runc umoci
 busybox-static"
# clang and its runtimes (libFuzzer, ASan, UBSan) build tests/fuzz/.
MLS_TEST_PKGS="libcmocka-dev valgrind jq sqlite3 etcd-server etcd-client clang libclang-rt-dev"

install_deps() {
	local want=$MLS_BUILD_PKGS missing=() p
	[ "${1:-build}" = test ] && want="$want $MLS_TEST_PKGS"
	for p in $want; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing Debian packages: ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}" >&2
		return 1
	fi
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null &&
		apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
		{ echo "apt-get install failed" >&2; return 1; }
}

# build_tree [configure flags...]: autotools build in ./build (or in
# $MLS_BUILD_DIR: build-asan), configured with --enable-werror and the flags.
# An existing configuration is reused only when it is still the one this run
# needs: it is redone when it was made with other flags, or before cmocka was
# installed (contrib/demo.sh installs only the build packages, so in a fresh
# clone its configuration has no unit tests; contrib/test.sh after it must
# not reuse that).
build_tree() {
	local dir=${MLS_BUILD_DIR:-build} want have reconf=
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
		autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; return 1; }
	fi
	want="--enable-werror $*"
	want=${want% }
	mkdir -p "$dir"
	if [ -f "$dir/Makefile" ] && [ -x "$dir/config.status" ]; then
		have=$(cd "$dir" && eval "set -- $(./config.status --config)" && echo "$*")
		if [ "$have" != "$want" ]; then
			reconf="configured with '$have', this run needs '$want'"
		elif grep -q '^S\["HAVE_CMOCKA_TRUE"\]="#"' "$dir/config.status" &&
			pkg-config --exists cmocka 2>/dev/null; then
			reconf="configured before cmocka was installed: no unit tests"
		fi
	fi
	if [ -n "$reconf" ]; then
		echo "reconfiguring $dir ($reconf)"
		# Other flags mean other objects; make does not know that.
		(cd "$dir" && make -s distclean >/dev/null 2>&1)
		rm -f "$dir/Makefile"
	fi
	# shellcheck disable=SC2086 # $want is words
	(cd "$dir" && { [ -f Makefile ] || ../configure $want >/dev/null; } &&
		make -j"$(nproc)" -s >/dev/null) || return 1
}
