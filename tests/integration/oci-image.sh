#!/usr/bin/env bash
# oci:PATH[:TAG] images: an OCI image layout (built here with umoci from the
# busybox rootfs) is unpacked once per manifest by the agent, shared
# read-only by the tasks that name it, bounded by --image-cache-max; a start
# that waits for an unpack survives an agent restart; a missing layout, an
# unknown tag, a broken layout (umoci fails) and a missing rootfs folder each
# fail the task with a reason naming the image and the node.
. "$(dirname "$0")/lib.sh"

command -v umoci >/dev/null || { log "SKIP: umoci is not installed (apt-get install umoci)"; exit 0; }

# The layout: tag t is the busybox rootfs without /work (the agent adds the
# mount points the bundle needs), tag t2 the same plus one file.
L=$T/layout
B=$T/bundle
{
	umoci init --layout "$L" &&
		umoci new --image "$L:t" &&
		umoci unpack --image "$L:t" "$B" &&
		cp -a "$MLS_ROOTFS/." "$B/rootfs/" &&
		rm -rf "$B/rootfs/work" &&
		umoci repack --image "$L:t" "$B" &&
		echo second >"$B/rootfs/etc/tag" &&
		umoci repack --image "$L:t2" "$B" &&
		rm -rf "$B"
} >"$T/umoci-build.log" 2>&1 || { log "FAIL: building the layout:"; sed 's/^/#   /' "$T/umoci-build.log"; exit 1; }
digest() { jq -r --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$L/index.json" | sed 's/^sha256://'; }
D1=$(digest t)
D2=$(digest t2)
check "the layout has two tags" [ ${#D1} -eq 64 -a ${#D2} -eq 64 -a "$D1" != "$D2" ]

# umoci, slowed down: the unpack is still running when the second start
# comes, and when the agent is killed below.
cat >"$T/slow-umoci" <<'EOF'
#!/bin/sh
sleep 1.5
exec umoci "$@"
EOF
chmod +x "$T/slow-umoci"

start_master || exit 1
start_agent a1 --umoci "$T/slow-umoci" --image-cache-max 1 || exit 1
IMG=$T/agent-a1/images

unpacks() { grep -c "unpacking into $IMG/sha256-$1" "$T/agent-a1.log"; }

# Two jobs of one image at the same time: both run from one unpack.
mlctl run --name o1 "oci:$L:t" -- sh -c 'echo "one from oci: $(cat /etc/hostname 2>/dev/null || echo up)"; touch /bin/x 2>/dev/null && echo rootfs-writable || echo rootfs-read-only' >/dev/null
mlctl run --name o2 "oci:$L:t" -- sh -c 'echo two from oci; echo scratch >/work/f && cat /work/f' >/dev/null
check "o1 succeeds" wait_for 20 job_state_is o1 succeeded
check "o2 succeeds" wait_for 20 job_state_is o2 succeeded
l1=$(mlctl logs o1)
l2=$(mlctl logs o2)
check "o1 printed ($l1)" grep -q "^one from oci" <<<"$l1"
check "o1 found its rootfs read-only" grep -qx "rootfs-read-only" <<<"$l1"
check "o2 printed and wrote its /work ($l2)" [ "$l2" = "$(printf 'two from oci\nscratch')" ]
check "one unpack for both ($(unpacks "$D1"))" [ "$(unpacks "$D1")" = 1 ]
check "the second start waited for it" [ "$(grep -c "waits for image oci:$L:t to be unpacked" "$T/agent-a1.log")" -eq 2 ]
check "the image is cached under its digest" [ -d "$IMG/sha256-$D1/rootfs/bin" ]
check "the agent added /work to it" [ -d "$IMG/sha256-$D1/rootfs/work" ]
check "no half-unpacked folder left" [ -z "$(ls -A "$IMG" | grep -v '^sha256-')" ]

# A later job of the same tag: a cache hit, no new unpack.
mlctl run --name o3 "oci:$L:t" -- echo again >/dev/null
check "o3 succeeds" wait_for 20 job_state_is o3 succeeded
check "o3 needed no unpack" [ "$(unpacks "$D1")" = 1 ]

# Another manifest (tag t2) with --image-cache-max 1: t's entry, no longer
# used, makes room.
mlctl run --name o4 "oci:$L:t2" -- cat /etc/tag >/dev/null
check "o4 succeeds" wait_for 20 job_state_is o4 succeeded
check "o4 ran the t2 image" [ "$(mlctl logs o4)" = second ]
check "t's entry was removed (least recently used)" wait_for 5 test ! -e "$IMG/sha256-$D1"
check "t2's entry stays" [ -d "$IMG/sha256-$D2/rootfs" ]

# A start waiting for an unpack survives an agent killed meanwhile: the
# next agent process unpacks again and runs it.
off=$(stat -c %s "$T/agent-a1.log")
mlctl run --name o5 "oci:$L:t" -- echo after restart >/dev/null
waiting() { tail -c +"$((off + 1))" "$T/agent-a1.log" | grep -q "waits for image oci:$L:t to be unpacked"; }
# (a start order may come again to the new agent: it must not run twice)
check "o5 waits for its unpack" wait_for 10 waiting
# The killed agent's umoci (by its pid in the log) goes too.
upid=$(tail -c +"$((off + 1))" "$T/agent-a1.log" | sed -n 's/.*unpacking into .*(umoci pid \([0-9]*\)).*/\1/p' | tail -n1)
kill -9 "${AGENT_PID[a1]}"
wait "${AGENT_PID[a1]}" 2>/dev/null
[ -n "$upid" ] && kill -9 "$upid" 2>/dev/null
recorded() { ls "$T"/agent-a1/tasks/*/start.json >/dev/null 2>&1; }
check "the waiting start was recorded" recorded
start_agent a1 --umoci "$T/slow-umoci" --image-cache-max 1 || exit 1
check "o5 succeeds after the agent restart" wait_for 20 job_state_is o5 succeeded
check "o5 printed" [ "$(mlctl logs o5)" = "after restart" ]
check "the new agent removed the interrupted unpack" [ -z "$(ls -A "$IMG" | grep -v '^sha256-')" ]

# An entry in use is never removed, even past --image-cache-max: t's while
# o6 runs from it, although o7's t2 was used more recently.
mlctl run --name o6 "oci:$L:t" -- sleep 60 >/dev/null
check "o6 runs" wait_for 20 job_state_is o6 running
mlctl run --name o7 "oci:$L:t2" -- true >/dev/null
check "o7 succeeds" wait_for 20 job_state_is o7 succeeded
check "t2's entry, unused, made room" wait_for 5 test ! -e "$IMG/sha256-$D2"
check "t's entry, in use, stays" [ -d "$IMG/sha256-$D1/rootfs" ]
mlctl cancel o6 >/dev/null

# Failures, each with the image and the node in the reason.
mlctl run --name badtag "oci:$L:nope" -- true >/dev/null
check "an unknown tag fails the job" wait_for 10 job_state_is badtag failed
r=$(job_field badtag reason)
check "reason names the tag, node and tags there ($r)" \
	grep -qF "image oci:$L:nope on node a1: OCI layout $L has no tag \"nope\" (it has \"t\", \"t2\")" <<<"$r"

mlctl run --name nolayout "oci:$T/no-layout:t" -- true >/dev/null
check "a missing layout fails the job" wait_for 10 job_state_is nolayout failed
r=$(job_field nolayout reason)
check "reason names the layout and node ($r)" \
	grep -qF "image oci:$T/no-layout:t on node a1: OCI layout $T/no-layout: no such folder" <<<"$r"

# A layout whose layer blob is gone: index.json resolves, umoci fails.
# (t2: t is cached, and a cached manifest needs no blobs.)
cp -a "$L" "$T/broken"
layer=$(jq -r '.layers[-1].digest' "$T/broken/blobs/sha256/$D2" | sed 's/^sha256://')
rm -f "$T/broken/blobs/sha256/$layer"
mlctl run --name broken "oci:$T/broken:t2" -- true >/dev/null
check "a failing umoci fails the job" wait_for 15 job_state_is broken failed
r=$(mlctl -o json status broken | jq -r '.tasks[0].reason')
check "reason quotes umoci ($r)" grep -qE "^image oci:$T/broken:t2 on node a1: umoci unpack failed \(exit status [0-9]+\): .*no such file or directory$" <<<"$r"
check "the failed unpack left nothing" [ -z "$(ls -A "$IMG" | grep -v '^sha256-')" ]
check "mlctl status shows it" grep -q "umoci unpack failed" <<<"$(mlctl status broken)"

# A stop for a start that waits for its unpack drops it: the job ends
# cancelled and nothing of it is left on the node.
off=$(stat -c %s "$T/agent-a1.log")
mlctl run --name o8 "oci:$L:t2" -- echo never >/dev/null
waiting8() { tail -c +"$((off + 1))" "$T/agent-a1.log" | grep -q "waits for image oci:$L:t2 to be unpacked"; }
check "o8 waits for its unpack" wait_for 10 waiting8
mlctl cancel o8 >/dev/null
check "o8 is cancelled" wait_for 10 job_state_is o8 cancelled
check "the agent dropped the waiting start" grep -q "stopped while it waited for image oci:$L:t2" "$T/agent-a1.log"
check "o8's task folder is gone" wait_for 5 bash -c "! ls -d '$T'/agent-a1/tasks/mls-* 2>/dev/null | grep -q ."
check "o8 never ran" [ -z "$(mlctl logs o8 2>/dev/null)" ]

mlctl run --name nofolder /no/such/rootfs -- true >/dev/null
check "a missing rootfs folder fails the job" wait_for 10 job_state_is nofolder failed
r=$(job_field nofolder reason)
check "reason names the folder and node ($r)" grep -qF "image /no/such/rootfs: no such folder on node a1" <<<"$r"

# A malformed reference never reaches an agent.
out=$(mlctl run --name badref "oci:$L:a:b" -- true 2>&1)
check "a malformed reference is refused ($out)" grep -q "more than one ':'" <<<"$out"
finish
