/*
 * gpu-test.c - the static GPU inventory parser, and the NVML plugin: on a
 * machine without the NVIDIA driver, against the fake libnvidia-ml of
 * tests/fakenvml/ (FAKE_NVML, its state file named by MLS_FAKE_NVML), and
 * against the real driver where there is one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "gpu/gpu.h"

#define GIB (1024ull * 1024 * 1024)

static void test_static_one_group(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	struct gpu_util util[GPU_MAX];
	char why[256] = "untouched";
	void *ctx = NULL;
	size_t n = 99, i;

	assert_int_equal(gpu_static_ops.init("4x80G", &ctx, why, sizeof(why)), 0);
	assert_non_null(ctx);
	assert_string_equal(why, "");
	assert_int_equal(gpu_static_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(gpus[i].index, i);
		assert_int_equal(gpus[i].mem_total, 80 * GIB);
		assert_string_equal(gpus[i].model, "fake");
		assert_string_equal(gpus[i].uuid, "");
	}

	memset(util, 0xff, sizeof(util));
	n = 0;
	assert_int_equal(gpu_static_ops.util(ctx, util, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(util[i].index, i);
		assert_int_equal(util[i].util_pct, 0);
		assert_int_equal(util[i].mem_used, 0);
	}
	gpu_static_ops.fini(ctx);
}

static void test_static_mixed(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	char why[256];
	void *ctx = NULL;
	size_t n = 0;

	assert_int_equal(
		gpu_static_ops.init("2x40G:A100,2x80G:H100,1x1.5G", &ctx, why, sizeof(why)), 0);
	assert_int_equal(gpu_static_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(gpus[0].model, "A100");
	assert_string_equal(gpus[1].model, "A100");
	assert_int_equal(gpus[1].mem_total, 40 * GIB);
	assert_string_equal(gpus[2].model, "H100");
	assert_int_equal(gpus[3].mem_total, 80 * GIB);
	assert_int_equal(gpus[3].index, 3);
	assert_string_equal(gpus[4].model, "fake");
	assert_int_equal(gpus[4].mem_total, 3 * GIB / 2);
	assert_int_equal(gpus[4].index, 4);
	gpu_static_ops.fini(ctx);
}

static void test_static_limits(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	char why[256], arg[64];
	void *ctx = NULL;
	size_t n = 0;

	snprintf(arg, sizeof(arg), "%dx1G", GPU_MAX);
	assert_int_equal(gpu_static_ops.init(arg, &ctx, why, sizeof(why)), 0);
	assert_int_equal(gpu_static_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, GPU_MAX);
	assert_int_equal(gpus[GPU_MAX - 1].index, GPU_MAX - 1);
	gpu_static_ops.fini(ctx);

	/* One too many, alone or summed over groups. */
	snprintf(arg, sizeof(arg), "%dx1G", GPU_MAX + 1);
	ctx = (void *)1;
	assert_int_equal(gpu_static_ops.init(arg, &ctx, why, sizeof(why)), ERR_INVAL);
	assert_null(ctx);
	assert_non_null(strstr(why, "between 1 and"));
	snprintf(arg, sizeof(arg), "%dx1G,1x2G", GPU_MAX);
	assert_int_equal(gpu_static_ops.init(arg, &ctx, why, sizeof(why)), ERR_INVAL);
	assert_null(ctx);
	assert_non_null(strstr(why, "more than"));
}

static void test_static_bad(void **state)
{
	static const char *const bad[] = {
		"", "x80G", "4x", "4x80Q", "0x80G", "-1x80G", "+1x80G", "4x80G:", "4x80G:A 100",
		"4x80G,,1x1G", "4x80G,", ",4x80G", "4X80G", "4x0", "abcx80G", "4x80G:A:B",
		"4 x80G", "4x80G ", "1x-1G", "99999999999999999999x1G",
		"4x80G:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	char why[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *ctx = (void *)1;

		why[0] = '\0';
		if (gpu_static_ops.init(bad[i], &ctx, why, sizeof(why)) != ERR_INVAL)
			fail_msg("inventory \"%s\" was accepted", bad[i]);
		assert_null(ctx);
		if (!why[0])
			fail_msg("inventory \"%s\" gave no message", bad[i]);
	}

	/* NULL is "no inventory", also with no room for a message. */
	{
		void *ctx = (void *)1;

		assert_int_equal(gpu_static_ops.init(NULL, &ctx, why, sizeof(why)), ERR_INVAL);
		assert_null(ctx);
		assert_int_equal(gpu_static_ops.init("4x", &ctx, NULL, 0), ERR_INVAL);
	}
}

static void test_static_messages(void **state)
{
	char why[256];
	void *ctx;

	assert_int_equal(gpu_static_ops.init("4x80Q", &ctx, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "80Q"));
	assert_int_equal(gpu_static_ops.init("1x1G,twox1G", &ctx, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "two"));
	assert_int_equal(gpu_static_ops.init("2x1G:bad/model", &ctx, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "bad/model"));
}

/* Without the NVIDIA driver, NVML init must fail cleanly and say why. */
static void test_nvml_missing(void **state)
{
	char why[512] = "";
	void *ctx = (void *)1;
	void *probe = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	int rv;

	if (probe) {
		dlclose(probe);
		skip();
	}
	rv = gpu_nvml_ops.init(NULL, &ctx, why, sizeof(why));
	assert_int_equal(rv, ERR_NOENT);
	assert_null(ctx);
	assert_non_null(strstr(why, "libnvidia-ml.so.1"));
	assert_string_equal(gpu_nvml_ops.name, "nvml");
	assert_string_equal(gpu_static_ops.name, "static");
}

/* A library named by path that is not there, and one that is not NVML. */
static void test_nvml_missing_path(void **state)
{
	char why[512] = "";
	void *ctx = (void *)1;

	assert_int_equal(gpu_nvml_ops.init("/nonexistent/libnvidia-ml.so.1", &ctx, why, sizeof(why)),
			 ERR_NOENT);
	assert_null(ctx);
	assert_non_null(strstr(why, "cannot load /nonexistent/libnvidia-ml.so.1"));
	ctx = (void *)1;
	assert_int_equal(gpu_nvml_ops.init("libc.so.6", &ctx, why, sizeof(why)), ERR_NOENT);
	assert_null(ctx);
	assert_non_null(strstr(why, "libc.so.6: no symbol nvmlInit_v2"));
	gpu_nvml_ops.fini(NULL);
}

/* ---- the fake libnvidia-ml ---- */

static char fake_dir[] = "/tmp/gpu-test.XXXXXX";
static char fake_state[sizeof(fake_dir) + 16];

/* Replace the fake's state file with text (rename: never half a file). */
static void fake_set(const char *text)
{
	char tmp[sizeof(fake_state) + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", fake_state);
	assert_non_null(f = fopen(tmp, "w"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, fake_state), 0);
}

static int fake_setup(void **state)
{
	if (!mkdtemp(fake_dir))
		return -1;
	snprintf(fake_state, sizeof(fake_state), "%s/state", fake_dir);
	return setenv("MLS_FAKE_NVML", fake_state, 1);
}

static int fake_teardown(void **state)
{
	unlink(fake_state);
	rmdir(fake_dir);
	unsetenv("MLS_FAKE_NVML");
	return 0;
}

static const char fake_four[] = "count=4\n"
				"0.name=NVIDIA H100 80GB HBM3\n"
				"0.mem_total=85899345920\n"
				"1.name=NVIDIA H100\n"
				"1.mem_total=85899345920\n"
				"1.uuid=GPU-1111\n"
				"2.name=NVIDIA A100-SXM4-40GB # a comment\n"
				"2.mem_total=42949672960\n"
				"2.mem_used=1073741824\n"
				"2.util=42\n"
				"3.name=Tesla T4\n"
				"3.mem_total=17179869184\n"
				"3.util=250\n";

static void *fake_open(void)
{
	char why[512] = "untouched";
	void *ctx = NULL;

	if (gpu_nvml_ops.init(FAKE_NVML, &ctx, why, sizeof(why)) != 0)
		fail_msg("nvml init with %s: %s", FAKE_NVML, why);
	assert_non_null(ctx);
	assert_string_equal(why, "");
	return ctx;
}

/* Count, names, memory and utilization come through as the fake says. */
static void test_nvml_fake_values(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	struct gpu_util util[GPU_MAX];
	size_t n = 0, i;
	void *ctx;

	fake_set(fake_four);
	ctx = fake_open();
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(gpus[i].index, i);
		assert_string_equal(gpus[i].error, "");
	}
	assert_string_equal(gpus[0].model, "NVIDIA H100 80GB HBM3");
	assert_int_equal(gpus[0].mem_total, 80 * GIB);
	assert_string_equal(gpus[0].uuid, "GPU-fake-0");
	assert_string_equal(gpus[1].model, "NVIDIA H100");
	assert_string_equal(gpus[1].uuid, "GPU-1111");
	assert_string_equal(gpus[2].model, "NVIDIA A100-SXM4-40GB");
	assert_int_equal(gpus[2].mem_total, 40 * GIB);
	assert_string_equal(gpus[3].model, "Tesla T4");
	assert_int_equal(gpus[3].mem_total, 16 * GIB);

	memset(util, 0xff, sizeof(util));
	n = 0;
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_int_equal(util[i].index, i);
		assert_string_equal(util[i].error, "");
	}
	assert_int_equal(util[0].util_pct, 0);
	assert_int_equal(util[0].mem_used, 0);
	assert_int_equal(util[2].util_pct, 42);
	assert_int_equal(util[2].mem_used, GIB);
	assert_int_equal(util[3].util_pct, 100); /* NVML said 250: capped */

	/* Values change under a running plugin; "not supported" reads as
	 * idle, not as an error. */
	fake_set("count=4\n1.util=7\n1.mem_used=5\n2.util_error=3\n");
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_int_equal(util[1].util_pct, 7);
	assert_int_equal(util[1].mem_used, 5);
	assert_int_equal(util[2].util_pct, 0);
	assert_string_equal(util[2].error, "");
	gpu_nvml_ops.fini(ctx);
}

/* A lost GPU, failing queries, a vanished GPU: each is that GPU's error,
 * the others read on, and the errors clear when the GPU answers again. */
static void test_nvml_fake_errors(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	struct gpu_util util[GPU_MAX];
	size_t n = 0;
	void *ctx;

	fake_set(fake_four);
	ctx = fake_open();
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);

	fake_set("count=4\n1.error=15\n2.util=42\n3.mem_error=999\n");
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(util[0].error, "");
	assert_string_equal(util[1].error,
			    "nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)");
	assert_int_equal(util[1].util_pct, 0);
	assert_int_equal(util[1].index, 1);
	assert_string_equal(util[2].error, "");
	assert_int_equal(util[2].util_pct, 42);
	assert_string_equal(util[3].error,
			    "nvmlDeviceGetMemoryInfo: Unknown Error (NVML error 999)");
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(gpus[1].error, "nvmlDeviceGetName: GPU is lost (NVML error 15)");
	assert_string_equal(gpus[1].model, "");
	assert_int_equal(gpus[1].mem_total, 0);
	assert_string_equal(gpus[3].error, "nvmlDeviceGetMemoryInfo: Unknown Error (NVML error 999)");
	assert_string_equal(gpus[0].error, "");

	/* Two GPUs gone from the count: they stay, as lost. */
	fake_set("count=2\n");
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(util[1].error, "");
	assert_string_equal(util[2].error,
			    "nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)");
	assert_string_equal(util[3].error,
			    "nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)");

	/* Back again: no errors. */
	fake_set(fake_four);
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(util[i].error, "");
	assert_int_equal(util[2].util_pct, 42);
	gpu_nvml_ops.fini(ctx);
}

/* A GPU without a handle at start is listed with its error, and read once
 * it has one. */
static void test_nvml_fake_handle(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	struct gpu_util util[GPU_MAX];
	size_t n = 0;
	void *ctx;

	fake_set("count=2\n0.handle_error=17\n1.util=9\n");
	ctx = fake_open();
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(gpus[0].error,
			    "nvmlDeviceGetHandleByIndex: Operating System Call Failed (NVML error 17)");
	assert_string_equal(gpus[1].model, "Fake GPU 1");
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_non_null(strstr(util[0].error, "nvmlDeviceGetHandleByIndex"));
	assert_int_equal(util[1].util_pct, 9);

	fake_set("count=2\n0.util=3\n");
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	assert_string_equal(util[0].error, "");
	assert_int_equal(util[0].util_pct, 3);
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
	assert_string_equal(gpus[0].model, "Fake GPU 0");
	assert_string_equal(gpus[0].error, "");
	gpu_nvml_ops.fini(ctx);
}

/* nvmlInit or the count failing is init failing, with NVML's reason. */
static void test_nvml_fake_init_errors(void **state)
{
	char why[512];
	void *ctx;

	fake_set("count=2\ninit_error=9\n");
	ctx = (void *)1;
	assert_int_equal(gpu_nvml_ops.init(FAKE_NVML, &ctx, why, sizeof(why)), ERR_SYS);
	assert_null(ctx);
	assert_non_null(strstr(why, "nvmlInit: Driver Not Loaded (NVML error 9)"));

	fake_set("count=2\ncount_error=999\n");
	ctx = (void *)1;
	assert_int_equal(gpu_nvml_ops.init(FAKE_NVML, &ctx, why, sizeof(why)), ERR_SYS);
	assert_null(ctx);
	assert_non_null(strstr(why, "nvmlDeviceGetCount: Unknown Error (NVML error 999)"));

	fake_set("count=65\n");
	ctx = (void *)1;
	assert_int_equal(gpu_nvml_ops.init(FAKE_NVML, &ctx, why, sizeof(why)), ERR_SYS);
	assert_null(ctx);
	assert_non_null(strstr(why, "at most 64"));

	/* No GPUs is not an error. */
	fake_set("count=0\n");
	ctx = fake_open();
	{
		struct gpu_info gpus[GPU_MAX];
		size_t n = 9;

		assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
		assert_int_equal(n, 0);
	}
	gpu_nvml_ops.fini(ctx);
}

/* On a machine with the driver: whatever NVML reports is within limits. */
static void test_nvml_present(void **state)
{
	struct gpu_info gpus[GPU_MAX];
	struct gpu_util util[GPU_MAX];
	char why[512] = "";
	void *ctx = NULL;
	size_t n = 0, i;
	void *probe = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);

	if (!probe)
		skip();
	dlclose(probe);
	if (gpu_nvml_ops.init(NULL, &ctx, why, sizeof(why)) != 0)
		fail_msg("nvml init: %s", why);
	assert_int_equal(gpu_nvml_ops.list(ctx, gpus, &n), 0);
	assert_true(n <= GPU_MAX);
	for (i = 0; i < n; i++) {
		assert_int_equal(gpus[i].index, i);
		assert_true(gpus[i].mem_total > 0);
		assert_true(gpus[i].model[0] != '\0');
	}
	assert_int_equal(gpu_nvml_ops.util(ctx, util, &n), 0);
	for (i = 0; i < n; i++)
		assert_true(util[i].util_pct <= 100);
	gpu_nvml_ops.fini(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_static_one_group), cmocka_unit_test(test_static_mixed),
		cmocka_unit_test(test_static_limits),	 cmocka_unit_test(test_static_bad),
		cmocka_unit_test(test_static_messages),	 cmocka_unit_test(test_nvml_missing),
		cmocka_unit_test(test_nvml_missing_path), cmocka_unit_test(test_nvml_present),
	};
	const struct CMUnitTest fake[] = {
		cmocka_unit_test(test_nvml_fake_values),
		cmocka_unit_test(test_nvml_fake_errors),
		cmocka_unit_test(test_nvml_fake_handle),
		cmocka_unit_test(test_nvml_fake_init_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL) |
	       cmocka_run_group_tests_name("fake NVML", fake, fake_setup, fake_teardown);
}
