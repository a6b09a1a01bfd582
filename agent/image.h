/*
 * image.h - the images tasks run from.  A plain image is a rootfs folder on
 * the node, used as it is.  An "oci:PATH[:TAG]" image (common/ociref.h) is
 * an OCI image layout on the node: its tag is resolved to the manifest
 * digest from index.json (a file read, no child process), and that manifest
 * is unpacked once by umoci into the agent's image cache,
 *
 *     STATE/images/sha256-HEX/rootfs     (HEX: the manifest digest)
 *
 * which every task naming that digest then mounts read-only (each task
 * still gets its own writable /work and /tmp, see runc.h).
 *
 * Unpacking does not block the agent's loop: umoci runs as a child
 * ("umoci unpack --image PATH:TAG STATE/images/.tmp-sha256-HEX-PID"), and a
 * start order that needs it waits in the unpack's list of waiters until the
 * child exits (task_reap hands the exit to image_child_exited).  Then the
 * folder is checked (umoci.json names the digest we resolved), given the
 * /work and /tmp mount points the bundle needs, and renamed into place in
 * one step: a task, a concurrent start or a restarted agent sees a whole
 * image or none.  The waiting orders then start (task_start again, now a
 * cache hit) or fail with the reason.  Two starts of one digest at the same
 * time share one unpack.  A waiting start is also written to its task
 * folder (start.json), so that an agent restarted meanwhile starts it
 * again (task.c).
 *
 * The cache is bounded by --image-cache-max entries: after an unpack and
 * after a task ends, the least recently used entries beyond it (use = a
 * task started from it; its folder's mtime) are removed, never one that a
 * task here runs from (atask.image).  Removal is a recursive delete in the
 * loop: it blocks for as long as the file system needs to unlink that
 * image (logged with its duration).
 *
 * Failures fail the task at once, with a reason that names the image, the
 * node and the cause: no such rootfs folder, no such layout, no such tag
 * (with the tags the layout has), umoci missing or failing (the tail of its
 * stderr).
 */
#ifndef MLSCHED_IMAGE_H
#define MLSCHED_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "ociref.h"

struct agent;

/* A cache entry's name: "sha256-" and 64 hex digits, NUL included. */
#define IMAGE_ENTRY_LEN OCIREF_DIGEST_LEN
/* image_prepare: the start must wait for an unpack. */
#define IMAGE_PENDING 1
/* The longest reason an event may carry, NUL included (the master takes
 * at most 255 bytes, master.h's REASON_MAX, and drops a longer one). */
#define EVENT_REASON_MAX 256
/* Bytes of umoci's stderr quoted in a failure reason. */
#define IMAGE_ERR_TAIL 300

/*
 * Set up STATE/images (a->images_dir) and remove what an earlier agent
 * process left half done there (.tmp-* folders of unpacks it did not
 * finish).  Fatal when the folder cannot be made.  Called once at start,
 * before task_reattach.
 */
void image_init(struct agent *a);

/*
 * The rootfs for a start order of image (job/idx/attempt):
 *  - 0: rootfs (PATH_MAX bytes) is the folder to mount, and entry
 *    (IMAGE_ENTRY_LEN bytes) the cache entry it is in ("" for a plain
 *    folder), whose last use is now;
 *  - IMAGE_PENDING: the image is being unpacked (by this call or an earlier
 *    one); a copy of order is kept, and task_start(a, order, ...) runs again
 *    once the unpack has ended, or the task fails with its reason;
 *  - a negative err.h code with why: the task fails at once.
 * dir is the task's folder, where a waiting start is recorded (start.json).
 */
int image_prepare(struct agent *a, const char *image, const cJSON *order, uint64_t job,
		  uint32_t idx, uint32_t attempt, const char *dir, char *rootfs, char *entry,
		  char *why, size_t whylen);

/* reason cut to fit an event (EVENT_REASON_MAX, "..." at the end when cut)
 * into buf (len bytes); returns buf. */
const char *event_reason(const char *reason, char *buf, size_t len);

/* SIGCHLD: is pid an unpack's umoci?  Then finish that unpack (see above)
 * and return true. */
bool image_child_exited(struct agent *a, pid_t pid, int status);

/* A stop for a start that waits for an unpack: drop it and return true
 * (the caller reports the task gone); false when none waits. */
bool image_cancel(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt);

/* Remove least recently used cache entries beyond --image-cache-max that no
 * task here runs from. */
void image_trim(struct agent *a);

/* The agent stops: kill the unpacks in flight and remove their folders;
 * their waiting starts are recorded in their task folders (start.json) and
 * run again by the next agent process. */
void image_shutdown(struct agent *a);

#endif
