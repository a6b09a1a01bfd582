/*
 * shim.c - the per-task shim ("mlagent-shim shim DIR", built from this file
 * and shim_bin.c) and the task folder.
 *
 * A task's folder (tasks_dir/<container id>) is its OCI bundle (config.json,
 * work/, tmp/) and what a later agent process needs to take the task over:
 *   meta.json  the task, written by the agent before it starts the shim
 *              (also its port and health object, so that a later agent
 *              probes an adopted task again)
 *   shim.pid   written by the shim first thing
 *   pid        the container init's host pid (runc --pid-file)
 *   stop       while a stop is under way: the wall-clock ms of its SIGKILL
 *   exit       "code N signal S", written (atomically) by the shim when it
 *              has reaped the container's init
 * The shim gets the folder as its only argument and reports on descriptor
 * SHIM_REPORT_FD one line, "started PID" or "failed WHY", once runc run has
 * returned; then it waits for the container and exits 0 after writing exit.
 * The agent side lives here too: starting a shim and waiting for its report
 * (shim_spawn), adopting a live one after an agent restart (shim_adopt).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "proc.h"
#include "util.h"

extern char **environ;

char *shim_file(const struct atask *t, const char *name)
{
	return xasprintf("%s/%s", t->dir, name);
}

/* A number written alone in a small file (a pid, a time).  0 or err. */
int shim_read_num(const char *path, uint64_t max, uint64_t *v)
{
	char *text = NULL, *end;
	unsigned long long n;
	int rv;

	if ((rv = file_read(path, 64, &text, NULL)) != 0)
		return rv;
	errno = 0;
	n = strtoull(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	rv = errno || end == text || *end || n > max ? ERR_INVAL : 0;
	if (rv == 0)
		*v = n;
	free(text);
	return rv;
}

int shim_write_num(const char *path, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);

	return file_replace(path, buf, (size_t)n);
}

int shim_meta_write(struct agent *a, const struct atask *t, const char *logp, const cJSON *health,
		    char *why, size_t whylen)
{
	cJSON *m = cJSON_CreateObject();
	char *text, *path = shim_file(t, "meta.json");
	int rv = 0;

	cJSON_AddNumberToObject(m, "job", (double)t->job);
	cJSON_AddNumberToObject(m, "task", t->idx);
	cJSON_AddNumberToObject(m, "attempt", t->attempt);
	cJSON_AddStringToObject(m, "id", t->id);
	cJSON_AddStringToObject(m, "cgroup", t->cgroup);
	cJSON_AddStringToObject(m, "runc", a->runc.bin);
	cJSON_AddStringToObject(m, "runc_root", a->runc.root);
	cJSON_AddStringToObject(m, "log", logp);
	/* When it started (near enough: the shim starts next), so that the
	 * probe's grace of an adopted task counts from the right time. */
	cJSON_AddNumberToObject(m, "started", (double)wall_ms());
	if (t->port)
		cJSON_AddNumberToObject(m, "port", t->port);
	if (t->image[0])
		cJSON_AddStringToObject(m, "image_entry", t->image);
	if (health)
		cJSON_AddItemToObject(m, "health", cJSON_Duplicate(health, 1));
	if (!(text = cJSON_PrintUnformatted(m))) {
		fprintf(stderr, "mlagent: out of memory\n");
		abort();
	}
	/* No fsync: task files matter across an agent restart, not a
	 * machine restart (which ends the containers too). */
	if (file_replace(path, text, strlen(text)) != 0) {
		set_why(why, whylen, "cannot write %.300s: %s", path, strerror(errno));
		rv = ERR_IO;
	}
	cJSON_free(text);
	cJSON_Delete(m);
	free(path);
	return rv;
}

/* fd moved to 10 or above, close-on-exec (the spawn's dup2s write 0..3). */
static int fd_high(int fd)
{
	int nfd;

	if (fd < 0)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	close(fd);
	return nfd;
}

static char shim_bin[PATH_MAX];

int shim_locate(char *why, size_t whylen)
{
	char self[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0) {
		set_why(why, whylen, "readlink /proc/self/exe: %s", strerror(errno));
		return ERR_SYS;
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')))
		*slash = '\0';
	if (snprintf(shim_bin, sizeof(shim_bin), "%s/mlagent-shim", self) >= (int)sizeof(shim_bin)) {
		set_why(why, whylen, "%s/mlagent-shim: path too long", self);
		return ERR_TOOBIG;
	}
	if (access(shim_bin, X_OK) != 0) {
		set_why(why, whylen,
			"%s: %s (mlagent-shim, the per-task shim, is installed beside mlagent)",
			shim_bin, strerror(errno));
		return ERR_NOENT;
	}
	return 0;
}

/*
 * Start t's shim and wait for its report: 0 with t->shim and t->pid set once
 * the container runs, or ERR_RUNC / ERR_SYS with the reason in why.  A shim
 * that fails exits at once; task_reap() collects it.  Only stdin, stdout
 * (/dev/null), stderr (ours) and the report pipe reach the shim: everything
 * else of ours is close-on-exec, the nng socket included.
 */
int shim_spawn(struct atask *t, char *why, size_t whylen)
{
	const char *argv[] = {"mlagent-shim", "shim", t->dir, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int p[2] = {-1, -1}, rd = -1, wr = -1, devnull = -1, e, rv = ERR_SYS, pid = 0;
	char report[SHIM_REPORT_MAX], *nl;
	size_t len = 0;
	uint64_t deadline;

	if (pipe2(p, O_CLOEXEC) < 0) {
		set_why(why, whylen, "cannot start the shim: pipe: %s", strerror(errno));
		return ERR_SYS;
	}
	rd = p[0];
	wr = fd_high(p[1]);
	devnull = fd_high(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (wr < 0 || devnull < 0) {
		set_why(why, whylen, "cannot start the shim: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	/* The shim starts with no signal blocked (we block some for the
	 * signalfd) and default dispositions. */
	if ((e = proc_spawnattr(&attr, false)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 0)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 1)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, wr, SHIM_REPORT_FD)) == 0)
		e = posix_spawn(&t->shim, shim_bin, &fa, &attr, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(wr);
	wr = -1;
	if (e != 0) {
		t->shim = 0;
		set_why(why, whylen, "cannot start the shim (%s): %s", shim_bin, strerror(e));
		goto out;
	}
	deadline = now_ms() + SHIM_START_TIMEOUT_MS;
	while (len < sizeof(report) - 1 && !memchr(report, '\n', len)) {
		struct pollfd pf = {.fd = rd, .events = POLLIN};
		uint64_t now = now_ms();
		ssize_t n;
		int ready = now < deadline ? poll(&pf, 1, (int)(deadline - now)) : 0;
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready == 0) {
			kill(t->shim, SIGKILL);
			set_why(why, whylen, "runc run %s did not finish within %d s", t->id,
				SHIM_START_TIMEOUT_MS / 1000);
			rv = ERR_RUNC;
			goto out;
		}
		n = read(rd, report + len, sizeof(report) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	report[len] = '\0';
	if ((nl = strchr(report, '\n')))
		*nl = '\0';
	rv = ERR_RUNC;
	if (sscanf(report, "started %d", &pid) == 1 && pid > 0) {
		t->pid = pid;
		rv = 0;
	} else if (strncmp(report, "failed ", 7) == 0)
		set_why(why, whylen, "%s", report + 7);
	else
		set_why(why, whylen, "the shim of %s ended without saying whether it started",
			t->id);
out:
	if (rd >= 0)
		close(rd);
	if (wr >= 0)
		close(wr);
	if (devnull >= 0)
		close(devnull);
	return rv;
}

/* Is pid "<any> shim <t->dir>" (mlagent-shim, or mlagent before there was
 * one)?  (A pid in shim.pid may have been reused.) */
static bool shim_cmdline_ok(const struct atask *t, pid_t pid)
{
	char *path = xasprintf("/proc/%d/cmdline", (int)pid), *text = NULL;
	size_t len = 0, a1;
	bool ok = false;

	if (file_read(path, CMDLINE_MAX, &text, &len) == 0 && len > 0) {
		/* argv[0] NUL "shim" NUL dir NUL */
		a1 = strlen(text) + 1;
		ok = a1 + 5 < len && strcmp(text + a1, "shim") == 0 &&
		     strcmp(text + a1 + 5, t->dir) == 0;
	}
	free(path);
	free(text);
	return ok;
}

/*
 * Take over the live shim of a task an earlier agent started.  It is not our
 * child, so its exit does not reach waitpid(): we watch it with a pidfd
 * (pidfd_open, Linux 5.3), which becomes readable when it exits, in the
 * loop's poll set.  Without pidfds we look at it once per heartbeat
 * (kill 0).  False when the shim is gone.
 */
bool shim_adopt(struct atask *t)
{
	struct pollfd pf;
	int fd = -1;

#ifdef SYS_pidfd_open
	fd = (int)syscall(SYS_pidfd_open, t->shim, 0);
	if (fd < 0 && errno == ESRCH)
		return false;
#endif
	/* Checked after pidfd_open: if the pidfd is still not readable
	 * afterwards, the process we read the cmdline of is the one the
	 * pidfd refers to. */
	if (!shim_cmdline_ok(t, t->shim))
		goto gone;
	pf.fd = fd;
	pf.events = POLLIN;
	if (fd >= 0 && poll(&pf, 1, 0) > 0)
		goto gone;
	t->pidfd = fd;
	return true;
gone:
	if (fd >= 0)
		close(fd);
	return false;
}

/* Has an adopted shim exited? */
bool shim_gone(const struct atask *t)
{
	struct pollfd pf = {.fd = t->pidfd, .events = POLLIN};

	if (t->pidfd >= 0)
		return poll(&pf, 1, 0) > 0;
	return kill(t->shim, 0) < 0 && errno == ESRCH;
}

/* ---- the shim process ---- */

/* A non-empty string of meta.json no longer than max, or NULL.  (Not
 * wire_get_str: the shim binary links no more than it needs.) */
static const char *meta_str(const cJSON *m, const char *key, size_t max)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);

	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max)
		return NULL;
	return v->valuestring;
}

/* One report line to the agent (which may be gone: EPIPE is ignored), then
 * the pipe is closed. */
static void shim_report(const char *fmt, ...)
{
	char line[SHIM_REPORT_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write_all(SHIM_REPORT_FD, line, (size_t)n) != 0 && errno != EPIPE)
		log_warn("cannot report to the agent: %s", strerror(errno));
	close(SHIM_REPORT_FD);
}

/*
 * mlagent-shim shim DIR: run the container of the task in DIR (see the top of
 * this file) and outlive the agent.  It has its own session (a ^C in
 * the agent's terminal or a signal to its process group must not reach it),
 * ignores SIGTERM, SIGINT and SIGHUP (only the container's end should end
 * it; under systemd, use KillMode=process), and is a child subreaper, so the
 * container's init, whose parent runc exits, becomes its child.  Exits 0
 * once DIR/exit is written, 1 on any failure.
 */
int shim_main(const char *dir)
{
	char *path = NULL, *text = NULL, why[RUNC_WHY_LEN] = "", buf[64], cid[RUNC_ID_MAX];
	const char *id = NULL, *bin = NULL, *root = NULL, *logp = NULL;
	struct runc r;
	cJSON *m = NULL;
	pid_t init = 0, w;
	int logfd = -1, st = 0, rv = 1, n;

	log_init("mlagent-shim", LOG_LVL_INFO, 2);
	/* The report pipe must not reach runc or the container; nothing else
	 * of the agent's should be here, but make sure. */
	if (fcntl(SHIM_REPORT_FD, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("shim %s: no report pipe on descriptor %d (the agent starts shims)", dir,
			  SHIM_REPORT_FD);
		return 2;
	}
	if (close_range(SHIM_REPORT_FD + 1, ~0U, 0) != 0)
		for (int fd = SHIM_REPORT_FD + 1; fd < 1024; fd++)
			close(fd);
	setsid();
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	path = xasprintf("%s/shim.pid", dir);
	if (shim_write_num(path, (uint64_t)getpid()) != 0) {
		shim_report("failed cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		shim_report("failed prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
		goto out;
	}
	free(path);
	path = xasprintf("%s/meta.json", dir);
	if (file_read(path, META_MAX, &text, NULL) != 0 || !(m = cJSON_Parse(text)) ||
	    !(id = meta_str(m, "id", RUNC_ID_MAX - 1)) || !(bin = meta_str(m, "runc", PATH_MAX)) ||
	    !(root = meta_str(m, "runc_root", PATH_MAX)) || !(logp = meta_str(m, "log", PATH_MAX))) {
		shim_report("failed %s is missing or incomplete", path);
		goto out;
	}
	if ((logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640)) < 0) {
		shim_report("failed cannot open log %.300s: %s", logp, strerror(errno));
		goto out;
	}
	r.bin = bin;
	r.root = root;
	if (runc_run(&r, id, dir, logfd, &init, why, sizeof(why)) != 0) {
		shim_report("failed %s", why);
		goto out;
	}
	close(logfd);
	logfd = -1;
	shim_report("started %d", (int)init);
	/* It waits as long as the container lives: give back what starting
	 * took (meta.json, runc's output) before that. */
	snprintf(cid, sizeof(cid), "%s", id);
	id = cid;
	cJSON_Delete(m);
	m = NULL;
	free(text);
	text = NULL;
	malloc_trim(0);
	for (;;) {
		w = waitpid(-1, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			log_error("container=%s: lost track of its pid %d: %s", id, (int)init,
				  strerror(errno));
			goto out;
		}
		if (w == init)
			break;
		/* Anything else reparented to us (a runc helper): reaped. */
	}
	free(path);
	path = xasprintf("%s/exit", dir);
	n = snprintf(buf, sizeof(buf), "code %d signal %d\n",
		     WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st),
		     WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (file_replace(path, buf, (size_t)n) != 0) {
		log_error("container=%s: cannot write %s: %s", id, path, strerror(errno));
		goto out;
	}
	rv = 0;
out:
	if (logfd >= 0)
		close(logfd);
	cJSON_Delete(m);
	free(text);
	free(path);
	return rv;
}
