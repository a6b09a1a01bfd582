/*
 * gpus-test.c - the agent's GPUs (agent/gpus.c): the "gpu_error" text it
 * reports to the master, and its set-up and sampling through the nvml plugin
 * and the fake libnvidia-ml of tests/fakenvml/ (FAKE_NVML; its state file is
 * named by MLS_FAKE_NVML): errors appear, change and clear, each change is
 * logged once, the GPU list stays as found at start.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

static char dir[] = "/tmp/gpus-test.XXXXXX";
static char state_path[sizeof(dir) + 16], log_path[sizeof(dir) + 16];
static struct agent ag; /* large: not on the stack */

static void fake_set(const char *text)
{
	char tmp[sizeof(state_path) + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
	assert_non_null(f = fopen(tmp, "w"));
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, state_path), 0);
}

/* How many lines of the log so far contain what. */
static int log_count(const char *what)
{
	char line[1024];
	int n = 0;
	FILE *f = fopen(log_path, "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

static int setup(void **state)
{
	int fd;

	if (!mkdtemp(dir))
		return -1;
	snprintf(state_path, sizeof(state_path), "%s/state", dir);
	snprintf(log_path, sizeof(log_path), "%s/log", dir);
	if ((fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
		return -1;
	log_init("gpus-test", LOG_LVL_INFO, fd);
	return setenv("MLS_FAKE_NVML", state_path, 1);
}

static int teardown(void **state)
{
	unlink(state_path);
	unlink(log_path);
	rmdir(dir);
	unsetenv("MLS_FAKE_NVML");
	return 0;
}

/* A fresh agent with just what gpus.c reads. */
static struct agent *agent_new(const char *gpus)
{
	memset(&ag, 0, sizeof(ag));
	ag.cfg.name = "n1";
	ag.cfg.gpus = gpus;
	ag.cfg.nvml_lib = FAKE_NVML;
	return &ag;
}

static void agent_done(struct agent *a)
{
	if (a->gpu)
		a->gpu->fini(a->gpu_ctx);
	a->gpu = NULL;
}

static void test_join(void **state)
{
	struct gpu_info g[4] = {
	    {.index = 0, .model = "NVIDIA H100"},
	    {.index = 1, .model = "NVIDIA H100"},
	    {.index = 2, .model = ""},
	    {.index = 3, .model = "Tesla T4"},
	};
	const char *none[4] = {NULL, "", NULL, ""};
	const char *two[4] = {NULL, "nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)",
			      "nvmlDeviceGetName: Unknown Error (NVML error 999)", NULL};
	char long_err[GPU_ERROR_LEN];
	const char *four[4] = {long_err, long_err, long_err, long_err};
	char out[GPU_REPORT_MAX];

	gpus_error_join(g, none, 4, out, sizeof(out));
	assert_string_equal(out, "");
	gpus_error_join(g, two, 4, out, sizeof(out));
	assert_string_equal(out, "GPU 1 (NVIDIA H100): nvmlDeviceGetUtilizationRates: GPU is lost "
				 "(NVML error 15); GPU 2: nvmlDeviceGetName: Unknown Error (NVML "
				 "error 999)");

	/* More than fits: whole entries, then how many more. */
	memset(long_err, 'x', 80);
	long_err[80] = '\0';
	gpus_error_join(g, four, 4, out, sizeof(out));
	assert_true(strlen(out) < GPU_REPORT_MAX);
	assert_non_null(strstr(out, "GPU 0 (NVIDIA H100): xxx"));
	assert_non_null(strstr(out, "; GPU 1 (NVIDIA H100): xxx"));
	assert_null(strstr(out, "GPU 2"));
	assert_non_null(strstr(out, "x; and 2 more"));

	/* One that alone does not fit is cut, and still says how many more. */
	memset(long_err, 'y', sizeof(long_err) - 1);
	long_err[sizeof(long_err) - 1] = '\0';
	gpus_error_join(g, four, 4, out, 100);
	assert_true(strlen(out) < 100);
	assert_non_null(strstr(out, "GPU 0 (NVIDIA H100): yyy"));
	assert_non_null(strstr(out, "y; and 3 more"));
	gpus_error_join(g, four, 1, out, 100);
	assert_int_equal(strlen(out), 99 - 16);
}

/* A GPU lost after start: reported, logged once, the list kept; then it
 * comes back. */
static void test_lost_and_back(void **state)
{
	struct agent *a = agent_new(NULL);
	const char *lost = "GPU 1 (NVIDIA H100): nvmlDeviceGetUtilizationRates: GPU is lost (NVML "
			   "error 15)";
	int warned;

	fake_set("count=4\n1.name=NVIDIA H100\n2.util=42\n2.mem_used=1024\n");
	gpus_setup(a);
	assert_non_null(a->gpu);
	assert_int_equal(a->ngpus, 4);
	assert_string_equal(a->gpus[1].model, "NVIDIA H100");
	assert_string_equal(a->gpu_error, "");
	gpus_sample(a);
	assert_string_equal(a->gpu_error, "");
	assert_int_equal(a->stats.ngpu, 4);
	assert_int_equal(a->stats.gpu[2].util_pct, 42);
	assert_int_equal(a->stats.gpu[2].mem_used, 1024);

	warned = log_count("GPU error (reported to the master)");
	fake_set("count=4\n1.name=NVIDIA H100\n1.error=15\n2.util=42\n");
	gpus_sample(a);
	assert_string_equal(a->gpu_error, lost);
	assert_int_equal(a->ngpus, 4);
	assert_string_equal(a->gpus[1].model, "NVIDIA H100");
	assert_int_equal(a->stats.ngpu, 4);
	assert_string_not_equal(a->stats.gpu[1].error, "");
	assert_string_equal(a->stats.gpu[2].error, "");
	gpus_sample(a);
	gpus_sample(a);
	assert_int_equal(log_count("GPU error (reported to the master)"), warned + 1);
	assert_int_equal(log_count(lost), 1);

	/* Another GPU fails too: a change, logged. */
	fake_set("count=4\n1.name=NVIDIA H100\n1.error=15\n3.mem_error=999\n");
	gpus_sample(a);
	assert_string_equal(a->gpu_error,
			    "GPU 1 (NVIDIA H100): nvmlDeviceGetUtilizationRates: GPU "
			    "is lost (NVML error 15); GPU 3 (Fake GPU 3): "
			    "nvmlDeviceGetMemoryInfo: Unknown Error (NVML error 999)");
	assert_int_equal(log_count("GPU error (reported to the master)"), warned + 2);

	fake_set("count=4\n1.name=NVIDIA H100\n");
	gpus_sample(a);
	assert_string_equal(a->gpu_error, "");
	assert_int_equal(log_count("GPUs read fine again"), 1);
	gpus_sample(a);
	assert_int_equal(log_count("GPUs read fine again"), 1);
	agent_done(a);
}

/* A GPU that cannot be read at start: listed without details, reported at
 * once, and filled in when it reads again. */
static void test_bad_at_start(void **state)
{
	struct agent *a = agent_new(NULL);

	fake_set("count=2\n1.name=NVIDIA H100\n1.name_error=15\n");
	gpus_setup(a);
	assert_int_equal(a->ngpus, 2);
	assert_string_equal(a->gpus[1].model, "");
	assert_int_equal(a->gpus[1].mem_total, 0);
	assert_string_equal(a->gpu_error, "GPU 1: nvmlDeviceGetName: GPU is lost (NVML error 15)");
	/* Utilization reads, the name still does not: still reported. */
	gpus_sample(a);
	assert_string_equal(a->gpu_error, "GPU 1: nvmlDeviceGetName: GPU is lost (NVML error 15)");
	assert_string_equal(a->stats.gpu[1].error, "");

	fake_set("count=2\n1.name=NVIDIA H100\n");
	gpus_sample(a);
	assert_string_equal(a->gpu_error, "");
	assert_string_equal(a->gpus[1].model, "NVIDIA H100");
	assert_int_equal(a->gpus[1].mem_total, 80ull << 30);
	agent_done(a);
}

/* Declared GPUs never fail. */
static void test_static(void **state)
{
	struct agent *a = agent_new("2x16G:T4");

	gpus_setup(a);
	assert_int_equal(a->ngpus, 2);
	gpus_sample(a);
	assert_int_equal(a->stats.ngpu, 2);
	assert_string_equal(a->gpu_error, "");
	assert_string_equal(a->stats.gpu[1].error, "");
	agent_done(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_join),
	    cmocka_unit_test(test_lost_and_back),
	    cmocka_unit_test(test_bad_at_start),
	    cmocka_unit_test(test_static),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
