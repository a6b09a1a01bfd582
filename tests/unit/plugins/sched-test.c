/*
 * sched-test.c - the scheduler core: the free-GPU index, the binpack and
 * spread policies, gangs all or nothing, constraints and GPU models,
 * reservation with backfill, preemption, explanations, policy plugins,
 * node removal, the workload mix, fgd's fragmentation score and the
 * preference that leaves model-constrained nodes to constrained tasks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "res.h"
#include "sched/sched.h"

#define GiB (1024ull * 1024 * 1024)
#define NB (RES_MAX_GPUS + 1)
#define MAXN 32

/* A node with ngpus 80G cards of model, 512G and 64 cores, in zone. */
static struct sched_node *add(struct sched *s, const char *name, uint32_t ngpus,
			      const char *model, const char *zone)
{
	struct res_node cap;
	struct sched_label l[2];
	uint32_t nl = 0;

	memset(&cap, 0, sizeof(cap));
	memset(l, 0, sizeof(l));
	cap.ngpus = ngpus;
	for (uint32_t i = 0; i < ngpus; i++) {
		cap.gpus[i].index = i;
		cap.gpus[i].mem = 80 * GiB;
		snprintf(cap.gpus[i].model, sizeof(cap.gpus[i].model), "%s", model ? model : "A100");
	}
	cap.mem_total = 512 * GiB;
	cap.cpu_total = 64000;
	if (zone) {
		snprintf(l[0].key, sizeof(l[0].key), "zone");
		snprintf(l[0].val, sizeof(l[0].val), "%s", zone);
		nl = 1;
	}
	return sched_node_add(s, name, &cap, l, nl);
}

static struct sched_req rq(uint64_t job, uint32_t ntasks, uint32_t gpus_milli)
{
	struct sched_req r;

	memset(&r, 0, sizeof(r));
	r.job = job;
	r.ntasks = ntasks;
	r.res.gpus_milli = gpus_milli;
	r.res.mem = 1 * GiB;
	r.res.cpu_milli = 1000;
	return r;
}

static uint32_t free_whole(const struct sched_node *n)
{
	return res_free_whole_gpus(&n->res, 0);
}

/* Hold the first k GPUs of n with a fake job (whole GPUs, 1G, 1 CPU). */
static void hold(struct sched *s, struct sched_node *n, uint32_t k, struct sched_slot *slot,
		 struct res *r)
{
	memset(slot, 0, sizeof(*slot));
	memset(r, 0, sizeof(*r));
	r->gpus_milli = k * 1000;
	r->mem = GiB;
	r->cpu_milli = 1000;
	slot->node = n->id;
	slot->ngpus = k;
	for (uint32_t i = 0; i < k; i++)
		slot->gpu_pos[i] = i;
	assert_int_equal(sched_take(s, r, slot, 1), 0);
}

/* ---- a byte-for-byte picture of the index ---- */

struct snap {
	uint32_t blen[NB];
	uint32_t b[NB][MAXN];
	uint32_t slen;
	uint32_t sh[MAXN];
	struct res_node res[MAXN];
	uint64_t resv[MAXN];
};

static void take_snap(const struct sched *s, struct snap *p)
{
	memset(p, 0, sizeof(*p));
	for (uint32_t b = 0; b < NB; b++) {
		p->blen[b] = sched_bucket_len(s, b);
		for (uint32_t i = 0; i < p->blen[b] && i < MAXN; i++)
			p->b[b][i] = sched_bucket_at(s, b, i)->id;
	}
	p->slen = sched_shared_len(s);
	for (uint32_t i = 0; i < p->slen && i < MAXN; i++)
		p->sh[i] = sched_shared_at(s, i)->id;
	for (uint32_t id = 0; id < sched_node_slots(s) && id < MAXN; id++) {
		const struct sched_node *n = sched_node_get(s, id);

		if (n) {
			p->res[id] = n->res;
			p->resv[id] = n->reserved_for;
		}
	}
}

/* Every node in the bucket of its free whole GPUs, at the position it
 * remembers; the shared set exactly the nodes with a partly used card. */
static void check_index(const struct sched *s)
{
	uint32_t count = 0, nshared = 0;

	for (uint32_t b = 0; b < NB; b++) {
		for (uint32_t i = 0; i < sched_bucket_len(s, b); i++) {
			const struct sched_node *n = sched_bucket_at(s, b, i);

			assert_non_null(n);
			assert_int_equal(n->bucket, b);
			assert_int_equal(n->bpos, i);
			assert_int_equal(free_whole(n), b);
			count++;
		}
		if (sched_bucket_len(s, b))
			assert_int_equal(sched_bucket_next(s, b), b);
	}
	for (uint32_t id = 0; id < sched_node_slots(s); id++) {
		const struct sched_node *n = sched_node_get(s, id);
		bool partial = false;

		if (!n)
			continue;
		count--;
		for (uint32_t g = 0; g < n->res.ngpus; g++)
			partial |= n->res.gpus[g].used_milli > 0 && n->res.gpus[g].used_milli < 1000;
		if (partial) {
			assert_int_not_equal(n->spos, SCHED_NONE);
			assert_ptr_equal(sched_shared_at(s, n->spos), n);
			nshared++;
		} else {
			assert_int_equal(n->spos, SCHED_NONE);
		}
	}
	assert_int_equal(count, 0);
	assert_int_equal(sched_shared_len(s), nshared);
}

/* ---- collecting a pass's actions ---- */

struct rec {
	enum sched_action_type type;
	struct sched_job *job, *for_job;
	char reason[SCHED_REASON_LEN];
	struct sched_slot slots[8];
};

struct actions {
	struct rec r[64];
	int n;
};

static void collect(void *arg, const struct sched_action *a)
{
	struct actions *acts = arg;
	struct rec *r;

	assert_true(acts->n < 64);
	r = &acts->r[acts->n++];
	memset(r, 0, sizeof(*r));
	r->type = a->type;
	r->job = a->job;
	r->for_job = a->for_job;
	snprintf(r->reason, sizeof(r->reason), "%s", a->reason);
	if (a->type == SCHED_PLACED)
		for (uint32_t i = 0; i < a->job->req.ntasks && i < 8; i++)
			r->slots[i] = a->slots[i];
}

static const struct rec *find(const struct actions *acts, const struct sched_job *j,
			      enum sched_action_type t)
{
	for (int i = 0; i < acts->n; i++) {
		if (acts->r[i].job == j && acts->r[i].type == t)
			return &acts->r[i];
	}
	return NULL;
}

static int count_type(const struct actions *acts, enum sched_action_type t)
{
	int c = 0;

	for (int i = 0; i < acts->n; i++)
		c += acts->r[i].type == t;
	return c;
}

/* ---- the index ---- */

static void test_index(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 8, NULL, NULL);
	struct sched_node *b = add(s, "b", 4, NULL, NULL);
	struct sched_node *c = add(s, "c", 0, NULL, NULL);
	struct sched_req r = rq(1, 1, 3000);
	struct sched_slot slot;

	assert_int_equal(sched_bucket_len(s, 8), 1);
	assert_int_equal(sched_bucket_len(s, 4), 1);
	assert_int_equal(sched_bucket_len(s, 0), 1);
	assert_int_equal(sched_bucket_next(s, 1), 4);
	assert_int_equal(sched_bucket_next(s, 5), 8);
	assert_int_equal(sched_bucket_next(s, 9), SCHED_NONE);
	assert_int_equal(sched_bucket_prev(s, RES_MAX_GPUS), 8);
	assert_int_equal(sched_bucket_prev(s, 7), 4);
	assert_int_equal(sched_bucket_prev(s, 3), 0);
	assert_ptr_equal(sched_node_by_name(s, "b"), b);
	assert_null(sched_node_by_name(s, "zz"));
	assert_ptr_equal(sched_node_get(s, c->id), c);
	assert_int_equal(sched_node_slots(s), 3);

	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, b->id); /* 4 free beats 8 free */
	assert_int_equal(slot.ngpus, 3);
	assert_int_equal(b->bucket, 1);
	assert_int_equal(sched_bucket_len(s, 4), 0);
	assert_int_equal(sched_bucket_next(s, 1), 1);
	check_index(s);

	/* A share makes a node "shared"; giving it back clears that. */
	{
		struct sched_req sh = rq(2, 1, 250);
		struct sched_slot ss;

		assert_int_equal(sched_place(s, &sh, &ss), 0);
		assert_int_equal(ss.node, b->id); /* the lowest bucket with a free card */
		assert_int_equal(sched_shared_len(s), 1);
		assert_int_equal(b->bucket, 0);
		check_index(s);
		sched_release(s, &sh.res, &ss, 1);
		assert_int_equal(sched_shared_len(s), 0);
		check_index(s);
	}
	sched_release(s, &r.res, &slot, 1);
	assert_int_equal(b->bucket, 4);
	assert_int_equal(a->bucket, 8);
	check_index(s);
	sched_free(s);
	sched_free(NULL);
}

static void test_node_remove(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *n[4];
	struct sched_req r = rq(1, 1, 8000);
	struct sched_slot slot;
	uint32_t id;

	for (int i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "n%d", i);
		n[i] = add(s, name, 8, NULL, NULL);
	}
	n[1]->reserved_for = 5;
	id = n[1]->id;
	sched_node_remove(s, n[1]);
	assert_null(sched_node_get(s, id));
	assert_null(sched_node_by_name(s, "n1"));
	assert_int_equal(sched_bucket_len(s, 8), 3);
	check_index(s);
	/* The freed id is reused; ids stay below sched_node_slots(). */
	n[1] = add(s, "n1b", 2, NULL, NULL);
	assert_int_equal(n[1]->id, id);
	assert_int_equal(n[1]->reserved_for, 0);
	assert_int_equal(sched_node_slots(s), 4);
	check_index(s);
	/* Removing a node that holds work drops the work with it. */
	assert_int_equal(sched_place(s, &r, &slot), 0);
	sched_node_remove(s, sched_node_get(s, slot.node));
	assert_int_equal(sched_bucket_len(s, 8), 2);
	assert_int_equal(sched_bucket_len(s, 0), 0);
	check_index(s);
	sched_free(s);
}

static void test_drain_and_labels(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 8, NULL, "x");
	struct sched_req r = rq(1, 1, 1000);
	struct sched_slot slot;
	struct sched_label l = {"zone", "y"};
	struct sched_cons c;

	sched_node_set(s, a, false);
	assert_false(sched_fits(s, a, &r, NULL));
	assert_int_equal(sched_place(s, &r, &slot), ERR_NOFIT);
	sched_node_set(s, a, true);
	assert_true(sched_fits(s, a, &r, &slot));
	assert_int_equal(slot.node, a->id);

	assert_int_equal(sched_cons_parse("zone=y", &c, NULL, 0), 0);
	r.cons = &c;
	r.ncons = 1;
	assert_false(sched_fits(s, a, &r, NULL));
	sched_node_labels(s, a, &l, 1);
	assert_string_equal(sched_label_get(a, "zone"), "y");
	assert_null(sched_label_get(a, "pool"));
	assert_true(sched_fits(s, a, &r, NULL));
	/* A node reserved for another job is off limits, not for its own. */
	a->reserved_for = 9;
	assert_false(sched_fits(s, a, &r, NULL));
	r.job = 9;
	assert_true(sched_fits(s, a, &r, NULL));
	sched_unreserve(s, 9);
	assert_int_equal(a->reserved_for, 0);
	sched_free(s);
}

/* ---- policies ---- */

/* Cost tiers: the cheapest tier that takes the whole step wins, whatever
 * the policy would pick across tiers; a gang spills over only as a whole;
 * a cost cap makes dearer nodes infeasible and the reason says so. */
static void test_cost_tiers(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *cheap = add(s, "cheap", 4, NULL, NULL);
	struct sched_node *dear = add(s, "dear", 1, NULL, NULL);
	struct sched_node *mid = add(s, "mid", 2, NULL, NULL);
	struct sched_slot slots[4];
	struct sched_req r;
	char why[256];

	sched_node_cost(s, dear, 4000);
	sched_node_cost(s, mid, 2000);
	assert_int_equal(sched_tier_count(s), 3);
	assert_int_equal(sched_tier_at(s, 0), 0);
	assert_int_equal(sched_tier_at(s, 2), 4000);
	/* binpack alone would take dear (1 free GPU): the cheap tier wins. */
	r = rq(1, 1, 1000);
	assert_int_equal(sched_place(s, &r, slots), 0);
	assert_int_equal(slots[0].node, cheap->id);
	/* 2 tasks of 2 GPUs: cheap has 3 free, so the gang moves up a tier
	 * as a whole (cheap + mid), not task by task. */
	r = rq(2, 2, 2000);
	assert_int_equal(sched_place(s, &r, slots), 0);
	assert_true((slots[0].node == cheap->id && slots[1].node == mid->id) ||
		    (slots[0].node == mid->id && slots[1].node == cheap->id));
	r = rq(4, 1, 1000); /* cheap's last GPU */
	assert_int_equal(sched_place(s, &r, slots), 0);
	assert_int_equal(slots[0].node, cheap->id);
	/* Capped at 2.0: dear (4.0) is infeasible even with a free GPU. */
	r = rq(3, 1, 1000);
	r.max_cost_milli = 2000;
	assert_int_equal(sched_place(s, &r, slots), ERR_NOFIT);
	sched_explain(s, &r, why, sizeof(why));
	assert_non_null(strstr(why, "1 node above max_cost_per_gpu_hour 2"));
	r.max_cost_milli = 1000; /* below every node but cheap */
	sched_node_cost(s, cheap, 1500);
	assert_int_equal(sched_place(s, &r, slots), ERR_NOFIT);
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no node within max_cost_per_gpu_hour 1: the cheapest that matches "
				 "costs 1.5");
	r.max_cost_milli = 0;
	assert_int_equal(sched_place(s, &r, slots), 0);
	assert_int_equal(slots[0].node, dear->id);
	/* Tiers follow costs and removals. */
	sched_node_remove(s, dear);
	assert_int_equal(sched_tier_count(s), 2);
	check_index(s);
	sched_free(s);
	(void)state;
}

static void test_binpack_fewest_free(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 8, NULL, NULL);
	struct sched_node *b = add(s, "b", 8, NULL, NULL);
	struct sched_node *c = add(s, "c", 8, NULL, NULL);
	struct sched_slot hs[2], slot;
	struct res hr[2];
	struct sched_req r;

	hold(s, b, 4, &hs[0], &hr[0]); /* b: 4 free */
	hold(s, c, 6, &hs[1], &hr[1]); /* c: 2 free */
	r = rq(1, 1, 2000);
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, c->id);
	assert_int_equal(slot.gpu_pos[0], 6);
	assert_int_equal(slot.gpu_pos[1], 7);
	r = rq(2, 1, 3000);
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, b->id);
	r = rq(3, 1, 1000);
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, b->id); /* 1 free left on b, not a's 8 */
	r = rq(4, 1, 1000);
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, a->id);
	/* Tasks without GPUs go where GPUs are scarcest. */
	r = rq(5, 1, 0);
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, c->id);
	assert_int_equal(slot.ngpus, 0);
	check_index(s);
	sched_free(s);
}

static void test_binpack_shares(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 2, NULL, NULL);
	struct sched_node *b = add(s, "b", 2, NULL, NULL);
	struct sched_slot sl[6];
	struct sched_req r;
	uint32_t used_cards = 0;

	/* Four shares that add up to 1.5 GPUs use two cards, on one node. */
	static const uint32_t shares[] = {500, 250, 250, 500};

	for (int i = 0; i < 4; i++) {
		r = rq((uint64_t)i + 1, 1, shares[i]);
		assert_int_equal(sched_place(s, &r, &sl[i]), 0);
		assert_int_equal(sl[i].ngpus, 1);
		check_index(s);
	}
	for (int i = 1; i < 4; i++)
		assert_int_equal(sl[i].node, sl[0].node);
	for (uint32_t g = 0; g < 2; g++) {
		used_cards += a->res.gpus[g].used_milli > 0;
		used_cards += b->res.gpus[g].used_milli > 0;
	}
	assert_int_equal(used_cards, 2);
	/* The next share fills the half card, not a whole one. */
	r = rq(5, 1, 500);
	assert_int_equal(sched_place(s, &r, &sl[4]), 0);
	assert_int_equal(sl[4].node, sl[0].node);
	assert_int_equal(sched_node_get(s, sl[4].node)->res.gpus[sl[4].gpu_pos[0]].used_milli,
			 1000);
	/* Two whole GPUs are still together on the other node. */
	r = rq(6, 1, 2000);
	assert_int_equal(sched_place(s, &r, &sl[5]), 0);
	assert_int_not_equal(sl[5].node, sl[0].node);
	assert_int_equal(sched_shared_len(s), 0);
	check_index(s);

	/* Best fit among shared nodes: the card that ends up fullest. */
	{
		struct sched *t = sched_new();
		struct sched_node *x = add(t, "x", 1, NULL, NULL), *y = add(t, "y", 1, NULL, NULL);
		struct sched_slot ts[3];
		struct sched_req q1 = rq(1, 1, 300), q2 = rq(2, 1, 600), q3 = rq(3, 1, 300);

		assert_int_equal(sched_place(t, &q1, &ts[0]), 0); /* x or y: 300 */
		/* 600 does not fit with... it does: 900 on the same card. */
		assert_int_equal(sched_place(t, &q2, &ts[1]), 0);
		assert_int_equal(ts[1].node, ts[0].node);
		/* 300 no longer fits there (1200): a fresh card. */
		assert_int_equal(sched_place(t, &q3, &ts[2]), 0);
		assert_int_not_equal(ts[2].node, ts[0].node);
		(void)x;
		(void)y;
		check_index(t);
		sched_free(t);
	}
	/* Among several shared nodes the fullest card after placing wins, not
	 * the first or the emptiest. */
	{
		struct sched *t = sched_new();
		struct sched_node *x = add(t, "x", 1, NULL, NULL), *y = add(t, "y", 1, NULL, NULL);
		struct sched_node *z = add(t, "z", 1, NULL, NULL);
		struct sched_slot hy, hx, hz, got;
		struct res ry = {.gpus_milli = 250}, rx = {.gpus_milli = 500},
			   rz = {.gpus_milli = 800};
		struct sched_req q = rq(9, 1, 250);

		memset(&hy, 0, sizeof(hy));
		hy.node = y->id;
		hy.ngpus = 1;
		hx = hy;
		hx.node = x->id;
		hz = hy;
		hz.node = z->id;
		assert_int_equal(sched_take(t, &ry, &hy, 1), 0); /* y first in the set: 250 */
		assert_int_equal(sched_take(t, &rx, &hx, 1), 0); /* x: 500 */
		assert_int_equal(sched_take(t, &rz, &hz, 1), 0); /* z: 800, 250 does not fit */
		assert_int_equal(sched_shared_len(t), 3);
		assert_int_equal(sched_place(t, &q, &got), 0);
		assert_int_equal(got.node, x->id);
		assert_int_equal(x->res.gpus[0].used_milli, 750);
		check_index(t);
		sched_free(t);
	}
	sched_free(s);
}

static void test_spread(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *n[4];
	struct sched_slot sl[6];
	struct sched_req r;
	uint32_t avoid[4];

	n[0] = add(s, "a1", 8, NULL, "a");
	n[1] = add(s, "a2", 8, NULL, "a");
	n[2] = add(s, "b1", 8, NULL, "b");
	n[3] = add(s, "b2", 8, NULL, "b");
	(void)n;

	/* Two replicas: two zones. */
	r = rq(1, 2, 1000);
	r.policy = &sched_spread;
	assert_int_equal(sched_place(s, &r, sl), 0);
	assert_string_not_equal(sched_label_get(sched_node_get(s, sl[0].node), "zone"),
				sched_label_get(sched_node_get(s, sl[1].node), "zone"));
	/* Two more, given the first two as avoid: the two unused nodes. */
	avoid[0] = sl[0].node;
	avoid[1] = sl[1].node;
	r.avoid = avoid;
	r.navoid = 2;
	assert_int_equal(sched_place(s, &r, &sl[2]), 0);
	for (int i = 0; i < 4; i++)
		for (int k = i + 1; k < 4; k++)
			assert_int_not_equal(sl[i].node, sl[k].node);
	assert_string_not_equal(sched_label_get(sched_node_get(s, sl[2].node), "zone"),
				sched_label_get(sched_node_get(s, sl[3].node), "zone"));
	/* A fifth has to reuse a node: it falls back rather than fail. */
	avoid[2] = sl[2].node;
	avoid[3] = sl[3].node;
	r.ntasks = 1;
	r.navoid = 4;
	assert_int_equal(sched_place(s, &r, &sl[4]), 0);
	check_index(s);

	/* A node of the job's is skipped even when it has the most free GPUs. */
	{
		struct sched *t = sched_new();
		struct sched_node *big = add(t, "big", 8, NULL, NULL);
		struct sched_node *small = add(t, "small", 8, NULL, NULL);
		struct sched_slot h, got;
		struct res hr;
		struct sched_req q = rq(3, 1, 1000);
		uint32_t av = big->id;

		hold(t, small, 4, &h, &hr);
		q.policy = &sched_spread;
		q.avoid = &av;
		q.navoid = 1;
		assert_int_equal(sched_place(t, &q, &got), 0);
		assert_int_equal(got.node, small->id);
		/* Without avoid it takes the node with the most free GPUs. */
		q.navoid = 0;
		assert_int_equal(sched_place(t, &q, &got), 0);
		assert_int_equal(got.node, big->id);
		sched_free(t);
	}
	/* Binpack, for contrast, stacks replicas on one node. */
	{
		struct sched_req b = rq(2, 2, 1000);
		struct sched_slot bs[2];

		assert_int_equal(sched_place(s, &b, bs), 0);
		assert_int_equal(bs[0].node, bs[1].node);
	}
	sched_free(s);
}

static void test_gang_all_or_nothing(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 8, NULL, NULL);
	struct sched_node *b = add(s, "b", 8, NULL, NULL);
	struct sched_node *c = add(s, "c", 4, NULL, NULL);
	struct sched_slot hs[3], sl[2];
	struct res hr[3];
	struct sched_req r = rq(7, 2, 4000);
	struct snap before, after;
	char why[SCHED_REASON_LEN];

	hold(s, a, 4, &hs[0], &hr[0]); /* a: 4 free */
	hold(s, b, 5, &hs[1], &hr[1]); /* b: 3 free */
	hold(s, c, 1, &hs[2], &hr[2]); /* c: 3 free, and a share to be in the shared set */
	{
		struct sched_req sh = rq(50, 1, 300);
		struct sched_slot ss;

		assert_int_equal(sched_place(s, &sh, &ss), 0);
	}
	take_snap(s, &before);
	assert_int_equal(sched_place(s, &r, sl), ERR_NOFIT);
	take_snap(s, &after);
	assert_memory_equal(&before, &after, sizeof(before));
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "needs 2 tasks of 4 GPUs at once; only 1 fit now");
	r.policy = &sched_spread;
	assert_int_equal(sched_place(s, &r, sl), ERR_NOFIT);
	take_snap(s, &after);
	assert_memory_equal(&before, &after, sizeof(before));

	/* sched_take of a placement that no longer fits takes nothing. */
	{
		struct sched_slot t[2];

		memset(t, 0, sizeof(t));
		t[0].node = a->id;
		t[0].ngpus = 4;
		for (uint32_t i = 0; i < 4; i++)
			t[0].gpu_pos[i] = 4 + i;
		t[1] = t[0];
		t[1].node = b->id; /* b's positions 4..7: 4 is taken */
		assert_int_equal(sched_take(s, &r.res, t, 2), ERR_NOFIT);
		take_snap(s, &after);
		assert_memory_equal(&before, &after, sizeof(before));
		/* The same GPU twice in one placement is refused too. */
		t[1] = t[0];
		assert_int_equal(sched_take(s, &r.res, t, 2), ERR_NOFIT);
		take_snap(s, &after);
		assert_memory_equal(&before, &after, sizeof(before));
		assert_int_equal(sched_take(s, &r.res, t, 1), 0);
		assert_int_equal(free_whole(a), 0);
	}
	check_index(s);
	sched_free(s);

	/* A gang that gets three tasks in before failing: the nodes it moved
	 * come back to their old places inside their buckets. */
	s = sched_new();
	{
		struct sched_node *p[4];
		struct sched_slot ph[4], gs[4];
		struct res pr[4];
		struct sched_req g = rq(8, 4, 4000);

		for (int i = 0; i < 4; i++) {
			char name[16];

			snprintf(name, sizeof(name), "p%d", i);
			p[i] = add(s, name, 8, NULL, NULL);
			hold(s, p[i], i == 3 ? 5 : 4, &ph[i], &pr[i]);
		}
		assert_int_equal(sched_bucket_len(s, 4), 3);
		take_snap(s, &before);
		assert_int_equal(sched_place(s, &g, gs), ERR_NOFIT);
		take_snap(s, &after);
		assert_memory_equal(&before, &after, sizeof(before));
		g.ntasks = 3;
		assert_int_equal(sched_place(s, &g, gs), 0);
		sched_release(s, &g.res, gs, 3);
		check_index(s);
	}
	sched_free(s);
}

/* ---- constraints and models ---- */

static void test_cons_parse(void **state)
{
	struct sched_cons c;
	char buf[256], why[128];

	static const struct {
		const char *in, *out;
		enum sched_cons_op op;
		uint32_t nvals;
	} good[] = {
		{"zone=a", "zone=a", SCHED_EQ, 1},
		{" zone == a ", "zone=a", SCHED_EQ, 1},
		{"pool!=cloud", "pool!=cloud", SCHED_NE, 1},
		{"gpu in (a100, h100)", "gpu in (a100,h100)", SCHED_IN, 2},
		{"gpu in(a100)", "gpu in (a100)", SCHED_IN, 1},
		{"in=x", "in=x", SCHED_EQ, 1},
	};
	static const char *bad[] = {
		"", "zone", "=a", "zone=", "zone=a b", "gpu in a100", "gpu in ()", "gpu in (a,)",
		"gpu in (a b)", "zone<a",
		"gpu in (a,b,c,d,e,f,g,h,i)",
		"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk=1",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(sched_cons_parse(good[i].in, &c, why, sizeof(why)), 0);
		assert_int_equal(c.op, good[i].op);
		assert_int_equal(c.nvals, good[i].nvals);
		sched_cons_format(&c, buf, sizeof(buf));
		assert_string_equal(buf, good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		assert_int_equal(sched_cons_parse(bad[i], &c, why, sizeof(why)), ERR_INVAL);
		assert_non_null(strstr(why, "constraint"));
	}
}

static void test_constraints(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 8, NULL, "a");
	struct sched_node *b = add(s, "b", 8, NULL, "b");
	struct sched_node *z = add(s, "z", 8, NULL, NULL); /* no zone label */
	struct sched_cons c[2];
	struct sched_req r = rq(1, 1, 1000);
	struct sched_slot slot;
	char why[SCHED_REASON_LEN];

	r.cons = c;
	r.ncons = 1;
	assert_int_equal(sched_cons_parse("zone=b", &c[0], NULL, 0), 0);
	assert_true(sched_fits(s, b, &r, NULL));
	assert_false(sched_fits(s, a, &r, NULL));
	assert_false(sched_fits(s, z, &r, NULL)); /* missing key fails = */
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, b->id);

	assert_int_equal(sched_cons_parse("zone!=a", &c[0], NULL, 0), 0);
	assert_false(sched_fits(s, a, &r, NULL));
	assert_true(sched_fits(s, b, &r, NULL));
	assert_true(sched_fits(s, z, &r, NULL)); /* missing key passes != */

	assert_int_equal(sched_cons_parse("zone in (a, c)", &c[0], NULL, 0), 0);
	assert_true(sched_fits(s, a, &r, NULL));
	assert_false(sched_fits(s, b, &r, NULL));
	assert_false(sched_fits(s, z, &r, NULL)); /* missing key fails in */

	/* Two constraints: both must hold. */
	assert_int_equal(sched_cons_parse("zone in (a, b)", &c[0], NULL, 0), 0);
	assert_int_equal(sched_cons_parse("zone!=b", &c[1], NULL, 0), 0);
	r.ncons = 2;
	assert_true(sched_fits(s, a, &r, NULL));
	assert_false(sched_fits(s, b, &r, NULL));

	assert_int_equal(sched_cons_parse("zone=q", &c[0], NULL, 0), 0);
	r.ncons = 1;
	assert_int_equal(sched_place(s, &r, &slot), ERR_NOFIT);
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no node matches zone=q");
	assert_int_equal(sched_cons_parse("zone=a", &c[0], NULL, 0), 0);
	assert_int_equal(sched_cons_parse("zone=b", &c[1], NULL, 0), 0);
	r.ncons = 2;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no node matches all of zone=a, zone=b");
	sched_free(s);
}

static void test_gpu_model(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 4, "NVIDIA A100-SXM4-80GB", NULL);
	struct sched_node *h = add(s, "h", 8, "NVIDIA H100 80GB HBM3", NULL);
	struct sched_req r = rq(1, 1, 1000);
	struct sched_slot slot;
	char why[SCHED_REASON_LEN];

	r.gpu_model = "a100";
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, a->id);
	r.gpu_model = "H100";
	r.res.gpus_milli = 4000;
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, h->id); /* a has 3 left but is an A100 */
	r.gpu_model = "V100";
	assert_int_equal(sched_place(s, &r, &slot), ERR_NOFIT);
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no node has GPU model V100");
	/* A task without GPUs ignores the model. */
	r.res.gpus_milli = 0;
	assert_int_equal(sched_place(s, &r, &slot), 0);
	sched_free(s);
}

/* ---- the workload mix, fgd, and keeping constrained nodes ---- */

static void mix_add(struct sched *s, uint32_t gpus_milli, const char *model, double w)
{
	struct res r;
	const char *m = model;

	memset(&r, 0, sizeof(r));
	r.gpus_milli = gpus_milli;
	r.mem = GiB;
	r.cpu_milli = 1000;
	sched_mix_add(s, &r, &m, model ? 1 : 0, w);
}

static void test_mix(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add(s, "a", 4, "NVIDIA A100-SXM4-80GB", NULL);
	struct sched_node *t = add(s, "t", 2, "Tesla T4", NULL);
	const struct sched_shape *m;
	double sum = 0;

	sched_mix_config(s, 0, false);
	assert_int_equal(sched_mix_len(s), 0);
	mix_add(s, 1000, NULL, 3);
	mix_add(s, 500, "t4", 1);
	assert_int_equal(sched_mix_len(s), 2);
	m = sched_mix_at(s, 0);
	assert_int_equal(m->gpus_milli, 1000);
	assert_int_equal(m->cons, 0);
	assert_int_equal(m->cpu_milli, 1000);
	assert_true(m->share > 0.749 && m->share < 0.751);
	m = sched_mix_at(s, 1);
	assert_int_not_equal(m->cons, 0);
	assert_null(sched_mix_at(s, 2));
	/* Only the T4 node serves the constrained quarter. */
	assert_int_equal(sched_mix_node_mask(s, a), 0);
	assert_int_equal(sched_mix_node_mask(s, t), m->cons);
	assert_true(sched_mix_reserved(s, a) == 0);
	assert_true(sched_mix_reserved(s, t) > 0.249 && sched_mix_reserved(s, t) < 0.251);
	for (uint32_t i = 0; i < sched_mix_len(s); i++)
		sum += sched_mix_at(s, i)->share;
	assert_true(sum > 0.999 && sum < 1.001);

	/* Decay: with a half-life of one task, the last task outweighs all
	 * earlier ones together. */
	sched_mix_clear(s);
	sched_mix_config(s, 1, false);
	for (int i = 0; i < 10; i++)
		mix_add(s, 1000, NULL, 1);
	mix_add(s, 2000, NULL, 1);
	assert_int_equal(sched_mix_len(s), 2);
	assert_true(sched_mix_at(s, 1)->share > 0.49);

	/* Learning: placements feed the mix unless switched off. */
	sched_mix_clear(s);
	sched_mix_config(s, 0, true);
	{
		struct sched_req r = rq(1, 2, 1000);
		struct sched_slot slots[2];

		assert_int_equal(sched_place(s, &r, slots), 0);
		assert_int_equal(sched_mix_len(s), 1);
		sched_mix_config(s, 0, false);
		r.res.gpus_milli = 250;
		assert_int_equal(sched_place(s, &r, slots), 0);
		assert_int_equal(sched_mix_len(s), 1);
	}
	sched_free(s);
}

/* A node with 4 A100 cards, card 0 holding share milli. */
static struct sched_node *add_shared(struct sched *s, const char *name, uint32_t share)
{
	struct sched_node *n = add(s, name, 4, NULL, NULL);

	if (share) {
		struct sched_req r = rq(100, 1, share);
		struct sched_slot slot;

		memset(&slot, 0, sizeof(slot));
		slot.node = n->id;
		slot.ngpus = 1;
		slot.gpu_pos[0] = 0;
		assert_int_equal(sched_take(s, &r.res, &slot, 1), 0);
	}
	return n;
}

static void test_fgd_score(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a = add_shared(s, "a", 0);   /* 4 free cards */
	struct sched_node *b = add_shared(s, "b", 600); /* 400 left on card 0 */
	struct sched_req r = rq(1, 1, 400);
	struct sched_slot slot;
	double d;

	/* An empty mix: nothing is a fragment. */
	sched_mix_config(s, 0, false);
	assert_true(sched_fgd_frag(s, b) == 0);

	/* Half whole 1-GPU tasks, half 0.5-GPU shares. */
	mix_add(s, 1000, NULL, 1);
	mix_add(s, 500, NULL, 1);
	assert_true(sched_fgd_frag(s, a) == 0);
	/* b's 400 are a fragment for both shapes: 0.5 * 400 + 0.5 * 400. */
	assert_true(sched_fgd_frag(s, b) > 399.99 && sched_fgd_frag(s, b) < 400.01);

	/* A 0.4 share fills b's card exactly: the fragment goes away. */
	assert_int_equal(sched_fgd_delta(s, b, &r, &d), 0);
	assert_true(d > -400.01 && d < -399.99);
	/* On a it opens a card and leaves 600, a fragment for whole GPUs only. */
	assert_int_equal(sched_fgd_delta(s, a, &r, &d), 0);
	assert_true(d > 299.99 && d < 300.01);
	r.policy = &sched_fgd;
	assert_int_equal(sched_place(s, &r, &slot), 0);
	assert_int_equal(slot.node, b->id);
	assert_int_equal(slot.gpu_pos[0], 0);
	check_index(s);

	/* Whole GPUs do not fit a shared card: a 4-GPU task does not fit b. */
	r.res.gpus_milli = 4000;
	assert_int_equal(sched_fgd_delta(s, b, &r, &d), ERR_NOFIT);

	/* CPU: a node whose CPU is gone strands all its GPUs for every shape. */
	{
		struct sched_node *c = add_shared(s, "c", 0);
		struct sched_req cpu = rq(2, 1, 0);
		struct res held;

		cpu.res.cpu_milli = 63500;
		cpu.res.mem = GiB;
		assert_int_equal(sched_fgd_delta(s, c, &cpu, &d), 0);
		assert_true(d > 3999.99 && d < 4000.01);
		/* ... so a CPU-only task goes where it strands nothing: with a's
		 * cards all taken, a is the one node where it strands no GPU. */
		hold(s, a, 4, &slot, &held);
		cpu.res.cpu_milli = 63000;
		cpu.policy = &sched_fgd;
		assert_int_equal(sched_place(s, &cpu, &slot), 0);
		assert_int_equal(slot.node, a->id);
	}
	sched_free(s);
}

/* A task that accepts any GPU leaves the only nodes a constrained shape can
 * use to it when other nodes fit: binpack would otherwise fill the small T4
 * node first (lowest bucket). */
static void test_model_aware(void **state)
{
	const struct sched_policy *pol[] = {&sched_binpack, &sched_fgd};

	for (size_t k = 0; k < 2; k++) {
		struct sched *s = sched_new();
		struct sched_node *t = add(s, "t", 2, "Tesla T4", NULL);
		struct sched_node *a = add(s, "a", 8, "NVIDIA A100-SXM4-80GB", NULL);
		struct sched_req any = rq(1, 1, 1000), t4 = rq(2, 1, 2000);
		struct sched_slot slot;

		any.policy = t4.policy = pol[k];
		t4.gpu_model = "T4";
		/* No constrained shape seen yet: plain packing, T4 first. */
		assert_int_equal(sched_place(s, &any, &slot), 0);
		assert_int_equal(slot.node, t->id);
		sched_release(s, &any.res, &slot, 1);

		/* The mix learns of T4-only tasks (a placement that fails counts). */
		hold(s, t, 1, &slot, &any.res);
		assert_int_equal(sched_place(s, &t4, &slot), ERR_NOFIT);
		sched_release(s, &any.res, &slot, 1);
		any.res.cpu_milli = 1000;
		any.res.mem = GiB;
		assert_true(sched_mix_reserved(s, t) > 0);
		assert_true(sched_mix_reserved(s, a) == 0);

		for (int i = 0; i < 3; i++) {
			assert_int_equal(sched_place(s, &any, &slot), 0);
			assert_int_equal(slot.node, a->id);
		}
		assert_int_equal(sched_place(s, &t4, &slot), 0);
		assert_int_equal(slot.node, t->id);
		/* Shares too, for binpack: a fresh card on a, not on t. */
		any.res.gpus_milli = 300;
		assert_int_equal(sched_place(s, &any, &slot), 0);
		assert_int_equal(slot.node, a->id);
		/* With a full, t is what is left: the preference never refuses. */
		{
			struct sched_req big = rq(3, 1, 4000);

			big.policy = pol[k];
			assert_int_equal(sched_place(s, &big, &slot), 0);
			assert_int_equal(slot.node, a->id);
		}
		check_index(s);
		sched_free(s);
	}
}

/* ---- explanations ---- */

static void test_explain(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *a, *b;
	struct sched_req r = rq(1, 1, 8000);
	struct sched_slot hs, slot;
	struct res hr;
	char why[SCHED_REASON_LEN];

	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no schedulable node");
	a = add(s, "a", 8, NULL, NULL);
	b = add(s, "b", 8, NULL, NULL);
	sched_node_set(s, a, false);
	sched_node_set(s, b, false);
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "no schedulable node");
	sched_node_set(s, a, true);
	sched_node_set(s, b, true);
	hold(s, a, 2, &hs, &hr);
	{
		struct sched_slot hs2;
		struct res hr2;

		hold(s, b, 3, &hs2, &hr2);
	}
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "needs 8 GPUs on one node; best node has 6 free");
	r.res.gpus_milli = 1000;
	r.res.mem = 600 * GiB;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "needs 600G memory on one node; best node has 511G free");
	r.res.mem = GiB;
	r.res.cpu_milli = 100000;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "needs 100 CPUs on one node; best node has 63 free");
	r.res.cpu_milli = 1000;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "fits now");
	r.res.gpus_milli = 1500;
	sched_explain(s, &r, why, sizeof(why));
	assert_non_null(strstr(why, "invalid request"));

	/* Reservations: all matching nodes reserved, or the fitting ones. */
	r = rq(1, 1, 6000);
	a->reserved_for = 12;
	b->reserved_for = 12;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "waiting behind job 12's reservation");
	r.res.gpus_milli = 8000;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "reserved for job 12");
	b->reserved_for = 0;
	r.res.gpus_milli = 6000;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "waiting behind job 12's reservation");
	sched_unreserve(s, 0);
	assert_int_equal(a->reserved_for, 0);

	/* Shares and memory per GPU. */
	r = rq(1, 1, 8000);
	r.res.gpu_mem = 100 * GiB;
	sched_explain(s, &r, why, sizeof(why));
	assert_string_equal(why, "needs 8 GPUs with 100G each on one node; best node has 0 free");
	sched_release(s, &hr, &hs, 1);
	assert_int_equal(sched_place(s, &r, &slot), ERR_NOFIT);
	sched_free(s);
}

/* ---- the queue pass: reservation, backfill, preemption ---- */

static struct sched_job job(uint64_t id, int32_t prio, uint64_t order, uint32_t ntasks,
			    uint32_t gpus_milli)
{
	struct sched_job j;

	memset(&j, 0, sizeof(j));
	j.req = rq(id, ntasks, gpus_milli);
	j.req.priority = prio;
	j.order = order;
	j.may_preempt = true;
	return j;
}

/* A running job holding given slots. */
static void run_on(struct sched *s, struct sched_job *j, struct sched_slot *slots,
		   const uint32_t *nodes, uint32_t n)
{
	uint32_t g = res_whole_gpus(&j->req.res);

	for (uint32_t i = 0; i < n; i++) {
		const struct sched_node *node = sched_node_get(s, nodes[i]);
		uint32_t k = 0;

		memset(&slots[i], 0, sizeof(slots[i]));
		slots[i].node = nodes[i];
		for (uint32_t p = 0; p < node->res.ngpus && k < g; p++) {
			bool taken = node->res.gpus[p].used_milli > 0;

			for (uint32_t q = 0; q < i; q++)
				if (slots[q].node == nodes[i])
					for (uint32_t x = 0; x < slots[q].ngpus; x++)
						taken |= slots[q].gpu_pos[x] == p;
			if (!taken)
				slots[i].gpu_pos[k++] = p;
		}
		slots[i].ngpus = k;
	}
	assert_int_equal(sched_take(s, &j->req.res, slots, n), 0);
	j->held = slots;
	j->nheld = n;
}

static void test_reservation_backfill(void **state)
{
	struct sched *s = sched_new();
	struct sched_node *n[4];
	struct sched_job busy[4], gang, small[10];
	struct sched_slot busy_slots[4], small_slots[8];
	struct sched_job *pend[11], *run[4];
	struct actions acts;
	uint32_t reserved[2], nres = 0;
	int placed;

	for (int i = 0; i < 4; i++) {
		char name[16];
		uint32_t id;

		snprintf(name, sizeof(name), "n%d", i);
		n[i] = add(s, name, 8, NULL, NULL);
		busy[i] = job(200 + (uint64_t)i, 100, (uint64_t)i, 1, 4000);
		id = n[i]->id;
		run_on(s, &busy[i], &busy_slots[i], &id, 1);
		run[i] = &busy[i];
	}
	gang = job(100, 0, 10, 2, 8000);
	pend[0] = &gang;
	for (int i = 0; i < 10; i++) {
		small[i] = job(300 + (uint64_t)i, 0, 11 + (uint64_t)i, 1, 1000);
		pend[1 + i] = &small[i];
	}

	memset(&acts, 0, sizeof(acts));
	placed = sched_pass(s, pend, 11, run, 4, collect, &acts);
	/* The gang waits with a reservation on two nodes; the small jobs fill
	 * the 8 free GPUs of the other two and the last two wait behind it. */
	assert_int_equal(placed, 8);
	assert_int_equal(sched_reserved_job(s), 100);
	assert_non_null(find(&acts, &gang, SCHED_WAIT));
	assert_non_null(strstr(find(&acts, &gang, SCHED_WAIT)->reason, "2 nodes reserved for it"));
	for (int i = 0; i < 4; i++)
		if (n[i]->reserved_for == 100)
			reserved[nres++] = n[i]->id;
	assert_int_equal(nres, 2);
	for (int i = 0; i < 8; i++) {
		const struct rec *p = find(&acts, &small[i], SCHED_PLACED);

		assert_non_null(p);
		assert_int_not_equal(p->slots[0].node, reserved[0]);
		assert_int_not_equal(p->slots[0].node, reserved[1]);
		small_slots[i] = p->slots[0];
	}
	for (int i = 8; i < 10; i++)
		assert_string_equal(find(&acts, &small[i], SCHED_WAIT)->reason,
				    "waiting behind job 100's reservation");
	assert_int_equal(count_type(&acts, SCHED_WAIT), 3);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 0);

	/* Next pass: the reservation is kept, although another node is now
	 * emptier (a fresh choice would take it). */
	for (int i = 0; i < 4; i++) {
		if (n[i]->reserved_for == 0 && n[i]->id != reserved[0] && n[i]->id != reserved[1]) {
			sched_release(s, &busy[i].req.res, busy[i].held, 1);
			busy[i].nheld = 0;
			for (int k = 0; k < 8; k++)
				if (small_slots[k].node == n[i]->id)
					sched_release(s, &small[k].req.res, &small_slots[k], 1);
			assert_int_equal(free_whole(n[i]), 8);
			break;
		}
	}
	memset(&acts, 0, sizeof(acts));
	placed = sched_pass(s, pend, 1, run, 4, collect, &acts);
	assert_int_equal(placed, 0);
	assert_int_equal(sched_node_get(s, reserved[0])->reserved_for, 100);
	assert_int_equal(sched_node_get(s, reserved[1])->reserved_for, 100);

	/* The reserved nodes empty: the gang places there and the reservation
	 * is gone. */
	for (int i = 0; i < 4; i++) {
		if (n[i]->reserved_for == 100)
			sched_release(s, &busy[i].req.res, busy[i].held, 1);
	}
	memset(&acts, 0, sizeof(acts));
	placed = sched_pass(s, pend, 1, run, 0, collect, &acts);
	assert_int_equal(placed, 1);
	{
		const struct rec *p = find(&acts, &gang, SCHED_PLACED);

		assert_non_null(p);
		assert_int_not_equal(p->slots[0].node, p->slots[1].node);
		assert_int_equal(free_whole(sched_node_get(s, p->slots[0].node)), 0);
		assert_int_equal(free_whole(sched_node_get(s, p->slots[1].node)), 0);
	}
	assert_int_equal(sched_reserved_job(s), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(n[i]->reserved_for, 0);
	check_index(s);
	sched_free(s);
}

static void test_never_fits_and_order(void **state)
{
	struct sched *s = sched_new();
	struct sched_job huge = job(1, 50, 1, 1, 16000), a = job(2, 0, 5, 1, 8000),
			 b = job(3, 10, 9, 1, 8000);
	struct sched_job *pend[3] = {&a, &huge, &b};
	struct actions acts;

	add(s, "n0", 8, NULL, NULL);
	memset(&acts, 0, sizeof(acts));
	assert_int_equal(sched_pass(s, pend, 3, NULL, 0, collect, &acts), 1);
	/* b has the higher priority, so it goes first although submitted later. */
	assert_non_null(find(&acts, &b, SCHED_PLACED));
	assert_string_equal(find(&acts, &huge, SCHED_WAIT)->reason,
			    "would not fit even on an empty cluster: needs 16 GPUs on one node; "
			    "largest node has 8");
	/* huge gets no reservation; a does. */
	assert_int_equal(sched_reserved_job(s), 2);
	assert_non_null(strstr(find(&acts, &a, SCHED_WAIT)->reason,
			       "needs 8 GPUs on one node; best node has 0 free"));
	assert_int_equal(acts.n, 3);
	sched_free(s);
}

static void test_preempt_lowest(void **state)
{
	struct sched *s = sched_new();
	uint32_t n0 = add(s, "n0", 8, NULL, NULL)->id, n1 = add(s, "n1", 8, NULL, NULL)->id;
	struct sched_job l1 = job(11, 1, 1, 1, 4000), l2 = job(12, 1, 2, 1, 4000),
			 l3 = job(13, 5, 3, 1, 8000), h = job(20, 10, 4, 1, 8000);
	struct sched_slot s1, s2, s3;
	struct sched_job *run[3] = {&l1, &l2, &l3}, *pend[1] = {&h};
	struct actions acts;
	struct snap before, after;
	const struct rec *p;

	run_on(s, &l1, &s1, &n0, 1);
	run_on(s, &l2, &s2, &n0, 1);
	run_on(s, &l3, &s3, &n1, 1);
	take_snap(s, &before);
	memset(&acts, 0, sizeof(acts));
	assert_int_equal(sched_pass(s, pend, 1, run, 3, collect, &acts), 0);
	/* Both priority-1 jobs go (lowest first), not the priority-5 one. */
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 2);
	p = find(&acts, &l1, SCHED_PREEMPT);
	assert_non_null(p);
	assert_ptr_equal(p->for_job, &h);
	assert_string_equal(p->reason, "preempted by job 20 (priority 10)");
	assert_non_null(find(&acts, &l2, SCHED_PREEMPT));
	assert_null(find(&acts, &l3, SCHED_PREEMPT));
	assert_non_null(strstr(find(&acts, &h, SCHED_WAIT)->reason, "preempting 2"));
	/* Resources stay taken until the caller stops the victims; the
	 * preemptor holds a reservation on the node it will use. */
	take_snap(s, &after);
	assert_memory_equal(before.res, after.res, sizeof(before.res));
	assert_int_equal(sched_node_get(s, n0)->reserved_for, 20);
	assert_int_equal(sched_node_get(s, n1)->reserved_for, 0);
	check_index(s);

	/* The victims stop; h (no longer allowed to preempt) places on n0. */
	sched_release(s, &l1.req.res, &s1, 1);
	sched_release(s, &l2.req.res, &s2, 1);
	h.may_preempt = false;
	memset(&acts, 0, sizeof(acts));
	assert_int_equal(sched_pass(s, pend, 1, &run[2], 1, collect, &acts), 1);
	assert_int_equal(find(&acts, &h, SCHED_PLACED)->slots[0].node, n0);
	sched_free(s);
}

static void test_preempt_fewest_and_prune(void **state)
{
	struct sched *s = sched_new();
	uint32_t n0 = add(s, "n0", 8, NULL, NULL)->id, n1 = add(s, "n1", 8, NULL, NULL)->id;
	struct sched_job a = job(11, 1, 1, 1, 4000), b = job(12, 3, 2, 1, 4000),
			 c = job(13, 2, 3, 1, 8000), h = job(20, 10, 4, 1, 8000);
	struct sched_slot sa, sb, sc;
	struct sched_job *run[3] = {&a, &b, &c}, *pend[1] = {&h};
	struct actions acts;

	/* n0: a (prio 1) + b (prio 3); n1: c (prio 2).  Greedy takes a, then c;
	 * pruning puts a back (n1 alone is enough): only c goes. */
	run_on(s, &a, &sa, &n0, 1);
	run_on(s, &b, &sb, &n0, 1);
	run_on(s, &c, &sc, &n1, 1);
	memset(&acts, 0, sizeof(acts));
	sched_pass(s, pend, 1, run, 3, collect, &acts);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 1);
	assert_non_null(find(&acts, &c, SCHED_PREEMPT));
	assert_int_equal(sched_node_get(s, n1)->reserved_for, 20);
	sched_free(s);

	/* Equal priorities: the job holding the most GPUs alone. */
	s = sched_new();
	n0 = add(s, "n0", 8, NULL, NULL)->id;
	n1 = add(s, "n1", 8, NULL, NULL)->id;
	a = job(11, 1, 1, 1, 2000);
	b = job(12, 1, 2, 1, 6000);
	c = job(13, 1, 3, 1, 8000);
	run_on(s, &a, &sa, &n0, 1);
	run_on(s, &b, &sb, &n0, 1);
	run_on(s, &c, &sc, &n1, 1);
	memset(&acts, 0, sizeof(acts));
	sched_pass(s, pend, 1, run, 3, collect, &acts);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 1);
	assert_non_null(find(&acts, &c, SCHED_PREEMPT));
	sched_free(s);
}

static void test_preempt_never_useless(void **state)
{
	struct sched *s = sched_new();
	uint32_t n0 = add(s, "n0", 8, NULL, NULL)->id, n1 = add(s, "n1", 8, NULL, NULL)->id;
	struct sched_job low = job(11, 1, 1, 1, 8000), eq = job(12, 10, 2, 1, 8000),
			 h = job(20, 10, 4, 2, 8000), h1 = job(21, 10, 5, 1, 8000);
	struct sched_slot sl, se;
	struct sched_job *run[2] = {&low, &eq}, *pend[1] = {&h};
	struct actions acts;
	struct snap before, after;

	run_on(s, &low, &sl, &n0, 1);
	run_on(s, &eq, &se, &n1, 1);
	take_snap(s, &before);
	/* h needs both nodes; only n0's job may be preempted: none is. */
	memset(&acts, 0, sizeof(acts));
	sched_pass(s, pend, 1, run, 2, collect, &acts);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 0);
	assert_non_null(strstr(find(&acts, &h, SCHED_WAIT)->reason,
			       "would not fit even with preemption"));
	take_snap(s, &after);
	assert_memory_equal(before.res, after.res, sizeof(before.res));
	assert_memory_equal(before.b, after.b, sizeof(before.b));

	/* Equal priority is never preempted: h1 alone, with eq's node... it
	 * takes low's node, never eq's. */
	pend[0] = &h1;
	memset(&acts, 0, sizeof(acts));
	sched_pass(s, pend, 1, run, 2, collect, &acts);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 1);
	assert_non_null(find(&acts, &low, SCHED_PREEMPT));
	run[0] = &eq;
	memset(&acts, 0, sizeof(acts));
	sched_pass(s, pend, 1, run, 1, collect, &acts);
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 0);
	sched_free(s);
}

static void test_preempt_whole_jobs_once(void **state)
{
	struct sched *s = sched_new();
	uint32_t ids[2], n2;
	struct sched_job gang = job(11, 1, 1, 2, 4000), l2 = job(12, 1, 2, 1, 8000),
			 f0 = job(30, 50, 0, 1, 4000), f1 = job(31, 50, 0, 1, 4000),
			 h1 = job(20, 10, 4, 1, 4000), h2 = job(21, 10, 5, 1, 4000);
	struct sched_slot sg[2], s2, fs0, fs1;
	struct sched_job *run[4] = {&gang, &l2, &f0, &f1}, *pend[2] = {&h2, &h1};
	struct actions acts;
	struct snap before, after;

	ids[0] = add(s, "n0", 8, NULL, NULL)->id;
	ids[1] = add(s, "n1", 8, NULL, NULL)->id;
	n2 = add(s, "n2", 8, NULL, NULL)->id;
	/* n0 and n1: a 2x4 gang, and priority-50 work on the other halves;
	 * n2: l2 with 8 GPUs.  The gang and l2 hold as many GPUs; l2 is newer. */
	run_on(s, &gang, sg, ids, 2);
	run_on(s, &f0, &fs0, &ids[0], 1);
	run_on(s, &f1, &fs1, &ids[1], 1);
	run_on(s, &l2, &s2, &n2, 1);
	take_snap(s, &before);
	memset(&acts, 0, sizeof(acts));
	assert_int_equal(sched_pass(s, pend, 2, run, 4, collect, &acts), 0);
	/* h1 (first by order) takes l2; h2 cannot take l2 again and takes the
	 * whole gang, though one of its two tasks would be enough. */
	assert_int_equal(count_type(&acts, SCHED_PREEMPT), 2);
	assert_ptr_equal(find(&acts, &l2, SCHED_PREEMPT)->for_job, &h1);
	assert_ptr_equal(find(&acts, &gang, SCHED_PREEMPT)->for_job, &h2);
	assert_null(find(&acts, &f0, SCHED_PREEMPT));
	assert_int_equal(count_type(&acts, SCHED_WAIT), 2);
	assert_non_null(strstr(find(&acts, &h2, SCHED_WAIT)->reason, "preempting 1"));
	/* Only the head (h1) holds the reservation; nothing was released. */
	assert_int_equal(sched_reserved_job(s), 20);
	assert_int_equal(sched_node_get(s, n2)->reserved_for, 20);
	take_snap(s, &after);
	assert_memory_equal(before.res, after.res, sizeof(before.res));
	check_index(s);
	sched_free(s);
}

/* ---- policy plugins ---- */

static struct sched_node *null_pick(struct sched *s, const struct sched_req *req,
				    const struct sched_slot *placed, uint32_t nplaced)
{
	return NULL;
}

static void test_policy_register(void **state)
{
	static const struct sched_policy mine = {SCHED_POLICY_VERSION, "mine", null_pick};
	static const struct sched_policy old = {SCHED_POLICY_VERSION + 1, "old", null_pick};
	static const struct sched_policy dup = {SCHED_POLICY_VERSION, "binpack", null_pick};
	char why[SCHED_REASON_LEN];

	assert_ptr_equal(sched_policy_find("binpack"), &sched_binpack);
	assert_ptr_equal(sched_policy_find("spread"), &sched_spread);
	assert_ptr_equal(sched_policy_find("fgd"), &sched_fgd);
	assert_int_equal(sched_policy_count(), 3);
	assert_ptr_equal(sched_policy_at(2), &sched_fgd);
	assert_null(sched_policy_at(3));
	assert_null(sched_policy_find("mine"));
	assert_null(sched_policy_find(NULL));
	assert_int_equal(sched_policy_register(&mine, why, sizeof(why)), 0);
	assert_ptr_equal(sched_policy_find("mine"), &mine);
	assert_ptr_equal(sched_policy_at(3), &mine);
	assert_int_equal(sched_policy_register(&mine, why, sizeof(why)), ERR_EXIST);
	assert_int_equal(sched_policy_register(&dup, why, sizeof(why)), ERR_EXIST);
	assert_non_null(strstr(why, "already registered"));
	assert_int_equal(sched_policy_register(&old, why, sizeof(why)), ERR_VERSION);
	assert_non_null(strstr(why, "version"));
	assert_null(sched_policy_find("old"));
	{
		/* The registered policy is the one placements use. */
		struct sched *s = sched_new();
		struct sched_req r = rq(1, 1, 1000);
		struct sched_slot slot;

		add(s, "a", 8, NULL, NULL);
		r.policy = sched_policy_find("mine");
		assert_int_equal(sched_place(s, &r, &slot), ERR_NOFIT);
		r.policy = NULL;
		assert_int_equal(sched_place(s, &r, &slot), 0);
		sched_free(s);
	}
	sched_policy_reset();
	assert_null(sched_policy_find("mine"));
	assert_non_null(sched_policy_find("binpack"));
}

/* Build a tiny plugin with the C compiler; false when there is none. */
static bool build_plugin(const char *dir, const char *file, unsigned version, const char *name)
{
	char src[1024], cmd[4096];
	FILE *f;

	snprintf(src, sizeof(src), "%s/%s.c", dir, file);
	f = fopen(src, "w");
	if (!f)
		return false;
	fprintf(f, "struct sched_policy { unsigned version; const char *name;\n"
		   "  void *(*pick)(void *, const void *, const void *, unsigned); };\n"
		   "static void *pick(void *s, const void *r, const void *p, unsigned n)\n"
		   "{ (void)s; (void)r; (void)p; (void)n; return 0; }\n"
		   "const struct sched_policy sched_policy_plugin = { %u, \"%s\", pick };\n",
		version, name);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -o %s/%s.so %s >/dev/null 2>&1", dir, file,
		 src);
	return system(cmd) == 0;
}

static void test_policy_load_dir(void **state)
{
	char dir[] = "/tmp/sched-test-XXXXXX", dir2[64], why[SCHED_REASON_LEN], cmd[128];

	assert_non_null(mkdtemp(dir));
	snprintf(dir2, sizeof(dir2), "%s/dup", dir);
	if (!build_plugin(dir, "a-good", SCHED_POLICY_VERSION, "tiny") ||
	    !build_plugin(dir, "b-old", SCHED_POLICY_VERSION + 1, "old")) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
		skip();
	}
	assert_int_equal(sched_policy_load_dir(dir, why, sizeof(why)), ERR_VERSION);
	assert_non_null(strstr(why, "b-old.so"));
	assert_non_null(sched_policy_find("tiny"));
	assert_null(sched_policy_find("old"));
	assert_int_equal(sched_policy_find("tiny")->version, SCHED_POLICY_VERSION);

	snprintf(cmd, sizeof(cmd), "mkdir %s", dir2);
	assert_int_equal(system(cmd), 0);
	assert_true(build_plugin(dir2, "c-dup", SCHED_POLICY_VERSION, "spread"));
	assert_int_equal(sched_policy_load_dir(dir2, why, sizeof(why)), ERR_EXIST);
	assert_non_null(strstr(why, "c-dup.so"));
	assert_ptr_equal(sched_policy_find("spread"), &sched_spread);
	/* Loading the same folder again: tiny is taken now. */
	assert_int_equal(sched_policy_load_dir(dir, why, sizeof(why)), ERR_EXIST);
	assert_int_equal(sched_policy_load_dir("/nonexistent-folder", why, sizeof(why)), ERR_IO);
	sched_policy_reset();
	assert_null(sched_policy_find("tiny"));
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_node_remove),
		cmocka_unit_test(test_drain_and_labels),
		cmocka_unit_test(test_binpack_fewest_free),
		cmocka_unit_test(test_binpack_shares),
		cmocka_unit_test(test_spread),
		cmocka_unit_test(test_gang_all_or_nothing),
		cmocka_unit_test(test_cons_parse),
		cmocka_unit_test(test_constraints),
		cmocka_unit_test(test_gpu_model),
		cmocka_unit_test(test_cost_tiers),
		cmocka_unit_test(test_mix),
		cmocka_unit_test(test_fgd_score),
		cmocka_unit_test(test_model_aware),
		cmocka_unit_test(test_explain),
		cmocka_unit_test(test_reservation_backfill),
		cmocka_unit_test(test_never_fits_and_order),
		cmocka_unit_test(test_preempt_lowest),
		cmocka_unit_test(test_preempt_fewest_and_prune),
		cmocka_unit_test(test_preempt_never_useless),
		cmocka_unit_test(test_preempt_whole_jobs_once),
		cmocka_unit_test(test_policy_register),
		cmocka_unit_test(test_policy_load_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
