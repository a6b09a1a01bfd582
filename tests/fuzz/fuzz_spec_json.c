/*
 * fuzz_spec_json.c - libFuzzer harness for spec_from_json (common/spec.c),
 * the check every submitted spec goes through in the master (WIRE_SUBMIT's
 * "spec", and the spec a rollout rebuilds).
 *
 * Random text is rarely JSON and random JSON rarely a spec, so the input is
 * one of two things:
 *
 *   "{..."  JSON text (parsed by cJSON, as wire_decode parses a body);
 *   else    a program that builds a cJSON object: keys from the
 *         spec's own vocabulary (every JSON field name, at any level) or
 *         from the input, values from a vocabulary of good and bad values
 *         (kinds, sizes at the limits, 2^53 and beyond, fractions, NaN's
 *         neighbours, "$PORT" forms, long and odd strings) or from the
 *         input, nested objects and arrays; bit 0 of the first byte starts
 *         from the required fields so the later rules are reached.
 *
 * An accepted spec must pass spec_check.h's checks; a refused one must say
 * why.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec_check.h"
#include "util.h"

#define MAX_OPS 64
#define MAX_NEST 3

static const char *const keys[] = {
    "name",	  "kind",	 "image",	 "command",	"workdir",	  "workers",
    "replicas",	  "standby",	 "array",	 "parallelism", "resources",	  "gpus_milli",
    "gpu_memory", "gpu_model",	 "memory",	 "cpu_milli",	"priority",	  "restart",
    "policy",	  "max",	 "env",		 "constraints", "health",	  "http",
    "tcp",	  "exec",	 "interval_ms",	 "timeout_ms",	"failures",	  "successes",
    "grace_ms",	  "autoscale",	 "min",		 "target_gpu_util", "target_cpu_util", "window_ms",
    "cooldown_ms", "reschedule", "rollout",	 "deadline_ms", "gpus",		  "cpus",
    "max_cost_milli", "NCCL_DEBUG", "",		 "1BAD",
};

static const char *const strs[] = {
    "train", "serve", "batch", "never", "on-failure", "always", "/img", "oci:x", "oci:",
    "relative", "job-1", "j", "0", "123", "a.b_c-d", "binpack", "zone=a", "$PORT", "8080",
    "0", "65536", "127.0.0.1:$PORT", "[::1]:$PORT", "::1:80", "h:", ":80", "http://h:$PORT/x",
    "http://", "http:///x", "/healthz", "/a b", "/work", "", " ", "\t", "\x7f", "\xff\xfe",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

static const double nums[] = {
    0, 1, -1, 2, 3, 100, 101, 999, 1000, 1001, 1500, 2000, 65535, 65536, 10000, 10001,
    1000000, 1000001, 4294967295.0, 4294967296.0, 9007199254740992.0, 9007199254740994.0,
    -9007199254740992.0, 1e300, -1e300, 0.5, -0.5, 1e-300, 134217728, 18446744073709551616.0,
};

struct builder {
	struct fz *f;
	int ops;
};

static cJSON *value(struct builder *b, int depth);

static const char *key(struct builder *b, char *buf, size_t len)
{
	if (fz_u8(b->f) % 8 == 0)
		return fz_str(b->f, buf, len - 1);
	return keys[fz_pick(b->f, sizeof(keys) / sizeof(keys[0]))];
}

static cJSON *object(struct builder *b, int depth)
{
	cJSON *o = cJSON_CreateObject();
	unsigned n = fz_u8(b->f) % 8;
	char kb[40];

	for (unsigned i = 0; i < n && b->ops < MAX_OPS && b->f->n; i++) {
		const char *k = key(b, kb, sizeof(kb));

		cJSON_AddItemToObject(o, k, value(b, depth + 1));
	}
	return o;
}

static cJSON *value(struct builder *b, int depth)
{
	char sb[80];
	cJSON *a;
	unsigned n;

	b->ops++;
	switch (fz_u8(b->f) % (depth < MAX_NEST ? 10 : 7)) {
	case 0:
		return cJSON_CreateString(strs[fz_pick(b->f, sizeof(strs) / sizeof(strs[0]))]);
	case 1:
		return cJSON_CreateString(fz_str(b->f, sb, sizeof(sb) - 1));
	case 2:
		return cJSON_CreateNumber(nums[fz_pick(b->f, sizeof(nums) / sizeof(nums[0]))]);
	case 3: {
		/* Any double the input spells, NaN and infinities included: a
		 * cJSON built in memory (not parsed) can hold them. */
		uint64_t bits = fz_uint(b->f, 8);
		double d;

		memcpy(&d, &bits, sizeof(d));
		return cJSON_CreateNumber(d);
	}
	case 4:
		return cJSON_CreateNumber((double)(int32_t)fz_uint(b->f, 4));
	case 5:
		return fz_u8(b->f) & 1 ? cJSON_CreateBool(fz_u8(b->f) & 1) : cJSON_CreateNull();
	case 6:
		return cJSON_CreateString(strs[fz_pick(b->f, sizeof(strs) / sizeof(strs[0]))]);
	case 7:
	case 8:
		return object(b, depth);
	default:
		a = cJSON_CreateArray();
		n = fz_u8(b->f) % 6;
		for (unsigned i = 0; i < n && b->ops < MAX_OPS; i++)
			cJSON_AddItemToArray(a, value(b, depth + 1));
		return a;
	}
}

static cJSON *build(struct fz *f, bool required)
{
	struct builder b = {f, 0};
	cJSON *o = cJSON_CreateObject();
	char kb[40];

	if (required) {
		static const char *const kinds[] = {"train", "serve", "batch"};
		cJSON *cmd = cJSON_CreateArray();

		cJSON_AddStringToObject(o, "name", "fuzz");
		cJSON_AddStringToObject(o, "kind", kinds[fz_u8(f) % 3]);
		cJSON_AddStringToObject(o, "image", "/img");
		cJSON_AddItemToArray(cmd, cJSON_CreateString("run"));
		cJSON_AddItemToObject(o, "command", cmd);
	}
	while (b.ops < MAX_OPS && f->n) {
		const char *k = key(&b, kb, sizeof(kb));
		cJSON *v = value(&b, 1);

		/* Replace a required field the program names again, mostly, so
		 * not every program ends in "duplicate field". */
		if (required && cJSON_GetObjectItemCaseSensitive(o, k) && fz_u8(f) % 4)
			cJSON_ReplaceItemInObjectCaseSensitive(o, k, v);
		else
			cJSON_AddItemToObject(o, k, v);
	}
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL;
	cJSON *j;
	int rv;

	if (size > 0 && data[0] == '{')
		j = cJSON_ParseWithLength((const char *)data, size);
	else
		j = build(&f, fz_u8(&f) & 1);
	if (!j)
		return 0;
	rv = spec_from_json(j, &s, err, sizeof(err));
	if (rv != 0) {
		FZ_CHECK(s == NULL);
		check_spec_err(rv, err, sizeof(err));
	} else {
		FZ_CHECK(s != NULL);
		check_spec(s);
		spec_free(s);
	}
	cJSON_Delete(j);
	return 0;
}
