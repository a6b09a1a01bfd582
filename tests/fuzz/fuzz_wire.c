/*
 * fuzz_wire.c - libFuzzer harness for the frame decoder (common/wire.c).
 *
 * The input is one frame as it arrives from the network.  When wire_decode
 * accepts it, the harness checks the decoder's promises (the header fields
 * are the frame's bytes, the body is an object with the type's required
 * fields), reads every member of the body, and of the objects in its arrays
 * (events[], orders[], tasks[]), through every wire_get_*() accessor with
 * tight and loose limits, checking each result against the accessor's
 * contract, runs wire_drop_acked over every array, and re-encodes the body:
 * what wire_encode makes of a decoded body must decode again to the same
 * header and an equal body.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "util.h"
#include "wire.h"

#define MAX_WALK_DEPTH 4

static void check_accessors(const cJSON *obj, const char *key)
{
	static const size_t str_limits[] = {0, 1, 39, WIRE_MAX_STR, SIZE_MAX};
	static const struct {
		int64_t min, max;
	} int_ranges[] = {{0, 100}, {0, 128}, {INT32_MIN, INT32_MAX}, {INT64_MIN, INT64_MAX}};
	static const uint64_t u64_limits[] = {0, 65535, 10000, UINT32_MAX, UINT64_MAX >> 11,
					      UINT64_MAX};
	static const size_t item_limits[] = {0, 2, 100000};
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	const char *s;
	const cJSON *a;
	int64_t i64;
	uint64_t u64;
	bool b;
	int rv;

	for (size_t k = 0; k < sizeof(str_limits) / sizeof(str_limits[0]); k++) {
		s = NULL;
		rv = wire_get_str(obj, key, str_limits[k], &s);
		FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
		FZ_CHECK((rv == ERR_NOENT) == (it == NULL));
		if (rv == 0) {
			FZ_CHECK(s && cJSON_IsString(it));
			FZ_CHECK(str_limits[k] == SIZE_MAX || strlen(s) <= str_limits[k]);
		} else {
			FZ_CHECK(s == NULL);
		}
	}
	for (size_t k = 0; k < sizeof(int_ranges) / sizeof(int_ranges[0]); k++) {
		i64 = 12345;
		rv = wire_get_int(obj, key, int_ranges[k].min, int_ranges[k].max, &i64);
		FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
		if (rv == 0) {
			FZ_CHECK(i64 >= int_ranges[k].min && i64 <= int_ranges[k].max);
			FZ_CHECK((double)i64 == it->valuedouble);
		} else {
			FZ_CHECK(i64 == 12345);
		}
	}
	for (size_t k = 0; k < sizeof(u64_limits) / sizeof(u64_limits[0]); k++) {
		u64 = 12345;
		rv = wire_get_u64(obj, key, u64_limits[k], &u64);
		FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
		if (rv == 0) {
			FZ_CHECK(u64 <= u64_limits[k]);
			FZ_CHECK((double)u64 == it->valuedouble);
		} else {
			FZ_CHECK(u64 == 12345);
		}
	}
	b = true;
	rv = wire_get_bool(obj, key, &b);
	FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
	FZ_CHECK(rv == 0 ? b == (bool)cJSON_IsTrue(it) : b);
	for (size_t k = 0; k < sizeof(item_limits) / sizeof(item_limits[0]); k++) {
		a = NULL;
		rv = wire_get_array(obj, key, item_limits[k], &a);
		FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
		if (rv == 0)
			FZ_CHECK(a == it && (size_t)cJSON_GetArraySize(a) <= item_limits[k]);
	}
	a = NULL;
	rv = wire_get_object(obj, key, &a);
	FZ_CHECK(rv == 0 || rv == ERR_PROTO || rv == ERR_NOENT);
	FZ_CHECK(rv != 0 || (a == it && cJSON_IsObject(a)));
}

/* Every accessor on every member of obj, and on objects nested in it the
 * way the daemons nest them (capacity.gpus[i], events[i], orders[i].health). */
static void walk(const cJSON *obj, int depth)
{
	const cJSON *m, *e;

	if (depth > MAX_WALK_DEPTH || !cJSON_IsObject(obj))
		return;
	check_accessors(obj, "no such key");
	cJSON_ArrayForEach(m, obj)
	{
		if (!m->string)
			continue;
		check_accessors(obj, m->string);
		if (cJSON_IsObject(m))
			walk(m, depth + 1);
		else if (cJSON_IsArray(m))
			cJSON_ArrayForEach(e, m) walk(e, depth + 1);
	}
}

/* wire_drop_acked over every array of the body, acknowledging up to ack. */
static void drop_all(cJSON *obj, uint64_t ack)
{
	cJSON *m;

	cJSON_ArrayForEach(m, obj)
	{
		if (cJSON_IsArray(m)) {
			int before = cJSON_GetArraySize(m);

			wire_drop_acked(m, ack);
			FZ_CHECK(cJSON_GetArraySize(m) <= before);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_hdr h, h2;
	cJSON *body = NULL, *body2 = NULL;
	uint8_t *frame, *out = NULL;
	size_t outlen = 0;
	char why[256], *a, *b;
	int rv;

	/* An exact-sized copy: ASan then sees any read past the frame. */
	frame = xmalloc(size ? size : 1);
	if (size)
		memcpy(frame, data, size);
	why[0] = '\0';
	rv = wire_decode(frame, size, &h, &body, why, sizeof(why));
	FZ_CHECK(strlen(why) < sizeof(why));
	if (rv != 0) {
		FZ_CHECK(body == NULL);
		FZ_CHECK(rv == ERR_PROTO || rv == ERR_VERSION || rv == ERR_TOOBIG);
		FZ_CHECK(why[0] != '\0');
		goto out;
	}
	FZ_CHECK(cJSON_IsObject(body));
	FZ_CHECK(size >= WIRE_HDR_LEN && h.body_len == size - WIRE_HDR_LEN);
	FZ_CHECK(h.version == WIRE_VERSION && h.flags == 0 && wire_type_known(h.type));
	FZ_CHECK(h.type == get_be16(frame + 6) && h.seq == get_be64(frame + 16) &&
		 h.sender == get_be64(frame + 24));
	FZ_CHECK(strcmp(wire_type_str(h.type), "unknown") != 0);

	walk(body, 0);

	/* What the decoder accepted, the encoder must write back so that it
	 * decodes to the same thing. */
	rv = wire_encode(h.type, h.seq, h.sender, body, &out, &outlen);
	FZ_CHECK(rv == 0 || rv == ERR_TOOBIG);
	if (rv == 0) {
		rv = wire_decode(out, outlen, &h2, &body2, why, sizeof(why));
		if (rv != 0)
			fprintf(stderr, "re-encoded body refused: %s\n", why);
		FZ_CHECK(rv == 0);
		FZ_CHECK(h2.type == h.type && h2.seq == h.seq && h2.sender == h.sender);
		/* Compared as text: cJSON_Compare takes an object with a
		 * repeated key for unequal to itself. */
		a = cJSON_PrintUnformatted(body);
		b = cJSON_PrintUnformatted(body2);
		FZ_CHECK(a && b && strcmp(a, b) == 0);
		cJSON_free(a);
		cJSON_free(b);
	}

	drop_all(body, h.seq);
out:
	cJSON_Delete(body);
	cJSON_Delete(body2);
	free(out);
	free(frame);
	return 0;
}
