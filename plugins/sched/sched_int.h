/*
 * sched_int.h - what the pieces of the scheduler core share.  Private to
 * plugins/sched/: policies, mlmaster and mlbench use sched.h only.
 *
 * The core (sched.h) is one module in six files, one job each:
 *   sched.c    struct sched's life, nodes, the free-GPU index, the journal,
 *              fitting and placing (sched_place, sched_take, sched_release)
 *   cons.c     label constraints as text (sched_cons_parse, _format)
 *   explain.c  reasons for people (sched_explain)
 *   mix.c      the workload mix (sched_mix_*)
 *   policy.c   the policy registry and the plugin loader (sched_policy_*)
 *   queue.c    the queue pass: reservation, backfill, preemption (sched_pass)
 *   quota.c    team queues: the quota gate, borrowing, reclaim, fair share
 *
 * struct sched lives here because every piece reads it; each group of
 * fields names the file that changes it (sched_free() in sched.c frees them
 * all).  The small fitting predicates are static inline so that every hot
 * path (sched_fits(), the queue's walks, the mix's node masks) inlines them
 * as it did when the core was one file.  The functions declared below are
 * hidden: shared between these files, not exported from the library.
 */
#ifndef MLSCHED_SCHED_INT_H
#define MLSCHED_SCHED_INT_H

#include "sched.h"

#include <string.h>

#define NBUCKETS (RES_MAX_GPUS + 1)
#define MILLI 1000u
#define MEMO_LEN 16 /* blocked request shapes remembered in one pass */

struct jent; /* sched.c: one journaled change */
struct ord;  /* queue.c: a pending job in pass order */
struct rank; /* queue.c: a node ranked for a new reservation */
struct cand; /* queue.c: a preemption candidate */
struct gate_memo; /* quota.c: a queue's last refusal */

/* A request shape that failed in this pass, with the reason it got. */
struct memo {
	const struct sched_job *job;
	char reason[SCHED_REASON_LEN];
};

/* One shape of the workload mix: the public part plus raw weights.  The
 * weights are scaled by inc (see sched_mix_add), so only ratios mean anything. */
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
	/* Nodes and the index: sched.c. */
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

	/* The one reservation: queue.c. */
	uint64_t resv_job;
	uint32_t *resv;
	uint32_t nresv, resv_cap;

	/* Pass scratch (queue.c), kept between passes so that a steady queue
	 * allocates nothing. */
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

	/* The workload mix (sched.h, THE WORKLOAD MIX): mix.c. */
	struct mix_shape mix[SCHED_MIX_MAX];
	uint32_t nmix;
	double mix_sum, mix_inc, mix_grow; /* grow: inc's factor per task */
	bool mix_learn;
	struct mix_cons mcons[SCHED_MIX_CONS];
	uint32_t nmcons;
	uint32_t mix_gen; /* bumped when cons[] grows: node masks are stale */

	/* Cost tiers (sched.h, THE COST TIERS): sched.c.  tier_cost is
	 * sorted; tier_nodes counts the nodes at each cost; tier_over counts
	 * nodes whose cost did not get a tier of its own (table full).
	 * cost_ceiling: sched_fits() refuses nodes above it (UINT32_MAX
	 * except during a tiered attempt). */
	uint32_t tier_cost[SCHED_MAX_TIERS], tier_nodes[SCHED_MAX_TIERS];
	uint32_t ntiers, tier_over;
	uint32_t cost_ceiling;
	/* Team queues (sched.h, TEAM QUEUES): quota.c.  NULL = none.  The
	 * gate's last refusal per queue, reused while nothing changed (a
	 * reason costs more to format than the decision to make). */
	struct sched_quota *quota;
	struct gate_memo *gate;
	uint32_t gate_cap;
};

/* ---- fitting predicates: sched.c, explain.c, mix.c, queue.c ---- */

static inline uint32_t node_ngpus(const struct sched_node *n)
{
	return n->res.ngpus > RES_MAX_GPUS ? RES_MAX_GPUS : n->res.ngpus;
}

static inline bool cons_ok(const struct sched_node *n, const struct sched_cons *c)
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

static inline bool labels_ok(const struct sched_node *n, const struct sched_req *req)
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
static inline bool node_has_model(const struct sched_node *n, const char *model)
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

static inline bool model_ok(const struct sched_node *n, const struct sched_req *req)
{
	if (!req->gpu_model || !req->gpu_model[0] || req->res.gpus_milli == 0)
		return true;
	return node_has_model(n, req->gpu_model);
}

/* Everything but resources: schedulable, reservation, cost cap, labels,
 * model. */
static inline bool node_ok(const struct sched_node *n, const struct sched_req *req,
			   bool ignore_resv)
{
	if (!n->schedulable)
		return false;
	if (!ignore_resv && n->reserved_for && n->reserved_for != req->job)
		return false;
	if (req->max_cost_milli && n->cost_milli > req->max_cost_milli)
		return false;
	return labels_ok(n, req) && model_ok(n, req);
}

#pragma GCC visibility push(hidden)

/* ---- sched.c ---- */

/* Grow the array p of *cap elements of size bytes to hold need (doubling,
 * at least 16); returns the array (maybe moved).  Aborts when out of memory. */
void *sched_grow(void *p, size_t *cap, size_t need, size_t size);
void *sched_grow32(void *p, uint32_t *cap, size_t need, size_t size);
/* n's free whole GPUs (its bucket), and whether some card is partly handed
 * out (it belongs in the shared set). */
uint32_t sched_node_free_whole(const struct sched_node *n, bool *partial);
/* How many tasks of r fit on n now (or once empty), at most limit. */
uint32_t sched_node_cap(const struct sched_node *n, const struct res *r, bool empty,
			uint32_t limit);
/* Take (take true) or give back r at slot on n, journaled so that
 * sched_rollback() can undo it exactly; r and slot must outlive the entry. */
void sched_journal(struct sched *s, struct sched_node *n, const struct res *r,
		   const struct sched_slot *slot, bool take);
/* Undo every journaled change after mark (s->jlen before them), newest
 * first, leaving the index as it was, bucket order included. */
void sched_rollback(struct sched *s, size_t mark);
/* Place req's tasks with its policy, journaled: 0 with slots filled, or
 * ERR_NOFIT with everything undone.  keep false: a dry run, undone even on
 * success (slots stay filled). */
int sched_place_journaled(struct sched *s, const struct sched_req *req, struct sched_slot *slots,
			  bool keep);

/* ---- queue.c ---- */

/* Forget node id in the reservation's node list (the node is going away). */
void sched_resv_drop(struct sched *s, uint32_t id);

/* ---- mix.c ---- */

/* Feed the mix with req's tasks, if it learns by itself. */
void sched_mix_learn(struct sched *s, const struct sched_req *req);

/* ---- quota.c ---- */

/* Start of a pass with s->quota set: each queue's want from the pending jobs. */
void sched_quota_begin(struct sched *s, struct sched_job **pending, size_t npending);
/* sched_quota_admit() for job j under s->quota, with refusals remembered
 * per queue while the quota state stays the same. */
int sched_quota_gate(struct sched *s, const struct sched_job *j, char *why, size_t len);

/* ---- explain.c ---- */

/* Why req does not fit, into buf.  empty: as if every node were empty;
 * respect: nodes reserved for other jobs count as taken.  sched_explain()
 * is (false, true). */
void sched_explain_full(const struct sched *s, const struct sched_req *req, bool empty,
			bool respect, char *buf, size_t len);

#pragma GCC visibility pop

#endif
