# deps.sh - install the Debian packages mlsched needs, when missing.
# Source it, then call: install_deps build|test.  Needs root for apt-get.

MLS_BUILD_PKGS="build-essential autoconf automake libtool pkg-config libnng-dev libsodium-dev
 libsqlite3-dev libcurl4-openssl-dev libyaml-dev libcjson-dev libmicrohttpd-dev runc busybox-static"
MLS_TEST_PKGS="libcmocka-dev valgrind jq sqlite3 etcd-server"

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

# build_tree [configure flags...]: autotools build in ./build, with -Werror.
build_tree() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
		autoreconf -fi >/dev/null 2>&1 || { autoreconf -fi; return 1; }
	fi
	mkdir -p build
	(cd build && { [ -f Makefile ] || ../configure --enable-werror "$@" >/dev/null; } &&
		make -j"$(nproc)" -s >/dev/null) || return 1
}
