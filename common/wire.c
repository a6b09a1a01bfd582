/*
 * wire.c - encode and validate mlsched frames (see wire.h for the layout).
 *
 * wire_decode() is the edge where bytes from the network become trusted
 * structures, so it assumes the worst: every header field is checked before
 * the body is looked at, the JSON parser is given an exact length (the body
 * is not NUL-terminated), and the fields each type needs are checked against
 * a table so handlers can rely on them being there with the right JSON type.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "util.h"
#include "wire.h"

/* Largest integer a double holds exactly; JSON numbers beyond it are refused. */
#define WIRE_INT_LIMIT 9007199254740992.0 /* 2^53 */

enum field_kind { F_OBJECT, F_STRING, F_NUMBER, F_ARRAY };

struct field_req {
	const char *name;
	enum field_kind kind;
};

#define WIRE_MAX_REQ 3

/* What each type carries; fields not listed are optional and checked by the
 * handler through the wire_get_*() accessors. */
static const struct wire_type_info {
	uint16_t type;
	const char *name;
	struct field_req req[WIRE_MAX_REQ];
} wire_types[] = {
    {WIRE_SUBMIT, "submit", {{"spec", F_OBJECT}}},
    {WIRE_LIST, "list", {{NULL, 0}}},
    {WIRE_STATUS, "status", {{"job", F_STRING}}},
    {WIRE_CANCEL, "cancel", {{"job", F_STRING}}},
    {WIRE_NODES, "nodes", {{NULL, 0}}},
    {WIRE_LOGS, "logs", {{"job", F_STRING}, {"task", F_NUMBER}, {"offset", F_NUMBER}}},
    {WIRE_DRAIN, "drain", {{"node", F_STRING}}},
    {WIRE_UNCORDON, "uncordon", {{"node", F_STRING}}},
    {WIRE_ENDPOINTS, "endpoints", {{"job", F_STRING}}},
    {WIRE_SCALE, "scale", {{"job", F_STRING}, {"replicas", F_NUMBER}}},
    {WIRE_ROLLOUT, "rollout", {{"job", F_STRING}}},
    {WIRE_ROLLBACK, "rollback", {{"job", F_STRING}}},
    {WIRE_HISTORY, "history", {{"job", F_STRING}}},
    {WIRE_TOP, "top", {{NULL, 0}}},
    {WIRE_POOLS, "pools", {{NULL, 0}}},
    {WIRE_QUEUES, "queues", {{NULL, 0}}},
    {WIRE_OK, "ok", {{NULL, 0}}},
    {WIRE_ERROR, "error", {{"code", F_NUMBER}, {"message", F_STRING}}},
    {WIRE_SYNC, "sync", {{"node", F_STRING}, {"ack", F_NUMBER}}},
    {WIRE_ORDERS, "orders", {{"ack", F_NUMBER}, {"orders", F_ARRAY}}},
    {WIRE_NODE_REMOVE, "node-remove", {{"node", F_STRING}}},
};

static const struct wire_type_info *type_info(uint16_t type)
{
	for (size_t i = 0; i < sizeof(wire_types) / sizeof(wire_types[0]); i++)
		if (wire_types[i].type == type)
			return &wire_types[i];
	return NULL;
}

bool wire_type_known(uint16_t type)
{
	return type_info(type) != NULL;
}

const char *wire_type_str(uint16_t type)
{
	const struct wire_type_info *ti = type_info(type);

	return ti ? ti->name : "unknown";
}

uint64_t wire_sender_id(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const unsigned char *)(name ? name : ""); *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	/* 0 means "mlctl" on the wire, so no node may hash to it. */
	return h ? h : 1;
}

/* cJSON reports allocation failure as NULL; like xmalloc we cannot do better
 * than stop. */
static void *cjson_must(void *p)
{
	if (!p) {
		fprintf(stderr, "wire: out of memory building JSON\n");
		abort();
	}
	return p;
}

int wire_encode(uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body, uint8_t **out,
		size_t *outlen)
{
	char *text = NULL;
	const char *src = "{}";
	size_t blen;
	uint8_t *buf;
	int rv;

	if (!wire_type_known(type))
		return ERR_INVAL;
	if (body && !cJSON_IsObject(body))
		return ERR_INVAL;
	if (body) {
		text = cjson_must(cJSON_PrintUnformatted(body));
		src = text;
	}
	blen = strlen(src);
	if (blen > WIRE_MAX_BODY) {
		rv = ERR_TOOBIG;
		goto out;
	}
	buf = xmalloc(WIRE_HDR_LEN + blen);
	put_be32(buf, WIRE_MAGIC);
	put_be16(buf + 4, WIRE_VERSION);
	put_be16(buf + 6, type);
	put_be32(buf + 8, 0);
	put_be32(buf + 12, (uint32_t)blen);
	put_be64(buf + 16, seq);
	put_be64(buf + 24, sender);
	memcpy(buf + WIRE_HDR_LEN, src, blen);
	*out = buf;
	*outlen = WIRE_HDR_LEN + blen;
	rv = 0;
out:
	if (text)
		cJSON_free(text);
	return rv;
}

/*
 * Bytes cJSON would let through but JSON does not: raw control characters
 * (cJSON treats every byte <= 0x20 as white space and copies them into
 * strings), and NUL, including the \u0000 escape, which would silently cut a
 * C string short.  A backslash outside a string is a JSON syntax error that
 * the parser reports anyway, so skipping the byte after every backslash is
 * enough to tell an escaped "\\u0000" (harmless) from "\u0000".
 */
static int check_body_bytes(const uint8_t *b, size_t n, char *why, size_t whylen)
{
	for (size_t i = 0; i < n; i++) {
		if (b[i] < 0x20 && b[i] != '\t' && b[i] != '\n' && b[i] != '\r') {
			set_why(why, whylen, "body has control byte 0x%02x at offset %zu", b[i], i);
			return ERR_PROTO;
		}
		if (b[i] != '\\' || i + 1 >= n)
			continue;
		if (b[i + 1] == 'u' && i + 6 <= n && memcmp(b + i + 2, "0000", 4) == 0) {
			set_why(why, whylen, "body has a \\u0000 escape at offset %zu", i);
			return ERR_PROTO;
		}
		i++;
	}
	return 0;
}

/*
 * A number beyond the range of a double ("1e999") parses to an infinity,
 * which cJSON prints back as null: such a body would not survive being
 * stored or sent on (found by tests/fuzz/fuzz_wire), so it is refused like
 * any other malformed body.  Depth is bounded by cJSON's nesting limit.
 */
static bool json_finite(const cJSON *it)
{
	if (cJSON_IsNumber(it))
		return isfinite(it->valuedouble);
	for (const cJSON *c = it->child; c; c = c->next)
		if (!json_finite(c))
			return false;
	return true;
}

static bool json_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *kind_str(enum field_kind k)
{
	switch (k) {
	case F_OBJECT:
		return "an object";
	case F_STRING:
		return "a string";
	case F_NUMBER:
		return "a number";
	case F_ARRAY:
		return "an array";
	}
	return "?";
}

static bool kind_ok(const cJSON *item, enum field_kind k)
{
	switch (k) {
	case F_OBJECT:
		return cJSON_IsObject(item);
	case F_STRING:
		return cJSON_IsString(item) && item->valuestring;
	case F_NUMBER:
		return cJSON_IsNumber(item);
	case F_ARRAY:
		return cJSON_IsArray(item);
	}
	return false;
}

static int check_fields(const struct wire_type_info *ti, const cJSON *obj, char *why, size_t whylen)
{
	for (int i = 0; i < WIRE_MAX_REQ && ti->req[i].name; i++) {
		const struct field_req *f = &ti->req[i];
		const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, f->name);

		if (!item) {
			set_why(why, whylen, "%s: field '%s' missing", ti->name, f->name);
			return ERR_PROTO;
		}
		if (!kind_ok(item, f->kind)) {
			set_why(why, whylen, "%s: field '%s' must be %s", ti->name, f->name,
				kind_str(f->kind));
			return ERR_PROTO;
		}
	}
	return 0;
}

int wire_decode(const uint8_t *buf, size_t len, struct wire_hdr *h, cJSON **body, char *why,
		size_t whylen)
{
	const struct wire_type_info *ti;
	struct wire_hdr hdr;
	const uint8_t *b;
	const char *end = NULL;
	cJSON *obj = NULL;
	uint32_t magic;
	int rv;

	*body = NULL;
	if (!buf || len < WIRE_HDR_LEN) {
		set_why(why, whylen, "frame is %zu bytes, shorter than the %d-byte header", len,
			WIRE_HDR_LEN);
		return ERR_PROTO;
	}
	magic = get_be32(buf);
	hdr.version = get_be16(buf + 4);
	hdr.type = get_be16(buf + 6);
	hdr.flags = get_be32(buf + 8);
	hdr.body_len = get_be32(buf + 12);
	hdr.seq = get_be64(buf + 16);
	hdr.sender = get_be64(buf + 24);

	if (magic != WIRE_MAGIC) {
		set_why(why, whylen, "bad magic 0x%08x", magic);
		return ERR_PROTO;
	}
	if (hdr.version != WIRE_VERSION) {
		set_why(why, whylen, "version %u, expected %d", hdr.version, WIRE_VERSION);
		return ERR_VERSION;
	}
	ti = type_info(hdr.type);
	if (!ti) {
		set_why(why, whylen, "unknown type %u", hdr.type);
		return ERR_PROTO;
	}
	if (hdr.flags != 0) {
		set_why(why, whylen, "flags 0x%08x must be 0", hdr.flags);
		return ERR_PROTO;
	}
	if (hdr.body_len > WIRE_MAX_BODY) {
		set_why(why, whylen,
			"a body of %u bytes is over the limit of %u bytes a message (WIRE_MAX_BODY)",
			hdr.body_len, WIRE_MAX_BODY);
		return ERR_TOOBIG;
	}
	if (len - WIRE_HDR_LEN != hdr.body_len) {
		set_why(why, whylen, "body_len %u but %zu bytes follow", hdr.body_len,
			len - WIRE_HDR_LEN);
		return ERR_PROTO;
	}

	b = buf + WIRE_HDR_LEN;
	if (hdr.body_len == 0) {
		obj = cjson_must(cJSON_CreateObject());
	} else {
		if ((rv = check_body_bytes(b, hdr.body_len, why, whylen)) != 0)
			goto out;
		obj = cJSON_ParseWithLengthOpts((const char *)b, hdr.body_len, &end, false);
		if (!obj) {
			size_t at = end ? (size_t)((const uint8_t *)end - b) : 0;

			set_why(why, whylen, "%s: body is not valid JSON (near byte %zu)", ti->name,
				at);
			rv = ERR_PROTO;
			goto out;
		}
		for (size_t i = (size_t)((const uint8_t *)end - b); i < hdr.body_len; i++) {
			if (!json_space(b[i])) {
				set_why(why, whylen,
					"%s: trailing bytes after the JSON body at %zu", ti->name,
					i);
				rv = ERR_PROTO;
				goto out;
			}
		}
		if (!cJSON_IsObject(obj)) {
			set_why(why, whylen, "%s: body is not a JSON object", ti->name);
			rv = ERR_PROTO;
			goto out;
		}
		if (!json_finite(obj)) {
			set_why(why, whylen, "%s: body has a number beyond the range of a double",
				ti->name);
			rv = ERR_PROTO;
			goto out;
		}
	}
	if ((rv = check_fields(ti, obj, why, whylen)) != 0)
		goto out;

	*h = hdr;
	*body = obj;
	obj = NULL;
	rv = 0;
out:
	cJSON_Delete(obj);
	return rv;
}

int wire_get_str(const cJSON *obj, const char *key, size_t maxlen, const char **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return ERR_NOENT;
	if (!cJSON_IsString(it) || !it->valuestring)
		return ERR_PROTO;
	/* strnlen: do not walk a huge string just to learn it is too long. */
	if (maxlen < SIZE_MAX && strnlen(it->valuestring, maxlen + 1) > maxlen)
		return ERR_PROTO;
	*out = it->valuestring;
	return 0;
}

/* A JSON number that is a whole number a double represents exactly. */
static int json_integer(const cJSON *it, double *out)
{
	double d;

	if (!cJSON_IsNumber(it))
		return ERR_PROTO;
	d = it->valuedouble;
	/* Written so that NaN fails too; inside the range the cast is exact. */
	if (!(d <= WIRE_INT_LIMIT && d >= -WIRE_INT_LIMIT) || d != (double)(int64_t)d)
		return ERR_PROTO;
	*out = d;
	return 0;
}

int wire_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;
	int64_t v;

	if (!it)
		return ERR_NOENT;
	if (json_integer(it, &d) != 0)
		return ERR_PROTO;
	v = (int64_t)d; /* exact: |d| <= 2^53 */
	if (v < min || v > max)
		return ERR_PROTO;
	*out = v;
	return 0;
}

int wire_get_u64(const cJSON *obj, const char *key, uint64_t max, uint64_t *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	double d;
	uint64_t v;

	if (!it)
		return ERR_NOENT;
	if (json_integer(it, &d) != 0 || d < 0)
		return ERR_PROTO;
	v = (uint64_t)d;
	if (v > max)
		return ERR_PROTO;
	*out = v;
	return 0;
}

int wire_get_bool(const cJSON *obj, const char *key, bool *out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return ERR_NOENT;
	if (!cJSON_IsBool(it))
		return ERR_PROTO;
	*out = cJSON_IsTrue(it);
	return 0;
}

int wire_get_array(const cJSON *obj, const char *key, size_t maxitems, const cJSON **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	size_t n = 0;

	if (!it)
		return ERR_NOENT;
	if (!cJSON_IsArray(it))
		return ERR_PROTO;
	/* Count by hand so a huge array stops being walked at the limit. */
	for (const cJSON *c = it->child; c; c = c->next)
		if (++n > maxitems)
			return ERR_PROTO;
	*out = it;
	return 0;
}

int wire_get_object(const cJSON *obj, const char *key, const cJSON **out)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return ERR_NOENT;
	if (!cJSON_IsObject(it))
		return ERR_PROTO;
	*out = it;
	return 0;
}

void wire_drop_acked(cJSON *array, uint64_t ack)
{
	cJSON *it = array ? array->child : NULL;

	while (it) {
		cJSON *next = it->next;
		cJSON *seq = cJSON_GetObjectItemCaseSensitive(it, "seq");
		/* The upper bound makes the cast defined: a seq of 2^64 or
		 * more is beyond any ack (found by tests/fuzz/fuzz_wire). */
		if (cJSON_IsNumber(seq) && seq->valuedouble >= 0 &&
		    seq->valuedouble < 18446744073709551616.0 && (uint64_t)seq->valuedouble <= ack)
			cJSON_Delete(cJSON_DetachItemViaPointer(array, it));
		it = next;
	}
}

cJSON *wire_error_body(int code, const char *fmt, ...)
{
	cJSON *obj = cjson_must(cJSON_CreateObject());
	va_list ap;
	char *msg;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		fprintf(stderr, "out of memory\n");
		abort();
	}

	cjson_must(cJSON_AddNumberToObject(obj, "code", code));
	cjson_must(cJSON_AddStringToObject(obj, "message", msg));
	free(msg);
	return obj;
}
