/*
 * units-test.c - sizes, durations and milli-quantities: what users may write,
 * what they may not, and that formatting reads back to the same value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "err.h"
#include "units.h"

#define GiB (1024ull * 1024 * 1024)

static void test_size_good(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{"0", 0},
		{"512", 512},
		{"64K", 65536},
		{"64Ki", 65536},
		{"64KiB", 65536},
		{"64k", 65536},
		{"64KB", 65536},
		{"8M", 8ull << 20},
		{"8m", 8ull << 20},
		{"8G", 8 * GiB},
		{"8GiB", 8 * GiB},
		{"1.5G", 1610612736ull},
		{"0.5K", 512},
		{"1.50G", 1610612736ull},
		{"2T", 2ull << 40},
		{"1P", 1ull << 50},
		{"16383P", 16383ull << 50},
		{"18446744073709551615", UINT64_MAX},
		{"007", 7},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t got = 12345;

		if (units_parse_size(cases[i].in, &got) != 0)
			fail_msg("size \"%s\" rejected", cases[i].in);
		if (got != cases[i].want)
			fail_msg("size \"%s\" = %llu, want %llu", cases[i].in,
				 (unsigned long long)got, (unsigned long long)cases[i].want);
	}
}

static void test_size_bad(void **state)
{
	static const char *bad[] = {
		"",
		"12Q",
		"-1G",
		"+1G",
		"1.5",       /* 1.5 bytes is not a whole number */
		"0.3K",      /* 307.2 bytes */
		"99999999999P",
		"16384P",    /* 2^64 exactly */
		"18446744073709551616",
		"1 G",
		" 1G",
		"1G ",
		"G",
		".5G",
		"1.G",
		"1..5G",
		"1GG",
		"1Gi B",
		"1E",
		"abc",
		"1,5G",
		"0x10",
		"1Kx",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t got = 777;

		if (units_parse_size(bad[i], &got) != ERR_INVAL)
			fail_msg("size \"%s\" accepted as %llu", bad[i], (unsigned long long)got);
		assert_int_equal(got, 777); /* out untouched on error */
	}
	assert_int_equal(units_parse_size(NULL, &(uint64_t){0}), ERR_INVAL);
}

static void test_duration_good(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} cases[] = {
		{"0s", 0},
		{"500ms", 500},
		{"2s", 2000},
		{"1.5s", 1500},
		{"1m", 60000},
		{"2h", 7200000},
		{"1m30s", 90000},
		{"1h1m1s1ms", 3661001},
		{"0.5h", 1800000},
		{"1.5m", 90000},
		{"1.001s", 1001},
		{"1m0.25s", 60250},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t got = 12345;

		if (units_parse_duration(cases[i].in, &got) != 0)
			fail_msg("duration \"%s\" rejected", cases[i].in);
		if (got != cases[i].want)
			fail_msg("duration \"%s\" = %llu, want %llu", cases[i].in,
				 (unsigned long long)got, (unsigned long long)cases[i].want);
	}
}

static void test_duration_bad(void **state)
{
	static const char *bad[] = {
		"",
		"5",          /* a unit is required */
		"1.5",
		"-1s",
		"+1s",
		"1x",
		"1 s",
		"s",
		"1.0005s",    /* half a millisecond */
		"1.5ms",
		"30s1m",      /* units largest first */
		"1s1s",
		"1m30",       /* trailing number without unit */
		"99999999999999999999ms",
		"9999999999999999h",
		"1d",
		".5s",
		"1s ",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t got = 777;

		if (units_parse_duration(bad[i], &got) != ERR_INVAL)
			fail_msg("duration \"%s\" accepted as %llu", bad[i],
				 (unsigned long long)got);
		assert_int_equal(got, 777);
	}
}

static void test_milli_good(void **state)
{
	static const struct {
		const char *in;
		uint32_t want;
	} cases[] = {
		{"0", 0},
		{"2", 2000},
		{"0.25", 250},
		{"0.5", 500},
		{"1.125", 1125},
		{"0.001", 1},
		{"500m", 500},
		{"0m", 0},
		{"4294967", 4294967000u},
		{"4294967.295", UINT32_MAX},
		{"4294967295m", UINT32_MAX},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t got = 12345;

		if (units_parse_milli(cases[i].in, &got) != 0)
			fail_msg("milli \"%s\" rejected", cases[i].in);
		if (got != cases[i].want)
			fail_msg("milli \"%s\" = %u, want %u", cases[i].in, got, cases[i].want);
	}
}

static void test_milli_bad(void **state)
{
	static const char *bad[] = {
		"",
		"0.0005",
		"0.2500",   /* more than three decimals, even zeros */
		"-1",
		"+1",
		"1.",
		".5",
		"1.5m",
		"m",
		"4294968",
		"4294967296m",
		"1 ",
		"1x",
		"1e3",
		"99999999999999999999",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t got = 777;

		if (units_parse_milli(bad[i], &got) != ERR_INVAL)
			fail_msg("milli \"%s\" accepted as %u", bad[i], got);
		assert_int_equal(got, 777);
	}
}

static void test_format_examples(void **state)
{
	char buf[32];

	units_format_size(8589934592ull, buf, sizeof(buf));
	assert_string_equal(buf, "8G");
	units_format_size(1536ull << 20, buf, sizeof(buf));
	assert_string_equal(buf, "1536M");
	units_format_size(1000, buf, sizeof(buf));
	assert_string_equal(buf, "1000");
	units_format_size(0, buf, sizeof(buf));
	assert_string_equal(buf, "0");
	units_format_size(1ull << 60, buf, sizeof(buf));
	assert_string_equal(buf, "1024P");
	units_format_size(UINT64_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "18446744073709551615");

	units_format_duration(1500, buf, sizeof(buf));
	assert_string_equal(buf, "1.5s");
	units_format_duration(250, buf, sizeof(buf));
	assert_string_equal(buf, "250ms");
	units_format_duration(90000, buf, sizeof(buf));
	assert_string_equal(buf, "1m30s");
	units_format_duration(0, buf, sizeof(buf));
	assert_string_equal(buf, "0ms");
	units_format_duration(7200000, buf, sizeof(buf));
	assert_string_equal(buf, "2h");

	units_format_milli(2000, buf, sizeof(buf));
	assert_string_equal(buf, "2");
	units_format_milli(250, buf, sizeof(buf));
	assert_string_equal(buf, "0.25");
	units_format_milli(1, buf, sizeof(buf));
	assert_string_equal(buf, "0.001");
	units_format_milli(0, buf, sizeof(buf));
	assert_string_equal(buf, "0");

	/* A short buffer is cut, never overrun. */
	memset(buf, 'x', sizeof(buf));
	units_format_duration(3661001, buf, 4);
	assert_int_equal(strlen(buf), 3);
	assert_int_equal(buf[4], 'x');
}

/* Deterministic xorshift so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_round_trips(void **state)
{
	static const uint64_t sizes[] = {0, 1, 1023, 1024, 1025, 65536, 1536ull << 20,
					 8589934592ull, 3ull << 40, 1ull << 50, 1ull << 62,
					 UINT64_MAX, UINT64_MAX - 1023};
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	char buf[32];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t back = 0;

		units_format_size(sizes[i], buf, sizeof(buf));
		assert_int_equal(units_parse_size(buf, &back), 0);
		assert_true(back == sizes[i]);
	}
	for (int i = 0; i < 2000; i++) {
		uint64_t v = rnd(&seed), back = 0;
		uint32_t m = (uint32_t)v, mback = 0;

		/* Mix exact multiples of the units with arbitrary values. */
		v <<= (i % 5) * 10;
		units_format_size(v, buf, sizeof(buf));
		assert_int_equal(units_parse_size(buf, &back), 0);
		assert_true(back == v);

		v = rnd(&seed) % (1000ull * 3600000);
		if (i % 3 == 0)
			v -= v % 1000;
		units_format_duration(v, buf, sizeof(buf));
		if (units_parse_duration(buf, &back) != 0)
			fail_msg("formatted duration \"%s\" (%llu) does not parse", buf,
				 (unsigned long long)v);
		assert_true(back == v);

		units_format_milli(m, buf, sizeof(buf));
		assert_int_equal(units_parse_milli(buf, &mback), 0);
		assert_int_equal(mback, m);
	}
	units_format_milli(UINT32_MAX, buf, sizeof(buf));
	assert_string_equal(buf, "4294967.295");
	units_format_duration(UINT64_MAX, buf, sizeof(buf));
	{
		uint64_t back = 0;

		assert_int_equal(units_parse_duration(buf, &back), 0);
		assert_true(back == UINT64_MAX);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_good),     cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_duration_good), cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_milli_good),    cmocka_unit_test(test_milli_bad),
		cmocka_unit_test(test_format_examples), cmocka_unit_test(test_round_trips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
