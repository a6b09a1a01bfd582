/*
 * queue.c - the queue pass (sched_pass): pending jobs in order, the one
 * reservation for the head-blocked job, backfill around it, and preemption
 * (victim search by dry runs on the journal).  Owns sched_pass,
 * sched_unreserve and sched_reserved_job, and the reservation and pass
 * scratch fields of struct sched.
 */
#include "sched_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREEMPT_TRIES 16 /* victim searches in one pass */

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

/* ---- the queue pass ---- */

/* The job holding the reservation, for status pages and tests. */
uint64_t sched_reserved_job(const struct sched *s)
{
	return s->resv_job;
}

void sched_resv_drop(struct sched *s, uint32_t id)
{
	for (uint32_t i = 0; i < s->nresv; i++) {
		if (s->resv[i] == id) {
			s->resv[i] = s->resv[--s->nresv];
			return;
		}
	}
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
	s->resv = sched_grow32(s->resv, &s->resv_cap, s->nresv + 1, sizeof(*s->resv));
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
			sched_resv_drop(s, id);
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
	if (x->job->share != y->job->share)
		return x->job->share < y->job->share ? -1 : 1;
	if (x->job->order != y->job->order)
		return x->job->order < y->job->order ? -1 : 1;
	if (x->job->req.job != y->job->req.job)
		return x->job->req.job < y->job->req.job ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Could req fit on an empty cluster (only schedulable, matching nodes)? */
static bool fits_empty1(const struct sched *s, const struct sched_req *req)
{
	uint64_t sum = 0;

	if (res_check(&req->res, NULL, 0) != 0)
		return false;
	for (uint32_t id = 0; id < s->nslots && sum < req->ntasks; id++) {
		const struct sched_node *n = s->nodes[id];

		if (n && node_ok(n, req, true))
			sum += sched_node_cap(n, &req->res, true, req->ntasks);
	}
	return sum >= req->ntasks;
}

/* Would req fit now if no node were reserved?  Only the buckets that can
 * hold a task are walked. */
static bool fits_unreserved1(const struct sched *s, const struct sched_req *req)
{
	uint32_t g = res_whole_gpus(&req->res), from = g;
	uint64_t sum = 0;

	if (res_is_share(&req->res)) {
		for (uint32_t i = 0; i < s->slen && sum < req->ntasks; i++) {
			if (node_ok(s->shared[i], req, true))
				sum += sched_node_cap(s->shared[i], &req->res, false, req->ntasks);
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
				sum += sched_node_cap(n, &req->res, false, req->ntasks);
		}
	}
	return sum >= req->ntasks;
}

/* The same tests for a gang of parts (sched.h, struct sched_req): each
 * part alone, a necessary condition only, since parts compete for nodes. */
static bool fits_empty(const struct sched *s, const struct sched_req *req)
{
	struct sched_req sub;

	if (req->nparts == 0)
		return fits_empty1(s, req);
	for (uint32_t i = 0; i < req->nparts; i++) {
		sched_req_part(req, i, &sub);
		if (!fits_empty1(s, &sub))
			return false;
	}
	return true;
}

static bool fits_unreserved(const struct sched *s, const struct sched_req *req)
{
	struct sched_req sub;

	if (req->nparts == 0)
		return fits_unreserved1(s, req);
	for (uint32_t i = 0; i < req->nparts; i++) {
		sched_req_part(req, i, &sub);
		if (!fits_unreserved1(s, &sub))
			return false;
	}
	return true;
}

/* Why a job that does not fit even without reservations waits.  For the
 * common case, a whole-GPU task no node has room for, the answer comes from
 * the first matching node in the highest bucket; otherwise (and for a job
 * with a cost cap, whose reason names the nodes the cap leaves out) a full
 * walk. */
static void blocked_reason(const struct sched *s, const struct sched_req *req, char *buf,
			   size_t len)
{
	if (req->nparts) {
		/* explain.c names the role that does not fit. */
		sched_explain_full(s, req, false, false, buf, len);
		return;
	}

	uint32_t g = res_whole_gpus(&req->res);

	if (g > 0 && !req->res.gpu_mem && !req->max_cost_milli) {
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
	sched_explain_full(s, req, false, false, buf, len);
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

/* The queue a job could reclaim GPUs for (quota.c), 0 when it could not:
 * jobs of different queues that cannot reclaim get the same answers. */
static uint32_t reclaim_key(const struct sched *s, const struct sched_job *j)
{
	const struct sched_queue *c;

	if (!s->quota || !j->may_preempt || !j->queue || j->queue > s->quota->n)
		return 0;
	c = &s->quota->q[j->queue - 1];
	return c->used + sched_req_gpus(&j->req) <= c->quota ? j->queue : 0;
}

/* Two jobs that would get the same answer: same shape, constraints, model,
 * cost cap, and (because preemption depends on it) priority, may_preempt and
 * the queue they could reclaim for. */
static bool same_shape(const struct sched *s, const struct sched_job *a,
		       const struct sched_job *b)
{
	const struct sched_req *x = &a->req, *y = &b->req;
	const char *mx = x->gpu_model ? x->gpu_model : "", *my = y->gpu_model ? y->gpu_model : "";

	if (x->nparts || y->nparts || a->best_effort != b->best_effort)
		return false; /* gangs of parts are not compared */
	return x->ntasks == y->ntasks && x->res.gpus_milli == y->res.gpus_milli &&
	       x->res.gpu_mem == y->res.gpu_mem && x->res.mem == y->res.mem &&
	       x->res.cpu_milli == y->res.cpu_milli && x->priority == y->priority &&
	       a->may_preempt == b->may_preempt && x->max_cost_milli == y->max_cost_milli &&
	       strcmp(mx, my) == 0 && same_cons(x, y) &&
	       (!s->quota || reclaim_key(s, a) == reclaim_key(s, b));
}

static const char *memo_find(const struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < s->nmemo; i++) {
		if (same_shape(s, s->memo[i].job, j))
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
	s->cand = sched_grow(s->cand, &s->cand_cap, nrunning + 1, sizeof(*s->cand));
	for (size_t i = 0; i < nrunning; i++) {
		struct sched_job *r = running[i];

		if (!r->held || r->nheld == 0)
			continue;
		s->cand[nc].idx = i;
		s->cand[nc].job = r;
		s->cand[nc].gpus = 0;
		for (uint32_t k = 0; k < r->nheld; k++)
			s->cand[nc].gpus += r->held_res ? r->held_res[k].gpus_milli
							: r->req.res.gpus_milli;
		s->cand[nc].state = 0;
		nc++;
	}
	qsort(s->cand, nc, sizeof(*s->cand), cand_cmp);
	s->ncand = nc;
	s->cand_ready = true;
}

/* Journaled release and retake of a running job, for victim searches. */
static void job_give(struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < j->nheld; i++) {
		struct sched_node *n = sched_node_get(s, j->held[i].node);

		if (n)
			sched_journal(s, n, j->held_res ? &j->held_res[i] : &j->req.res,
				      &j->held[i], false);
	}
}

static void job_retake(struct sched *s, const struct sched_job *j)
{
	for (uint32_t i = 0; i < j->nheld; i++) {
		struct sched_node *n = sched_node_get(s, j->held[i].node);

		if (n)
			sched_journal(s, n, j->held_res ? &j->held_res[i] : &j->req.res,
				      &j->held[i], true);
	}
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
	s->elig = sched_grow(s->elig, &s->elig_cap, s->ncand + 1, sizeof(*s->elig));
	for (size_t i = 0; i < s->ncand; i++) {
		if (s->cand[i].job->req.priority >= j->req.priority &&
		    !sched_quota_reclaims(s->quota, j->queue, sched_req_gpus(&j->req),
					  s->cand[i].job->queue)) {
			if (!s->quota)
				break; /* sorted by priority: the rest are not lower */
			continue;
		}
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
		if (sched_place_journaled(s, &j->req, s->dry, false) == 0) {
			ok = true;
			break;
		}
		if (p == ne)
			break;
		step *= 2;
	}
	if (!ok) {
		sched_rollback(s, mark);
		return 0;
	}
	/* Prefix lo does not fit, hi does. */
	for (lo = q, hi = p; hi - lo > 1;) {
		size_t mid = lo + (hi - lo) / 2;

		sched_rollback(s, markq);
		give_range(s, q, mid);
		if (sched_place_journaled(s, &j->req, s->dry, false) == 0)
			hi = mid;
		else
			lo = mid;
	}
	sched_rollback(s, markq);
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
		if (sched_place_journaled(s, &j->req, s->dry, false) == 0) {
			s->elig[pick].state = 1;
		} else {
			job_give(s, s->elig[pick].job);
			s->elig[pick].state = 2;
		}
	}
	/* The final dry run tells which nodes to reserve. */
	if (sched_place_journaled(s, &j->req, s->dry, false) != 0)
		hi = 0; /* cannot happen: see above */
	sched_rollback(s, mark);

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
static void reserve_greedy1(struct sched *s, const struct sched_req *req)
{
	size_t nr = 0;
	uint64_t sum = 0;

	s->rank = sched_grow(s->rank, &s->rank_cap, s->nnodes + 1, sizeof(*s->rank));
	for (uint32_t id = 0; id < s->nslots; id++) {
		struct sched_node *n = s->nodes[id];
		uint32_t e;
		bool partial;

		if (!n || !node_ok(n, req, true))
			continue;
		if ((e = sched_node_cap(n, &req->res, true, req->ntasks)) == 0)
			continue;
		s->rank[nr].n = n;
		s->rank[nr].ecap = e;
		s->rank[nr].now = sched_node_cap(n, &req->res, false, req->ntasks);
		s->rank[nr].whole = sched_node_free_whole(n, &partial);
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

/* A gang of parts reserves, for each part, the nodes that one would. */
static void reserve_greedy(struct sched *s, const struct sched_req *req)
{
	struct sched_req sub;

	if (req->nparts == 0) {
		reserve_greedy1(s, req);
		return;
	}
	for (uint32_t i = 0; i < req->nparts; i++) {
		sched_req_part(req, i, &sub);
		reserve_greedy1(s, &sub);
	}
}

/* Re-mark j's reservation from the last pass if its nodes still could hold
 * all its tasks once emptied (a gang of parts: each part). */
static bool reserve_keep1(struct sched *s, const struct sched_req *req, size_t nold, bool mark);

static bool reserve_keep(struct sched *s, const struct sched_req *req, size_t nold)
{
	struct sched_req sub;

	if (req->nparts == 0)
		return reserve_keep1(s, req, nold, true);
	for (uint32_t i = 0; i < req->nparts; i++) {
		sched_req_part(req, i, &sub);
		if (!reserve_keep1(s, &sub, nold, false))
			return false;
	}
	for (uint32_t i = 0; i < req->nparts; i++) {
		sched_req_part(req, i, &sub);
		reserve_keep1(s, &sub, nold, true);
	}
	return true;
}

static bool reserve_keep1(struct sched *s, const struct sched_req *req, size_t nold, bool mark)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < nold; i++) {
		struct sched_node *n = sched_node_get(s, s->old[i]);

		if (n && node_ok(n, req, true))
			sum += sched_node_cap(n, &req->res, true, req->ntasks);
	}
	if (nold == 0 || sum < req->ntasks)
		return false;
	for (size_t i = 0; mark && i < nold; i++) {
		struct sched_node *n = sched_node_get(s, s->old[i]);

		if (n && node_ok(n, req, true) &&
		    sched_node_cap(n, &req->res, true, req->ntasks) > 0)
			resv_mark(s, n, req->job);
	}
	return true;
}

/* Emit the victims in s->elig[0..nv) and append "(ids)" to reason. */
static void emit_victims(struct sched *s, struct sched_job *j, uint32_t nv, sched_emit_fn emit,
			 void *arg, char *reason, size_t len)
{
	const struct sched_queue *own = s->quota && j->queue ? &s->quota->q[j->queue - 1] : NULL;
	struct sched_action a;
	size_t at;

	snprintf(reason, len, "preempting %" PRIu32 " %s job%s (", nv,
		 own ? "lower-priority or borrowing" : "lower-priority", nv > 1 ? "s" : "");
	for (uint32_t i = 0; i < nv; i++) {
		struct sched_job *v = s->elig[i].job;
		bool reclaim = v->req.priority >= j->req.priority;

		s->victim[s->elig[i].idx] = true;
		s->vids = sched_grow(s->vids, &s->vids_cap, s->nvids + 1, sizeof(*s->vids));
		s->vids[s->nvids++] = v->req.job;
		memset(&a, 0, sizeof(a));
		a.type = SCHED_PREEMPT;
		a.job = v;
		a.for_job = j;
		if (reclaim && own && v->queue)
			snprintf(a.reason, sizeof(a.reason),
				 "preempted by job %" PRIu64 ": queue %s takes back GPUs of its "
				 "quota (%.3g) that queue %s borrowed",
				 j->req.job, own->name, own->quota / 1000.0,
				 s->quota->q[v->queue - 1].name);
		else
			snprintf(a.reason, sizeof(a.reason),
				 "preempted by job %" PRIu64 " (priority %" PRId32 ")", j->req.job,
				 j->req.priority);
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
	s->old = sched_grow(s->old, &s->old_cap, s->nresv + 1, sizeof(*s->old));
	for (uint32_t i = 0; i < s->nresv; i++) {
		struct sched_node *n = sched_node_get(s, s->resv[i]);

		if (n && n->reserved_for == old_job)
			s->old[nold++] = s->resv[i];
	}
	resv_clear(s);

	s->ord = sched_grow(s->ord, &s->ord_cap, npending + 1, sizeof(*s->ord));
	for (size_t i = 0; i < npending; i++) {
		s->ord[i].job = pending[i];
		s->ord[i].idx = i;
	}
	qsort(s->ord, npending, sizeof(*s->ord), ord_cmp);
	s->victim = sched_grow(s->victim, &s->victim_cap, nrunning + 1, sizeof(*s->victim));
	memset(s->victim, 0, (nrunning + 1) * sizeof(*s->victim));
	s->nvids = 0;
	s->nmemo = s->memo_next = 0;
	s->cand_ready = false;
	if (s->quota)
		sched_quota_begin(s, pending, npending);

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
		if (s->quota && j->queue && sched_quota_gate(s, j, reason, sizeof(reason)) < 0) {
			emit_wait(emit, arg, j, reason);
			continue;
		}
		if ((m = memo_find(s, j)) != NULL) {
			emit_wait(emit, arg, j, m);
			continue;
		}
		s->slots =
		    sched_grow32(s->slots, &s->slots_cap, req->ntasks + 1, sizeof(*s->slots));
		s->dry = sched_grow32(s->dry, &s->dry_cap, req->ntasks + 1, sizeof(*s->dry));
		if (sched_req_check(req) == 0 &&
		    sched_place_journaled(s, req, s->slots, true) == 0) {
			sched_mix_learn(s, req);
			if (s->quota)
				sched_quota_charge(s->quota, j->queue, sched_req_gpus(req));
			memset(&a, 0, sizeof(a));
			a.type = SCHED_PLACED;
			a.job = j;
			a.slots = s->slots;
			emit(arg, &a);
			placed++;
			continue;
		}
		if (j->best_effort) {
			/* Never the reservation, never a preemption. */
			sched_explain_full(s, req, false, true, more, sizeof(more));
			emit_wait(emit, arg, j, more);
			memo_add(s, j, more);
			continue;
		}
		if (!fits_empty(s, req)) {
			sched_explain_full(s, req, true, false, more, sizeof(more));
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
