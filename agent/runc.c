/*
 * runc.c - OCI bundles (config.json) and the runc command line.
 *
 * Child processes are started with posix_spawnp only: the agent is threaded
 * (nng), and a bare fork() in a threaded process may copy a held lock.  Every
 * descriptor we open is O_CLOEXEC so that a concurrent spawn on another
 * thread cannot leak it into a container.
 *
 * runc is always called with "--log-format json": its error lines are then
 * {"level":"error","msg":...} objects, from which we copy msg into why.
 */
#include "runc.h"
#include "err.h"
#include "proc.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Caps on what we keep from a child: runc's stderr is a few lines, and
 * "runc list -q" prints one short id per line. */
#define CAPTURE_MAX (4u << 20)
#define PID_FILE_MAX 64
#define RUNC_LOG_MAX (1u << 20)

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DEFAULT_HOME "HOME=/root"
#define CFS_PERIOD_US 100000

/* ---- config.json ------------------------------------------------------ */

static void add_str_array(cJSON *obj, const char *name, const char *const *v, size_t n)
{
	cJSON *a = cJSON_AddArrayToObject(obj, name);
	size_t i;

	for (i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
}

static bool env_has(const struct bundle_opts *o, const char *key)
{
	size_t klen = strlen(key), i;

	for (i = 0; i < o->nenv; i++)
		if (strncmp(o->env[i], key, klen) == 0 && o->env[i][klen] == '=')
			return true;
	return false;
}

static void add_process(cJSON *root, const struct bundle_opts *o)
{
	/* runc spec's default: enough to bind low ports and signal our own
	 * processes, nothing that reaches outside the container. */
	static const char *const caps[] = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
	static const char *const capsets[] = {"bounding", "effective", "permitted", "ambient"};
	cJSON *p = cJSON_AddObjectToObject(root, "process");
	cJSON *user, *env, *capo, *rl, *nofile;
	size_t i;

	cJSON_AddBoolToObject(p, "terminal", false);
	user = cJSON_AddObjectToObject(p, "user");
	cJSON_AddNumberToObject(user, "uid", 0);
	cJSON_AddNumberToObject(user, "gid", 0);
	add_str_array(p, "args", o->args, o->nargs);

	env = cJSON_AddArrayToObject(p, "env");
	if (!env_has(o, "PATH"))
		cJSON_AddItemToArray(env, cJSON_CreateString(DEFAULT_PATH));
	if (!env_has(o, "HOME"))
		cJSON_AddItemToArray(env, cJSON_CreateString(DEFAULT_HOME));
	for (i = 0; i < o->nenv; i++)
		cJSON_AddItemToArray(env, cJSON_CreateString(o->env[i]));

	cJSON_AddStringToObject(p, "cwd", o->cwd ? o->cwd : "/work");

	capo = cJSON_AddObjectToObject(p, "capabilities");
	for (i = 0; i < sizeof(capsets) / sizeof(capsets[0]); i++)
		add_str_array(capo, capsets[i], caps, sizeof(caps) / sizeof(caps[0]));

	rl = cJSON_AddArrayToObject(p, "rlimits");
	nofile = cJSON_CreateObject();
	cJSON_AddStringToObject(nofile, "type", "RLIMIT_NOFILE");
	cJSON_AddNumberToObject(nofile, "hard", 1024);
	cJSON_AddNumberToObject(nofile, "soft", 1024);
	cJSON_AddItemToArray(rl, nofile);
	cJSON_AddBoolToObject(p, "noNewPrivileges", true);
}

static void add_mount(cJSON *mounts, const char *dest, const char *type, const char *src,
		      const char *const *opts, size_t nopts)
{
	cJSON *m = cJSON_CreateObject();

	cJSON_AddStringToObject(m, "destination", dest);
	cJSON_AddStringToObject(m, "type", type);
	cJSON_AddStringToObject(m, "source", src);
	if (nopts)
		add_str_array(m, "options", opts, nopts);
	cJSON_AddItemToArray(mounts, m);
}

#define NOPTS(a) (sizeof(a) / sizeof((a)[0]))

static void add_mounts(cJSON *root, const char *work, const char *tmp)
{
	static const char *const dev[] = {"nosuid", "strictatime", "mode=755", "size=65536k"};
	static const char *const pts[] = {"nosuid",	   "noexec", "newinstance",
					  "ptmxmode=0666", "mode=0620", "gid=5"};
	static const char *const shm[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"};
	static const char *const mq[] = {"nosuid", "noexec", "nodev"};
	static const char *const sys[] = {"nosuid", "noexec", "nodev", "ro"};
	static const char *const cg[] = {"nosuid", "noexec", "nodev", "relatime", "ro"};
	static const char *const bind[] = {"rbind", "rw", "nosuid", "nodev"};
	cJSON *m = cJSON_AddArrayToObject(root, "mounts");

	add_mount(m, "/proc", "proc", "proc", NULL, 0);
	add_mount(m, "/dev", "tmpfs", "tmpfs", dev, NOPTS(dev));
	add_mount(m, "/dev/pts", "devpts", "devpts", pts, NOPTS(pts));
	add_mount(m, "/dev/shm", "tmpfs", "shm", shm, NOPTS(shm));
	add_mount(m, "/dev/mqueue", "mqueue", "mqueue", mq, NOPTS(mq));
	add_mount(m, "/sys", "sysfs", "sysfs", sys, NOPTS(sys));
	add_mount(m, "/sys/fs/cgroup", "cgroup", "cgroup", cg, NOPTS(cg));
	if (work)
		add_mount(m, "/work", "bind", work, bind, NOPTS(bind));
	if (tmp)
		add_mount(m, "/tmp", "bind", tmp, bind, NOPTS(bind));
}

/* One devices-cgroup rule; major/minor < 0 is the wildcard. */
static void add_dev_rule(cJSON *rules, bool allow, const char *type, long major, long minor,
			 const char *access)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddBoolToObject(d, "allow", allow);
	if (type)
		cJSON_AddStringToObject(d, "type", type);
	if (major >= 0)
		cJSON_AddNumberToObject(d, "major", (double)major);
	if (minor >= 0)
		cJSON_AddNumberToObject(d, "minor", (double)minor);
	cJSON_AddStringToObject(d, "access", access);
	cJSON_AddItemToArray(rules, d);
}

/* Add the host character device at path (when it exists) as a device node
 * in the container and allow it in the devices cgroup. */
static void add_host_dev(cJSON *devices, cJSON *rules, const char *path)
{
	struct stat st;
	cJSON *d;

	if (stat(path, &st) < 0 || !S_ISCHR(st.st_mode))
		return;
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "path", path);
	cJSON_AddStringToObject(d, "type", "c");
	cJSON_AddNumberToObject(d, "major", major(st.st_rdev));
	cJSON_AddNumberToObject(d, "minor", minor(st.st_rdev));
	cJSON_AddNumberToObject(d, "fileMode", 0666);
	cJSON_AddNumberToObject(d, "uid", 0);
	cJSON_AddNumberToObject(d, "gid", 0);
	cJSON_AddItemToArray(devices, d);
	add_dev_rule(rules, true, "c", (long)major(st.st_rdev), (long)minor(st.st_rdev), "rwm");
}

static void add_gpus(cJSON *lx, cJSON *rules, const struct bundle_opts *o)
{
	static const char *const ctl[] = {"/dev/nvidiactl", "/dev/nvidia-uvm",
					  "/dev/nvidia-uvm-tools"};
	cJSON *devices = cJSON_AddArrayToObject(lx, "devices");
	size_t i, j;

	for (i = 0; i < NOPTS(ctl); i++)
		add_host_dev(devices, rules, ctl[i]);
	for (i = 0; i < o->ngpus; i++) {
		char path[64];
		bool dup = false;

		for (j = 0; j < i; j++)
			dup = dup || o->gpus[j] == o->gpus[i];
		if (dup)
			continue;
		snprintf(path, sizeof(path), "/dev/nvidia%u", o->gpus[i]);
		add_host_dev(devices, rules, path);
	}
}

static void add_linux(cJSON *root, const struct bundle_opts *o)
{
	/* No "network": containers share the host network (NCCL, serving
	 * ports); see DESIGN.md. */
	static const char *const ns[] = {"pid", "ipc", "uts", "mount"};
	static const char *const masked[] = {
		"/proc/acpi",	    "/proc/asound",	"/proc/kcore",	    "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/sys/firmware",	"/proc/scsi"};
	static const char *const ro[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
					 "/proc/sysrq-trigger"};
	cJSON *l = cJSON_AddObjectToObject(root, "linux");
	cJSON *res, *rules, *nsa;
	size_t i;

	res = cJSON_AddObjectToObject(l, "resources");
	rules = cJSON_AddArrayToObject(res, "devices");
	/* Deny everything, then allow the devices every container gets (the
	 * set runc itself would add: null, zero, full, tty, random, urandom,
	 * ptmx and the pty slaves). */
	add_dev_rule(rules, false, NULL, -1, -1, "rwm");
	add_dev_rule(rules, true, "c", 1, 3, "rwm");
	add_dev_rule(rules, true, "c", 1, 5, "rwm");
	add_dev_rule(rules, true, "c", 1, 7, "rwm");
	add_dev_rule(rules, true, "c", 1, 8, "rwm");
	add_dev_rule(rules, true, "c", 1, 9, "rwm");
	add_dev_rule(rules, true, "c", 5, 0, "rwm");
	add_dev_rule(rules, true, "c", 5, 2, "rwm");
	add_dev_rule(rules, true, "c", 136, -1, "rwm");
	if (o->mem_limit) {
		cJSON *mem = cJSON_AddObjectToObject(res, "memory");

		cJSON_AddNumberToObject(mem, "limit", (double)o->mem_limit);
	}
	if (o->cpu_milli) {
		cJSON *cpu = cJSON_AddObjectToObject(res, "cpu");

		cJSON_AddNumberToObject(cpu, "quota",
					(double)((uint64_t)o->cpu_milli * CFS_PERIOD_US / 1000));
		cJSON_AddNumberToObject(cpu, "period", CFS_PERIOD_US);
	}
	if (o->gpu_devices)
		add_gpus(l, rules, o);

	if (o->cgroup_path)
		cJSON_AddStringToObject(l, "cgroupsPath", o->cgroup_path);
	nsa = cJSON_AddArrayToObject(l, "namespaces");
	for (i = 0; i < NOPTS(ns); i++) {
		cJSON *n = cJSON_CreateObject();

		cJSON_AddStringToObject(n, "type", ns[i]);
		cJSON_AddItemToArray(nsa, n);
	}
	add_str_array(l, "maskedPaths", masked, NOPTS(masked));
	add_str_array(l, "readonlyPaths", ro, NOPTS(ro));
}

/* realpath() of a folder that must exist, with a message naming what it is. */
static int abs_dir(const char *path, const char *what, char **out, char *why, size_t whylen)
{
	struct stat st;
	char *p;

	*out = NULL;
	p = realpath(path, NULL);
	if (!p) {
		set_why(why, whylen, "%s %s: %s", what, path, strerror(errno));
		return errno == ENOENT || errno == ENOTDIR ? ERR_INVAL : ERR_IO;
	}
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
		set_why(why, whylen, "%s %s: not a folder", what, path);
		free(p);
		return ERR_INVAL;
	}
	*out = p;
	return 0;
}

/* The rootfs is mounted read-only, so mount points for our binds must
 * already be there: runc would otherwise create them inside the image. */
static int rootfs_has_dir(const char *rootfs, const char *dir, char *why, size_t whylen)
{
	char *p = xasprintf("%s%s", rootfs, dir);
	struct stat st;
	int rv = 0;

	if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode)) {
		set_why(why, whylen,
			"rootfs %s has no %s folder (needed as a mount point; "
			"contrib/mkrootfs.sh makes it)",
			rootfs, dir);
		rv = ERR_INVAL;
	}
	free(p);
	return rv;
}

static int check_opts(const struct bundle_opts *o, char *why, size_t whylen)
{
	size_t i;

	if (!o->rootfs || !o->args || o->nargs < 1) {
		set_why(why, whylen, "bundle needs a rootfs and at least one argument");
		return ERR_INVAL;
	}
	for (i = 0; i < o->nargs; i++) {
		if (!o->args[i]) {
			set_why(why, whylen, "argument %zu is NULL", i);
			return ERR_INVAL;
		}
	}
	if (o->nenv && !o->env) {
		set_why(why, whylen, "nenv is %zu but env is NULL", o->nenv);
		return ERR_INVAL;
	}
	for (i = 0; i < o->nenv; i++) {
		if (!o->env[i] || !strchr(o->env[i], '=') || o->env[i][0] == '=') {
			set_why(why, whylen, "environment entry %zu is not KEY=VALUE", i);
			return ERR_INVAL;
		}
	}
	if (o->cwd && o->cwd[0] != '/') {
		set_why(why, whylen, "cwd %s is not an absolute path", o->cwd);
		return ERR_INVAL;
	}
	if (o->ngpus && !o->gpus) {
		set_why(why, whylen, "ngpus is %zu but gpus is NULL", o->ngpus);
		return ERR_INVAL;
	}
	return 0;
}

int bundle_write(const char *dir, const struct bundle_opts *o, char *why, size_t whylen)
{
	char *rootfs = NULL, *work = NULL, *tmp = NULL, *text = NULL, *path = NULL;
	cJSON *root = NULL, *r;
	int rv;

	if (why && whylen)
		why[0] = '\0';
	if (!dir || !o) {
		set_why(why, whylen, "bundle folder or options missing");
		return ERR_INVAL;
	}
	if ((rv = check_opts(o, why, whylen)) != 0)
		goto out;
	/* runc wants an absolute rootfs that is not a symlink, and absolute
	 * bind sources: resolve everything here, once. */
	if ((rv = abs_dir(o->rootfs, "rootfs", &rootfs, why, whylen)) != 0)
		goto out;
	if (o->work_host && (rv = abs_dir(o->work_host, "work folder", &work, why, whylen)) != 0)
		goto out;
	if (o->tmp_host && (rv = abs_dir(o->tmp_host, "tmp folder", &tmp, why, whylen)) != 0)
		goto out;
	if (work && (rv = rootfs_has_dir(rootfs, "/work", why, whylen)) != 0)
		goto out;
	if (tmp && (rv = rootfs_has_dir(rootfs, "/tmp", why, whylen)) != 0)
		goto out;

	root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "ociVersion", "1.0.2");
	add_process(root, o);
	r = cJSON_AddObjectToObject(root, "root");
	cJSON_AddStringToObject(r, "path", rootfs);
	cJSON_AddBoolToObject(r, "readonly", true);
	if (o->hostname)
		cJSON_AddStringToObject(root, "hostname", o->hostname);
	add_mounts(root, work, tmp);
	add_linux(root, o);

	text = cJSON_PrintUnformatted(root);
	if (!text) {
		fprintf(stderr, "mlsched: out of memory printing config.json\n");
		abort();
	}
	path = xasprintf("%s/config.json", dir);
	if ((rv = file_replace(path, text, strlen(text))) != 0) {
		set_why(why, whylen, "writing %s: %s", path, strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	rv = 0;
out:
	cJSON_Delete(root);
	if (text)
		cJSON_free(text);
	free(path);
	free(rootfs);
	free(work);
	free(tmp);
	return rv;
}

/* ---- running children --------------------------------------------------- */

/* A growing capture buffer; bytes past max are read and dropped. */
struct capture {
	char *buf;
	size_t len, cap, max;
	bool cut;
};

static void capture_add(struct capture *c, const char *data, size_t n)
{
	if (c->len + n > c->max) {
		c->cut = true;
		n = c->max - c->len;
	}
	if (n == 0)
		return;
	if (c->len + n + 1 > c->cap) {
		size_t want = c->cap ? c->cap : 1024;

		while (want < c->len + n + 1)
			want *= 2;
		c->buf = xrealloc(c->buf, want);
		c->cap = want;
	}
	memcpy(c->buf + c->len, data, n);
	c->len += n;
	c->buf[c->len] = '\0';
}

/* Move fd to 3 or above, close-on-exec: the dup2 file actions below must
 * never overwrite a source descriptor that is still to be used. */
static int high_fd(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static int cloexec_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	p[0] = high_fd(p[0]);
	p[1] = high_fd(p[1]);
	if (p[0] < 0 || p[1] < 0) {
		if (p[0] >= 0)
			close(p[0]);
		if (p[1] >= 0)
			close(p[1]);
		return -1;
	}
	return 0;
}

/* Drain up to two pipes until both reach EOF. */
static int drain(int out_rd, struct capture *out, int err_rd, struct capture *err)
{
	struct pollfd pf[2];
	char chunk[4096];

	pf[0].fd = out_rd;
	pf[1].fd = err_rd;
	pf[0].events = pf[1].events = POLLIN;
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		int i;

		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (i = 0; i < 2; i++) {
			ssize_t n;

			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pf[i].fd, chunk, sizeof(chunk));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* Our copy is closed by the caller; poll
				 * ignores negative descriptors. */
				pf[i].fd = -1;
				continue;
			}
			capture_add(i == 0 ? out : err, chunk, (size_t)n);
		}
	}
	return 0;
}

/*
 * Spawn argv and wait for it.  stdout goes to out_fd, or into *out when
 * out_fd is -1 and out is given, else to /dev/null.  stderr goes to err_fd,
 * or into *err when err_fd is -1 and err is given, else to /dev/null.
 * 0 with the wait status in *status, or ERR_SYS (errno set).
 */
static int spawn_wait(const char *const argv[], int out_fd, struct capture *out, int err_fd,
		      struct capture *err, int *status)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int opipe[2] = {-1, -1}, epipe[2] = {-1, -1};
	int devnull = -1, out_copy = -1, err_copy = -1, rv = ERR_SYS, e, st;
	bool fa_ok = false, attr_ok = false;
	pid_t pid;

	devnull = high_fd(open("/dev/null", O_RDWR | O_CLOEXEC));
	if (devnull < 0)
		goto out;
	if (out_fd < 0 && out && cloexec_pipe(opipe) < 0)
		goto out;
	if (err_fd < 0 && err && cloexec_pipe(epipe) < 0)
		goto out;
	/* A caller's descriptor in 0..2 could be overwritten by one of the
	 * dup2 actions before its own turn: use a copy above 2. */
	if (out_fd >= 0 && out_fd <= 2) {
		if ((out_copy = fcntl(out_fd, F_DUPFD_CLOEXEC, 3)) < 0)
			goto out;
		out_fd = out_copy;
	}
	if (err_fd >= 0 && err_fd <= 2) {
		if ((err_copy = fcntl(err_fd, F_DUPFD_CLOEXEC, 3)) < 0)
			goto out;
		err_fd = err_copy;
	}
	if (out_fd < 0)
		out_fd = opipe[1] >= 0 ? opipe[1] : devnull;
	if (err_fd < 0)
		err_fd = epipe[1] >= 0 ? epipe[1] : devnull;

	if ((e = posix_spawn_file_actions_init(&fa)) != 0)
		goto fail_errno;
	fa_ok = true;
	/* Every source is >= 3 here, so the order of the actions is free. */
	if ((e = posix_spawn_file_actions_adddup2(&fa, devnull, 0)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, err_fd, 2)) != 0)
		goto fail_errno;

	attr_ok = true;
	/* The agent may block or ignore signals in its own threads; the child
	 * starts clean. */
	if ((e = proc_spawnattr(&attr, false)) != 0)
		goto fail_errno;

	e = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
	if (e != 0)
		goto fail_errno;

	/* Close our write ends so the pipes reach EOF when the child (and
	 * anything it left running with them) is done. */
	if (opipe[1] >= 0) {
		close(opipe[1]);
		opipe[1] = -1;
	}
	if (epipe[1] >= 0) {
		close(epipe[1]);
		epipe[1] = -1;
	}
	e = drain(opipe[0], out, epipe[0], err) < 0 ? errno : 0;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			goto out;
	}
	if (e != 0) {
		errno = e;
		goto out;
	}
	*status = st;
	rv = 0;
	goto out;
fail_errno:
	errno = e;
out:
	e = errno;
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	if (opipe[0] >= 0)
		close(opipe[0]);
	if (opipe[1] >= 0)
		close(opipe[1]);
	if (epipe[0] >= 0)
		close(epipe[0]);
	if (epipe[1] >= 0)
		close(epipe[1]);
	if (devnull >= 0)
		close(devnull);
	if (out_copy >= 0)
		close(out_copy);
	if (err_copy >= 0)
		close(err_copy);
	errno = e;
	return rv;
}

int proc_run(const char *const argv[], int out_fd, int *status, char *err, size_t errlen)
{
	struct capture ec = {.max = errlen ? errlen - 1 : 0};
	int rv;

	if (err && errlen)
		err[0] = '\0';
	if (!argv || !argv[0] || !status) {
		errno = EINVAL;
		return ERR_SYS;
	}
	rv = spawn_wait(argv, out_fd, NULL, -1, &ec, status);
	if (rv == 0 && err && errlen && ec.buf)
		memcpy(err, ec.buf, ec.len + 1);
	free(ec.buf);
	return rv;
}

/* ---- runc ----------------------------------------------------------------- */

/*
 * From runc's --log-format json output, the msg of the last error (or fatal)
 * line; failing that the last non-empty line as it is.  Empty when there is
 * nothing.
 */
static void runc_error_text(const char *text, char *msg, size_t msglen)
{
	const char *line = text, *last = NULL;
	size_t lastlen = 0;
	bool found = false;

	msg[0] = '\0';
	while (line && *line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		cJSON *j = cJSON_ParseWithLength(line, len);
		const cJSON *lvl = cJSON_GetObjectItemCaseSensitive(j, "level");
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "msg");

		if (cJSON_IsString(lvl) && cJSON_IsString(m) &&
		    (strcmp(lvl->valuestring, "error") == 0 ||
		     strcmp(lvl->valuestring, "fatal") == 0)) {
			snprintf(msg, msglen, "%s", m->valuestring);
			found = true;
		} else if (!j && len > 0) {
			last = line;
			lastlen = len;
		}
		cJSON_Delete(j);
		line = nl ? nl + 1 : NULL;
	}
	if (!found && last)
		snprintf(msg, msglen, "%.*s", (int)lastlen, last);
}

static void status_text(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "wait status %#x", st);
}

/* runc reports an unknown container as "container does not exist". */
static int runc_failure(const char *msg)
{
	return strstr(msg, "does not exist") ? ERR_NOENT : ERR_RUNC;
}

/* Up to this many arguments after the global options. */
#define RUNC_ARGS_MAX 12

/* argv = bin [--root R] --log-format json <sub...> */
static size_t runc_argv(const struct runc *r, const char **argv, const char *log)
{
	size_t n = 0;

	argv[n++] = r->bin ? r->bin : "runc";
	if (r->root) {
		argv[n++] = "--root";
		argv[n++] = r->root;
	}
	if (log) {
		argv[n++] = "--log";
		argv[n++] = log;
	}
	argv[n++] = "--log-format";
	argv[n++] = "json";
	return n;
}

/*
 * Run one runc subcommand (sub is NULL-terminated).  stdout is captured into
 * out when given.  0, ERR_NOENT (unknown container), ERR_RUNC or ERR_SYS with
 * "runc <sub0> <id>: <runc's message>" in why.
 */
static int runc_call(const struct runc *r, const char *const sub[], const char *id,
		     struct capture *out, char *why, size_t whylen)
{
	const char *argv[8 + RUNC_ARGS_MAX];
	struct capture ec = {.max = 64 * 1024};
	char msg[RUNC_WHY_LEN];
	size_t n = runc_argv(r, argv, NULL), i;
	int st, rv;

	for (i = 0; sub[i] && i < RUNC_ARGS_MAX; i++)
		argv[n++] = sub[i];
	argv[n] = NULL;
	rv = spawn_wait(argv, -1, out, -1, &ec, &st);
	if (rv != 0) {
		set_why(why, whylen, "runc %s %s: %s: %s", sub[0], id ? id : "", argv[0],
			strerror(errno));
		goto out;
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		rv = 0;
		goto out;
	}
	runc_error_text(ec.buf ? ec.buf : "", msg, sizeof(msg));
	if (!msg[0])
		status_text(st, msg, sizeof(msg));
	set_why(why, whylen, "runc %s %s: %s", sub[0], id ? id : "", msg);
	rv = runc_failure(msg);
out:
	free(ec.buf);
	return rv;
}

bool runc_id_ok(const char *id)
{
	size_t n;

	if (!id || !id[0] || id[0] == '.')
		return false;
	for (n = 0; id[n]; n++) {
		unsigned char c = (unsigned char)id[n];

		if (n >= RUNC_ID_MAX - 1)
			return false;
		if (!isascii(c) || !(isalnum(c) || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int check_id(const char *id, char *why, size_t whylen)
{
	if (why && whylen)
		why[0] = '\0';
	if (!runc_id_ok(id)) {
		set_why(why, whylen, "bad container id \"%.*s\"", RUNC_ID_MAX, id ? id : "");
		return ERR_INVAL;
	}
	return 0;
}

/* A positive pid written by runc --pid-file. */
static int read_pid(const char *path, pid_t *pid)
{
	char *text = NULL, *end;
	long v;
	int rv;

	if ((rv = file_read(path, PID_FILE_MAX, &text, NULL)) != 0)
		return rv;
	errno = 0;
	v = strtol(text, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno || end == text || *end || v <= 0 || v > INT_MAX)
		rv = ERR_INVAL;
	else
		*pid = (pid_t)v;
	free(text);
	return rv;
}

/*
 * In detached, non-terminal mode runc hands its own stdout and stderr to the
 * container, so both must be log_fd.  runc's error message then lands in the
 * task log too (useful to the user), and we read it for why from the JSON log
 * file that --log writes in the bundle.
 */
int runc_run(const struct runc *r, const char *id, const char *bundle, int log_fd, pid_t *pid,
	     char *why, size_t whylen)
{
	const char *argv[8 + RUNC_ARGS_MAX];
	char *pidf = NULL, *logf = NULL, *logtext = NULL;
	char msg[RUNC_WHY_LEN];
	size_t n;
	int st, rv;

	if ((rv = check_id(id, why, whylen)) != 0)
		return rv;
	if (!bundle || !pid) {
		set_why(why, whylen, "runc run %s: no bundle folder", id);
		return ERR_INVAL;
	}
	pidf = xasprintf("%s/pid", bundle);
	logf = xasprintf("%s/runc.log", bundle);
	/* Stale files from an earlier try would give a wrong pid or message. */
	if ((unlink(pidf) < 0 && errno != ENOENT) || (unlink(logf) < 0 && errno != ENOENT)) {
		set_why(why, whylen, "runc run %s: cleaning %s: %s", id, bundle, strerror(errno));
		rv = ERR_IO;
		goto out;
	}

	n = runc_argv(r, argv, logf);
	argv[n++] = "run";
	argv[n++] = "--detach";
	argv[n++] = "--pid-file";
	argv[n++] = pidf;
	argv[n++] = "--bundle";
	argv[n++] = bundle;
	argv[n++] = id;
	argv[n] = NULL;
	/* With no log_fd the container's output is dropped (/dev/null). */
	rv = spawn_wait(argv, log_fd, NULL, log_fd, NULL, &st);
	if (rv != 0) {
		set_why(why, whylen, "runc run %s: %s: %s", id, argv[0], strerror(errno));
		goto out;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		msg[0] = '\0';
		if (file_read(logf, RUNC_LOG_MAX, &logtext, NULL) == 0)
			runc_error_text(logtext, msg, sizeof(msg));
		if (!msg[0])
			status_text(st, msg, sizeof(msg));
		set_why(why, whylen, "runc run %s: %s", id, msg);
		rv = ERR_RUNC;
		goto out;
	}
	if (read_pid(pidf, pid) != 0) {
		set_why(why, whylen, "runc run %s: no valid pid in %s", id, pidf);
		rv = ERR_RUNC;
		goto out;
	}
	rv = 0;
out:
	free(logtext);
	free(pidf);
	free(logf);
	return rv;
}

int runc_kill(const struct runc *r, const char *id, int sig, char *why, size_t whylen)
{
	char signum[16];
	const char *sub[] = {"kill", id, signum, NULL};
	int rv;

	if ((rv = check_id(id, why, whylen)) != 0)
		return rv;
	if (sig <= 0 || sig >= NSIG) {
		set_why(why, whylen, "runc kill %s: bad signal %d", id, sig);
		return ERR_INVAL;
	}
	snprintf(signum, sizeof(signum), "%d", sig);
	return runc_call(r, sub, id, NULL, why, whylen);
}

int runc_delete(const struct runc *r, const char *id, bool force, char *why, size_t whylen)
{
	const char *sub[] = {"delete", force ? "--force" : id, force ? id : NULL, NULL};
	int rv;

	if ((rv = check_id(id, why, whylen)) != 0)
		return rv;
	/* "delete --force" succeeds quietly for a container runc does not
	 * know; look for its state folder (<root>/<id>) so that the caller
	 * still learns about it. */
	if (force && r->root) {
		char *state = xasprintf("%s/%s", r->root, id);
		struct stat st;
		bool gone = lstat(state, &st) < 0 && errno == ENOENT;

		free(state);
		if (gone) {
			set_why(why, whylen, "runc delete %s: container does not exist", id);
			return ERR_NOENT;
		}
	}
	return runc_call(r, sub, id, NULL, why, whylen);
}

int runc_state(const struct runc *r, const char *id, char *status, size_t len, pid_t *pid,
	       char *why, size_t whylen)
{
	const char *sub[] = {"state", id, NULL};
	struct capture out = {.max = 64 * 1024};
	cJSON *j = NULL;
	const cJSON *s, *p;
	int rv;

	if ((rv = check_id(id, why, whylen)) != 0)
		return rv;
	if ((rv = runc_call(r, sub, id, &out, why, whylen)) != 0)
		goto out;
	j = out.buf ? cJSON_ParseWithLength(out.buf, out.len) : NULL;
	s = cJSON_GetObjectItemCaseSensitive(j, "status");
	p = cJSON_GetObjectItemCaseSensitive(j, "pid");
	if (!cJSON_IsString(s) || !cJSON_IsNumber(p) || p->valuedouble < 0 ||
	    p->valuedouble > INT_MAX) {
		set_why(why, whylen, "runc state %s: unexpected output", id);
		rv = ERR_RUNC;
		goto out;
	}
	if (status && len)
		snprintf(status, len, "%s", s->valuestring);
	if (pid)
		*pid = (pid_t)p->valuedouble;
	rv = 0;
out:
	cJSON_Delete(j);
	free(out.buf);
	return rv;
}

void runc_ids_free(char **ids, size_t n)
{
	size_t i;

	if (!ids)
		return;
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

int runc_list(const struct runc *r, char ***ids, size_t *n, char *why, size_t whylen)
{
	const char *sub[] = {"list", "-q", NULL};
	struct capture out = {.max = CAPTURE_MAX};
	char **v = NULL, *line, *save = NULL;
	size_t cnt = 0, cap = 0;
	int rv;

	*ids = NULL;
	*n = 0;
	if (why && whylen)
		why[0] = '\0';
	if ((rv = runc_call(r, sub, NULL, &out, why, whylen)) != 0)
		goto out;
	if (out.cut) {
		set_why(why, whylen, "runc list: output over %u bytes", CAPTURE_MAX);
		rv = ERR_TOOBIG;
		goto out;
	}
	for (line = out.buf ? strtok_r(out.buf, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (!line[0])
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[cnt++] = xstrdup(line);
	}
	*ids = v;
	*n = cnt;
	v = NULL;
	rv = 0;
out:
	runc_ids_free(v, cnt);
	free(out.buf);
	return rv;
}
