/*
 * agents.c - agent sessions: registration, heartbeats, events and orders.
 *
 * Each agent keeps one SYNC request in flight (nng req).  The master answers
 * at once when the request brought events to acknowledge or when orders are
 * waiting; otherwise it holds the request (a long poll) and answers it as
 * soon as an order for that node appears.  The agent sends a fresh SYNC at
 * least every heartbeat interval, which supersedes the held one.
 *
 * Both directions carry sequence numbers and acknowledgements: orders stay
 * queued until the agent acknowledges them, events are resent by the agent
 * until the master acknowledges them.  Lost replies therefore only delay
 * things.  Both sides handle a repeat idempotently (a start for a task the
 * agent already runs is ignored; an event we already applied is skipped by
 * its sequence number).  A "boot" id tells either side when the other one
 * restarted, so that sequence numbers start again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "util.h"
#include "wire.h"

#define MAX_EVENTS 4096
#define MAX_TASKS_LISTED 65536

void agents_order(struct master *m, struct node *n, cJSON *order)
{
	cJSON_AddNumberToObject(order, "seq", (double)++n->order_seq);
	cJSON_AddItemToArray(n->orders, order);
}

static const char *node_addr(struct master *m, const char *name)
{
	struct node *n = node_find(m, name);

	return n && n->address[0] ? n->address : "127.0.0.1";
}

/*
 * torchrun and TensorFlow conventions for a gang: RANK, WORLD_SIZE,
 * LOCAL_RANK (rank among the gang's tasks on the same node), MASTER_ADDR and
 * MASTER_PORT (rank 0's node and port), TF_CONFIG (every worker's address).
 */
static void gang_env(struct master *m, struct job *j, struct task *t, cJSON *env)
{
	cJSON *tf = cJSON_CreateObject(), *cl, *workers, *task;
	uint32_t local = 0;
	char buf[96], *s;

	for (uint32_t i = 0; i < t->idx; i++)
		if (strcmp(j->tasks[i].node, t->node) == 0)
			local++;
	snprintf(buf, sizeof(buf), "%u", t->idx);
	cJSON_AddStringToObject(env, "RANK", buf);
	snprintf(buf, sizeof(buf), "%u", j->ntasks);
	cJSON_AddStringToObject(env, "WORLD_SIZE", buf);
	snprintf(buf, sizeof(buf), "%u", local);
	cJSON_AddStringToObject(env, "LOCAL_RANK", buf);
	cJSON_AddStringToObject(env, "MASTER_ADDR", node_addr(m, j->tasks[0].node));
	snprintf(buf, sizeof(buf), "%u", j->tasks[0].port);
	cJSON_AddStringToObject(env, "MASTER_PORT", buf);
	cl = cJSON_AddObjectToObject(tf, "cluster");
	workers = cJSON_AddArrayToObject(cl, "worker");
	for (uint32_t i = 0; i < j->ntasks; i++) {
		snprintf(buf, sizeof(buf), "%s:%u", node_addr(m, j->tasks[i].node), j->tasks[i].port);
		cJSON_AddItemToArray(workers, cJSON_CreateString(buf));
	}
	task = cJSON_AddObjectToObject(tf, "task");
	cJSON_AddStringToObject(task, "type", "worker");
	cJSON_AddNumberToObject(task, "index", t->idx);
	s = cJSON_PrintUnformatted(tf);
	cJSON_AddStringToObject(env, "TF_CONFIG", s);
	free(s);
	cJSON_Delete(tf);
}

/* "host:port" of task i of j. */
static void task_addr(struct master *m, const struct job *j, uint32_t i, char *buf, size_t len)
{
	snprintf(buf, len, "%s:%u", node_addr(m, j->tasks[i].node), j->tasks[i].port);
}

/*
 * The same conventions for a multi-role gang (roles:, spec.h).  TF_CONFIG's
 * cluster lists every required role's tasks by role name, in task order
 * (optional roles, an evaluator, are placed later and are not in it, as
 * TensorFlow expects of an evaluator); task names the task's own role and
 * index.  The torch world is the chief (or master) role, rank 0 like
 * PyTorchJob's master, then the worker role: their tasks get RANK,
 * WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT (rank 0's); other
 * roles (ps, evaluator) get none of these.  Every task gets
 * MLSCHED_ROLE and MLSCHED_ROLE_INDEX.
 */
static void roles_env(struct master *m, struct job *j, struct task *t, cJSON *env)
{
	const struct spec *s = j->spec;
	cJSON *tf = cJSON_CreateObject(), *cl, *task;
	uint32_t index = 0, first = 0, world = 0, rank = 0, local = 0, rank0 = UINT32_MAX;
	bool before = true; /* the walk has not reached t yet */
	const struct spec_role *mine = spec_task_role(s, t->idx, &index);
	bool in_world = mine && spec_role_in_world(mine);
	char buf[96], *out;

	cl = cJSON_AddObjectToObject(tf, "cluster");
	for (size_t r = 0; r < s->nroles; r++) {
		const struct spec_role *ro = &s->roles[r];
		if (!ro->optional) {
			cJSON *a = cJSON_AddArrayToObject(cl, ro->name);
			for (uint32_t i = 0; i < ro->count; i++) {
				task_addr(m, j, first + i, buf, sizeof(buf));
				cJSON_AddItemToArray(a, cJSON_CreateString(buf));
			}
		}
		first += ro->count;
	}
	task = cJSON_AddObjectToObject(tf, "task");
	cJSON_AddStringToObject(task, "type", mine ? mine->name : "worker");
	cJSON_AddNumberToObject(task, "index", index);
	out = cJSON_PrintUnformatted(tf);
	cJSON_AddStringToObject(env, "TF_CONFIG", out);
	free(out);
	cJSON_Delete(tf);
	cJSON_AddStringToObject(env, "MLSCHED_ROLE", mine ? mine->name : "");
	snprintf(buf, sizeof(buf), "%u", index);
	cJSON_AddStringToObject(env, "MLSCHED_ROLE_INDEX", buf);
	if (!in_world)
		return;
	/* World order: chief/master tasks, then worker tasks. */
	for (int pass = 0; pass < 2; pass++) {
		first = 0;
		for (size_t r = 0; r < s->nroles; r++) {
			const struct spec_role *ro = &s->roles[r];
			bool head = strcmp(ro->name, "worker") != 0;
			if (spec_role_in_world(ro) && head == (pass == 0)) {
				for (uint32_t i = 0; i < ro->count; i++) {
					uint32_t k = first + i;
					if (rank0 == UINT32_MAX)
						rank0 = k;
					if (k == t->idx) {
						rank = world;
						before = false;
					} else if (before &&
						   !strcmp(j->tasks[k].node, t->node)) {
						local++;
					}
					world++;
				}
			}
			first += ro->count;
		}
	}
	snprintf(buf, sizeof(buf), "%u", rank);
	cJSON_AddStringToObject(env, "RANK", buf);
	snprintf(buf, sizeof(buf), "%u", world);
	cJSON_AddStringToObject(env, "WORLD_SIZE", buf);
	snprintf(buf, sizeof(buf), "%u", local);
	cJSON_AddStringToObject(env, "LOCAL_RANK", buf);
	cJSON_AddStringToObject(env, "MASTER_ADDR", node_addr(m, j->tasks[rank0].node));
	snprintf(buf, sizeof(buf), "%u", j->tasks[rank0].port);
	cJSON_AddStringToObject(env, "MASTER_PORT", buf);
}

/* What the agent probes: the spec's check with the task's port filled in. */
static void health_order(const struct spec *s, const struct task *t, cJSON *o)
{
	const struct spec_health *h = &s->health;
	cJSON *p = cJSON_AddObjectToObject(o, "health");
	char target[1024];

	if (h->exec) {
		cJSON *a = cJSON_AddArrayToObject(p, "exec");
		for (size_t i = 0; i < h->nexec; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(h->exec[i]));
	} else if (spec_health_target(h, t->port, target, sizeof(target)) == 0) {
		cJSON_AddStringToObject(p, h->http ? "http" : "tcp", target);
	}
	cJSON_AddNumberToObject(p, "interval_ms", (double)h->interval_ms);
	cJSON_AddNumberToObject(p, "timeout_ms", (double)h->timeout_ms);
	cJSON_AddNumberToObject(p, "failures", h->failures);
	cJSON_AddNumberToObject(p, "successes", h->successes);
	cJSON_AddNumberToObject(p, "grace_ms", (double)h->grace_ms);
}

void agents_order_start(struct master *m, struct job *j, struct task *t)
{
	struct node *n = node_find(m, t->node);
	const struct spec *s = serve_task_spec(j, t);
	const struct spec_role *role = spec_task_role(s, t->idx, NULL);
	const char *image = role ? role->image : s->image;
	char *const *command = role ? role->command : s->command;
	size_t ncommand = role ? role->ncommand : s->ncommand;
	const struct spec_env *envs = role ? role->env : s->env;
	size_t nenv = role ? role->nenv : s->nenv;
	const struct res *res = role ? &role->res : &s->res;
	cJSON *o, *a, *env;
	char buf[64];

	if (!n)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "op", "start");
	cJSON_AddNumberToObject(o, "job", (double)j->id);
	cJSON_AddNumberToObject(o, "task", t->idx);
	cJSON_AddNumberToObject(o, "attempt", t->attempt);
	cJSON_AddStringToObject(o, "name", s->name);
	cJSON_AddStringToObject(o, "image", image);
	cJSON_AddStringToObject(o, "workdir", s->workdir ? s->workdir : "/work");
	a = cJSON_AddArrayToObject(o, "command");
	for (size_t i = 0; i < ncommand; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(command[i]));
	a = cJSON_AddArrayToObject(o, "gpus");
	for (uint32_t i = 0; i < t->ngpus; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(n->cap.gpus[t->gpu_pos[i]].index));
	cJSON_AddNumberToObject(o, "gpus_milli", res->gpus_milli);
	cJSON_AddNumberToObject(o, "memory", (double)res->mem);
	cJSON_AddNumberToObject(o, "cpu_milli", res->cpu_milli);
	env = cJSON_AddObjectToObject(o, "env");
	for (size_t i = 0; i < nenv; i++)
		cJSON_AddStringToObject(env, envs[i].key, envs[i].val);
	snprintf(buf, sizeof(buf), "%" PRIu64, j->id);
	cJSON_AddStringToObject(env, "MLSCHED_JOB_ID", buf);
	cJSON_AddStringToObject(env, "MLSCHED_JOB_NAME", s->name);
	snprintf(buf, sizeof(buf), "%u", t->idx);
	cJSON_AddStringToObject(env, "MLSCHED_TASK_INDEX", buf);
	snprintf(buf, sizeof(buf), "%u", j->ntasks);
	cJSON_AddStringToObject(env, "MLSCHED_TASK_COUNT", buf);
	cJSON_AddStringToObject(env, "MLSCHED_NODE", n->name);
	snprintf(buf, sizeof(buf), "%u", t->attempt);
	cJSON_AddStringToObject(env, "MLSCHED_ATTEMPT", buf);
	if (t->port) {
		cJSON_AddNumberToObject(o, "port", t->port);
		snprintf(buf, sizeof(buf), "%u", t->port);
		cJSON_AddStringToObject(env, "PORT", buf);
	}
	if (s->kind == SPEC_SERVE) {
		snprintf(buf, sizeof(buf), "%u", t->version);
		cJSON_AddStringToObject(env, "MLSCHED_VERSION", buf);
		if (s->health.set)
			health_order(s, t, o);
	}
	if (s->kind == SPEC_TRAIN && role)
		roles_env(m, j, t, env);
	else if (s->kind == SPEC_TRAIN)
		gang_env(m, j, t, env);
	if (s->kind == SPEC_BATCH) {
		snprintf(buf, sizeof(buf), "%u", t->idx);
		cJSON_AddStringToObject(env, "ARRAY_INDEX", buf);
	}
	agents_order(m, n, o);
}

/* Queue a stop of one run (attempt) of a task on n.  A reason (for the
 * agent's log) goes with a stop that does not wait for the grace. */
static void order_stop(struct master *m, struct node *n, uint64_t job, uint32_t task,
		       uint32_t attempt, uint64_t grace_ms, const char *reason)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "op", "stop");
	cJSON_AddNumberToObject(o, "job", (double)job);
	cJSON_AddNumberToObject(o, "task", task);
	cJSON_AddNumberToObject(o, "attempt", attempt);
	cJSON_AddNumberToObject(o, "grace_ms", (double)grace_ms);
	if (reason)
		cJSON_AddStringToObject(o, "reason", reason);
	agents_order(m, n, o);
}

void agents_order_stop(struct master *m, struct job *j, struct task *t)
{
	struct node *n = node_find(m, t->node);

	t->stop_sent = true;
	job_dirty(m, j);
	/* Queued even for a node that is silent now: if it comes back, the
	 * order is waiting; if it is declared lost, its orders go with it. */
	if (n)
		order_stop(m, n, j->id, t->idx, t->attempt, m->cfg.grace_ms, NULL);
}

static void reply_poll(struct master *m, struct node *n)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddNumberToObject(b, "ack", (double)n->event_acked);
	cJSON_AddStringToObject(b, "boot", m->boot);
	cJSON_AddItemToObject(b, "orders", cJSON_Duplicate(n->orders, 1));
	out_reply(m, m->agents, &n->poll, WIRE_ORDERS, b);
	n->poll_held = false;
}

/* Forget orders the agent has processed. */
static void drop_acked(struct node *n, uint64_t ack)
{
	wire_drop_acked(n->orders, ack);
	n->order_acked = ack;
}

/* Is o an order of op op_name (NULL: any op) for this task? */
static bool order_is(const cJSON *o, const char *op_name, uint64_t job, uint32_t task)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
	const cJSON *jj = cJSON_GetObjectItemCaseSensitive(o, "job");
	const cJSON *tt = cJSON_GetObjectItemCaseSensitive(o, "task");

	return cJSON_IsString(op) && (!op_name || strcmp(op->valuestring, op_name) == 0) &&
	       cJSON_IsNumber(jj) && (uint64_t)jj->valuedouble == job && cJSON_IsNumber(tt) &&
	       (uint32_t)tt->valuedouble == task;
}

/* Forget queued orders of one op for one task (NULL op: every op). */
static void drop_orders(struct node *n, const char *op_name, uint64_t job, uint32_t task)
{
	cJSON *o = n->orders->child;

	while (o) {
		cJSON *next = o->next;
		if (order_is(o, op_name, job, task))
			cJSON_Delete(cJSON_DetachItemViaPointer(n->orders, o));
		o = next;
	}
}

static bool has_stop_order(struct node *n, uint64_t job, uint32_t task)
{
	const cJSON *o;

	cJSON_ArrayForEach(o, n->orders)
	{
		if (order_is(o, "stop", job, task))
			return true;
	}
	return false;
}

/* The agent's capacity and labels; true when they changed. */
static bool update_capacity(struct node *n, const cJSON *cap)
{
	const cJSON *gpus, *g, *labels, *ports;
	const char *addr;
	bool changed = false;
	uint64_t v;
	uint32_t i = 0;

	if (wire_get_str(cap, "address", sizeof(n->address) - 1, &addr) == 0 &&
	    strcmp(addr, n->address) != 0) {
		strlcpy_ok(n->address, addr, sizeof(n->address));
		n->dirty = true;
	}
	if (wire_get_u64(cap, "cpu_milli", UINT32_MAX, &v) == 0 && v != n->cap.cpu_total) {
		n->cap.cpu_total = (uint32_t)v;
		changed = true;
	}
	if (wire_get_u64(cap, "memory", UINT64_MAX >> 11, &v) == 0 && v != n->cap.mem_total) {
		n->cap.mem_total = v;
		changed = true;
	}
	if (wire_get_array(cap, "gpus", RES_MAX_GPUS, &gpus) == 0) {
		cJSON_ArrayForEach(g, gpus)
		{
			struct res_gpu *rg = &n->cap.gpus[i];
			const char *model = "";
			uint64_t idx = 0, mem = 0;
			wire_get_u64(g, "index", 1024, &idx);
			wire_get_u64(g, "memory", UINT64_MAX >> 11, &mem);
			wire_get_str(g, "model", RES_MODEL_LEN - 1, &model);
			if (i >= n->cap.ngpus || rg->index != idx || rg->mem != mem ||
			    strcmp(rg->model, model) != 0) {
				rg->index = (uint32_t)idx;
				rg->mem = mem;
				strlcpy_ok(rg->model, model, sizeof(rg->model));
				changed = true;
			}
			i++;
		}
		if (i != n->cap.ngpus) {
			n->cap.ngpus = i;
			changed = true;
		}
	}
	if (wire_get_array(cap, "ports", 2, &ports) == 0 && cJSON_GetArraySize(ports) == 2) {
		double lo = cJSON_GetArrayItem(ports, 0)->valuedouble;
		double hi = cJSON_GetArrayItem(ports, 1)->valuedouble;
		if (lo >= 1 && hi <= 65535 && lo <= hi &&
		    ((uint32_t)lo != n->port_lo || (uint32_t)hi != n->port_hi)) {
			n->port_lo = (uint32_t)lo;
			n->port_hi = (uint32_t)hi;
			n->port_next = 0;
			n->dirty = true;
		}
	}
	{
		/* A GPU that is lost or erring (NVML): no new work here until
		 * it clears; running tasks are left alone. */
		const char *ge = "";
		char cut[REASON_MAX];
		/* Present but unreadable (too long, not a string) is an error
		 * all the same, never "healthy". */
		if (cJSON_GetObjectItemCaseSensitive(cap, "gpu_error") &&
		    wire_get_str(cap, "gpu_error", WIRE_MAX_STR, &ge) != 0)
			ge = "the agent reports a GPU error this master cannot read";
		snprintf(cut, sizeof(cut), "%s", ge);
		ge = cut;
		if (strcmp(ge, n->gpu_error) != 0) {
			if (*ge)
				log_warn("node=%s unschedulable: %s", n->name, ge);
			else
				log_info("node=%s GPUs healthy again: schedulable", n->name);
			strlcpy_ok(n->gpu_error, ge, sizeof(n->gpu_error));
			n->dirty = true;
			changed = true;
		}
	}
	if (wire_get_object(cap, "labels", &labels) == 0 && !cJSON_Compare(labels, n->labels, 1)) {
		cJSON_Delete(n->labels);
		n->labels = cJSON_Duplicate(labels, 1);
		changed = true;
	}
	if (changed)
		n->dirty = true;
	return changed;
}

/* The job and task an event or listing names, if it is placed on n. */
static struct task *lookup_task(struct master *m, struct node *n, const cJSON *e, struct job **jp)
{
	uint64_t jid, idx, att;
	struct job *j;

	if (wire_get_u64(e, "job", UINT64_MAX >> 11, &jid) != 0 ||
	    wire_get_u64(e, "task", SPEC_MAX_TASKS, &idx) != 0)
		return NULL;
	if (!(j = job_by_id(m, jid)) || idx >= j->ntasks)
		return NULL;
	if (strcmp(j->tasks[idx].node, n->name) != 0)
		return NULL;
	/* An event of an earlier attempt (the task was requeued since) must
	 * not touch the current one. */
	if (wire_get_u64(e, "attempt", UINT32_MAX, &att) == 0 && att != j->tasks[idx].attempt)
		return NULL;
	*jp = j;
	return &j->tasks[idx];
}

static void apply_event(struct master *m, struct node *n, const cJSON *e)
{
	const char *type = "", *reason = "";
	struct job *j = NULL;
	struct task *t;
	int64_t code = 0, sig = 0;
	uint64_t req;

	wire_get_str(e, "type", 32, &type);
	if (strcmp(type, "log") == 0) {
		if (wire_get_u64(e, "req", UINT64_MAX >> 11, &req) == 0)
			api_log_reply(m, req, (cJSON *)e);
		return;
	}
	if (!(t = lookup_task(m, n, e, &j))) {
		log_warn("node=%s event %s for a task not placed there: ignored", n->name, type);
		return;
	}
	wire_get_str(e, "reason", REASON_MAX - 1, &reason);
	if (task_terminal(t->state))
		return;
	/* The agent has acted on the start: a copy still queued (a master
	 * restart re-queues starts) must never run the task again. */
	drop_orders(n, "start", j->id, t->idx);
	if (strcmp(type, "started") == 0) {
		if (t->state == TASK_ASSIGNED || t->state == TASK_STARTING) {
			t->state = TASK_RUNNING;
			t->started = wall_ms();
			job_dirty(m, j);
			log_info("job=%" PRIu64 " task=%u node=%s running", j->id, t->idx, n->name);
		}
	} else if (strcmp(type, "exited") == 0) {
		wire_get_int(e, "code", INT32_MIN, INT32_MAX, &code);
		wire_get_int(e, "signal", 0, 128, &sig);
		t->exit_code = (int)code;
		t->signal = (int)sig;
		/* Exit code 0 is a task that finished, even if a stop was on
		 * its way; anything else after a stop is our doing. */
		task_finish(m, j, t,
			    t->stop_sent && (code != 0 || sig != 0) ? TASK_KILLED : TASK_EXITED);
		log_info("job=%" PRIu64 " task=%u node=%s %s code=%d signal=%d", j->id, t->idx,
			 n->name, task_state_str(t->state), t->exit_code, t->signal);
	} else if (strcmp(type, "health") == 0) {
		bool healthy = false;
		uint64_t at = 0;
		wire_get_bool(e, "healthy", &healthy);
		wire_get_u64(e, "at", UINT64_MAX >> 11, &at);
		serve_health(m, j, t, healthy, reason, at ? at : wall_ms());
	} else if (strcmp(type, "failed") == 0 || strcmp(type, "gone") == 0) {
		bool gone = strcmp(type, "gone") == 0;
		strlcpy_ok(t->reason, reason, sizeof(t->reason));
		task_finish(m, j, t,
			    gone ? (t->stop_sent ? TASK_KILLED : TASK_LOST) : TASK_FAILED);
		log_info("job=%" PRIu64 " task=%u node=%s %s: %s", j->id, t->idx, n->name,
			 task_state_str(t->state), reason);
	} else {
		log_warn("node=%s unknown event type \"%s\": ignored", n->name, type);
		return;
	}
	job_update(m, j);
}

/* Why a copy an agent runs is no longer wanted there (for both logs). */
static void stale_reason(struct master *m, uint64_t jid, uint32_t idx, uint32_t att, char *buf,
			 size_t len)
{
	struct job *j = job_by_id(m, jid);
	const struct task *t = j && idx < j->ntasks ? &j->tasks[idx] : NULL;

	if (!t)
		snprintf(buf, len, "stale copy: the master has no such task");
	else if (job_terminal(j->state))
		snprintf(buf, len, "stale copy: job %" PRIu64 " has ended (%s)", jid,
			 job_state_str(j->state));
	else if (t->attempt != att && t->node[0] && t->state != TASK_NONE &&
		 !task_terminal(t->state))
		snprintf(buf, len, "stale copy: attempt %u of this task runs on %s now",
			 t->attempt, t->node);
	else if (t->attempt != att)
		snprintf(buf, len, "stale copy: the master has moved on to attempt %u", t->attempt);
	else
		snprintf(buf, len, "stale copy: the master has ended this task (%s)",
			 task_state_str(t->state));
}

/* The agent's list of what it runs: utilization, and strays either way. */
static void reconcile(struct master *m, struct node *n, const cJSON *tasks)
{
	const cJSON *e;
	uint64_t now = now_ms();

	cJSON_ArrayForEach(e, tasks)
	{
		struct job *j = NULL;
		struct task *t = lookup_task(m, n, e, &j);
		uint64_t cpu_ns = 0, mem = 0, jid = 0, idx = 0;
		const char *st = "";

		wire_get_str(e, "state", 16, &st);
		wire_get_u64(e, "cpu_ns", UINT64_MAX >> 11, &cpu_ns);
		wire_get_u64(e, "mem", UINT64_MAX >> 11, &mem);
		if (t && !task_terminal(t->state)) {
			const char *h = NULL;
			/* Level-triggered: a master that restarted, or missed
			 * nothing, learns the probe's verdict from the list. */
			if (wire_get_str(e, "health", 16, &h) == 0 && t->state == TASK_RUNNING &&
			    (strcmp(h, "healthy") == 0 || strcmp(h, "unhealthy") == 0) &&
			    (t->health == HEALTH_OK) != (strcmp(h, "healthy") == 0))
				serve_health(m, j, t, strcmp(h, "healthy") == 0,
					     "as the agent's task list says", wall_ms());
			if (t->cpu_ns_at && now > t->cpu_ns_at && cpu_ns >= t->cpu_ns_prev)
				t->cpu_pct = (double)(cpu_ns - t->cpu_ns_prev) / 1e4 /
					     (double)(now - t->cpu_ns_at);
			t->cpu_ns_prev = cpu_ns;
			t->cpu_ns_at = now;
			t->mem_used = mem;
			continue;
		}
		/* The agent runs something we do not want there any more. */
		wire_get_u64(e, "job", UINT64_MAX >> 11, &jid);
		wire_get_u64(e, "task", SPEC_MAX_TASKS, &idx);
		if (strcmp(st, "stopping") != 0 && !has_stop_order(n, jid, (uint32_t)idx)) {
			uint64_t att = 0;
			char why[REASON_MAX];
			wire_get_u64(e, "attempt", UINT32_MAX, &att);
			stale_reason(m, jid, (uint32_t)idx, (uint32_t)att, why, sizeof(why));
			log_warn("node=%s runs job=%" PRIu64 " task=%" PRIu64 " attempt=%" PRIu64
				 ", a stale copy (%s): killing it at once",
				 n->name, jid, idx, att, why);
			/* Another copy may be running elsewhere, holding GPUs
			 * on two nodes: no grace for this one. */
			order_stop(m, n, jid, (uint32_t)idx, (uint32_t)att, 0, why);
		}
	}
	/* Running tasks the agent no longer lists are gone (its exit event
	 * would have come first, in the same message).  The node's own list
	 * (a copy: job_update may change it), so a heartbeat costs what the
	 * node runs. */
	uint32_t nt;
	struct node_task *ts = node_tasks_copy(n, &nt);
	for (uint32_t i = 0; i < nt; i++) {
		struct job *j = ts[i].j;
		struct task *t = &j->tasks[ts[i].idx];
		bool listed = false;
		if (t->state != TASK_RUNNING || strcmp(t->node, n->name) != 0)
			continue;
		cJSON_ArrayForEach(e, tasks)
		{
			uint64_t jid = 0, idx = 0, att = t->attempt;
			wire_get_u64(e, "job", UINT64_MAX >> 11, &jid);
			wire_get_u64(e, "task", SPEC_MAX_TASKS, &idx);
			wire_get_u64(e, "attempt", UINT32_MAX, &att);
			if (jid == j->id && idx == t->idx && att == t->attempt) {
				listed = true;
				break;
			}
		}
		if (listed)
			continue;
		snprintf(t->reason, sizeof(t->reason),
			 "the agent on %s no longer runs it (agent restarted?)", n->name);
		task_finish(m, j, t, TASK_LOST);
		log_warn("job=%" PRIu64 " task=%u node=%s lost: %s", j->id, t->idx, n->name,
			 t->reason);
		job_update(m, j);
	}
	free(ts);
}

/* Was pk revoked by `mlctl nodes remove` (of any node: the key is out, not
 * just the name)?  The node it belonged to, or NULL.  Only join attempts
 * (keys the master does not know for the name) get here, so the walk is
 * not on the heartbeat path. */
static struct node *revoked_by(struct master *m, const uint8_t *pk)
{
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *o = m->nodes[i];
		for (uint32_t k = 0; k < o->nrevoked; k++)
			if (sodium_memcmp(o->revoked[k], pk, SEAL_PK_LEN) == 0)
				return o;
	}
	return NULL;
}

/*
 * A sealed SYNC proves which key sent it.  A node already joined must use
 * its recorded key; a new node, or one whose agent has a new key, must show
 * the current join secret (join.token is re-read when it changed, so a
 * rotated-away token is refused at once).  A key revoked by `mlctl nodes
 * remove` is refused whatever it shows.  On refusal the agent gets an error
 * it logs.
 */
static bool agent_key_ok(struct master *m, struct node *n, const char *name,
			 const struct net_peer *peer, const cJSON *body)
{
	const char *join = NULL;
	struct node *rv = NULL;
	char why[512];

	if (n && n->has_pk && sodium_memcmp(n->pk, peer->pk, SEAL_PK_LEN) == 0)
		return true;
	if ((rv = revoked_by(m, peer->pk))) {
		snprintf(why, sizeof(why),
			 "this agent's key was revoked (mlctl nodes remove %s); to join again, "
			 "delete agent.key in the agent's --state-dir (a new key is made) and "
			 "start it with a valid join token",
			 rv->name);
		goto refuse;
	}
	keys_refresh(m, KEYS_TOKEN);
	wire_get_str(body, "join", SEAL_TOKEN_LEN, &join);
	if (keys_join_ok(m, join, why, sizeof(why))) {
		/* A node whose agent is alive keeps its key: a second agent
		 * with the same name (a copied config, a twin host name) must
		 * not take it over.  Once the node is silent past the node
		 * timeout, a new agent key may join under its name. */
		if (n && n->has_pk && n->state == NODE_READY && n->confirmed &&
		    now_ms() - n->last_seen <= m->cfg.node_timeout_ms) {
			snprintf(why, sizeof(why),
				 "this node name is in use by another agent that is alive; give "
				 "this agent another --name");
			goto refuse;
		}
		if (n && n->removed) {
			log_warn("node=%s joins again after its removal, with a new key", name);
			n->removed = false;
			n->dirty = true;
		} else if (n && n->has_pk) {
			log_warn("node=%s joined again with a new key", name);
		}
		return true;
	}
	if (n && n->has_pk)
		snprintf(why, sizeof(why), "this node name is registered with another agent key; "
					   "join again with the current token");
refuse:
	log_warn("node=%s refused: %s", name, why);
	{
		cJSON *e = wire_error_body(ERR_INVAL, "%s", why);
		/* The agent stops what it runs: its tasks were moved when
		 * it was removed, so every copy it has is stale. */
		if (rv)
			cJSON_AddBoolToObject(e, "revoked", true);
		out_reply(m, m->agents, peer, WIRE_ERROR, e);
	}
	return false;
}

void agents_handle(struct master *m, const struct net_peer *peer, const struct wire_hdr *h,
		   cJSON *body)
{
	const char *name, *boot = "", *mboot = "";
	const cJSON *cap, *util, *events = NULL, *tasks, *e;
	struct node *n;
	uint64_t ack = 0, seq;
	bool news = false, ping = false;

	if (h->type != WIRE_SYNC) {
		log_warn("agent socket: unexpected %s message: ignored", wire_type_str(h->type));
		return;
	}
	if (wire_get_str(body, "node", NODE_NAME_MAX, &name) != 0 || !spec_name_ok(name)) {
		log_warn("agent socket: sync with a bad node name: ignored");
		return;
	}
	wire_get_str(body, "boot", 39, &boot);
	wire_get_u64(body, "ack", UINT64_MAX >> 11, &ack);
	/* An ack counts our orders only if the agent has heard from us. */
	if (wire_get_str(body, "master_boot", 39, &mboot) != 0 || strcmp(mboot, m->boot) != 0)
		ack = 0;
	n = node_find(m, name);
	if (!m->cfg.insecure && !agent_key_ok(m, n, name, peer, body))
		return;
	{
		/* Labels over their limits (bounds.h): refused whole, before
		 * the node is registered or changed. */
		const cJSON *lc, *lab;
		char why[160];
		if (wire_get_object(body, "capacity", &lc) == 0 &&
		    wire_get_object(lc, "labels", &lab) == 0 &&
		    bounds_labels_check(lab, why, sizeof(why)) != 0) {
			log_warn("node=%s refused: %s", name, why);
			out_reply(m, m->agents, peer, WIRE_ERROR,
				  wire_error_body(ERR_TOOBIG, "%s", why));
			return;
		}
	}
	if (!n) {
		n = node_add(m, name);
		log_info("node=%s registered", name);
	}
	if (n->removed && m->cfg.insecure) {
		/* No keys to revoke: a removed node whose agent still runs
		 * comes back as it registers. */
		n->removed = false;
		n->dirty = true;
		log_warn("node=%s registers again after its removal (--insecure: no agent key "
			 "to revoke)",
			 name);
	}
	if (!m->cfg.insecure && (!n->has_pk || sodium_memcmp(n->pk, peer->pk, SEAL_PK_LEN))) {
		memcpy(n->pk, peer->pk, SEAL_PK_LEN);
		n->has_pk = true;
		n->dirty = true;
	}
	if (strcmp(n->boot, boot) != 0) {
		/* A new agent process: its event numbers start again. */
		strlcpy_ok(n->boot, boot, sizeof(n->boot));
		n->event_acked = 0;
		news = true;
	}
	if ((wire_get_object(body, "capacity", &cap) == 0 && update_capacity(n, cap)) || !n->sn)
		sched_sync_node(m, n);
	if (wire_get_object(body, "util", &util) == 0) {
		const cJSON *g;
		uint64_t v;
		int64_t pct;
		if (wire_get_int(util, "cpu_pct", 0, 100, &pct) == 0)
			n->cpu_pct = (double)pct;
		if (wire_get_u64(util, "mem_used", UINT64_MAX >> 11, &v) == 0)
			n->mem_used = v;
		if (wire_get_array(util, "gpus", RES_MAX_GPUS, &g) == 0) {
			cJSON_Delete(n->gpu_util);
			n->gpu_util = cJSON_Duplicate(g, 1);
		}
	}
	n->last_seen = now_ms();
	if (n->state != NODE_READY || !n->confirmed) {
		n->state = NODE_READY;
		n->confirmed = true;
		n->dirty = true;
		sched_node_state(m, n);
		log_info("node=%s ready: %u GPUs, %u millicores%s", name, n->cap.ngpus,
			 n->cap.cpu_total, n->drained ? " (drained)" : "");
	}
	drop_acked(n, ack);
	if (wire_get_array(body, "events", MAX_EVENTS, &events) == ERR_PROTO)
		log_warn("node=%s sent more than %d events or a malformed list: ignored", name,
			 MAX_EVENTS);
	if (events) {
		cJSON_ArrayForEach(e, events)
		{
			if (wire_get_u64(e, "seq", UINT64_MAX >> 11, &seq) != 0 ||
			    seq <= n->event_acked)
				continue;
			apply_event(m, n, e);
			n->event_acked = seq;
			news = true;
		}
	}
	if (wire_get_array(body, "tasks", MAX_TASKS_LISTED, &tasks) == 0)
		reconcile(m, n, tasks);
	n->poll = *peer;
	n->poll_held = true;
	n->pipe = peer->pipe;
	n->closed_at = 0;
	/* An agent that heard nothing for a while asks (ping), to tell a
	 * dead or frozen master from a quiet one. */
	wire_get_bool(body, "ping", &ping);
	if (news || ping || cJSON_GetArraySize(n->orders) > 0)
		reply_poll(m, n);
}

/*
 * A killed agent's connection closes at once (the kernel closes its
 * sockets), long before its heartbeats are missed.  The node is lost when
 * no new SYNC comes within CLOSE_GRACE_MS of the close: an agent that
 * restarts, or reconnects after a network blip, is back well within it.
 */
#define CLOSE_GRACE_MS 500

void agents_closed(struct master *m, uint32_t pipe)
{
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		if (n->state == NODE_READY && n->pipe == pipe && pipe != 0 && !n->closed_at) {
			n->closed_at = now_ms();
			log_debug(LOG_SUB_WIRE, "node=%s connection closed", n->name);
		}
	}
}

/*
 * The node is lost: its tasks are not at fault.  Each job moves its work
 * elsewhere (requeue) while it has reschedules left (reschedule.max, per
 * job, one per node loss); a gang moves whole, so its other workers stop
 * and come back with it.  Out of reschedules, the tasks are lost and the
 * restart policy decides, as for any failure.
 */
static void lose_tasks(struct master *m, struct node *n, const char *what)
{
	uint32_t nt, njobs = 0;
	struct node_task *ts = node_tasks_copy(n, &nt);
	struct job **jobs = xcalloc(nt + 1, sizeof(*jobs));

	/* The jobs with live tasks on n, each once. */
	for (uint32_t i = 0; i < nt; i++) {
		uint32_t k;
		for (k = 0; k < njobs && jobs[k] != ts[i].j; k++)
			;
		if (k == njobs)
			jobs[njobs++] = ts[i].j;
	}
	for (uint32_t k = 0; k < njobs; k++) {
		struct job *j = jobs[k];
		bool moved = false;
		bool may = !j->cancel && j->reschedules < j->spec->reschedule_max;
		for (uint32_t i = 0; i < nt; i++) {
			struct task *t;
			if (ts[i].j != j)
				continue;
			t = &j->tasks[ts[i].idx];
			if (task_terminal(t->state) || t->state == TASK_NONE ||
			    strcmp(t->node, n->name) != 0)
				continue;
			snprintf(t->reason, sizeof(t->reason), "node %s %s", n->name, what);
			if (t->stop_sent) {
				task_finish(m, j, t, TASK_KILLED);
				continue;
			}
			if (may && !t->retire) {
				t->requeue = t->rescheduled = true;
				moved = true;
			}
			task_finish(m, j, t, TASK_LOST);
		}
		if (moved) {
			j->reschedules++;
			m->stats.reschedules++;
			snprintf(j->last_reschedule, sizeof(j->last_reschedule), "node %s %s",
				 n->name, what);
			log_info("job=%" PRIu64 " name=%s reschedule %u of %u: node %s %s", j->id,
				 j->spec->name, j->reschedules, j->spec->reschedule_max, n->name,
				 what);
			if (j->spec->kind == SPEC_TRAIN) {
				for (uint32_t x = 0; x < j->ntasks; x++) {
					struct task *o = &j->tasks[x];
					if (o->state == TASK_NONE || task_terminal(o->state) ||
					    o->stop_sent)
						continue;
					o->requeue = o->rescheduled = true;
					agents_order_stop(m, j, o);
				}
			}
		}
		/* job_update may end j: nothing of it is used after. */
		job_update(m, j);
	}
	free(jobs);
	free(ts);
}

void agents_tick(struct master *m)
{
	uint64_t now = now_ms();

	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		bool silent = now - n->last_seen > m->cfg.node_timeout_ms;
		bool closed = n->closed_at && now - n->closed_at >= CLOSE_GRACE_MS &&
			      n->closed_at > n->last_seen;
		if (n->state == NODE_READY && (silent || closed)) {
			n->state = NODE_LOST;
			n->dirty = true;
			m->stats.node_losses++;
			n->poll_held = false;
			n->closed_at = 0;
			sched_node_state(m, n);
			if (closed && !silent)
				log_warn("node=%s lost: its agent's connection closed and it did not "
					 "come back within %d ms",
					 n->name, CLOSE_GRACE_MS);
			else
				log_warn("node=%s lost: no heartbeat for %" PRIu64 " ms", n->name,
					 now - n->last_seen);
			lose_tasks(m, n, "lost");
			/* Orders for a lost node are moot; if it comes back it
			 * lists what it runs and we stop the strays then. */
			cJSON_Delete(n->orders);
			n->orders = cJSON_CreateArray();
		}
		if (n->state == NODE_READY && n->poll_held && cJSON_GetArraySize(n->orders) > 0)
			reply_poll(m, n);
	}
}

/*
 * mlctl nodes remove.  The agent key is revoked (kept in the node's record
 * among its revoked keys, so that it is refused under any name, even with a valid
 * token, also after a master restart), the node stops being schedulable,
 * and its work moves as when a node is lost (reschedule: decides).  The
 * record stays, listed as "removed": the node's name may join again, with
 * a new agent key and a valid join token.  The removed agent's next
 * message is refused with "revoked": it kills what it runs (stale copies
 * now); if it had been down, the host lists them when it joins again and
 * they are killed then.
 */
uint32_t agents_remove(struct master *m, struct node *n)
{
	uint32_t live = n->ntasks;

	if (n->has_pk) {
		node_revoke_key(n, n->pk);
		n->has_pk = false;
		sodium_memzero(n->pk, sizeof(n->pk));
	}
	n->removed = true;
	n->dirty = true;
	n->poll_held = false;
	n->closed_at = 0;
	if (n->state == NODE_READY) {
		n->state = NODE_LOST;
		sched_node_state(m, n);
	}
	lose_tasks(m, n, "removed");
	cJSON_Delete(n->orders);
	n->orders = cJSON_CreateArray();
	return live;
}

void node_revoke_key(struct node *n, const uint8_t *pk)
{
	if (!n->revoked)
		n->revoked = xcalloc(NODE_REVOKED_MAX, SEAL_PK_LEN);
	if (n->nrevoked == NODE_REVOKED_MAX) {
		memmove(n->revoked[0], n->revoked[1], (NODE_REVOKED_MAX - 1) * SEAL_PK_LEN);
		n->nrevoked--;
	}
	memcpy(n->revoked[n->nrevoked++], pk, SEAL_PK_LEN);
}
