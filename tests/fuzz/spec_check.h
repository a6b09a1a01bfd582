/*
 * spec_check.h - what must hold for every spec the parser accepts, shared
 * by fuzz_spec_yaml and fuzz_spec_json.
 *
 * A spec is carried as JSON from mlctl to the master and from the master's
 * store back into memory, so spec_to_json of an accepted spec must be
 * accepted by spec_from_json and give the same JSON again; a spec is the
 * same as itself for a rollout; the task count is within the limit; and
 * spec_health_target never writes past the buffer it is given.
 */
#ifndef MLSCHED_FUZZ_SPEC_CHECK_H
#define MLSCHED_FUZZ_SPEC_CHECK_H

#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "spec.h"

/* The parser's error contract: a failure says why, in one line that fits. */
static inline void check_spec_err(int rv, const char *err, size_t errlen)
{
	FZ_CHECK(rv == ERR_INVAL);
	FZ_CHECK(strnlen(err, errlen) < errlen);
	FZ_CHECK(errlen < 2 || err[0] != '\0');
	FZ_CHECK(strchr(err, '\n') == NULL);
}

static inline void check_spec(const struct spec *s)
{
	static const uint32_t ports[] = {0, 1, 8080, 65535, 65536};
	static const size_t lens[] = {1, 8, 24, 512};
	char err[SPEC_ERR_LEN], why[256], out[512];
	struct spec *s2 = NULL;
	cJSON *j, *j2;
	int rv;

	FZ_CHECK(s->name && spec_name_ok(s->name) && s->image && s->ncommand > 0 && s->workdir);
	FZ_CHECK(spec_ntasks(s) >= 1 && spec_ntasks(s) <= SPEC_MAX_TASKS);
	FZ_CHECK(s->priority >= -1000 && s->priority <= 1000);

	j = spec_to_json(s);
	FZ_CHECK(j != NULL);
	rv = spec_from_json(j, &s2, err, sizeof(err));
	if (rv != 0) {
		char *text = cJSON_PrintUnformatted(j);

		fprintf(stderr, "spec_to_json's output refused: %s\n%s\n", err, text);
		cJSON_free(text);
	}
	FZ_CHECK(rv == 0);
	j2 = spec_to_json(s2);
	FZ_CHECK(cJSON_Compare(j, j2, true));
	FZ_CHECK(spec_same_except_version(s, s2, why, sizeof(why)) && why[0] == '\0');
	cJSON_Delete(j2);
	cJSON_Delete(j);
	spec_free(s2);

	for (size_t p = 0; p < sizeof(ports) / sizeof(ports[0]); p++) {
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			/* A canary past the length given must survive. */
			memset(out, 'Z', sizeof(out));
			rv = spec_health_target(&s->health, ports[p], out, lens[l]);
			FZ_CHECK(rv == 0 || rv == ERR_INVAL);
			FZ_CHECK(strnlen(out, lens[l]) < lens[l]);
			FZ_CHECK(lens[l] == sizeof(out) || out[lens[l]] == 'Z');
			FZ_CHECK(rv == 0 || out[0] == '\0');
		}
	}
}

#endif
