/*
 * queues.c - team queues in the master (see queues.h): submissions, usage
 * accounting and persistence, the queue pass's view, mlctl queues.  The
 * file itself is read by queues_conf.c.
 */
#include "queues.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "units.h"
#include "util.h"
#include "wire.h"

#define TICK_EVERY_MS 1000

/* ---- jobs ---- */

int queues_submit(struct master *m, struct spec *spec, char *why, size_t len)
{
	char names[512];

	if (!m->queues) {
		if (spec->queue) {
			snprintf(why, len,
				 "spec: queue: \"%s\": this master has no queues (mlmaster "
				 "--queues FILE defines them)",
				 spec->queue);
			return ERR_INVAL;
		}
		return 0;
	}
	queues_names(m->queues, names, sizeof(names));
	if (!spec->queue) {
		if (queues_find(m->queues, "default")) {
			spec->queue = xstrdup("default");
			return 0;
		}
		snprintf(why, len, "spec: queue: required on this cluster (queues: %s)", names);
		return ERR_INVAL;
	}
	if (!queues_find(m->queues, spec->queue)) {
		snprintf(why, len, "spec: queue: unknown queue \"%s\" (queues: %s)", spec->queue,
			 names);
		return ERR_INVAL;
	}
	return 0;
}

static bool task_live(enum task_state st)
{
	return st == TASK_ASSIGNED || st == TASK_STARTING || st == TASK_RUNNING;
}

/* Each queue's milli-GPUs in use and its pending and running jobs, from
 * the live jobs. */
static void count_use(struct master *m)
{
	struct queues *qs = m->queues;

	for (uint32_t i = 0; i < qs->n; i++) {
		qs->q[i].used = 0;
		qs->q[i].pending = qs->q[i].running = 0;
	}
	for (size_t i = 0; i < m->nlive; i++) {
		struct job *j = m->live[i];
		uint32_t qi = queues_find(qs, j->spec->queue), nl = 0;
		if (!qi)
			continue;
		/* Per task: the roles of a gang ask different amounts. */
		for (uint32_t k = 0; k < j->ntasks; k++)
			if (task_live(j->tasks[k].state)) {
				nl++;
				qs->q[qi - 1].used += task_res(j, &j->tasks[k])->gpus_milli;
			}
		if (j->state == JOB_PENDING)
			qs->q[qi - 1].pending++;
		else if (nl > 0)
			qs->q[qi - 1].running++;
	}
}

/* q's usage advanced to now (wall ms) at the rate of the last tick. */
static double usage_at(const struct queues *qs, const struct mqueue *q, uint64_t now)
{
	double dt;

	if (!q->usage_at || now <= q->usage_at)
		return q->usage;
	dt = (double)(now - q->usage_at) / 1000.0;
	return sched_share_advance(q->usage, q->rate, dt, qs->half_life_ms / 1000.0);
}

/*
 * Once a second: fold the last interval into each queue's usage at the
 * GPUs it held then (rate), and take the GPUs it holds now as the next
 * rate.  A queue's record is written when its usage grew or its rate
 * changed, so the stored (usage, at) pair is exact: a queue idle since `at'
 * only decays.  The first tick after a (re)load takes the rate before
 * folding, so the GPUs that tasks held while no master ran are counted.
 */
void queues_tick(struct master *m)
{
	struct queues *qs = m->queues;
	uint64_t mono = now_ms(), now = wall_ms();

	if (!qs || mono < qs->next_tick)
		return;
	qs->next_tick = mono + TICK_EVERY_MS;
	if (!qs->primed) {
		count_use(m);
		for (uint32_t i = 0; i < qs->n; i++)
			qs->q[i].rate = qs->q[i].used / 1000.0;
		qs->primed = true;
	}
	for (uint32_t i = 0; i < qs->n; i++) {
		struct mqueue *q = &qs->q[i];
		q->usage = usage_at(qs, q, now);
		q->dirty |= q->rate > 0 || !q->usage_at;
		q->usage_at = now;
	}
	count_use(m);
	for (uint32_t i = 0; i < qs->n; i++) {
		struct mqueue *q = &qs->q[i];
		double r = q->used / 1000.0;
		q->dirty |= r != q->rate;
		q->rate = r;
	}
}

int queues_state_load(struct master *m)
{
	struct queues *qs = m->queues;
	char key[STORE_KEY_MAX];

	if (qs)
		qs->primed = false;
	for (uint32_t i = 0; qs && i < qs->n; i++) {
		struct mqueue *q = &qs->q[i];
		void *val;
		size_t len;
		cJSON *o;
		int rv;

		q->usage = 0;
		q->usage_at = 0;
		q->rate = 0;
		q->dirty = false;
		snprintf(key, sizeof(key), "queues/%s", q->name);
		if ((rv = store_get(m->store, key, &val, &len)) == ERR_NOENT)
			continue;
		if (rv != 0)
			return rv;
		o = cJSON_ParseWithLength(val, len);
		free(val);
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "usage");
		uint64_t at;
		if (!cJSON_IsNumber(u) || !isfinite(u->valuedouble) || u->valuedouble < 0 ||
		    wire_get_u64(o, "at", UINT64_MAX >> 11, &at) != 0) {
			log_warn("queue=%s stored usage record is malformed: starting from 0",
				 q->name);
			cJSON_Delete(o);
			continue;
		}
		q->usage = u->valuedouble;
		q->usage_at = at;
		cJSON_Delete(o);
	}
	return 0;
}

bool queues_dirty(const struct master *m)
{
	for (uint32_t i = 0; m->queues && i < m->queues->n; i++) {
		if (m->queues->q[i].dirty)
			return true;
	}
	return false;
}

int queues_flush(struct master *m)
{
	char key[STORE_KEY_MAX], val[128];
	int rv;

	for (uint32_t i = 0; m->queues && i < m->queues->n; i++) {
		struct mqueue *q = &m->queues->q[i];
		if (!q->dirty)
			continue;
		snprintf(key, sizeof(key), "queues/%s", q->name);
		snprintf(val, sizeof(val), "{\"usage\":%.17g,\"at\":%" PRIu64 "}", q->usage,
			 q->usage_at);
		if ((rv = store_put(m->store, key, val, strlen(val))) != 0)
			return rv;
	}
	/* Marked clean here, before the caller's commit: a failed commit
	 * reloads the committed state (sqlite, leader_store_failed) or drops
	 * leadership (etcd), and either way the usage is read again. */
	for (uint32_t i = 0; m->queues && i < m->queues->n; i++)
		m->queues->q[i].dirty = false;
	return 0;
}

/* ---- the queue pass ---- */

struct sched_quota *queues_prepare(struct master *m)
{
	struct queues *qs = m->queues;
	uint64_t total = 0, quotas = 0, now = wall_ms();

	if (!qs)
		return NULL;
	count_use(m);
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		if (n->sn && n->sn->schedulable)
			total += (uint64_t)n->sn->res.ngpus * 1000;
	}
	for (uint32_t i = 0; i < qs->n; i++) {
		struct sched_queue *s = &qs->sq[i];
		s->name = qs->q[i].name;
		s->quota = (uint64_t)qs->q[i].gpus * 1000;
		s->borrow = qs->q[i].borrow;
		s->used = qs->q[i].used;
		s->want = 0;
		qs->q[i].share = sched_share_value(usage_at(qs, &qs->q[i], now), qs->q[i].weight);
		quotas += s->quota;
	}
	qs->quota.q = qs->sq;
	qs->quota.n = qs->n;
	qs->quota.pool = total > quotas ? total - quotas : 0;
	return &qs->quota;
}

bool queues_job(struct master *m, const struct job *j, uint32_t *queue, double *share, char *why,
		size_t len)
{
	struct queues *qs = m->queues;
	uint32_t qi;
	char names[512];

	*queue = 0;
	*share = 0;
	if (!qs || !j->spec->queue)
		return true; /* from before --queues: outside the quotas */
	if (!(qi = queues_find(qs, j->spec->queue))) {
		queues_names(qs, names, sizeof(names));
		snprintf(why, len, "queue %s is not in the queues file any more (queues: %.180s)",
			 j->spec->queue, names);
		return false;
	}
	*queue = qi;
	*share = qs->q[qi - 1].share;
	return true;
}

/* ---- mlctl queues ---- */

void queues_api(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct queues *qs = m->queues;
	cJSON *r = cJSON_CreateObject(), *arr;
	uint64_t now = wall_ms();

	(void)body;
	cJSON_AddBoolToObject(r, "configured", qs != NULL);
	arr = cJSON_AddArrayToObject(r, "queues");
	if (!qs) {
		out_reply(m, m->ctl, peer, WIRE_OK, r);
		return;
	}
	cJSON_AddNumberToObject(r, "half_life_ms", (double)qs->half_life_ms);
	count_use(m);
	for (uint32_t i = 0; i < qs->n; i++) {
		const struct mqueue *q = &qs->q[i];
		uint64_t quota = (uint64_t)q->gpus * 1000;
		double u = usage_at(qs, q, now);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", q->name);
		cJSON_AddNumberToObject(o, "gpus", q->gpus);
		cJSON_AddNumberToObject(o, "weight", q->weight);
		cJSON_AddBoolToObject(o, "borrow", q->borrow);
		cJSON_AddNumberToObject(o, "gpus_in_use", q->used / 1000.0);
		cJSON_AddNumberToObject(o, "borrowed", q->used > quota ? (q->used - quota) / 1000.0 : 0);
		cJSON_AddNumberToObject(o, "pending", q->pending);
		cJSON_AddNumberToObject(o, "running", q->running);
		cJSON_AddNumberToObject(o, "gpu_hours", u);
		cJSON_AddNumberToObject(o, "fair_share", sched_share_value(u, q->weight));
		cJSON_AddItemToArray(arr, o);
	}
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}
