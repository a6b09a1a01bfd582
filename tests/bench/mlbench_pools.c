/*
 * mlbench_pools.c - mlbench replay --pools FILE: a trace on an on-prem pool
 * plus cloud bursting, against fixed clusters, in simulated time.
 *
 *   mlbench replay --pools pools.yaml --nodes nodes.csv --jobs jobs.csv
 *                  [--policy binpack] [--plugin-dir DIR] [--boot-time DURATION]
 *
 * THE SIMULATION.  A discrete-event loop over simulated milliseconds; no
 * clock is read.  Job j arrives at its creation_time, queues, and once placed
 * runs for deletion_time - creation_time (the trace's own life of the pod),
 * then frees its resources.  The queue is the master's: the scheduler core's
 * sched_pass() (priority then arrival order, a reservation for the blocked
 * head, backfill around it) with the --policy placement and the core's cost
 * tiers (cheapest pool first), run after every instant at which something
 * arrived, finished or became ready.  Queueing delay is start - arrival.
 *
 * THE POOLS.  The file is the one mlmaster --pools reads, read by the same
 * parser (master/pools_file.c).  The trace's nodes are the on-prem capacity:
 * they belong to the first pool without provision: (its labels and cost), or
 * to no pool when the file has none.  Every pool with provision: is a cloud
 * pool (its hooks are checked by the parser but never run): its template,
 * max, min, cost_per_gpu_hour and idle are used as the master uses them, and
 * a provisioned node is usable after --boot-time (default: the pool's
 * boot_timeout, the longest the master waits for a join, so a pessimistic
 * boot).  The burst rule is burst.c's: when a job has waited burst_after,
 * a scratch core of the nodes as they are plus a template per booting node
 * places the waiting jobs in queue order; for the rest, each cloud pool with
 * room under max gets template nodes one at a time, and the pool that runs
 * the most jobs (then the cheaper, then with fewer nodes) gets that many
 * nodes.  A cloud node without tasks for idle is released (not below min).
 * The master scans every burst_after/4 (200 ms to 1 s); here a scan runs at
 * every event instant and when a job's wait reaches burst_after, which is
 * the same rule without the scan period.
 *
 * GPU models: a job's gpu_spec ("A|B") names model substrings, as in plain
 * replay.  Since the queue takes one constraint list per job, each node
 * carries a label mlbench-gpu=MODEL and a job gets "mlbench-gpu in (...)"
 * with every model of the nodes and templates that matches its spec.
 *
 * THREE RUNS on the same arrivals: on-prem only (the trace's nodes); on-prem
 * plus bursting; and a fixed cluster sized for the peak: on-prem plus, from
 * the first arrival to the end, the template nodes of the cheapest cloud pool
 * needed to cover the peak no-wait GPU demand (the most GPUs that jobs
 * running from arrival to deletion hold at once) beyond the on-prem GPUs,
 * not bounded by max.  Cloud GPU-hours are bought from the provision to the
 * release (boot and idle time included); the fixed cluster's from the first
 * arrival to the last departure.  Each run goes on until every job that can
 * run has finished; a job that never starts is counted, not timed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mlbench.h"
#include "opt.h"
#include "pools.h"
#include "units.h"
#include "util.h"

#define MODEL_KEY "mlbench-gpu"
#define MAX_MODELS 32          /* distinct GPU models of nodes and templates */
#define MAX_EVENTS_PER_JOB 64  /* a run that needs more has not converged */
#define MS_PER_HOUR 3600000.0
#define MAX_TIME_S 1000000000000ull /* trace times in seconds (simulated in ms) */

/* ---- the input every run shares ---- */

struct pctx {
	const struct rnode *nodes;
	uint32_t nnodes;
	const struct rjob *jobs; /* arrival order */
	uint32_t njobs;
	struct pools *pools;
	const struct pool *onprem;  /* NULL: the trace's nodes are in no pool */
	const struct sched_policy *policy;
	bool boot_set;
	uint64_t boot_ms;           /* --boot-time, if boot_set */
	/* GPU models and the constraint of each distinct model set. */
	char models[MAX_MODELS][RES_MODEL_LEN];
	uint32_t nmodels;
	uint32_t *job_mask;          /* per job: models it accepts; 0 with ngpu > 0: none */
	bool *job_any;               /* per job: no model constraint */
	struct sched_cons *cons;     /* per job, used when !job_any */
	uint32_t *fits_tmpl;         /* per job: bit i = fits an empty template of pool i */
	uint64_t onprem_milli;
	uint32_t unrunnable;         /* GPU jobs whose spec matches no model */
};

/* ---- one run ---- */

enum ev_kind { EV_DEPART, EV_READY, EV_IDLE, EV_WAKE };

struct ev {
	uint64_t t;    /* ms */
	uint64_t seq;  /* ties: push order */
	enum ev_kind kind;
	uint32_t idx;  /* job (DEPART) or cloud node (READY, IDLE) */
	uint64_t stamp; /* IDLE: the idle_since it checks */
};

struct evheap {
	struct ev *v;
	size_t n, cap;
	uint64_t seq;
};

/* A cloud node of a run: provisioned, booting or ready, or released. */
struct cnode {
	uint32_t pool;               /* index in pools->v */
	uint64_t t_prov, t_release;  /* ms */
	struct sched_node *sn;       /* while ready */
	bool released;
	bool fixed;                  /* the peak-sized cluster's: never released */
	uint32_t ntasks;
	uint64_t idle_since;
};

struct prun {
	const char *name;
	bool burst;                 /* provision from the cloud pools */
	const struct pool *fixed_pool; /* fixed cloud nodes from the start */
	uint32_t fixed;
	/* state */
	struct sched *s;
	struct sched_job *sj;       /* per job */
	struct sched_slot *slot;    /* per job */
	uint64_t *start;            /* per job, ms; UINT64_MAX = not started */
	struct sched_job **pend;    /* waiting, arrival order */
	size_t npend;
	struct cnode *cn;
	uint32_t ncn, capcn;
	int32_t *owner;             /* sched node id -> cloud node, -1 = on-prem */
	uint32_t owner_cap;
	struct evheap h;
	struct ev *due;             /* this instant's IDLE events, checked after the pass */
	size_t ndue, capdue;
	uint64_t now, t_first, t_end;
	uint64_t onprem_used, cloud_used; /* milli-GPUs held now */
	double onprem_area, cloud_area;   /* milli-GPU x ms */
	double onprem_area_arr;           /* onprem_area at the last arrival */
	uint64_t t_last_arr;
	bool arrived;                     /* every job has arrived */
	uint32_t held_peak, provisioned;
	double cloud_gpu_ms;              /* bought */
	uint64_t events;
	/* results */
	uint32_t ran, never;
	uint32_t *delay_s;                /* of the jobs that ran, sorted at the end */
	double delay_sum_ms;
	uint64_t delay_max_ms;
	const struct pctx *c;
};

static void ev_swap(struct evheap *h, size_t a, size_t b)
{
	struct ev t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
}

static bool ev_less(const struct evheap *h, size_t a, size_t b)
{
	return h->v[a].t < h->v[b].t || (h->v[a].t == h->v[b].t && h->v[a].seq < h->v[b].seq);
}

static void ev_push(struct evheap *h, uint64_t t, enum ev_kind kind, uint32_t idx,
		    uint64_t stamp)
{
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	i = h->n++;
	h->v[i] = (struct ev){.t = t, .seq = h->seq++, .kind = kind, .idx = idx, .stamp = stamp};
	while (i > 0 && ev_less(h, i, (i - 1) / 2)) {
		ev_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct ev ev_pop(struct evheap *h)
{
	struct ev top = h->v[0];
	size_t i = 0;

	h->v[0] = h->v[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && ev_less(h, l, m))
			m = l;
		if (r < h->n && ev_less(h, r, m))
			m = r;
		if (m == i)
			break;
		ev_swap(h, i, m);
		i = m;
	}
	return top;
}

static uint64_t boot_ms(const struct pctx *c, const struct pool *p)
{
	return c->boot_set ? c->boot_ms : p->boot_timeout_ms;
}

/* A node's labels: its pool's (pool=NAME first) plus its GPU model. */
static uint32_t node_labels(const struct pool *p, const struct res_node *cap,
			    struct sched_label *out)
{
	uint32_t n = 0;

	if (p)
		for (; n < p->nlabels; n++)
			out[n] = p->labels[n];
	if (cap->ngpus > 0 && cap->gpus[0].model[0] && n < SCHED_MAX_LABELS) {
		strlcpy_ok(out[n].key, MODEL_KEY, SCHED_LABEL_LEN);
		strlcpy_ok(out[n].val, cap->gpus[0].model, SCHED_LABEL_LEN);
		n++;
	}
	return n;
}

static struct sched_node *add_node(struct sched *s, const char *name, const struct pool *p,
				   const struct res_node *cap)
{
	struct sched_label labels[SCHED_MAX_LABELS];
	uint32_t nl;
	struct sched_node *sn;

	memset(labels, 0, sizeof(labels));
	nl = node_labels(p, cap, labels);
	sn = sched_node_add(s, name, cap, labels, nl);

	sched_node_cost(s, sn, p ? p->cost_milli : 0);
	return sn;
}

static void set_owner(struct prun *r, uint32_t id, int32_t who)
{
	if (id >= r->owner_cap) {
		uint32_t cap = r->owner_cap ? r->owner_cap : 64;

		while (cap <= id)
			cap *= 2;
		r->owner = xrealloc(r->owner, cap * sizeof(*r->owner));
		for (uint32_t i = r->owner_cap; i < cap; i++)
			r->owner[i] = -1;
		r->owner_cap = cap;
	}
	r->owner[id] = who;
}

static int32_t owner_of(const struct prun *r, uint32_t id)
{
	return id < r->owner_cap ? r->owner[id] : -1;
}

/* Move the clock, adding what was held since the last instant. */
static void advance(struct prun *r, uint64_t t)
{
	if (t > r->now) {
		r->onprem_area += (double)r->onprem_used * (double)(t - r->now);
		r->cloud_area += (double)r->cloud_used * (double)(t - r->now);
		r->now = t;
	}
}

static uint32_t held(const struct prun *r, uint32_t pool)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->ncn; i++)
		n += r->cn[i].pool == pool && !r->cn[i].released;
	return n;
}

static uint32_t held_all(const struct prun *r)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->ncn; i++)
		n += !r->cn[i].released;
	return n;
}

static void provision(struct prun *r, uint32_t pool, uint32_t count)
{
	const struct pool *p = &r->c->pools->v[pool];

	for (uint32_t k = 0; k < count; k++) {
		struct cnode *cn;

		if (r->ncn == r->capcn) {
			r->capcn = r->capcn ? r->capcn * 2 : 16;
			r->cn = xrealloc(r->cn, r->capcn * sizeof(*r->cn));
		}
		cn = &r->cn[r->ncn];
		memset(cn, 0, sizeof(*cn));
		cn->pool = pool;
		cn->t_prov = r->now;
		ev_push(&r->h, r->now + boot_ms(r->c, p), EV_READY, r->ncn, 0);
		r->ncn++;
		r->provisioned++;
	}
	if (held_all(r) > r->held_peak)
		r->held_peak = held_all(r);
}

static void cnode_ready(struct prun *r, uint32_t i)
{
	struct cnode *cn = &r->cn[i];
	const struct pool *p = &r->c->pools->v[cn->pool];
	char name[SCHED_NAME_LEN];

	snprintf(name, sizeof(name), "%.40s-%u", p->name, i + 1);
	cn->sn = add_node(r->s, name, p, &p->tmpl);
	set_owner(r, cn->sn->id, (int32_t)i);
	cn->idle_since = r->now;
	ev_push(&r->h, r->now + p->idle_ms, EV_IDLE, i, r->now);
}

static void cnode_release(struct prun *r, uint32_t i)
{
	struct cnode *cn = &r->cn[i];
	const struct pool *p = &r->c->pools->v[cn->pool];

	if (cn->sn) {
		set_owner(r, cn->sn->id, -1);
		sched_node_remove(r->s, cn->sn);
		cn->sn = NULL;
	}
	cn->released = true;
	cn->t_release = r->now;
	r->cloud_gpu_ms += (double)(cn->t_release - cn->t_prov) * p->tmpl.ngpus;
}

/* The idle rule of burst.c's follow(): idle for idle_ms and above min. */
static void idle_check(struct prun *r, uint32_t i, uint64_t stamp)
{
	struct cnode *cn = &r->cn[i];
	const struct pool *p = &r->c->pools->v[cn->pool];

	if (cn->released || cn->fixed || !cn->sn || cn->ntasks > 0 || cn->idle_since != stamp)
		return;
	if (held(r, cn->pool) > p->min)
		cnode_release(r, i);
}

static void emit(void *arg, const struct sched_action *a)
{
	struct prun *r = arg;
	uint32_t j;
	int32_t who;
	uint64_t run_ms, delay;

	if (a->type != SCHED_PLACED)
		return;
	j = (uint32_t)(a->job->req.job - 1);
	r->slot[j] = a->slots[0];
	r->start[j] = r->now;
	run_ms = (r->c->jobs[j].delete - r->c->jobs[j].create) * 1000;
	ev_push(&r->h, r->now + run_ms, EV_DEPART, j, 0);
	who = owner_of(r, r->slot[j].node);
	if (who >= 0) {
		r->cn[who].ntasks++;
		r->cloud_used += r->c->jobs[j].res.gpus_milli;
	} else {
		r->onprem_used += r->c->jobs[j].res.gpus_milli;
	}
	delay = r->now - r->c->jobs[j].create * 1000;
	r->delay_s[r->ran++] = (uint32_t)((delay + 500) / 1000);
	r->delay_sum_ms += (double)delay;
	if (delay > r->delay_max_ms)
		r->delay_max_ms = delay;
}

static void depart(struct prun *r, uint32_t j)
{
	const struct rjob *job = &r->c->jobs[j];
	int32_t who = owner_of(r, r->slot[j].node);

	sched_release(r->s, &job->res, &r->slot[j], 1);
	if (who < 0) {
		r->onprem_used -= job->res.gpus_milli;
		return;
	}
	r->cloud_used -= job->res.gpus_milli;
	if (--r->cn[who].ntasks == 0 && !r->cn[who].fixed) {
		const struct pool *p = &r->c->pools->v[r->cn[who].pool];

		r->cn[who].idle_since = r->now;
		ev_push(&r->h, r->now + p->idle_ms, EV_IDLE, (uint32_t)who, r->now);
	}
}

static void pass(struct prun *r)
{
	size_t k = 0;

	if (r->npend == 0)
		return;
	sched_pass(r->s, r->pend, r->npend, NULL, 0, emit, r);
	for (size_t i = 0; i < r->npend; i++)
		if (r->start[r->pend[i]->req.job - 1] == UINT64_MAX)
			r->pend[k++] = r->pend[i];
	r->npend = k;
}

/* ---- the burst decision (burst.c's burst_scan, on simulated nodes) ---- */

/* The nodes as they are now plus a template per booting cloud node. */
static struct sched *sim_base(const struct prun *r)
{
	struct sched *sim = sched_new();

	sched_mix_config(sim, 0, false);
	for (uint32_t id = 0; id < sched_node_slots(r->s); id++) {
		const struct sched_node *n = sched_node_get(r->s, id);
		struct sched_node *sn;

		if (!n || !n->schedulable)
			continue;
		sn = sched_node_add(sim, n->name, &n->res, n->labels, n->nlabels);
		sched_node_cost(sim, sn, n->cost_milli);
	}
	for (uint32_t i = 0; i < r->ncn; i++)
		if (!r->cn[i].released && !r->cn[i].sn) {
			const struct pool *p = &r->c->pools->v[r->cn[i].pool];

			add_node(sim, "booting", p, &p->tmpl);
		}
	return sim;
}

static uint32_t sim_place(struct sched *sim, struct sched_job **needs, size_t nn, bool *done)
{
	struct sched_slot slot;
	uint32_t placed = 0;

	for (size_t i = 0; i < nn; i++)
		if (!done[i] && sched_place(sim, &needs[i]->req, &slot) == 0) {
			done[i] = true;
			placed++;
		}
	return placed;
}

static void burst_scan(struct prun *r)
{
	const struct pools *ps = r->c->pools;
	uint64_t after = ps->burst_after_ms;
	size_t nn = 0, waiting = 0;
	bool *base_done, *done;
	uint32_t best = UINT32_MAX, best_count = 0, best_k = 0;
	uint64_t best_cost = 0;

	for (uint32_t i = 0; i < ps->n; i++) {
		uint32_t h;

		if (ps->v[i].provision && (h = held(r, i)) < ps->v[i].min)
			provision(r, i, ps->v[i].min - h);
	}
	/* The waiting list is in arrival order and every job has priority 0:
	 * those waiting for burst_after are a prefix. */
	while (nn < r->npend &&
	       r->now - r->c->jobs[r->pend[nn]->req.job - 1].create * 1000 >= after)
		nn++;
	if (nn == 0)
		return;
	base_done = xcalloc(nn, sizeof(*base_done));
	done = xcalloc(nn, sizeof(*done));
	struct sched *sim = sim_base(r);
	sim_place(sim, r->pend, nn, base_done);
	sched_free(sim);
	for (size_t i = 0; i < nn; i++)
		waiting += !base_done[i];
	for (uint32_t i = 0; waiting && i < ps->n; i++) {
		const struct pool *p = &ps->v[i];
		uint32_t h, room, count = 0, k_at = 0, left = 0;
		uint64_t cost;

		if (!p->provision || (h = held(r, i)) >= p->max)
			continue;
		room = p->max - h;
		memcpy(done, base_done, nn * sizeof(*done));
		for (size_t k = 0; k < nn; k++)
			left += !done[k] && (r->c->fits_tmpl[r->pend[k]->req.job - 1] >> i & 1);
		if (left == 0)
			continue; /* no waiting job fits this template: adding nodes places none */
		sim = sim_base(r);
		sim_place(sim, r->pend, nn, done);
		for (uint32_t k = 1; k <= room && count < waiting && count < left; k++) {
			uint32_t got;

			add_node(sim, "new", p, &p->tmpl);
			if ((got = sim_place(sim, r->pend, nn, done)) > 0) {
				count += got;
				k_at = k;
			}
		}
		sched_free(sim);
		cost = (uint64_t)k_at * p->tmpl.ngpus * p->cost_milli;
		if (count > best_count || (count == best_count && count > 0 &&
					   (cost < best_cost || (cost == best_cost && k_at < best_k)))) {
			best = i;
			best_count = count;
			best_k = k_at;
			best_cost = cost;
		}
	}
	if (best != UINT32_MAX)
		provision(r, best, best_k);
	free(done);
	free(base_done);
}

/* ---- a run ---- */

static void run_init(struct prun *r, const struct pctx *c)
{
	r->c = c;
	r->s = sched_new();
	r->sj = xcalloc(c->njobs, sizeof(*r->sj));
	r->slot = xcalloc(c->njobs, sizeof(*r->slot));
	r->start = xmalloc(c->njobs * sizeof(*r->start));
	r->pend = xcalloc(c->njobs, sizeof(*r->pend));
	r->delay_s = xcalloc(c->njobs, sizeof(*r->delay_s));
	for (uint32_t i = 0; i < c->nnodes; i++) {
		struct sched_node *sn = add_node(r->s, c->nodes[i].name, c->onprem,
						 &c->nodes[i].cap);
		set_owner(r, sn->id, -1);
	}
	for (uint32_t j = 0; j < c->njobs; j++) {
		struct sched_job *sj = &r->sj[j];

		r->start[j] = UINT64_MAX;
		sj->req.job = (uint64_t)j + 1;
		sj->req.ntasks = 1;
		sj->req.res = c->jobs[j].res;
		sj->req.policy = c->policy;
		if (!c->job_any[j]) {
			sj->req.cons = &c->cons[j];
			sj->req.ncons = 1;
		}
		sj->order = j;
	}
}

static void run_free(struct prun *r)
{
	sched_free(r->s);
	free(r->sj);
	free(r->slot);
	free(r->start);
	free(r->pend);
	free(r->cn);
	free(r->owner);
	free(r->h.v);
	free(r->due);
	free(r->delay_s);
	r->s = NULL;
	r->sj = NULL;
	r->slot = NULL;
	r->start = NULL;
	r->pend = NULL;
	r->cn = NULL;
	r->owner = NULL;
	r->h.v = NULL;
	r->due = NULL;
	r->delay_s = NULL;
}

/* 0, or 1 when an internal check failed (printed). */
static int run(struct prun *r)
{
	const struct pctx *c = r->c;
	uint64_t limit = ((uint64_t)c->njobs + 16) * MAX_EVENTS_PER_JOB;
	uint32_t next = 0;

	r->now = r->t_first = r->t_end = c->jobs[0].create * 1000;
	if (r->fixed_pool) {
		uint32_t pi = (uint32_t)(r->fixed_pool - c->pools->v);

		provision(r, pi, r->fixed);
		/* Fixed nodes are there from the start (no boot) and stay. */
		for (uint32_t i = 0; i < r->ncn; i++) {
			r->cn[i].fixed = true;
			cnode_ready(r, i);
		}
		r->h.n = 0; /* drop their READY and IDLE events */
	}
	while (next < c->njobs || r->h.n > 0) {
		uint64_t t = UINT64_MAX;
		bool changed = false;

		if (next < c->njobs)
			t = c->jobs[next].create * 1000;
		if (r->h.n > 0 && r->h.v[0].t < t)
			t = r->h.v[0].t;
		advance(r, t);
		r->ndue = 0;
		while (r->h.n > 0 && r->h.v[0].t == t) {
			struct ev e = ev_pop(&r->h);

			r->events++;
			switch (e.kind) {
			case EV_DEPART:
				depart(r, e.idx);
				r->t_end = t;
				changed = true;
				break;
			case EV_READY:
				if (!r->cn[e.idx].released) {
					cnode_ready(r, e.idx);
					changed = true;
				}
				break;
			case EV_IDLE:
				if (r->ndue == r->capdue) {
					r->capdue = r->capdue ? r->capdue * 2 : 16;
					r->due = xrealloc(r->due, r->capdue * sizeof(*r->due));
				}
				r->due[r->ndue++] = e;
				break;
			case EV_WAKE:
				break;
			}
		}
		while (next < c->njobs && c->jobs[next].create * 1000 == t) {
			uint32_t j = next++;

			r->events++;
			if (c->jobs[j].res.gpus_milli && c->job_mask[j] == 0 && !c->job_any[j])
				continue; /* asks a model nothing has: counted apart */
			r->pend[r->npend++] = &r->sj[j];
			if (r->burst)
				ev_push(&r->h, t + c->pools->burst_after_ms, EV_WAKE, j, 0);
			changed = true;
		}
		if (next == c->njobs && !r->arrived) {
			r->arrived = true;
			r->t_last_arr = t;
			r->onprem_area_arr = r->onprem_area;
		}
		if (changed)
			pass(r);
		for (size_t i = 0; i < r->ndue; i++)
			idle_check(r, r->due[i].idx, r->due[i].stamp);
		if (r->burst)
			burst_scan(r);
		if (r->events > limit) {
			fprintf(stderr, "mlbench replay --pools: %s: more than %" PRIu64 " events "
				"for %" PRIu32 " jobs: the simulation does not converge\n", r->name,
				limit, c->njobs);
			return 1;
		}
	}
	/* What is still held (a pool's min, the fixed nodes) is paid up to the
	 * last departure. */
	for (uint32_t i = 0; i < r->ncn; i++)
		if (!r->cn[i].released) {
			r->now = r->t_end > r->cn[i].t_prov ? r->t_end : r->cn[i].t_prov;
			cnode_release(r, i);
		}
	r->never = c->njobs - r->ran;
	/* The books: every started job has departed, so nothing is held. */
	for (uint32_t id = 0; id < sched_node_slots(r->s); id++) {
		const struct sched_node *n = sched_node_get(r->s, id);

		for (uint32_t g = 0; n && g < n->res.ngpus; g++)
			if (n->res.gpus[g].used_milli) {
				fprintf(stderr, "mlbench replay --pools: %s: node %s still holds GPUs "
					"after every job left\n", r->name, n->name);
				return 1;
			}
	}
	if (r->onprem_used || r->cloud_used) {
		fprintf(stderr, "mlbench replay --pools: %s: books disagree with the placements\n",
			r->name);
		return 1;
	}
	qsort(r->delay_s, r->ran, sizeof(*r->delay_s), cmp_u32);
	return 0;
}

/* ---- the input ---- */

static int model_index(struct pctx *c, const char *model)
{
	for (uint32_t i = 0; i < c->nmodels; i++)
		if (strcmp(c->models[i], model) == 0)
			return (int)i;
	if (c->nmodels == MAX_MODELS) {
		fprintf(stderr, "mlbench replay --pools: more than %d GPU models among the nodes "
			"and templates\n", MAX_MODELS);
		return -1;
	}
	strlcpy_ok(c->models[c->nmodels], model, RES_MODEL_LEN);
	return (int)c->nmodels++;
}

static int pool_labels_room(const struct pool *p, const char *path)
{
	if (p->nlabels < SCHED_MAX_LABELS)
		return 0;
	fprintf(stderr, "mlbench replay --pools: %s: pool %s has %u labels: no room for the "
		"replay's %s label (at most %d)\n", path, p->name, p->nlabels, MODEL_KEY,
		SCHED_MAX_LABELS - 1);
	return ERR_INVAL;
}

/* Pools, models and per-job constraints; 0 or ERR_INVAL (printed). */
static int ctx_build(struct pctx *c, const char *path, const char *jobs_path)
{
	struct pools *ps = c->pools;
	uint32_t ncloud = 0;
	int rc = ERR_INVAL;

	for (uint32_t i = 0; i < ps->n; i++) {
		const struct pool *p = &ps->v[i];

		if (pool_labels_room(p, path) != 0)
			goto out;
		if (!p->provision) {
			if (!c->onprem)
				c->onprem = p;
			continue;
		}
		ncloud++;
		if (p->tmpl.ngpus && p->tmpl.gpus[0].model[0] &&
		    model_index(c, p->tmpl.gpus[0].model) < 0)
			goto out;
	}
	if (ncloud == 0) {
		fprintf(stderr, "mlbench replay --pools: %s has no cloud pool (one with provision:): "
			"nothing to burst into\n", path);
		goto out;
	}
	for (uint32_t i = 0; i < c->nnodes; i++) {
		const struct res_node *n = &c->nodes[i].cap;

		c->onprem_milli += (uint64_t)n->ngpus * MILLI;
		if (n->ngpus && n->gpus[0].model[0] && model_index(c, n->gpus[0].model) < 0)
			goto out;
	}
	c->job_mask = xcalloc(c->njobs, sizeof(*c->job_mask));
	c->job_any = xcalloc(c->njobs, sizeof(*c->job_any));
	c->cons = xcalloc(c->njobs, sizeof(*c->cons));
	c->fits_tmpl = xcalloc(c->njobs, sizeof(*c->fits_tmpl));
	for (uint32_t j = 0; j < c->njobs; j++) {
		const struct rjob *job = &c->jobs[j];
		struct sched_cons *k = &c->cons[j];

		if (job->delete == UINT64_MAX) {
			fprintf(stderr, "mlbench replay --pools: %s: the job in data row %" PRIu32
				" has no deletion_time: --pools runs each job for deletion_time - "
				"creation_time\n", jobs_path, job->order + 1);
			goto out;
		}
		if (job->res.gpus_milli == 0 || job->nmodels == 0) {
			c->job_any[j] = true;
			continue;
		}
		for (uint32_t m = 0; m < c->nmodels; m++)
			for (uint32_t s = 0; s < job->nmodels; s++)
				if (strstr(c->models[m], job->models[s]))
					c->job_mask[j] |= 1u << m;
		if (c->job_mask[j] == 0) {
			c->unrunnable++;
			continue;
		}
		strlcpy_ok(k->key, MODEL_KEY, SCHED_LABEL_LEN);
		k->op = SCHED_IN;
		for (uint32_t m = 0; m < c->nmodels; m++) {
			if (!(c->job_mask[j] >> m & 1))
				continue;
			if (k->nvals == SCHED_MAX_IN) {
				fprintf(stderr, "mlbench replay --pools: %s: the job in data row %"
					PRIu32 " matches more than %d GPU models\n", jobs_path,
					job->order + 1, SCHED_MAX_IN);
				goto out;
			}
			strlcpy_ok(k->vals[k->nvals++], c->models[m], SCHED_LABEL_LEN);
		}
	}
	/* Which jobs an empty template of each cloud pool could take. */
	for (uint32_t i = 0; i < ps->n; i++) {
		const struct pool *p = &ps->v[i];
		struct sched *one;
		struct sched_node *sn;

		if (!p->provision)
			continue;
		one = sched_new();
		sn = add_node(one, "template", p, &p->tmpl);
		for (uint32_t j = 0; j < c->njobs; j++) {
			struct sched_req req = {.job = j + 1, .ntasks = 1, .res = c->jobs[j].res};
			struct sched_slot slot;

			if (c->jobs[j].res.gpus_milli && !c->job_any[j] && c->job_mask[j] == 0)
				continue;
			if (!c->job_any[j]) {
				req.cons = &c->cons[j];
				req.ncons = 1;
			}
			if (sched_fits(one, sn, &req, &slot))
				c->fits_tmpl[j] |= 1u << i;
		}
		sched_free(one);
	}
	rc = 0;
out:
	return rc;
}

static void ctx_free(struct pctx *c)
{
	free(c->job_mask);
	free(c->job_any);
	free(c->cons);
	free(c->fits_tmpl);
}

struct sweep {
	uint64_t t;
	int64_t d; /* milli-GPUs: + arrival, - departure */
};

static int sweep_cmp(const void *a, const void *b)
{
	const struct sweep *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->d < y->d ? -1 : x->d > y->d; /* departures first */
}

/* The most GPUs held at once if every job ran from arrival to deletion. */
static uint64_t peak_demand(const struct pctx *c)
{
	struct sweep *v = xcalloc((size_t)c->njobs * 2 + 1, sizeof(*v));
	size_t n = 0;
	int64_t now = 0, peak = 0;

	for (uint32_t j = 0; j < c->njobs; j++) {
		const struct rjob *job = &c->jobs[j];

		if (!job->res.gpus_milli || (!c->job_any[j] && c->job_mask[j] == 0))
			continue;
		v[n++] = (struct sweep){job->create, (int64_t)job->res.gpus_milli};
		v[n++] = (struct sweep){job->delete, -(int64_t)job->res.gpus_milli};
	}
	qsort(v, n, sizeof(*v), sweep_cmp);
	for (size_t i = 0; i < n; i++) {
		now += v[i].d;
		if (now > peak)
			peak = now;
	}
	free(v);
	return (uint64_t)peak;
}

/* ---- output ---- */

static double hours(double ms)
{
	return ms / MS_PER_HOUR;
}

/* "x0.123", or "- (0 s)" style when the base is zero. */
static const char *ratio(char *buf, size_t len, double a, double b)
{
	if (b > 0)
		snprintf(buf, len, "x%.3f", a / b);
	else
		snprintf(buf, len, "- (%g vs 0)", a);
	return buf;
}

static double mean_s(const struct prun *r)
{
	return r->ran ? r->delay_sum_ms / r->ran / 1000.0 : 0;
}

static double cost_of(const struct prun *r)
{
	double sum = 0;

	/* Each node at its own pool's price. */
	for (uint32_t i = 0; i < r->ncn; i++) {
		const struct cnode *cn = &r->cn[i];
		const struct pool *p = &r->c->pools->v[cn->pool];

		sum += hours((double)(cn->t_release - cn->t_prov) * p->tmpl.ngpus) *
		       p->cost_milli / 1000.0;
	}
	return sum;
}

static void row_f(const char *label, const struct prun *runs, double (*f)(const struct prun *),
		  int decimals)
{
	printf("%-36s", label);
	for (int i = 0; i < 3; i++)
		printf(" %14.*f", decimals, f(&runs[i]));
	printf("\n");
}

static double f_gpuh(const struct prun *r) { return hours(r->cloud_gpu_ms); }
static double f_cloud_used(const struct prun *r)
{
	return r->cloud_gpu_ms > 0 ? 100.0 * r->cloud_area / MILLI / r->cloud_gpu_ms : 0;
}
/* Over the arrivals (first to last), as plain replay's average. */
static double f_onprem_util(const struct prun *r)
{
	double span = (double)(r->t_last_arr - r->t_first);

	return span > 0 && r->c->onprem_milli
		       ? 100.0 * r->onprem_area_arr / (double)r->c->onprem_milli / span : 0;
}
static double f_makespan(const struct prun *r) { return hours((double)(r->t_end - r->t_first)); }
static double f_p50(const struct prun *r) { return pct(r->delay_s, r->ran, 50); }
static double f_p95(const struct prun *r) { return pct(r->delay_s, r->ran, 95); }
static double f_p99(const struct prun *r) { return pct(r->delay_s, r->ran, 99); }
static double f_max(const struct prun *r) { return (double)r->delay_max_ms / 1000.0; }
static double f_ran(const struct prun *r) { return r->ran; }
static double f_never(const struct prun *r) { return r->never; }
static double f_prov(const struct prun *r) { return r->provisioned; }
static double f_peak(const struct prun *r) { return r->held_peak; }
static double f_waited(const struct prun *r)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->ran; i++)
		n += r->delay_s[i] > 0;
	return n;
}

static void print_runs(const struct prun *runs)
{
	char a[32], b[32], c[32], d[32];

	printf("\n%-36s %14s %14s %14s\n", "", runs[0].name, runs[1].name, runs[2].name);
	row_f("cloud nodes provisioned", runs, f_prov, 0);
	row_f("cloud nodes held at once, most", runs, f_peak, 0);
	row_f("cloud GPU-hours bought", runs, f_gpuh, 2);
	row_f("cloud cost", runs, cost_of, 2);
	row_f("cloud GPU-hours used, % of bought", runs, f_cloud_used, 1);
	row_f("on-prem GPUs allocated, % (arrivals)", runs, f_onprem_util, 1);
	row_f("first arrival to last end, hours", runs, f_makespan, 2);
	row_f("jobs run", runs, f_ran, 0);
	row_f("jobs never run", runs, f_never, 0);
	row_f("jobs that waited (>= 0.5 s)", runs, f_waited, 0);
	row_f("queueing delay, mean s", runs, mean_s, 1);
	row_f("queueing delay, p50 s", runs, f_p50, 0);
	row_f("queueing delay, p95 s", runs, f_p95, 0);
	row_f("queueing delay, p99 s", runs, f_p99, 0);
	row_f("queueing delay, max s", runs, f_max, 0);
	printf("\nbursting vs on-prem only: mean delay %s, p95 %s, p99 %s, max %s\n",
	       ratio(a, sizeof(a), mean_s(&runs[1]), mean_s(&runs[0])),
	       ratio(b, sizeof(b), f_p95(&runs[1]), f_p95(&runs[0])),
	       ratio(c, sizeof(c), f_p99(&runs[1]), f_p99(&runs[0])),
	       ratio(d, sizeof(d), f_max(&runs[1]), f_max(&runs[0])));
	printf("bursting vs sized for peak: cloud cost %s, GPU-hours %s, mean delay %s\n",
	       ratio(a, sizeof(a), cost_of(&runs[1]), cost_of(&runs[2])),
	       ratio(b, sizeof(b), f_gpuh(&runs[1]), f_gpuh(&runs[2])),
	       ratio(c, sizeof(c), mean_s(&runs[1]), mean_s(&runs[2])));
}

int pools_replay_main(int argc, char **argv)
{
	const char *nodes_path, *jobs_path, *pools_path, *pname, *boot, *plugdir;
	const struct opt tab[] = {
		{"pools", OPT_STR, NULL, "pools file, as for mlmaster --pools (the cloud pools "
		 "burst; hooks are not run)", &pools_path},
		{"nodes", OPT_STR, NULL, "nodes CSV (the on-prem pool): name,cpu_milli,memory_mib,"
		 "gpu,model", &nodes_path},
		{"jobs", OPT_STR, NULL, "jobs CSV: name,cpu_milli,memory_mib,num_gpu,gpu_milli"
		 "[,gpu_spec],creation_time,deletion_time", &jobs_path},
		{"policy", OPT_STR, "binpack", "placement policy of the scheduler core", &pname},
		{"plugin-dir", OPT_STR, NULL, "load placement policy plugins (*.so) from here",
		 &plugdir},
		{"boot-time", OPT_STR, NULL, "how long a provisioned node takes to be usable "
		 "(default: its pool's boot_timeout)", &boot},
		{NULL, 0, NULL, NULL, NULL},
	};
	struct pctx c;
	struct prun runs[3];
	struct rnode *nodes = NULL;
	struct rjob *jobs = NULL;
	uint64_t peak, t_trace_end = 0;
	uint32_t cheapest = UINT32_MAX, open = 0;
	char err[512], d1[32], d2[32], d3[32];
	int nargs, rc;

	memset(&c, 0, sizeof(c));
	memset(runs, 0, sizeof(runs));
	rc = opt_parse(tab, argc, argv, &nargs, "mlbench replay",
		       "--pools FILE --nodes FILE --jobs FILE", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc != 0 || nargs != 0 || !pools_path || !nodes_path || !jobs_path) {
		fprintf(stderr, "mlbench replay --pools: %s\n",
			rc ? err : nargs ? "unexpected argument"
					 : "--pools, --nodes and --jobs are required");
		return EXIT_BAD;
	}
	rc = EXIT_BAD;
	if (plugdir && sched_policy_load_dir(plugdir, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlbench replay --pools: --plugin-dir: %s\n", err);
		goto out;
	}
	if (!(c.policy = sched_policy_find(pname))) {
		fprintf(stderr, "mlbench replay --pools: --policy: no policy \"%s\" in the "
			"scheduler core (one of:", pname);
		for (uint32_t i = 0; i < sched_policy_count(); i++)
			fprintf(stderr, " %s", sched_policy_at(i)->name);
		fprintf(stderr, ")\n");
		goto out;
	}
	if (boot) {
		if (units_parse_duration(boot, &c.boot_ms) != 0) {
			fprintf(stderr, "mlbench replay --pools: --boot-time: \"%s\" is not a "
				"duration (e.g. 90s, 2m)\n", boot);
			goto out;
		}
		c.boot_set = true;
	}
	if (pools_config(pools_path, &c.pools, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlbench replay --pools: %s\n", err);
		goto out;
	}
	if (load_nodes(nodes_path, &nodes, &c.nnodes) != 0 ||
	    load_jobs(jobs_path, &jobs, &c.njobs) != 0)
		goto out;
	qsort(jobs, c.njobs, sizeof(*jobs), cmp_create);
	/* Pods still running when the trace was taken have no deletion_time:
	 * they run to the trace's end (its latest time). */
	for (uint32_t j = 0; j < c.njobs; j++) {
		if (jobs[j].create > MAX_TIME_S ||
		    (jobs[j].delete != UINT64_MAX && jobs[j].delete > MAX_TIME_S)) {
			fprintf(stderr, "mlbench replay --pools: %s: the job in data row %" PRIu32
				": creation_time and deletion_time must be at most %" PRIu64 " s\n",
				jobs_path, jobs[j].order + 1, (uint64_t)MAX_TIME_S);
			goto out;
		}
		if (jobs[j].create > t_trace_end)
			t_trace_end = jobs[j].create;
		if (jobs[j].delete != UINT64_MAX && jobs[j].delete > t_trace_end)
			t_trace_end = jobs[j].delete;
		open += jobs[j].delete == UINT64_MAX;
	}
	if (open == c.njobs) {
		fprintf(stderr, "mlbench replay --pools: %s: no job has a deletion_time: --pools "
			"runs each job for deletion_time - creation_time\n", jobs_path);
		goto out;
	}
	for (uint32_t j = 0; j < c.njobs; j++)
		if (jobs[j].delete == UINT64_MAX)
			jobs[j].delete = t_trace_end;
	c.nodes = nodes;
	c.jobs = jobs;
	if (ctx_build(&c, pools_path, jobs_path) != 0)
		goto out;
	for (uint32_t i = 0; i < c.pools->n; i++) {
		const struct pool *p = &c.pools->v[i];

		if (p->provision && p->tmpl.ngpus &&
		    (cheapest == UINT32_MAX || p->cost_milli < c.pools->v[cheapest].cost_milli))
			cheapest = i;
	}
	if (cheapest == UINT32_MAX) {
		fprintf(stderr, "mlbench replay --pools: %s: no cloud pool's template has GPUs\n",
			pools_path);
		goto out;
	}
	peak = peak_demand(&c);

	units_format_duration(c.pools->burst_after_ms, d1, sizeof(d1));
	printf("mlbench replay --pools: %" PRIu32 " on-prem nodes (%" PRIu64 " GPUs, %s%s), %"
	       PRIu32 " jobs over %.2f h, policy %s, burst_after %s\n", c.nnodes,
	       c.onprem_milli / MILLI, c.onprem ? "pool " : "in no pool",
	       c.onprem ? c.onprem->name : "", c.njobs,
	       hours((double)(jobs[c.njobs - 1].create - jobs[0].create) * 1000.0), c.policy->name,
	       d1);
	for (uint32_t i = 0; i < c.pools->n; i++) {
		const struct pool *p = &c.pools->v[i];

		if (!p->provision)
			continue;
		units_format_duration(boot_ms(&c, p), d1, sizeof(d1));
		units_format_duration(p->idle_ms, d2, sizeof(d2));
		units_format_size(p->tmpl.mem_total, d3, sizeof(d3));
		printf("  cloud pool %s: template %s, %.1f CPUs, %s; min %u, max %u; %.3f per "
		       "GPU-hour; boot %s%s; idle %s\n", p->name, p->tmpl_gpus,
		       p->tmpl.cpu_total / 1000.0, d3, p->min, p->max, p->cost_milli / 1000.0, d1,
		       c.boot_set ? " (--boot-time)" : " (boot_timeout)", d2);
	}
	if (open)
		printf("  %" PRIu32 " job(s) without deletion_time run to the trace's end (%" PRIu64
		       " s)\n", open, t_trace_end);
	if (c.unrunnable)
		printf("  %" PRIu32 " job(s) ask a GPU model that no node or template has: "
		       "never run in any run\n", c.unrunnable);
	{
		const struct pool *p = &c.pools->v[cheapest];
		uint64_t per = (uint64_t)p->tmpl.ngpus * MILLI;

		runs[2].fixed_pool = p;
		runs[2].fixed = peak > c.onprem_milli
					? (uint32_t)((peak - c.onprem_milli + per - 1) / per) : 0;
		printf("  peak no-wait GPU demand %.1f GPUs: the peak-sized cluster is on-prem + "
		       "%u x %s (%s; not bounded by its max %u)\n", peak / 1000.0, runs[2].fixed,
		       p->name, p->tmpl_gpus, p->max);
	}
	runs[0].name = "on-prem only";
	runs[1].name = "bursting";
	runs[1].burst = true;
	runs[2].name = "sized for peak";
	rc = 1;
	for (int i = 0; i < 3; i++) {
		run_init(&runs[i], &c);
		if (run(&runs[i]) != 0)
			goto out;
	}
	print_runs(runs);
	rc = 0;
out:
	for (int i = 0; i < 3; i++)
		run_free(&runs[i]);
	ctx_free(&c);
	pools_free(c.pools);
	free(nodes);
	free(jobs);
	return rc;
}
