/*
 * queues-conf-test.c - the queues file of mlmaster --queues
 * (master/queues_conf.c): what it accepts, defaults, and a clear refusal
 * naming the line and field for everything else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "../../../master/queues.h" /* not -Imaster: master/sched.h would hide <sched.h> */

static void test_good(void **state)
{
	const char *text = "queues:\n"
			   "  - {name: research, gpus: 8, weight: 2, borrow: true}\n"
			   "  - name: prod\n"
			   "    gpus: 16\n"
			   "fair_share_half_life: 90m\n";
	struct queues *qs = NULL;
	char why[256], names[64];

	(void)state;
	assert_int_equal(queues_parse("q.yaml", text, strlen(text), &qs, why, sizeof(why)), 0);
	assert_int_equal(qs->n, 2);
	assert_string_equal(qs->q[0].name, "research");
	assert_int_equal(qs->q[0].gpus, 8);
	assert_true(qs->q[0].weight == 2);
	assert_true(qs->q[0].borrow);
	/* Defaults: weight 1, no borrowing. */
	assert_int_equal(qs->q[1].gpus, 16);
	assert_true(qs->q[1].weight == 1);
	assert_false(qs->q[1].borrow);
	assert_int_equal(qs->half_life_ms, 90ull * 60 * 1000);
	assert_int_equal(queues_find(qs, "prod"), 2);
	assert_int_equal(queues_find(qs, "nope"), 0);
	assert_int_equal(queues_find(qs, NULL), 0);
	queues_names(qs, names, sizeof(names));
	assert_string_equal(names, "research, prod");
	queues_free(qs);

	/* The half-life defaults to a day. */
	text = "queues: [{name: a, gpus: 0}]\n";
	assert_int_equal(queues_parse("q.yaml", text, strlen(text), &qs, why, sizeof(why)), 0);
	assert_int_equal(qs->half_life_ms, QUEUES_DEFAULT_HALF_LIFE_MS);
	queues_free(qs);
	queues_free(NULL);
}

static void bad(const char *text, const char *msg)
{
	struct queues *qs = (struct queues *)1;
	char why[256];

	assert_int_equal(queues_parse("q.yaml", text, strlen(text), &qs, why, sizeof(why)),
			 ERR_INVAL);
	assert_null(qs);
	if (strcmp(why, msg) != 0)
		fail_msg("for:\n%s\ngot:      %s\nexpected: %s", text, why, msg);
}

static void test_bad(void **state)
{
	(void)state;
	bad("queues:\n  - {name: a, gpus: 2, gpuz: 3}\n",
	    "q.yaml:2: queues[0].gpuz: unknown field (a queue has name, gpus, weight and borrow)");
	bad("queues:\n  - {name: a}\n", "q.yaml:2: queues[0]: gpus: required (the queue's GPU quota)");
	bad("queues:\n  - {gpus: 1}\n", "q.yaml:2: queues[0]: name: required");
	bad("queues:\n  - {name: a, gpus: -1}\n",
	    "q.yaml:2: queues[0].gpus: \"-1\" is not a whole number of GPUs (0..1000000)");
	bad("queues:\n  - {name: a, gpus: 1.5}\n",
	    "q.yaml:2: queues[0].gpus: \"1.5\" is not a whole number of GPUs (0..1000000)");
	bad("queues:\n  - {name: a, gpus: 1000001}\n",
	    "q.yaml:2: queues[0].gpus: \"1000001\" is not a whole number of GPUs (0..1000000)");
	bad("queues:\n  - {name: a, gpus: 1, weight: 0}\n",
	    "q.yaml:2: queues[0].weight: \"0\" is not a positive number (at most 1000000)");
	bad("queues:\n  - {name: a, gpus: 1, weight: nan}\n",
	    "q.yaml:2: queues[0].weight: \"nan\" is not a positive number (at most 1000000)");
	bad("queues:\n  - {name: a, gpus: 1, borrow: yes}\n",
	    "q.yaml:2: queues[0].borrow: \"yes\" must be true or false");
	bad("queues:\n  - {name: Team A, gpus: 1}\n",
	    "q.yaml:2: queues[0].name: \"Team A\" is not a valid queue name ([a-z0-9][a-z0-9._-]*, "
	    "not all digits)");
	bad("queues:\n  - {name: a, gpus: 1, gpus: 2}\n", "q.yaml:2: queues[0].gpus: given twice");
	bad("queues:\n  - {name: a, gpus: 1}\n  - {name: a, gpus: 2}\n",
	    "q.yaml:3: queues[1].name: \"a\" is also queues[0]");
	bad("queues:\n  - {name: a, gpus: [1]}\n", "q.yaml:2: queues[0].gpus: must be a single value");
	bad("queues:\n  - a\n",
	    "q.yaml:2: queues[0]: must be a mapping like {name: research, gpus: 8}");
	bad("queues: []\n", "q.yaml:1: queues: must be a non-empty list");
	bad("queues: {a: 1}\n", "q.yaml:1: queues: must be a non-empty list");
	bad("fair_share_half_life: 1h\n",
	    "q.yaml:1: queues: required (a list of {name, gpus, weight, borrow})");
	bad("queues: [{name: a, gpus: 1}]\nfair_share_half_life: 10\n",
	    "q.yaml:2: fair_share_half_life: \"10\" is not a duration of at least 1s (like 30m, 1h, "
	    "7d)");
	bad("queues: [{name: a, gpus: 1}]\nfair_share_half_life: 500ms\n",
	    "q.yaml:2: fair_share_half_life: \"500ms\" is not a duration of at least 1s (like 30m, "
	    "1h, 7d)");
	bad("queues: [{name: a, gpus: 1}]\nquotas: 3\n",
	    "q.yaml:2: quotas: unknown field (the file has queues and fair_share_half_life)");
	bad("- a\n", "q.yaml:1: must be a mapping with queues: [...]");
	bad("", "q.yaml:1: must be a mapping with queues: [...]");
	bad("queues: [\n", "q.yaml:2: did not find expected node content");
}

static void test_load_file(void **state)
{
	struct queues *qs = (struct queues *)1;
	char why[256];

	(void)state;
	assert_int_equal(queues_load_file("/nonexistent/q.yaml", &qs, why, sizeof(why)), ERR_IO);
	assert_null(qs);
	assert_non_null(strstr(why, "/nonexistent/q.yaml: cannot read it"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
