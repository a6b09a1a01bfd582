/*
 * bounds-test.c - node label limits and the per-peer rate table: a burst
 * passes whole and no more, credit comes back at the rate and never beyond
 * the burst, peers do not share buckets, and the table stays bounded however
 * many peers come, with the least recently seen evicted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "bounds.h"
#include "err.h"

static void test_labels(void **state)
{
	char why[160], key[BOUNDS_LABEL_KEY_MAX + 2], val[BOUNDS_LABEL_VALUE_MAX + 2];
	cJSON *l = cJSON_CreateObject();

	(void)state;
	assert_int_equal(bounds_labels_check(NULL, why, sizeof(why)), 0);
	for (int i = 0; i < BOUNDS_LABELS_MAX; i++) {
		char k[16];
		snprintf(k, sizeof(k), "k%d", i);
		cJSON_AddStringToObject(l, k, "v");
	}
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), 0);
	cJSON_AddStringToObject(l, "one-more", "v");
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), ERR_TOOBIG);
	assert_string_equal(why, "labels: 17 labels, over the limit of 16 per node");
	cJSON_Delete(l);

	l = cJSON_CreateObject();
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	cJSON_AddStringToObject(l, key, "v");
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), ERR_TOOBIG);
	assert_non_null(strstr(why, "is 64 bytes, over the limit of 63"));
	cJSON_Delete(l);

	l = cJSON_CreateObject();
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	cJSON_AddStringToObject(l, "zone", val);
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), ERR_TOOBIG);
	assert_string_equal(why, "labels: zone: the value is 64 bytes, over the limit of 63");
	val[BOUNDS_LABEL_VALUE_MAX] = '\0';
	cJSON_ReplaceItemInObject(l, "zone", cJSON_CreateString(val));
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), 0);
	cJSON_ReplaceItemInObject(l, "zone", cJSON_CreateNumber(3));
	assert_int_equal(bounds_labels_check(l, why, sizeof(why)), ERR_INVAL);
	cJSON_Delete(l);
}

static void test_burst_and_refill(void **state)
{
	struct bounds_rate *r = bounds_rate_new(10, 5, 64);
	uint64_t t = 1000;
	int ok = 0;

	(void)state;
	for (int i = 0; i < 20; i++)
		ok += bounds_rate_take(r, "a", 1, t);
	assert_int_equal(ok, 5); /* the burst, no more */
	/* 10 a second: one token each 100 ms. */
	assert_false(bounds_rate_take(r, "a", 1, t + 99));
	assert_true(bounds_rate_take(r, "a", 1, t + 100));
	assert_false(bounds_rate_take(r, "a", 1, t + 100));
	/* Another peer has its own bucket. */
	assert_true(bounds_rate_take(r, "b", 1, t + 100));
	/* A long pause fills the bucket to the burst, not beyond. */
	t += 3600 * 1000;
	ok = 0;
	for (int i = 0; i < 20; i++)
		ok += bounds_rate_take(r, "a", 1, t);
	assert_int_equal(ok, 5);
	/* Over a simulated second at a steady 50 requests a second, about the
	 * rate gets through. */
	ok = 0;
	for (int i = 0; i < 50; i++)
		ok += bounds_rate_take(r, "a", 1, t + 20 * (uint64_t)(i + 1));
	assert_in_range(ok, 9, 10);
	assert_int_equal(bounds_rate_rate(r), 10);
	bounds_rate_free(r);

	/* Rate 0: no limit. */
	r = bounds_rate_new(0, 0, 8);
	for (int i = 0; i < 1000; i++)
		assert_true(bounds_rate_take(r, "a", 1, 5));
	bounds_rate_free(r);
	bounds_rate_free(NULL);
}

static void test_bounded_table(void **state)
{
	struct bounds_rate *r = bounds_rate_new(1, 1, 64);
	uint8_t key[BOUNDS_KEY_LEN];
	uint64_t t = 1;

	(void)state;
	/* 100,000 peers: the table never holds more than its slots. */
	for (uint32_t i = 0; i < 100000; i++) {
		memset(key, 0, sizeof(key));
		memcpy(key, &i, sizeof(i));
		assert_true(bounds_rate_take(r, key, sizeof(key), t++));
		assert_true(bounds_rate_count(r) <= 64);
	}
	assert_int_equal(bounds_rate_count(r), 64);
	/* The newest peer is still known (its bucket empty); longer keys are
	 * cut to BOUNDS_KEY_LEN. */
	{
		uint8_t longer[BOUNDS_KEY_LEN + 8];
		uint32_t last = 99999;
		memset(longer, 0, sizeof(longer));
		memcpy(longer, &last, sizeof(last));
		longer[BOUNDS_KEY_LEN + 3] = 7;
		assert_false(bounds_rate_take(r, longer, sizeof(longer), t - 1));
	}
	bounds_rate_free(r);
}

/* A peer busy all along survives a stream of one-off peers in its window
 * (the least recently seen go first): it is never handed a fresh bucket. */
static void test_eviction_keeps_active(void **state)
{
	struct bounds_rate *r = bounds_rate_new(1, 2, 8); /* one window of 8 */
	uint64_t t = 1;
	char k[16];

	(void)state;
	assert_true(bounds_rate_take(r, "busy", 4, t));
	assert_true(bounds_rate_take(r, "busy", 4, t));
	assert_false(bounds_rate_take(r, "busy", 4, t));
	/* 400 one-off peers over 800 ms: busy earns less than a token. */
	for (int i = 0; i < 400; i++) {
		snprintf(k, sizeof(k), "p%d", i);
		assert_true(bounds_rate_take(r, k, strlen(k), ++t));
		assert_false(bounds_rate_take(r, "busy", 4, ++t));
	}
	assert_int_equal(bounds_rate_count(r), 8);
	bounds_rate_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_labels),
	    cmocka_unit_test(test_burst_and_refill),
	    cmocka_unit_test(test_bounded_table),
	    cmocka_unit_test(test_eviction_keeps_active),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
