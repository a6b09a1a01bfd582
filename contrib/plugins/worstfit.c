/*
 * worstfit.c - an example placement policy built as a plugin: each task goes
 * to the node with the MOST free whole GPUs (the opposite of binpack), which
 * spreads load evenly at the cost of fragmentation.  Build it and load it:
 *
 *   cc -shared -fPIC -I common -I plugins contrib/plugins/worstfit.c -o policies/worstfit.so
 *   mlmaster --plugin-dir policies --sched-policy worstfit ...
 *
 * It finds nodes through the scheduler's index (highest non-empty bucket
 * first), never by scanning every node.
 */
#include "sched/sched.h"

static struct sched_node *pick(struct sched *s, const struct sched_req *req,
			       const struct sched_slot *placed, uint32_t nplaced)
{
	struct sched_slot slot;
	uint32_t want = res_whole_gpus(&req->res), b;

	(void)placed;
	(void)nplaced;
	for (b = sched_bucket_prev(s, RES_MAX_GPUS); b != SCHED_NONE && b >= want;
	     b = b ? sched_bucket_prev(s, b - 1) : SCHED_NONE) {
		for (uint32_t i = 0; i < sched_bucket_len(s, b); i++) {
			struct sched_node *n = sched_bucket_at(s, b, i);
			if (sched_fits(s, n, req, &slot))
				return n;
		}
	}
	return NULL;
}

const struct sched_policy sched_policy_plugin = {SCHED_POLICY_VERSION, "worstfit", pick};
