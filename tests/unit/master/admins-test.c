/*
 * admins-test.c - the admins file's text: names, parsing (named, unnamed,
 * comments, every malformed line), find by name / key / fingerprint,
 * append, and dropping every line of a key while keeping the rest as is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admins.h"
#include "err.h"
#include "seal.h"
#include "util.h"

static void key(uint8_t pk[SEAL_PK_LEN], uint8_t fill)
{
	memset(pk, fill, SEAL_PK_LEN);
}

static char *pkstr(uint8_t fill)
{
	uint8_t pk[SEAL_PK_LEN];
	char s[SEAL_PK_STR_LEN];

	key(pk, fill);
	seal_pk_str(pk, s);
	return xstrdup(s);
}

static void test_names(void **state)
{
	char why[200];
	char long_name[ADMINS_NAME_MAX + 2];

	(void)state;
	assert_true(admins_name_ok("alice", why, sizeof(why)));
	assert_true(admins_name_ok("ops-2.team_b", why, sizeof(why)));
	assert_true(admins_name_ok("9lives", why, sizeof(why)));
	assert_false(admins_name_ok("", why, sizeof(why)));
	assert_non_null(strstr(why, "required"));
	assert_false(admins_name_ok("-x", why, sizeof(why)));
	assert_non_null(strstr(why, "must start with a letter or a digit"));
	assert_false(admins_name_ok(".hidden", why, sizeof(why)));
	assert_false(admins_name_ok("a/b", why, sizeof(why)));
	assert_non_null(strstr(why, "character '/' is not allowed"));
	assert_false(admins_name_ok("a b", why, sizeof(why)));
	assert_false(admins_name_ok("caf\xc3\xa9", why, sizeof(why)));
	assert_non_null(strstr(why, "'?'"));
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_false(admins_name_ok(long_name, why, sizeof(why)));
	assert_non_null(strstr(why, "at most 63"));
	long_name[ADMINS_NAME_MAX] = '\0';
	assert_true(admins_name_ok(long_name, why, sizeof(why)));
	/* why may be NULL. */
	assert_false(admins_name_ok("", NULL, 0));
}

static void test_parse(void **state)
{
	char *a = pkstr(1), *b = pkstr(2), *text, why[200];
	struct admin *ad;
	size_t n;
	uint8_t pk[SEAL_PK_LEN];

	(void)state;
	text = xasprintf("# admins\n\n%s\n  %s\tbob   # the on-call key\r\n#%s gone\n", a, b, a);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 2);
	key(pk, 1);
	assert_memory_equal(ad[0].pk, pk, SEAL_PK_LEN);
	assert_string_equal(ad[0].name, "");
	assert_int_equal(ad[0].line, 3);
	key(pk, 2);
	assert_memory_equal(ad[1].pk, pk, SEAL_PK_LEN);
	assert_string_equal(ad[1].name, "bob");
	assert_int_equal(ad[1].line, 4);
	free(ad);
	free(text);

	/* Empty and comment-only files: no admins, no array. */
	assert_int_equal(admins_parse("", &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);
	assert_null(ad);
	assert_int_equal(admins_parse("# nothing\n\n", &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 0);

	/* Malformed lines name the line and the reason. */
	text = xasprintf("%s ok\nnot-a-key x\n", a);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), ERR_INVAL);
	assert_null(ad);
	assert_non_null(strstr(why, "line 2: \"not-a-key\" is not a public key"));
	free(text);
	text = xasprintf("%s bad/name\n", a);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "line 1: admin name \"bad/name\""));
	free(text);
	text = xasprintf("%s one two\n", a);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "line 1: \"two\" after the name"));
	free(text);
	/* A key one character short. */
	text = xstrdup(a);
	text[42] = '\0';
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), ERR_INVAL);
	free(text);
	free(a);
	free(b);
}

static void test_parse_limit(void **state)
{
	char *a = pkstr(7), why[200];
	size_t len = (size_t)(ADMINS_MAX + 1) * (SEAL_PK_STR_LEN + 1);
	char *text = xmalloc(len + 1), *p = text;
	struct admin *ad;
	size_t n;

	(void)state;
	for (int i = 0; i < ADMINS_MAX + 1; i++)
		p += sprintf(p, "%s\n", a);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), ERR_TOOBIG);
	assert_null(ad);
	assert_non_null(strstr(why, "more than 4096"));
	/* One fewer line fits. */
	text[(size_t)ADMINS_MAX * (SEAL_PK_STR_LEN)] = '\0';
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, ADMINS_MAX);
	free(ad);
	free(text);
	free(a);
}

static void test_find_append_drop(void **state)
{
	uint8_t k1[SEAL_PK_LEN], k2[SEAL_PK_LEN], k3[SEAL_PK_LEN];
	char s2[SEAL_PK_STR_LEN], fp2[SEAL_FP_LEN], why[200];
	char *text, *next, *out;
	struct admin *ad;
	size_t n, removed;

	(void)state;
	key(k1, 1);
	key(k2, 2);
	key(k3, 3);
	/* Append adds the missing newline first. */
	text = admins_append("# hand-written, no final newline", k1, "admin");
	next = admins_append(text, k2, "alice");
	free(text);
	text = admins_append(next, k1, "again"); /* k1 twice, under two names */
	free(next);
	assert_int_equal(admins_parse(text, &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ad[0].name, "admin");
	assert_int_equal(ad[0].line, 2);
	seal_pk_str(k2, s2);
	seal_fingerprint(k2, fp2);
	assert_int_equal(admins_find(ad, n, "alice"), 1);
	assert_int_equal(admins_find(ad, n, s2), 1);
	assert_int_equal(admins_find(ad, n, fp2), 1);
	assert_int_equal(admins_find(ad, n, "again"), 2);
	assert_int_equal(admins_find(ad, n, "nobody"), -1);
	assert_int_equal(admins_find(ad, n, ""), -1);
	free(ad);

	/* Dropping k1 removes both of its lines, keeps the comment. */
	assert_int_equal(admins_drop(text, k1, &out, &removed, why, sizeof(why)), 0);
	assert_int_equal(removed, 2);
	next = xasprintf("# hand-written, no final newline\n%s alice\n", s2);
	assert_string_equal(out, next);
	free(next);
	assert_int_equal(admins_parse(out, &ad, &n, why, sizeof(why)), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(ad[0].pk, k2, SEAL_PK_LEN);
	free(ad);
	free(out);
	/* A key not listed: nothing removed, text unchanged. */
	assert_int_equal(admins_drop(text, k3, &out, &removed, why, sizeof(why)), 0);
	assert_int_equal(removed, 0);
	assert_string_equal(out, text);
	free(out);
	/* The last line without a newline is dropped too. */
	next = xasprintf("%s alice", s2);
	assert_int_equal(admins_drop(next, k2, &out, &removed, why, sizeof(why)), 0);
	assert_int_equal(removed, 1);
	assert_string_equal(out, "");
	free(out);
	free(next);
	/* A malformed file is not rewritten. */
	assert_int_equal(admins_drop("garbage\n", k1, &out, &removed, why, sizeof(why)),
			 ERR_INVAL);
	assert_null(out);
	assert_non_null(strstr(why, "line 1"));
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_parse_limit),
	    cmocka_unit_test(test_find_append_drop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
