/*
 * image.c - rootfs folders and the cache of unpacked OCI images (image.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "image.h"
#include "log.h"
#include "proc.h"
#include "util.h"
#include "wire.h"

extern char **environ;

#define TMP_PREFIX ".tmp-"
#define ENTRY_PREFIX "sha256-"
#define START_FILE "start.json"
/* A failed unpack's reason, NUL included: an event's, less room for the
 * "task N failed: " the master puts before it in the job's reason. */
#define UNPACK_REASON_MAX (EVENT_REASON_MAX - 32)

/* A start order that waits for an unpack. */
struct waiter {
	cJSON *order;
	uint64_t job;
	uint32_t idx, attempt;
	char *dir; /* the task's folder (its start.json) */
	struct waiter *next;
};

/* One umoci child unpacking one manifest. */
struct image_unpack {
	char entry[IMAGE_ENTRY_LEN]; /* "sha256-HEX" */
	char digest[OCIREF_DIGEST_LEN];
	char *image;                 /* the reference, for messages */
	char *tmp;                   /* images_dir/.tmp-ENTRY, umoci's target */
	char *log;                   /* images_dir/.tmp-ENTRY.log, its stderr */
	pid_t pid;
	uint64_t started;            /* monotonic ms */
	struct waiter *waiters;
	struct image_unpack *next;
};

void image_init(struct agent *a)
{
	struct dirent *de;
	DIR *d;

	if (mkdir_p(a->images_dir, 0750) != 0)
		fatal("cannot create %s: %s", a->images_dir, strerror(errno));
	if (!(d = opendir(a->images_dir)))
		fatal("cannot read %s: %s", a->images_dir, strerror(errno));
	while ((de = readdir(d))) {
		char *p;
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0)
			continue;
		p = xasprintf("%s/%s", a->images_dir, de->d_name);
		log_info("%s: an unpack an earlier agent process did not finish: removing it", p);
		rm_rf(p);
		free(p);
	}
	closedir(d);
}

/* ---- starting an unpack ---- */

static int fd_above2(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

/* "umoci unpack [--rootless] --image PATH:TAG TMP" with stdin and stdout on
 * /dev/null and stderr into u->log.  0 with u->pid set, or ERR_SYS with why. */
static int unpack_spawn(struct agent *a, struct image_unpack *u, const char *path,
			const char *tag, char *why, size_t whylen)
{
	const char *argv[8];
	char *ref = xasprintf("%s:%s", path, tag);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int devnull = -1, logfd = -1, e, rv = ERR_SYS;
	bool fa_ok = false, attr_ok = false;
	size_t n = 0;

	rm_rf(u->tmp);
	devnull = fd_above2(open("/dev/null", O_RDWR | O_CLOEXEC));
	logfd = fd_above2(open(u->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
	if (devnull < 0 || logfd < 0) {
		set_why(why, whylen, "cannot open %s: %s", devnull < 0 ? "/dev/null" : u->log,
			strerror(errno));
		goto out;
	}
	argv[n++] = a->cfg.umoci_bin;
	argv[n++] = "unpack";
	/* Not root: umoci maps the image's owners to us. */
	if (geteuid() != 0)
		argv[n++] = "--rootless";
	argv[n++] = "--image";
	argv[n++] = ref;
	argv[n++] = u->tmp;
	argv[n] = NULL;
	if ((e = posix_spawn_file_actions_init(&fa)) != 0)
		goto spawn_fail;
	fa_ok = true;
	if ((e = posix_spawn_file_actions_adddup2(&fa, devnull, 0)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 1)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, logfd, 2)) != 0)
		goto spawn_fail;
	attr_ok = true;
	if ((e = proc_spawnattr(&attr, false)) != 0)
		goto spawn_fail;
	if ((e = posix_spawnp(&u->pid, argv[0], &fa, &attr, (char *const *)argv, environ)) != 0)
		goto spawn_fail;
	u->started = now_ms();
	rv = 0;
	goto out;
spawn_fail:
	if (e == ENOENT)
		set_why(why, whylen,
			"%s is not installed here (apt-get install umoci, or pass --umoci PATH)",
			a->cfg.umoci_bin);
	else
		set_why(why, whylen, "cannot start %s: %s", a->cfg.umoci_bin, strerror(e));
out:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	if (devnull >= 0)
		close(devnull);
	if (logfd >= 0)
		close(logfd);
	free(ref);
	return rv;
}

/* Record a waiting start in its task folder, for an agent restarted
 * before the unpack ends (task.c starts it again).  Best effort: a start
 * not recorded is lost only if the agent stops meanwhile. */
static void record_start(const char *dir, const cJSON *order)
{
	char *path = xasprintf("%s/%s", dir, START_FILE), *text;

	if (!(text = cJSON_PrintUnformatted(order))) {
		fprintf(stderr, "mlagent: out of memory\n");
		abort();
	}
	if (mkdir_p(dir, 0755) != 0 || file_replace(path, text, strlen(text)) != 0)
		log_warn("cannot write %s: %s (the start is lost if the agent stops before the "
			 "image is unpacked)",
			 path, strerror(errno));
	cJSON_free(text);
	free(path);
}

static void waiter_free(struct waiter *w);

/*
 * Does a start of this task wait already?  The same attempt: a repeated
 * order, which changes nothing (true).  Another attempt: the master has
 * moved on (it gave the earlier one up, e.g. when this agent restarted), so
 * the earlier one is dropped, whatever image it waits for (false: the new
 * one waits in its place; its start.json replaces the earlier one's).
 */
static bool already_waits(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	for (struct image_unpack *u = a->unpacks; u; u = u->next)
		for (struct waiter **pp = &u->waiters; *pp; pp = &(*pp)->next) {
			struct waiter *w = *pp;
			if (w->job != job || w->idx != idx)
				continue;
			if (w->attempt == attempt)
				return true;
			log_info("job=%" PRIu64 " task=%u: attempt %u replaces attempt %u, which "
				 "waited for image %s",
				 job, idx, attempt, w->attempt, u->image);
			*pp = w->next;
			waiter_free(w);
			return false;
		}
	return false;
}

int image_prepare(struct agent *a, const char *image, const cJSON *order, uint64_t job,
		  uint32_t idx, uint32_t attempt, const char *dir, char *rootfs, char *entry,
		  char *why, size_t whylen)
{
	char path[OCIREF_PATH_MAX + 1], tag[OCIREF_TAG_MAX + 1], digest[OCIREF_DIGEST_LEN];
	char r[RUNC_WHY_LEN], *final = NULL;
	struct image_unpack *u;
	struct waiter *w;
	struct stat st;
	int rv;

	entry[0] = '\0';
	if (!ociref_is(image)) {
		if (image[0] != '/') {
			set_why(why, whylen,
				"image \"%.300s\" is neither an absolute rootfs folder nor "
				"oci:PATH[:TAG]",
				image);
			return ERR_INVAL;
		}
		if (stat(image, &st) != 0 || !S_ISDIR(st.st_mode)) {
			set_why(why, whylen, "image %.300s: no such folder on node %s", image,
				a->cfg.name);
			return ERR_NOENT;
		}
		if (strlen(image) >= PATH_MAX) {
			set_why(why, whylen, "image %.300s: path too long", image);
			return ERR_TOOBIG;
		}
		strcpy(rootfs, image);
		return 0;
	}
	if ((rv = ociref_parse(image, path, sizeof(path), tag, sizeof(tag), r, sizeof(r))) != 0) {
		set_why(why, whylen, "image %.300s: %s", image, r);
		return rv;
	}
	if ((rv = ociref_resolve(path, tag, digest, r, sizeof(r))) != 0) {
		set_why(why, whylen, "image %.300s on node %s: %s", image, a->cfg.name, r);
		return rv;
	}
	snprintf(entry, IMAGE_ENTRY_LEN, ENTRY_PREFIX "%s", digest + 7);
	final = xasprintf("%s/%s", a->images_dir, entry);
	if (snprintf(rootfs, PATH_MAX, "%s/rootfs", final) >= PATH_MAX) {
		set_why(why, whylen, "--state-dir path too long");
		rv = ERR_TOOBIG;
		goto out;
	}
	if (stat(rootfs, &st) == 0 && S_ISDIR(st.st_mode)) {
		/* Its last use, for image_trim. */
		if (utimensat(AT_FDCWD, final, NULL, 0) != 0)
			log_warn("%s: cannot update its time: %s", final, strerror(errno));
		rv = 0;
		goto out;
	}
	if (already_waits(a, job, idx, attempt)) {
		rv = IMAGE_PENDING;
		goto out;
	}
	for (u = a->unpacks; u; u = u->next)
		if (strcmp(u->entry, entry) == 0)
			break;
	if (!u) {
		u = xcalloc(1, sizeof(*u));
		snprintf(u->entry, sizeof(u->entry), "%s", entry);
		snprintf(u->digest, sizeof(u->digest), "%s", digest);
		u->image = xstrdup(image);
		/* The pid in the name: a umoci left running by a killed
		 * agent never writes where this one does. */
		u->tmp = xasprintf("%s/" TMP_PREFIX "%s-%d", a->images_dir, entry, (int)getpid());
		u->log = xasprintf("%s.log", u->tmp);
		if ((rv = unpack_spawn(a, u, path, tag, r, sizeof(r))) != 0) {
			set_why(why, whylen, "image %.300s on node %s: %s", image, a->cfg.name, r);
			unlink(u->log);
			free(u->image);
			free(u->tmp);
			free(u->log);
			free(u);
			goto out;
		}
		u->next = a->unpacks;
		a->unpacks = u;
		log_info("image %s (%s): unpacking into %s (umoci pid %d)", image, digest, final,
			 (int)u->pid);
	}
	w = xcalloc(1, sizeof(*w));
	w->order = cJSON_Duplicate(order, 1);
	w->job = job;
	w->idx = idx;
	w->attempt = attempt;
	w->dir = xstrdup(dir);
	{
		/* At the end: they start in the order they came. */
		struct waiter **pp = &u->waiters;
		while (*pp)
			pp = &(*pp)->next;
		*pp = w;
	}
	record_start(dir, order);
	log_info("job=%" PRIu64 " task=%u attempt=%u waits for image %s to be unpacked", job, idx,
		 attempt, image);
	rv = IMAGE_PENDING;
out:
	free(final);
	return rv;
}

/* ---- an unpack ends ---- */

/* The last bytes of umoci's stderr as one line of printable ASCII (its
 * messages carry colour codes and symbols), at most IMAGE_ERR_TAIL
 * characters into out (len bytes, at least IMAGE_ERR_TAIL + 1). */
static void err_tail(const char *path, char *out, size_t len)
{
	char buf[2048], clean[2048];
	size_t k = 0;
	ssize_t n;
	bool space = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;

	out[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (const char *c = buf; *c; c++) {
		unsigned char ch = (unsigned char)*c;
		if (ch == 0x1b && c[1] == '[') { /* ESC [ parameters, a final byte */
			c += 2;
			while (*c && !(*c >= '@' && *c <= '~'))
				c++;
			if (!*c)
				break;
			continue;
		}
		if (ch <= ' ' || ch >= 0x7f) {
			if (!space)
				clean[k++] = ' ';
			space = true;
			continue;
		}
		clean[k++] = (char)ch;
		space = false;
	}
	while (k > 0 && clean[k - 1] == ' ')
		k--;
	clean[k] = '\0';
	/* Keep the end, where the error is. */
	if (k > IMAGE_ERR_TAIL && len > IMAGE_ERR_TAIL) {
		memcpy(out, "...", 3);
		memcpy(out + 3, clean + k - (IMAGE_ERR_TAIL - 3), IMAGE_ERR_TAIL - 3 + 1);
	} else if (k < len) {
		memcpy(out, clean, k + 1);
	}
}

/* An unpack that exited with status 0: check it and move it into place.
 * 0 or an err.h code with why. */
static int finish_ok(struct agent *a, struct image_unpack *u, char *why, size_t whylen)
{
	char *final = xasprintf("%s/%s", a->images_dir, u->entry);
	char *meta = xasprintf("%s/umoci.json", u->tmp), *text = NULL;
	char *rootfs = xasprintf("%s/rootfs", u->tmp), *mp = NULL;
	const cJSON *walk, *d;
	cJSON *j = NULL;
	struct stat st;
	int rv = ERR_INVAL;

	if (stat(rootfs, &st) != 0 || !S_ISDIR(st.st_mode)) {
		set_why(why, whylen, "umoci left no rootfs folder in %s", u->tmp);
		goto out;
	}
	/* umoci read the tag again: it must still name what we resolved. */
	if (file_read(meta, 1 << 20, &text, NULL) == 0 && (j = cJSON_Parse(text))) {
		walk = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(j, "from_descriptor_path"), "descriptor_walk");
		d = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(walk, 0), "digest");
		if (cJSON_IsString(d) && strcmp(d->valuestring, u->digest) != 0) {
			set_why(why, whylen,
				"the tag moved to another manifest while it was unpacked (%.30s... "
				"instead of %.30s...): start the job again",
				d->valuestring, u->digest);
			goto out;
		}
	}
	/* The bundle binds /work and /tmp over a read-only rootfs: their
	 * mount points must be in the image (registry images rarely have
	 * /work). */
	mp = xasprintf("%s/work", rootfs);
	if (lstat(mp, &st) != 0 && mkdir(mp, 0755) != 0) {
		set_why(why, whylen, "cannot create %s: %s", mp, strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	free(mp);
	mp = xasprintf("%s/tmp", rootfs);
	if (lstat(mp, &st) != 0 && (mkdir(mp, 01777) != 0 || chmod(mp, 01777) != 0)) {
		set_why(why, whylen, "cannot create %s: %s", mp, strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	if (rename(u->tmp, final) != 0) {
		set_why(why, whylen, "cannot rename %s to %s: %s", u->tmp, final, strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	rv = 0;
out:
	cJSON_Delete(j);
	free(text);
	free(meta);
	free(rootfs);
	free(mp);
	free(final);
	return rv;
}

static void waiter_free(struct waiter *w)
{
	cJSON_Delete(w->order);
	free(w->dir);
	free(w);
}

const char *event_reason(const char *reason, char *buf, size_t len)
{
	size_t n = strlen(reason), max = len < EVENT_REASON_MAX ? len : EVENT_REASON_MAX;

	if (n < max) {
		memcpy(buf, reason, n + 1);
	} else {
		memcpy(buf, reason, max - 4);
		memcpy(buf + max - 4, "...", 4);
	}
	return buf;
}

static void waiter_fail(struct agent *a, struct waiter *w, const char *reason)
{
	char r[EVENT_REASON_MAX];
	cJSON *e;

	log_warn("job=%" PRIu64 " task=%u cannot start: %s", w->job, w->idx, reason);
	e = session_event(a, "failed", w->job, w->idx, w->attempt);
	cJSON_AddStringToObject(e, "reason", event_reason(reason, r, sizeof(r)));
	rm_rf(w->dir);
}

static void unpack_free(struct image_unpack *u)
{
	while (u->waiters) {
		struct waiter *w = u->waiters;
		u->waiters = w->next;
		waiter_free(w);
	}
	free(u->image);
	free(u->tmp);
	free(u->log);
	free(u);
}

bool image_child_exited(struct agent *a, pid_t pid, int status)
{
	struct image_unpack **pp, *u;
	char why[RUNC_WHY_LEN] = "", reason[RUNC_WHY_LEN], tail[IMAGE_ERR_TAIL + 1] = "";
	int rv = 0;

	for (pp = &a->unpacks; *pp; pp = &(*pp)->next)
		if ((*pp)->pid == pid)
			break;
	if (!(u = *pp))
		return false;
	*pp = u->next;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		rv = finish_ok(a, u, why, sizeof(why));
	} else {
		err_tail(u->log, tail, sizeof(tail));
		if (!tail[0])
			snprintf(tail, sizeof(tail), "no message on its stderr");
		if (WIFEXITED(status))
			snprintf(why, sizeof(why), "umoci unpack failed (exit status %d): ",
				 WEXITSTATUS(status));
		else
			snprintf(why, sizeof(why), "umoci unpack was killed by signal %d: ",
				 WTERMSIG(status));
		rv = ERR_IO;
	}
	unlink(u->log);
	if (rv != 0) {
		size_t head;
		rm_rf(u->tmp);
		head = (size_t)snprintf(reason, sizeof(reason), "image %.300s on node %s: %s",
					u->image, a->cfg.name, why);
		if (head >= sizeof(reason))
			head = sizeof(reason) - 1;
		log_warn("%s%s", reason, tail);
		/* The end of umoci's message says what failed: keep that
		 * when the whole does not fit in a reason (with room for the
		 * master's "task N failed: " in the job's). */
		if (head + strlen(tail) < UNPACK_REASON_MAX || head + 40 > UNPACK_REASON_MAX)
			snprintf(reason + head, sizeof(reason) - head, "%s", tail);
		else
			snprintf(reason + head, sizeof(reason) - head, "...%s",
				 tail + strlen(tail) - (UNPACK_REASON_MAX - 1 - head - 3));
	} else {
		log_info("image %s (%s) unpacked in %" PRIu64 " ms", u->image, u->digest,
			 now_ms() - u->started);
	}
	while (u->waiters) {
		struct waiter *w = u->waiters;
		u->waiters = w->next;
		if (rv != 0)
			waiter_fail(a, w, reason);
		else
			task_start(a, w->order, w->job, w->idx, w->attempt);
		waiter_free(w);
	}
	unpack_free(u);
	image_trim(a);
	return true;
}

bool image_cancel(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	for (struct image_unpack *u = a->unpacks; u; u = u->next)
		for (struct waiter **pp = &u->waiters; *pp; pp = &(*pp)->next) {
			struct waiter *w = *pp;
			if (w->job != job || w->idx != idx || w->attempt != attempt)
				continue;
			*pp = w->next;
			log_info("job=%" PRIu64 " task=%u stopped while it waited for image %s",
				 job, idx, u->image);
			rm_rf(w->dir);
			waiter_free(w);
			return true;
		}
	return false;
}

/* ---- the cache's bound ---- */

static bool entry_name(const char *name)
{
	if (strncmp(name, ENTRY_PREFIX, strlen(ENTRY_PREFIX)) != 0 ||
	    strlen(name) != IMAGE_ENTRY_LEN - 1)
		return false;
	for (const char *c = name + strlen(ENTRY_PREFIX); *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

static bool entry_in_use(struct agent *a, const char *name)
{
	for (struct atask *t = a->tasks; t; t = t->next)
		if (strcmp(t->image, name) == 0)
			return true;
	return false;
}

void image_trim(struct agent *a)
{
	struct ent {
		char name[IMAGE_ENTRY_LEN];
		struct timespec used;
	} *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	if (!a->cfg.image_cache_max || !(d = opendir(a->images_dir)))
		return;
	while ((de = readdir(d))) {
		struct stat st;
		char *p;
		if (!entry_name(de->d_name))
			continue;
		p = xasprintf("%s/%s", a->images_dir, de->d_name);
		if (stat(p, &st) == 0) {
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				v = xrealloc(v, cap * sizeof(*v));
			}
			snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
			v[n].used = st.st_mtim;
			n++;
		}
		free(p);
	}
	closedir(d);
	while (n > a->cfg.image_cache_max) {
		size_t old = SIZE_MAX;
		for (size_t i = 0; i < n; i++) {
			if (entry_in_use(a, v[i].name))
				continue;
			if (old == SIZE_MAX || v[i].used.tv_sec < v[old].used.tv_sec ||
			    (v[i].used.tv_sec == v[old].used.tv_sec &&
			     v[i].used.tv_nsec < v[old].used.tv_nsec))
				old = i;
		}
		if (old == SIZE_MAX) {
			log_debug(LOG_SUB_RUNC,
				  "image cache: %zu entries, over --image-cache-max %" PRIu64
				  ", all in use",
				  n, a->cfg.image_cache_max);
			break;
		}
		{
			char *p = xasprintf("%s/%s", a->images_dir, v[old].name);
			uint64_t t0 = now_ms();
			rm_rf(p);
			log_info("image cache: removed %s, the least recently used of %zu entries "
				 "(--image-cache-max %" PRIu64 ", %" PRIu64 " ms)",
				 v[old].name, n, a->cfg.image_cache_max, now_ms() - t0);
			free(p);
		}
		v[old] = v[--n];
	}
	free(v);
}

void image_shutdown(struct agent *a)
{
	while (a->unpacks) {
		struct image_unpack *u = a->unpacks;
		int st;
		a->unpacks = u->next;
		kill(u->pid, SIGKILL);
		while (waitpid(u->pid, &st, 0) < 0 && errno == EINTR)
			;
		rm_rf(u->tmp);
		unlink(u->log);
		for (struct waiter *w = u->waiters; w; w = w->next) {
			if (a->cfg.stop_tasks_on_exit)
				waiter_fail(a, w,
					    "the agent stopped (--stop-tasks-on-exit) before its "
					    "image was unpacked");
			else
				log_info("job=%" PRIu64 " task=%u waits for image %s: the next "
					 "agent process starts it",
					 w->job, w->idx, u->image);
		}
		unpack_free(u);
	}
}
