/*
 * sched-random-test.c - a randomized replay of the scheduler, checked from
 * scratch after every event.
 *
 * Events: submit (mixes of whole GPUs, shares, CPU-only, gangs, multi-role
 * gangs whose roles ask for different resources (sched_req.parts), best-effort
 * jobs (a gang's optional tasks), constraints, models, priorities, the
 * binpack, spread and fgd policies), finish, node
 * add, node remove (its jobs are released and requeued), drain and undrain.  After each event the test
 * runs sched_pass() and applies its actions as the master would (PLACED:
 * running; PREEMPT: the victim's tasks stop, its slots are released and it is
 * requeued, then the next turn's pass runs).  After every pass an independent
 * checker recomputes every node's usage from the running jobs' slots and
 * compares it with the scheduler's books: no dimension overcommitted, no card
 * held whole twice or whole and shared, shares on a card at most 1000, gangs
 * complete, the index consistent, every pending job told why it waits, and no
 * pending job left waiting although it fits now (single-shape jobs: whether a
 * multi-role gang fits is bin packing, so for those the test checks that a
 * role that cannot fit is named in the reason).  Best-effort jobs never hold
 * the reservation and never preempt.
 *
 * MLS_SEED picks the seed (default fixed), MLS_EVENTS the number of events
 * (the default is sized to run in a few seconds under valgrind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "res.h"
#include "sched/sched.h"

#define GiB (1024ull * 1024 * 1024)
#define MAX_NODES 24
#define MAX_JOBS 4096
#define MAX_TASKS 4
#define MAX_PENDING 48
#define MAX_PARTS 3
#define DEFAULT_EVENTS 3000
#define DEFAULT_SEED 20261125u

enum jstate { J_FREE = 0, J_PENDING, J_RUNNING, J_DONE };

struct tjob {
	enum jstate st;
	struct sched_job sj;
	struct sched_cons cons[2];
	char model[16];
	struct sched_slot slots[MAX_TASKS];
	struct res tres[MAX_TASKS]; /* what each task asks for */
	struct sched_part parts[MAX_PARTS];
	bool got_action; /* in the current pass: PLACED or WAIT */
	bool preempted;  /* in the current pass */
	char reason[SCHED_REASON_LEN];
};

struct tnode {
	struct sched_node *n; /* NULL: gone */
	struct res_node cap;
	char zone[4];
};

struct world {
	struct sched *s;
	uint64_t rng;
	struct tnode nodes[MAX_NODES];
	uint32_t nnodes; /* slots used in nodes[] */
	struct tjob *jobs;
	uint32_t njobs;
	uint64_t next_order;
	uint64_t hash;
	/* The current pass. */
	struct sched_job *pend[MAX_JOBS], *run[MAX_JOBS];
	size_t npend, nrun;
	uint32_t nplaced_acts;
	struct tjob *victims[MAX_JOBS];
	uint32_t nvictims;
	uint64_t resv_seen_at; /* action index of the reservation holder's WAIT */
	uint32_t nacts;
	struct { uint64_t job; uint32_t act; } placed_log[MAX_JOBS];
	uint32_t nplaced_log;
	/* Totals, to show the replay exercised what it should. */
	uint64_t n_placed, n_preempt, n_wait_resv, n_never, n_gang;
	uint64_t n_roles_placed, n_roles_preempted, n_roles_role_reason, n_best_effort;
};

static uint32_t rnd(struct world *w, uint32_t n)
{
	/* xorshift64*: deterministic and portable. */
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (uint32_t)((w->rng * 2685821657736338717ull) >> 33) % n;
}

static void mix(struct world *w, uint64_t v)
{
	w->hash ^= v;
	w->hash *= 1099511628211ull;
}

static struct tjob *job_of(struct world *w, const struct sched_job *sj)
{
	return (struct tjob *)((char *)sj - offsetof(struct tjob, sj));
}

/* ---- the independent checker ---- */

static bool t_cons_ok(const struct sched_node *n, const struct sched_cons *c)
{
	const char *v = NULL;

	for (uint32_t i = 0; i < n->nlabels; i++)
		if (strcmp(n->labels[i].key, c->key) == 0)
			v = n->labels[i].val;
	if (c->op == SCHED_NE)
		return !v || strcmp(v, c->vals[0]) != 0;
	if (!v)
		return false;
	for (uint32_t i = 0; i < c->nvals; i++)
		if (strcmp(v, c->vals[i]) == 0)
			return true;
	return false;
}

static bool t_node_matches(const struct sched_node *n, const struct tjob *j)
{
	if (!n->schedulable)
		return false;
	for (uint32_t i = 0; i < j->sj.req.ncons; i++)
		if (!t_cons_ok(n, &j->cons[i]))
			return false;
	if (j->model[0] && j->sj.req.res.gpus_milli > 0) {
		if (n->res.ngpus == 0)
			return false;
		for (uint32_t g = 0; g < n->res.ngpus; g++)
			if (!strcasestr(n->res.gpus[g].model, j->model))
				return false;
	}
	return true;
}

struct usage {
	uint32_t milli[RES_MAX_GPUS];
	uint32_t whole[RES_MAX_GPUS]; /* whole tasks on the card */
	uint32_t shares[RES_MAX_GPUS];
	uint64_t mem;
	uint32_t cpu;
};

/* Usage of every node from the running jobs' slots alone. */
static void recompute(struct world *w, struct usage *u)
{
	memset(u, 0, sizeof(*u) * MAX_NODES);
	for (uint32_t k = 0; k < w->njobs; k++) {
		struct tjob *j = &w->jobs[k];

		if (j->st != J_RUNNING)
			continue;
		/* A gang runs whole or not at all. */
		assert_int_equal(j->sj.nheld, j->sj.req.ntasks);
		assert_ptr_equal(j->sj.held, j->slots);
		for (uint32_t t = 0; t < j->sj.req.ntasks; t++) {
			const struct sched_slot *sl = &j->slots[t];
			const struct res *r = &j->tres[t]; /* its own role's */
			struct usage *nu;

			assert_true(sl->node < MAX_NODES);
			assert_non_null(w->nodes[sl->node].n);
			nu = &u[sl->node];
			nu->mem += r->mem;
			nu->cpu += r->cpu_milli;
			assert_int_equal(sl->ngpus, res_is_share(r) ? 1 : res_whole_gpus(r));
			for (uint32_t g = 0; g < sl->ngpus; g++) {
				uint32_t p = sl->gpu_pos[g];

				assert_true(p < w->nodes[sl->node].cap.ngpus);
				if (res_is_share(r)) {
					nu->milli[p] += r->gpus_milli;
					nu->shares[p]++;
				} else {
					nu->milli[p] += 1000;
					nu->whole[p]++;
				}
			}
		}
	}
}

static void check_books(struct world *w)
{
	struct usage u[MAX_NODES];
	const struct sched *s = w->s;
	uint32_t count = 0, nshared = 0;

	recompute(w, u);
	for (uint32_t id = 0; id < w->nnodes; id++) {
		const struct sched_node *n = w->nodes[id].n;
		const struct res_node *cap = &w->nodes[id].cap;
		bool partial = false;
		uint32_t free = 0;

		if (!n)
			continue;
		assert_ptr_equal(sched_node_get(s, id), n);
		assert_true(u[id].mem <= cap->mem_total);
		assert_true(u[id].cpu <= cap->cpu_total);
		assert_int_equal(n->res.mem_used, u[id].mem);
		assert_int_equal(n->res.cpu_used, u[id].cpu);
		for (uint32_t g = 0; g < cap->ngpus; g++) {
			assert_true(u[id].whole[g] <= 1);
			assert_true(u[id].whole[g] == 0 || u[id].shares[g] == 0);
			assert_true(u[id].milli[g] <= 1000);
			assert_int_equal(n->res.gpus[g].used_milli, u[id].milli[g]);
			free += u[id].milli[g] == 0;
			partial |= u[id].milli[g] > 0 && u[id].milli[g] < 1000;
		}
		/* The index: right bucket, right place in it, shared set exact. */
		assert_int_equal(n->bucket, free);
		assert_ptr_equal(sched_bucket_at(s, free, n->bpos), n);
		if (partial) {
			assert_ptr_equal(sched_shared_at(s, n->spos), n);
			nshared++;
		} else {
			assert_int_equal(n->spos, SCHED_NONE);
		}
		count++;
	}
	for (uint32_t b = 0; b <= RES_MAX_GPUS; b++) {
		count -= sched_bucket_len(s, b);
		if (sched_bucket_len(s, b))
			assert_int_equal(sched_bucket_next(s, b), b);
		else
			assert_true(sched_bucket_next(s, b) != b);
	}
	assert_int_equal(count, 0);
	assert_int_equal(sched_shared_len(s), nshared);
}

/* How many tasks of j fit on node id now, by brute force over its cards. */
static uint32_t t_cap(struct world *w, const struct usage *u, uint32_t id, const struct tjob *j)
{
	const struct res_node *cap = &w->nodes[id].cap;
	const struct res *r = &j->sj.req.res;
	uint32_t milli[RES_MAX_GPUS], n = 0;
	uint64_t mem = u[id].mem;
	uint32_t cpu = u[id].cpu;

	memcpy(milli, u[id].milli, sizeof(milli));
	for (;;) {
		uint32_t got = 0, need = res_is_share(r) ? 1 : res_whole_gpus(r);

		if (mem + r->mem > cap->mem_total || cpu + r->cpu_milli > cap->cpu_total)
			return n;
		for (uint32_t g = 0; g < cap->ngpus && got < need; g++) {
			if (res_is_share(r) ? milli[g] + r->gpus_milli <= 1000 : milli[g] == 0) {
				milli[g] += res_is_share(r) ? r->gpus_milli : 1000;
				got++;
			}
		}
		if (got < need)
			return n;
		mem += r->mem;
		cpu += r->cpu_milli;
		if (++n >= j->sj.req.ntasks)
			return n;
	}
}

/* No pending job may wait while it fits now.  Reservations count only for
 * a job told it waits behind one. */
static void check_nothing_left(struct world *w)
{
	struct usage u[MAX_NODES];

	recompute(w, u);
	for (size_t k = 0; k < w->npend; k++) {
		struct tjob *j = job_of(w, w->pend[k]);
		bool behind;
		uint32_t sum = 0;

		if (j->st != J_PENDING)
			continue; /* placed in this pass */
		assert_true(j->got_action);
		assert_true(j->reason[0] != '\0');
		if (j->sj.req.nparts) {
			/* A role that fits nowhere, even alone, is named. */
			if (strstr(j->reason, "empty cluster"))
				assert_non_null(strstr(j->reason, ": role r"));
			w->n_roles_role_reason += strstr(j->reason, "role r") != NULL;
			continue;
		}
		/* Best effort never uses another job's reserved nodes. */
		behind = strstr(j->reason, "reservation") != NULL || j->sj.best_effort;
		for (uint32_t id = 0; id < w->nnodes && sum < j->sj.req.ntasks; id++) {
			const struct sched_node *n = w->nodes[id].n;

			if (!n || !t_node_matches(n, j))
				continue;
			if (behind && n->reserved_for && n->reserved_for != j->sj.req.job)
				continue;
			sum += t_cap(w, u, id, j);
		}
		if (sum >= j->sj.req.ntasks)
			fail_msg("job %" PRIu64 " (%u x %u milli) fits but waits: %s", j->sj.req.job,
				 j->sj.req.ntasks, j->sj.req.res.gpus_milli, j->reason);
	}
}

/* ---- the master's side ---- */

static void on_action(void *arg, const struct sched_action *a)
{
	struct world *w = arg;
	struct tjob *j = job_of(w, a->job);

	mix(w, (uint64_t)a->type << 60 ^ a->job->req.job);
	switch (a->type) {
	case SCHED_PLACED:
		assert_int_equal(j->st, J_PENDING);
		assert_false(j->got_action);
		j->got_action = true;
		for (uint32_t t = 0; t < j->sj.req.ntasks; t++) {
			const struct sched_node *n = sched_node_get(w->s, a->slots[t].node);

			assert_non_null(n);
			assert_true(t_node_matches(n, j));
			j->slots[t] = a->slots[t];
			mix(w, (uint64_t)a->slots[t].node << 32 ^ a->slots[t].ngpus);
			for (uint32_t g = 0; g < a->slots[t].ngpus; g++)
				mix(w, a->slots[t].gpu_pos[g]);
		}
		w->placed_log[w->nplaced_log].job = j->sj.req.job;
		w->placed_log[w->nplaced_log++].act = w->nacts;
		break;
	case SCHED_WAIT:
		assert_int_equal(j->st, J_PENDING);
		assert_false(j->got_action);
		j->got_action = true;
		assert_true(a->reason[0] != '\0');
		snprintf(j->reason, sizeof(j->reason), "%s", a->reason);
		if (sched_reserved_job(w->s) == j->sj.req.job && w->resv_seen_at == UINT64_MAX)
			w->resv_seen_at = w->nacts;
		if (j->sj.best_effort) {
			assert_false(sched_reserved_job(w->s) == j->sj.req.job);
			assert_null(strstr(a->reason, "preempting"));
		}
		break;
	case SCHED_PREEMPT: {
		struct tjob *f = job_of(w, a->for_job);

		assert_int_equal(j->st, J_RUNNING);
		assert_false(j->preempted);
		assert_int_equal(f->st, J_PENDING);
		assert_false(f->sj.best_effort);
		assert_true(j->sj.req.priority < f->sj.req.priority);
		w->n_roles_preempted += j->sj.req.nparts > 0;
		assert_true(strstr(a->reason, "preempted by job") != NULL);
		j->preempted = true;
		w->victims[w->nvictims++] = j;
		break;
	}
	}
	w->nacts++;
}

static void release_job(struct world *w, struct tjob *j)
{
	for (uint32_t t = 0; t < j->sj.req.ntasks; t++)
		sched_release(w->s, &j->tres[t], &j->slots[t], 1);
	j->sj.held = NULL;
	j->sj.held_res = NULL;
	j->sj.nheld = 0;
}

/* One scheduler turn, checked; returns whether victims were stopped (then
 * the master runs another turn). */
static bool turn(struct world *w)
{
	w->npend = w->nrun = 0;
	w->nvictims = 0;
	w->nacts = 0;
	w->nplaced_log = 0;
	w->resv_seen_at = UINT64_MAX;
	for (uint32_t k = 0; k < w->njobs; k++) {
		struct tjob *j = &w->jobs[k];

		j->got_action = false;
		j->preempted = false;
		j->reason[0] = '\0';
		if (j->st == J_PENDING)
			w->pend[w->npend++] = &j->sj;
		else if (j->st == J_RUNNING)
			w->run[w->nrun++] = &j->sj;
	}
	sched_pass(w->s, w->pend, w->npend, w->run, w->nrun, on_action, w);

	/* Every pending job got exactly one PLACED or WAIT. */
	for (size_t k = 0; k < w->npend; k++)
		assert_true(job_of(w, w->pend[k])->got_action);
	/* Nothing placed after the reservation was made sits on it. */
	if (w->resv_seen_at != UINT64_MAX) {
		uint64_t h = sched_reserved_job(w->s);

		for (uint32_t i = 0; i < w->nplaced_log; i++) {
			struct tjob *j = NULL;

			if (w->placed_log[i].act < w->resv_seen_at)
				continue;
			for (uint32_t k = 0; k < w->njobs && !j; k++)
				if (w->jobs[k].st == J_PENDING && w->jobs[k].sj.req.job == w->placed_log[i].job)
					j = &w->jobs[k];
			assert_non_null(j);
			for (uint32_t t = 0; t < j->sj.req.ntasks; t++) {
				const struct sched_node *n = sched_node_get(w->s, j->slots[t].node);

				assert_false(n->reserved_for && n->reserved_for != h);
				assert_false(n->reserved_for == h && h != j->sj.req.job);
			}
		}
	}
	/* Apply the placements, then check the books and the queue. */
	for (size_t k = 0; k < w->npend; k++) {
		struct tjob *j = job_of(w, w->pend[k]);

		if (j->reason[0] == '\0') {
			j->st = J_RUNNING;
			j->sj.held = j->slots;
			j->sj.nheld = j->sj.req.ntasks;
			/* Per slot only where tasks differ: both forms run. */
			j->sj.held_res = j->sj.req.nparts ? j->tres : NULL;
			w->n_placed++;
			w->n_roles_placed += j->sj.req.nparts > 0;
			w->n_best_effort += j->sj.best_effort;
			w->n_gang += j->sj.req.ntasks > 1;
		} else {
			w->n_wait_resv += strstr(j->reason, "behind") != NULL;
			w->n_never += strstr(j->reason, "empty cluster") != NULL;
		}
	}
	check_books(w);
	check_nothing_left(w);

	/* The victims stop: their slots are released and they queue again. */
	for (uint32_t i = 0; i < w->nvictims; i++) {
		release_job(w, w->victims[i]);
		w->victims[i]->st = J_PENDING;
		w->n_preempt++;
	}
	if (w->nvictims)
		check_books(w);
	return w->nvictims > 0;
}

/* ---- events ---- */

static void ev_add_node(struct world *w)
{
	static const char *zones[] = {"a", "b", "c"};
	static const char *models[] = {"NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"};
	struct res_node cap;
	struct sched_label l[2];
	char name[32];
	uint32_t ng = 4u << rnd(w, 2), model = rnd(w, 2), zone = rnd(w, 3);
	struct sched_node *n;

	memset(&cap, 0, sizeof(cap));
	memset(l, 0, sizeof(l));
	cap.ngpus = rnd(w, 8) == 0 ? 0 : ng;
	for (uint32_t g = 0; g < cap.ngpus; g++) {
		cap.gpus[g].index = g;
		cap.gpus[g].mem = 80 * GiB;
		snprintf(cap.gpus[g].model, sizeof(cap.gpus[g].model), "%s", models[model]);
	}
	cap.mem_total = (256ull << rnd(w, 2)) * GiB;
	cap.cpu_total = 32000u << rnd(w, 2);
	snprintf(l[0].key, sizeof(l[0].key), "zone");
	snprintf(l[0].val, sizeof(l[0].val), "%s", zones[zone]);
	snprintf(l[1].key, sizeof(l[1].key), "pool");
	snprintf(l[1].val, sizeof(l[1].val), "%s", rnd(w, 3) == 0 ? "cloud" : "onprem");
	snprintf(name, sizeof(name), "node-%" PRIu64, w->rng % 100000);
	n = sched_node_add(w->s, name, &cap, l, 2);
	assert_non_null(n);
	assert_true(n->id < MAX_NODES);
	if (n->id >= w->nnodes)
		w->nnodes = n->id + 1;
	assert_null(w->nodes[n->id].n);
	w->nodes[n->id].n = n;
	w->nodes[n->id].cap = cap;
	snprintf(w->nodes[n->id].zone, sizeof(w->nodes[n->id].zone), "%s", zones[zone]);
}

static uint32_t live_nodes(struct world *w)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < w->nnodes; i++)
		c += w->nodes[i].n != NULL;
	return c;
}

static struct sched_node *some_node(struct world *w)
{
	uint32_t c = live_nodes(w), k;

	if (c == 0)
		return NULL;
	k = rnd(w, c);
	for (uint32_t i = 0; i < w->nnodes; i++) {
		if (w->nodes[i].n && k-- == 0)
			return w->nodes[i].n;
	}
	return NULL;
}

static void ev_remove_node(struct world *w)
{
	struct sched_node *n = some_node(w);
	uint32_t id;
	bool first = rnd(w, 2) == 0;

	if (!n)
		return;
	id = n->id;
	/* Either the node goes first (its allocations vanish, the rest are
	 * released after) or the jobs are released first. */
	if (first) {
		sched_node_remove(w->s, n);
		w->nodes[id].n = NULL;
	}
	for (uint32_t k = 0; k < w->njobs; k++) {
		struct tjob *j = &w->jobs[k];
		bool there = false;

		if (j->st != J_RUNNING)
			continue;
		for (uint32_t t = 0; t < j->sj.req.ntasks; t++)
			there |= j->slots[t].node == id;
		if (there) {
			release_job(w, j);
			j->st = J_PENDING;
		}
	}
	if (!first) {
		sched_node_remove(w->s, n);
		w->nodes[id].n = NULL;
	}
}

static void ev_submit(struct world *w)
{
	static const uint32_t gpus[] = {0, 250, 500, 1000, 1000, 2000, 4000, 8000, 1000, 300};
	static const int32_t prios[] = {0, 0, 0, 10, 50, -5};
	struct tjob *j;
	struct sched_req *r;
	uint32_t c;

	if (w->njobs == MAX_JOBS)
		return;
	j = &w->jobs[w->njobs++];
	memset(j, 0, sizeof(*j));
	j->st = J_PENDING;
	r = &j->sj.req;
	r->job = w->njobs;
	r->priority = prios[rnd(w, 6)];
	r->ntasks = rnd(w, 4) == 0 ? 2 + rnd(w, MAX_TASKS - 1) : 1;
	r->res.gpus_milli = gpus[rnd(w, 10)];
	r->res.mem = (1ull << rnd(w, 7)) * GiB;
	r->res.cpu_milli = 500u * (1 + rnd(w, 16));
	if (rnd(w, 40) == 0)
		r->res.gpus_milli = 16000; /* never fits */
	c = rnd(w, 10);
	if (c == 0) {
		assert_int_equal(sched_cons_parse("zone=b", &j->cons[0], NULL, 0), 0);
		r->ncons = 1;
	} else if (c == 1) {
		assert_int_equal(sched_cons_parse("zone in (a, c)", &j->cons[0], NULL, 0), 0);
		assert_int_equal(sched_cons_parse("pool!=cloud", &j->cons[1], NULL, 0), 0);
		r->ncons = 2;
	} else if (c == 2 && rnd(w, 4) == 0) {
		assert_int_equal(sched_cons_parse("rack=r1", &j->cons[0], NULL, 0), 0);
		r->ncons = 1; /* no node has the key */
	}
	r->cons = j->cons;
	if (rnd(w, 8) == 0)
		snprintf(j->model, sizeof(j->model), "%s", rnd(w, 2) ? "h100" : "A100");
	r->gpu_model = j->model[0] ? j->model : NULL;
	c = rnd(w, 4);
	r->policy = c == 0 ? &sched_spread : c == 1 ? &sched_fgd : NULL;
	j->sj.order = w->next_order++;
	j->sj.may_preempt = true;
	for (uint32_t t = 0; t < r->ntasks; t++)
		j->tres[t] = r->res;
	if (r->ntasks == 1 && rnd(w, 10) == 0) {
		j->sj.best_effort = true; /* as the master asks for optional tasks */
		j->sj.may_preempt = false;
	} else if (rnd(w, 5) == 0) {
		/* A multi-role gang: 2..3 roles of 1..2 tasks, each its own
		 * shape (roles carry no model: the shape does not apply). */
		static const char *const names[MAX_PARTS] = {"r0", "r1", "r2"};
		uint32_t np = 2 + rnd(w, MAX_PARTS - 1), t = 0;

		j->model[0] = '\0';
		r->gpu_model = NULL;
		for (uint32_t p = 0; p < np && t < MAX_TASKS; p++) {
			struct sched_part *pt = &j->parts[r->nparts++];

			pt->name = names[p];
			pt->ntasks = 1 + rnd(w, 2);
			if (t + pt->ntasks > MAX_TASKS)
				pt->ntasks = MAX_TASKS - t;
			pt->res.gpus_milli = gpus[rnd(w, 10)];
			pt->res.mem = (1ull << rnd(w, 7)) * GiB;
			pt->res.cpu_milli = 500u * (1 + rnd(w, 32));
			if (rnd(w, 30) == 0)
				pt->res.cpu_milli = 1000000; /* this role never fits */
			for (uint32_t k = 0; k < pt->ntasks; k++)
				j->tres[t++] = pt->res;
		}
		r->ntasks = t;
		r->parts = j->parts;
		memset(&r->res, 0, sizeof(r->res)); /* unused with parts */
	}
}

static void ev_finish(struct world *w)
{
	uint32_t c = 0, k;

	for (uint32_t i = 0; i < w->njobs; i++)
		c += w->jobs[i].st == J_RUNNING;
	if (c == 0)
		return;
	k = rnd(w, c);
	for (uint32_t i = 0; i < w->njobs; i++) {
		struct tjob *j = &w->jobs[i];

		if (j->st == J_RUNNING && k-- == 0) {
			release_job(w, j);
			j->st = J_DONE;
			return;
		}
	}
}

/* Cancel a pending job (users give up on what never fits). */
static void ev_cancel(struct world *w)
{
	uint32_t c = 0, k;

	for (uint32_t i = 0; i < w->njobs; i++)
		c += w->jobs[i].st == J_PENDING;
	if (c == 0)
		return;
	k = rnd(w, c);
	for (uint32_t i = 0; i < w->njobs; i++) {
		struct tjob *j = &w->jobs[i];

		if (j->st == J_PENDING && k-- == 0) {
			j->st = J_DONE;
			if (sched_reserved_job(w->s) == j->sj.req.job) {
				sched_unreserve(w->s, j->sj.req.job);
				assert_int_equal(sched_reserved_job(w->s), 0);
			}
			return;
		}
	}
}

static uint32_t count_pending(struct world *w)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < w->njobs; i++)
		c += w->jobs[i].st == J_PENDING;
	return c;
}

static uint64_t replay(uint64_t seed, uint32_t events, bool report)
{
	struct world *w = calloc(1, sizeof(*w));
	uint64_t h;

	assert_non_null(w);
	w->jobs = calloc(MAX_JOBS, sizeof(*w->jobs));
	assert_non_null(w->jobs);
	w->s = sched_new();
	w->rng = seed * 0x9E3779B97F4A7C15ull + 1;
	w->hash = 1469598103934665603ull;
	for (int i = 0; i < 8; i++)
		ev_add_node(w);

	for (uint32_t e = 0; e < events; e++) {
		uint32_t x = rnd(w, 100);

		if (x < 45) {
			if (count_pending(w) < MAX_PENDING)
				ev_submit(w);
		} else if (x < 77) {
			ev_finish(w);
		} else if (x < 81) {
			if (live_nodes(w) < MAX_NODES - 1)
				ev_add_node(w);
		} else if (x < 84) {
			if (live_nodes(w) > 2)
				ev_remove_node(w);
		} else if (x < 92) {
			ev_cancel(w);
		} else if (x < 97) {
			struct sched_node *n = some_node(w);

			if (n)
				sched_node_set(w->s, n, !n->schedulable);
		} else {
			/* A quiet turn. */
		}
		for (int t = 0; t < 8 && turn(w); t++)
			;
		mix(w, e);
	}
	if (report)
		print_message("seed %" PRIu64 ", %u events: %" PRIu64 " placed (%" PRIu64
			      " gangs), %" PRIu64 " preempted, %" PRIu64
			      " waits behind a reservation, %" PRIu64 " never-fit waits\n",
			      seed, events, w->n_placed, w->n_gang, w->n_preempt, w->n_wait_resv,
			      w->n_never);
	if (report) {
		/* The replay must have exercised the interesting paths. */
		assert_true(w->n_placed > events / 10);
		assert_true(w->n_gang > 0);
		assert_true(w->n_preempt > 0);
		assert_true(w->n_wait_resv > 0);
		assert_true(w->n_never > 0);
		assert_true(w->n_roles_placed > 0);
		assert_true(w->n_roles_preempted > 0);
		assert_true(w->n_roles_role_reason > 0);
		assert_true(w->n_best_effort > 0);
		print_message("multi-role gangs: %" PRIu64 " placed, %" PRIu64 " preempted, %" PRIu64
			      " waits naming a role; %" PRIu64 " best-effort placed\n",
			      w->n_roles_placed, w->n_roles_preempted, w->n_roles_role_reason,
			      w->n_best_effort);
	}
	h = w->hash;
	sched_free(w->s);
	free(w->jobs);
	free(w);
	return h;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static void test_replay(void **state)
{
	uint64_t seed = env_u64("MLS_SEED", DEFAULT_SEED);
	uint32_t events = (uint32_t)env_u64("MLS_EVENTS", DEFAULT_EVENTS);

	replay(seed, events, true);
}

/* The same seed gives the same actions, in the same order, on the same
 * nodes and GPUs. */
static void test_deterministic(void **state)
{
	uint64_t seed = env_u64("MLS_SEED", DEFAULT_SEED) + 1;

	assert_int_equal(replay(seed, 400, false), replay(seed, 400, false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay),
		cmocka_unit_test(test_deterministic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
