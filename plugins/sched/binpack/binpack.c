/*
 * binpack.c - the "binpack" placement policy: fill nodes that are already
 * busy, so that whole nodes stay free for big gangs.
 *
 * Whole-GPU tasks take the node with the fewest free GPUs that still fits:
 * the bucket walk goes upward from the GPUs needed, so the first fitting node
 * is the answer and most calls look at one or two nodes.  Shares pack onto
 * cards that are already shared (the fullest card after placing wins), and
 * only open a fresh card when none has room, so whole cards stay whole.
 * Tasks without GPUs go to the nodes with the fewest free GPUs, keeping the
 * GPU-rich nodes for GPU work.
 *
 * Models and GPU memory: a task that accepts any GPU does not take the nodes
 * that model- or memory-constrained tasks of the workload mix (sched.h) can
 * use while other nodes fit, so that binpack's habit of filling the small
 * nodes first does not starve, say, the tasks that only run on T4.  When
 * the mix has no constrained shapes this costs nothing.
 */
#include "sched/sched.h"

/* Fitting shared nodes compared before taking the best so far: bounds the
 * cost when the shared set is large.  A perfect fit stops earlier. */
#define SHARE_SCAN_MAX 64
/* Fitting nodes looked at for one that no constrained shape needs. */
#define AVOID_SCAN_MAX 64

/* Does req accept any GPU (so it should leave the nodes that constrained
 * tasks need to them)? */
static bool unconstrained(const struct sched_req *req)
{
	return req->res.gpus_milli > 0 && !req->res.gpu_mem && (!req->gpu_model || !req->gpu_model[0]);
}

/* First fit upward from bucket from.  A task that accepts any GPU skips
 * nodes that constrained shapes of the mix can use while it finds others
 * (sched_mix_reserved() == 0) among the first AVOID_SCAN_MAX fitting ones;
 * failing that it takes the least needed of them. */
static struct sched_node *first_fit_from(struct sched *s, const struct sched_req *req,
					 uint32_t from)
{
	struct sched_node *fallback = NULL;
	double fb = 2.0;
	uint32_t seen = 0;
	bool avoid = unconstrained(req);

	for (uint32_t b = sched_bucket_next(s, from); b != SCHED_NONE;
	     b = sched_bucket_next(s, b + 1)) {
		uint32_t len = sched_bucket_len(s, b);

		for (uint32_t i = 0; i < len; i++) {
			struct sched_node *n = sched_bucket_at(s, b, i);
			double r;

			if (!sched_fits(s, n, req, NULL))
				continue;
			if (!avoid || (r = sched_mix_reserved(s, n)) <= 0)
				return n;
			if (r < fb) {
				fallback = n;
				fb = r;
			}
			if (++seen >= AVOID_SCAN_MAX)
				return fallback;
		}
	}
	return fallback;
}

static struct sched_node *pick_share(struct sched *s, const struct sched_req *req)
{
	struct sched_node *best = NULL;
	uint32_t best_after = 0, seen = 0, len = sched_shared_len(s);
	struct sched_slot slot;

	for (uint32_t i = 0; i < len && seen < SHARE_SCAN_MAX; i++) {
		struct sched_node *n = sched_shared_at(s, i);
		uint32_t used, after;

		if (!sched_fits(s, n, req, &slot))
			continue;
		used = n->res.gpus[slot.gpu_pos[0]].used_milli;
		if (used == 0)
			continue; /* no shared card has room here: it would break a whole one */
		seen++;
		after = used + req->res.gpus_milli;
		/* Among equals, keep the nodes constrained shapes need. */
		if (after == best_after && best && unconstrained(req) &&
		    sched_mix_reserved(s, n) < sched_mix_reserved(s, best)) {
			best = n;
			continue;
		}
		if (after > best_after) {
			best = n;
			best_after = after;
			if (after == 1000)
				break;
		}
	}
	if (best)
		return best;
	return first_fit_from(s, req, 1);
}

static struct sched_node *binpack_pick(struct sched *s, const struct sched_req *req,
				       const struct sched_slot *placed, uint32_t nplaced)
{
	if (res_is_share(&req->res))
		return pick_share(s, req);
	return first_fit_from(s, req, res_whole_gpus(&req->res));
}

const struct sched_policy sched_binpack = {
	.version = SCHED_POLICY_VERSION,
	.name = "binpack",
	.pick = binpack_pick,
};
