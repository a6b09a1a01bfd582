/*
 * sched.c - the scheduler core: the free-GPU index, placement all or nothing,
 * explanations, constraints, the policy registry and the queue pass.
 *
 * Every change to a node's resources goes through node_take()/node_give(),
 * which move the node between buckets and in or out of the shared set.  A
 * placement that has to be undone (a gang that does not fit, a dry run) is
 * written to a journal first: each entry remembers where the node sat in the
 * index before the change, and rolling back replays the entries backwards,
 * undoing each swap-remove exactly.  So a failed sched_place() leaves the
 * index byte-identical, and a dry run changes nothing at all, not even the
 * order of nodes inside a bucket (which decides ties for the policies).
 */
#include "sched.h"
#include "err.h"
#include "units.h"
#include "util.h"

#include <assert.h>
#include <dirent.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NBUCKETS (RES_MAX_GPUS + 1)
#define MILLI 1000u
#define MAX_POLICIES 32      /* registered policies, built-ins included */
#define MEMO_LEN 16          /* blocked request shapes remembered in one pass */
#define PREEMPT_TRIES 16     /* victim searches in one pass */

/* One journaled change: enough to undo it exactly. */
struct jent {
	struct sched_node *n;
	const struct res *r;
	const struct sched_slot *slot;
	bool take;
	uint32_t bucket, bpos, spos; /* where n sat before the change */
};

/* A request shape that failed in this pass, with the reason it got. */
struct memo {
	const struct sched_job *job;
	char reason[SCHED_REASON_LEN];
};

/* A pending job in pass order. */
struct ord {
	struct sched_job *job;
	size_t idx;
};

/* A node ranked for a new reservation. */
struct rank {
	struct sched_node *n;
	uint32_t now, whole, ecap;
	uint64_t mem;
};

/* A preemption candidate. */
struct cand {
	size_t idx; /* in running[] */
	struct sched_job *job;
	uint64_t gpus; /* milli-GPUs held */
	int state;     /* prune step: 0 undecided, 1 put back, 2 victim */
};

/* One shape of the workload mix: the public part plus raw weights.  The
 * weights are scaled by inc (see mix_bump), so only ratios mean anything. */
struct mix_shape {
	struct sched_shape pub;
	uint32_t cpu_class;
	double w, cpu_w, mem_w; /* weight, and weight times CPU and memory */
};

/* A constraint of the mix: a model substring ("" = any) and a minimum
 * memory per GPU (0 = any). */
struct mix_cons {
	char model[RES_MODEL_LEN];
	uint64_t gpu_mem;
};

struct sched {
	struct sched_node **nodes; /* by id; NULL where free */
	uint32_t nslots, nodes_cap, nnodes;
	uint32_t *free_ids;
	uint32_t nfree;

	struct sched_node **bucket[NBUCKETS];
	uint32_t blen[NBUCKETS], bcap[NBUCKETS];
	uint64_t bits; /* bucket b < 64 non-empty */
	bool bit64;    /* bucket 64 non-empty */
	struct sched_node **shared;
	uint32_t slen, scap;
	uint32_t idx_cap; /* every bucket and the shared set hold this many */

	struct jent *jr;
	size_t jlen, jcap;

	/* The one reservation. */
	uint64_t resv_job;
	uint32_t *resv;
	uint32_t nresv, resv_cap;

	/* Pass scratch, kept between passes so a steady queue allocates nothing. */
	struct ord *ord;
	size_t ord_cap;
	struct sched_slot *slots, *dry;
	uint32_t slots_cap, dry_cap;
	bool *victim;
	size_t victim_cap;
	uint64_t *vids;
	size_t nvids, vids_cap;
	struct cand *cand, *elig;
	size_t cand_cap, ncand, elig_cap;
	bool cand_ready;
	struct rank *rank;
	size_t rank_cap;
	uint32_t *old;
	size_t old_cap;
	struct memo memo[MEMO_LEN];
	uint32_t nmemo, memo_next;

	/* The workload mix (sched.h, THE WORKLOAD MIX). */
	struct mix_shape mix[SCHED_MIX_MAX];
	uint32_t nmix;
	double mix_sum, mix_inc, mix_grow; /* grow: inc's factor per task */
	bool mix_learn;
	struct mix_cons mcons[SCHED_MIX_CONS];
	uint32_t nmcons;
	uint32_t mix_gen; /* bumped when cons[] grows: node masks are stale */
};

/* ---- small helpers ---- */

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return p;
	while (c < need)
		c *= 2;
	*cap = c;
	return xrealloc(p, c * size);
}

static void *grow32(void *p, uint32_t *cap, size_t need, size_t size)
{
	size_t c = *cap;

	p = grow(p, &c, need, size);
	*cap = (uint32_t)c;
	return p;
}

static uint32_t node_ngpus(const struct sched_node *n)
{
	return n->res.ngpus > RES_MAX_GPUS ? RES_MAX_GPUS : n->res.ngpus;
}

static uint32_t min32(uint64_t a, uint64_t b)
{
	uint64_t m = a < b ? a : b;

	return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
}

static void fmt_size(uint64_t bytes, char *buf, size_t len)
{
	units_format_size(bytes, buf, len);
}

static void fmt_milli(uint32_t milli, char *buf, size_t len)
{
	units_format_milli(milli, buf, len);
}

/* ---- the index ---- */

static void bucket_bit(struct sched *s, uint32_t b)
{
	bool on = s->blen[b] > 0;

	if (b == RES_MAX_GPUS)
		s->bit64 = on;
	else if (on)
		s->bits |= 1ull << b;
	else
		s->bits &= ~(1ull << b);
}

static void bucket_append(struct sched *s, uint32_t b, struct sched_node *n)
{
	s->bucket[b] = grow32(s->bucket[b], &s->bcap[b], s->blen[b] + 1, sizeof(*s->bucket[b]));
	n->bucket = b;
	n->bpos = s->blen[b];
	s->bucket[b][s->blen[b]++] = n;
	bucket_bit(s, b);
}

static void bucket_remove(struct sched *s, struct sched_node *n)
{
	uint32_t b = n->bucket;
	struct sched_node *last = s->bucket[b][--s->blen[b]];

	if (last != n) {
		s->bucket[b][n->bpos] = last;
		last->bpos = n->bpos;
	}
	bucket_bit(s, b);
}

/* The inverse of bucket_remove(): put n back at pos, sending the node that
 * took its place there back to the end. */
static void bucket_insert_at(struct sched *s, uint32_t b, uint32_t pos, struct sched_node *n)
{
	struct sched_node *other;

	if (pos >= s->blen[b]) {
		bucket_append(s, b, n);
		return;
	}
	s->bucket[b] = grow32(s->bucket[b], &s->bcap[b], s->blen[b] + 1, sizeof(*s->bucket[b]));
	other = s->bucket[b][pos];
	other->bpos = s->blen[b];
	s->bucket[b][s->blen[b]++] = other;
	s->bucket[b][pos] = n;
	n->bucket = b;
	n->bpos = pos;
	bucket_bit(s, b);
}

static void shared_append(struct sched *s, struct sched_node *n)
{
	s->shared = grow32(s->shared, &s->scap, s->slen + 1, sizeof(*s->shared));
	n->spos = s->slen;
	s->shared[s->slen++] = n;
}

static void shared_remove(struct sched *s, struct sched_node *n)
{
	struct sched_node *last = s->shared[--s->slen];

	if (last != n) {
		s->shared[n->spos] = last;
		last->spos = n->spos;
	}
	n->spos = SCHED_NONE;
}

static void shared_insert_at(struct sched *s, uint32_t pos, struct sched_node *n)
{
	struct sched_node *other;

	if (pos >= s->slen) {
		shared_append(s, n);
		return;
	}
	s->shared = grow32(s->shared, &s->scap, s->slen + 1, sizeof(*s->shared));
	other = s->shared[pos];
	other->spos = s->slen;
	s->shared[s->slen++] = other;
	s->shared[pos] = n;
	n->spos = pos;
}

/* Free whole GPUs, and whether some card is partly handed out. */
static uint32_t node_state(const struct sched_node *n, bool *partial)
{
	uint32_t ng = node_ngpus(n), free = 0;

	*partial = false;
	for (uint32_t i = 0; i < ng; i++) {
		uint32_t u = n->res.gpus[i].used_milli;

		if (u == 0)
			free++;
		else if (u < MILLI)
			*partial = true;
	}
	return free;
}

static void node_reindex(struct sched *s, struct sched_node *n)
{
	bool partial;
	uint32_t b = node_state(n, &partial);

	if (b != n->bucket) {
		bucket_remove(s, n);
		bucket_append(s, b, n);
	}
	if (partial && n->spos == SCHED_NONE)
		shared_append(s, n);
	else if (!partial && n->spos != SCHED_NONE)
		shared_remove(s, n);
}

static void node_take(struct sched *s, struct sched_node *n, const struct res *r,
		      const struct sched_slot *slot)
{
	res_take(&n->res, r, slot->gpu_pos, slot->ngpus);
	node_reindex(s, n);
}

static void node_give(struct sched *s, struct sched_node *n, const struct res *r,
		      const struct sched_slot *slot)
{
	res_give(&n->res, r, slot->gpu_pos, slot->ngpus);
	node_reindex(s, n);
}

/* ---- the journal ---- */

static void journal(struct sched *s, struct sched_node *n, const struct res *r,
		    const struct sched_slot *slot, bool take)
{
	struct jent *e;

	s->jr = grow(s->jr, &s->jcap, s->jlen + 1, sizeof(*s->jr));
	e = &s->jr[s->jlen++];
	e->n = n;
	e->r = r;
	e->slot = slot;
	e->take = take;
	e->bucket = n->bucket;
	e->bpos = n->bpos;
	e->spos = n->spos;
	if (take)
		node_take(s, n, r, slot);
	else
		node_give(s, n, r, slot);
}

/* Undo every journaled change after mark, newest first.  Each undone change
 * left its node at the end of its new bucket (and of the shared set if it
 * entered it), because everything done after it is already undone. */
static void rollback(struct sched *s, size_t mark)
{
	while (s->jlen > mark) {
		struct jent *e = &s->jr[--s->jlen];
		struct sched_node *n = e->n;

		if (e->take)
			res_give(&n->res, e->r, e->slot->gpu_pos, e->slot->ngpus);
		else
			res_take(&n->res, e->r, e->slot->gpu_pos, e->slot->ngpus);
		if (n->bucket != e->bucket) {
			assert(s->bucket[n->bucket][s->blen[n->bucket] - 1] == n);
			s->blen[n->bucket]--;
			bucket_bit(s, n->bucket);
			bucket_insert_at(s, e->bucket, e->bpos, n);
		}
		if (e->spos == SCHED_NONE && n->spos != SCHED_NONE) {
			assert(s->shared[s->slen - 1] == n);
			s->slen--;
			n->spos = SCHED_NONE;
		} else if (e->spos != SCHED_NONE && n->spos == SCHED_NONE) {
			shared_insert_at(s, e->spos, n);
		}
	}
}

/* ---- nodes ---- */

struct sched *sched_new(void)
{
	struct sched *s = xcalloc(1, sizeof(struct sched));

	s->mix_gen = 1;
	sched_mix_config(s, SCHED_MIX_HALFLIFE, true);
	return s;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nslots; i++)
		free(s->nodes[i]);
	free(s->nodes);
	free(s->free_ids);
	for (uint32_t b = 0; b < NBUCKETS; b++)
		free(s->bucket[b]);
	free(s->shared);
	free(s->jr);
	free(s->resv);
	free(s->ord);
	free(s->slots);
	free(s->dry);
	free(s->victim);
	free(s->vids);
	free(s->cand);
	free(s->elig);
	free(s->rank);
	free(s->old);
	free(s);
}

static void copy_labels(struct sched_node *n, const struct sched_label *labels, uint32_t nlabels)
{
	if (nlabels > SCHED_MAX_LABELS)
		nlabels = SCHED_MAX_LABELS;
	memset(n->labels, 0, sizeof(n->labels));
	for (uint32_t i = 0; i < nlabels; i++) {
		strlcpy_ok(n->labels[i].key, labels[i].key, sizeof(n->labels[i].key));
		strlcpy_ok(n->labels[i].val, labels[i].val, sizeof(n->labels[i].val));
	}
	n->nlabels = nlabels;
}

struct sched_node *sched_node_add(struct sched *s, const char *name, const struct res_node *cap,
				  const struct sched_label *labels, uint32_t nlabels)
{
	struct sched_node *n = xcalloc(1, sizeof(*n));
	bool partial;
	uint32_t id;

	strlcpy_ok(n->name, name ? name : "", sizeof(n->name));
	n->res = *cap;
	if (n->res.ngpus > RES_MAX_GPUS)
		n->res.ngpus = RES_MAX_GPUS;
	copy_labels(n, labels, labels ? nlabels : 0);
	n->schedulable = true;
	n->spos = SCHED_NONE;

	/* Reuse the most recently freed id: ids stay small and the order is
	 * deterministic. */
	if (s->nfree > 0) {
		id = s->free_ids[--s->nfree];
	} else {
		if (s->nslots == s->nodes_cap) {
			size_t c = s->nodes_cap;

			s->nodes = grow(s->nodes, &c, s->nslots + 1, sizeof(*s->nodes));
			s->free_ids = xrealloc(s->free_ids, c * sizeof(*s->free_ids));
			s->nodes_cap = (uint32_t)c;
		}
		id = s->nslots++;
	}
	n->id = id;
	s->nodes[id] = n;
	s->nnodes++;
	/* Every bucket and the shared set can hold every node, so moving nodes
	 * around in sched_place() never allocates. */
	if (s->nnodes > s->idx_cap) {
		uint32_t c = s->idx_cap ? s->idx_cap * 2 : 16;

		for (uint32_t b = 0; b < NBUCKETS; b++) {
			if (s->bcap[b] < c) {
				s->bucket[b] = xrealloc(s->bucket[b], c * sizeof(*s->bucket[b]));
				s->bcap[b] = c;
			}
		}
		if (s->scap < c) {
			s->shared = xrealloc(s->shared, c * sizeof(*s->shared));
			s->scap = c;
		}
		s->idx_cap = c;
	}
	bucket_append(s, node_state(n, &partial), n);
	if (partial)
		shared_append(s, n);
	return n;
}

static void resv_drop(struct sched *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->nresv; i++) {
		if (s->resv[i] == id) {
			s->resv[i] = s->resv[--s->nresv];
			return;
		}
	}
}

void sched_node_remove(struct sched *s, struct sched_node *n)
{
	if (!n || n->id >= s->nslots || s->nodes[n->id] != n)
		return;
	bucket_remove(s, n);
	if (n->spos != SCHED_NONE)
		shared_remove(s, n);
	if (n->reserved_for)
		resv_drop(s, n->id);
	s->nodes[n->id] = NULL;
	s->free_ids[s->nfree++] = n->id;
	s->nnodes--;
	free(n);
}

void sched_node_set(struct sched *s, struct sched_node *n, bool schedulable)
{
	n->schedulable = schedulable;
}

void sched_node_labels(struct sched *s, struct sched_node *n, const struct sched_label *labels,
		       uint32_t nlabels)
{
	copy_labels(n, labels, labels ? nlabels : 0);
}

struct sched_node *sched_node_get(const struct sched *s, uint32_t id)
{
	return id < s->nslots ? s->nodes[id] : NULL;
}

struct sched_node *sched_node_by_name(const struct sched *s, const char *name)
{
	for (uint32_t i = 0; i < s->nslots; i++) {
		if (s->nodes[i] && strcmp(s->nodes[i]->name, name) == 0)
			return s->nodes[i];
	}
	return NULL;
}

uint32_t sched_node_slots(const struct sched *s)
{
	return s->nslots;
}

const char *sched_label_get(const struct sched_node *n, const char *key)
{
	for (uint32_t i = 0; i < n->nlabels && i < SCHED_MAX_LABELS; i++) {
		if (strcmp(n->labels[i].key, key) == 0)
			return n->labels[i].val;
	}
	return NULL;
}

uint32_t sched_bucket_len(const struct sched *s, uint32_t free_gpus)
{
	return free_gpus < NBUCKETS ? s->blen[free_gpus] : 0;
}

struct sched_node *sched_bucket_at(const struct sched *s, uint32_t free_gpus, uint32_t i)
{
	if (free_gpus >= NBUCKETS || i >= s->blen[free_gpus])
		return NULL;
	return s->bucket[free_gpus][i];
}

uint32_t sched_bucket_next(const struct sched *s, uint32_t from)
{
	if (from < RES_MAX_GPUS) {
		uint64_t m = s->bits & (~0ull << from);

		if (m)
			return (uint32_t)__builtin_ctzll(m);
	}
	return from <= RES_MAX_GPUS && s->bit64 ? RES_MAX_GPUS : SCHED_NONE;
}

uint32_t sched_bucket_prev(const struct sched *s, uint32_t from)
{
	uint64_t m;

	if (from >= RES_MAX_GPUS) {
		if (s->bit64)
			return RES_MAX_GPUS;
		from = RES_MAX_GPUS - 1;
	}
	m = s->bits & (from == 63 ? ~0ull : (1ull << (from + 1)) - 1);
	return m ? 63u - (uint32_t)__builtin_clzll(m) : SCHED_NONE;
}

uint32_t sched_shared_len(const struct sched *s)
{
	return s->slen;
}

struct sched_node *sched_shared_at(const struct sched *s, uint32_t i)
{
	return i < s->slen ? s->shared[i] : NULL;
}

/* ---- fitting ---- */

static bool cons_ok(const struct sched_node *n, const struct sched_cons *c)
{
	const char *v = sched_label_get(n, c->key);

	switch (c->op) {
	case SCHED_EQ:
		return v && strcmp(v, c->vals[0]) == 0;
	case SCHED_NE:
		return !v || strcmp(v, c->vals[0]) != 0;
	case SCHED_IN:
		for (uint32_t i = 0; v && i < c->nvals && i < SCHED_MAX_IN; i++) {
			if (strcmp(v, c->vals[i]) == 0)
				return true;
		}
		return false;
	}
	return false;
}

static bool labels_ok(const struct sched_node *n, const struct sched_req *req)
{
	for (uint32_t i = 0; i < req->ncons; i++) {
		if (!cons_ok(n, &req->cons[i]))
			return false;
	}
	return true;
}

/* The model applies to tasks that ask for GPUs: every card on the node must
 * carry it (case-insensitive substring), so whichever cards res_fit() binds
 * are right.  A node mixing models matches only a substring common to all. */
static bool node_has_model(const struct sched_node *n, const char *model)
{
	uint32_t ng = node_ngpus(n);
	const char *first;

	if (ng == 0)
		return false;
	first = n->res.gpus[0].model;
	if (!strcasestr(first, model))
		return false;
	for (uint32_t i = 1; i < ng; i++) {
		const char *m = n->res.gpus[i].model;

		if (strcmp(m, first) != 0 && !strcasestr(m, model))
			return false;
	}
	return true;
}

static bool model_ok(const struct sched_node *n, const struct sched_req *req)
{
	if (!req->gpu_model || !req->gpu_model[0] || req->res.gpus_milli == 0)
		return true;
	return node_has_model(n, req->gpu_model);
}

/* Everything but resources: schedulable, reservation, labels, model. */
static bool node_ok(const struct sched_node *n, const struct sched_req *req, bool ignore_resv)
{
	if (!n->schedulable)
		return false;
	if (!ignore_resv && n->reserved_for && n->reserved_for != req->job)
		return false;
	return labels_ok(n, req) && model_ok(n, req);
}

bool sched_fits(const struct sched *s, const struct sched_node *n, const struct sched_req *req,
		struct sched_slot *slot)
{
	struct sched_slot tmp;

	if (!slot)
		slot = &tmp;
	if (!n || !node_ok(n, req, false))
		return false;
	if (!res_fit(&n->res, &req->res, slot->gpu_pos, &slot->ngpus))
		return false;
	slot->node = n->id;
	return true;
}

/* How many tasks of r fit on n now (or once empty), at most limit.  Tasks of
 * one request are alike, so placing one lowers this by exactly one: a gang
 * fits a set of nodes iff the counts add up to its size. */
static uint32_t node_cap(const struct sched_node *n, const struct res *r, bool empty,
			 uint32_t limit)
{
	uint64_t c = limit, mfree, cfree;
	uint32_t ng = node_ngpus(n), g = res_whole_gpus(r);

	if (res_check(r, NULL, 0) != 0)
		return 0;
	mfree = empty ? n->res.mem_total
		      : (n->res.mem_used < n->res.mem_total ? n->res.mem_total - n->res.mem_used : 0);
	cfree = empty ? n->res.cpu_total
		      : (n->res.cpu_used < n->res.cpu_total ? n->res.cpu_total - n->res.cpu_used : 0);
	if (r->mem)
		c = min32(c, mfree / r->mem);
	if (r->cpu_milli)
		c = min32(c, cfree / r->cpu_milli);
	if (c == 0 || r->gpus_milli == 0)
		return (uint32_t)c;
	if (g > 0) {
		uint32_t whole = 0;

		for (uint32_t i = 0; i < ng; i++) {
			const struct res_gpu *gp = &n->res.gpus[i];

			if ((empty || gp->used_milli == 0) && (!r->gpu_mem || gp->mem >= r->gpu_mem))
				whole++;
		}
		return min32(c, whole / g);
	} else {
		uint64_t shares = 0;

		for (uint32_t i = 0; i < ng; i++) {
			const struct res_gpu *gp = &n->res.gpus[i];
			uint32_t used = empty ? 0 : gp->used_milli;

			if ((!r->gpu_mem || gp->mem >= r->gpu_mem) && used < MILLI)
				shares += (MILLI - used) / r->gpus_milli;
		}
		return min32(c, shares);
	}
}

/* ---- placing ---- */

/* Place req's tasks, journaled.  On failure everything is undone; with keep
 * false a success is undone too (a dry run) but slots stay filled. */
static int place(struct sched *s, const struct sched_req *req, struct sched_slot *slots,
		 bool keep)
{
	const struct sched_policy *p = req->policy ? req->policy : &sched_binpack;
	size_t mark = s->jlen;

	for (uint32_t i = 0; i < req->ntasks; i++) {
		struct sched_node *n = p->pick(s, req, slots, i);

		if (!n || !sched_fits(s, n, req, &slots[i])) {
			rollback(s, mark);
			return ERR_NOFIT;
		}
		journal(s, n, &req->res, &slots[i], true);
	}
	if (keep)
		s->jlen = mark;
	else
		rollback(s, mark);
	return 0;
}

/* Feed the mix with req's tasks, if it learns by itself. */
static void mix_learn(struct sched *s, const struct sched_req *req)
{
	const char *m = req->gpu_model;

	if (s->mix_learn && req->ntasks > 0)
		sched_mix_add(s, &req->res, &m, m && m[0] ? 1 : 0, req->ntasks);
}

int sched_place(struct sched *s, const struct sched_req *req, struct sched_slot *slots)
{
	int rc;

	if (res_check(&req->res, NULL, 0) != 0)
		return ERR_NOFIT;
	rc = place(s, req, slots, true);
	mix_learn(s, req);
	return rc;
}

/* Could this slot be taken as it stands?  Checks positions and room. */
static bool slot_ok(const struct sched_node *n, const struct res *r, const struct sched_slot *sl)
{
	uint32_t want = res_is_share(r) ? 1 : res_whole_gpus(r), ng = node_ngpus(n);
	uint64_t seen = 0;

	if (sl->ngpus != want || want > RES_MAX_GPUS)
		return false;
	for (uint32_t i = 0; i < sl->ngpus; i++) {
		uint32_t p = sl->gpu_pos[i];
		const struct res_gpu *g;

		if (p >= ng || (p < 64 && (seen & (1ull << p))))
			return false;
		seen |= p < 64 ? 1ull << p : 0;
		g = &n->res.gpus[p];
		if (res_is_share(r) ? g->used_milli + r->gpus_milli > MILLI : g->used_milli != 0)
			return false;
	}
	if (n->res.mem_used > n->res.mem_total || n->res.mem_total - n->res.mem_used < r->mem)
		return false;
	if (n->res.cpu_used > n->res.cpu_total || n->res.cpu_total - n->res.cpu_used < r->cpu_milli)
		return false;
	return true;
}

int sched_take(struct sched *s, const struct res *r, const struct sched_slot *slots, uint32_t n)
{
	size_t mark = s->jlen;

	if (res_check(r, NULL, 0) != 0)
		return ERR_NOFIT;
	for (uint32_t i = 0; i < n; i++) {
		struct sched_node *node = sched_node_get(s, slots[i].node);

		if (!node || !slot_ok(node, r, &slots[i])) {
			rollback(s, mark);
			return ERR_NOFIT;
		}
		journal(s, node, r, &slots[i], true);
	}
	s->jlen = mark;
	return 0;
}

void sched_release(struct sched *s, const struct res *r, const struct sched_slot *slots,
		   uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct sched_node *node = sched_node_get(s, slots[i].node);

		if (node)
			node_give(s, node, r, &slots[i]);
	}
}

/* Journaled release and retake of a running job, for victim searches. */
static void job_give(struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < j->nheld; i++) {
		struct sched_node *n = sched_node_get(s, j->held[i].node);

		if (n)
			journal(s, n, &j->req.res, &j->held[i], false);
	}
}

static void job_retake(struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < j->nheld; i++) {
		struct sched_node *n = sched_node_get(s, j->held[i].node);

		if (n)
			journal(s, n, &j->req.res, &j->held[i], true);
	}
}

/* ---- explaining ---- */

/* "4 GPUs", "0.25 GPU", "2 CPUs, 8G memory" */
static void shape_str(const struct res *r, char *buf, size_t len)
{
	char a[32];

	if (r->gpus_milli) {
		fmt_milli(r->gpus_milli, a, sizeof(a));
		snprintf(buf, len, "%s GPU%s", a, r->gpus_milli > MILLI ? "s" : "");
	} else if (r->cpu_milli) {
		fmt_milli(r->cpu_milli, a, sizeof(a));
		snprintf(buf, len, "%s CPU%s", a, r->cpu_milli > MILLI ? "s" : "");
	} else {
		fmt_size(r->mem, a, sizeof(a));
		snprintf(buf, len, "%s memory", a);
	}
}

struct expl {
	uint32_t nsched, ncons, nmodel, nfree; /* the funnel */
	uint32_t cons_pass[SCHED_MAX_CONS];
	uint64_t cap_resv, cap_all;
	uint32_t best_gpus, best_share, best_cpu;
	uint64_t best_mem;
	uint64_t resv_by;
};

static void explain_walk(const struct sched *s, const struct sched_req *req, bool empty,
			 struct expl *e)
{
	uint32_t limit = req->ntasks ? req->ntasks : 1;

	memset(e, 0, sizeof(*e));
	for (uint32_t id = 0; id < s->nslots; id++) {
		const struct sched_node *n = s->nodes[id];
		bool all = true;
		uint32_t c, ng;

		if (!n || !n->schedulable)
			continue;
		e->nsched++;
		for (uint32_t k = 0; k < req->ncons && k < SCHED_MAX_CONS; k++) {
			if (cons_ok(n, &req->cons[k]))
				e->cons_pass[k]++;
			else
				all = false;
		}
		if (!all || !labels_ok(n, req))
			continue;
		e->ncons++;
		if (!model_ok(n, req))
			continue;
		e->nmodel++;

		ng = node_ngpus(n);
		{
			uint32_t whole = 0, share = 0;
			uint64_t mf = empty ? n->res.mem_total
					    : (n->res.mem_used < n->res.mem_total
						       ? n->res.mem_total - n->res.mem_used
						       : 0);
			uint32_t cf = empty ? n->res.cpu_total
					    : (n->res.cpu_used < n->res.cpu_total
						       ? n->res.cpu_total - n->res.cpu_used
						       : 0);

			for (uint32_t i = 0; i < ng; i++) {
				const struct res_gpu *g = &n->res.gpus[i];
				uint32_t used = empty ? 0 : g->used_milli;

				if (req->res.gpu_mem && g->mem < req->res.gpu_mem)
					continue;
				if (used == 0)
					whole++;
				if (MILLI - (used > MILLI ? MILLI : used) > share)
					share = MILLI - (used > MILLI ? MILLI : used);
			}
			if (whole > e->best_gpus)
				e->best_gpus = whole;
			if (share > e->best_share)
				e->best_share = share;
			if (mf > e->best_mem)
				e->best_mem = mf;
			if (cf > e->best_cpu)
				e->best_cpu = cf;
		}
		c = node_cap(n, &req->res, empty, limit);
		e->cap_all += c;
		if (!empty && n->reserved_for && n->reserved_for != req->job) {
			if (!e->resv_by)
				e->resv_by = n->reserved_for;
			continue;
		}
		e->nfree++;
		e->cap_resv += c;
	}
}

/* The resource part of a reason, from a walk's maxima: which dimension no
 * single node has, or that a gang is too big for what is free. */
static void explain_res(const struct sched_req *req, const struct expl *e, bool empty,
			uint64_t cap, char *buf, size_t len)
{
	const struct res *r = &req->res;
	const char *best = empty ? "largest node has" : "best node has";
	const char *fr = empty ? "" : " free";
	char a[32], b[32], sh[64];
	uint32_t g = res_whole_gpus(r);

	if (cap > 0) {
		shape_str(r, sh, sizeof(sh));
		snprintf(buf, len, "needs %" PRIu32 " tasks of %s at once; only %" PRIu64 " fit%s",
			 req->ntasks, sh, cap, empty ? " on the whole cluster" : " now");
		return;
	}
	if (g > 0 && e->best_gpus < g) {
		if (r->gpu_mem) {
			fmt_size(r->gpu_mem, a, sizeof(a));
			snprintf(buf, len, "needs %" PRIu32 " GPUs with %s each on one node; %s %" PRIu32
				 "%s", g, a, best, e->best_gpus, fr);
		} else {
			snprintf(buf, len, "needs %" PRIu32 " GPU%s on one node; %s %" PRIu32 "%s", g,
				 g > 1 ? "s" : "", best, e->best_gpus, fr);
		}
		return;
	}
	if (res_is_share(r) && e->best_share < r->gpus_milli) {
		fmt_milli(r->gpus_milli, a, sizeof(a));
		fmt_milli(e->best_share, b, sizeof(b));
		snprintf(buf, len, "needs %s of a GPU%s; best GPU has %s%s", a,
			 r->gpu_mem ? " with enough memory" : "", b, fr);
		return;
	}
	if (r->mem > e->best_mem) {
		fmt_size(r->mem, a, sizeof(a));
		fmt_size(e->best_mem, b, sizeof(b));
		snprintf(buf, len, "needs %s memory on one node; %s %s%s", a, best, b, fr);
		return;
	}
	if (r->cpu_milli > e->best_cpu) {
		fmt_milli(r->cpu_milli, a, sizeof(a));
		fmt_milli(e->best_cpu, b, sizeof(b));
		snprintf(buf, len, "needs %s CPUs on one node; %s %s%s", a, best, b, fr);
		return;
	}
	fmt_milli(r->gpus_milli, a, sizeof(a));
	fmt_size(r->mem, b, sizeof(b));
	fmt_milli(r->cpu_milli, sh, sizeof(sh));
	snprintf(buf, len, "no node has %s GPUs, %s memory and %s CPUs%s at once", a, b, sh,
		 empty ? "" : " free");
}

/* A full reason.  respect: nodes reserved for other jobs count as taken. */
static void explain(const struct sched *s, const struct sched_req *req, bool empty, bool respect,
		    char *buf, size_t len)
{
	struct expl e;
	char why[128], c[256];

	if (res_check(&req->res, why, sizeof(why)) != 0) {
		snprintf(buf, len, "invalid request: %s", why);
		return;
	}
	explain_walk(s, req, empty, &e);
	if (e.nsched == 0) {
		snprintf(buf, len, "no schedulable node");
		return;
	}
	if (e.ncons == 0) {
		for (uint32_t k = 0; k < req->ncons && k < SCHED_MAX_CONS; k++) {
			if (e.cons_pass[k] == 0) {
				sched_cons_format(&req->cons[k], c, sizeof(c));
				snprintf(buf, len, "no node matches %s", c);
				return;
			}
		}
		snprintf(buf, len, "no node matches all of");
		for (uint32_t k = 0; k < req->ncons; k++) {
			size_t at = strlen(buf);

			sched_cons_format(&req->cons[k], c, sizeof(c));
			snprintf(buf + at, len - at, "%s %s", k ? "," : "", c);
		}
		return;
	}
	if (e.nmodel == 0) {
		snprintf(buf, len, "no node has GPU model %s", req->gpu_model);
		return;
	}
	if (!empty && (respect ? e.cap_resv : e.cap_all) >= req->ntasks) {
		snprintf(buf, len, "fits now");
		return;
	}
	if (respect && !empty && e.cap_all >= req->ntasks) {
		snprintf(buf, len, "waiting behind job %" PRIu64 "'s reservation", e.resv_by);
		return;
	}
	if (respect && !empty && e.nfree == 0) {
		snprintf(buf, len, "reserved for job %" PRIu64, e.resv_by);
		return;
	}
	explain_res(req, &e, empty, respect ? e.cap_resv : e.cap_all, buf, len);
}

void sched_explain(const struct sched *s, const struct sched_req *req, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	explain(s, req, false, true, buf, len);
}

/* ---- constraints ---- */

static bool tok_char(char c)
{
	return c && !strchr(" \t\n\r,()=!", c);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Copy one token at *pp into out; 0, or a reason. */
static const char *take_tok(const char **pp, char *out, const char *what)
{
	const char *p = skip_ws(*pp), *q = p;

	while (tok_char(*q))
		q++;
	if (q == p)
		return what;
	if ((size_t)(q - p) >= SCHED_LABEL_LEN)
		return "name or value longer than 63 characters";
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	*pp = q;
	return NULL;
}

int sched_cons_parse(const char *text, struct sched_cons *c, char *why, size_t whylen)
{
	const char *p = text ? text : "", *err = NULL;

	memset(c, 0, sizeof(*c));
	if ((err = take_tok(&p, c->key, "missing label name")) != NULL)
		goto out;
	p = skip_ws(p);
	if (p[0] == '!' && p[1] == '=') {
		c->op = SCHED_NE;
		p += 2;
	} else if (p[0] == '=') {
		c->op = SCHED_EQ;
		p += p[1] == '=' ? 2 : 1;
	} else if (p[0] == 'i' && p[1] == 'n' && (p[2] == '(' || p[2] == ' ' || p[2] == '\t')) {
		c->op = SCHED_IN;
		p = skip_ws(p + 2);
		if (*p != '(') {
			err = "expected ( after in";
			goto out;
		}
		p++;
		for (;;) {
			if (c->nvals == SCHED_MAX_IN) {
				err = "too many values in (...) (at most 8)";
				goto out;
			}
			if ((err = take_tok(&p, c->vals[c->nvals], "missing value in (...)")) != NULL)
				goto out;
			c->nvals++;
			p = skip_ws(p);
			if (*p == ')')
				break;
			if (*p != ',') {
				err = "expected , or ) in (...)";
				goto out;
			}
			p++;
		}
		p++;
		goto end;
	} else {
		err = "expected =, != or in after the label name";
		goto out;
	}
	if ((err = take_tok(&p, c->vals[0], "missing value")) != NULL)
		goto out;
	c->nvals = 1;
end:
	if (*skip_ws(p) != '\0')
		err = "unexpected text after the constraint";
out:
	if (err) {
		if (why && whylen)
			snprintf(why, whylen, "constraint \"%s\": %s", text ? text : "", err);
		memset(c, 0, sizeof(*c));
		return ERR_INVAL;
	}
	return 0;
}

void sched_cons_format(const struct sched_cons *c, char *buf, size_t len)
{
	size_t at;

	if (!buf || len == 0)
		return;
	switch (c->op) {
	case SCHED_EQ:
	case SCHED_NE:
		snprintf(buf, len, "%s%s%s", c->key, c->op == SCHED_EQ ? "=" : "!=", c->vals[0]);
		return;
	case SCHED_IN:
		snprintf(buf, len, "%s in (", c->key);
		for (uint32_t i = 0; i < c->nvals && i < SCHED_MAX_IN; i++) {
			at = strlen(buf);
			snprintf(buf + at, len - at, "%s%s", i ? "," : "", c->vals[i]);
		}
		at = strlen(buf);
		snprintf(buf + at, len - at, ")");
		return;
	}
	buf[0] = '\0';
}

/* ---- policies ---- */

struct preg {
	const struct sched_policy *p;
	void *dl; /* NULL for built-ins and registered ones */
};

static struct preg policies[MAX_POLICIES];
static uint32_t npolicies;

static const struct sched_policy *const builtins[] = {&sched_binpack, &sched_spread, &sched_fgd};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static const struct sched_policy *builtin_find(const char *name)
{
	for (size_t i = 0; i < NBUILTINS; i++) {
		if (strcmp(name, builtins[i]->name) == 0)
			return builtins[i];
	}
	return NULL;
}

uint32_t sched_policy_count(void)
{
	return (uint32_t)NBUILTINS + npolicies;
}

const struct sched_policy *sched_policy_at(uint32_t i)
{
	if (i < NBUILTINS)
		return builtins[i];
	i -= (uint32_t)NBUILTINS;
	return i < npolicies ? policies[i].p : NULL;
}

const struct sched_policy *sched_policy_find(const char *name)
{
	const struct sched_policy *p;

	if (!name)
		return NULL;
	if ((p = builtin_find(name)) != NULL)
		return p;
	for (uint32_t i = 0; i < npolicies; i++) {
		if (strcmp(policies[i].p->name, name) == 0)
			return policies[i].p;
	}
	return NULL;
}

static int policy_add(const struct sched_policy *p, void *dl, const char *what, char *why,
		      size_t whylen)
{
	const char *err = NULL;
	int rc = ERR_INVAL;

	if (!p) {
		err = "no policy";
	} else if (p->version != SCHED_POLICY_VERSION) {
		rc = ERR_VERSION;
		if (why && whylen)
			snprintf(why, whylen, "%s: policy version %" PRIu32 ", expected %d", what,
				 p->version, SCHED_POLICY_VERSION);
		return rc;
	} else if (!p->name || !p->name[0] || !p->pick) {
		err = "policy without a name or a pick function";
	} else if (sched_policy_find(p->name)) {
		rc = ERR_EXIST;
		if (why && whylen)
			snprintf(why, whylen, "%s: policy \"%s\" is already registered", what,
				 p->name);
		return rc;
	} else if (npolicies == MAX_POLICIES) {
		rc = ERR_TOOBIG;
		err = "too many policies";
	}
	if (err) {
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", what, err);
		return rc;
	}
	policies[npolicies].p = p;
	policies[npolicies].dl = dl;
	npolicies++;
	return 0;
}

int sched_policy_register(const struct sched_policy *p, char *why, size_t whylen)
{
	return policy_add(p, NULL, p && p->name ? p->name : "policy", why, whylen);
}

void sched_policy_reset(void)
{
	while (npolicies > 0) {
		npolicies--;
		if (policies[npolicies].dl)
			dlclose(policies[npolicies].dl);
		policies[npolicies].p = NULL;
		policies[npolicies].dl = NULL;
	}
}

static int so_filter(const struct dirent *d)
{
	size_t l = strlen(d->d_name);

	return l > 3 && strcmp(d->d_name + l - 3, ".so") == 0;
}

int sched_policy_load_dir(const char *dir, char *why, size_t whylen)
{
	struct dirent **ents = NULL;
	int n, rc = 0;

	n = scandir(dir, &ents, so_filter, alphasort);
	if (n < 0) {
		if (why && whylen)
			snprintf(why, whylen, "%s: cannot read the folder", dir);
		return ERR_IO;
	}
	/* Load them all, sorted by name; report the first failure. */
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, ents[i]->d_name);
		const struct sched_policy *p;
		void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		int r = 0;
		char w[SCHED_REASON_LEN];

		if (!dl) {
			const char *e = dlerror();

			r = ERR_IO;
			snprintf(w, sizeof(w), "%s: %s", path, e ? e : "dlopen failed");
		} else if (!(p = dlsym(dl, "sched_policy_plugin"))) {
			r = ERR_INVAL;
			snprintf(w, sizeof(w), "%s: no symbol sched_policy_plugin", path);
		} else {
			r = policy_add(p, dl, path, w, sizeof(w));
		}
		if (r != 0) {
			if (dl)
				dlclose(dl);
			if (rc == 0) {
				rc = r;
				if (why && whylen)
					snprintf(why, whylen, "%s", w);
			}
		}
		free(path);
		free(ents[i]);
	}
	free(ents);
	return rc;
}

/* ---- the workload mix ---- */

#define MIX_RESCALE 1e100 /* rescale the weights before inc overflows */

void sched_mix_config(struct sched *s, double halflife, bool learn)
{
	s->mix_grow = halflife > 0 ? exp2(1.0 / halflife) : 1.0;
	s->mix_learn = learn;
	if (s->mix_inc <= 0)
		s->mix_inc = 1.0;
}

void sched_mix_clear(struct sched *s)
{
	s->nmix = 0;
	s->mix_sum = 0;
	s->mix_inc = 1.0;
}

uint32_t sched_mix_len(const struct sched *s)
{
	return s->nmix;
}

const struct sched_shape *sched_mix_at(struct sched *s, uint32_t i)
{
	struct mix_shape *m;

	if (i >= s->nmix)
		return NULL;
	m = &s->mix[i];
	m->pub.share = s->mix_sum > 0 ? m->w / s->mix_sum : 0;
	m->pub.cpu_milli = m->w > 0 ? (uint32_t)(m->cpu_w / m->w + 0.5) : 0;
	m->pub.mem = m->w > 0 ? (uint64_t)(m->mem_w / m->w + 0.5) : 0;
	return &m->pub;
}

/* The bit of constraint (model, gpu_mem), added if new; 0 when the table
 * is full. */
static uint32_t cons_bit(struct sched *s, const char *model, uint64_t gpu_mem)
{
	for (uint32_t i = 0; i < s->nmcons; i++) {
		if (s->mcons[i].gpu_mem == gpu_mem && strcasecmp(s->mcons[i].model, model) == 0)
			return 1u << i;
	}
	if (s->nmcons == SCHED_MIX_CONS)
		return 0;
	strlcpy_ok(s->mcons[s->nmcons].model, model, sizeof(s->mcons[s->nmcons].model));
	s->mcons[s->nmcons].gpu_mem = gpu_mem;
	s->mix_gen++;
	return 1u << s->nmcons++;
}

static uint32_t bit_len(uint32_t v)
{
	return v ? 32u - (uint32_t)__builtin_clz(v) : 0;
}

void sched_mix_add(struct sched *s, const struct res *r, const char *const *models,
		   uint32_t nmodels, double weight)
{
	uint32_t mask = 0, cls = bit_len(r->cpu_milli / MILLI), k;
	struct mix_shape *m = NULL;
	double w;

	if (!(weight > 0) || res_check(r, NULL, 0) != 0)
		return;
	if (r->gpus_milli > 0) {
		for (uint32_t i = 0; i < nmodels; i++) {
			if (models[i] && models[i][0])
				mask |= cons_bit(s, models[i], r->gpu_mem);
		}
		if (mask == 0 && r->gpu_mem)
			mask = cons_bit(s, "", r->gpu_mem);
	}
	for (k = 0; k < s->nmix; k++) {
		m = &s->mix[k];
		if (m->pub.gpus_milli == r->gpus_milli && m->pub.cons == mask && m->cpu_class == cls)
			break;
	}
	if (k == s->nmix) {
		if (s->nmix < SCHED_MIX_MAX) {
			k = s->nmix++;
		} else {
			/* The lightest shape makes room; its weight leaves the sum. */
			k = 0;
			for (uint32_t i = 1; i < s->nmix; i++) {
				if (s->mix[i].w < s->mix[k].w)
					k = i;
			}
			s->mix_sum -= s->mix[k].w;
		}
		m = &s->mix[k];
		memset(m, 0, sizeof(*m));
		m->pub.gpus_milli = r->gpus_milli;
		m->pub.cons = mask;
		m->cpu_class = cls;
	}
	w = weight * s->mix_inc;
	m->w += w;
	m->cpu_w += w * r->cpu_milli;
	m->mem_w += w * (double)r->mem;
	s->mix_sum += w;
	s->mix_inc *= s->mix_grow;
	if (s->mix_inc > MIX_RESCALE) {
		for (uint32_t i = 0; i < s->nmix; i++) {
			s->mix[i].w /= s->mix_inc;
			s->mix[i].cpu_w /= s->mix_inc;
			s->mix[i].mem_w /= s->mix_inc;
		}
		s->mix_sum /= s->mix_inc;
		s->mix_inc = 1.0;
	}
}

uint32_t sched_mix_node_mask(struct sched *s, struct sched_node *n)
{
	if (n->mix_gen == s->mix_gen)
		return n->mix_mask;
	n->mix_mask = 0;
	for (uint32_t i = 0; i < s->nmcons; i++) {
		const struct mix_cons *c = &s->mcons[i];
		bool ok = node_ngpus(n) > 0;

		if (ok && c->model[0])
			ok = node_has_model(n, c->model);
		for (uint32_t g = 0; ok && c->gpu_mem && g < node_ngpus(n); g++)
			ok = n->res.gpus[g].mem >= c->gpu_mem;
		if (ok)
			n->mix_mask |= 1u << i;
	}
	n->mix_gen = s->mix_gen;
	return n->mix_mask;
}

double sched_mix_reserved(struct sched *s, struct sched_node *n)
{
	uint32_t mask;
	double w = 0;

	if (s->nmcons == 0 || s->mix_sum <= 0)
		return 0;
	mask = sched_mix_node_mask(s, n);
	if (mask == 0)
		return 0;
	for (uint32_t i = 0; i < s->nmix; i++) {
		if (s->mix[i].pub.cons & mask)
			w += s->mix[i].w;
	}
	return w / s->mix_sum;
}

/* ---- the queue pass ---- */

/* The job holding the reservation, for status pages and tests. */
uint64_t sched_reserved_job(const struct sched *s)
{
	return s->resv_job;
}

static void resv_clear(struct sched *s)
{
	for (uint32_t i = 0; i < s->nresv; i++) {
		struct sched_node *n = sched_node_get(s, s->resv[i]);

		if (n)
			n->reserved_for = 0;
	}
	s->nresv = 0;
	s->resv_job = 0;
}

static void resv_mark(struct sched *s, struct sched_node *n, uint64_t job)
{
	if (n->reserved_for == job)
		return;
	n->reserved_for = job;
	s->resv = grow32(s->resv, &s->resv_cap, s->nresv + 1, sizeof(*s->resv));
	s->resv[s->nresv++] = n->id;
	s->resv_job = job;
}

void sched_unreserve(struct sched *s, uint64_t job)
{
	/* A walk over every node: it also catches reservations set by hand. */
	for (uint32_t id = 0; id < s->nslots; id++) {
		struct sched_node *n = s->nodes[id];

		if (n && n->reserved_for && (job == 0 || n->reserved_for == job)) {
			n->reserved_for = 0;
			resv_drop(s, id);
		}
	}
	if (job == 0 || s->resv_job == job) {
		s->nresv = 0;
		s->resv_job = 0;
	}
}

static int ord_cmp(const void *a, const void *b)
{
	const struct ord *x = a, *y = b;

	if (x->job->req.priority != y->job->req.priority)
		return x->job->req.priority > y->job->req.priority ? -1 : 1;
	if (x->job->order != y->job->order)
		return x->job->order < y->job->order ? -1 : 1;
	if (x->job->req.job != y->job->req.job)
		return x->job->req.job < y->job->req.job ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Could req fit on an empty cluster (only schedulable, matching nodes)? */
static bool fits_empty(const struct sched *s, const struct sched_req *req)
{
	uint64_t sum = 0;

	if (res_check(&req->res, NULL, 0) != 0)
		return false;
	for (uint32_t id = 0; id < s->nslots && sum < req->ntasks; id++) {
		const struct sched_node *n = s->nodes[id];

		if (n && node_ok(n, req, true))
			sum += node_cap(n, &req->res, true, req->ntasks);
	}
	return sum >= req->ntasks;
}

/* Would req fit now if no node were reserved?  Only the buckets that can
 * hold a task are walked. */
static bool fits_unreserved(const struct sched *s, const struct sched_req *req)
{
	uint32_t g = res_whole_gpus(&req->res), from = g;
	uint64_t sum = 0;

	if (res_is_share(&req->res)) {
		for (uint32_t i = 0; i < s->slen && sum < req->ntasks; i++) {
			if (node_ok(s->shared[i], req, true))
				sum += node_cap(s->shared[i], &req->res, false, req->ntasks);
		}
		/* Shared nodes in bucket 0 are counted; the rest have a free card. */
		from = 1;
	}
	for (uint32_t b = sched_bucket_next(s, from); b != SCHED_NONE && sum < req->ntasks;
	     b = sched_bucket_next(s, b + 1)) {
		for (uint32_t i = 0; i < s->blen[b] && sum < req->ntasks; i++) {
			const struct sched_node *n = s->bucket[b][i];

			if (res_is_share(&req->res) && n->spos != SCHED_NONE)
				continue;
			if (node_ok(n, req, true))
				sum += node_cap(n, &req->res, false, req->ntasks);
		}
	}
	return sum >= req->ntasks;
}

/* Why a job that does not fit even without reservations waits.  For the
 * common case, a whole-GPU task no node has room for, the answer comes from
 * the first matching node in the highest bucket; otherwise a full walk. */
static void blocked_reason(const struct sched *s, const struct sched_req *req, char *buf,
			   size_t len)
{
	uint32_t g = res_whole_gpus(&req->res);

	if (g > 0 && !req->res.gpu_mem) {
		for (uint32_t b = sched_bucket_prev(s, RES_MAX_GPUS); b != SCHED_NONE;
		     b = b ? sched_bucket_prev(s, b - 1) : SCHED_NONE) {
			for (uint32_t i = 0; i < s->blen[b]; i++) {
				if (!node_ok(s->bucket[b][i], req, true))
					continue;
				if (b >= g)
					goto full; /* a node has the GPUs: another dimension */
				snprintf(buf, len,
					 "needs %" PRIu32 " GPU%s on one node; best node has %" PRIu32
					 " free", g, g > 1 ? "s" : "", b);
				return;
			}
		}
	}
full:
	explain(s, req, false, false, buf, len);
}

static bool same_cons(const struct sched_req *a, const struct sched_req *b)
{
	if (a->ncons != b->ncons)
		return false;
	for (uint32_t i = 0; i < a->ncons; i++) {
		const struct sched_cons *x = &a->cons[i], *y = &b->cons[i];

		if (x->op != y->op || x->nvals != y->nvals || strcmp(x->key, y->key) != 0)
			return false;
		for (uint32_t k = 0; k < x->nvals && k < SCHED_MAX_IN; k++) {
			if (strcmp(x->vals[k], y->vals[k]) != 0)
				return false;
		}
	}
	return true;
}

/* Two jobs that would get the same answer: same shape, constraints, model,
 * and (because preemption depends on it) priority and may_preempt. */
static bool same_shape(const struct sched_job *a, const struct sched_job *b)
{
	const struct sched_req *x = &a->req, *y = &b->req;
	const char *mx = x->gpu_model ? x->gpu_model : "", *my = y->gpu_model ? y->gpu_model : "";

	return x->ntasks == y->ntasks && x->res.gpus_milli == y->res.gpus_milli &&
	       x->res.gpu_mem == y->res.gpu_mem && x->res.mem == y->res.mem &&
	       x->res.cpu_milli == y->res.cpu_milli && x->priority == y->priority &&
	       a->may_preempt == b->may_preempt && strcmp(mx, my) == 0 && same_cons(x, y);
}

static const char *memo_find(const struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < s->nmemo; i++) {
		if (same_shape(s->memo[i].job, j))
			return s->memo[i].reason;
	}
	return NULL;
}

static void memo_add(struct sched *s, const struct sched_job *j, const char *reason)
{
	struct memo *m = &s->memo[s->memo_next];

	m->job = j;
	snprintf(m->reason, sizeof(m->reason), "%s", reason);
	s->memo_next = (s->memo_next + 1) % MEMO_LEN;
	if (s->nmemo < MEMO_LEN)
		s->nmemo++;
}

static void emit_wait(sched_emit_fn emit, void *arg, struct sched_job *j, const char *reason)
{
	struct sched_action a;

	memset(&a, 0, sizeof(a));
	a.type = SCHED_WAIT;
	a.job = j;
	snprintf(a.reason, sizeof(a.reason), "%s", reason && reason[0] ? reason : "pending");
	emit(arg, &a);
}

static bool is_victim(const struct sched *s, uint64_t job)
{
	for (size_t i = 0; i < s->nvids; i++) {
		if (s->vids[i] == job)
			return true;
	}
	return false;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->job->req.priority != y->job->req.priority)
		return x->job->req.priority < y->job->req.priority ? -1 : 1;
	if (x->gpus != y->gpus)
		return x->gpus > y->gpus ? -1 : 1;
	if (x->job->order != y->job->order)
		return x->job->order > y->job->order ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Running jobs that hold something, in victim order (lowest priority, most
 * GPUs, newest first), sorted once per pass on the first search. */
static void cand_prepare(struct sched *s, struct sched_job **running, size_t nrunning)
{
	size_t nc = 0;

	if (s->cand_ready)
		return;
	s->cand = grow(s->cand, &s->cand_cap, nrunning + 1, sizeof(*s->cand));
	for (size_t i = 0; i < nrunning; i++) {
		struct sched_job *r = running[i];

		if (!r->held || r->nheld == 0)
			continue;
		s->cand[nc].idx = i;
		s->cand[nc].job = r;
		s->cand[nc].gpus = (uint64_t)r->nheld * r->req.res.gpus_milli;
		s->cand[nc].state = 0;
		nc++;
	}
	qsort(s->cand, nc, sizeof(*s->cand), cand_cmp);
	s->ncand = nc;
	s->cand_ready = true;
}

static void give_range(struct sched *s, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		job_give(s, s->elig[i].job);
}

/*
 * Look for victims for j among running jobs of strictly lower priority that
 * are not victims already.  Greedy: release them in victim order until j
 * fits; none if j does not fit with all of them released.  Then prune: put
 * each chosen one back, highest priority first (among equals the last chosen
 * first), and leave it running if j still fits.
 *
 * Fitting only gets easier as more is released, so the greedy prefix is the
 * shortest one that fits: it is found by doubling the prefix and then a
 * binary search inside the last step, a few dry runs instead of one per
 * candidate.  Everything is journaled and undone before returning, so the
 * cluster is exactly as before; s->dry holds j's dry-run placement and
 * s->elig[0..n) the victims.  *had: candidates existed.
 */
static uint32_t find_victims(struct sched *s, struct sched_job *j, struct sched_job **running,
			     size_t nrunning, bool *had)
{
	size_t mark = s->jlen, markq, ne = 0, q = 0, p = 0, step = 1, lo, hi;
	uint32_t nv = 0;
	bool ok = false;

	*had = false;
	cand_prepare(s, running, nrunning);
	s->elig = grow(s->elig, &s->elig_cap, s->ncand + 1, sizeof(*s->elig));
	for (size_t i = 0; i < s->ncand; i++) {
		if (s->cand[i].job->req.priority >= j->req.priority)
			break; /* sorted by priority: the rest are not lower */
		if (s->victim[s->cand[i].idx])
			continue;
		s->elig[ne] = s->cand[i];
		s->elig[ne++].state = 0;
	}
	if (ne == 0)
		return 0;
	*had = true;

	/* Prefixes 1, 3, 7, ...: [q, p) is the last step released. */
	for (;;) {
		markq = s->jlen;
		q = p;
		p = p + step < ne ? p + step : ne;
		give_range(s, q, p);
		if (place(s, &j->req, s->dry, false) == 0) {
			ok = true;
			break;
		}
		if (p == ne)
			break;
		step *= 2;
	}
	if (!ok) {
		rollback(s, mark);
		return 0;
	}
	/* Prefix lo does not fit, hi does. */
	for (lo = q, hi = p; hi - lo > 1;) {
		size_t mid = lo + (hi - lo) / 2;

		rollback(s, markq);
		give_range(s, q, mid);
		if (place(s, &j->req, s->dry, false) == 0)
			hi = mid;
		else
			lo = mid;
	}
	rollback(s, markq);
	give_range(s, q, hi);

	/* Prune.  j fits before each step and after it, so the final dry run
	 * fits. */
	for (;;) {
		size_t pick = SIZE_MAX;

		for (size_t i = 0; i < hi; i++) {
			if (s->elig[i].state != 0)
				continue;
			if (pick == SIZE_MAX ||
			    s->elig[i].job->req.priority >= s->elig[pick].job->req.priority)
				pick = i;
		}
		if (pick == SIZE_MAX)
			break;
		job_retake(s, s->elig[pick].job);
		if (place(s, &j->req, s->dry, false) == 0) {
			s->elig[pick].state = 1;
		} else {
			job_give(s, s->elig[pick].job);
			s->elig[pick].state = 2;
		}
	}
	/* The final dry run tells which nodes to reserve. */
	if (place(s, &j->req, s->dry, false) != 0)
		hi = 0; /* cannot happen: see above */
	rollback(s, mark);

	for (size_t i = 0; i < hi; i++) {
		if (s->elig[i].state == 2)
			s->elig[nv++] = s->elig[i];
	}
	return nv;
}

static int rank_cmp(const void *a, const void *b)
{
	const struct rank *x = a, *y = b;

	if (x->now != y->now)
		return x->now > y->now ? -1 : 1;
	if (x->whole != y->whole)
		return x->whole > y->whole ? -1 : 1;
	if (x->mem != y->mem)
		return x->mem > y->mem ? -1 : 1;
	return x->n->id < y->n->id ? -1 : x->n->id > y->n->id;
}

/* A fresh reservation for j: the matching nodes with the most room now,
 * until they could hold all of j's tasks once emptied. */
static void reserve_greedy(struct sched *s, const struct sched_req *req)
{
	size_t nr = 0;
	uint64_t sum = 0;

	s->rank = grow(s->rank, &s->rank_cap, s->nnodes + 1, sizeof(*s->rank));
	for (uint32_t id = 0; id < s->nslots; id++) {
		struct sched_node *n = s->nodes[id];
		uint32_t e;
		bool partial;

		if (!n || !node_ok(n, req, true))
			continue;
		if ((e = node_cap(n, &req->res, true, req->ntasks)) == 0)
			continue;
		s->rank[nr].n = n;
		s->rank[nr].ecap = e;
		s->rank[nr].now = node_cap(n, &req->res, false, req->ntasks);
		s->rank[nr].whole = node_state(n, &partial);
		s->rank[nr].mem = n->res.mem_total - (n->res.mem_used < n->res.mem_total
							      ? n->res.mem_used : n->res.mem_total);
		nr++;
	}
	qsort(s->rank, nr, sizeof(*s->rank), rank_cmp);
	for (size_t i = 0; i < nr && sum < req->ntasks; i++) {
		resv_mark(s, s->rank[i].n, req->job);
		sum += s->rank[i].ecap;
	}
}

/* Re-mark j's reservation from the last pass if its nodes still could hold
 * all its tasks once emptied. */
static bool reserve_keep(struct sched *s, const struct sched_req *req, size_t nold)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < nold; i++) {
		struct sched_node *n = sched_node_get(s, s->old[i]);

		if (n && node_ok(n, req, true))
			sum += node_cap(n, &req->res, true, req->ntasks);
	}
	if (nold == 0 || sum < req->ntasks)
		return false;
	for (size_t i = 0; i < nold; i++) {
		struct sched_node *n = sched_node_get(s, s->old[i]);

		if (n && node_ok(n, req, true) && node_cap(n, &req->res, true, req->ntasks) > 0)
			resv_mark(s, n, req->job);
	}
	return true;
}

/* Emit the victims in s->elig[0..nv) and append "(ids)" to reason. */
static void emit_victims(struct sched *s, struct sched_job *j, uint32_t nv, sched_emit_fn emit,
			 void *arg, char *reason, size_t len)
{
	struct sched_action a;
	size_t at;

	snprintf(reason, len, "preempting %" PRIu32 " lower-priority job%s (", nv, nv > 1 ? "s" : "");
	for (uint32_t i = 0; i < nv; i++) {
		struct sched_job *v = s->elig[i].job;

		s->victim[s->elig[i].idx] = true;
		s->vids = grow(s->vids, &s->vids_cap, s->nvids + 1, sizeof(*s->vids));
		s->vids[s->nvids++] = v->req.job;
		memset(&a, 0, sizeof(a));
		a.type = SCHED_PREEMPT;
		a.job = v;
		a.for_job = j;
		snprintf(a.reason, sizeof(a.reason), "preempted by job %" PRIu64 " (priority %" PRId32
			 ")", j->req.job, j->req.priority);
		emit(arg, &a);
		at = strlen(reason);
		if (i < 8)
			snprintf(reason + at, len - at, "%s%" PRIu64, i ? ", " : "", v->req.job);
		else if (i == 8)
			snprintf(reason + at, len - at, ", ...");
	}
	at = strlen(reason);
	snprintf(reason + at, len - at, ") to make room");
}

int sched_pass(struct sched *s, struct sched_job **pending, size_t npending,
	       struct sched_job **running, size_t nrunning, sched_emit_fn emit, void *arg)
{
	uint64_t old_job = s->resv_job;
	size_t nold = 0;
	bool head_set = false;
	uint32_t tries = 0;
	int placed = 0;
	char reason[SCHED_REASON_LEN], more[SCHED_REASON_LEN];

	/* Forget last pass's reservation; the head job gets it back below if
	 * it still is the head and the nodes still serve it. */
	s->old = grow(s->old, &s->old_cap, s->nresv + 1, sizeof(*s->old));
	for (uint32_t i = 0; i < s->nresv; i++) {
		struct sched_node *n = sched_node_get(s, s->resv[i]);

		if (n && n->reserved_for == old_job)
			s->old[nold++] = s->resv[i];
	}
	resv_clear(s);

	s->ord = grow(s->ord, &s->ord_cap, npending + 1, sizeof(*s->ord));
	for (size_t i = 0; i < npending; i++) {
		s->ord[i].job = pending[i];
		s->ord[i].idx = i;
	}
	qsort(s->ord, npending, sizeof(*s->ord), ord_cmp);
	s->victim = grow(s->victim, &s->victim_cap, nrunning + 1, sizeof(*s->victim));
	memset(s->victim, 0, (nrunning + 1) * sizeof(*s->victim));
	s->nvids = 0;
	s->nmemo = s->memo_next = 0;
	s->cand_ready = false;

	for (size_t k = 0; k < npending; k++) {
		struct sched_job *j = s->ord[k].job;
		const struct sched_req *req = &j->req;
		const char *m;
		struct sched_action a;
		uint32_t nv = 0;
		bool had = false;

		if (is_victim(s, req->job)) {
			emit_wait(emit, arg, j, "being preempted");
			continue;
		}
		if ((m = memo_find(s, j)) != NULL) {
			emit_wait(emit, arg, j, m);
			continue;
		}
		s->slots = grow32(s->slots, &s->slots_cap, req->ntasks + 1, sizeof(*s->slots));
		s->dry = grow32(s->dry, &s->dry_cap, req->ntasks + 1, sizeof(*s->dry));
		if (res_check(&req->res, NULL, 0) == 0 && place(s, req, s->slots, true) == 0) {
			mix_learn(s, req);
			memset(&a, 0, sizeof(a));
			a.type = SCHED_PLACED;
			a.job = j;
			a.slots = s->slots;
			emit(arg, &a);
			placed++;
			continue;
		}
		if (!fits_empty(s, req)) {
			explain(s, req, true, false, more, sizeof(more));
			snprintf(reason, sizeof(reason), "would not fit even on an empty cluster: %.200s",
				 more);
			emit_wait(emit, arg, j, reason);
			memo_add(s, j, reason);
			continue;
		}
		if (!head_set) {
			/* The head-blocked job: it gets the reservation. */
			head_set = true;
			if (j->may_preempt && tries++ < PREEMPT_TRIES &&
			    (nv = find_victims(s, j, running, nrunning, &had)) > 0) {
				for (uint32_t i = 0; i < req->ntasks; i++)
					resv_mark(s, sched_node_get(s, s->dry[i].node), req->job);
				emit_victims(s, j, nv, emit, arg, reason, sizeof(reason));
			} else {
				if (req->job != old_job || !reserve_keep(s, req, nold))
					reserve_greedy(s, req);
				blocked_reason(s, req, more, sizeof(more));
				snprintf(reason, sizeof(reason), "%.180s%s; %" PRIu32 " node%s reserved for it",
					 more, had ? "; would not fit even with preemption" : "",
					 s->nresv, s->nresv == 1 ? "" : "s");
			}
			emit_wait(emit, arg, j, reason);
			s->nmemo = s->memo_next = 0;
			continue;
		}
		if (fits_unreserved(s, req)) {
			snprintf(reason, sizeof(reason), "waiting behind job %" PRIu64 "'s reservation",
				 s->resv_job);
			emit_wait(emit, arg, j, reason);
			memo_add(s, j, reason);
			continue;
		}
		if (j->may_preempt && tries < PREEMPT_TRIES) {
			tries++;
			if ((nv = find_victims(s, j, running, nrunning, &had)) > 0) {
				emit_victims(s, j, nv, emit, arg, reason, sizeof(reason));
				emit_wait(emit, arg, j, reason);
				s->nmemo = s->memo_next = 0;
				continue;
			}
		}
		blocked_reason(s, req, more, sizeof(more));
		snprintf(reason, sizeof(reason), "%.200s%s", more,
			 had ? "; would not fit even with preemption" : "");
		emit_wait(emit, arg, j, reason);
		memo_add(s, j, reason);
	}
	return placed;
}
