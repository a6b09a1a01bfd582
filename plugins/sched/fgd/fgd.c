/*
 * fgd.c - the "fgd" placement policy: fragmentation gradient descent, after
 * the idea of Weng et al., "Beware of Fragmentation: Scheduling GPU-Sharing
 * Workloads with Fragmentation Gradient Descent" (USENIX ATC '23).
 *
 * THE FRAGMENTATION SCORE.  For a node n and one task shape m of the
 * workload mix (sched.h, THE WORKLOAD MIX), the fragment F(n, m) is the free
 * GPU capacity of n (in milli-GPUs) that a task of shape m could not use:
 *   - all of it when m cannot run on n at all: n lacks the model or GPU
 *     memory m needs, the CPU or memory m needs (m's mean), or room for m's
 *     GPUs (no card with m's share free, fewer free whole cards than m asks);
 *   - otherwise the cards too small for m: for a share, the partly used
 *     cards with less than m's share free; for whole GPUs, every partly used
 *     card (whole-GPU tasks never share);
 *   - nothing for shapes that ask no GPU.
 * The node's fragmentation is the expectation over the mix,
 * F(n) = sum over m of share(m) * F(n, m).  fgd puts a task where F grows
 * least (it may shrink: filling a node removes fragments), that is, it
 * follows the steepest descent of the cluster's fragmentation.  Ties go to
 * the node with the least free GPU capacity after the placement (packing),
 * then to the one seen first.  One F costs O(shapes + cards): a node is
 * summarized once (total free, free whole cards, the partly used cards), so
 * each shape is a few comparisons.
 *
 * Model and memory awareness come with it: a task placed on a node removes
 * free capacity that constrained shapes may need; on a node those shapes
 * cannot use, that capacity was a fragment for them anyway, so the score
 * prefers it.  With an empty mix every F is 0 and fgd packs like binpack.
 *
 * Cost.  fgd never scores the whole cluster: candidates come from the index.
 * Whole-GPU tasks look at the buckets that can hold them, upward; shares at
 * the shared set, then the buckets from 1 upward; tasks without GPUs at
 * every bucket from 0.  Each source gives at most its quota of fitting nodes
 * (CAND_MAX spread over the non-empty buckets, at least QUOTA_MIN each),
 * starting at a position that turns with the job id so that different
 * nodes of a big bucket get their turn, and at most LOOK_MAX nodes are
 * looked at in all, fitting or not.  The limits bound the scoring, not the
 * search: when nothing fitting has been seen the walk goes on like a first
 * fit, so fgd finds a node whenever one fits, like binpack.
 */
#include "sched/sched.h"
#include "err.h"

#include <string.h>

#define MILLI 1000u
#define CAND_MAX 48  /* fitting nodes scored per task */
#define QUOTA_MIN 6  /* fitting nodes taken from one bucket or the shared set */
#define LOOK_MAX 384 /* nodes looked at per task while scoring */
#define SEEN_MAX 8   /* plain nodes remembered per pick (identical nodes score once) */

/* What F needs to know about a node (or a node after a placement). */
struct fsum {
	uint32_t total;   /* free milli-GPUs */
	uint32_t whole;   /* free whole cards */
	uint32_t maxfree; /* largest free part of one card */
	uint32_t npart;
	uint32_t part[RES_MAX_GPUS]; /* free milli of partly used cards */
	uint64_t mem_free;
	uint32_t cpu_free;
	uint32_t mask; /* sched_mix_node_mask() */
};

static uint32_t ngpus(const struct sched_node *n)
{
	return n->res.ngpus > RES_MAX_GPUS ? RES_MAX_GPUS : n->res.ngpus;
}

/* Summarize n, as it would be with one task of r bound to slot (NULL: as
 * it is). */
static void summarize(const struct sched_node *n, const struct res *r,
		      const struct sched_slot *slot, uint32_t mask, struct fsum *f)
{
	uint32_t ng = ngpus(n), used[RES_MAX_GPUS];

	for (uint32_t g = 0; g < ng; g++)
		used[g] = n->res.gpus[g].used_milli > MILLI ? MILLI : n->res.gpus[g].used_milli;
	f->mem_free = n->res.mem_used < n->res.mem_total ? n->res.mem_total - n->res.mem_used : 0;
	f->cpu_free = n->res.cpu_used < n->res.cpu_total ? n->res.cpu_total - n->res.cpu_used : 0;
	if (slot) {
		uint32_t per = res_is_share(r) ? r->gpus_milli : MILLI;

		for (uint32_t i = 0; i < slot->ngpus; i++) {
			uint32_t p = slot->gpu_pos[i];

			if (p < ng)
				used[p] = used[p] + per > MILLI ? MILLI : used[p] + per;
		}
		f->mem_free = f->mem_free > r->mem ? f->mem_free - r->mem : 0;
		f->cpu_free = f->cpu_free > r->cpu_milli ? f->cpu_free - r->cpu_milli : 0;
	}
	f->total = f->whole = f->maxfree = f->npart = 0;
	for (uint32_t g = 0; g < ng; g++) {
		uint32_t fr = MILLI - used[g];

		f->total += fr;
		if (fr == MILLI)
			f->whole++;
		else if (fr > 0)
			f->part[f->npart++] = fr;
		if (fr > f->maxfree)
			f->maxfree = fr;
	}
	f->mask = mask;
}

/* F(n, m) in milli-GPUs. */
static uint32_t frag_one(const struct fsum *f, const struct sched_shape *m)
{
	uint32_t d = m->gpus_milli, sum = 0;

	if (d == 0 || f->total == 0)
		return 0;
	if (m->cons && !(m->cons & f->mask))
		return f->total;
	if (f->cpu_free < m->cpu_milli || f->mem_free < m->mem)
		return f->total;
	if (d < MILLI) {
		if (f->maxfree < d)
			return f->total;
		for (uint32_t i = 0; i < f->npart; i++)
			sum += f->part[i] < d ? f->part[i] : 0;
		return sum;
	}
	if (f->whole < d / MILLI)
		return f->total;
	return f->total - f->whole * MILLI;
}

/* The mix's GPU shapes, copied once per pick: reading them from the mix
 * costs divisions that one pick would otherwise repeat per candidate. */
struct shapes {
	struct sched_shape m[SCHED_MIX_MAX];
	uint32_t n;
};

static void load_shapes(struct sched *s, struct shapes *sh)
{
	uint32_t nm = sched_mix_len(s);

	sh->n = 0;
	for (uint32_t i = 0; i < nm; i++) {
		const struct sched_shape *m = sched_mix_at(s, i);

		if (m->gpus_milli > 0 && m->share > 0)
			sh->m[sh->n++] = *m;
	}
}

/* F(n) = sum of share(m) * F(n, m). */
static double frag(const struct shapes *sh, const struct fsum *f)
{
	double sum = 0;

	if (f->total == 0)
		return 0;
	for (uint32_t i = 0; i < sh->n; i++)
		sum += sh->m[i].share * frag_one(f, &sh->m[i]);
	return sum;
}

double sched_fgd_frag(struct sched *s, struct sched_node *n)
{
	struct shapes sh;
	struct fsum f;

	load_shapes(s, &sh);
	summarize(n, NULL, NULL, sched_mix_node_mask(s, n), &f);
	return frag(&sh, &f);
}

/* The growth of F if one task of req went to n with slot; *left: free GPU
 * milli after. */
static double delta(struct sched *s, const struct shapes *sh, struct sched_node *n,
		    const struct sched_req *req, const struct sched_slot *slot, uint32_t *left)
{
	uint32_t mask = sched_mix_node_mask(s, n);
	struct fsum before, after;

	summarize(n, NULL, NULL, mask, &before);
	summarize(n, &req->res, slot, mask, &after);
	*left = after.total;
	return frag(sh, &after) - frag(sh, &before);
}

int sched_fgd_delta(struct sched *s, struct sched_node *n, const struct sched_req *req,
		    double *out)
{
	struct sched_slot slot;
	struct shapes sh;
	uint32_t left;

	if (!sched_fits(s, n, req, &slot))
		return ERR_NOFIT;
	load_shapes(s, &sh);
	*out = delta(s, &sh, n, req, &slot, &left);
	return 0;
}

/* A node without partly used cards is known by a few numbers: two such
 * nodes that agree on them get the same score for the same task. */
struct seen {
	uint32_t ngpus, whole, cpu_free, mask;
	uint64_t mem_free;
	double d;
	uint32_t left;
};

/* The search state of one pick. */
struct walk {
	struct sched *s;
	struct shapes sh;
	const struct sched_req *req;
	struct sched_node *best;
	double best_d;
	uint32_t best_left;
	uint32_t ncand, looked, seed;
	struct seen seen[SEEN_MAX];
	uint32_t nseen;
};

/* The score of a node like a plain one already scored in this pick: true
 * with *d and *left filled in. */
static bool seen_find(struct walk *w, const struct sched_node *n, struct seen *key)
{
	uint32_t ng = ngpus(n), whole = 0;

	for (uint32_t g = 0; g < ng; g++) {
		uint32_t u = n->res.gpus[g].used_milli;

		if (u > 0 && u < MILLI)
			return false; /* not plain: no key */
		whole += u == 0;
	}
	key->ngpus = ng;
	key->whole = whole;
	key->cpu_free = n->res.cpu_used < n->res.cpu_total ? n->res.cpu_total - n->res.cpu_used : 0;
	key->mem_free = n->res.mem_used < n->res.mem_total ? n->res.mem_total - n->res.mem_used : 0;
	key->mask = sched_mix_node_mask(w->s, (struct sched_node *)n);
	key->left = UINT32_MAX;
	for (uint32_t i = 0; i < w->nseen; i++) {
		const struct seen *e = &w->seen[i];

		if (e->ngpus == key->ngpus && e->whole == key->whole &&
		    e->cpu_free == key->cpu_free && e->mem_free == key->mem_free &&
		    e->mask == key->mask) {
			key->d = e->d;
			key->left = e->left;
			return true;
		}
	}
	return false;
}

/* Score n if it fits; true when it was a fitting candidate. */
static bool consider(struct walk *w, struct sched_node *n)
{
	struct sched_slot slot;
	struct seen key;
	uint32_t left;
	double d;

	w->looked++;
	if (!sched_fits(w->s, n, w->req, &slot))
		return false;
	w->ncand++;
	key.left = 0;
	if (seen_find(w, n, &key)) {
		d = key.d;
		left = key.left;
	} else {
		d = delta(w->s, &w->sh, n, w->req, &slot, &left);
		if (key.left == UINT32_MAX && w->nseen < SEEN_MAX) {
			key.d = d;
			key.left = left;
			w->seen[w->nseen++] = key;
		}
	}
	/* Scores closer than a milli-milli-GPU are a tie: rounding noise
	 * must not outvote the packing tie-break. */
	if (!w->best || d < w->best_d - 1e-6 ||
	    (d <= w->best_d + 1e-6 && left < w->best_left)) {
		w->best = n;
		w->best_d = d;
		w->best_left = left;
	}
	return true;
}

/* Take up to quota fitting nodes from one source of len nodes, starting at
 * a turning position.  Past the limits it only looks for a first fit. */
static void source(struct walk *w, struct sched_node *(*at)(const struct sched *, uint32_t,
							    uint32_t),
		   uint32_t key, uint32_t len, uint32_t quota, bool skip_shared)
{
	uint32_t start, got = 0;

	if (len == 0)
		return;
	start = w->seed % len;
	for (uint32_t k = 0; k < len; k++) {
		struct sched_node *n = at(w->s, key, (start + k) % len);

		if (w->ncand > 0 && (got >= quota || w->ncand >= CAND_MAX || w->looked >= LOOK_MAX))
			return;
		if (skip_shared && n->spos != SCHED_NONE)
			continue; /* seen in the shared set already */
		if (consider(w, n))
			got++;
	}
}

static struct sched_node *shared_at(const struct sched *s, uint32_t key, uint32_t i)
{
	return sched_shared_at(s, i);
}

static struct sched_node *fgd_pick(struct sched *s, const struct sched_req *req,
				   const struct sched_slot *placed, uint32_t nplaced)
{
	struct walk w;
	bool share = res_is_share(&req->res);
	uint32_t from = share ? 1 : res_whole_gpus(&req->res), nb = 0, quota;

	w.best = NULL;
	w.best_d = 0;
	w.best_left = 0;
	w.ncand = w.looked = w.nseen = 0;
	w.s = s;
	load_shapes(s, &w.sh);
	w.req = req;
	/* A cheap mix of the job id and the task number (Knuth's multiplier). */
	w.seed = (uint32_t)((req->job * 2654435761u) ^ (nplaced * 40503u)) >> 3;
	for (uint32_t b = sched_bucket_next(s, from); b != SCHED_NONE; b = sched_bucket_next(s, b + 1))
		nb++;
	nb += share;
	quota = nb ? CAND_MAX / nb : CAND_MAX;
	if (quota < QUOTA_MIN)
		quota = QUOTA_MIN;
	if (share)
		source(&w, shared_at, 0, sched_shared_len(s), quota, false);
	for (uint32_t b = sched_bucket_next(s, from); b != SCHED_NONE; b = sched_bucket_next(s, b + 1)) {
		if (w.ncand > 0 && (w.ncand >= CAND_MAX || w.looked >= LOOK_MAX))
			break;
		source(&w, sched_bucket_at, b, sched_bucket_len(s, b), quota, share);
	}
	return w.best;
}

const struct sched_policy sched_fgd = {
	.version = SCHED_POLICY_VERSION,
	.name = "fgd",
	.pick = fgd_pick,
};
