/*
 * bundle-test.c - config.json from bundle_write, proc_run, and (as root, with
 * runc installed) real containers through runc_run / state / kill / delete.
 *
 * Every test runs in its own temporary folder, with its own runc --root, and
 * the teardown kills and deletes whatever containers are left there and
 * removes the folder, so a failed assertion leaves nothing behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "runc.h"
#include "sysinfo.h"
#include "util.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

#define GIB (1024ull * 1024 * 1024)

/* Shared by the whole run: one busybox rootfs, built once if we can. */
static struct {
	char base[64];	       /* mkdtemp folder holding everything */
	char rootfs[128];      /* busybox rootfs, when real_ok */
	bool real_ok;	       /* root, runc and busybox-static present */
	const char *why_not;   /* reason real containers are skipped */
	unsigned seq;	       /* per-test folder numbers */
} g;

/* One test's folders. */
static struct {
	char dir[128];
	char bundle[192];
	char work[192];
	char tmp[192];
	char rroot[192]; /* runc --root */
	char cgroup[128];     /* cgroupsPath prefix for this test */
	struct runc r;
} t;

/* ---- fixtures --------------------------------------------------------- */

static void mkdir_or_die(const char *p)
{
	if (mkdir_p(p, 0755) != 0) {
		fprintf(stderr, "mkdir %s: %s\n", p, strerror(errno));
		abort();
	}
}

static bool have_cmd(const char *cmd)
{
	const char *argv[] = {"sh", "-c", NULL, NULL};
	char *script = xasprintf("command -v %s", cmd);
	int st = 0, rv;

	argv[2] = script;
	rv = proc_run(argv, -1, &st, NULL, 0);
	free(script);
	return rv == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int group_setup(void **state)
{
	const char *argv[] = {"sh", SRCDIR "/contrib/mkrootfs.sh", g.rootfs, NULL};
	char err[512];
	int st = 0;

	snprintf(g.base, sizeof(g.base), "/tmp/bundle-test.XXXXXX");
	if (!mkdtemp(g.base))
		return -1;
	snprintf(g.rootfs, sizeof(g.rootfs), "%s/rootfs", g.base);

	g.real_ok = false;
	if (geteuid() != 0) {
		g.why_not = "not root";
		return 0;
	}
	if (!have_cmd("runc")) {
		g.why_not = "runc not installed";
		return 0;
	}
	if (access("/bin/busybox", X_OK) != 0) {
		g.why_not = "busybox-static not installed";
		return 0;
	}
	if (proc_run(argv, -1, &st, err, sizeof(err)) != 0 || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0) {
		fprintf(stderr, "mkrootfs.sh failed: %s\n", err);
		return -1;
	}
	/* Containers' exits must reach our waitpid(), as in the agent. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		return -1;
	g.real_ok = true;
	return 0;
}

static int group_teardown(void **state)
{
	return rm_rf(g.base) == 0 ? 0 : -1;
}

static int test_setup(void **state)
{
	memset(&t, 0, sizeof(t));
	snprintf(t.dir, sizeof(t.dir), "%s/t%u", g.base, ++g.seq);
	snprintf(t.bundle, sizeof(t.bundle), "%s/bundle", t.dir);
	snprintf(t.work, sizeof(t.work), "%s/work", t.dir);
	snprintf(t.tmp, sizeof(t.tmp), "%s/tmp", t.dir);
	snprintf(t.rroot, sizeof(t.rroot), "%s/runc", t.dir);
	snprintf(t.cgroup, sizeof(t.cgroup), "/mlsched-test-%ld", (long)getpid());
	mkdir_or_die(t.bundle);
	mkdir_or_die(t.work);
	mkdir_or_die(t.tmp);
	mkdir_or_die(t.rroot);
	t.r.bin = "runc";
	t.r.root = t.rroot;
	return 0;
}

/* Remove the cgroup parent folders our containers' cgroups were made in. */
static void rmdir_cgroup_parents(void)
{
	char *pat = xasprintf("/sys/fs/cgroup/*%s", t.cgroup);
	char *v2 = xasprintf("/sys/fs/cgroup%s", t.cgroup);
	glob_t gl;
	size_t i;

	if (glob(pat, GLOB_NOSORT, NULL, &gl) == 0) {
		for (i = 0; i < gl.gl_pathc; i++)
			rmdir(gl.gl_pathv[i]);
		globfree(&gl);
	}
	rmdir(v2);
	free(pat);
	free(v2);
}

static int test_teardown(void **state)
{
	char why[RUNC_WHY_LEN];
	char **ids = NULL;
	size_t n = 0, i;
	int st;

	if (g.real_ok && runc_list(&t.r, &ids, &n, why, sizeof(why)) == 0) {
		for (i = 0; i < n; i++) {
			runc_kill(&t.r, ids[i], SIGKILL, why, sizeof(why));
			runc_delete(&t.r, ids[i], true, why, sizeof(why));
		}
		runc_ids_free(ids, n);
	}
	/* Reap whatever container processes were handed to us. */
	while (waitpid(-1, &st, WNOHANG) > 0)
		;
	if (g.real_ok)
		rmdir_cgroup_parents();
	return rm_rf(t.dir) == 0 ? 0 : -1;
}

/* ---- helpers ---------------------------------------------------------------- */

/* A minimal rootfs for config-only tests: bundle_write wants /work and /tmp. */
static void fake_rootfs(char *out, size_t len)
{
	char p[PATH_MAX + 16];

	snprintf(out, len, "%s/fakeroot", t.dir);
	snprintf(p, sizeof(p), "%s/work", out);
	mkdir_or_die(p);
	snprintf(p, sizeof(p), "%s/tmp", out);
	mkdir_or_die(p);
}

static cJSON *read_config(void)
{
	char path[PATH_MAX + 16], *text = NULL;
	size_t len;
	cJSON *j;

	snprintf(path, sizeof(path), "%s/config.json", t.bundle);
	assert_int_equal(file_read(path, 1 << 20, &text, &len), 0);
	j = cJSON_Parse(text);
	free(text);
	assert_non_null(j);
	return j;
}

static const cJSON *get(const cJSON *j, const char *path)
{
	char buf[256], *save = NULL, *k;
	const cJSON *cur = j;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k && cur; k = strtok_r(NULL, ".", &save))
		cur = cJSON_GetObjectItemCaseSensitive(cur, k);
	return cur;
}

static bool array_has_string(const cJSON *a, const char *s)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, a)
		if (cJSON_IsString(e) && strcmp(e->valuestring, s) == 0)
			return true;
	return false;
}

static size_t count_prefix(const cJSON *a, const char *prefix)
{
	const cJSON *e;
	size_t n = 0;

	cJSON_ArrayForEach(e, a)
		if (cJSON_IsString(e) && strncmp(e->valuestring, prefix, strlen(prefix)) == 0)
			n++;
	return n;
}

static const cJSON *find_mount(const cJSON *j, const char *dest)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, get(j, "mounts"))
	{
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "destination");

		if (cJSON_IsString(d) && strcmp(d->valuestring, dest) == 0)
			return m;
	}
	return NULL;
}

static void assert_bind(const cJSON *j, const char *dest, const char *host)
{
	const cJSON *m = find_mount(j, dest);
	char *real = realpath(host, NULL);

	assert_non_null(m);
	assert_non_null(real);
	assert_string_equal(get(m, "type")->valuestring, "bind");
	assert_string_equal(get(m, "source")->valuestring, real);
	assert_true(array_has_string(get(m, "options"), "rbind"));
	assert_true(array_has_string(get(m, "options"), "rw"));
	free(real);
}

static double num(const cJSON *j, const char *path)
{
	const cJSON *v = get(j, path);

	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", path);
	return v->valuedouble;
}

/* Wait up to ms for pid; fails the test on timeout (teardown then kills it). */
static int wait_pid(pid_t pid, unsigned ms)
{
	int st;

	for (unsigned waited = 0;; waited += 10) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return st;
		if (w < 0 && errno != EINTR)
			fail_msg("waitpid %ld: %s", (long)pid, strerror(errno));
		if (waited >= ms)
			fail_msg("pid %ld still running after %u ms", (long)pid, ms);
		usleep(10000);
	}
}

/* ---- bundle_write ------------------------------------------------------------ */

static void test_config_fields(void **state)
{
	const char *args[] = {"python3", "train.py", "--epochs=3"};
	const char *env[] = {"CUDA_VISIBLE_DEVICES=1,3", "RANK=0"};
	const uint32_t gpus[] = {1, 3};
	char rootfs[PATH_MAX], why[RUNC_WHY_LEN], *real_rootfs;
	struct bundle_opts o = {
		.args = args, .nargs = 3, .env = env, .nenv = 2,
		.work_host = t.work, .tmp_host = t.tmp, .hostname = "job-3-task-0",
		.cgroup_path = "/mlsched/job-3-task-0", .mem_limit = 8 * GIB,
		.cpu_milli = 1500, .gpus = gpus, .ngpus = 2,
	};
	const cJSON *a, *e;
	bool saw[4] = {false};
	cJSON *j;

	fake_rootfs(rootfs, sizeof(rootfs));
	o.rootfs = rootfs;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), 0);
	j = read_config();

	assert_string_equal(get(j, "ociVersion")->valuestring, "1.0.2");
	a = get(j, "process.args");
	assert_int_equal(cJSON_GetArraySize(a), 3);
	assert_string_equal(cJSON_GetArrayItem(a, 0)->valuestring, "python3");
	assert_string_equal(cJSON_GetArrayItem(a, 2)->valuestring, "--epochs=3");
	assert_true(cJSON_IsFalse(get(j, "process.terminal")));
	assert_int_equal(num(j, "process.user.uid"), 0);
	assert_true(cJSON_IsTrue(get(j, "process.noNewPrivileges")));
	assert_string_equal(get(j, "process.cwd")->valuestring, "/work");

	a = get(j, "process.env");
	assert_true(array_has_string(
		a, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
	assert_true(array_has_string(a, "HOME=/root"));
	assert_true(array_has_string(a, "CUDA_VISIBLE_DEVICES=1,3"));
	assert_true(array_has_string(a, "RANK=0"));
	assert_int_equal(cJSON_GetArraySize(a), 4);

	assert_true(array_has_string(get(j, "process.capabilities.bounding"), "CAP_KILL"));
	assert_true(array_has_string(get(j, "process.capabilities.ambient"),
				     "CAP_NET_BIND_SERVICE"));
	assert_false(array_has_string(get(j, "process.capabilities.bounding"), "CAP_SYS_ADMIN"));
	e = cJSON_GetArrayItem(get(j, "process.rlimits"), 0);
	assert_string_equal(get(e, "type")->valuestring, "RLIMIT_NOFILE");
	assert_int_equal(num(e, "hard"), 1024);

	real_rootfs = realpath(rootfs, NULL);
	assert_string_equal(get(j, "root.path")->valuestring, real_rootfs);
	free(real_rootfs);
	assert_true(cJSON_IsTrue(get(j, "root.readonly")));
	assert_string_equal(get(j, "hostname")->valuestring, "job-3-task-0");

	/* Host network: pid, ipc, uts and mount namespaces only. */
	cJSON_ArrayForEach(e, get(j, "linux.namespaces"))
	{
		const char *type = get(e, "type")->valuestring;

		assert_string_not_equal(type, "network");
		saw[0] |= strcmp(type, "pid") == 0;
		saw[1] |= strcmp(type, "ipc") == 0;
		saw[2] |= strcmp(type, "uts") == 0;
		saw[3] |= strcmp(type, "mount") == 0;
	}
	assert_true(saw[0] && saw[1] && saw[2] && saw[3]);

	assert_string_equal(get(j, "linux.cgroupsPath")->valuestring, "/mlsched/job-3-task-0");
	assert_true(num(j, "linux.resources.memory.limit") == (double)(8 * GIB));
	assert_int_equal(num(j, "linux.resources.cpu.quota"), 150000);
	assert_int_equal(num(j, "linux.resources.cpu.period"), 100000);
	/* Deny-all comes first, then the allowed defaults. */
	e = cJSON_GetArrayItem(get(j, "linux.resources.devices"), 0);
	assert_true(cJSON_IsFalse(get(e, "allow")));
	assert_string_equal(get(e, "access")->valuestring, "rwm");
	assert_true(cJSON_GetArraySize(get(j, "linux.resources.devices")) > 1);
	assert_true(array_has_string(get(j, "linux.maskedPaths"), "/proc/kcore"));
	assert_true(array_has_string(get(j, "linux.readonlyPaths"), "/proc/sys"));
	/* gpu_devices is off: no device nodes at all. */
	assert_null(get(j, "linux.devices"));

	assert_bind(j, "/work", t.work);
	assert_bind(j, "/tmp", t.tmp);
	assert_string_equal(get(find_mount(j, "/proc"), "type")->valuestring, "proc");
	assert_true(array_has_string(get(find_mount(j, "/sys"), "options"), "ro"));
	assert_non_null(find_mount(j, "/dev/pts"));
	assert_non_null(find_mount(j, "/dev/shm"));
	cJSON_Delete(j);
}

/* Given PATH/HOME win; no limits means no resource entries; cwd is kept. */
static void test_config_overrides(void **state)
{
	const char *args[] = {"true"};
	const char *env[] = {"PATH=/opt/bin", "HOME=/work"};
	char rootfs[PATH_MAX], why[RUNC_WHY_LEN];
	struct bundle_opts o = {.args = args, .nargs = 1, .env = env, .nenv = 2, .cwd = "/tmp"};
	cJSON *j;

	fake_rootfs(rootfs, sizeof(rootfs));
	o.rootfs = rootfs;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), 0);
	j = read_config();
	assert_int_equal(count_prefix(get(j, "process.env"), "PATH="), 1);
	assert_int_equal(count_prefix(get(j, "process.env"), "HOME="), 1);
	assert_true(array_has_string(get(j, "process.env"), "PATH=/opt/bin"));
	assert_string_equal(get(j, "process.cwd")->valuestring, "/tmp");
	assert_null(get(j, "linux.resources.memory"));
	assert_null(get(j, "linux.resources.cpu"));
	assert_null(get(j, "linux.cgroupsPath"));
	/* No host folders given: no binds. */
	assert_null(find_mount(j, "/work"));
	assert_null(find_mount(j, "/tmp"));
	cJSON_Delete(j);
}

/* With gpu_devices, exactly the NVIDIA nodes that exist on this host appear. */
static void test_config_gpu_devices(void **state)
{
	const char *args[] = {"nvidia-smi"};
	const uint32_t gpus[] = {0, 2, 2};
	const char *paths[] = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools",
			       "/dev/nvidia0", "/dev/nvidia2"};
	char rootfs[PATH_MAX], why[RUNC_WHY_LEN];
	struct bundle_opts o = {.args = args, .nargs = 1, .gpus = gpus, .ngpus = 3,
				.gpu_devices = true};
	const cJSON *devs, *d;
	size_t i, want = 0;
	cJSON *j;

	fake_rootfs(rootfs, sizeof(rootfs));
	o.rootfs = rootfs;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), 0);
	j = read_config();
	devs = get(j, "linux.devices");
	assert_true(cJSON_IsArray(devs));
	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct stat st;
		bool exists = stat(paths[i], &st) == 0 && S_ISCHR(st.st_mode);
		bool found = false;

		cJSON_ArrayForEach(d, devs)
			found |= strcmp(get(d, "path")->valuestring, paths[i]) == 0;
		if (exists != found)
			fail_msg("%s: exists on host %d, in config %d", paths[i], exists, found);
		want += exists;
	}
	/* The repeated index 2 gives one node, not two. */
	assert_int_equal(cJSON_GetArraySize(devs), want);
	{
		char *txt = cJSON_PrintUnformatted(devs);

		assert_null(strstr(txt, "nvidia1"));
		cJSON_free(txt);
	}
	cJSON_Delete(j);
}

static void test_config_bad(void **state)
{
	const char *args[] = {"true"};
	const char *bad_env[] = {"NOEQUALS"};
	char rootfs[PATH_MAX], why[RUNC_WHY_LEN], nowork[PATH_MAX + 16];
	struct bundle_opts o = {.args = args, .nargs = 1};

	fake_rootfs(rootfs, sizeof(rootfs));

	o.rootfs = "/nonexistent/rootfs";
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "/nonexistent/rootfs"));

	/* A rootfs without /work cannot take the /work bind read-only. */
	snprintf(nowork, sizeof(nowork), "%s/bare", t.dir);
	mkdir_or_die(nowork);
	o.rootfs = nowork;
	o.work_host = t.work;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "/work"));
	o.work_host = NULL;

	o.rootfs = rootfs;
	o.nargs = 0;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	o.nargs = 1;
	o.env = bad_env;
	o.nenv = 1;
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "KEY=VALUE"));
	o.env = NULL;
	o.nenv = 0;
	o.cwd = "relative";
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	o.cwd = NULL;
	o.work_host = "/nonexistent/work";
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "/nonexistent/work"));
	o.work_host = NULL;

	/* The bundle folder itself must exist. */
	assert_int_equal(bundle_write("/nonexistent/bundle", &o, why, sizeof(why)), ERR_IO);
	assert_non_null(strstr(why, "config.json"));
	/* Nothing was written by the failed calls. */
	{
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/config.json", t.bundle);
		assert_int_equal(access(p, F_OK), -1);
	}
	assert_int_equal(bundle_write(t.bundle, &o, why, sizeof(why)), 0);
}

static void test_id_ok(void **state)
{
	char longid[RUNC_ID_MAX + 1];

	assert_true(runc_id_ok("job-3.task_0"));
	assert_true(runc_id_ok("a"));
	assert_false(runc_id_ok(NULL));
	assert_false(runc_id_ok(""));
	assert_false(runc_id_ok(".hidden"));
	assert_false(runc_id_ok("a/b"));
	assert_false(runc_id_ok("a b"));
	assert_false(runc_id_ok("a\nb"));
	assert_false(runc_id_ok("caf\xc3\xa9"));
	memset(longid, 'x', RUNC_ID_MAX - 1);
	longid[RUNC_ID_MAX - 1] = '\0';
	assert_true(runc_id_ok(longid));
	longid[RUNC_ID_MAX - 1] = 'x';
	longid[RUNC_ID_MAX] = '\0';
	assert_false(runc_id_ok(longid));
}

/* ---- proc_run ---------------------------------------------------------------- */

static void test_proc_run(void **state)
{
	const char *argv[] = {"sh", "-c",
			      "echo hello; echo oops >&2; read x; echo \"[$x]\"; exit 3", NULL};
	char err[64], path[PATH_MAX + 16], *text = NULL;
	int fd, st = -1;

	snprintf(path, sizeof(path), "%s/out", t.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(proc_run(argv, fd, &st, err, sizeof(err)), 0);
	close(fd);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 3);
	assert_string_equal(err, "oops\n");
	/* stdin is /dev/null: read gets nothing. */
	assert_int_equal(file_read(path, 4096, &text, NULL), 0);
	assert_string_equal(text, "hello\n[]\n");
	free(text);

	/* A short buffer is cut, not overrun; stdout -1 goes nowhere. */
	assert_int_equal(proc_run(argv, -1, &st, err, 3), 0);
	assert_string_equal(err, "oo");
}

/* Much more stderr than the buffer, and than a pipe holds: no deadlock. */
static void test_proc_run_big(void **state)
{
	const char *argv[] = {"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; kill -9 $$",
			      NULL};
	char err[16];
	int st = -1;

	assert_int_equal(proc_run(argv, -1, &st, err, sizeof(err)), 0);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);
	assert_string_equal(err, "eeeeeeeeeeeeeee");
}

static void test_proc_run_missing(void **state)
{
	const char *argv[] = {"/nonexistent/binary", NULL};
	char err[64];
	int st = -1, rv;

	rv = proc_run(argv, -1, &st, err, sizeof(err));
	/* glibc reports the failed exec from posix_spawnp itself.  Under
	 * valgrind, which runs the CLONE_VFORK child as a plain fork, the error
	 * cannot travel back and the child exits 127 instead. */
	if (rv == 0) {
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 127);
		return;
	}
	assert_int_equal(rv, ERR_SYS);
	assert_int_equal(errno, ENOENT);
}

/* ---- sysinfo ---------------------------------------------------------------- */

static void test_sysinfo(void **state)
{
	struct cpu_sampler s = {0, 0};
	uint64_t total = sysinfo_mem_total(), used = sysinfo_mem_used(), cpu = 0, mem = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	volatile unsigned long spin = 0;
	double pct;

	assert_int_equal(sysinfo_cpu_milli(), (uint32_t)ncpu * 1000);
	assert_true(total > 0);
	assert_true(used > 0 && used <= total);
	assert_true(sysinfo_cpu_pct(&s) == 0); /* first sample */
	assert_true(s.total > 0);
	while (spin < 20000000)
		spin++;
	pct = sysinfo_cpu_pct(&s);
	assert_true(pct >= 0 && pct <= 100);

	assert_int_equal(cgroup_usage("/mlsched-no-such-cgroup/x", &cpu, &mem), ERR_NOENT);
	assert_int_equal(cgroup_usage("/../etc", &cpu, &mem), ERR_INVAL);
	assert_int_equal(cgroup_usage("/a/..", &cpu, &mem), ERR_INVAL);
	assert_int_equal(cgroup_usage("relative", &cpu, &mem), ERR_INVAL);
	/* On cgroup v1 the root cgroup has both files and has used CPU and
	 * memory (v2's root has no memory.current). */
	if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) != 0) {
		assert_int_equal(cgroup_usage("/", &cpu, &mem), 0);
		assert_true(cpu > 0 && mem > 0);
	}
}

/* ---- real containers ----------------------------------------------------------- */

static void real_bundle(const char *const *args, size_t nargs, const char *id)
{
	char why[RUNC_WHY_LEN], cg[256];
	struct bundle_opts o = {.rootfs = g.rootfs, .args = args, .nargs = nargs,
				.work_host = t.work, .tmp_host = t.tmp, .hostname = id,
				.mem_limit = 256 << 20, .cpu_milli = 500};

	snprintf(cg, sizeof(cg), "%s/%s", t.cgroup, id);
	o.cgroup_path = cg;
	if (bundle_write(t.bundle, &o, why, sizeof(why)) != 0)
		fail_msg("bundle_write: %s", why);
}

static int open_log(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/task.log", t.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	return fd;
}

static void assert_no_containers(void)
{
	char why[RUNC_WHY_LEN], **ids = NULL;
	size_t n = 99;

	if (runc_list(&t.r, &ids, &n, why, sizeof(why)) != 0)
		fail_msg("runc_list: %s", why);
	if (n != 0)
		fail_msg("%zu containers left, first %s", n, ids[0]);
	runc_ids_free(ids, n);
}

static void test_real_exit_code(void **state)
{
	const char *args[] = {"sh", "-c", "echo out; echo err >&2; echo w >/work/f; exit 7"};
	char why[RUNC_WHY_LEN], logp[PATH_MAX + 16], status[32], *text = NULL;
	char **ids = NULL;
	size_t n = 0;
	pid_t pid = 0, spid = -1;
	int fd, st;

	if (!g.real_ok)
		skip();
	real_bundle(args, 3, "exit7");
	fd = open_log(logp, sizeof(logp));
	if (runc_run(&t.r, "exit7", t.bundle, fd, &pid, why, sizeof(why)) != 0)
		fail_msg("runc_run: %s", why);
	close(fd);
	assert_true(pid > 0);

	assert_int_equal(runc_list(&t.r, &ids, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], "exit7");
	runc_ids_free(ids, n);

	st = wait_pid(pid, 10000);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 7);

	assert_int_equal(file_read(logp, 4096, &text, NULL), 0);
	assert_non_null(strstr(text, "out\n"));
	assert_non_null(strstr(text, "err\n"));
	free(text);
	/* /work is the host folder, writable. */
	{
		char p[PATH_MAX + 16];

		snprintf(p, sizeof(p), "%s/f", t.work);
		assert_int_equal(file_read(p, 64, &text, NULL), 0);
		assert_string_equal(text, "w\n");
		free(text);
	}

	assert_int_equal(runc_state(&t.r, "exit7", status, sizeof(status), &spid, why, sizeof(why)),
			 0);
	assert_string_equal(status, "stopped");
	assert_int_equal(runc_delete(&t.r, "exit7", false, why, sizeof(why)), 0);
	assert_no_containers();
	assert_int_equal(runc_delete(&t.r, "exit7", false, why, sizeof(why)), ERR_NOENT);
}

static void test_real_kill(void **state)
{
	const char *args[] = {"sleep", "1000"};
	char why[RUNC_WHY_LEN], logp[PATH_MAX + 16], status[32], cg[256];
	uint64_t cpu_ns = 0, mem = 0;
	pid_t pid = 0, spid = 0;
	int fd, st;

	if (!g.real_ok)
		skip();
	real_bundle(args, 2, "sleeper");
	fd = open_log(logp, sizeof(logp));
	if (runc_run(&t.r, "sleeper", t.bundle, fd, &pid, why, sizeof(why)) != 0)
		fail_msg("runc_run: %s", why);
	close(fd);

	assert_int_equal(runc_state(&t.r, "sleeper", status, sizeof(status), &spid, why,
				    sizeof(why)),
			 0);
	assert_string_equal(status, "running");
	assert_int_equal(spid, pid);

	snprintf(cg, sizeof(cg), "%s/sleeper", t.cgroup);
	assert_int_equal(cgroup_usage(cg, &cpu_ns, &mem), 0);
	assert_true(mem > 0);

	assert_int_equal(runc_kill(&t.r, "sleeper", SIGKILL, why, sizeof(why)), 0);
	st = wait_pid(pid, 10000);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGKILL);

	assert_int_equal(runc_delete(&t.r, "sleeper", false, why, sizeof(why)), 0);
	assert_int_equal(cgroup_usage(cg, &cpu_ns, &mem), ERR_NOENT);
	assert_no_containers();
}

static void test_real_unknown(void **state)
{
	char why[RUNC_WHY_LEN], status[32] = "";
	pid_t pid = 0;

	if (!g.real_ok)
		skip();
	assert_int_equal(runc_state(&t.r, "nope", status, sizeof(status), &pid, why, sizeof(why)),
			 ERR_NOENT);
	assert_non_null(strstr(why, "does not exist"));
	assert_int_equal(runc_kill(&t.r, "nope", SIGTERM, why, sizeof(why)), ERR_NOENT);
	assert_int_equal(runc_delete(&t.r, "nope", true, why, sizeof(why)), ERR_NOENT);
	assert_int_equal(runc_state(&t.r, "../x", status, sizeof(status), &pid, why, sizeof(why)),
			 ERR_INVAL);
	assert_no_containers();
}

/* A failing start returns runc's own message, and leaves no container. */
static void test_real_run_fails(void **state)
{
	const char *args[] = {"/no/such/program"};
	char why[RUNC_WHY_LEN], logp[PATH_MAX + 16];
	pid_t pid = 0;
	int fd;

	if (!g.real_ok)
		skip();
	real_bundle(args, 1, "broken");
	fd = open_log(logp, sizeof(logp));
	assert_int_equal(runc_run(&t.r, "broken", t.bundle, fd, &pid, why, sizeof(why)), ERR_RUNC);
	close(fd);
	assert_non_null(strstr(why, "/no/such/program"));
	assert_no_containers();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)
		T(test_config_fields),	 T(test_config_overrides), T(test_config_gpu_devices),
		T(test_config_bad),	 T(test_id_ok),		   T(test_proc_run),
		T(test_proc_run_big),	 T(test_proc_run_missing), T(test_sysinfo),
		T(test_real_exit_code),	 T(test_real_kill),	   T(test_real_unknown),
		T(test_real_run_fails),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
