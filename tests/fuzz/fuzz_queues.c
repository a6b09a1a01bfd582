/*
 * fuzz_queues.c - libFuzzer harness for the queues file of mlmaster
 * --queues (queues_parse in master/queues_conf.c).
 *
 * The input is the file's text.  An accepted file must hold 1..64 queues
 * with distinct valid names, quotas in range, positive finite weights and a
 * half-life of at least a second; a refused one must say where and why in
 * a NUL-terminated line that fits the buffer, even a tiny one.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "../../master/queues.h" /* not -Imaster: master/sched.h would hide <sched.h> */
#include "spec.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256], small[9];
	struct queues *qs = NULL;
	char *text;
	int rv;

	text = xmalloc(size ? size : 1);
	if (size)
		memcpy(text, data, size);
	rv = queues_parse("fuzz.yaml", text, size, &qs, why, sizeof(why));
	if (rv != 0) {
		FZ_CHECK(qs == NULL);
		FZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL);
		FZ_CHECK(strncmp(why, "fuzz.yaml:", 10) == 0);
		rv = queues_parse("fuzz.yaml", text, size, &qs, small, sizeof(small));
		FZ_CHECK(rv != 0 && qs == NULL);
		FZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
	} else {
		FZ_CHECK(qs != NULL && qs->n >= 1 && qs->n <= SCHED_QUEUES_MAX);
		FZ_CHECK(qs->half_life_ms >= 1000);
		for (uint32_t i = 0; i < qs->n; i++) {
			FZ_CHECK(spec_name_ok(qs->q[i].name));
			FZ_CHECK(qs->q[i].gpus <= QUEUE_GPUS_MAX);
			FZ_CHECK(isfinite(qs->q[i].weight) && qs->q[i].weight > 0);
			FZ_CHECK(queues_find(qs, qs->q[i].name) == i + 1);
		}
		queues_free(qs);
	}
	free(text);
	return 0;
}
