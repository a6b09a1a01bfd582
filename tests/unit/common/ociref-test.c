/*
 * ociref-test.c - "oci:PATH[:TAG]" references: what parses, what is refused
 * and why, and resolving a tag to its manifest digest from index.json files
 * written here (good, missing, malformed, ambiguous).
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
#include <unistd.h>

#include "err.h"
#include "ociref.h"
#include "util.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"

static void test_parse_good(void **state)
{
	char path[256], tag[OCIREF_TAG_MAX + 1], why[256];

	(void)state;
	assert_int_equal(ociref_parse("oci:/srv/l:v1.2-rc_3", path, sizeof(path), tag,
				      sizeof(tag), why, sizeof(why)),
			 0);
	assert_string_equal(path, "/srv/l");
	assert_string_equal(tag, "v1.2-rc_3");
	assert_string_equal(why, "");
	assert_int_equal(
	    ociref_parse("oci:/srv/l", path, sizeof(path), tag, sizeof(tag), why, sizeof(why)), 0);
	assert_string_equal(path, "/srv/l");
	assert_string_equal(tag, "latest");
	/* Only checking. */
	assert_int_equal(ociref_parse("oci:/a:b", NULL, 0, NULL, 0, NULL, 0), 0);
	assert_true(ociref_is("oci:/x"));
	assert_false(ociref_is("/x"));
	assert_false(ociref_is(NULL));
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *in;
		int rv;
		const char *why;
	} cases[] = {
		{"/srv/l", ERR_INVAL, "does not start with \"oci:\""},
		{"oci:", ERR_INVAL, "no layout PATH after \"oci:\" (oci:PATH or oci:PATH:TAG)"},
		{"oci::t", ERR_INVAL, "no layout PATH after \"oci:\" (oci:PATH or oci:PATH:TAG)"},
		{"oci:srv/l:t", ERR_INVAL, "layout PATH \"srv/l\" is not absolute"},
		{"oci:/l:", ERR_INVAL,
		 "empty TAG after \"oci:/l:\" (leave out the ':' for \"latest\")"},
		{"oci:/l:a:b", ERR_INVAL,
		 "more than one ':' after \"oci:\" (a layout PATH may not contain ':'; the form "
		 "is oci:PATH:TAG)"},
		{"oci:/l:a/b", ERR_INVAL,
		 "tag \"a/b\" is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*; a '/' there means "
		 "a PATH with ':', which is not allowed)"},
		{"oci:/l:-x", ERR_INVAL,
		 "tag \"-x\" is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*; a '/' there means "
		 "a PATH with ':', which is not allowed)"},
		{"oci:/l\n:t", ERR_INVAL, "layout PATH holds a control character"},
	};
	char why[256];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rv = ociref_parse(cases[i].in, NULL, 0, NULL, 0, why, sizeof(why));
		if (rv != cases[i].rv || strcmp(why, cases[i].why) != 0)
			fail_msg("%s: got %d \"%s\", want %d \"%s\"", cases[i].in, rv, why,
				 cases[i].rv, cases[i].why);
	}
}

static void test_parse_limits(void **state)
{
	char ref[OCIREF_TAG_MAX + OCIREF_PATH_MAX + 16], path[8], why[256];
	size_t n;

	(void)state;
	/* A tag of 128 characters is fine, 129 is not. */
	n = (size_t)snprintf(ref, sizeof(ref), "oci:/l:");
	memset(ref + n, 'a', OCIREF_TAG_MAX);
	ref[n + OCIREF_TAG_MAX] = '\0';
	assert_int_equal(ociref_parse(ref, NULL, 0, NULL, 0, why, sizeof(why)), 0);
	strcat(ref, "a");
	assert_int_equal(ociref_parse(ref, NULL, 0, NULL, 0, why, sizeof(why)), ERR_TOOBIG);
	assert_string_equal(why, "tag is 129 characters long, over the limit of 128");
	/* A path over the limit. */
	ref[0] = '\0';
	strcat(ref, "oci:/");
	memset(ref + 5, 'p', OCIREF_PATH_MAX);
	ref[5 + OCIREF_PATH_MAX] = '\0';
	assert_int_equal(ociref_parse(ref, NULL, 0, NULL, 0, why, sizeof(why)), ERR_TOOBIG);
	/* A buffer too small for the path. */
	assert_int_equal(ociref_parse("oci:/a/long/path", path, sizeof(path), NULL, 0, why,
				      sizeof(why)),
			 ERR_TOOBIG);
}

/* A fresh layout folder with this index.json (NULL: none); freed by caller. */
static char *layout(const char *index)
{
	char *dir = xstrdup("/tmp/ociref-test-XXXXXX"), *p;

	assert_non_null(mkdtemp(dir));
	if (index) {
		p = xasprintf("%s/index.json", dir);
		assert_int_equal(file_write_atomic(p, index, strlen(index)), 0);
		free(p);
	}
	return dir;
}

static void test_resolve(void **state)
{
	char digest[OCIREF_DIGEST_LEN], why[512];
	char *dir = layout("{\"schemaVersion\":2,\"manifests\":["
			   "{\"digest\":\"" D1 "\",\"annotations\":{\"" OCIREF_TAG_ANNOTATION
			   "\":\"t\"}},"
			   "{\"digest\":\"" D2 "\",\"annotations\":{\"" OCIREF_TAG_ANNOTATION
			   "\":\"latest\"}},"
			   "{\"digest\":\"" D2 "\"}]}");

	(void)state;
	assert_int_equal(ociref_resolve(dir, "t", digest, why, sizeof(why)), 0);
	assert_string_equal(digest, D1);
	assert_int_equal(ociref_resolve(dir, "latest", digest, why, sizeof(why)), 0);
	assert_string_equal(digest, D2);
	assert_int_equal(ociref_resolve(dir, "nope", digest, why, sizeof(why)), ERR_NOENT);
	{
		char *want = xasprintf("OCI layout %s has no tag \"nope\" (it has \"t\", \"latest\")",
				       dir);
		assert_string_equal(why, want);
		free(want);
	}
	assert_string_equal(digest, "");
	rm_rf(dir);
	free(dir);
}

static void test_resolve_bad(void **state)
{
	static const struct {
		const char *index; /* NULL: no index.json */
		int rv;
		const char *why; /* after "OCI layout DIR" or "DIR " */
	} cases[] = {
		{NULL, ERR_INVAL, " is not an OCI image layout: it has no index.json"},
		{"[1,2]", ERR_INVAL, ": index.json is not an image index"},
		{"not json", ERR_INVAL, ": index.json is not an image index"},
		{"{\"manifests\":{}}", ERR_INVAL, ": index.json is not an image index"},
		{"{\"manifests\":[]}", ERR_NOENT, " has no tag \"t\" (it has no tags)"},
		{"{\"manifests\":[{\"digest\":\"sha512:00\",\"annotations\":{\"" OCIREF_TAG_ANNOTATION
		 "\":\"t\"}}]}",
		 ERR_INVAL, ": tag \"t\" has no sha256 digest in index.json"},
		{"{\"manifests\":[{\"digest\":\"sha256:../../etc\",\"annotations\":{"
		 "\"" OCIREF_TAG_ANNOTATION "\":\"t\"}}]}",
		 ERR_INVAL, ": tag \"t\" has no sha256 digest in index.json"},
		{"{\"manifests\":[{\"digest\":\"" D1 "\",\"annotations\":{\"" OCIREF_TAG_ANNOTATION
		 "\":\"t\"}},{\"digest\":\"" D2 "\",\"annotations\":{\"" OCIREF_TAG_ANNOTATION
		 "\":\"t\"}}]}",
		 ERR_INVAL,
		 ": tag \"t\" names two manifests in index.json (sha256:111111111111... and "
		 "sha256:222222222222...)"},
	};
	char digest[OCIREF_DIGEST_LEN], why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = layout(cases[i].index), *want;
		int rv = ociref_resolve(dir, "t", digest, why, sizeof(why));
		want = cases[i].index && cases[i].rv == ERR_NOENT
			   ? xasprintf("OCI layout %s%s", dir, cases[i].why)
		       : !cases[i].index ? xasprintf("%s%s", dir, cases[i].why)
					 : xasprintf("OCI layout %s%s", dir, cases[i].why);
		if (rv != cases[i].rv || strcmp(why, want) != 0)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rv, why,
				 cases[i].rv, want);
		free(want);
		rm_rf(dir);
		free(dir);
	}
	/* No such folder, and a file where the folder should be. */
	assert_int_equal(ociref_resolve("/nonexistent/ociref-test", "t", digest, why, sizeof(why)),
			 ERR_NOENT);
	assert_string_equal(why, "OCI layout /nonexistent/ociref-test: no such folder");
	assert_int_equal(ociref_resolve("/dev/null", "t", digest, why, sizeof(why)), ERR_INVAL);
	assert_string_equal(why, "OCI layout /dev/null is not a folder");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good), cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_limits), cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
