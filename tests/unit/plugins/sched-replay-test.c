/*
 * sched-replay-test.c - `mlbench replay` reads the public trace's pod lists
 * whatever optional columns they carry: a list without gpu_spec, qos,
 * creation_time and deletion_time (like openb_pod_list_multigpu50.csv) is
 * replayed in file order, and --inflate prints the curve and writes its CSV.
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_optional_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_curve, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
