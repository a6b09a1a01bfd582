/*
 * wire-test.c - the frame codec: exact header layout, round trips of every
 * type, every way a header can be wrong, bodies that are not what the type
 * needs, the accessors' range checks, and a fixed-seed fuzz run of random and
 * mutated frames (run it under valgrind: decode must never read past the
 * frame and must free whatever it parsed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "wire.h"

#define WHY_LEN 256

/* Decode from an exactly-sized heap copy so valgrind flags any read past len. */
static int decode_copy(const uint8_t *frame, size_t len, struct wire_hdr *h, cJSON **body,
		       char *why)
{
	uint8_t *copy = xmalloc(len ? len : 1);
	int rv;

	if (len)
		memcpy(copy, frame, len);
	why[0] = '\0';
	rv = wire_decode(copy, len, h, body, why, WHY_LEN);
	free(copy);
	if (rv != 0)
		assert_null(*body);
	else
		assert_true(cJSON_IsObject(*body));
	return rv;
}

/* A header followed by body text, with every field given explicitly. */
static uint8_t *raw_frame(uint32_t magic, uint16_t version, uint16_t type, uint32_t flags,
			  uint32_t body_len, const void *body, size_t n, size_t *len)
{
	uint8_t *f = xcalloc(1, WIRE_HDR_LEN + n + 1);
	uint8_t hdr[16];

	for (int i = 0; i < 4; i++)
		hdr[i] = (uint8_t)(magic >> (24 - 8 * i));
	hdr[4] = (uint8_t)(version >> 8);
	hdr[5] = (uint8_t)version;
	hdr[6] = (uint8_t)(type >> 8);
	hdr[7] = (uint8_t)type;
	for (int i = 0; i < 4; i++) {
		hdr[8 + i] = (uint8_t)(flags >> (24 - 8 * i));
		hdr[12 + i] = (uint8_t)(body_len >> (24 - 8 * i));
	}
	memcpy(f, hdr, sizeof(hdr));
	if (n)
		memcpy(f + WIRE_HDR_LEN, body, n);
	*len = WIRE_HDR_LEN + n;
	return f;
}

/* A well-formed frame of type with body text s. */
static uint8_t *text_frame(uint16_t type, const char *s, size_t *len)
{
	return raw_frame(WIRE_MAGIC, WIRE_VERSION, type, 0, (uint32_t)strlen(s), s, strlen(s), len);
}

static int decode_text(uint16_t type, const char *s, cJSON **body, char *why)
{
	struct wire_hdr h;
	size_t len;
	uint8_t *f = text_frame(type, s, &len);
	int rv = decode_copy(f, len, &h, body, why);

	free(f);
	return rv;
}

/* A valid body for each type, with its required fields and some extras. */
static const struct {
	uint16_t type;
	const char *body;
} samples[] = {
    {WIRE_SUBMIT, "{\"spec\":{\"name\":\"resnet50\",\"tasks\":4}}"},
    {WIRE_LIST, "{\"all\":true}"},
    {WIRE_STATUS, "{\"job\":\"resnet50\"}"},
    {WIRE_CANCEL, "{\"job\":\"42\"}"},
    {WIRE_NODES, "{}"},
    {WIRE_LOGS, "{\"job\":\"resnet50\",\"task\":3,\"offset\":1048576,\"max\":65536}"},
    {WIRE_DRAIN, "{\"node\":\"gpu-07\",\"evict\":true}"},
    {WIRE_UNCORDON, "{\"node\":\"gpu-07\"}"},
    {WIRE_OK, "{\"id\":42,\"name\":\"resnet50\"}"},
    {WIRE_ERROR, "{\"code\":-4,\"message\":\"no such job\"}"},
    {WIRE_SYNC, "{\"node\":\"gpu-07\",\"ack\":17,\"events\":[],\"tasks\":[{\"id\":1}]}"},
    {WIRE_ORDERS, "{\"ack\":18,\"orders\":[{\"op\":\"start\"}]}"},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static void encode_sample(size_t i, uint64_t seq, uint8_t **f, size_t *len)
{
	cJSON *b = cJSON_Parse(samples[i].body);

	assert_non_null(b);
	assert_int_equal(wire_encode(samples[i].type, seq, wire_sender_id("gpu-07"), b, f, len), 0);
	cJSON_Delete(b);
}

static void test_header_layout(void **state)
{
	cJSON *b = cJSON_CreateObject();
	uint8_t *f = NULL;
	size_t len = 0;
	static const uint8_t want[WIRE_HDR_LEN] = {
	    0x4d, 0x4c, 0x53, 0x43,			    /* "MLSC" */
	    0x00, 0x01,					    /* version */
	    0x00, 0x21,					    /* type 33 */
	    0x00, 0x00, 0x00, 0x00,			    /* flags */
	    0x00, 0x00, 0x00, 0x02,			    /* body_len */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* seq */
	    0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, /* sender */
	};

	assert_int_equal(
	    wire_encode(WIRE_ORDERS, 0x0102030405060708ull, 0xf1f2f3f4f5f6f7f8ull, b, &f, &len), 0);
	assert_int_equal(len, WIRE_HDR_LEN + 2);
	assert_memory_equal(f, want, WIRE_HDR_LEN);
	assert_memory_equal(f + WIRE_HDR_LEN, "{}", 2);
	free(f);
	cJSON_Delete(b);
}

static void test_round_trip(void **state)
{
	char why[WHY_LEN];

	for (size_t i = 0; i < NSAMPLES; i++) {
		struct wire_hdr h;
		cJSON *want = cJSON_Parse(samples[i].body), *got = NULL;
		uint8_t *f = NULL;
		size_t len = 0;
		uint64_t seq = 1000 + i * 0x100000001ull;

		encode_sample(i, seq, &f, &len);
		assert_int_equal(decode_copy(f, len, &h, &got, why), 0);
		assert_int_equal(h.version, WIRE_VERSION);
		assert_int_equal(h.type, samples[i].type);
		assert_int_equal(h.flags, 0);
		assert_int_equal(h.body_len, len - WIRE_HDR_LEN);
		assert_true(h.seq == seq);
		assert_true(h.sender == wire_sender_id("gpu-07"));
		assert_true(cJSON_Compare(want, got, true));
		cJSON_Delete(want);
		cJSON_Delete(got);
		free(f);
	}
}

static void test_null_and_empty_body(void **state)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body = NULL;
	uint8_t *f = NULL;
	size_t len = 0;

	/* A NULL body goes out as an empty object. */
	assert_int_equal(wire_encode(WIRE_NODES, 1, 0, NULL, &f, &len), 0);
	assert_int_equal(decode_copy(f, len, &h, &body, why), 0);
	assert_null(body->child);
	assert_int_equal(h.sender, 0);
	cJSON_Delete(body);
	free(f);

	/* body_len 0 is fine for types that need nothing ... */
	uint16_t empty_ok[] = {WIRE_LIST, WIRE_NODES, WIRE_OK};
	for (size_t i = 0; i < sizeof(empty_ok) / sizeof(empty_ok[0]); i++) {
		assert_int_equal(decode_text(empty_ok[i], "", &body, why), 0);
		assert_null(body->child);
		cJSON_Delete(body);
	}
	/* ... and refused for the others. */
	uint16_t empty_bad[] = {WIRE_SUBMIT, WIRE_STATUS, WIRE_CANCEL, WIRE_LOGS,
				WIRE_ERROR,  WIRE_SYNC,	  WIRE_ORDERS};
	for (size_t i = 0; i < sizeof(empty_bad) / sizeof(empty_bad[0]); i++) {
		assert_int_equal(decode_text(empty_bad[i], "", &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "missing"));
	}
}

static void test_truncated(void **state)
{
	char why[WHY_LEN];

	for (size_t i = 0; i < NSAMPLES; i++) {
		struct wire_hdr h;
		cJSON *body = (cJSON *)0x1;
		uint8_t *f = NULL;
		size_t len = 0;

		encode_sample(i, 7, &f, &len);
		for (size_t n = 0; n < len; n++) {
			int rv = decode_copy(f, n, &h, &body, why);

			assert_int_equal(rv, ERR_PROTO);
			assert_true(why[0] != '\0');
		}
		/* One byte too many is as wrong as one too few. */
		uint8_t *longer = xcalloc(1, len + 1);
		memcpy(longer, f, len);
		longer[len] = ' ';
		assert_int_equal(decode_copy(longer, len + 1, &h, &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "bytes follow"));
		free(longer);
		free(f);
	}
	assert_int_equal(wire_decode(NULL, 0, NULL, &(cJSON *){NULL}, NULL, 0), ERR_PROTO);
}

static void test_length_mismatch(void **state)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body;
	size_t len;
	uint8_t *f;

	f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_NODES, 0, 10, "{  }", 4, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	assert_string_equal(why, "body_len 10 but 4 bytes follow");
	free(f);

	f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_NODES, 0, 2, "{}  ", 4, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	assert_string_equal(why, "body_len 2 but 4 bytes follow");
	free(f);
}

static void test_oversized(void **state)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body;
	size_t len;
	uint8_t *f;
	uint32_t sizes[] = {WIRE_MAX_BODY + 1, 0x10000000u, 0xffffffffu};

	/* Refused from the header alone, before any claim about what follows. */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_NODES, 0, sizes[i], "{}", 2, &len);
		assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_TOOBIG);
		assert_non_null(strstr(why, "over the limit of 8388608 bytes a message (WIRE_MAX_BODY)"));
		free(f);
	}

	/* Encoding refuses a body over the limit. */
	size_t n = WIRE_MAX_BODY;
	char *big = xmalloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	cJSON *b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "data", big);
	free(big);
	uint8_t *out = NULL;
	size_t outlen = 0;
	assert_int_equal(wire_encode(WIRE_OK, 1, 0, b, &out, &outlen), ERR_TOOBIG);
	assert_null(out);
	cJSON_Delete(b);
}

static void test_bad_header(void **state)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body;
	size_t len;
	uint8_t *f;

	f = raw_frame(0x4d4c5344u, WIRE_VERSION, WIRE_NODES, 0, 2, "{}", 2, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	assert_string_equal(why, "bad magic 0x4d4c5344");
	free(f);

	/* Byte-swapped magic: a little-endian encoder. */
	f = raw_frame(0x43534c4du, WIRE_VERSION, WIRE_NODES, 0, 2, "{}", 2, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	free(f);

	uint16_t versions[] = {0, 2, 0x0100, 0xffff};
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		f = raw_frame(WIRE_MAGIC, versions[i], WIRE_NODES, 0, 2, "{}", 2, &len);
		assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_VERSION);
		assert_non_null(strstr(why, "version"));
		free(f);
	}

	uint32_t flags[] = {1, 0x80000000u, 0xffffffffu};
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_NODES, flags[i], 2, "{}", 2, &len);
		assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "flags"));
		free(f);
	}

	uint16_t types[] = {0, 15, 18, 31, 34, 0x0100, 0xffff};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		assert_false(wire_type_known(types[i]));
		assert_string_equal(wire_type_str(types[i]), "unknown");
		f = raw_frame(WIRE_MAGIC, WIRE_VERSION, types[i], 0, 2, "{}", 2, &len);
		assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "unknown type"));
		free(f);
	}
	for (size_t i = 0; i < NSAMPLES; i++)
		assert_true(wire_type_known(samples[i].type));
	assert_string_equal(wire_type_str(WIRE_SUBMIT), "submit");
	assert_string_equal(wire_type_str(WIRE_ORDERS), "orders");
	/* The serve requests. */
	assert_string_equal(wire_type_str(WIRE_ENDPOINTS), "endpoints");
	assert_string_equal(wire_type_str(WIRE_SCALE), "scale");
	assert_string_equal(wire_type_str(WIRE_ROLLOUT), "rollout");
	assert_string_equal(wire_type_str(WIRE_ROLLBACK), "rollback");
	/* Key management: mlctl nodes remove. */
	assert_true(wire_type_known(WIRE_NODE_REMOVE));
	assert_string_equal(wire_type_str(WIRE_NODE_REMOVE), "node-remove");
	assert_int_equal(decode_text(WIRE_NODE_REMOVE, "{}", &body, why), ERR_PROTO);
	assert_non_null(strstr(why, "field 'node' missing"));
	assert_int_equal(decode_text(WIRE_NODE_REMOVE, "{\"node\":\"a1\"}", &body, why), 0);
	cJSON_Delete(body);
	assert_string_equal(wire_type_str(WIRE_HISTORY), "history");

	/* why may be NULL. */
	f = raw_frame(0, WIRE_VERSION, WIRE_NODES, 0, 2, "{}", 2, &len);
	body = NULL;
	assert_int_equal(wire_decode(f, len, &h, &body, NULL, 0), ERR_PROTO);
	assert_null(body);
	free(f);
}

static void test_encode_errors(void **state)
{
	uint8_t *f = NULL;
	size_t len = 0;
	cJSON *arr = cJSON_CreateArray();

	assert_int_equal(wire_encode(0, 1, 0, NULL, &f, &len), ERR_INVAL);
	assert_int_equal(wire_encode(99, 1, 0, NULL, &f, &len), ERR_INVAL);
	assert_int_equal(wire_encode(WIRE_OK, 1, 0, arr, &f, &len), ERR_INVAL);
	assert_null(f);
	cJSON_Delete(arr);
}

static void test_not_objects(void **state)
{
	static const char *bodies[] = {
	    "[]", "[{\"job\":\"x\"}]", "1", "\"job\"", "null", "true", "false", "-0.5",
	};
	char why[WHY_LEN];
	cJSON *body;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(decode_text(WIRE_NODES, bodies[i], &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "not a JSON object"));
	}
}

static void test_bad_json(void **state)
{
	static const char *bodies[] = {
	    "{",
	    "}",
	    "{\"a\":}",
	    "{\"a\" 1}",
	    "{a:1}",
	    "{\"a\":1,}",
	    "{'a':1}",
	    "{} x",
	    "{}{}",
	    "{} []",
	    "   ",
	    "\"unterminated",
	    "{\"a\":\"\\u12\"}",
	    "{\"a\":nul}",
	    "{\"a\":1}\x7f",
	};
	char why[WHY_LEN];
	cJSON *body;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(decode_text(WIRE_NODES, bodies[i], &body, why), ERR_PROTO);
		assert_true(why[0] != '\0');
	}
	/* Trailing JSON white space is fine; leading too. */
	assert_int_equal(decode_text(WIRE_NODES, " \t{\"a\":1} \r\n\t ", &body, why), 0);
	cJSON_Delete(body);
}

static void test_nul_and_control_bytes(void **state)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body;
	size_t len;
	uint8_t *f;
	static const char with_nul[] = "{\"job\":\"a\0b\"}";

	f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_STATUS, 0, sizeof(with_nul) - 1, with_nul,
		      sizeof(with_nul) - 1, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	assert_non_null(strstr(why, "0x00"));
	free(f);

	/* A NUL after a complete object must not hide trailing bytes either. */
	static const char nul_tail[] = "{\"job\":\"a\"}\0junk";
	f = raw_frame(WIRE_MAGIC, WIRE_VERSION, WIRE_STATUS, 0, sizeof(nul_tail) - 1, nul_tail,
		      sizeof(nul_tail) - 1, &len);
	assert_int_equal(decode_copy(f, len, &h, &body, why), ERR_PROTO);
	free(f);

	assert_int_equal(decode_text(WIRE_STATUS, "{\"job\":\"a\\u0000b\"}", &body, why),
			 ERR_PROTO);
	assert_non_null(strstr(why, "\\u0000"));
	assert_int_equal(decode_text(WIRE_STATUS, "{\"job\":\"a\x01\"}", &body, why), ERR_PROTO);
	assert_int_equal(decode_text(WIRE_STATUS, "{\x0b\"job\":\"a\"}", &body, why), ERR_PROTO);

	/* An escaped backslash followed by u0000 is just text. */
	const char *s = NULL;
	assert_int_equal(decode_text(WIRE_STATUS, "{\"job\":\"a\\\\u0000\"}", &body, why), 0);
	assert_int_equal(wire_get_str(body, "job", 64, &s), 0);
	assert_string_equal(s, "a\\u0000");
	cJSON_Delete(body);
	/* Other escapes survive. */
	assert_int_equal(decode_text(WIRE_STATUS, "{\"job\":\"\\u00e9\\n\\u0001\"}", &body, why),
			 0);
	assert_int_equal(wire_get_str(body, "job", 64, &s), 0);
	assert_string_equal(s, "\xc3\xa9\n\x01");
	cJSON_Delete(body);
}

static void test_required_fields(void **state)
{
	static const struct {
		uint16_t type;
		const char *body;
		const char *why;
	} cases[] = {
	    {WIRE_SUBMIT, "{}", "field 'spec' missing"},
	    {WIRE_SUBMIT, "{\"spec\":\"x\"}", "field 'spec' must be an object"},
	    {WIRE_SUBMIT, "{\"spec\":[]}", "field 'spec' must be an object"},
	    {WIRE_SUBMIT, "{\"Spec\":{}}", "field 'spec' missing"},
	    {WIRE_STATUS, "{\"jobs\":\"x\"}", "field 'job' missing"},
	    {WIRE_STATUS, "{\"job\":1}", "field 'job' must be a string"},
	    {WIRE_STATUS, "{\"job\":null}", "field 'job' must be a string"},
	    {WIRE_CANCEL, "{\"job\":[\"x\"]}", "field 'job' must be a string"},
	    {WIRE_CANCEL, "{}", "field 'job' missing"},
	    {WIRE_LOGS, "{\"task\":1,\"offset\":0}", "field 'job' missing"},
	    {WIRE_DRAIN, "{\"evict\":true}", "field 'node' missing"},
	    {WIRE_UNCORDON, "{\"node\":7}", "field 'node' must be a string"},
	    {WIRE_LOGS, "{\"job\":\"j\",\"offset\":0}", "field 'task' missing"},
	    {WIRE_LOGS, "{\"job\":\"j\",\"task\":\"1\",\"offset\":0}",
	     "field 'task' must be a number"},
	    {WIRE_LOGS, "{\"job\":\"j\",\"task\":1}", "field 'offset' missing"},
	    {WIRE_LOGS, "{\"job\":\"j\",\"task\":1,\"offset\":true}",
	     "field 'offset' must be a number"},
	    {WIRE_ERROR, "{\"message\":\"m\"}", "field 'code' missing"},
	    {WIRE_ERROR, "{\"code\":1}", "field 'message' missing"},
	    {WIRE_ERROR, "{\"code\":1,\"message\":{}}", "field 'message' must be a string"},
	    {WIRE_SYNC, "{\"ack\":1}", "field 'node' missing"},
	    {WIRE_SYNC, "{\"node\":\"n\",\"ack\":\"1\"}", "field 'ack' must be a number"},
	    {WIRE_ORDERS, "{\"orders\":[]}", "field 'ack' missing"},
	    {WIRE_ORDERS, "{\"ack\":1,\"orders\":{}}", "field 'orders' must be an array"},
	    {WIRE_ORDERS, "{\"ack\":1}", "field 'orders' missing"},
	};
	char why[WHY_LEN];
	cJSON *body;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(decode_text(cases[i].type, cases[i].body, &body, why), ERR_PROTO);
		if (!strstr(why, cases[i].why))
			fail_msg("case %zu: why \"%s\", want \"%s\"", i, why, cases[i].why);
	}
	/* The same bodies under types that need nothing are fine. */
	assert_int_equal(decode_text(WIRE_OK, "{\"job\":1}", &body, why), 0);
	cJSON_Delete(body);
	assert_int_equal(decode_text(WIRE_LIST, "{\"spec\":\"x\"}", &body, why), 0);
	cJSON_Delete(body);
}

static void test_get_int(void **state)
{
	cJSON *o = cJSON_Parse("{\"a\":42,\"neg\":-7,\"frac\":1.5,\"big\":9007199254740992,"
			       "\"bigger\":9007199254740994,\"nbig\":-9007199254740992,"
			       "\"nbigger\":-9007199254740994,\"huge\":1e300,\"s\":\"1\","
			       "\"b\":true,\"n\":null,\"exp\":1e3,\"zero\":-0}");
	int64_t v = 12345;

	assert_non_null(o);
	assert_int_equal(wire_get_int(o, "missing", 0, 100, &v), ERR_NOENT);
	assert_int_equal(v, 12345);
	assert_int_equal(wire_get_int(o, "a", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(wire_get_int(o, "a", 42, 42, &v), 0);
	assert_int_equal(wire_get_int(o, "a", 43, 100, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "a", 0, 41, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "neg", -10, 0, &v), 0);
	assert_int_equal(v, -7);
	assert_int_equal(wire_get_int(o, "neg", 0, 10, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "exp", 0, 1000, &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(wire_get_int(o, "zero", 0, 0, &v), 0);
	assert_int_equal(v, 0);

	v = 12345;
	assert_int_equal(wire_get_int(o, "frac", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "huge", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "bigger", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "nbigger", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "s", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "b", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_int(o, "n", INT64_MIN, INT64_MAX, &v), ERR_PROTO);
	assert_int_equal(v, 12345);

	assert_int_equal(wire_get_int(o, "big", INT64_MIN, INT64_MAX, &v), 0);
	assert_true(v == 9007199254740992ll);
	assert_int_equal(wire_get_int(o, "nbig", INT64_MIN, INT64_MAX, &v), 0);
	assert_true(v == -9007199254740992ll);
	assert_int_equal(wire_get_int(o, "big", 0, 9007199254740991ll, &v), ERR_PROTO);
	cJSON_Delete(o);
}

static void test_get_u64(void **state)
{
	cJSON *o = cJSON_Parse("{\"a\":42,\"neg\":-1,\"big\":9007199254740992,"
			       "\"bigger\":18446744073709551615,\"frac\":0.25,\"s\":\"4\"}");
	uint64_t v = 99;

	assert_non_null(o);
	assert_int_equal(wire_get_u64(o, "missing", 100, &v), ERR_NOENT);
	assert_int_equal(v, 99);
	assert_int_equal(wire_get_u64(o, "a", 42, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(wire_get_u64(o, "a", 41, &v), ERR_PROTO);
	assert_int_equal(wire_get_u64(o, "neg", UINT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_u64(o, "bigger", UINT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_u64(o, "frac", UINT64_MAX, &v), ERR_PROTO);
	assert_int_equal(wire_get_u64(o, "s", UINT64_MAX, &v), ERR_PROTO);
	assert_int_equal(v, 42);
	assert_int_equal(wire_get_u64(o, "big", UINT64_MAX, &v), 0);
	assert_true(v == 9007199254740992ull);
	cJSON_Delete(o);
}

static void test_get_other(void **state)
{
	cJSON *o = cJSON_Parse("{\"s\":\"hello\",\"e\":\"\",\"n\":3,\"t\":true,\"f\":false,"
			       "\"arr\":[1,2,3],\"empty\":[],\"obj\":{\"k\":1}}");
	const char *s = NULL;
	const cJSON *c = NULL;
	bool b = false;

	assert_non_null(o);
	assert_int_equal(wire_get_str(o, "s", 5, &s), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(wire_get_str(o, "s", 4, &s), ERR_PROTO);
	assert_int_equal(wire_get_str(o, "e", 0, &s), 0);
	assert_string_equal(s, "");
	assert_int_equal(wire_get_str(o, "n", 100, &s), ERR_PROTO);
	assert_int_equal(wire_get_str(o, "arr", 100, &s), ERR_PROTO);
	s = NULL;
	assert_int_equal(wire_get_str(o, "missing", 100, &s), ERR_NOENT);
	assert_null(s);
	assert_int_equal(wire_get_str(o, "S", 100, &s), ERR_NOENT); /* case matters */

	assert_int_equal(wire_get_bool(o, "t", &b), 0);
	assert_true(b);
	assert_int_equal(wire_get_bool(o, "f", &b), 0);
	assert_false(b);
	assert_int_equal(wire_get_bool(o, "n", &b), ERR_PROTO);
	assert_int_equal(wire_get_bool(o, "s", &b), ERR_PROTO);
	assert_int_equal(wire_get_bool(o, "missing", &b), ERR_NOENT);

	assert_int_equal(wire_get_array(o, "arr", 3, &c), 0);
	assert_ptr_equal(c, cJSON_GetObjectItem(o, "arr"));
	assert_int_equal(wire_get_array(o, "arr", 2, &c), ERR_PROTO);
	assert_int_equal(wire_get_array(o, "empty", 0, &c), 0);
	assert_int_equal(wire_get_array(o, "obj", 10, &c), ERR_PROTO);
	assert_int_equal(wire_get_array(o, "missing", 10, &c), ERR_NOENT);

	assert_int_equal(wire_get_object(o, "obj", &c), 0);
	assert_ptr_equal(c, cJSON_GetObjectItem(o, "obj"));
	assert_int_equal(wire_get_object(o, "arr", &c), ERR_PROTO);
	assert_int_equal(wire_get_object(o, "s", &c), ERR_PROTO);
	assert_int_equal(wire_get_object(o, "missing", &c), ERR_NOENT);
	cJSON_Delete(o);
}

static void test_sender_id(void **state)
{
	/* Published FNV-1a 64 test vectors. */
	assert_true(wire_sender_id("") == 0xcbf29ce484222325ull);
	assert_true(wire_sender_id("a") == 0xaf63dc4c8601ec8cull);
	assert_true(wire_sender_id("foobar") == 0x85944171f73967e8ull);
	assert_true(wire_sender_id("gpu-07") != wire_sender_id("gpu-08"));
	assert_true(wire_sender_id("gpu-07") != 0);
}

/* Cumulative acks drop exactly the items numbered up to the ack. */
static void test_drop_acked(void **state)
{
	cJSON *a = cJSON_Parse("[{\"seq\":1},{\"seq\":5},{\"seq\":2},{\"x\":1},{\"seq\":9}]");
	char *s;

	(void)state;
	assert_non_null(a);
	wire_drop_acked(a, 2);
	s = cJSON_PrintUnformatted(a);
	assert_string_equal(s, "[{\"seq\":5},{\"x\":1},{\"seq\":9}]");
	free(s);
	wire_drop_acked(a, 9);
	s = cJSON_PrintUnformatted(a);
	assert_string_equal(s, "[{\"x\":1}]");
	free(s);
	wire_drop_acked(NULL, 3);
	cJSON_Delete(a);

	/* Found by tests/fuzz/fuzz_wire: a seq of 2^64 or more (or below 0)
	 * was cast to uint64_t, which is undefined; such items stay. */
	a = cJSON_Parse("[{\"seq\":1e20},{\"seq\":18446744073709551616},{\"seq\":-1},"
			"{\"seq\":18446744073709549568},{\"seq\":3}]");
	assert_non_null(a);
	wire_drop_acked(a, UINT64_MAX);
	s = cJSON_PrintUnformatted(a);
	assert_string_equal(s, "[{\"seq\":1e+20},{\"seq\":1.8446744073709552e+19},{\"seq\":-1}]");
	free(s);
	cJSON_Delete(a);
}

/* Found by tests/fuzz/fuzz_wire: "1e999" parses to an infinity that cJSON
 * prints back as null, so a decoded body did not re-encode to itself (a
 * SYNC's "ack" would come back as null).  Such bodies are refused, at any
 * depth; the largest finite doubles still pass. */
static void test_non_finite_numbers(void **state)
{
	static const char *const bad[] = {
	    "{\"node\":\"a\",\"ack\":1e999}",
	    "{\"node\":\"a\",\"ack\":1,\"events\":[{\"seq\":-1e400}]}",
	    "{\"node\":\"a\",\"ack\":1,\"capacity\":{\"labels\":{\"x\":[[2e308]]}}}",
	};
	char why[WHY_LEN];
	cJSON *body = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(decode_text(WIRE_SYNC, bad[i], &body, why), ERR_PROTO);
		assert_non_null(strstr(why, "beyond the range"));
	}
	assert_int_equal(decode_text(WIRE_SYNC,
				     "{\"node\":\"a\",\"ack\":1,\"x\":[1.7976931348623157e308,"
				     "-1.7976931348623157e308,5e-324]}",
				     &body, why),
			 0);
	cJSON_Delete(body);
}

static void test_error_body(void **state)
{
	cJSON *b = wire_error_body(ERR_NOENT, "no job %s (%d tried)", "resnet50", 3);
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *got = NULL;
	uint8_t *f = NULL;
	size_t len = 0;
	int64_t code = 0;
	const char *msg = NULL;

	assert_int_equal(wire_encode(WIRE_ERROR, 5, 0, b, &f, &len), 0);
	assert_int_equal(decode_copy(f, len, &h, &got, why), 0);
	assert_int_equal(wire_get_int(got, "code", INT32_MIN, INT32_MAX, &code), 0);
	assert_int_equal(code, ERR_NOENT);
	assert_int_equal(wire_get_str(got, "message", WIRE_MAX_STR, &msg), 0);
	assert_string_equal(msg, "no job resnet50 (3 tried)");
	cJSON_Delete(got);
	cJSON_Delete(b);
	free(f);
}

/* xorshift64*: a fixed sequence on every platform, unlike rand(). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

/* Mostly JSON punctuation and a few raw bytes, so fuzzing reaches past the
 * first byte of the parser. */
static uint8_t rand_byte(void)
{
	static const char alphabet[] = "{}[]\":,.-+eE0123456789 \\utrfalsn\tjobspec";

	if (rng() % 4 == 0)
		return (uint8_t)rng();
	return (uint8_t)alphabet[rng() % (sizeof(alphabet) - 1)];
}

static void decode_fuzzed(const uint8_t *f, size_t len, int *accepted)
{
	char why[WHY_LEN];
	struct wire_hdr h;
	cJSON *body = NULL;
	int rv = decode_copy(f, len, &h, &body, why);

	if (rv == 0) {
		/* Anything accepted must hold up to what decode promises. */
		assert_true(wire_type_known(h.type));
		assert_int_equal(h.flags, 0);
		assert_int_equal(h.body_len + WIRE_HDR_LEN, len);
		cJSON_Delete(body);
		(*accepted)++;
	} else {
		assert_true(rv == ERR_PROTO || rv == ERR_VERSION || rv == ERR_TOOBIG);
		assert_true(why[0] != '\0');
	}
}

static void test_fuzz_random(void **state)
{
	static const uint16_t types[] = {WIRE_SUBMIT, WIRE_LIST,  WIRE_STATUS, WIRE_LOGS,
					 WIRE_OK,     WIRE_ERROR, WIRE_SYNC,   WIRE_ORDERS};
	int accepted = 0;

	rng_state = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 10000; i++) {
		size_t n = rng() % 96, len;
		uint8_t body[96];
		uint8_t *f;

		for (size_t j = 0; j < n; j++)
			body[j] = rand_byte();
		/* Every 4th frame opens and closes an object to get deeper. */
		if (i % 4 == 0 && n >= 2) {
			body[0] = '{';
			body[n - 1] = '}';
		}
		f = raw_frame(WIRE_MAGIC, WIRE_VERSION, types[rng() % 8], 0, (uint32_t)n, body, n,
			      &len);
		/* Sometimes the header is random too. */
		if (i % 10 == 0)
			for (int j = 0; j < WIRE_HDR_LEN; j++)
				f[j] = (uint8_t)rng();
		decode_fuzzed(f, len, &accepted);
		free(f);
	}
	/* Random bytes with {} around them rarely make a valid object. */
	print_message("random frames accepted: %d of 10000\n", accepted);
	assert_true(accepted < 10000);
}

static void test_fuzz_mutations(void **state)
{
	int accepted = 0;

	rng_state = 0x0123456789abcdefull;
	for (int i = 0; i < 10000; i++) {
		uint8_t *f = NULL, *m;
		size_t len = 0, mlen;

		encode_sample((size_t)i % NSAMPLES, (uint64_t)i, &f, &len);
		m = xmalloc(len + 8);
		memcpy(m, f, len);
		mlen = len;
		switch (rng() % 4) {
		case 0: /* flip bits anywhere */
			for (int k = 0, nk = 1 + (int)(rng() % 4); k < nk; k++)
				m[rng() % mlen] ^= (uint8_t)(1u << (rng() % 8));
			break;
		case 1: /* replace body bytes, keeping the header consistent */
			for (int k = 0, nk = 1 + (int)(rng() % 3); k < nk; k++)
				m[WIRE_HDR_LEN + rng() % (mlen - WIRE_HDR_LEN)] = rand_byte();
			break;
		case 2: { /* cut the body short and fix body_len to match */
			size_t cut = rng() % (mlen - WIRE_HDR_LEN);
			mlen -= cut;
			uint32_t bl = (uint32_t)(mlen - WIRE_HDR_LEN);
			for (int k = 0; k < 4; k++)
				m[12 + k] = (uint8_t)(bl >> (24 - 8 * k));
			break;
		}
		default: /* append bytes and fix body_len */
			for (int k = 0, nk = 1 + (int)(rng() % 8); k < nk; k++)
				m[mlen++] = rand_byte();
			uint32_t bl = (uint32_t)(mlen - WIRE_HDR_LEN);
			for (int k = 0; k < 4; k++)
				m[12 + k] = (uint8_t)(bl >> (24 - 8 * k));
			break;
		}
		decode_fuzzed(m, mlen, &accepted);
		free(m);
		free(f);
	}
	/* Some mutations (white space, digits) keep a frame valid; most do not. */
	print_message("mutated frames accepted: %d of 10000\n", accepted);
	assert_true(accepted > 0);
	assert_true(accepted < 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_layout),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_null_and_empty_body),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_length_mismatch),
	    cmocka_unit_test(test_oversized),
	    cmocka_unit_test(test_bad_header),
	    cmocka_unit_test(test_encode_errors),
	    cmocka_unit_test(test_not_objects),
	    cmocka_unit_test(test_bad_json),
	    cmocka_unit_test(test_nul_and_control_bytes),
	    cmocka_unit_test(test_required_fields),
	    cmocka_unit_test(test_get_int),
	    cmocka_unit_test(test_get_u64),
	    cmocka_unit_test(test_get_other),
	    cmocka_unit_test(test_sender_id),
	    cmocka_unit_test(test_error_body),
	    cmocka_unit_test(test_drop_acked),
	    cmocka_unit_test(test_non_finite_numbers),
	    cmocka_unit_test(test_fuzz_random),
	    cmocka_unit_test(test_fuzz_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
