/*
 * state.c - jobs, tasks and nodes in memory, and their records in the store.
 *
 * Keys: "jobs/<16 hex digits of id>" (so key order is id order), "nodes/<name>",
 * "meta/next_job_id".  Values are JSON.  A node's allocations are not
 * stored: they are derived from the tasks placed on it when the master loads.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "pools.h"
#include "util.h"
#include "wire.h"

static const char *job_states[] = {"pending", "placing", "running", "succeeded", "failed",
				   "cancelled"};
static const char *task_states[] = {"none",   "assigned", "starting", "running",
				    "exited", "failed",   "lost",     "killed"};

const char *job_state_str(enum job_state s)
{
	return (unsigned)s < sizeof(job_states) / sizeof(*job_states) ? job_states[s] : "?";
}

const char *task_state_str(enum task_state s)
{
	return (unsigned)s < sizeof(task_states) / sizeof(*task_states) ? task_states[s] : "?";
}

static int parse_enum(const char *s, const char **names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

bool job_terminal(enum job_state s)
{
	return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool task_terminal(enum task_state s)
{
	return s == TASK_EXITED || s == TASK_FAILED || s == TASK_LOST || s == TASK_KILLED;
}

struct job *job_by_id(struct master *m, uint64_t id)
{
	size_t lo = 0, hi = m->njobs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->jobs[mid]->id == id)
			return m->jobs[mid];
		if (m->jobs[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static uint64_t name_hash(const char *s);

/* An index of jobs by a string key (the name or the request id). */
static struct job **jx_slot(struct job **tab, size_t cap, const char *key, bool rid)
{
	size_t i = name_hash(key) & (cap - 1);

	while (tab[i] && strcmp(rid ? tab[i]->request_id : tab[i]->spec->name, key) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static void jx_put(struct job ***tab, size_t *cap, size_t *n, struct job *j, bool rid)
{
	const char *key = rid ? j->request_id : j->spec->name;
	struct job **slot;

	if ((*n + 1) * 2 > *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		struct job **nt = xcalloc(ncap, sizeof(*nt));
		for (size_t i = 0; i < *cap; i++)
			if ((*tab)[i])
				*jx_slot(nt, ncap, rid ? (*tab)[i]->request_id : (*tab)[i]->spec->name,
					 rid) = (*tab)[i];
		free(*tab);
		*tab = nt;
		*cap = ncap;
	}
	slot = jx_slot(*tab, *cap, key, rid);
	if (!*slot)
		(*n)++;
	/* Ids only grow: the newest job of a name wins. */
	if (!*slot || (*slot)->id < j->id)
		*slot = j;
}

void job_index(struct master *m, struct job *j)
{
	jx_put(&m->by_name, &m->by_name_cap, &m->by_name_n, j, false);
	if (j->request_id[0])
		jx_put(&m->by_rid, &m->by_rid_cap, &m->by_rid_n, j, true);
}

struct job *job_by_request(struct master *m, const char *rid)
{
	return m->by_rid_cap && *rid ? *jx_slot(m->by_rid, m->by_rid_cap, rid, true) : NULL;
}

/*
 * A reference is a job id ("42") or a name.  A name picks the newest job of
 * that name: names are unique among unfinished jobs, so an unfinished one
 * is always the newest.
 */
struct job *job_find(struct master *m, const char *ref)
{
	char *end;
	unsigned long long id = strtoull(ref, &end, 10);

	if (*ref >= '0' && *ref <= '9' && *end == '\0')
		return job_by_id(m, id);
	return m->by_name_cap ? *jx_slot(m->by_name, m->by_name_cap, ref, false) : NULL;
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

static void index_put(struct node **tab, size_t cap, struct node *n)
{
	size_t i = name_hash(n->name) & (cap - 1);

	while (tab[i])
		i = (i + 1) & (cap - 1);
	tab[i] = n;
}

struct node *node_find(struct master *m, const char *name)
{
	size_t i;

	if (!m->index_cap)
		return NULL;
	for (i = name_hash(name) & (m->index_cap - 1); m->node_index[i];
	     i = (i + 1) & (m->index_cap - 1))
		if (strcmp(m->node_index[i]->name, name) == 0)
			return m->node_index[i];
	return NULL;
}

struct node *node_add(struct master *m, const char *name)
{
	struct node *n = xcalloc(1, sizeof(*n));

	strlcpy_ok(n->name, name, sizeof(n->name));
	n->labels = cJSON_CreateObject();
	n->orders = cJSON_CreateArray();
	n->registered = wall_ms();
	n->dirty = true;
	if (m->nnodes == m->cap_nodes) {
		m->cap_nodes = m->cap_nodes ? m->cap_nodes * 2 : 16;
		m->nodes = xrealloc(m->nodes, m->cap_nodes * sizeof(*m->nodes));
	}
	m->nodes[m->nnodes++] = n;
	/* Keep the index at most half full. */
	if (m->nnodes * 2 > m->index_cap) {
		size_t cap = m->index_cap ? m->index_cap * 2 : 64;
		struct node **tab = xcalloc(cap, sizeof(*tab));
		for (size_t i = 0; i < m->nnodes; i++)
			index_put(tab, cap, m->nodes[i]);
		free(m->node_index);
		m->node_index = tab;
		m->index_cap = cap;
	} else {
		index_put(m->node_index, m->index_cap, n);
	}
	return n;
}

struct node *node_by_sched_id(struct master *m, uint32_t id)
{
	return id < m->by_id_cap ? m->node_by_id[id] : NULL;
}

void node_set_sched(struct master *m, struct node *n, struct sched_node *sn)
{
	if (n->sn && n->sn->id < m->by_id_cap && m->node_by_id[n->sn->id] == n)
		m->node_by_id[n->sn->id] = NULL;
	n->sn = sn;
	if (!sn)
		return;
	if (sn->id >= m->by_id_cap) {
		size_t cap = m->by_id_cap ? m->by_id_cap : 64;
		while (cap <= sn->id)
			cap *= 2;
		m->node_by_id = xrealloc(m->node_by_id, cap * sizeof(*m->node_by_id));
		memset(m->node_by_id + m->by_id_cap, 0, (cap - m->by_id_cap) * sizeof(*m->node_by_id));
		m->by_id_cap = cap;
	}
	m->node_by_id[sn->id] = n;
}

void node_task_add(struct master *m, struct job *j, struct task *t)
{
	struct node *n = node_find(m, t->node);

	if (!n)
		return;
	if (n->ntasks == n->cap_tasks) {
		n->cap_tasks = n->cap_tasks ? n->cap_tasks * 2 : 8;
		n->tasks = xrealloc(n->tasks, n->cap_tasks * sizeof(*n->tasks));
	}
	t->node_pos = n->ntasks;
	n->tasks[n->ntasks++] = (struct node_task){j, t->idx};
}

void node_task_del(struct master *m, struct job *j, struct task *t)
{
	struct node *n = node_find(m, t->node);
	struct node_task *last;

	if (!n || t->node_pos >= n->ntasks || n->tasks[t->node_pos].j != j ||
	    n->tasks[t->node_pos].idx != t->idx)
		return; /* not listed (never placed by this process) */
	last = &n->tasks[--n->ntasks];
	n->tasks[t->node_pos] = *last;
	last->j->tasks[last->idx].node_pos = t->node_pos;
}

struct node_task *node_tasks_copy(const struct node *n, uint32_t *count)
{
	struct node_task *c = xcalloc(n->ntasks + 1, sizeof(*c));

	if (n->ntasks)
		memcpy(c, n->tasks, n->ntasks * sizeof(*c));
	*count = n->ntasks;
	return c;
}

void job_dirty(struct master *m, struct job *j)
{
	if (j->dirty)
		return;
	j->dirty = true;
	if (m->ndirty == m->cap_dirty) {
		m->cap_dirty = m->cap_dirty ? m->cap_dirty * 2 : 64;
		m->dirty = xrealloc(m->dirty, m->cap_dirty * sizeof(*m->dirty));
	}
	m->dirty[m->ndirty++] = j;
}

static void live_add(struct master *m, struct job *j)
{
	if (m->nlive == m->cap_live) {
		m->cap_live = m->cap_live ? m->cap_live * 2 : 64;
		m->live = xrealloc(m->live, m->cap_live * sizeof(*m->live));
	}
	j->live_pos = m->nlive;
	m->live[m->nlive++] = j;
}

static void live_remove(struct master *m, struct job *j)
{
	struct job *last = m->live[--m->nlive];

	m->live[j->live_pos] = last;
	last->live_pos = j->live_pos;
}

static void job_append(struct master *m, struct job *j)
{
	if (m->njobs == m->cap_jobs) {
		m->cap_jobs = m->cap_jobs ? m->cap_jobs * 2 : 64;
		m->jobs = xrealloc(m->jobs, m->cap_jobs * sizeof(*m->jobs));
	}
	m->jobs[m->njobs++] = j;
}

struct job *job_create(struct master *m, struct spec *spec)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->id = m->next_job_id++;
	j->spec = spec;
	j->state = JOB_PENDING;
	j->submitted = wall_ms();
	j->ntasks = spec_ntasks(spec);
	j->tasks = xcalloc(j->ntasks, sizeof(*j->tasks));
	for (uint32_t i = 0; i < j->ntasks; i++)
		j->tasks[i].idx = i;
	if (spec->kind == SPEC_SERVE)
		serve_init(m, j, NULL);
	job_dirty(m, j);
	job_append(m, j);
	job_index(m, j);
	live_add(m, j);
	m->sched_dirty = true;
	return j;
}

const struct res *task_res(const struct job *j, const struct task *t)
{
	const struct spec_role *r = spec_task_role(j->spec, t->idx, NULL);

	return r ? &r->res : &j->spec->res;
}

bool task_optional(const struct job *j, const struct task *t)
{
	const struct spec_role *r = spec_task_role(j->spec, t->idx, NULL);

	return r && r->optional;
}

void task_finish(struct master *m, struct job *j, struct task *t, enum task_state st)
{
	if (t->state == TASK_ASSIGNED || t->state == TASK_STARTING || t->state == TASK_RUNNING) {
		sched_task_release(m, j, t);
		node_task_del(m, j, t);
	}
	t->state = st;
	t->finished = wall_ms();
	job_dirty(m, j);
}

/* Ask every live task of j to stop (once). */
static void job_stop_tasks(struct master *m, struct job *j)
{
	for (uint32_t i = 0; i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		if (t->state == TASK_NONE) {
			t->state = TASK_KILLED;
			job_dirty(m, j);
		} else if (!task_terminal(t->state) && !t->stop_sent) {
			agents_order_stop(m, j, t);
		}
	}
}

/* How a task ended badly, for a job's reason. */
static void task_failure(const struct task *t, char *buf, size_t len)
{
	if (t->state == TASK_EXITED && t->signal)
		snprintf(buf, len, "task %u killed by signal %d", t->idx, t->signal);
	else if (t->state == TASK_EXITED)
		snprintf(buf, len, "task %u exited with code %d", t->idx, t->exit_code);
	else if (t->state == TASK_FAILED && t->node[0])
		/* Could not start: which node is half of the answer (its
		 * image folder, its runc). */
		snprintf(buf, len, "task %u failed on node %.63s: %.150s", t->idx, t->node,
			 t->reason);
	else if (t->reason[0])
		snprintf(buf, len, "task %u %s: %.200s", t->idx, task_state_str(t->state),
			 t->reason);
	else
		snprintf(buf, len, "task %u %s", t->idx, task_state_str(t->state));
}

/* j no longer holds anyone up: its preemptor may preempt again. */
static void release_preemptor(struct master *m, struct job *j)
{
	struct job *f = j->preempted_by ? job_by_id(m, j->preempted_by) : NULL;

	if (f && f->victims > 0) {
		f->victims--;
		job_dirty(m, f);
		if (f->victims == 0 && f->state == JOB_PENDING)
			f->reason[0] = '\0';
		m->sched_dirty = true;
	}
	if (j->preempted_by) {
		j->preempted_by = 0;
		job_dirty(m, j);
	}
}

/* Back to the queue as its next attempt; a serve task keeps its role and
 * the version it is to run.  How the last attempt ended stays (status, a
 * promotion's reason) until the task is placed again. */
static void reset_task(struct task *t)
{
	struct task old = *t;

	memset(t, 0, sizeof(*t));
	t->idx = old.idx;
	t->attempt = old.attempt + 1;
	t->version = old.version;
	t->role = old.role;
	t->health = old.health == HEALTH_NONE ? HEALTH_NONE : HEALTH_UNKNOWN;
	t->exit_code = old.exit_code;
	t->signal = old.signal;
	memcpy(t->reason, old.reason, sizeof(t->reason));
	memcpy(t->runs, old.runs, sizeof(t->runs));
	t->nruns = old.nruns;
}

void task_ran(struct task *t)
{
	if (t->nruns == TASK_RUNS_KEPT) {
		memmove(&t->runs[0], &t->runs[1], (TASK_RUNS_KEPT - 1) * sizeof(t->runs[0]));
		t->nruns--;
	}
	t->runs[t->nruns].attempt = t->attempt;
	strlcpy_ok(t->runs[t->nruns].node, t->node, sizeof(t->runs[t->nruns].node));
	t->nruns++;
}

/* Requeued for a reason counted where it was decided (restart policy,
 * node loss, rollout), not as a preemption. */
static bool requeue_counted(const struct task *t)
{
	return t->restarted || t->rescheduled || t->rolled;
}

/* Count one requeue of j (preempted or evicted) and say why.  Restarts are
 * counted where they are decided (apply_restarts). */
static void count_requeue(struct master *m, struct job *j, bool restart)
{
	if (restart) {
		m->sched_dirty = true;
		return;
	}
	j->preemptions++;
	/* The reason says why it was stopped ("...; requeued"). */
	snprintf(j->last_requeue, sizeof(j->last_requeue), "%.*s", (int)strcspn(j->reason, ";"),
		 j->reason);
	release_preemptor(m, j);
	job_dirty(m, j);
	m->sched_dirty = true;
	log_info("job=%" PRIu64 " name=%s requeued (%u times)", j->id, j->spec->name,
		 j->preemptions);
}

/* A preempted or evicted gang whose tasks have all stopped goes back to the
 * queue whole. */
static void job_requeue(struct master *m, struct job *j)
{
	bool restart = false;

	for (uint32_t i = 0; i < j->ntasks; i++) {
		restart |= requeue_counted(&j->tasks[i]);
		reset_task(&j->tasks[i]);
	}
	j->state = JOB_PENDING;
	count_requeue(m, j, restart);
}

/*
 * The job's restart policy: a task that ended on its own (no stop from us)
 * badly (on-failure) or at all (always) is run again, while restarts stay
 * under restart.max.  A training gang restarts whole (the other workers are
 * stopped first); a replica or a batch task restarts alone.
 */
static void apply_restarts(struct master *m, struct job *j)
{
	const struct spec *s = j->spec;

	if (s->restart == RESTART_NEVER || j->cancel)
		return;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		bool ok = t->state == TASK_EXITED && t->exit_code == 0 && t->signal == 0;
		char why[REASON_MAX];
		if (!task_terminal(t->state) || t->requeue || t->stop_sent || t->retire)
			continue;
		if (ok && s->restart != RESTART_ALWAYS)
			continue;
		if (j->restarts >= s->restart_max)
			continue; /* out of restarts: it counts as it ended */
		j->restarts++;
		m->stats.restarts++;
		if (ok)
			snprintf(why, sizeof(why), "task %u exited with code 0", t->idx);
		else
			task_failure(t, why, sizeof(why));
		snprintf(j->last_restart, sizeof(j->last_restart), "%s", why);
		log_info("job=%" PRIu64 " name=%s restart %u of %u: %s", j->id, s->name, j->restarts,
			 s->restart_max, why);
		t->requeue = t->restarted = true;
		if (s->kind == SPEC_TRAIN) {
			for (uint32_t k = 0; k < j->ntasks; k++) {
				struct task *o = &j->tasks[k];
				if (o->state == TASK_NONE || task_terminal(o->state) || o->stop_sent)
					continue;
				o->requeue = o->restarted = true;
				agents_order_stop(m, j, o);
			}
		}
		job_dirty(m, j);
	}
}

static bool chief_role(const struct spec_role *r)
{
	return !strcmp(r->name, "chief") || !strcmp(r->name, "master");
}

/*
 * A role job has succeeded when the tasks that decide it exited 0 (and are
 * not being requeued): the chief (or master) role's when it has one, as
 * TFJob's chief decides (parameter servers never exit by themselves);
 * otherwise every required role's.  What still runs is then stopped.
 */
static bool roles_succeeded(const struct job *j)
{
	const struct spec *s = j->spec;
	uint32_t first = 0, n = 0;
	bool chief = false;

	for (size_t r = 0; r < s->nroles; r++)
		chief |= chief_role(&s->roles[r]);
	for (size_t r = 0; r < s->nroles; r++) {
		const struct spec_role *ro = &s->roles[r];
		bool decides = chief ? chief_role(ro) : !ro->optional;
		for (uint32_t i = 0; decides && i < ro->count; i++) {
			const struct task *t = &j->tasks[first + i];
			if (t->state != TASK_EXITED || t->exit_code != 0 || t->signal != 0 ||
			    t->requeue)
				return false;
			n++;
		}
		first += ro->count;
	}
	return n > 0;
}

void job_update(struct master *m, struct job *j)
{
	uint32_t running = 0, ok = 0, live = 0, none = 0, nbad = 0, req_live = 0, req_done = 0;
	uint32_t opt_none = 0; /* optional tasks waiting to be placed */
	uint32_t counted = 0; /* tasks not being retired */
	struct task *bad = NULL;
	enum job_state old = j->state;
	/* gang: all tasks succeed or fail together (train, serve); whole: a
	 * requeue takes every task (train only: replicas restart alone). */
	bool gang = j->spec->kind != SPEC_BATCH;
	bool whole = j->spec->kind == SPEC_TRAIN;
	bool roles_done;

	if (job_terminal(j->state))
		return;
	apply_restarts(m, j);
	roles_done = j->spec->roles && !j->cancel && roles_succeeded(j);
	for (uint32_t i = 0; i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		bool t_ok = t->state == TASK_EXITED && t->exit_code == 0 && t->signal == 0;
		if (t->retire) {
			/* Scaled away: neither a success nor a failure. */
			if (!task_terminal(t->state) && t->state != TASK_NONE)
				live++;
			continue;
		}
		if (task_optional(j, t)) {
			/* Neither needed for running nor for success; one that
			 * fails on its own fails the gang like any task, one we
			 * stopped (the gang ended or moves) just ended. */
			opt_none += t->state == TASK_NONE;
			if (t->state != TASK_NONE && !task_terminal(t->state)) {
				live++;
				if (t->requeue)
					req_live++;
			} else if (task_terminal(t->state) && t->requeue) {
				req_done++;
			} else if (task_terminal(t->state) && !t_ok && !t->stop_sent) {
				nbad++;
				if (!bad || bad->stop_sent)
					bad = t;
			}
			continue;
		}
		counted++;
		if (t->requeue && t_ok && !requeue_counted(t))
			t->requeue = false; /* it finished before the stop: done */
		if (t->state == TASK_RUNNING)
			running++;
		if (t->state == TASK_NONE)
			none++;
		else if (t_ok)
			ok++;
		else if (task_terminal(t->state) && t->requeue)
			req_done++;
		else if (task_terminal(t->state)) {
			nbad++;
			/* The reason a job failed is the task that failed on
			 * its own, not one we stopped because of it. */
			if (!bad || (bad->stop_sent && !t->stop_sent))
				bad = t;
		}
		if (t->state != TASK_NONE && !task_terminal(t->state)) {
			live++;
			if (t->requeue)
				req_live++;
		}
	}
	if (roles_done) {
		/* What else runs (parameter servers, optional roles) is
		 * stopped; how it then ends does not matter. */
		job_stop_tasks(m, j);
		if (live == 0) {
			j->state = JOB_SUCCEEDED;
			j->reason[0] = '\0';
		}
	} else if (j->cancel) {
		job_stop_tasks(m, j);
		if (live == 0) {
			j->state = JOB_CANCELLED;
			snprintf(j->reason, sizeof(j->reason), "cancelled by user");
		}
	} else if (bad && gang) {
		/* A gang never runs half: one task down stops the others.  A
		 * real failure wins over a requeue that was under way. */
		job_stop_tasks(m, j);
		if (!j->reason[0] || j->state == JOB_RUNNING || j->state == JOB_PLACING ||
		    req_live + req_done > 0)
			task_failure(bad, j->reason, sizeof(j->reason));
		if (live == 0)
			j->state = JOB_FAILED;
	} else if (whole && req_live + req_done > 0) {
		/* Being preempted, evicted or restarted: wait for every task
		 * to stop. */
		if (live == 0)
			job_requeue(m, j);
	} else if (!whole && req_done > 0) {
		/* Other tasks go back to the queue one by one as they stop. */
		bool restart = false, moved = false;
		for (uint32_t i = 0; i < j->ntasks; i++) {
			struct task *t = &j->tasks[i];
			if (t->requeue && task_terminal(t->state)) {
				if (requeue_counted(t))
					restart = true;
				else
					moved = true;
				reset_task(t);
			}
		}
		if (restart)
			count_requeue(m, j, true);
		if (moved && req_live == 0)
			count_requeue(m, j, false);
		m->sched_dirty = true;
		job_dirty(m, j);
		job_update(m, j);
		return;
	} else if (ok == counted && counted > 0) {
		j->state = JOB_SUCCEEDED;
		j->reason[0] = '\0';
	} else if (!gang && none == 0 && live == 0) {
		/* A batch array ends when every task has ended. */
		char first[REASON_MAX];
		j->state = JOB_FAILED;
		task_failure(bad, first, sizeof(first));
		if (j->ntasks == 1)
			snprintf(j->reason, sizeof(j->reason), "%s", first);
		else
			snprintf(j->reason, sizeof(j->reason), "%u of %u tasks failed; first: %.200s",
				 nbad, j->ntasks, first);
	} else if (gang && running + ok == counted) {
		j->state = JOB_RUNNING;
		/* Why optional tasks still wait (sched.c on_wait) stays. */
		if (opt_none == 0)
			j->reason[0] = '\0';
	} else if (!gang && running > 0) {
		j->state = JOB_RUNNING;
	} else if (!gang && live + ok + nbad > 0 && j->state == JOB_PENDING) {
		j->state = JOB_PLACING;
	}
	if (j->serve)
		serve_reconcile(m, j); /* an ended job only publishes no endpoints */
	if (job_terminal(j->state)) {
		j->finished = wall_ms();
		live_remove(m, j);
		/* Nobody waits for it any more, and it holds no reservation. */
		release_preemptor(m, j);
		sched_unreserve(m->core, j->id);
		m->sched_dirty = true;
	}
	if (j->state == JOB_RUNNING && !j->first_running) {
		/* Submission to every task running, once per job (a job that
		 * was running when this master loaded it does not count). */
		j->first_running = wall_ms();
		if (old != JOB_RUNNING)
			metrics_observe(&m->stats.submit_to_running,
					(double)(j->first_running - j->submitted) / 1000.0);
	}
	if (j->state != old) {
		job_dirty(m, j);
		log_info("job=%" PRIu64 " name=%s %s -> %s%s%s", j->id, j->spec->name,
			 job_state_str(old), job_state_str(j->state), j->reason[0] ? ": " : "",
			 j->reason);
	}
}

/* ---- JSON forms ---- */

static cJSON *task_to_json(const struct master *m, const struct task *t,
			   bool store)
{
	cJSON *o = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(o, "gpus");
	struct node *n = t->node[0] ? node_find((struct master *)m, t->node) : NULL;

	cJSON_AddNumberToObject(o, "task", t->idx);
	cJSON_AddStringToObject(o, "state", task_state_str(t->state));
	cJSON_AddStringToObject(o, "node", t->node);
	for (uint32_t i = 0; i < t->ngpus; i++) {
		/* The store keeps positions; users see device indices. */
		uint32_t v = t->gpu_pos[i];
		if (!store && n && v < n->cap.ngpus)
			v = n->cap.gpus[v].index;
		cJSON_AddItemToArray(g, cJSON_CreateNumber(v));
	}
	cJSON_AddNumberToObject(o, "exit_code", t->exit_code);
	cJSON_AddNumberToObject(o, "signal", t->signal);
	cJSON_AddStringToObject(o, "reason", t->reason);
	cJSON_AddNumberToObject(o, "started", (double)t->started);
	cJSON_AddNumberToObject(o, "finished", (double)t->finished);
	cJSON_AddNumberToObject(o, "attempt", t->attempt);
	if (t->port)
		cJSON_AddNumberToObject(o, "port", t->port);
	if (t->nruns) {
		cJSON *rs = cJSON_AddArrayToObject(o, "runs");
		for (uint32_t i = 0; i < t->nruns; i++) {
			cJSON *r = cJSON_CreateObject();
			cJSON_AddNumberToObject(r, "attempt", t->runs[i].attempt);
			cJSON_AddStringToObject(r, "node", t->runs[i].node);
			cJSON_AddItemToArray(rs, r);
		}
	}
	if (t->role != ROLE_NONE) {
		static const char *health[] = {"none", "unknown", "healthy", "unhealthy"};
		cJSON_AddStringToObject(o, "role", t->role == ROLE_SERVING ? "serving" : "standby");
		cJSON_AddStringToObject(o, "health", health[t->health & 3]);
		cJSON_AddStringToObject(o, "health_why", t->health_why);
		cJSON_AddNumberToObject(o, "health_at", (double)t->health_at);
		cJSON_AddNumberToObject(o, "version", t->version);
	}
	if (t->retire)
		cJSON_AddBoolToObject(o, "retire", true);
	if (store) {
		cJSON_AddBoolToObject(o, "stop_sent", t->stop_sent);
		cJSON_AddBoolToObject(o, "requeue", t->requeue);
		cJSON_AddBoolToObject(o, "restarted", t->restarted);
		cJSON_AddBoolToObject(o, "rescheduled", t->rescheduled);
		cJSON_AddBoolToObject(o, "rolled", t->rolled);
	}
	else {
		cJSON_AddNumberToObject(o, "cpu_pct", t->cpu_pct);
		cJSON_AddNumberToObject(o, "mem_used", (double)t->mem_used);
		/* The mean utilization of its GPUs, -1 when unknown. */
		double sum = 0;
		int n_u = 0;
		for (uint32_t i = 0; n && t->state == TASK_RUNNING && i < t->ngpus; i++) {
			int u = t->gpu_pos[i] < n->cap.ngpus
					? telemetry_gpu_util(n, n->cap.gpus[t->gpu_pos[i]].index)
					: -1;
			if (u >= 0) {
				sum += u;
				n_u++;
			}
		}
		cJSON_AddNumberToObject(o, "gpu_util", n_u ? sum / n_u : -1);
	}
	return o;
}

static cJSON *job_json(const struct master *m, const struct job *j, bool full, bool store)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "id", (double)j->id);
	cJSON_AddStringToObject(o, "name", j->spec->name);
	cJSON_AddStringToObject(o, "kind", spec_kind_str(j->spec->kind));
	cJSON_AddStringToObject(o, "state", job_state_str(j->state));
	cJSON_AddStringToObject(o, "reason", j->reason);
	cJSON_AddNumberToObject(o, "priority", j->spec->priority);
	if (!store && j->spec->queue)
		cJSON_AddStringToObject(o, "queue", j->spec->queue);
	/* The record keeps every slot (a serve job's retired ones too); users
	 * see the tasks in use. */
	uint32_t inuse = 0;
	uint64_t gpus_milli = 0;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		inuse += !j->tasks[i].retire;
		gpus_milli += j->tasks[i].retire ? 0 : task_res(j, &j->tasks[i])->gpus_milli;
	}
	cJSON_AddNumberToObject(o, "ntasks", store ? j->ntasks : inuse);
	cJSON_AddNumberToObject(o, "gpus_milli", (double)gpus_milli);
	cJSON_AddNumberToObject(o, "submitted", (double)j->submitted);
	cJSON_AddNumberToObject(o, "finished", (double)j->finished);
	cJSON_AddBoolToObject(o, "cancel", j->cancel);
	cJSON_AddNumberToObject(o, "preemptions", j->preemptions);
	cJSON_AddStringToObject(o, "last_requeue", j->last_requeue);
	cJSON_AddNumberToObject(o, "restarts", j->restarts);
	cJSON_AddNumberToObject(o, "restart_max", j->spec->restart_max);
	cJSON_AddStringToObject(o, "restart_policy", spec_restart_str(j->spec->restart));
	cJSON_AddStringToObject(o, "last_restart", j->last_restart);
	cJSON_AddNumberToObject(o, "reschedules", j->reschedules);
	cJSON_AddNumberToObject(o, "reschedule_max", j->spec->reschedule_max);
	cJSON_AddStringToObject(o, "last_reschedule", j->last_reschedule);
	cJSON_AddNumberToObject(o, "preempted_by", (double)j->preempted_by);
	cJSON_AddNumberToObject(o, "victims", j->victims);
	if (store && j->request_id[0])
		cJSON_AddStringToObject(o, "request_id", j->request_id);
	if (full) {
		/* The store keeps each task under its own key (state_flush). */
		if (!store) {
			cJSON *ts = cJSON_AddArrayToObject(o, "tasks");
			for (uint32_t i = 0; i < j->ntasks; i++) {
				cJSON *tj = task_to_json(m, &j->tasks[i], store);
				uint32_t index;
				const struct spec_role *r = spec_task_role(j->spec, i, &index);
				/* A train job's role (roles:); a serve task's
				 * "role" is serving or standby. */
				if (r) {
					cJSON_AddStringToObject(tj, "role", r->name);
					cJSON_AddNumberToObject(tj, "role_index", index);
					cJSON_AddBoolToObject(tj, "optional", r->optional);
				}
				cJSON_AddItemToArray(ts, tj);
			}
		}
		cJSON_AddItemToObject(o, "spec", spec_to_json(j->spec));
	}
	if (j->serve)
		cJSON_AddItemToObject(o, "serve", serve_to_json(m, j, full, store));
	return o;
}

cJSON *job_to_json(const struct master *m, const struct job *j, bool full)
{
	return job_json(m, j, full, false);
}

cJSON *node_to_json(const struct node *n, bool full)
{
	cJSON *o = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(o, "gpus");
	const struct res_node *r = n->sn ? &n->sn->res : &n->cap;

	cJSON_AddStringToObject(o, "name", n->name);
	cJSON_AddStringToObject(o, "state",
				n->removed ? "removed" : n->state == NODE_READY ? "ready" : "lost");
	cJSON_AddBoolToObject(o, "drained", n->drained);
	if (n->gpu_error[0])
		cJSON_AddStringToObject(o, "gpu_error", n->gpu_error);
	cJSON_AddStringToObject(o, "address", n->address);
	cJSON_AddNumberToObject(o, "cpu_milli", n->cap.cpu_total);
	cJSON_AddNumberToObject(o, "memory", (double)n->cap.mem_total);
	cJSON_AddNumberToObject(o, "registered", (double)n->registered);
	for (uint32_t i = 0; i < n->cap.ngpus; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "index", n->cap.gpus[i].index);
		cJSON_AddNumberToObject(e, "memory", (double)n->cap.gpus[i].mem);
		cJSON_AddStringToObject(e, "model", n->cap.gpus[i].model);
		if (full)
			cJSON_AddNumberToObject(e, "used_milli",
						i < r->ngpus ? r->gpus[i].used_milli : 0);
		cJSON_AddItemToArray(g, e);
	}
	cJSON_AddItemToObject(o, "labels", cJSON_Duplicate(n->labels, 1));
	if (n->has_pk) {
		char pk[SEAL_PK_STR_LEN];
		seal_pk_str(n->pk, pk);
		cJSON_AddStringToObject(o, "pubkey", pk);
	}
	if (n->removed)
		cJSON_AddBoolToObject(o, "removed", true);
	if (n->nrevoked) {
		cJSON *rk = cJSON_AddArrayToObject(o, "revoked_pubkeys");
		for (uint32_t i = 0; i < n->nrevoked; i++) {
			char pk[SEAL_PK_STR_LEN];
			seal_pk_str(n->revoked[i], pk);
			cJSON_AddItemToArray(rk, cJSON_CreateString(pk));
		}
	}
	if (full) {
		cJSON_AddNumberToObject(o, "cpu_used", r->cpu_used);
		cJSON_AddNumberToObject(o, "memory_used", (double)r->mem_used);
		cJSON_AddNumberToObject(o, "util_cpu_pct", n->cpu_pct);
		cJSON_AddNumberToObject(o, "util_mem_used", (double)n->mem_used);
		if (n->gpu_util)
			cJSON_AddItemToObject(o, "util_gpus", cJSON_Duplicate(n->gpu_util, 1));
	}
	return o;
}

/* ---- persistence ---- */

/* FNV-1a: tells whether a record's text changed since it was written. */
static uint64_t text_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h | 1; /* 0 means "not written by this process" */
}

/* What one flush wrote (for the store debug log). */
struct flush_count {
	unsigned records;
	size_t bytes;
};

/* Write o under key unless its text is the one written last (*hash). */
static int put_changed(struct master *m, const char *key, cJSON *o, uint64_t *hash,
		       struct flush_count *fc)
{
	char *s = cJSON_PrintUnformatted(o);
	uint64_t h = text_hash(s);
	size_t len = strlen(s);
	int rv = 0;

	if (h != *hash && (rv = store_put(m->store, key, s, len)) == 0) {
		*hash = h;
		fc->records++;
		fc->bytes += len;
	}
	free(s);
	return rv;
}

/*
 * Write what changed in this turn in one transaction: dirty nodes, dirty
 * jobs, the next job id.  Nothing to write: no transaction at all (most
 * turns of an idle master).
 *
 * A job is "jobs/<id>" (its spec, state, counters) and one record per task,
 * "tasks/<id>/<index>".  A dirty job writes only the records whose text
 * changed, so one task's change in a 1,000-task job is one small write.
 */
bool state_clean(const struct master *m)
{
	for (size_t i = 0; i < m->nnodes; i++)
		if (m->nodes[i]->dirty)
			return false;
	return !pools_dirty(m) && !queues_dirty(m) && m->ndirty == 0 &&
	       m->next_job_id == m->stored_next_id;
}

int state_flush(struct master *m)
{
	char key[STORE_KEY_MAX], num[32];
	struct flush_count fc = {0, 0};
	int rv;

	if (state_clean(m))
		return 0;
	uint64_t t0 = now_ns();
	if ((rv = store_begin(m->store)) != 0)
		return rv;
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		if (!n->dirty)
			continue;
		cJSON *o = node_to_json(n, false);
		snprintf(key, sizeof(key), "nodes/%s", n->name);
		char *s = cJSON_PrintUnformatted(o);
		rv = store_put(m->store, key, s, strlen(s));
		fc.records++;
		fc.bytes += strlen(s);
		free(s);
		cJSON_Delete(o);
		if (rv != 0)
			goto fail;
		n->dirty = false;
	}
	for (size_t i = 0; i < m->ndirty; i++) {
		struct job *j = m->dirty[i];
		cJSON *o = job_json(m, j, true, true);
		snprintf(key, sizeof(key), "jobs/%016" PRIx64, j->id);
		rv = put_changed(m, key, o, &j->stored_hash, &fc);
		cJSON_Delete(o);
		for (uint32_t k = 0; k < j->ntasks && rv == 0; k++) {
			o = task_to_json(m, &j->tasks[k], true);
			snprintf(key, sizeof(key), "tasks/%016" PRIx64 "/%08x", j->id, k);
			rv = put_changed(m, key, o, &j->tasks[k].stored_hash, &fc);
			cJSON_Delete(o);
		}
		if (rv != 0)
			goto fail;
		j->dirty = false;
	}
	m->ndirty = 0;
	if ((rv = pools_store(m)) != 0)
		goto fail;
	if ((rv = queues_flush(m)) != 0)
		goto fail;
	snprintf(num, sizeof(num), "%" PRIu64, m->next_job_id);
	if ((rv = store_put(m->store, "meta/next_job_id", num, strlen(num))) != 0)
		goto fail;
	if ((rv = store_commit(m->store)) != 0)
		return rv;
	log_debug(LOG_SUB_STORE, "commit: %u records, %zu bytes", fc.records + 1, fc.bytes);
	metrics_observe(&m->stats.store_commit, (double)(now_ns() - t0) / 1e9);
	m->stored_next_id = m->next_job_id;
	return 0;
fail:
	store_rollback(m->store);
	return rv;
}

static int get_u64(const cJSON *o, const char *k, uint64_t *v)
{
	return wire_get_u64(o, k, UINT64_MAX >> 11, v);
}

static int load_node(const char *key, const void *val, size_t len, void *arg)
{
	struct master *m = arg;
	cJSON *o = cJSON_ParseWithLength(val, len), *g, *e;
	const char *name;
	int rv = ERR_STORE;

	if (!o || wire_get_str(o, "name", NODE_NAME_MAX, &name) != 0) {
		log_error("store: %s: not a node record", key);
		goto out;
	}
	struct node *n = node_add(m, name);
	uint64_t v;
	n->dirty = false;
	/* Ready but unconfirmed: nothing new goes there until its agent
	 * speaks, and it times out like any silent node if it never does
	 * (its tasks are then lost). */
	n->state = NODE_READY;
	n->confirmed = false;
	n->last_seen = now_ms();
	if (get_u64(o, "cpu_milli", &v) == 0)
		n->cap.cpu_total = (uint32_t)v;
	if (get_u64(o, "memory", &v) == 0)
		n->cap.mem_total = v;
	wire_get_bool(o, "drained", &n->drained);
	{
		const char *pk;
		if (wire_get_str(o, "pubkey", SEAL_PK_STR_LEN, &pk) == 0 &&
		    seal_pk_parse(pk, n->pk) == 0)
			n->has_pk = true;
	}
	{
		const cJSON *rk, *re;
		uint8_t pk[SEAL_PK_LEN];
		if (wire_get_array(o, "revoked_pubkeys", NODE_REVOKED_MAX, &rk) == 0)
			cJSON_ArrayForEach(re, rk)
			{
				if (cJSON_IsString(re) && seal_pk_parse(re->valuestring, pk) == 0)
					node_revoke_key(n, pk);
				else
					log_error("store: %s: revoked_pubkeys holds a bad key: "
						  "ignored",
						  key);
			}
		else if (cJSON_GetObjectItemCaseSensitive(o, "revoked_pubkeys"))
			log_error("store: %s: revoked_pubkeys is not a list of at most %d keys: "
				  "ignored",
				  key, NODE_REVOKED_MAX);
	}
	/* Removed (mlctl nodes remove): out until a new key joins. */
	wire_get_bool(o, "removed", &n->removed);
	if (n->removed)
		n->state = NODE_LOST;
	{
		const char *addr = "";
		wire_get_str(o, "address", sizeof(n->address) - 1, &addr);
		strlcpy_ok(n->address, addr, sizeof(n->address));
	}
	if (get_u64(o, "registered", &v) == 0)
		n->registered = v;
	g = cJSON_GetObjectItemCaseSensitive(o, "gpus");
	cJSON_ArrayForEach(e, g)
	{
		const char *model = "";
		if (n->cap.ngpus >= RES_MAX_GPUS)
			break;
		struct res_gpu *rg = &n->cap.gpus[n->cap.ngpus++];
		if (get_u64(e, "index", &v) == 0)
			rg->index = (uint32_t)v;
		if (get_u64(e, "memory", &v) == 0)
			rg->mem = v;
		wire_get_str(e, "model", RES_MODEL_LEN - 1, &model);
		strlcpy_ok(rg->model, model, sizeof(rg->model));
	}
	if ((g = cJSON_GetObjectItemCaseSensitive(o, "labels")) && cJSON_IsObject(g)) {
		cJSON_Delete(n->labels);
		n->labels = cJSON_Duplicate(g, 1);
	}
	rv = 0;
out:
	cJSON_Delete(o);
	return rv;
}

static int load_task(struct master *m, struct job *j, const cJSON *o)
{
	const char *s;
	uint64_t v;
	int64_t iv;
	const cJSON *g, *e;
	struct task *t;

	if (get_u64(o, "task", &v) != 0 || v >= j->ntasks)
		return ERR_STORE;
	t = &j->tasks[v];
	if (wire_get_str(o, "state", 32, &s) != 0 ||
	    (iv = parse_enum(s, task_states, (int)(sizeof(task_states) / sizeof(*task_states)))) < 0)
		return ERR_STORE;
	t->state = (enum task_state)iv;
	if (wire_get_str(o, "node", NODE_NAME_MAX, &s) == 0)
		strlcpy_ok(t->node, s, sizeof(t->node));
	if (wire_get_int(o, "exit_code", INT32_MIN, INT32_MAX, &iv) == 0)
		t->exit_code = (int)iv;
	if (wire_get_int(o, "signal", 0, 128, &iv) == 0)
		t->signal = (int)iv;
	if (wire_get_str(o, "reason", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(t->reason, s, sizeof(t->reason));
	get_u64(o, "started", &t->started);
	get_u64(o, "finished", &t->finished);
	wire_get_bool(o, "stop_sent", &t->stop_sent);
	g = cJSON_GetObjectItemCaseSensitive(o, "gpus");
	cJSON_ArrayForEach(e, g)
	{
		if (t->ngpus < RES_MAX_GPUS && cJSON_IsNumber(e))
			t->gpu_pos[t->ngpus++] = (uint32_t)e->valuedouble;
	}
	wire_get_bool(o, "requeue", &t->requeue);
	if (get_u64(o, "attempt", &v) == 0)
		t->attempt = (uint32_t)v;
	wire_get_bool(o, "restarted", &t->restarted);
	wire_get_bool(o, "rescheduled", &t->rescheduled);
	wire_get_bool(o, "rolled", &t->rolled);
	wire_get_bool(o, "retire", &t->retire);
	if (get_u64(o, "port", &v) == 0 && v <= 65535)
		t->port = (uint32_t)v;
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(o, "runs"))
	{
		const char *rn = "";
		uint64_t ra = 0;
		if (t->nruns == TASK_RUNS_KEPT || get_u64(e, "attempt", &ra) != 0 ||
		    wire_get_str(e, "node", NODE_NAME_MAX, &rn) != 0)
			continue;
		t->runs[t->nruns].attempt = (uint32_t)ra;
		strlcpy_ok(t->runs[t->nruns].node, rn, sizeof(t->runs[t->nruns].node));
		t->nruns++;
	}
	if (get_u64(o, "version", &v) == 0)
		t->version = (uint32_t)v;
	if (wire_get_str(o, "role", 16, &s) == 0)
		t->role = strcmp(s, "serving") == 0 ? ROLE_SERVING : ROLE_STANDBY;
	if (wire_get_str(o, "health", 16, &s) == 0)
		t->health = strcmp(s, "healthy") == 0	  ? HEALTH_OK
			    : strcmp(s, "unhealthy") == 0 ? HEALTH_BAD
			    : strcmp(s, "unknown") == 0	  ? HEALTH_UNKNOWN
							  : HEALTH_NONE;
	if (wire_get_str(o, "health_why", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(t->health_why, s, sizeof(t->health_why));
	get_u64(o, "health_at", &t->health_at);
	if ((t->state == TASK_ASSIGNED || t->state == TASK_STARTING || t->state == TASK_RUNNING) &&
	    !node_find(m, t->node)) {
		t->state = TASK_LOST;
		snprintf(t->reason, sizeof(t->reason), "node %s is not known", t->node);
		j->dirty = true; /* listed by load_job once the job is whole */
	} else if (t->state == TASK_ASSIGNED || t->state == TASK_STARTING ||
		   t->state == TASK_RUNNING) {
		node_task_add(m, j, t);
	}
	return 0;
}

/* "tasks/<job id>/<index>": one task of a job loaded before. */
static int load_task_record(const char *key, const void *val, size_t len, void *arg)
{
	struct master *m = arg;
	unsigned long long id;
	unsigned idx;
	struct job *j;
	cJSON *o;
	int rv;

	if (sscanf(key, "tasks/%16llx/%8x", &id, &idx) != 2) {
		log_error("store: %s: not a task key", key);
		return ERR_STORE;
	}
	if (!(j = job_by_id(m, id))) {
		log_warn("store: %s: a task of no stored job: ignored", key);
		return 0;
	}
	if (idx >= j->ntasks) {
		/* A slot past the job's stored size: written by a turn whose
		 * job record is older?  Never: both go in one transaction. */
		log_error("store: %s: task %u of a job of %u tasks", key, idx, j->ntasks);
		return ERR_STORE;
	}
	if (!(o = cJSON_ParseWithLength(val, len))) {
		log_error("store: %s: not JSON", key);
		return ERR_STORE;
	}
	rv = load_task(m, j, o);
	if (rv != 0)
		log_error("store: %s: bad task record", key);
	cJSON_Delete(o);
	return rv;
}

static int load_job(const char *key, const void *val, size_t len, void *arg)
{
	struct master *m = arg;
	cJSON *o = cJSON_ParseWithLength(val, len);
	const cJSON *spec_j, *ts, *e;
	struct spec *spec = NULL;
	struct job *j = NULL;
	char err[SPEC_ERR_LEN];
	const char *s;
	int64_t iv;
	uint64_t v64;
	int rv = ERR_STORE;

	if (!o || wire_get_object(o, "spec", &spec_j) != 0) {
		log_error("store: %s: not a job record", key);
		goto out;
	}
	if (spec_from_json(spec_j, &spec, err, sizeof(err)) != 0) {
		log_error("store: %s: %s", key, err);
		goto out;
	}
	j = xcalloc(1, sizeof(*j));
	j->spec = spec;
	/* A serve job's task count moves with scaling: the record says. */
	j->ntasks = spec_ntasks(spec);
	if (get_u64(o, "ntasks", &v64) == 0 && v64 > 0 && v64 <= SPEC_MAX_TASKS + 1)
		j->ntasks = (uint32_t)v64;
	j->tasks = xcalloc(j->ntasks, sizeof(*j->tasks));
	for (uint32_t i = 0; i < j->ntasks; i++)
		j->tasks[i].idx = i;
	if (get_u64(o, "id", &j->id) != 0 || wire_get_str(o, "state", 32, &s) != 0 ||
	    (iv = parse_enum(s, job_states, (int)(sizeof(job_states) / sizeof(*job_states)))) < 0) {
		log_error("store: %s: bad id or state", key);
		goto out;
	}
	j->state = (enum job_state)iv;
	if (wire_get_str(o, "reason", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(j->reason, s, sizeof(j->reason));
	get_u64(o, "submitted", &j->submitted);
	get_u64(o, "finished", &j->finished);
	wire_get_bool(o, "cancel", &j->cancel);
	if (get_u64(o, "preemptions", &v64) == 0)
		j->preemptions = (uint32_t)v64;
	get_u64(o, "preempted_by", &j->preempted_by);
	if (wire_get_str(o, "last_requeue", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(j->last_requeue, s, sizeof(j->last_requeue));
	if (get_u64(o, "restarts", &v64) == 0)
		j->restarts = (uint32_t)v64;
	if (wire_get_str(o, "last_restart", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(j->last_restart, s, sizeof(j->last_restart));
	if (get_u64(o, "victims", &v64) == 0)
		j->victims = (uint32_t)v64;
	if (wire_get_str(o, "request_id", sizeof(j->request_id) - 1, &s) == 0)
		strlcpy_ok(j->request_id, s, sizeof(j->request_id));
	if (get_u64(o, "reschedules", &v64) == 0)
		j->reschedules = (uint32_t)v64;
	if (wire_get_str(o, "last_reschedule", REASON_MAX - 1, &s) == 0)
		strlcpy_ok(j->last_reschedule, s, sizeof(j->last_reschedule));
	if (spec->kind == SPEC_SERVE &&
	    serve_init(m, j, cJSON_GetObjectItemCaseSensitive(o, "serve")) != 0) {
		log_error("store: %s: bad serve record", key);
		goto out;
	}
	/* Records written before tasks had keys of their own carry them
	 * inline: load them, and rewrite the job in the new form. */
	ts = cJSON_GetObjectItemCaseSensitive(o, "tasks");
	cJSON_ArrayForEach(e, ts)
	{
		if (load_task(m, j, e) != 0) {
			log_error("store: %s: bad task record", key);
			goto out;
		}
		j->dirty = true;
	}
	if (m->njobs && m->jobs[m->njobs - 1]->id >= j->id) {
		log_error("store: %s: job ids out of order", key);
		goto out;
	}
	job_append(m, j);
	job_index(m, j);
	if (!job_terminal(j->state))
		live_add(m, j);
	/* j->dirty: to be written again, once state_load has the tasks. */
	if (j->id >= m->next_job_id)
		m->next_job_id = j->id + 1;
	j = NULL;
	rv = 0;
out:
	if (j) {
		free(j->tasks);
		serve_free(j);
		spec_free(j->spec);
		free(j);
	} else if (rv != 0) {
		spec_free(spec);
	}
	cJSON_Delete(o);
	return rv;
}

int state_load(struct master *m)
{
	void *val;
	size_t len;
	int rv;

	m->next_job_id = 1;
	if ((rv = store_get(m->store, "meta/next_job_id", &val, &len)) == 0) {
		m->next_job_id = strtoull(val, NULL, 10);
		m->stored_next_id = m->next_job_id;
		free(val);
	} else if (rv != ERR_NOENT) {
		return rv;
	}
	if ((rv = store_list(m->store, "nodes/", load_node, m)) != 0)
		return rv;
	if ((rv = store_list(m->store, "jobs/", load_job, m)) != 0)
		return rv;
	if ((rv = store_list(m->store, "tasks/", load_task_record, m)) != 0)
		return rv;
	if ((rv = pools_load(m)) != 0)
		return rv;
	if ((rv = queues_state_load(m)) != 0)
		return rv;
	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];
		/* load_task flags jobs whose records must be written again. */
		if (j->dirty) {
			j->dirty = false;
			job_dirty(m, j);
		}
	}
	/* Who waits for whom is derived, so a record written before a victim
	 * ended cannot leave a preemptor waiting for ever. */
	for (size_t i = 0; i < m->njobs; i++)
		m->jobs[i]->victims = 0;
	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i], *f;
		if (!j->preempted_by)
			continue;
		if (!job_terminal(j->state) && (f = job_by_id(m, j->preempted_by)) &&
		    !job_terminal(f->state))
			f->victims++;
		else
			j->preempted_by = 0;
	}
	/* The scheduler core learns the nodes, then takes what tasks hold. */
	for (size_t i = 0; i < m->nnodes; i++)
		sched_sync_node(m, m->nodes[i]);
	/* Tasks that were placed but whose agent never confirmed them get
	 * their start orders again; agents ignore starts they already ran. */
	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];
		if (job_terminal(j->state))
			continue;
		m->sched_dirty = true;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			struct task *t = &j->tasks[k];
			if (t->state == TASK_ASSIGNED)
				agents_order_start(m, j, t);
			if (t->stop_sent && !task_terminal(t->state)) {
				t->stop_sent = false;
				agents_order_stop(m, j, t);
			}
		}
	}
	/* A standby master loads again and again: not worth a line each. */
	if (!m->ha.on || m->ha.leading)
		log_info("loaded %zu nodes and %zu jobs; next job id %" PRIu64, m->nnodes,
			 m->njobs, m->next_job_id);
	else
		log_debug(LOG_SUB_STORE, "standby: loaded %zu nodes and %zu jobs", m->nnodes,
			  m->njobs);
	return 0;
}

/*
 * Forget the whole model (a deposed HA leader becomes a follower; a new
 * leader loads afresh).  Orders and replies not sent yet are dropped: they
 * belong to a turn that was not committed.
 */
void state_reset(struct master *m)
{
	struct outmsg *o, *on;
	struct logreq *lr, *ln;

	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];
		struct spec *spec = j->spec;
		serve_free(j);
		spec_free(spec);
		free(j->tasks);
		free(j);
	}
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		cJSON_Delete(n->labels);
		cJSON_Delete(n->orders);
		cJSON_Delete(n->gpu_util);
		free(n->tasks);
		free(n->revoked);
		free(n);
	}
	free(m->by_name);
	free(m->by_rid);
	m->by_name = m->by_rid = NULL;
	m->by_name_cap = m->by_rid_cap = m->by_name_n = m->by_rid_n = 0;
	free(m->node_index);
	free(m->node_by_id);
	m->node_index = m->node_by_id = NULL;
	m->index_cap = m->by_id_cap = 0;
	free(m->jobs);
	free(m->live);
	free(m->dirty);
	free(m->serving);
	m->serving = NULL;
	m->nserving = m->cap_serving = 0;
	free(m->nodes);
	m->jobs = m->live = m->dirty = NULL;
	m->nodes = NULL;
	m->njobs = m->cap_jobs = m->nlive = m->cap_live = m->ndirty = m->cap_dirty = 0;
	m->nnodes = m->cap_nodes = 0;
	for (lr = m->logreqs; lr; lr = ln) {
		ln = lr->next;
		free(lr);
	}
	m->logreqs = NULL;
	for (o = m->out_head; o; o = on) {
		on = o->next;
		cJSON_Delete(o->body);
		free(o);
	}
	m->out_head = NULL;
	m->out_tail = &m->out_head;
	sched_free(m->core);
	m->core = sched_new();
	m->next_job_id = m->stored_next_id = 0;
	m->sched_dirty = false;
}
