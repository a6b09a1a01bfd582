/*
 * sched.c - the queue pass of the master (see sched.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "bounds.h"
#include "pools.h"
#include "sched.h"
#include "util.h"

const struct sched_policy *sched_job_policy(struct master *m, const struct spec *s)
{
	const char *name = s->policy;

	if (!name)
		name = m->cfg.sched_policy;
	/* Serving replicas spread over fault domains; tasks that share a GPU
	 * go where they fragment the cards least (fgd: on the Alibaba GPU
	 * sharing trace it allocates 94.4% of GPUs against binpack's 92.5%,
	 * BENCHMARKS.md); whole-GPU work packs. */
	if (!name)
		name = s->kind == SPEC_SERVE			      ? "spread"
		       : s->res.gpus_milli > 0 && s->res.gpus_milli < 1000 ? "fgd"
									      : "binpack";
	return sched_policy_find(name);
}

_Static_assert(BOUNDS_LABELS_MAX == SCHED_MAX_LABELS && BOUNDS_LABEL_KEY_MAX < SCHED_LABEL_LEN &&
		       BOUNDS_LABEL_VALUE_MAX < SCHED_LABEL_LEN,
	       "labels the master accepts must fit the scheduler (common/bounds.h)");

static uint32_t labels_of(const cJSON *obj, struct sched_label *out)
{
	const cJSON *l;
	uint32_t n = 0;

	cJSON_ArrayForEach(l, obj)
	{
		if (n >= SCHED_MAX_LABELS || !cJSON_IsString(l))
			continue;
		strlcpy_ok(out[n].key, l->string, sizeof(out[n].key));
		strlcpy_ok(out[n].val, l->valuestring, sizeof(out[n].val));
		n++;
	}
	return n;
}

static bool live(enum task_state st)
{
	return st == TASK_ASSIGNED || st == TASK_STARTING || st == TASK_RUNNING;
}

static void slot_of(const struct node *n, const struct task *t, struct sched_slot *sl)
{
	sl->node = n->sn->id;
	sl->ngpus = t->ngpus;
	memcpy(sl->gpu_pos, t->gpu_pos, t->ngpus * sizeof(*t->gpu_pos));
}

void sched_node_state(struct master *m, struct node *n)
{
	if (n->sn)
		sched_node_set(m->core, n->sn,
			       n->state == NODE_READY && n->confirmed && !n->drained &&
				       !n->gpu_error[0]);
	m->sched_dirty = true;
}

/*
 * (Re)create the core's node when its capacity changed, and take again
 * what the tasks placed there hold.  A task that no longer fits (the node
 * came back smaller) is lost.
 */
void sched_sync_node(struct master *m, struct node *n)
{
	struct sched_label labels[SCHED_MAX_LABELS];
	uint32_t nl = labels_of(n->labels, labels);
	struct res_node cap = n->cap;

	if (n->sn) {
		bool same = n->sn->res.ngpus == cap.ngpus && n->sn->res.mem_total == cap.mem_total &&
			    n->sn->res.cpu_total == cap.cpu_total;
		for (uint32_t i = 0; same && i < cap.ngpus; i++)
			same = n->sn->res.gpus[i].index == cap.gpus[i].index &&
			       n->sn->res.gpus[i].mem == cap.gpus[i].mem &&
			       strcmp(n->sn->res.gpus[i].model, cap.gpus[i].model) == 0;
		if (same) {
			sched_node_labels(m->core, n->sn, labels, nl);
			sched_node_cost(m->core, n->sn, pools_node_cost(m, n));
			sched_node_state(m, n);
			return;
		}
		struct sched_node *old = n->sn;
		/* Unmap first: removing frees the core's node. */
		node_set_sched(m, n, NULL);
		sched_node_remove(m->core, old);
	}
	for (uint32_t i = 0; i < cap.ngpus; i++)
		cap.gpus[i].used_milli = 0;
	cap.mem_used = 0;
	cap.cpu_used = 0;
	node_set_sched(m, n, sched_node_add(m->core, n->name, &cap, labels, nl));
	sched_node_cost(m->core, n->sn, pools_node_cost(m, n));
	sched_node_state(m, n);
	/* Its live tasks take their share again (a copy: a task that no
	 * longer fits leaves the list). */
	uint32_t nt;
	struct node_task *ts = node_tasks_copy(n, &nt);
	for (uint32_t i = 0; i < nt; i++) {
		struct job *j = ts[i].j;
		struct task *t = &j->tasks[ts[i].idx];
		struct sched_slot sl;
		if (!live(t->state) || strcmp(t->node, n->name) != 0)
			continue;
		slot_of(n, t, &sl);
		if (sched_take(m->core, task_res(j, t), &sl, 1) != 0) {
			snprintf(t->reason, sizeof(t->reason), "node %s no longer has room for it",
				 n->name);
			node_task_del(m, j, t);
			t->state = TASK_LOST;
			t->finished = wall_ms();
			job_dirty(m, j);
			job_update(m, j);
		}
	}
	free(ts);
}

void sched_task_release(struct master *m, struct job *j, struct task *t)
{
	struct node *n = node_find(m, t->node);
	struct sched_slot sl;

	if (!n || !n->sn)
		return;
	slot_of(n, t, &sl);
	sched_release(m->core, task_res(j, t), &sl, 1);
	m->sched_dirty = true;
}

/* ---- one pass ---- */

/* What a core request stands for: some tasks of one job. */
struct want {
	struct sched_job sj;
	struct job *j;
	uint32_t *tasks; /* indices into j->tasks, sj.req.ntasks of them */
	uint32_t *avoid;
	struct sched_cons *cons; /* only for jobs with constraints (a pass builds
				  * one want per live job: keep them small) */
	struct sched_slot *held;
	struct res *held_res;     /* role jobs: what each held slot takes */
	struct sched_part *parts; /* role jobs: one part per role placed */
	bool waited;     /* got a SCHED_WAIT already */
	char no_queue[160]; /* why its queue is unknown (sj.queue UINT32_MAX) */
};

struct pass {
	struct master *m;
	struct want *wants;
	size_t nwants, cap;
};

static struct want *want_new(struct pass *p, struct job *j)
{
	struct want *w;

	if (p->nwants == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->wants = xrealloc(p->wants, p->cap * sizeof(*p->wants));
	}
	w = &p->wants[p->nwants++];
	memset(w, 0, sizeof(*w));
	w->j = j;
	w->sj.order = j->id;
	w->sj.req.job = j->id;
	w->sj.req.priority = j->spec->priority;
	w->sj.req.res = j->spec->res;
	w->sj.req.gpu_model = j->spec->gpu_model;
	w->sj.req.policy = sched_job_policy(p->m, j->spec);
	w->sj.req.max_cost_milli = j->spec->max_cost_milli;
	w->sj.may_preempt = j->victims == 0;
	if (p->m->queues && !queues_job(p->m, j, &w->sj.queue, &w->sj.share, w->no_queue,
					sizeof(w->no_queue)))
		w->sj.queue = UINT32_MAX; /* names a queue the file lacks: waits */
	return w;
}

/* Constraints were checked at submission; a bad one here is skipped. */
static void want_cons(struct want *w)
{
	const struct spec *s = w->j->spec;
	char why[128];

	if (s->nconstraints)
		w->cons = xcalloc(s->nconstraints < SCHED_MAX_CONS ? s->nconstraints : SCHED_MAX_CONS,
				  sizeof(*w->cons));
	for (size_t i = 0; i < s->nconstraints && w->sj.req.ncons < SCHED_MAX_CONS; i++)
		if (sched_cons_parse(s->constraints[i], &w->cons[w->sj.req.ncons], why,
				     sizeof(why)) == 0)
			w->sj.req.ncons++;
	w->sj.req.cons = w->cons;
}

/* Nodes that run live tasks of j (for spread). */
static void want_avoid(struct pass *p, struct want *w)
{
	struct job *j = w->j;
	uint32_t n = 0;

	w->avoid = xcalloc(j->ntasks, sizeof(*w->avoid));
	for (uint32_t k = 0; k < j->ntasks; k++) {
		struct node *nd;
		if (live(j->tasks[k].state) && (nd = node_find(p->m, j->tasks[k].node)) && nd->sn)
			w->avoid[n++] = nd->sn->id;
	}
	w->sj.req.avoid = w->avoid;
	w->sj.req.navoid = n;
}

/*
 * A role job's pending work (roles:, spec.h).  The required roles are one
 * gang, placed all or nothing as one request with a part per role, once
 * nothing of the job runs any more (a gang restarts whole).  An optional
 * role's task is a best-effort request of its own (one part, so that its
 * reason names the role), only while every required task is placed and
 * nothing is being stopped: its TF_CONFIG names the gang's addresses.
 * Returns the requests added.
 */
static size_t collect_roles(struct pass *p, struct job *j, uint32_t nlive, uint32_t stopping)
{
	const struct spec *s = j->spec;
	uint32_t none_req = 0, placed_req = 0, nreq = 0;
	size_t added = 0;

	for (uint32_t k = 0; k < j->ntasks; k++) {
		struct task *t = &j->tasks[k];
		if (task_optional(j, t))
			continue;
		nreq++;
		none_req += t->state == TASK_NONE;
		placed_req += live(t->state);
	}
	if (none_req > 0) {
		if (nlive > 0)
			return 0; /* wait for the rest to stop */
		struct want *w = want_new(p, j);
		uint32_t first = 0;
		w->tasks = xcalloc(none_req, sizeof(*w->tasks));
		w->parts = xcalloc(s->nroles, sizeof(*w->parts));
		for (size_t r = 0; r < s->nroles; r++) {
			const struct spec_role *ro = &s->roles[r];
			struct sched_part *pt = &w->parts[w->sj.req.nparts];
			for (uint32_t i = 0; i < ro->count && !ro->optional; i++) {
				if (j->tasks[first + i].state != TASK_NONE)
					continue;
				w->tasks[w->sj.req.ntasks++] = first + i;
				pt->ntasks++;
			}
			first += ro->count;
			if (pt->ntasks == 0)
				continue;
			pt->name = ro->name;
			pt->res = ro->res;
			pt->gpu_model = ro->gpu_model;
			w->sj.req.nparts++;
		}
		w->sj.req.parts = w->parts;
		want_cons(w);
		want_avoid(p, w);
		return 1;
	}
	if (placed_req < nreq || stopping > 0)
		return 0;
	for (uint32_t k = 0; k < j->ntasks; k++) {
		struct task *t = &j->tasks[k];
		const struct spec_role *ro;
		if (t->state != TASK_NONE || !task_optional(j, t))
			continue;
		ro = spec_task_role(s, k, NULL);
		struct want *w = want_new(p, j);
		w->tasks = xcalloc(1, sizeof(*w->tasks));
		w->tasks[0] = k;
		w->sj.req.ntasks = 1;
		w->parts = xcalloc(1, sizeof(*w->parts));
		w->parts[0] = (struct sched_part){ro->name, 1, ro->res, ro->gpu_model};
		w->sj.req.parts = w->parts;
		w->sj.req.nparts = 1;
		w->sj.best_effort = true;
		w->sj.may_preempt = false;
		want_cons(w);
		added++;
	}
	return added;
}

/* Turn unfinished jobs into core requests (pending work) and holdings
 * (running work, the preemption candidates); counts go to *np and *nr. */
static void collect(struct pass *p, size_t *np, size_t *nr)
{
	struct master *m = p->m;

	*np = *nr = 0;
	for (size_t i = 0; i < m->nlive; i++) {
		struct job *j = m->live[i];
		uint32_t none = 0, nlive = 0, stopping = 0;
		if (j->cancel)
			continue;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			if (j->tasks[k].state == TASK_NONE)
				none++;
			else if (live(j->tasks[k].state))
				nlive++;
			if (live(j->tasks[k].state) && j->tasks[k].stop_sent)
				stopping++;
		}
		/* Running work is a preemption candidate (as a whole job),
		 * unless it is already being stopped (preempted, evicted,
		 * failing): its resources are coming back anyway. */
		if (nlive > 0 && !j->preempted_by && stopping == 0) {
			struct want *w = want_new(p, j);
			uint32_t h = 0;
			w->held = xcalloc(nlive, sizeof(*w->held));
			for (uint32_t k = 0; k < j->ntasks; k++) {
				struct task *t = &j->tasks[k];
				struct node *nd;
				if (!live(t->state) || !(nd = node_find(m, t->node)) || !nd->sn)
					continue;
				if (j->spec->roles) {
					if (!w->held_res)
						w->held_res = xcalloc(nlive, sizeof(*w->held_res));
					w->held_res[h] = *task_res(j, t);
				}
				slot_of(nd, t, &w->held[h++]);
			}
			w->sj.held = w->held;
			w->sj.held_res = w->held_res;
			w->sj.nheld = h;
			w->sj.req.ntasks = 0; /* marks a running entry */
			(*nr)++;
		}
		if (none == 0 || j->preempted_by)
			continue;
		if (j->spec->roles) {
			*np += collect_roles(p, j, nlive, stopping);
			continue;
		}
		if (j->spec->kind == SPEC_TRAIN && nlive > 0)
			continue; /* a gang restarts whole: wait for the rest to stop */
		if (j->spec->kind == SPEC_BATCH) {
			uint32_t room = j->spec->parallelism > nlive ? j->spec->parallelism - nlive : 0;
			for (uint32_t k = 0; k < j->ntasks && room > 0; k++) {
				if (j->tasks[k].state != TASK_NONE)
					continue;
				struct want *w = want_new(p, j);
				w->tasks = xcalloc(1, sizeof(*w->tasks));
				w->tasks[0] = k;
				w->sj.req.ntasks = 1;
				want_cons(w);
				room--;
				(*np)++;
			}
			continue;
		}
		struct want *w = want_new(p, j);
		w->tasks = xcalloc(none, sizeof(*w->tasks));
		for (uint32_t k = 0; k < j->ntasks; k++)
			if (j->tasks[k].state == TASK_NONE)
				w->tasks[w->sj.req.ntasks++] = k;
		want_cons(w);
		want_avoid(p, w);
		(*np)++;
	}
}


static void on_placed(struct master *m, struct want *w, const struct sched_slot *slots)
{
	struct job *j = w->j;

	for (uint32_t i = 0; i < w->sj.req.ntasks; i++) {
		struct task *t = &j->tasks[w->tasks[i]];
		struct node *n = node_by_sched_id(m, slots[i].node);
		if (!n) {
			log_error("job=%" PRIu64 " placed on unknown node id %u", j->id, slots[i].node);
			continue;
		}
		strlcpy_ok(t->node, n->name, sizeof(t->node));
		t->ngpus = slots[i].ngpus;
		memcpy(t->gpu_pos, slots[i].gpu_pos, slots[i].ngpus * sizeof(*t->gpu_pos));
		t->state = TASK_ASSIGNED;
		task_ran(t);
		node_task_add(m, j, t);
		m->stats.placements++;
		t->reason[0] = '\0';
		t->exit_code = t->signal = 0;
		t->stop_sent = t->requeue = false;
		t->started = t->finished = 0;
		t->port = 0;
		/* Serve tasks listen on $PORT; gang workers meet on theirs. */
		if (j->spec->kind != SPEC_BATCH)
			t->port = ports_take(m, n);
		log_debug(LOG_SUB_SCHED, "job=%" PRIu64 " task=%u node=%s placed", j->id, t->idx,
			  t->node);
	}
	/* Start orders go out once every task of the step has its node, so
	 * that gang environments can name rank 0's address. */
	for (uint32_t i = 0; i < w->sj.req.ntasks; i++) {
		struct task *t = &j->tasks[w->tasks[i]];
		struct node *n = node_find(m, t->node);
		uint32_t lo, hi;
		if (j->spec->kind != SPEC_BATCH && !t->port && n) {
			ports_range(n, &lo, &hi);
			snprintf(t->reason, sizeof(t->reason),
				 "no free port on node %s (its range is %u-%u)", n->name, lo, hi);
			task_finish(m, j, t, TASK_FAILED);
			continue;
		}
		agents_order_start(m, j, t);
	}
	if (j->spec->roles)
		m->sched_dirty = true; /* optional roles may place now */
	if (j->state == JOB_PENDING) {
		j->state = JOB_PLACING;
		log_info("job=%" PRIu64 " name=%s placed: %u tasks", j->id, j->spec->name,
			 w->sj.req.ntasks);
	}
	j->reason[0] = '\0';
	job_dirty(m, j);
	job_update(m, j);
}

static void on_preempt(struct master *m, struct want *victim, struct want *for_w,
		       const char *reason)
{
	struct job *v = victim->j, *f = for_w->j;

	log_info("job=%" PRIu64 " name=%s preempted by job=%" PRIu64 " (priority %d > %d)", v->id,
		 v->spec->name, f->id, f->spec->priority, v->spec->priority);
	snprintf(v->reason, sizeof(v->reason), "%.200s; requeued", reason);
	v->preempted_by = f->id;
	m->stats.preemptions++;
	job_dirty(m, v);
	f->victims++;
	snprintf(f->reason, sizeof(f->reason), "waiting for %u preempted job%s to stop",
		 f->victims, f->victims == 1 ? "" : "s");
	job_dirty(m, f);
	for (uint32_t k = 0; k < v->ntasks; k++) {
		struct task *t = &v->tasks[k];
		if (!live(t->state))
			continue;
		t->requeue = true;
		if (!t->stop_sent)
			agents_order_stop(m, v, t);
	}
}

static void on_wait(struct master *m, struct want *w, const char *reason)
{
	struct job *j = w->j;
	char buf[REASON_MAX];

	if (w->waited)
		return;
	w->waited = true;
	if (j->victims > 0)
		return; /* keeps "waiting for N preempted jobs to stop" */
	if (j->state == JOB_PENDING)
		snprintf(buf, sizeof(buf), "%s", reason);
	else
		snprintf(buf, sizeof(buf), "tasks waiting: %.200s", reason);
	if (strcmp(buf, j->reason) != 0) {
		strlcpy_ok(j->reason, buf, sizeof(j->reason));
		job_dirty(m, j);
		log_info("job=%" PRIu64 " name=%s pending: %s", j->id, j->spec->name, j->reason);
	}
}

static void emit(void *arg, const struct sched_action *a)
{
	struct pass *p = arg;
	struct want *w = (struct want *)a->job; /* sj is the first member */

	switch (a->type) {
	case SCHED_PLACED:
		on_placed(p->m, w, a->slots);
		break;
	case SCHED_PREEMPT:
		on_preempt(p->m, w, (struct want *)a->for_job, a->reason);
		break;
	case SCHED_WAIT:
		on_wait(p->m, w, a->reason);
		break;
	}
}

int sched_run(struct master *m)
{
	struct pass p = {.m = m};
	struct sched_job **pend, **run;
	size_t np, nr, ip = 0, ir = 0;
	int placed;
	/* Team queues (queues.h): the pass gates, reclaims and orders by
	 * them; set for this pass only. */
	struct sched_quota *quota = queues_prepare(m);

	collect(&p, &np, &nr);
	pend = xcalloc(np + 1, sizeof(*pend));
	run = xcalloc(nr + 1, sizeof(*run));
	for (size_t i = 0; i < p.nwants; i++) {
		struct want *w = &p.wants[i];
		if (w->sj.queue == UINT32_MAX) {
			w->sj.queue = 0;
			if (w->sj.req.ntasks > 0) {
				on_wait(m, w, w->no_queue);
				continue;
			}
		}
		if (w->sj.req.ntasks > 0)
			pend[ip++] = &w->sj;
		else
			run[ir++] = &w->sj;
	}
	sched_quota_set(m->core, quota);
	placed = sched_pass(m->core, pend, ip, run, ir, emit, &p);
	sched_quota_set(m->core, NULL);
	for (size_t i = 0; i < p.nwants; i++) {
		free(p.wants[i].tasks);
		free(p.wants[i].cons);
		free(p.wants[i].avoid);
		free(p.wants[i].held);
		free(p.wants[i].held_res);
		free(p.wants[i].parts);
	}
	free(p.wants);
	free(pend);
	free(run);
	return placed;
}
