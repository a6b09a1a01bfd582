/*
 * quota.c - team queues in the queue pass (sched.h, TEAM QUEUES): the
 * quota gate, borrowing, reclaim decisions and the fair-share arithmetic.
 * Pure functions over struct sched_quota; sched_pass() (queue.c) calls
 * them.  Owns the quota field of struct sched.
 */
#include "sched_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* A queue's last refusal in this pass. */
struct gate_memo {
	uint64_t gen, need;
	bool valid;
	char why[SCHED_REASON_LEN];
};

void sched_quota_set(struct sched *s, struct sched_quota *q)
{
	s->quota = q;
}

uint64_t sched_req_gpus(const struct sched_req *req)
{
	uint64_t sum = 0;

	/* A gang of parts: req->res is unused, each part asks its own. */
	if (req->nparts == 0)
		return (uint64_t)req->ntasks * req->res.gpus_milli;
	for (uint32_t i = 0; i < req->nparts; i++)
		sum += (uint64_t)req->parts[i].ntasks * req->parts[i].res.gpus_milli;
	return sum;
}

static struct sched_queue *queue_at(const struct sched_quota *q, uint32_t queue)
{
	return q && queue > 0 && queue <= q->n ? &q->q[queue - 1] : NULL;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

uint64_t sched_quota_lendable(const struct sched_quota *q, uint32_t except)
{
	uint64_t sum = q ? q->pool : 0;

	for (uint32_t i = 0; q && i < q->n; i++) {
		if (i + 1 != except)
			sum += sub0(q->q[i].quota, q->q[i].used + q->q[i].want);
	}
	return sum;
}

/* Milli-GPUs borrowed by every queue but except (1-based). */
static uint64_t borrowed_by_others(const struct sched_quota *q, uint32_t except)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < q->n; i++) {
		if (i + 1 != except)
			sum += sub0(q->q[i].used, q->q[i].quota);
	}
	return sum;
}

int sched_quota_admit(const struct sched_quota *q, uint32_t queue, uint64_t need, char *why,
		      size_t len)
{
	const struct sched_queue *c = queue_at(q, queue);
	uint64_t beyond, lend, taken;

	if (!c)
		return 0;
	if (c->used + need <= c->quota)
		return 0;
	if (!c->borrow) {
		snprintf(why, len,
			 "queue %s is at its quota: %.3g of %.3g GPUs in use, this job needs %.3g "
			 "(borrow: false)",
			 c->name, c->used / 1000.0, c->quota / 1000.0, need / 1000.0);
		return ERR_NOFIT;
	}
	/* Everything borrowed, this job's excess included, must come out of
	 * what the other queues and the unassigned capacity can lend. */
	beyond = sub0(c->used + need, c->quota);
	lend = sched_quota_lendable(q, queue);
	taken = borrowed_by_others(q, queue);
	if (beyond + taken <= lend)
		return 1;
	snprintf(why, len,
		 "queue %s would go %.3g GPUs beyond its quota of %.3g; only %.3g idle GPUs of "
		 "other queues' quotas can be lent now",
		 c->name, beyond / 1000.0, c->quota / 1000.0, sub0(lend, taken) / 1000.0);
	return ERR_NOFIT;
}

bool sched_quota_reclaims(const struct sched_quota *q, uint32_t claimant, uint64_t need,
			  uint32_t victim)
{
	const struct sched_queue *c = queue_at(q, claimant), *v = queue_at(q, victim);

	return c && v && claimant != victim && c->used + need <= c->quota && v->used > v->quota;
}

void sched_quota_charge(struct sched_quota *q, uint32_t queue, uint64_t gpus)
{
	struct sched_queue *c = queue_at(q, queue);

	if (!c)
		return;
	q->gen++;
	/* A job that fitted within the quota was counted in want. */
	if (c->used + gpus <= c->quota)
		c->want = sub0(c->want, gpus);
	c->used += gpus;
}

void sched_quota_begin(struct sched *s, struct sched_job **pending, size_t npending)
{
	struct sched_quota *q = s->quota;

	q->gen++;
	for (uint32_t i = 0; i < q->n; i++)
		q->q[i].want = 0;
	s->gate = sched_grow32(s->gate, &s->gate_cap, q->n + 1, sizeof(*s->gate));
	memset(s->gate, 0, (q->n + 1) * sizeof(*s->gate));
	for (size_t i = 0; i < npending; i++) {
		struct sched_queue *c = queue_at(q, pending[i]->queue);
		uint64_t need = sched_req_gpus(&pending[i]->req);

		if (c && c->used + need <= c->quota)
			c->want += need;
	}
}

int sched_quota_gate(struct sched *s, const struct sched_job *j, char *why, size_t len)
{
	uint64_t need = sched_req_gpus(&j->req);
	struct gate_memo *g;
	int rv;

	if (!j->queue || j->queue > s->quota->n)
		return 0;
	g = &s->gate[j->queue];
	if (g->valid && g->gen == s->quota->gen && g->need == need) {
		snprintf(why, len, "%s", g->why);
		return ERR_NOFIT;
	}
	rv = sched_quota_admit(s->quota, j->queue, need, why, len);
	if (rv < 0) {
		g->valid = true;
		g->gen = s->quota->gen;
		g->need = need;
		snprintf(g->why, sizeof(g->why), "%s", why);
	}
	return rv;
}

double sched_share_advance(double usage, double rate, double dt_s, double half_life_s)
{
	double k, keep;

	if (dt_s <= 0)
		return usage;
	if (half_life_s <= 0)
		return usage + rate * dt_s / 3600.0;
	/* usage decays by 2^(-t/h); GPUs held at rate over dt add
	 * rate * integral_0^dt 2^(-(dt-u)/h) du = rate * (1 - keep) * h / ln 2. */
	k = M_LN2 / half_life_s;
	keep = exp(-k * dt_s);
	return usage * keep + rate * (1.0 - keep) / k / 3600.0;
}

double sched_share_value(double usage, double weight)
{
	return usage / (weight > 1e-9 ? weight : 1e-9);
}
