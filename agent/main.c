/*
 * main.c - mlagent: registers with the master, runs tasks through runc
 * under per-task shims, reports their exits, utilization and logs
 * (protocol: master/agents.c).  "mlagent shim DIR" is the shim itself
 * (shim_main below); the agent starts it, nobody else needs to.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "net.h"
#include "opt.h"
#include "spec.h"
#include "units.h"
#include "util.h"
#include "wire.h"

#define LOG_CHUNK_MAX (64 * 1024)
#define MAX_PENDING_EVENTS 100000
#define EVENTS_PER_SYNC 1000 /* the master takes at most 4096 per message */

extern char **environ;

/* ---- events to the master ---- */

/* attempt: which run of the task (the master requeues tasks); events of an
 * old attempt must not touch a new one. */
static cJSON *event_new(struct agent *a, const char *type, uint64_t job, uint32_t idx,
			uint32_t attempt)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddNumberToObject(e, "seq", (double)++a->ev_seq);
	cJSON_AddStringToObject(e, "type", type);
	cJSON_AddNumberToObject(e, "job", (double)job);
	cJSON_AddNumberToObject(e, "task", idx);
	cJSON_AddNumberToObject(e, "attempt", attempt);
	if (cJSON_GetArraySize(a->events) >= MAX_PENDING_EVENTS) {
		/* The master has been away for very long: keep the newest. */
		cJSON_Delete(cJSON_DetachItemFromArray(a->events, 0));
		log_warn("event queue full: dropped the oldest event");
	}
	cJSON_AddItemToArray(a->events, e);
	a->next_sync = 0; /* tell the master now */
	return e;
}

/* ---- tasks ---- */

static struct atask *task_find(struct agent *a, uint64_t job, uint32_t idx)
{
	for (struct atask *t = a->tasks; t; t = t->next)
		if (t->job == job && t->idx == idx)
			return t;
	return NULL;
}

static char *log_path(struct agent *a, uint64_t job, uint32_t idx)
{
	return xasprintf("%s/%" PRIu64 "-%u.log", a->logs_dir, job, idx);
}

/* Unlink t from the task list and free it; the container and its folder
 * stay (see task_remove). */
static void task_forget(struct agent *a, struct atask *t)
{
	struct atask **pp;

	for (pp = &a->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->pidfd >= 0)
		close(t->pidfd);
	cJSON_Delete(t->next_start);
	free(t);
}

/* The task has ended: remove its container (runc delete --force also kills
 * one that still runs) and its folder (the log is kept), and forget it. */
static void task_remove(struct agent *a, struct atask *t)
{
	char why[RUNC_WHY_LEN];

	if (runc_delete(&a->runc, t->id, true, why, sizeof(why)) != 0 && why[0])
		log_warn("container=%s delete: %s", t->id, why);
	rm_rf(t->dir);
	task_forget(a, t);
}

/* ---- task folders and shims ----
 *
 * A task's folder (tasks_dir/<container id>) is its OCI bundle (config.json,
 * work/, tmp/) and what a later agent process needs to take the task over:
 *   meta.json  the task, written by the agent before it starts the shim
 *   shim.pid   written by the shim first thing
 *   pid        the container init's host pid (runc --pid-file)
 *   stop       while a stop is under way: the wall-clock ms of its SIGKILL
 *   exit       "code N signal S", written (atomically) by the shim when it
 *              has reaped the container's init
 * The shim gets the folder as its only argument and reports on descriptor
 * SHIM_REPORT_FD one line, "started PID" or "failed WHY", once runc run has
 * returned; then it waits for the container and exits 0 after writing exit.
 */
#define SHIM_REPORT_FD 3
#define SHIM_REPORT_MAX 1024
#define SHIM_START_TIMEOUT_MS 120000 /* runc run takes tens of ms */
#define META_MAX (64 * 1024)
#define CMDLINE_MAX 8192

static char *task_file(const struct atask *t, const char *name)
{
	return xasprintf("%s/%s", t->dir, name);
}

/* A number written alone in a small file (a pid, a time).  0 or err. */
static int read_num(const char *path, uint64_t max, uint64_t *v)
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

static int write_num(const char *path, uint64_t v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%" PRIu64 "\n", v);

	return file_replace(path, buf, (size_t)n);
}

static int meta_write(struct agent *a, const struct atask *t, const char *logp, char *why,
		      size_t whylen)
{
	cJSON *m = cJSON_CreateObject();
	char *text, *path = task_file(t, "meta.json");
	int rv = 0;

	cJSON_AddNumberToObject(m, "job", (double)t->job);
	cJSON_AddNumberToObject(m, "task", t->idx);
	cJSON_AddNumberToObject(m, "attempt", t->attempt);
	cJSON_AddStringToObject(m, "id", t->id);
	cJSON_AddStringToObject(m, "cgroup", t->cgroup);
	cJSON_AddStringToObject(m, "runc", a->runc.bin);
	cJSON_AddStringToObject(m, "runc_root", a->runc.root);
	cJSON_AddStringToObject(m, "log", logp);
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

/*
 * Start t's shim and wait for its report: 0 with t->shim and t->pid set once
 * the container runs, or ERR_RUNC / ERR_SYS with the reason in why.  A shim
 * that fails exits at once; reap() collects it.  Only stdin, stdout
 * (/dev/null), stderr (ours) and the report pipe reach the shim: everything
 * else of ours is close-on-exec, the nng socket included.
 */
static int shim_spawn(struct atask *t, char *why, size_t whylen)
{
	static const int dfl_sigs[] = {SIGCHLD, SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	const short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	const char *argv[] = {"mlagent", "shim", t->dir, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
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
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < sizeof(dfl_sigs) / sizeof(dfl_sigs[0]); i++)
		sigaddset(&dfl, dfl_sigs[i]);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* The shim starts with no signal blocked (we block some for the
	 * signalfd) and default dispositions. */
	if ((e = posix_spawn_file_actions_adddup2(&fa, devnull, 0)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 1)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, wr, SHIM_REPORT_FD)) == 0 &&
	    (e = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
	    (e = posix_spawnattr_setsigdefault(&attr, &dfl)) == 0 &&
	    (e = posix_spawnattr_setflags(&attr, flags)) == 0)
		/* Our own binary, even if it was replaced on disk since. */
		e = posix_spawn(&t->shim, "/proc/self/exe", &fa, &attr, (char *const *)argv,
				environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(wr);
	wr = -1;
	if (e != 0) {
		t->shim = 0;
		set_why(why, whylen, "cannot start the shim (/proc/self/exe): %s", strerror(e));
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

/* Is pid "mlagent shim <t->dir>"?  (A pid in shim.pid may have been reused.) */
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
static bool shim_adopt(struct atask *t)
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
static bool shim_gone(const struct atask *t)
{
	struct pollfd pf = {.fd = t->pidfd, .events = POLLIN};

	if (t->pidfd >= 0)
		return poll(&pf, 1, 0) > 0;
	return kill(t->shim, 0) < 0 && errno == ESRCH;
}

/* Build the environment: the order's, then the GPU variables. */
static char **make_env(const cJSON *order, size_t *n)
{
	const cJSON *env = cJSON_GetObjectItemCaseSensitive(order, "env"), *e, *g;
	const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(order, "gpus");
	size_t cap = (size_t)cJSON_GetArraySize(env) + 4, k = 0;
	char **v = xcalloc(cap, sizeof(*v));
	char list[512] = "";
	uint64_t milli = 0;

	cJSON_ArrayForEach(e, env)
	{
		if (cJSON_IsString(e))
			v[k++] = xasprintf("%s=%s", e->string, e->valuestring);
	}
	cJSON_ArrayForEach(g, gpus)
	{
		size_t l = strlen(list);
		snprintf(list + l, sizeof(list) - l, "%s%d", l ? "," : "", g->valueint);
	}
	v[k++] = xasprintf("CUDA_VISIBLE_DEVICES=%s", list);
	v[k++] = xasprintf("NVIDIA_VISIBLE_DEVICES=%s", list[0] ? list : "void");
	wire_get_u64(order, "gpus_milli", 1000000, &milli);
	if (milli > 0 && milli < 1000) {
		char share[16];
		units_format_milli((uint32_t)milli, share, sizeof(share));
		v[k++] = xasprintf("MLSCHED_GPU_SHARE=%s", share);
	}
	*n = k;
	return v;
}

static void remember_ran(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt);

static void start_task(struct agent *a, const cJSON *o, uint64_t job, uint32_t idx,
		       uint32_t attempt)
{
	const char *image = NULL, *workdir = "/work";
	const cJSON *cmd, *g;
	struct bundle_opts bo = {0};
	struct atask *t = xcalloc(1, sizeof(*t));
	char why[RUNC_WHY_LEN] = "", *work = NULL, *tmp = NULL, *logp = NULL, **env = NULL;
	const char **args = NULL;
	uint32_t gpus[GPU_MAX];
	size_t nenv = 0, nargs = 0, ngpus = 0;
	uint64_t mem = 0, cpu = 0;
	struct stat st;
	int rv;
	cJSON *e;

	t->pidfd = -1;
	t->job = job;
	t->idx = idx;
	t->attempt = attempt;
	remember_ran(a, job, idx, attempt);
	snprintf(t->id, sizeof(t->id), "mls-%" PRIu64 "-%u", job, idx);
	if (snprintf(t->dir, sizeof(t->dir), "%s/%s", a->tasks_dir, t->id) >= (int)sizeof(t->dir)) {
		snprintf(why, sizeof(why), "--state-dir path too long");
		goto fail;
	}
	snprintf(t->cgroup, sizeof(t->cgroup), "/mlsched/%s/%s", a->cfg.name, t->id);
	wire_get_str(o, "image", PATH_MAX, &image);
	wire_get_str(o, "workdir", PATH_MAX, &workdir);
	wire_get_u64(o, "memory", UINT64_MAX >> 11, &mem);
	wire_get_u64(o, "cpu_milli", UINT32_MAX, &cpu);
	if (!image || image[0] != '/') {
		snprintf(why, sizeof(why), "image \"%.300s\" is not an absolute rootfs folder",
			 image ? image : "");
		goto fail;
	}
	if (stat(image, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(why, sizeof(why), "image %.300s: no such folder on node %s", image,
			 a->cfg.name);
		goto fail;
	}
	if (wire_get_array(o, "command", SPEC_MAX_ARGS, &cmd) != 0 ||
	    cJSON_GetArraySize(cmd) < 1) {
		snprintf(why, sizeof(why), "start order without a command");
		goto fail;
	}
	args = xcalloc((size_t)cJSON_GetArraySize(cmd), sizeof(*args));
	cJSON_ArrayForEach(e, cmd)
	{
		if (!cJSON_IsString(e)) {
			snprintf(why, sizeof(why), "command arguments must be strings");
			goto fail;
		}
		args[nargs++] = e->valuestring;
	}
	cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(o, "gpus"))
	{
		if (ngpus < GPU_MAX && cJSON_IsNumber(g))
			gpus[ngpus++] = (uint32_t)g->valuedouble;
	}
	env = make_env(o, &nenv);

	/* A container of this id left by an earlier run would block runc. */
	runc_delete(&a->runc, t->id, true, why, sizeof(why));
	why[0] = '\0';
	rm_rf(t->dir);
	work = xasprintf("%s/work", t->dir);
	tmp = xasprintf("%s/tmp", t->dir);
	if (mkdir_p(work, 0755) != 0 || mkdir_p(tmp, 01777) != 0 || chmod(tmp, 01777) != 0) {
		snprintf(why, sizeof(why), "cannot create %.300s: %s", t->dir, strerror(errno));
		goto fail;
	}
	logp = log_path(a, job, idx);
	bo.rootfs = image;
	bo.args = args;
	bo.nargs = nargs;
	bo.env = (const char *const *)env;
	bo.nenv = nenv;
	bo.cwd = workdir;
	bo.work_host = work;
	bo.tmp_host = tmp;
	bo.hostname = t->id;
	bo.cgroup_path = t->cgroup;
	bo.mem_limit = mem;
	bo.cpu_milli = (uint32_t)cpu;
	bo.gpus = gpus;
	bo.ngpus = ngpus;
	bo.gpu_devices = a->gpu == &gpu_nvml_ops;
	if ((rv = bundle_write(t->dir, &bo, why, sizeof(why))) != 0)
		goto fail;
	if ((rv = meta_write(a, t, logp, why, sizeof(why))) != 0)
		goto fail;
	if ((rv = shim_spawn(t, why, sizeof(why))) != 0)
		goto fail;
	t->next = a->tasks;
	a->tasks = t;
	t = NULL;
	log_info("job=%" PRIu64 " task=%u container=%s started: pid %d, shim %d", job, idx,
		 a->tasks->id, (int)a->tasks->pid, (int)a->tasks->shim);
	event_new(a, "started", job, idx, attempt);
	goto out;
fail:
	log_warn("job=%" PRIu64 " task=%u cannot start: %s", job, idx, why);
	e = event_new(a, "failed", job, idx, attempt);
	cJSON_AddStringToObject(e, "reason", why);
	if (t) {
		runc_delete(&a->runc, t->id, true, why, sizeof(why));
		rm_rf(t->dir);
	}
out:
	for (size_t i = 0; i < nenv; i++)
		free(env[i]);
	free(env);
	free(args);
	free(work);
	free(tmp);
	free(logp);
	free(t);
}

static void stop_task(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt,
		      uint64_t grace)
{
	struct atask *t = task_find(a, job, idx);
	char why[RUNC_WHY_LEN], *path;
	cJSON *e;

	if (t && t->attempt != attempt) {
		uint64_t next = UINT64_MAX;
		if (t->next_start)
			wire_get_u64(t->next_start, "attempt", UINT32_MAX, &next);
		if (next != attempt)
			return; /* meant for another run of this task */
		/* The run waiting for t to end: it will not start. */
		cJSON_Delete(t->next_start);
		t->next_start = NULL;
		remember_ran(a, job, idx, attempt);
		e = event_new(a, "gone", job, idx, attempt);
		cJSON_AddStringToObject(e, "reason", "stopped before it started");
		return;
	}
	if (!t) {
		e = event_new(a, "gone", job, idx, attempt);
		cJSON_AddStringToObject(e, "reason", "not running on this node");
		return;
	}
	if (t->stopping)
		return;
	t->stopping = true;
	t->kill_at = now_ms() + grace;
	/* An agent that restarts meanwhile still kills it at that time. */
	path = task_file(t, "stop");
	if (write_num(path, wall_ms() + grace) != 0)
		log_warn("container=%s: cannot write %s: %s", t->id, path, strerror(errno));
	free(path);
	log_info("job=%" PRIu64 " task=%u container=%s stopping (grace %" PRIu64 " ms)", job, idx,
		 t->id, grace);
	if (runc_kill(&a->runc, t->id, grace ? SIGTERM : SIGKILL, why, sizeof(why)) != 0)
		log_warn("container=%s kill: %s", t->id, why);
	t->killed = grace == 0;
}

static void send_log(struct agent *a, const cJSON *o, uint64_t job, uint32_t idx)
{
	uint64_t req = 0, offset = 0, max = LOG_CHUNK_MAX;
	char *path = log_path(a, job, idx), *b64 = NULL;
	unsigned char *buf = NULL;
	struct stat st;
	ssize_t n = 0;
	int fd = -1;
	bool running = task_find(a, job, idx) != NULL; /* checked before reading */
	cJSON *e;

	wire_get_u64(o, "req", UINT64_MAX >> 11, &req);
	wire_get_u64(o, "offset", UINT64_MAX >> 11, &offset);
	wire_get_u64(o, "max", LOG_CHUNK_MAX, &max);
	e = event_new(a, "log", job, idx, 0);
	cJSON_AddNumberToObject(e, "req", (double)req);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "no log for job %" PRIu64 " task %u on node %s: %s",
			 job, idx, a->cfg.name, strerror(errno));
		cJSON_AddStringToObject(e, "error", msg);
		goto out;
	}
	buf = xmalloc(max ? max : 1);
	if (offset < (uint64_t)st.st_size && max > 0) {
		n = pread(fd, buf, max, (off_t)offset);
		if (n < 0)
			n = 0;
	}
	b64 = xmalloc(sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL));
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL),
			  buf, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(e, "data", b64);
	cJSON_AddNumberToObject(e, "offset", (double)(offset + (uint64_t)n));
	cJSON_AddBoolToObject(e, "eof", offset + (uint64_t)n >= (uint64_t)st.st_size);
	cJSON_AddBoolToObject(e, "running", running);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(b64);
	free(path);
}

/*
 * A start order can arrive twice (a reply lost, a master restarted before
 * it saw our acknowledgement).  Remember the recent (job, task, attempt)
 * triples this process started so that a repeat never runs a task again.
 */
static bool ran_before(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	for (size_t i = 0; i < RAN_MAX; i++)
		if (a->ran[i].job == job && a->ran[i].idx == idx && a->ran[i].attempt == attempt &&
		    a->ran[i].job)
			return true;
	return false;
}

static void remember_ran(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	a->ran[a->ran_next].job = job;
	a->ran[a->ran_next].idx = idx;
	a->ran[a->ran_next].attempt = attempt;
	a->ran_next = (a->ran_next + 1) % RAN_MAX;
}

static void handle_orders(struct agent *a, const cJSON *body)
{
	const char *boot = "";
	const cJSON *orders, *o;
	uint64_t ack = 0, t0 = now_ms();

	wire_get_str(body, "boot", 39, &boot);
	if (strcmp(boot, a->master_boot) != 0) {
		/* A new master process: its order numbers start again. */
		if (a->master_boot[0])
			log_info("master restarted (boot %s)", boot);
		strlcpy_ok(a->master_boot, boot, sizeof(a->master_boot));
		a->order_ack = 0;
	}
	if (wire_get_u64(body, "ack", UINT64_MAX >> 11, &ack) == 0)
		wire_drop_acked(a->events, ack);
	a->next_sync = 0; /* acknowledge at once */
	if (wire_get_array(body, "orders", 100000, &orders) != 0)
		return;
	cJSON_ArrayForEach(o, orders)
	{
		const char *op = "";
		uint64_t seq = 0, job = 0, idx = 0, grace = 10000, attempt = 0;
		if (wire_get_u64(o, "seq", UINT64_MAX >> 11, &seq) != 0 || seq <= a->order_ack)
			continue;
		/* Starting containers blocks this loop (runc takes tens of ms
		 * each): stop after a share of the heartbeat interval, say
		 * what we did, and take the rest from the master's next
		 * answer (it keeps orders until they are acknowledged). */
		if (now_ms() - t0 > a->cfg.heartbeat_ms / 2)
			break;
		a->order_ack = seq;
		wire_get_str(o, "op", 16, &op);
		if (wire_get_u64(o, "job", UINT64_MAX >> 11, &job) != 0 ||
		    wire_get_u64(o, "task", SPEC_MAX_TASKS, &idx) != 0) {
			log_warn("order %" PRIu64 " without job/task: ignored", seq);
			continue;
		}
		if (strcmp(op, "start") == 0) {
			struct atask *t = task_find(a, job, (uint32_t)idx);
			wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
			if (ran_before(a, job, (uint32_t)idx, (uint32_t)attempt))
				continue;
			if (!t) {
				start_task(a, o, job, (uint32_t)idx, (uint32_t)attempt);
			} else if (t->attempt != attempt) {
				/* An earlier attempt still runs here (e.g. it
				 * outlived an agent restart after the master
				 * had given it up; the master stops it). */
				log_info("job=%" PRIu64 " task=%" PRIu64 " attempt=%" PRIu64
					 " starts once attempt %u has ended",
					 job, idx, attempt, t->attempt);
				cJSON_Delete(t->next_start);
				t->next_start = cJSON_Duplicate(o, 1);
			}
		} else if (strcmp(op, "stop") == 0) {
			wire_get_u64(o, "grace_ms", 3600000, &grace);
			wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
			stop_task(a, job, (uint32_t)idx, (uint32_t)attempt, grace);
		} else if (strcmp(op, "log") == 0) {
			send_log(a, o, job, (uint32_t)idx);
		} else {
			log_warn("order %" PRIu64 ": unknown op \"%s\": ignored", seq, op);
		}
	}
}

/* ---- the SYNC message ---- */

static cJSON *capacity_json(struct agent *a)
{
	cJSON *c = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(c, "gpus");

	cJSON_AddStringToObject(c, "address", a->cfg.address);
	cJSON_AddNumberToObject(c, "cpu_milli", a->cpu_milli);
	cJSON_AddNumberToObject(c, "memory", (double)a->mem_total);
	for (size_t i = 0; i < a->ngpus; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "index", a->gpus[i].index);
		cJSON_AddNumberToObject(e, "memory", (double)a->gpus[i].mem_total);
		cJSON_AddStringToObject(e, "model", a->gpus[i].model);
		cJSON_AddItemToArray(g, e);
	}
	cJSON_AddItemToObject(c, "labels", cJSON_Duplicate(a->labels, 1));
	return c;
}

static cJSON *util_json(struct agent *a)
{
	cJSON *u = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(u, "gpus");
	struct gpu_util gu[GPU_MAX];
	size_t n = GPU_MAX;

	cJSON_AddNumberToObject(u, "cpu_pct", (int)(sysinfo_cpu_pct(&a->cpu) + 0.5));
	cJSON_AddNumberToObject(u, "mem_used", (double)sysinfo_mem_used());
	if (a->gpu && a->gpu->util(a->gpu_ctx, gu, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "index", gu[i].index);
			cJSON_AddNumberToObject(e, "util_pct", gu[i].util_pct);
			cJSON_AddNumberToObject(e, "mem_used", (double)gu[i].mem_used);
			cJSON_AddItemToArray(g, e);
		}
	}
	return u;
}

static void send_sync(struct agent *a)
{
	cJSON *b = cJSON_CreateObject(), *ts, *ev, *e;
	int rv;

	cJSON_AddStringToObject(b, "node", a->cfg.name);
	cJSON_AddStringToObject(b, "boot", a->boot);
	cJSON_AddNumberToObject(b, "ack", (double)a->order_ack);
	/* Whose order numbers ack counts: a new master must not take an ack
	 * meant for its predecessor. */
	cJSON_AddStringToObject(b, "master_boot", a->master_boot);
	/* The join secret goes only until the master has accepted us (and
	 * again after a refusal, e.g. a master that lost its state). */
	if (a->cfg.join && !a->joined)
		cJSON_AddStringToObject(b, "join", a->cfg.join);
	cJSON_AddItemToObject(b, "capacity", capacity_json(a));
	cJSON_AddItemToObject(b, "util", util_json(a));
	ev = cJSON_AddArrayToObject(b, "events");
	cJSON_ArrayForEach(e, a->events)
	{
		if (cJSON_GetArraySize(ev) >= EVENTS_PER_SYNC)
			break;
		cJSON_AddItemToArray(ev, cJSON_Duplicate(e, 1));
	}
	ts = cJSON_AddArrayToObject(b, "tasks");
	for (struct atask *t = a->tasks; t; t = t->next) {
		uint64_t cpu = 0, mem = 0;
		e = cJSON_CreateObject();
		cgroup_usage(t->cgroup, &cpu, &mem);
		cJSON_AddNumberToObject(e, "job", (double)t->job);
		cJSON_AddNumberToObject(e, "task", t->idx);
		cJSON_AddNumberToObject(e, "attempt", t->attempt);
		cJSON_AddStringToObject(e, "state", t->stopping ? "stopping" : "running");
		cJSON_AddNumberToObject(e, "cpu_ns", (double)cpu);
		cJSON_AddNumberToObject(e, "mem", (double)mem);
		cJSON_AddItemToArray(ts, e);
	}
	rv = net_send(a->sock, WIRE_SYNC, ++a->seq, a->sender, b, NNG_FLAG_NONBLOCK);
	if (rv != 0)
		log_debug(LOG_SUB_WIRE, "sync not sent: %s", err_str(rv));
	cJSON_Delete(b);
	a->in_flight = rv == 0;
	a->sent_at = now_ms();
	a->next_sync = a->sent_at + a->cfg.heartbeat_ms;
}

/* ---- containers ending ---- */

/* t's shim is gone: report the exit it recorded, or else lost_why (the
 * container is then killed and deleted all the same). */
static void task_ended(struct agent *a, struct atask *t, const char *lost_why)
{
	char *path = task_file(t, "exit"), *text = NULL;
	uint64_t job = t->job;
	uint32_t idx = t->idx;
	int code, sig;
	cJSON *e, *start;

	if (file_read(path, 64, &text, NULL) == 0 &&
	    sscanf(text, "code %d signal %d", &code, &sig) == 2) {
		e = event_new(a, "exited", t->job, t->idx, t->attempt);
		cJSON_AddNumberToObject(e, "code", code);
		cJSON_AddNumberToObject(e, "signal", sig);
		log_info("job=%" PRIu64 " task=%u container=%s exited code=%d", t->job, t->idx,
			 t->id, code);
	} else {
		e = event_new(a, "failed", t->job, t->idx, t->attempt);
		cJSON_AddStringToObject(e, "reason", lost_why);
		log_warn("job=%" PRIu64 " task=%u container=%s failed: %s", t->job, t->idx, t->id,
			 lost_why);
	}
	free(text);
	free(path);
	start = t->next_start;
	t->next_start = NULL;
	task_remove(a, t);
	if (start) {
		uint64_t att = 0;
		wire_get_u64(start, "attempt", UINT32_MAX, &att);
		if (!ran_before(a, job, idx, (uint32_t)att))
			start_task(a, start, job, idx, (uint32_t)att);
		cJSON_Delete(start);
	}
}

/* Our children are shims (runc calls wait for their own). */
static void reap(struct agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct atask *t;
		for (t = a->tasks; t; t = t->next)
			if (!t->adopted && t->shim == pid)
				break;
		if (!t)
			continue; /* the shim of a start that failed */
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			log_warn("container=%s: its shim (pid %d) %s %d", t->id, (int)pid,
				 WIFEXITED(status) ? "exited with status" : "was killed by signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		task_ended(a, t, "the task's shim ended without recording the container's exit");
	}
}

/* Shims adopted from an earlier agent that have exited since. */
static void check_adopted(struct agent *a)
{
	struct atask *t, *next;

	for (t = a->tasks; t; t = next) {
		next = t->next;
		if (t->adopted && shim_gone(t))
			task_ended(a, t,
				   "the task's shim ended without recording the container's exit");
	}
}

static void kill_overdue(struct agent *a)
{
	uint64_t now = now_ms();
	char why[RUNC_WHY_LEN];

	for (struct atask *t = a->tasks; t; t = t->next) {
		if (!t->stopping || t->killed || now < t->kill_at)
			continue;
		t->killed = true;
		log_info("container=%s still running after the grace period: SIGKILL", t->id);
		if (runc_kill(&a->runc, t->id, SIGKILL, why, sizeof(why)) != 0)
			log_warn("container=%s kill: %s", t->id, why);
	}
}

/* ---- after a restart ---- */

/*
 * One task folder left by an earlier agent process: adopt its live shim, or
 * report the exit it recorded, or (the node rebooted, the shim was killed)
 * report the task failed and remove what is left of it.  Its (job, task,
 * attempt) is remembered either way, so a repeated start order does not run
 * it again.
 */
static void reattach_one(struct agent *a, const char *name)
{
	struct atask *t = xcalloc(1, sizeof(*t));
	char *path = NULL, *text = NULL;
	const char *id = NULL, *cg = NULL;
	uint64_t job = 0, idx = 0, att = 0, v;
	cJSON *m = NULL;

	t->pidfd = -1;
	if (!runc_id_ok(name) ||
	    snprintf(t->dir, sizeof(t->dir), "%s/%s", a->tasks_dir, name) >= (int)sizeof(t->dir)) {
		log_warn("%s/%s: not a task folder: ignored", a->tasks_dir, name);
		free(t);
		return;
	}
	path = task_file(t, "meta.json");
	if (file_read(path, META_MAX, &text, NULL) != 0 || !(m = cJSON_Parse(text)) ||
	    wire_get_u64(m, "job", UINT64_MAX >> 11, &job) != 0 ||
	    wire_get_u64(m, "task", SPEC_MAX_TASKS, &idx) != 0 ||
	    wire_get_u64(m, "attempt", UINT32_MAX, &att) != 0 ||
	    wire_get_str(m, "id", RUNC_ID_MAX - 1, &id) != 0 || strcmp(id, name) != 0 ||
	    wire_get_str(m, "cgroup", sizeof(t->cgroup) - 1, &cg) != 0) {
		/* Its container, if any, goes with the strays below. */
		log_warn("task folder %s has no valid meta.json (an interrupted start, or an "
			 "older agent): removing it",
			 t->dir);
		rm_rf(t->dir);
		free(t);
		goto out;
	}
	t->job = job;
	t->idx = (uint32_t)idx;
	t->attempt = (uint32_t)att;
	strlcpy_ok(t->id, id, sizeof(t->id));
	strlcpy_ok(t->cgroup, cg, sizeof(t->cgroup));
	t->adopted = true;
	remember_ran(a, t->job, t->idx, t->attempt);
	free(path);
	path = task_file(t, "pid");
	if (read_num(path, INT32_MAX, &v) == 0)
		t->pid = (pid_t)v;
	free(path);
	path = task_file(t, "shim.pid");
	if (read_num(path, INT32_MAX, &v) == 0)
		t->shim = (pid_t)v;
	t->next = a->tasks;
	a->tasks = t;
	if (t->shim > 0 && shim_adopt(t)) {
		free(path);
		path = task_file(t, "stop");
		if (read_num(path, UINT64_MAX >> 11, &v) == 0) {
			uint64_t wall = wall_ms();
			t->stopping = true;
			t->kill_at = now_ms() + (v > wall ? v - wall : 0);
		}
		log_info("job=%" PRIu64 " task=%u container=%s reattached: pid %d, shim %d (%s)",
			 t->job, t->idx, t->id, (int)t->pid, (int)t->shim,
			 t->pidfd >= 0 ? "pidfd" : "no pidfd: checked every heartbeat");
		/* The master may not have heard that it started (we were
		 * killed in between); for one that has, this is a no-op. */
		event_new(a, "started", t->job, t->idx, t->attempt);
		goto out;
	}
	task_ended(a, t, "container state lost across an agent restart");
out:
	cJSON_Delete(m);
	free(text);
	free(path);
}

/*
 * Take over what an earlier agent process left: its task folders (above),
 * then containers under our runc root that belong to no task folder, which
 * are removed.
 */
static void reattach(struct agent *a)
{
	char **ids = NULL, why[RUNC_WHY_LEN];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if (!(d = opendir(a->tasks_dir)))
		log_warn("cannot read %s: %s", a->tasks_dir, strerror(errno));
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			reattach_one(a, de->d_name);
	if (d)
		closedir(d);
	if (runc_list(&a->runc, &ids, &n, why, sizeof(why)) != 0) {
		log_warn("runc list: %s", why);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		bool ours = false;
		for (struct atask *t = a->tasks; t && !ours; t = t->next)
			ours = strcmp(t->id, ids[i]) == 0;
		if (ours)
			continue;
		log_warn("container=%s left by an earlier agent without a task folder: removing it",
			 ids[i]);
		runc_kill(&a->runc, ids[i], SIGKILL, why, sizeof(why));
		runc_delete(&a->runc, ids[i], true, why, sizeof(why));
	}
	runc_ids_free(ids, n);
}

/*
 * SIGTERM or SIGINT.  By default the containers keep running under their
 * shims and the next agent process takes them over.  With
 * --stop-tasks-on-exit they are killed and their ends reported first.
 */
static void shutdown_tasks(struct agent *a)
{
	char why[RUNC_WHY_LEN];
	uint64_t deadline;
	size_t n = 0;

	for (struct atask *t = a->tasks; t; t = t->next)
		n++;
	if (!a->cfg.stop_tasks_on_exit) {
		log_info("shutting down: %zu containers keep running under their shims "
			 "(--stop-tasks-on-exit stops them)",
			 n);
		while (a->tasks)
			task_forget(a, a->tasks);
		return;
	}
	log_info("shutting down: stopping %zu containers (--stop-tasks-on-exit)", n);
	for (struct atask *t = a->tasks; t; t = t->next) {
		cJSON_Delete(t->next_start); /* nothing new starts now */
		t->next_start = NULL;
		runc_kill(&a->runc, t->id, SIGKILL, why, sizeof(why));
	}
	deadline = now_ms() + 2000;
	while (a->tasks && now_ms() < deadline) {
		reap(a);
		check_adopted(a);
		usleep(10000);
	}
	while (a->tasks)
		task_remove(a, a->tasks);
	/* Best effort: tell the master how they ended. */
	send_sync(a);
	usleep(200000);
}

static int setup_gpus(struct agent *a)
{
	char why[256];
	int rv;

	if (a->cfg.gpus) {
		a->gpu = &gpu_static_ops;
		if ((rv = a->gpu->init(a->cfg.gpus, &a->gpu_ctx, why, sizeof(why))) != 0)
			fatal("--gpus %s: %s", a->cfg.gpus, why);
		log_info("GPUs: declared inventory %s", a->cfg.gpus);
	} else {
		a->gpu = &gpu_nvml_ops;
		rv = a->gpu->init(NULL, &a->gpu_ctx, why, sizeof(why));
		if (rv == ERR_NOENT) {
			log_info("GPUs: none (NVML not available: %s); declare fake ones with --gpus",
				 why);
			a->gpu = NULL;
			return 0;
		}
		if (rv != 0)
			fatal("NVML: %s", why);
	}
	a->ngpus = GPU_MAX;
	if ((rv = a->gpu->list(a->gpu_ctx, a->gpus, &a->ngpus)) != 0)
		fatal("cannot list GPUs through %s: %s", a->gpu->name, err_str(rv));
	for (size_t i = 0; i < a->ngpus; i++) {
		char sz[32];
		units_format_size(a->gpus[i].mem_total, sz, sizeof(sz));
		log_info("GPU %u: %s, %s", a->gpus[i].index, a->gpus[i].model, sz);
	}
	return 0;
}

/* The address peers use for this node: the host name's first IPv4 address
 * that is not loopback, else loopback (a one-machine cluster). */
static const char *default_address(void)
{
	static char buf[INET_ADDRSTRLEN] = "127.0.0.1";
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res, *r;
	char host[256] = "";

	if (gethostname(host, sizeof(host) - 1) != 0 || getaddrinfo(host, NULL, &hints, &res) != 0)
		return buf;
	for (r = res; r; r = r->ai_next) {
		struct sockaddr_in *sin = (struct sockaddr_in *)r->ai_addr;
		if ((ntohl(sin->sin_addr.s_addr) >> 24) == 127)
			continue;
		inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
		break;
	}
	freeaddrinfo(res);
	return buf;
}

static void parse_labels(struct agent *a)
{
	char *copy, *tok, *save = NULL;

	a->labels = cJSON_CreateObject();
	if (!a->cfg.labels || !*a->cfg.labels)
		return;
	copy = xstrdup(a->cfg.labels);
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok)
			fatal("--labels: \"%s\" is not key=value", tok);
		*eq = '\0';
		cJSON_DeleteItemFromObjectCaseSensitive(a->labels, tok);
		cJSON_AddStringToObject(a->labels, tok, eq + 1);
	}
	free(copy);
}

/* ---- the shim process ---- */

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
 * mlagent shim DIR: run the container of the task in DIR (see "task folders
 * and shims" above) and outlive the agent.  It has its own session (a ^C in
 * the agent's terminal or a signal to its process group must not reach it),
 * ignores SIGTERM, SIGINT and SIGHUP (only the container's end should end
 * it; under systemd, use KillMode=process), and is a child subreaper, so the
 * container's init, whose parent runc exits, becomes its child.  Exits 0
 * once DIR/exit is written, 1 on any failure.
 */
static int shim_main(const char *dir)
{
	char *path = NULL, *text = NULL, why[RUNC_WHY_LEN] = "", buf[64];
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
	if (write_num(path, (uint64_t)getpid()) != 0) {
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
	    wire_get_str(m, "id", RUNC_ID_MAX - 1, &id) != 0 ||
	    wire_get_str(m, "runc", PATH_MAX, &bin) != 0 ||
	    wire_get_str(m, "runc_root", PATH_MAX, &root) != 0 ||
	    wire_get_str(m, "log", PATH_MAX, &logp) != 0) {
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

int main(int argc, char **argv)
{
	static struct agent a;
	const char *level, *debug;
	char err[512], hostname[64] = "", *runc_root = NULL;
	uint8_t rnd[8];
	int nargs, rv, sfd, nfd;
	sigset_t sigs;
	const struct opt tab[] = {
		{"master", OPT_STR, "tcp://127.0.0.1:7071", "the master's agent URL",
		 &a.cfg.master},
		{"name", OPT_STR, NULL, "node name (default: the host name)", &a.cfg.name},
		{"state-dir", OPT_STR, "/var/lib/mlsched/agent", "state folder (bundles, logs)",
		 &a.cfg.state_dir},
		{"gpus", OPT_STR, NULL, "declared GPUs, e.g. 4x80G:A100 (default: NVML)",
		 &a.cfg.gpus},
		{"labels", OPT_STR, NULL, "node labels, e.g. zone=a,pool=onprem", &a.cfg.labels},
		{"address", OPT_STR, NULL,
		 "address other nodes reach this one at (MASTER_ADDR of gangs; default: "
		 "the host name's first IPv4 address)",
		 &a.cfg.address},
		{"cpus", OPT_UINT, NULL, "CPU millicores to offer (default: all online CPUs)",
		 &a.cfg.cpus_milli},
		{"memory", OPT_SIZE, NULL, "memory to offer (default: MemTotal)", &a.cfg.memory},
		{"heartbeat", OPT_DUR, "1s", "heartbeat interval (at least 100ms)",
		 &a.cfg.heartbeat_ms},
		{"runc", OPT_STR, "runc", "runc binary", &a.cfg.runc_bin},
		{"runc-root", OPT_STR, NULL, "runc --root (default STATE_DIR/runc)",
		 &a.cfg.runc_root},
		{"join", OPT_STR, NULL, "join token from `mlmaster token`", &a.cfg.join},
		{"insecure", OPT_BOOL, NULL, "unsealed traffic (local development only)",
		 &a.cfg.insecure},
		{"stop-tasks-on-exit", OPT_BOOL, NULL,
		 "kill the containers when stopped by SIGTERM or SIGINT (default: they keep "
		 "running and the next mlagent with this --state-dir takes them over)",
		 &a.cfg.stop_tasks_on_exit},
		{"log-level", OPT_STR, "info", "error, warn, info or debug", &level},
		{"debug", OPT_STR, "all", "debug subsystems: sched,runc,store,wire or all", &debug},
		{NULL, 0, NULL, NULL, NULL},
	};
	enum log_level lvl;
	unsigned subs;
	char *real;

	if (argc == 3 && strcmp(argv[1], "shim") == 0)
		return shim_main(argv[2]);
	rv = opt_parse(tab, argc, argv, &nargs, "mlagent", "--join TOKEN | --insecure [OPTIONS]",
		       err, sizeof(err));
	if (rv == 1)
		return 0;
	if (rv != 0) {
		fprintf(stderr, "mlagent: %s\n", err);
		return 2;
	}
	if (nargs > 0) {
		fprintf(stderr, "mlagent: unexpected argument \"%s\" (see mlagent --help)\n",
			argv[0]);
		return 2;
	}
	if (log_parse_level(level, &lvl) != 0 || log_parse_subs(debug, &subs) != 0) {
		fprintf(stderr, "mlagent: bad --log-level or --debug value\n");
		return 2;
	}
	if (!a.cfg.insecure && !a.cfg.join) {
		fprintf(stderr, "mlagent: --join TOKEN is required (print it with `mlmaster "
				"token`), or --insecure for unsealed local development\n");
		return 2;
	}
	if (a.cfg.heartbeat_ms < 100) {
		fprintf(stderr, "mlagent: --heartbeat must be at least 100ms\n");
		return 2;
	}
	if (!a.cfg.name) {
		gethostname(hostname, sizeof(hostname) - 1);
		a.cfg.name = hostname;
	}
	if (!spec_name_ok(a.cfg.name)) {
		fprintf(stderr,
			"mlagent: node name \"%s\" must be lower-case letters, digits, '.', '_' "
			"or '-' (set it with --name)\n",
			a.cfg.name);
		return 2;
	}
	log_init("mlagent", lvl, 2);
	log_set_subs(subs);
	if (sodium_init() < 0)
		fatal("libsodium failed to initialise");
	if (mkdir_p(a.cfg.state_dir, 0750) != 0)
		fatal("cannot create --state-dir %s: %s", a.cfg.state_dir, strerror(errno));
	if (!a.cfg.insecure) {
		uint8_t mpk[SEAL_PK_LEN], secret[SEAL_SECRET_LEN];
		struct seal_key key;
		char *kp = xasprintf("%s/agent.key", a.cfg.state_dir);
		bool created;
		if (seal_token_parse(a.cfg.join, mpk, secret) != 0) {
			fprintf(stderr, "mlagent: --join: not a join token (mlmaster token "
					"prints one)\n");
			return 2;
		}
		if (seal_key_load_or_create(kp, &key, &created, err, sizeof(err)) != 0)
			fatal("%s", err);
		if (created)
			log_info("created the agent key %s", kp);
		free(kp);
		a.seal = seal_ctx_new(&key);
		sodium_memzero(&key, sizeof(key));
		sodium_memzero(secret, sizeof(secret));
		net_seal(a.seal, true);
		net_peer_key(mpk);
	}
	/* Absolute paths: shims and a later agent process (which may run
	 * from another folder) find the same files, and a shim's command line
	 * names its folder the same way every time. */
	if (!(real = realpath(a.cfg.state_dir, NULL)))
		fatal("--state-dir %s: %s", a.cfg.state_dir, strerror(errno));
	snprintf(a.logs_dir, sizeof(a.logs_dir), "%s/logs", real);
	snprintf(a.tasks_dir, sizeof(a.tasks_dir), "%s/tasks", real);
	if (!a.cfg.runc_root)
		a.cfg.runc_root = runc_root = xasprintf("%s/runc", real);
	free(real);
	if (mkdir_p(a.logs_dir, 0750) != 0 || mkdir_p(a.tasks_dir, 0750) != 0 ||
	    mkdir_p(a.cfg.runc_root, 0700) != 0)
		fatal("cannot create folders under %s: %s", a.cfg.state_dir, strerror(errno));
	if (!realpath(a.cfg.runc_root, a.runc_root))
		fatal("--runc-root %s: %s", a.cfg.runc_root, strerror(errno));
	a.runc.bin = a.cfg.runc_bin;
	{
		/* A node whose runc does not run would take tasks and fail
		 * them all: refuse to start instead. */
		const char *ver[] = {a.cfg.runc_bin, "--version", NULL};
		char out[256] = "";
		int st = 0;
		if (proc_run(ver, -1, &st, out, sizeof(out)) != 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st) != 0)
			fatal("%s --version does not run (%s): install runc (apt-get install runc) "
			      "or pass --runc PATH",
			      a.cfg.runc_bin, out[0] ? out : "exit status non-zero");
	}
	a.runc.root = a.runc_root;
	a.cpu_milli = a.cfg.cpus_milli ? (uint32_t)a.cfg.cpus_milli : sysinfo_cpu_milli();
	a.mem_total = a.cfg.memory ? a.cfg.memory : sysinfo_mem_total();
	if (!a.cfg.address)
		a.cfg.address = default_address();
	parse_labels(&a);
	setup_gpus(&a);
	a.events = cJSON_CreateArray();
	a.sender = wire_sender_id(a.cfg.name);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(a.boot, sizeof(a.boot), rnd, sizeof(rnd));
	reattach(&a);
	sysinfo_cpu_pct(&a.cpu);

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
		fatal("signalfd: %s", strerror(errno));
	if (net_dial_req(a.cfg.master, 1000, &a.sock, err, sizeof(err)) != 0)
		fatal("%s", err);
	/* Resend a request that got no reply after a master restart. */
	nng_socket_set_ms(a.sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)(a.cfg.heartbeat_ms * 3));
	if (net_recv_fd(a.sock, &nfd) != 0)
		fatal("cannot get the socket descriptor");
	log_info("mlagent %s node=%s address=%s master=%s: %u millicores, %" PRIu64 " MiB, %zu GPUs",
		 MLSCHED_VERSION, a.cfg.name, a.cfg.address, a.cfg.master, a.cpu_milli, a.mem_total >> 20,
		 a.ngpus);

	for (;;) {
		uint64_t now = now_ms();
		int timeout = a.next_sync > now ? (int)(a.next_sync - now) : 0;
		for (struct atask *t = a.tasks; t; t = t->next)
			if (t->stopping && !t->killed)
				timeout = t->kill_at > now && (int)(t->kill_at - now) < timeout
						  ? (int)(t->kill_at - now)
						  : (t->kill_at <= now ? 0 : timeout);
		/* The master socket, signals, and adopted shims' pidfds
		 * (readable when the shim exits). */
		size_t np = 2;
		for (struct atask *t = a.tasks; t; t = t->next)
			np += t->pidfd >= 0;
		if (np > a.npfds_cap) {
			a.npfds_cap = np * 2;
			a.pfds = xrealloc(a.pfds, a.npfds_cap * sizeof(*a.pfds));
		}
		a.pfds[0] = (struct pollfd){.fd = nfd, .events = POLLIN};
		a.pfds[1] = (struct pollfd){.fd = sfd, .events = POLLIN};
		np = 2;
		for (struct atask *t = a.tasks; t; t = t->next)
			if (t->pidfd >= 0)
				a.pfds[np++] = (struct pollfd){.fd = t->pidfd, .events = POLLIN};
		if (poll(a.pfds, np, timeout) < 0 && errno != EINTR)
			fatal("poll: %s", strerror(errno));
		if (a.pfds[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			bool quit = false;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					quit = true;
			reap(&a);
			if (quit) {
				shutdown_tasks(&a);
				break;
			}
		}
		check_adopted(&a);
		for (;;) {
			struct wire_hdr h;
			cJSON *body;
			rv = net_recv(a.sock, &h, &body, NNG_FLAG_NONBLOCK, err, sizeof(err));
			if (rv == ERR_TIMEDOUT)
				break;
			if (rv != 0) {
				log_warn("master reply rejected: %s", err);
				a.next_sync = 0;
				break;
			}
			a.in_flight = false;
			if (h.type == WIRE_ORDERS) {
				a.last_error[0] = '\0';
				a.joined = true;
				handle_orders(&a, body);
			} else if (h.type == WIRE_ERROR) {
				const char *msg = "?";
				wire_get_str(body, "message", 200, &msg);
				if (strcmp(msg, a.last_error) != 0)
					log_error("the master refuses this agent: %s", msg);
				strlcpy_ok(a.last_error, msg, sizeof(a.last_error));
				a.joined = false;
			} else
				log_warn("unexpected %s message from the master", wire_type_str(h.type));
			cJSON_Delete(body);
		}
		kill_overdue(&a);
		if (now_ms() >= a.next_sync)
			send_sync(&a);
	}
	nng_close(a.sock);
	if (a.gpu)
		a.gpu->fini(a.gpu_ctx);
	cJSON_Delete(a.events);
	cJSON_Delete(a.labels);
	seal_ctx_free(a.seal);
	free(a.pfds);
	free(runc_root);
	return 0;
}
