/*
 * sched.c - the scheduler core proper: struct sched's life, nodes, the
 * free-GPU index (buckets, the shared set, the bitmap), the journal, fitting
 * and placing (sched_place, sched_take, sched_release).  The rest of sched.h
 * lives beside it (sched_int.h lists the files).
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
#include "sched_int.h"
#include "err.h"
#include "util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* One journaled change: enough to undo it exactly. */
struct jent {
	struct sched_node *n;
	const struct res *r;
	const struct sched_slot *slot;
	bool take;
	uint32_t bucket, bpos, spos; /* where n sat before the change */
};

/* ---- small helpers ---- */

void *sched_grow(void *p, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return p;
	while (c < need)
		c *= 2;
	*cap = c;
	return xrealloc(p, c * size);
}

void *sched_grow32(void *p, uint32_t *cap, size_t need, size_t size)
{
	size_t c = *cap;

	p = sched_grow(p, &c, need, size);
	*cap = (uint32_t)c;
	return p;
}

static uint32_t min32(uint64_t a, uint64_t b)
{
	uint64_t m = a < b ? a : b;

	return m > UINT32_MAX ? UINT32_MAX : (uint32_t)m;
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
	s->bucket[b] =
	    sched_grow32(s->bucket[b], &s->bcap[b], s->blen[b] + 1, sizeof(*s->bucket[b]));
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
	s->bucket[b] =
	    sched_grow32(s->bucket[b], &s->bcap[b], s->blen[b] + 1, sizeof(*s->bucket[b]));
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
	s->shared = sched_grow32(s->shared, &s->scap, s->slen + 1, sizeof(*s->shared));
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
	s->shared = sched_grow32(s->shared, &s->scap, s->slen + 1, sizeof(*s->shared));
	other = s->shared[pos];
	other->spos = s->slen;
	s->shared[s->slen++] = other;
	s->shared[pos] = n;
	n->spos = pos;
}

/* Free whole GPUs, and whether some card is partly handed out. */
uint32_t sched_node_free_whole(const struct sched_node *n, bool *partial)
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
	uint32_t b = sched_node_free_whole(n, &partial);

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

void sched_journal(struct sched *s, struct sched_node *n, const struct res *r,
		   const struct sched_slot *slot, bool take)
{
	struct jent *e;

	s->jr = sched_grow(s->jr, &s->jcap, s->jlen + 1, sizeof(*s->jr));
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
void sched_rollback(struct sched *s, size_t mark)
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
	s->cost_ceiling = UINT32_MAX;
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
	free(s->gate);
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

/* ---- cost tiers ---- */

static void tier_add(struct sched *s, uint32_t cost)
{
	uint32_t i = 0;

	while (i < s->ntiers && s->tier_cost[i] < cost)
		i++;
	if (i < s->ntiers && s->tier_cost[i] == cost) {
		s->tier_nodes[i]++;
		return;
	}
	if (s->ntiers == SCHED_MAX_TIERS) {
		s->tier_over++;
		return;
	}
	memmove(&s->tier_cost[i + 1], &s->tier_cost[i], (s->ntiers - i) * sizeof(*s->tier_cost));
	memmove(&s->tier_nodes[i + 1], &s->tier_nodes[i], (s->ntiers - i) * sizeof(*s->tier_nodes));
	s->tier_cost[i] = cost;
	s->tier_nodes[i] = 1;
	s->ntiers++;
}

static void tier_del(struct sched *s, uint32_t cost)
{
	for (uint32_t i = 0; i < s->ntiers; i++) {
		if (s->tier_cost[i] != cost)
			continue;
		if (--s->tier_nodes[i] == 0) {
			memmove(&s->tier_cost[i], &s->tier_cost[i + 1],
				(s->ntiers - i - 1) * sizeof(*s->tier_cost));
			memmove(&s->tier_nodes[i], &s->tier_nodes[i + 1],
				(s->ntiers - i - 1) * sizeof(*s->tier_nodes));
			s->ntiers--;
		}
		return;
	}
	if (s->tier_over > 0)
		s->tier_over--;
}

void sched_node_cost(struct sched *s, struct sched_node *n, uint32_t cost_milli)
{
	if (n->cost_milli == cost_milli)
		return;
	tier_del(s, n->cost_milli);
	n->cost_milli = cost_milli;
	tier_add(s, cost_milli);
}

uint32_t sched_tier_count(const struct sched *s)
{
	return s->ntiers;
}

uint32_t sched_tier_at(const struct sched *s, uint32_t i)
{
	return i < s->ntiers ? s->tier_cost[i] : UINT32_MAX;
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
	tier_add(s, 0);

	/* Reuse the most recently freed id: ids stay small and the order is
	 * deterministic. */
	if (s->nfree > 0) {
		id = s->free_ids[--s->nfree];
	} else {
		if (s->nslots == s->nodes_cap) {
			size_t c = s->nodes_cap;

			s->nodes = sched_grow(s->nodes, &c, s->nslots + 1, sizeof(*s->nodes));
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
	bucket_append(s, sched_node_free_whole(n, &partial), n);
	if (partial)
		shared_append(s, n);
	return n;
}

void sched_node_remove(struct sched *s, struct sched_node *n)
{
	if (!n || n->id >= s->nslots || s->nodes[n->id] != n)
		return;
	bucket_remove(s, n);
	if (n->spos != SCHED_NONE)
		shared_remove(s, n);
	if (n->reserved_for)
		sched_resv_drop(s, n->id);
	tier_del(s, n->cost_milli);
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

bool sched_fits(const struct sched *s, const struct sched_node *n, const struct sched_req *req,
		struct sched_slot *slot)
{
	struct sched_slot tmp;

	if (!slot)
		slot = &tmp;
	if (!n || !node_ok(n, req, false) || n->cost_milli > s->cost_ceiling)
		return false;
	if (!res_fit(&n->res, &req->res, slot->gpu_pos, &slot->ngpus))
		return false;
	slot->node = n->id;
	return true;
}

/* How many tasks of r fit on n now (or once empty), at most limit.  Tasks of
 * one request are alike, so placing one lowers this by exactly one: a gang
 * fits a set of nodes iff the counts add up to its size. */
uint32_t sched_node_cap(const struct sched_node *n, const struct res *r, bool empty, uint32_t limit)
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

void sched_req_part(const struct sched_req *req, uint32_t i, struct sched_req *out)
{
	*out = *req;
	out->ntasks = req->parts[i].ntasks;
	out->res = req->parts[i].res;
	out->gpu_model = req->parts[i].gpu_model;
	out->parts = NULL;
	out->nparts = 0;
}

int sched_req_check(const struct sched_req *req)
{
	if (req->nparts == 0)
		return res_check(&req->res, NULL, 0);
	for (uint32_t i = 0; i < req->nparts; i++)
		if (res_check(&req->parts[i].res, NULL, 0) != 0)
			return ERR_INVAL;
	return 0;
}

static int place_policy(struct sched *s, const struct sched_req *req, struct sched_slot *slots,
			bool keep);

/* Place req's tasks, journaled.  On failure everything is undone; with keep
 * false a success is undone too (a dry run) but slots stay filled.  With
 * nodes at several costs, the cheapest tier that takes the whole step wins
 * (sched.h, THE COST TIERS). */
int sched_place_journaled(struct sched *s, const struct sched_req *req, struct sched_slot *slots,
			  bool keep)
{
	int rc = ERR_NOFIT;

	if (s->ntiers + (s->tier_over ? 1 : 0) <= 1 || s->cost_ceiling != UINT32_MAX)
		return place_policy(s, req, slots, keep);
	for (uint32_t t = 0; t < s->ntiers && rc != 0; t++) {
		if (req->max_cost_milli && s->tier_cost[t] > req->max_cost_milli)
			break;
		/* The most expensive tier needs no ceiling. */
		s->cost_ceiling = t + 1 == s->ntiers && !s->tier_over ? UINT32_MAX
								       : s->tier_cost[t];
		rc = place_policy(s, req, slots, keep);
	}
	if (rc != 0 && s->tier_over) {
		s->cost_ceiling = UINT32_MAX;
		rc = place_policy(s, req, slots, keep);
	}
	s->cost_ceiling = UINT32_MAX;
	return rc;
}

/* One try with req's policy.  A gang of parts places part after part; each
 * pick sees every task of the gang chosen so far (spread keeps the roles
 * apart too). */
static int place_policy(struct sched *s, const struct sched_req *req, struct sched_slot *slots,
			bool keep)
{
	const struct sched_policy *p = req->policy ? req->policy : &sched_binpack;
	uint32_t nparts = req->nparts ? req->nparts : 1, at = 0;
	size_t mark = s->jlen;
	struct sched_req sub;

	for (uint32_t k = 0; k < nparts; k++) {
		const struct sched_req *r = req;
		const struct res *res = &req->res;

		if (req->nparts) {
			sched_req_part(req, k, &sub);
			r = &sub;
			res = &req->parts[k].res; /* outlives the journal entry */
		}
		for (uint32_t i = 0; i < r->ntasks; i++, at++) {
			struct sched_node *n = p->pick(s, r, slots, at);

			if (!n || !sched_fits(s, n, r, &slots[at])) {
				sched_rollback(s, mark);
				return ERR_NOFIT;
			}
			sched_journal(s, n, res, &slots[at], true);
		}
	}
	if (keep)
		s->jlen = mark;
	else
		sched_rollback(s, mark);
	return 0;
}

int sched_place(struct sched *s, const struct sched_req *req, struct sched_slot *slots)
{
	int rc;

	if (sched_req_check(req) != 0)
		return ERR_NOFIT;
	rc = sched_place_journaled(s, req, slots, true);
	sched_mix_learn(s, req);
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
			sched_rollback(s, mark);
			return ERR_NOFIT;
		}
		sched_journal(s, node, r, &slots[i], true);
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
