/*
 * task.c - the task table: starting a task (bundle, port check, shim,
 * probe), stopping it, noticing its end (a shim reaped or an adopted shim's
 * pidfd), starting a later attempt that waited for it, taking tasks over
 * after an agent restart, and driving the health probes of running tasks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "logcap.h"
#include "spec.h"
#include "units.h"
#include "util.h"
#include "wire.h"

struct atask *task_find(struct agent *a, uint64_t job, uint32_t idx)
{
	for (struct atask *t = a->tasks; t; t = t->next)
		if (t->job == job && t->idx == idx)
			return t;
	return NULL;
}

char *task_log_path(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	return xasprintf("%s/%" PRIu64 "-%u.%u.log", a->logs_dir, job, idx, attempt);
}

/* A log file of ours: "JOB-TASK.ATTEMPT.log" (or the older "JOB-TASK.log"). */
static bool log_name(const char *name, uint64_t *job, uint32_t *idx)
{
	unsigned long long j;
	unsigned i;
	int end = 0;

	if (sscanf(name, "%llu-%u%n", &j, &i, &end) != 2)
		return false;
	*job = j;
	*idx = i;
	return strstr(name + end, ".log") != NULL;
}

/*
 * Keep the logs under --logs-keep: the oldest logs of tasks that no longer
 * run here go first, so that the attempt that crashed stays readable
 * (mlctl logs --attempt) as long as room allows.
 */
void task_logs_trim(struct agent *a)
{
	struct lf {
		char name[NAME_MAX + 1];
		off_t size;
		time_t mtime;
	} *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	DIR *d;
	struct dirent *de;

	/* Each attempt's own cap first (--log-max), then the total. */
	logcap_tasks(a, 1);
	d = opendir(a->logs_dir);
	if (!d || !a->cfg.logs_keep)
		goto out;
	while ((de = readdir(d))) {
		struct stat st;
		char *p;
		uint64_t job;
		uint32_t idx;
		if (!log_name(de->d_name, &job, &idx))
			continue;
		p = xasprintf("%s/%s", a->logs_dir, de->d_name);
		if (stat(p, &st) == 0) {
			/* What it takes on disk: a capped log's dropped
			 * head is a hole (logcap.h). */
			total += logcap_usage((uint64_t)st.st_size, (uint64_t)st.st_blocks);
			if (!task_find(a, job, idx)) {
				if (n == cap) {
					cap = cap ? cap * 2 : 64;
					v = xrealloc(v, cap * sizeof(*v));
				}
				strlcpy_ok(v[n].name, de->d_name, sizeof(v[n].name));
				v[n].size = (off_t)logcap_usage((uint64_t)st.st_size,
								(uint64_t)st.st_blocks);
				v[n].mtime = st.st_mtime;
				n++;
			}
		}
		free(p);
	}
	while (total > a->cfg.logs_keep && n > 0) {
		size_t old = 0;
		char *p;
		for (size_t i = 1; i < n; i++)
			if (v[i].mtime < v[old].mtime)
				old = i;
		p = xasprintf("%s/%s", a->logs_dir, v[old].name);
		if (unlink(p) == 0) {
			total -= (uint64_t)v[old].size;
			log_info("log %s removed: the logs here pass --logs-keep", v[old].name);
		}
		free(p);
		v[old] = v[--n];
	}
out:
	if (d)
		closedir(d);
	free(v);
}

void task_forget(struct agent *a, struct atask *t)
{
	struct atask **pp;

	for (pp = &a->tasks; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (t->pidfd >= 0)
		close(t->pidfd);
	probe_free(t->probe);
	cJSON_Delete(t->next_start);
	free(t);
}

/* runc delete --force also kills a container that still runs. */
void task_remove(struct agent *a, struct atask *t)
{
	char why[RUNC_WHY_LEN];

	if (runc_delete(&a->runc, t->id, true, why, sizeof(why)) != 0 && why[0])
		log_warn("container=%s delete: %s", t->id, why);
	rm_rf(t->dir);
	task_forget(a, t);
}

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

/*
 * Does something on this host listen on TCP port (any address)?  Binding
 * 0.0.0.0:port with SO_REUSEADDR fails with EADDRINUSE exactly when a socket
 * listens on it (on any address) or holds it otherwise; connections in
 * TIME_WAIT do not count.  0, or ERR_EXIST / ERR_SYS with the reason in why.
 */
static int port_check(struct agent *a, uint16_t port, char *why, size_t whylen)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd, one = 1, rv = 0;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		set_why(why, whylen, "port %u on node %s: cannot check it: socket: %s", port,
			a->cfg.name, strerror(errno));
		return ERR_SYS;
	}
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		if (errno == EADDRINUSE) {
			set_why(why, whylen, "port %u on node %s is in use by another process",
				port, a->cfg.name);
			rv = ERR_EXIST;
		} else {
			set_why(why, whylen, "port %u on node %s: cannot check it: bind: %s", port,
				a->cfg.name, strerror(errno));
			rv = ERR_SYS;
		}
	}
	close(fd);
	return rv;
}

void task_start(struct agent *a, const cJSON *o, uint64_t job, uint32_t idx, uint32_t attempt)
{
	const char *image = NULL, *workdir = "/work";
	char rootfs[PATH_MAX];
	const cJSON *cmd, *g, *health = NULL;
	struct bundle_opts bo = {0};
	struct probe *probe = NULL;
	struct atask *t = xcalloc(1, sizeof(*t));
	char why[RUNC_WHY_LEN] = "", *work = NULL, *tmp = NULL, *logp = NULL, **env = NULL;
	const char **args = NULL;
	uint32_t gpus[GPU_MAX];
	size_t nenv = 0, nargs = 0, ngpus = 0;
	uint64_t mem = 0, cpu = 0, port = 0;
	int rv;
	cJSON *e;

	t->pidfd = -1;
	t->pfd = -1;
	t->job = job;
	t->idx = idx;
	t->attempt = attempt;
	task_remember_ran(a, job, idx, attempt);
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
	if (!image) {
		snprintf(why, sizeof(why), "start order without an image");
		goto fail;
	}
	/* An oci: image not unpacked yet: this runs again when it is. */
	rv = image_prepare(a, image, o, job, idx, attempt, t->dir, rootfs, t->image, why,
			   sizeof(why));
	if (rv == IMAGE_PENDING)
		goto out;
	if (rv != 0)
		goto fail;
	if (wire_get_array(o, "command", SPEC_MAX_ARGS, &cmd) != 0 || cJSON_GetArraySize(cmd) < 1) {
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
		/* Device indices: anything outside 0..1023 is not one. */
		if (ngpus < GPU_MAX && cJSON_IsNumber(g) && g->valuedouble >= 0 &&
		    g->valuedouble < 1024)
			gpus[ngpus++] = (uint32_t)g->valuedouble;
	}
	if (wire_get_u64(o, "port", 65535, &port) == ERR_PROTO) {
		snprintf(why, sizeof(why), "start order with a bad port (not 0 to 65535)");
		goto fail;
	}
	t->port = (uint16_t)port;
	if (t->port && port_check(a, t->port, why, sizeof(why)) != 0)
		goto fail;
	if (wire_get_object(o, "health", &health) == ERR_PROTO) {
		snprintf(why, sizeof(why), "health: must be an object");
		goto fail;
	}
	/* Made now to check it; its clock starts once the container has
	 * (probe_started below). */
	if (health &&
	    !(probe = probe_new(health, t->id, &a->runc, now_ms(), now_ms(), why, sizeof(why))))
		goto fail;
	env = make_env(o, &nenv);

	/* A container of this id left by an earlier run would block runc.
	 * runc keeps a container's state in ROOT/ID: without that folder
	 * there is none, and no runc process is spent finding out (one
	 * runc call less on every start's critical path). */
	{
		char *st = xasprintf("%s/%s", a->runc_root, t->id);
		if (access(st, F_OK) == 0)
			runc_delete(&a->runc, t->id, true, why, sizeof(why));
		free(st);
	}
	why[0] = '\0';
	rm_rf(t->dir);
	work = xasprintf("%s/work", t->dir);
	tmp = xasprintf("%s/tmp", t->dir);
	if (mkdir_p(work, 0755) != 0 || mkdir_p(tmp, 01777) != 0 || chmod(tmp, 01777) != 0) {
		snprintf(why, sizeof(why), "cannot create %.300s: %s", t->dir, strerror(errno));
		goto fail;
	}
	logp = task_log_path(a, job, idx, attempt);
	bo.rootfs = rootfs;
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
	if ((rv = shim_meta_write(a, t, logp, health, why, sizeof(why))) != 0)
		goto fail;
	if ((rv = shim_spawn(t, why, sizeof(why))) != 0)
		goto fail;
	if (probe)
		probe_started(probe, now_ms());
	t->probe = probe;
	t->has_health = probe != NULL;
	t->health = PROBE_UNKNOWN;
	probe = NULL;
	t->next = a->tasks;
	a->tasks = t;
	t = NULL;
	log_info("job=%" PRIu64 " task=%u container=%s started: pid %d, shim %d%s%s", job, idx,
		 a->tasks->id, (int)a->tasks->pid, (int)a->tasks->shim,
		 a->tasks->probe ? ", probe " : "",
		 a->tasks->probe ? probe_target(a->tasks->probe) : "");
	session_event(a, "started", job, idx, attempt);
	goto out;
fail:
	log_warn("job=%" PRIu64 " task=%u cannot start: %s", job, idx, why);
	e = session_event(a, "failed", job, idx, attempt);
	{
		char r[EVENT_REASON_MAX];
		cJSON_AddStringToObject(e, "reason", event_reason(why, r, sizeof(r)));
	}
	if (t) {
		runc_delete(&a->runc, t->id, true, why, sizeof(why));
		rm_rf(t->dir);
	}
out:
	probe_free(probe);
	for (size_t i = 0; i < nenv; i++)
		free(env[i]);
	free(env);
	free(args);
	free(work);
	free(tmp);
	free(logp);
	free(t);
}

void task_stop(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt, uint64_t grace,
	       const char *reason)
{
	struct atask *t = task_find(a, job, idx);
	char why[RUNC_WHY_LEN], *path;
	uint64_t now = now_ms();
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
		task_remember_ran(a, job, idx, attempt);
		e = session_event(a, "gone", job, idx, attempt);
		cJSON_AddStringToObject(e, "reason", "stopped before it started");
		return;
	}
	if (!t) {
		bool waited = image_cancel(a, job, idx, attempt);
		if (waited)
			task_remember_ran(a, job, idx, attempt);
		e = session_event(a, "gone", job, idx, attempt);
		cJSON_AddStringToObject(e, "reason", waited ? "stopped while its image was unpacked"
							    : "not running on this node");
		return;
	}
	if (reason && !*reason)
		reason = NULL;
	/* A repeated stop changes nothing, unless it shortens the grace (a
	 * copy the master has since placed elsewhere must go at once). */
	if (t->stopping && (t->killed || now + grace >= t->kill_at))
		return;
	/* Probes end when the stop begins: a stopping task is no endpoint,
	 * and its failing checks would only be noise.  Its last verdict is
	 * still listed. */
	probe_free(t->probe);
	t->probe = NULL;
	t->stopping = true;
	t->kill_at = now + grace;
	/* An agent that restarts meanwhile still kills it at that time. */
	path = shim_file(t, "stop");
	if (shim_write_num(path, wall_ms() + grace) != 0)
		log_warn("container=%s: cannot write %s: %s", t->id, path, strerror(errno));
	free(path);
	if (grace == 0 && reason)
		log_warn("job=%" PRIu64 " task=%u container=%s killed at once: %s", job, idx, t->id,
			 reason);
	else
		log_info("job=%" PRIu64 " task=%u container=%s stopping (grace %" PRIu64 " ms)%s%s",
			 job, idx, t->id, grace, reason ? ": " : "", reason ? reason : "");
	if (runc_kill(&a->runc, t->id, grace ? SIGTERM : SIGKILL, why, sizeof(why)) != 0)
		log_warn("container=%s kill: %s", t->id, why);
	t->killed = grace == 0;
}

/*
 * A start order can arrive twice (a reply lost, a master restarted before
 * it saw our acknowledgement).  Remember the recent (job, task, attempt)
 * triples this process started so that a repeat never runs a task again.
 */
bool task_ran_before(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	for (size_t i = 0; i < RAN_MAX; i++)
		if (a->ran[i].job == job && a->ran[i].idx == idx && a->ran[i].attempt == attempt &&
		    a->ran[i].job)
			return true;
	return false;
}

void task_remember_ran(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	a->ran[a->ran_next].job = job;
	a->ran[a->ran_next].idx = idx;
	a->ran[a->ran_next].attempt = attempt;
	a->ran_next = (a->ran_next + 1) % RAN_MAX;
}

/* ---- containers ending ---- */

/* t's shim is gone: report the exit it recorded, or else lost_why (the
 * container is then killed and deleted all the same). */
void task_ended(struct agent *a, struct atask *t, const char *lost_why)
{
	char *path = shim_file(t, "exit"), *text = NULL;
	uint64_t job = t->job;
	uint32_t idx = t->idx;
	bool t_image = t->image[0] != '\0';
	int code, sig;
	cJSON *e, *start;

	if (file_read(path, 64, &text, NULL) == 0 &&
	    sscanf(text, "code %d signal %d", &code, &sig) == 2) {
		e = session_event(a, "exited", t->job, t->idx, t->attempt);
		cJSON_AddNumberToObject(e, "code", code);
		cJSON_AddNumberToObject(e, "signal", sig);
		log_info("job=%" PRIu64 " task=%u container=%s exited code=%d", t->job, t->idx,
			 t->id, code);
	} else {
		e = session_event(a, "failed", t->job, t->idx, t->attempt);
		cJSON_AddStringToObject(e, "reason", lost_why);
		log_warn("job=%" PRIu64 " task=%u container=%s failed: %s", t->job, t->idx, t->id,
			 lost_why);
	}
	free(text);
	free(path);
	start = t->next_start;
	t->next_start = NULL;
	task_remove(a, t);
	task_logs_trim(a);
	/* Only an image task's end can free a cache entry (unpacks trim
	 * too). */
	if (t_image)
		image_trim(a);
	if (start) {
		uint64_t att = 0;
		wire_get_u64(start, "attempt", UINT32_MAX, &att);
		if (!task_ran_before(a, job, idx, (uint32_t)att))
			task_start(a, start, job, idx, (uint32_t)att);
		cJSON_Delete(start);
	}
}

/* Our children are shims and exec probes (runc calls wait for their own). */
void task_reap(struct agent *a)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct atask *t;
		if (image_child_exited(a, pid, status))
			continue;
		for (t = a->tasks; t; t = t->next)
			if (!t->adopted && t->shim == pid)
				break;
		if (!t) {
			/* An exec probe's check, or the shim of a start
			 * that failed. */
			for (t = a->tasks; t; t = t->next)
				if (probe_child_exited(t->probe, pid, status))
					break;
			continue;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			log_warn("container=%s: its shim (pid %d) %s %d", t->id, (int)pid,
				 WIFEXITED(status) ? "exited with status" : "was killed by signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		task_ended(a, t, "the task's shim ended without recording the container's exit");
	}
}

/* Shims adopted from an earlier agent that have exited since. */
void task_check_adopted(struct agent *a)
{
	struct atask *t, *next;

	for (t = a->tasks; t; t = next) {
		next = t->next;
		if (t->adopted && shim_gone(t))
			task_ended(a, t,
				   "the task's shim ended without recording the container's exit");
	}
}

void task_kill_overdue(struct agent *a)
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

/* An adopted task probes again, from the health object in its meta.json;
 * the grace counts from its start, recorded there too.  Its verdict starts
 * unknown again (the master keeps what it knew until the first one). */
static void probe_adopted(struct agent *a, struct atask *t, const cJSON *m)
{
	const cJSON *health = cJSON_GetObjectItemCaseSensitive(m, "health");
	uint64_t started = 0, wall = wall_ms(), now = now_ms();
	char why[PROBE_REASON_LEN];

	if (!health)
		return;
	wire_get_u64(m, "started", UINT64_MAX >> 11, &started);
	/* started in the monotonic clock: now minus its age */
	started =
	    started && started < wall ? (wall - started < now ? now - (wall - started) : 0) : now;
	if (!(t->probe = probe_new(health, t->id, &a->runc, started, now, why, sizeof(why)))) {
		log_warn("job=%" PRIu64 " task=%u container=%s: not probed: %s", t->job, t->idx,
			 t->id, why);
		return;
	}
	t->has_health = true;
	t->health = PROBE_UNKNOWN;
}

/*
 * A task folder with a start.json and no meta.json: a start that waited for
 * its image to be unpacked when the earlier agent stopped (image.h).  Start
 * it again (the unpack starts again too); true when t->dir was that.
 */
static bool start_again(struct agent *a, struct atask *t)
{
	char *meta = shim_file(t, "meta.json"), *path = shim_file(t, "start.json"), *text = NULL;
	uint64_t job = 0, idx = 0, att = 0;
	struct stat st;
	cJSON *o = NULL;
	bool found = false;

	if (stat(meta, &st) == 0 || file_read(path, META_MAX, &text, NULL) != 0)
		goto out;
	found = true;
	if (!(o = cJSON_Parse(text)) || wire_get_u64(o, "job", UINT64_MAX >> 11, &job) != 0 ||
	    wire_get_u64(o, "task", SPEC_MAX_TASKS, &idx) != 0 ||
	    wire_get_u64(o, "attempt", UINT32_MAX, &att) != 0) {
		log_warn("%s is not a start order: removing %s", path, t->dir);
		rm_rf(t->dir);
		goto out;
	}
	log_info("job=%" PRIu64 " task=%" PRIu64 " waited for its image when the earlier agent "
		 "stopped: starting it again",
		 job, idx);
	if (!task_ran_before(a, job, (uint32_t)idx, (uint32_t)att))
		task_start(a, o, job, (uint32_t)idx, (uint32_t)att);
out:
	cJSON_Delete(o);
	free(text);
	free(path);
	free(meta);
	return found;
}

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
	t->pfd = -1;
	if (!runc_id_ok(name) ||
	    snprintf(t->dir, sizeof(t->dir), "%s/%s", a->tasks_dir, name) >= (int)sizeof(t->dir)) {
		log_warn("%s/%s: not a task folder: ignored", a->tasks_dir, name);
		free(t);
		return;
	}
	path = shim_file(t, "meta.json");
	if (start_again(a, t)) {
		free(t);
		goto out;
	}
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
	if (wire_get_u64(m, "port", 65535, &v) == 0)
		t->port = (uint16_t)v;
	if (wire_get_str(m, "image_entry", IMAGE_ENTRY_LEN - 1, &id) == 0)
		strlcpy_ok(t->image, id, sizeof(t->image));
	t->adopted = true;
	task_remember_ran(a, t->job, t->idx, t->attempt);
	free(path);
	path = shim_file(t, "pid");
	if (shim_read_num(path, INT32_MAX, &v) == 0)
		t->pid = (pid_t)v;
	free(path);
	path = shim_file(t, "shim.pid");
	if (shim_read_num(path, INT32_MAX, &v) == 0)
		t->shim = (pid_t)v;
	t->next = a->tasks;
	a->tasks = t;
	if (t->shim > 0 && shim_adopt(t)) {
		free(path);
		path = shim_file(t, "stop");
		if (shim_read_num(path, UINT64_MAX >> 11, &v) == 0) {
			uint64_t wall = wall_ms();
			t->stopping = true;
			t->kill_at = now_ms() + (v > wall ? v - wall : 0);
		}
		if (!t->stopping)
			probe_adopted(a, t, m);
		log_info("job=%" PRIu64
			 " task=%u container=%s reattached: pid %d, shim %d (%s)%s%s",
			 t->job, t->idx, t->id, (int)t->pid, (int)t->shim,
			 t->pidfd >= 0 ? "pidfd" : "no pidfd: checked every heartbeat",
			 t->probe ? ", probe " : "", t->probe ? probe_target(t->probe) : "");
		/* The master may not have heard that it started (we were
		 * killed in between); for one that has, this is a no-op. */
		session_event(a, "started", t->job, t->idx, t->attempt);
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
void task_reattach(struct agent *a)
{
	char **ids = NULL, why[RUNC_WHY_LEN];
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, nn = 0, cap = 0;
	DIR *d;

	/* The names first: a start taken up again (start_again) remakes its
	 * folder, which a readdir in progress might list twice. */
	if (!(d = opendir(a->tasks_dir)))
		log_warn("cannot read %s: %s", a->tasks_dir, strerror(errno));
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (nn == cap) {
			cap = cap ? cap * 2 : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[nn++] = xstrdup(de->d_name);
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < nn; i++) {
		reattach_one(a, names[i]);
		free(names[i]);
	}
	free(names);
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
void task_shutdown(struct agent *a)
{
	char why[RUNC_WHY_LEN];
	uint64_t deadline;
	size_t n = 0;

	image_shutdown(a);
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
		task_reap(a);
		task_check_adopted(a);
		usleep(10000);
	}
	while (a->tasks)
		task_remove(a, a->tasks);
	/* Best effort: tell the master how they ended. */
	session_sync(a);
	usleep(200000);
}

/* ---- health probes ---- */

uint64_t task_probe_next(struct agent *a)
{
	uint64_t due = UINT64_MAX;

	for (struct atask *t = a->tasks; t; t = t->next)
		if (t->probe && probe_next_ms(t->probe) < due)
			due = probe_next_ms(t->probe);
	return due;
}

size_t task_probe_pollfds(struct agent *a, size_t np)
{
	for (struct atask *t = a->tasks; t; t = t->next) {
		struct pollfd pf;
		t->pfd = -1;
		if (!t->probe || !probe_pollfd(t->probe, &pf))
			continue;
		if (np + 1 > a->npfds_cap) {
			a->npfds_cap = (np + 1) * 2;
			a->pfds = xrealloc(a->pfds, a->npfds_cap * sizeof(*a->pfds));
		}
		t->pfd = (int)np;
		a->pfds[np++] = pf;
	}
	return np;
}

/* A new verdict: an event for the master (sent at once) and a log line. */
static void health_changed(struct agent *a, struct atask *t)
{
	enum probe_state s = probe_state(t->probe);
	uint32_t n = probe_streak(t->probe);
	cJSON *e;

	t->health = s;
	e = session_event(a, "health", t->job, t->idx, t->attempt);
	cJSON_AddBoolToObject(e, "healthy", s == PROBE_HEALTHY);
	cJSON_AddStringToObject(e, "reason", probe_reason(t->probe));
	cJSON_AddNumberToObject(e, "at", (double)probe_at(t->probe));
	if (s == PROBE_HEALTHY)
		log_info("job=%" PRIu64 " task=%u container=%s healthy: %s (%u consecutive "
			 "success%s)",
			 t->job, t->idx, t->id, probe_reason(t->probe), n, n == 1 ? "" : "es");
	else
		log_info("job=%" PRIu64 " task=%u container=%s unhealthy: %s (%u consecutive "
			 "failure%s)",
			 t->job, t->idx, t->id, probe_reason(t->probe), n, n == 1 ? "" : "s");
}

void task_probe_step(struct agent *a, uint64_t now)
{
	for (struct atask *t = a->tasks; t; t = t->next) {
		short revents;
		if (!t->probe)
			continue;
		revents = t->pfd >= 0 ? a->pfds[t->pfd].revents : 0;
		t->pfd = -1;
		if (probe_step(t->probe, now, revents))
			health_changed(a, t);
	}
}
