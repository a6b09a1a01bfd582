/*
 * gpu-test.c - the static GPU inventory parser, and NVML's behaviour on a
 * machine without the NVIDIA driver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

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
		cmocka_unit_test(test_nvml_present),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
