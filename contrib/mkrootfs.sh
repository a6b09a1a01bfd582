#!/bin/sh
# mkrootfs.sh DEST - build a minimal busybox root file system for mlsched
# containers (tests, examples, smoke runs).
#
# Uses Debian's statically linked busybox (package busybox-static) so the
# rootfs needs no shared libraries.  Every applet is a RELATIVE symlink to
# bin/busybox: "busybox --install -s" would write absolute host paths, which
# point nowhere once the folder is the container's "/".
#
# The layout has /work and /tmp because the agent bind-mounts onto them while
# the rootfs itself is mounted read-only (runc cannot create mount points on a
# read-only root).  Rebuilding an existing DEST is safe.  The last step writes
# DEST/.mlsched-rootfs holding the busybox version line, so a caller can skip
# the rebuild when the stamp matches "$(/bin/busybox | head -n 1)"; a build
# that fails half way leaves no stamp.
set -eu

BUSYBOX=/bin/busybox
STAMP=.mlsched-rootfs

usage() {
	echo "usage: $0 DEST" >&2
	echo "  builds a busybox root file system in the folder DEST" >&2
	exit 2
}

[ $# -eq 1 ] || usage
case "$1" in
"" | -*) usage ;;
esac
DEST=$1

if [ ! -x "$BUSYBOX" ] || ! "$BUSYBOX" --list >/dev/null 2>&1; then
	echo "$0: $BUSYBOX not found;" \
		"install busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi
# A dynamically linked busybox would need the host's libc inside the rootfs.
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
	echo "$0: $BUSYBOX is not statically linked;" \
		"install busybox-static (apt-get install busybox-static)" >&2
	exit 1
fi

version=$("$BUSYBOX" 2>/dev/null | head -n 1 || true)
[ -n "$version" ] || version="BusyBox (unknown version)"

mkdir -p "$DEST"
cd "$DEST"
rm -f "$STAMP"

# link NAME TARGET: make NAME a symlink to TARGET, replacing an old link but
# refusing to delete a real folder with something in it.
link() {
	if [ -e "$1" ] && [ ! -L "$1" ]; then
		if [ -d "$1" ]; then
			rmdir "$1" || {
				echo "$0: $DEST/$1 is a non-empty folder," \
					"expected a symlink to $2" >&2
				exit 1
			}
		else
			rm -f "$1"
		fi
	fi
	ln -sfn "$2" "$1"
}

mkdir -p bin usr etc proc sys dev work tmp root
chmod 1777 tmp
chmod 0700 root
link usr/bin ../bin
link sbin bin
link usr/sbin ../bin

# Copy through a temporary name so a running container never sees a
# half-written binary.
cp "$BUSYBOX" bin/.busybox.new
chmod 0755 bin/.busybox.new
mv -f bin/.busybox.new bin/busybox

for applet in $("$BUSYBOX" --list); do
	case "$applet" in
	busybox | */* | "") continue ;;
	esac
	link "bin/$applet" busybox
done

cat >etc/passwd <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >etc/group <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
echo mlsched >etc/hostname
cat >etc/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF
chmod 0644 etc/passwd etc/group etc/hostname etc/hosts

echo "$version" >"$STAMP.new"
mv -f "$STAMP.new" "$STAMP"
