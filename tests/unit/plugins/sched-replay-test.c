/*
 * sched-replay-test.c - `mlbench replay` reads the public trace's pod lists
 * whatever optional columns they carry: a list without gpu_spec, qos,
 * creation_time and deletion_time (like openb_pod_list_multigpu50.csv) is
 * replayed in file order, and --inflate prints the curve and writes its CSV.
 * replay --pools simulates bursting: a second job that waits for the one GPU
 * on-prem gets a cloud node after burst_after plus the boot, and is billed
 * from provision to idle release; a job asking a model nothing has never runs.
 * The test writes its own tiny CSVs and runs the mlbench built next to it
 * (MLBENCH, set by Makefile.am).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MLBENCH
#define MLBENCH "tests/bench/mlbench"
#endif

struct dir {
	char path[64];
};

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

/* Run mlbench with args; its output (stdout and stderr) in out.  Returns
 * the exit status. */
static int run(const char *args, char *out, size_t len)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int st;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", MLBENCH, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n + 1 < len && !feof(p)) {
		size_t r = fread(out + n, 1, len - n - 1, p);

		if (r == 0)
			break;
		n += r;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Nodes with the trace's "sn" header: two 2-GPU T4 nodes, one 8-GPU G2. */
static const char *nodes_csv = "sn,cpu_milli,memory_mib,gpu,model\n"
			       "n-0,32000,131072,2,T4\n"
			       "n-1,32000,131072,2,T4\n"
			       "n-2,96000,393216,8,G2\n";

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	snprintf(d->path, sizeof(d->path), "/tmp/sched-replay-test-XXXXXX");
	assert_non_null(mkdtemp(d->path));
	write_file(d->path, "nodes.csv", nodes_csv);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->path);
	assert_int_equal(system(cmd), 0);
	free(d);
	return 0;
}

static void test_no_optional_columns(void **state)
{
	struct dir *d = *state;
	char args[512], out[16384];

	if (access(MLBENCH, X_OK) != 0) {
		print_message("%s not built\n", MLBENCH);
		fail();
	}
	/* The multigpu pod lists' layout: five columns only. */
	write_file(d->path, "pods.csv",
		   "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
		   "p-0,4000,8192,1,500\n"
		   "p-1,4000,8192,1,500\n"
		   "p-2,8000,16384,2,0\n"
		   "p-3,2000,4096,0,0\n"
		   "p-4,8000,16384,8,0\n"
		   "p-5,4000,8192,1,1000\n");
	snprintf(args, sizeof(args), "replay --nodes %s/nodes.csv --jobs %s/pods.csv "
		 "--no-deletions --policy all --quiet", d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "3 nodes, 6 jobs"));
	/* 12 GPUs of capacity, 1 + 2 + 8 + 1 arrived: all placed by each. */
	assert_non_null(strstr(out, "GPU demand 100.00%"));
	assert_non_null(strstr(out, "firstfit"));
	assert_non_null(strstr(out, "bestfit"));
	assert_non_null(strstr(out, "fgd"));

	/* The full layout with qos and pod_phase, in another column order. */
	write_file(d->path, "full.csv",
		   "name,qos,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,pod_phase,"
		   "creation_time,deletion_time,scheduled_time\n"
		   "p-0,LS,4000,8192,1,500,T4,Running,20,30,20\n"
		   "p-1,BE,4000,8192,1,1000,,Running,10,,10\n");
	snprintf(args, sizeof(args), "replay --nodes %s/nodes.csv --jobs %s/full.csv "
		 "--policy fgd,binpack", d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "2 jobs"));

	/* A missing required column is still an error that names it. */
	write_file(d->path, "bad.csv", "name,cpu_milli,memory_mib,gpu_milli\np-0,1,1,1\n");
	snprintf(args, sizeof(args), "replay --nodes %s/nodes.csv --jobs %s/bad.csv", d->path,
		 d->path);
	assert_int_equal(run(args, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "header has no \"num_gpu\" column"));
}

static void test_inflate_curve(void **state)
{
	struct dir *d = *state;
	char args[512], out[32768], path[128], line[256];
	FILE *f;
	int rows = 0;

	write_file(d->path, "pods.csv",
		   "name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time\n"
		   "p-0,4000,8192,1,300,0\n"
		   "p-1,4000,8192,1,1000,1\n"
		   "p-2,4000,8192,2,0,2\n");
	snprintf(path, sizeof(path), "%s/curve.csv", d->path);
	snprintf(args, sizeof(args), "replay --nodes %s/nodes.csv --jobs %s/pods.csv "
		 "--policy firstfit,fgd --no-baseline --inflate 130 --seed 7 --csv %s --quiet",
		 d->path, d->path, path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "sampled (seed 7) to 130%"));
	assert_non_null(strstr(out, "arrived %"));
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "arrived_pct,firstfit,fgd\n");
	while (fgets(line, sizeof(line), f))
		rows++;
	fclose(f);
	assert_int_equal(rows, 130 / 5);
}

/* The three numbers of the row of mlbench replay --pools's table that
 * starts with label. */
static void row3(const char *out, const char *label, double v[3])
{
	const char *p = strstr(out, label);

	if (!p) {
		print_message("no row \"%s\" in:\n%s\n", label, out);
		fail();
	}
	assert_int_equal(sscanf(p + strlen(label), "%lf %lf %lf", &v[0], &v[1], &v[2]), 3);
}

static void assert_row(const char *out, const char *label, double a, double b, double c)
{
	double v[3];

	row3(out, label, v);
	if (v[0] != a || v[1] != b || v[2] != c) {
		print_message("%s: got %g %g %g, want %g %g %g\n", label, v[0], v[1], v[2], a,
			      b, c);
		fail();
	}
}

static void test_pools_burst(void **state)
{
	struct dir *d = *state;
	char args[512], out[16384], hook[128];

	/* One on-prem GPU; two 1-GPU jobs of an hour arrive together. */
	write_file(d->path, "one.csv", "name,cpu_milli,memory_mib,gpu,model\n"
		   "op-1,8000,32768,1,A100\n");
	write_file(d->path, "two.csv",
		   "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,"
		   "deletion_time\n"
		   "j-1,1000,1024,1,1000,A100,0,3600\n"
		   "j-2,1000,1024,1,1000,,0,3600\n");
	write_file(d->path, "hook", "#!/bin/sh\nexit 0\n");
	snprintf(hook, sizeof(hook), "%s/hook", d->path);
	assert_int_equal(chmod(hook, 0755), 0);
	snprintf(args, sizeof(args), "burst_after: 1m\npools:\n"
		 "  - {name: onprem, cost_per_gpu_hour: 1}\n"
		 "  - {name: cloud, cost_per_gpu_hour: 2, max: 1, boot_timeout: 2m, idle: 1m,\n"
		 "     template: {gpus: 1x80G:A100, cpus: 8, memory: 32G},\n"
		 "     provision: %s, release: %s}\n", hook, hook);
	write_file(d->path, "pools.yaml", args);

	snprintf(args, sizeof(args), "replay --pools %s/pools.yaml --nodes %s/one.csv "
		 "--jobs %s/two.csv", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	/* On-prem only: j-2 waits for j-1's hour.  Bursting: provisioned at
	 * 1m (burst_after), usable at 3m (boot_timeout), released 1m after
	 * j-2 ends: 60 s .. 3840 s of one GPU at 2.  Sized for peak: two GPUs
	 * of demand, one on-prem, so one cloud node for the hour. */
	assert_row(out, "queueing delay, max s", 3600, 180, 0);
	assert_row(out, "queueing delay, mean s", 1800, 90, 0);
	assert_row(out, "cloud nodes provisioned", 0, 1, 1);
	assert_row(out, "cloud GPU-hours bought", 0, 1.05, 1);
	assert_row(out, "cloud cost", 0, 2.1, 2);
	assert_row(out, "jobs never run", 0, 0, 0);
	assert_non_null(strstr(out, "bursting vs on-prem only: mean delay x0.050"));
	assert_non_null(strstr(out, "bursting vs sized for peak: cloud cost x1.050"));

	/* --boot-time overrides boot_timeout as the simulated boot. */
	snprintf(args, sizeof(args), "replay --pools %s/pools.yaml --nodes %s/one.csv "
		 "--jobs %s/two.csv --boot-time 30s", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_row(out, "queueing delay, max s", 3600, 90, 0);

	/* A job whose model nothing has never runs, and is not timed. */
	write_file(d->path, "three.csv",
		   "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,"
		   "deletion_time\n"
		   "j-1,1000,1024,1,1000,A100,0,3600\n"
		   "j-2,1000,1024,1,1000,,0,3600\n"
		   "j-3,1000,1024,1,1000,H100,0,3600\n");
	snprintf(args, sizeof(args), "replay --pools %s/pools.yaml --nodes %s/one.csv "
		 "--jobs %s/three.csv", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "1 job(s) ask a GPU model that no node or template has"));
	assert_row(out, "jobs never run", 1, 1, 1);
	assert_row(out, "queueing delay, max s", 3600, 180, 0);

	/* Bad input is refused with what and why. */
	snprintf(args, sizeof(args), "replay --pools %s/pools.yaml --nodes %s/one.csv "
		 "--jobs %s/two.csv --boot-time soon", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "--boot-time: \"soon\" is not a duration"));
	write_file(d->path, "onprem.yaml", "pools:\n  - {name: onprem}\n");
	snprintf(args, sizeof(args), "replay --pools %s/onprem.yaml --nodes %s/one.csv "
		 "--jobs %s/two.csv", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "has no cloud pool"));
	write_file(d->path, "bad.yaml", "pools:\n  - {name: cloud, max: 0}\n");
	snprintf(args, sizeof(args), "replay --pools %s/bad.yaml --nodes %s/one.csv "
		 "--jobs %s/two.csv", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "pools[0].max: only for pools the master provisions"));
	write_file(d->path, "nodel.csv", "name,cpu_milli,memory_mib,num_gpu,creation_time\n"
		   "j-1,1000,1024,1,0\n");
	snprintf(args, sizeof(args), "replay --pools %s/pools.yaml --nodes %s/one.csv "
		 "--jobs %s/nodel.csv", d->path, d->path, d->path);
	assert_int_equal(run(args, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "no job has a deletion_time"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_optional_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_curve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pools_burst, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
