/*
 * api.c - requests from mlctl: submit, list, status, cancel, nodes, logs.
 *
 * Each handler changes the model and queues its reply; main.c sends replies
 * only after the turn's writes are committed.  Logs are relayed: the request
 * becomes a "log" order for the task's agent, and the reply goes out when
 * the agent's chunk comes back (or an error when it does not in time).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "pools.h"
#include "serve.h"
#include "util.h"
#include "wire.h"

#define LOG_TIMEOUT_MS 5000

static void reply_err(struct master *m, const struct net_peer *peer, int code, const char *msg)
{
	out_reply(m, m->ctl, peer, WIRE_ERROR, wire_error_body(code, "%s", msg));
}

static struct job *find_or_reply(struct master *m, const struct net_peer *peer, cJSON *body)
{
	const char *ref;
	struct job *j;
	char msg[256];

	if (wire_get_str(body, "job", 256, &ref) != 0) {
		reply_err(m, peer, ERR_INVAL, "a job name or id is required");
		return NULL;
	}
	if (!(j = job_find(m, ref))) {
		snprintf(msg, sizeof(msg), "no job \"%s\"", ref);
		reply_err(m, peer, ERR_NOENT, msg);
	}
	return j;
}

/* Who asked, for a serve job's history. */
static void requester(const struct master *m, const struct net_peer *peer, char *buf, size_t len)
{
	char pk[SEAL_PK_STR_LEN];

	if (m->cfg.insecure || !peer->sealed) {
		snprintf(buf, len, "an unsealed client");
		return;
	}
	seal_pk_str(peer->pk, pk);
	snprintf(buf, len, "key %.12s", pk);
}

static void reply_version(struct master *m, const struct net_peer *peer, struct job *j,
			  bool unchanged)
{
	cJSON *r = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "name", j->spec->name);
	cJSON_AddNumberToObject(r, "version", j->serve->version);
	cJSON_AddBoolToObject(r, "unchanged", unchanged);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/* A serve spec submitted under the name of a running serve job: a new
 * version if only image, command or env changed (takes spec). */
static void submit_rollout(struct master *m, const struct net_peer *peer, struct job *j,
			   struct spec *spec)
{
	char by[64], why[512];
	int rv;

	requester(m, peer, by, sizeof(by));
	/* Scaling is not part of a version: compare at today's counts. */
	spec->replicas = j->spec->replicas;
	spec->standby = j->spec->standby;
	rv = serve_rollout(m, j, spec, by, why, sizeof(why));
	if (rv == ERR_EXIST) {
		spec_free(spec);
		reply_version(m, peer, j, true);
		return;
	}
	if (rv != 0) {
		char msg[700];
		snprintf(msg, sizeof(msg), "job \"%s\" runs already (job %" PRIu64 "): %s",
			 j->spec->name, j->id, why);
		spec_free(spec);
		reply_err(m, peer, rv, msg);
		return;
	}
	reply_version(m, peer, j, false);
}

static void do_submit(struct master *m, const struct net_peer *peer, cJSON *body)
{
	const cJSON *sj;
	const char *rid = "";
	struct spec *spec;
	struct job *j;
	char err[SPEC_ERR_LEN], msg[SPEC_ERR_LEN + 64];
	cJSON *r;

	if (wire_get_object(body, "spec", &sj) != 0) {
		reply_err(m, peer, ERR_INVAL, "spec: required");
		return;
	}
	/* A resent submission (its reply was lost with a master that died)
	 * answers with the job it made. */
	if (wire_get_str(body, "request_id", 39, &rid) == 0 && *rid &&
	    (j = job_by_request(m, rid))) {
		r = cJSON_CreateObject();
		cJSON_AddNumberToObject(r, "id", (double)j->id);
		cJSON_AddStringToObject(r, "name", j->spec->name);
		cJSON_AddBoolToObject(r, "repeated", true);
		log_info("job=%" PRIu64 " submission %s repeated: answered again", j->id, rid);
		out_reply(m, m->ctl, peer, WIRE_OK, r);
		return;
	}
	if (spec_from_json(sj, &spec, err, sizeof(err)) != 0) {
		reply_err(m, peer, ERR_INVAL, err);
		return;
	}
	if (!sched_job_policy(m, spec)) {
		snprintf(msg, sizeof(msg), "spec: policy: unknown placement policy \"%s\"",
			 spec->policy ? spec->policy : m->cfg.sched_policy);
		spec_free(spec);
		reply_err(m, peer, ERR_INVAL, msg);
		return;
	}
	for (size_t i = 0; i < spec->nconstraints; i++) {
		struct sched_cons c;
		char why[160];
		if (sched_cons_parse(spec->constraints[i], &c, why, sizeof(why)) != 0) {
			snprintf(msg, sizeof(msg), "spec: constraints[%zu]: %s", i, why);
			spec_free(spec);
			reply_err(m, peer, ERR_INVAL, msg);
			return;
		}
	}
	if (queues_submit(m, spec, msg, sizeof(msg)) != 0) {
		spec_free(spec);
		reply_err(m, peer, ERR_INVAL, msg);
		return;
	}
	if ((j = job_find(m, spec->name)) && !job_terminal(j->state)) {
		if (j->serve && spec->kind == SPEC_SERVE && !j->cancel) {
			submit_rollout(m, peer, j, spec);
			return;
		}
		snprintf(msg, sizeof(msg), "job name \"%s\" is in use by job %" PRIu64 " (%s)",
			 spec->name, j->id, job_state_str(j->state));
		spec_free(spec);
		reply_err(m, peer, ERR_EXIST, msg);
		return;
	}
	j = job_create(m, spec);
	strlcpy_ok(j->request_id, rid, sizeof(j->request_id));
	job_index(m, j);
	m->stats.submitted++;
	log_info("job=%" PRIu64 " name=%s kind=%s tasks=%u submitted", j->id, spec->name,
		 spec_kind_str(spec->kind), j->ntasks);
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "name", spec->name);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/*
 * Unfinished jobs and the newest LIST_FINISHED finished ones; with "all",
 * every job up to LIST_MAX (a reply must stay under the wire's size limit).
 */
#define LIST_FINISHED 500
#define LIST_MAX 20000

static void do_list(struct master *m, const struct net_peer *peer, cJSON *body)
{
	cJSON *r = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(r, "jobs");
	struct job **pick = xcalloc(m->njobs + 1, sizeof(*pick));
	size_t finished = 0, omitted = 0, n = 0;
	bool all = false;

	wire_get_bool(body, "all", &all);
	/* Walk from the newest so that the cut drops the oldest. */
	for (size_t i = m->njobs; i-- > 0;) {
		bool fin = job_terminal(m->jobs[i]->state);
		if (fin)
			finished++;
		if ((fin && !all && finished > LIST_FINISHED) || n >= LIST_MAX)
			omitted++;
		else
			pick[n++] = m->jobs[i];
	}
	while (n-- > 0)
		cJSON_AddItemToArray(a, job_to_json(m, pick[n], false));
	free(pick);
	cJSON_AddNumberToObject(r, "omitted", (double)omitted);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_status(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = find_or_reply(m, peer, body);
	cJSON *r;

	if (!j)
		return;
	r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, "job", job_to_json(m, j, true));
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_cancel(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = find_or_reply(m, peer, body);
	cJSON *r;

	if (!j)
		return;
	if (!job_terminal(j->state)) {
		if (j->cancel) {
			/* Asked again: send the stops again (idempotent on
			 * the agent), in case one was lost with a node. */
			for (uint32_t k = 0; k < j->ntasks; k++)
				if (j->tasks[k].state != TASK_NONE &&
				    !task_terminal(j->tasks[k].state))
					agents_order_stop(m, j, &j->tasks[k]);
		}
		j->cancel = true;
		job_dirty(m, j);
		log_info("job=%" PRIu64 " name=%s cancel requested", j->id, j->spec->name);
		job_update(m, j);
	}
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "state", job_state_str(j->state));
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_nodes(struct master *m, const struct net_peer *peer, cJSON *body)
{
	cJSON *r = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(r, "nodes");

	for (size_t i = 0; i < m->nnodes; i++)
		cJSON_AddItemToArray(a, node_to_json(m->nodes[i], true));
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static struct node *node_or_reply(struct master *m, const struct net_peer *peer, cJSON *body)
{
	const char *name;
	struct node *n;
	char msg[160];

	if (wire_get_str(body, "node", NODE_NAME_MAX, &name) != 0) {
		reply_err(m, peer, ERR_INVAL, "a node name is required");
		return NULL;
	}
	if (!(n = node_find(m, name))) {
		snprintf(msg, sizeof(msg), "no node \"%s\"", name);
		reply_err(m, peer, ERR_NOENT, msg);
	}
	return n;
}

/*
 * Drain: no new tasks go to the node.  Running tasks finish there, or with
 * evict they are stopped and requeued (a gang as a whole, since it cannot
 * run half).
 */
static void do_drain(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct node *n = node_or_reply(m, peer, body);
	bool evict = false;
	uint32_t evicted = 0, left = 0;
	cJSON *r;

	if (!n)
		return;
	wire_get_bool(body, "evict", &evict);
	if (!n->drained) {
		n->drained = true;
		n->dirty = true;
		sched_node_state(m, n);
		log_info("node=%s drained%s", n->name, evict ? " (evicting its tasks)" : "");
	}
	for (size_t i = 0; i < m->nlive; i++) {
		struct job *j = m->live[i];
		bool here = false;
		if (j->cancel)
			continue;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			struct task *t = &j->tasks[k];
			if (strcmp(t->node, n->name) == 0 && t->state != TASK_NONE &&
			    !task_terminal(t->state))
				here = true;
		}
		if (!here)
			continue;
		if (!evict) {
			left++;
			continue;
		}
		for (uint32_t k = 0; k < j->ntasks; k++) {
			struct task *t = &j->tasks[k];
			bool mine = strcmp(t->node, n->name) == 0;
			if (t->state == TASK_NONE || task_terminal(t->state) || t->stop_sent)
				continue; /* already stopping (failing, cancelled, preempted) */
			if (!mine && j->spec->kind == SPEC_BATCH)
				continue;
			t->requeue = true;
			if (!t->stop_sent)
				agents_order_stop(m, j, t);
		}
		snprintf(j->reason, sizeof(j->reason), "evicted from drained node %s; requeued",
			 n->name);
		job_dirty(m, j);
		evicted++;
	}
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "node", n->name);
	cJSON_AddStringToObject(r, "state", "drained");
	cJSON_AddNumberToObject(r, "jobs_evicted", evicted);
	cJSON_AddNumberToObject(r, "jobs_running", left);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/*
 * mlctl nodes remove NODE: revoke the node's agent key and move its work
 * (agents_remove).  Removing a removed node again is not an error.
 */
static void do_node_remove(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct node *n = node_or_reply(m, peer, body);
	bool already;
	uint32_t moved = 0;
	cJSON *r;

	if (!n)
		return;
	already = n->removed;
	if (!already) {
		moved = agents_remove(m, n);
		log_warn("node=%s removed by %s: its agent key is revoked, %u live tasks moved "
			 "as for a lost node",
			 n->name, m->cfg.insecure ? "an unsealed client" : "an admin", moved);
	}
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "node", n->name);
	cJSON_AddStringToObject(r, "state", "removed");
	cJSON_AddNumberToObject(r, "tasks_moved", moved);
	cJSON_AddBoolToObject(r, "already", already);
	cJSON_AddBoolToObject(r, "insecure", m->cfg.insecure);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_uncordon(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct node *n = node_or_reply(m, peer, body);
	cJSON *r;

	if (!n)
		return;
	if (n->drained) {
		n->drained = false;
		n->dirty = true;
		sched_node_state(m, n);
		log_info("node=%s uncordoned", n->name);
	}
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "node", n->name);
	cJSON_AddStringToObject(r, "state",
				n->removed ? "removed" : n->state == NODE_READY ? "ready" : "lost");
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_logs(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = find_or_reply(m, peer, body);
	uint64_t task = 0, offset = 0, max = LOG_CHUNK_MAX;
	struct node *n;
	struct task *t;
	struct logreq *lr;
	char msg[512];
	cJSON *o;

	if (!j)
		return;
	if (wire_get_u64(body, "task", SPEC_MAX_TASKS, &task) != 0 ||
	    wire_get_u64(body, "offset", UINT64_MAX >> 11, &offset) != 0) {
		reply_err(m, peer, ERR_INVAL, "task and offset must be non-negative integers");
		return;
	}
	wire_get_u64(body, "max", LOG_CHUNK_MAX, &max);
	if (task >= j->ntasks) {
		snprintf(msg, sizeof(msg), "job %" PRIu64 " has %u tasks (0..%u)", j->id, j->ntasks,
			 j->ntasks - 1);
		reply_err(m, peer, ERR_NOENT, msg);
		return;
	}
	t = &j->tasks[task];
	/* Which run: --attempt N, else the latest. */
	const char *where = NULL;
	uint64_t attempt = 0;
	bool want = cJSON_GetObjectItemCaseSensitive(body, "attempt") != NULL;
	if (want && wire_get_u64(body, "attempt", UINT32_MAX, &attempt) != 0) {
		reply_err(m, peer, ERR_INVAL, "attempt must be a non-negative integer");
		return;
	}
	for (uint32_t i = t->nruns; i-- > 0;)
		if (!want || t->runs[i].attempt == attempt) {
			where = t->runs[i].node;
			attempt = t->runs[i].attempt;
			break;
		}
	if (!where && !want && t->node[0]) {
		where = t->node; /* placed before runs were kept */
		attempt = t->attempt;
	}
	if (!where && want) {
		char list[256] = "";
		for (uint32_t i = 0; i < t->nruns; i++) {
			size_t l = strlen(list);
			snprintf(list + l, sizeof(list) - l, "%s%u on %s", l ? ", " : "",
				 t->runs[i].attempt, t->runs[i].node);
		}
		snprintf(msg, sizeof(msg),
			 "job %" PRIu64 " task %" PRIu64 " has no attempt %" PRIu64
			 " on record (attempts kept: %s)",
			 j->id, task, attempt, list[0] ? list : "none");
		reply_err(m, peer, ERR_NOENT, msg);
		return;
	}
	if (!where) {
		snprintf(msg, sizeof(msg), "job %" PRIu64 " task %" PRIu64 " has not started: %s%s%s",
			 j->id, task, job_state_str(j->state), j->reason[0] ? ": " : "",
			 j->reason);
		reply_err(m, peer, ERR_STATE, msg);
		return;
	}
	n = node_find(m, where);
	if (!n || n->state != NODE_READY) {
		snprintf(msg, sizeof(msg), "node %s, which holds the log of attempt %" PRIu64
			 ", is not reachable", where, attempt);
		reply_err(m, peer, ERR_STATE, msg);
		return;
	}
	lr = xcalloc(1, sizeof(*lr));
	lr->id = ++m->next_logreq;
	lr->peer = *peer;
	lr->deadline = now_ms() + LOG_TIMEOUT_MS;
	strlcpy_ok(lr->node, n->name, sizeof(lr->node));
	lr->next = m->logreqs;
	m->logreqs = lr;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "op", "log");
	cJSON_AddNumberToObject(o, "req", (double)lr->id);
	cJSON_AddNumberToObject(o, "job", (double)j->id);
	cJSON_AddNumberToObject(o, "task", (double)task);
	cJSON_AddNumberToObject(o, "attempt", (double)attempt);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	cJSON_AddNumberToObject(o, "max", (double)max);
	agents_order(m, n, o);
}

void api_log_reply(struct master *m, uint64_t req, cJSON *e)
{
	struct logreq **pp, *lr;
	const char *data = "", *err = NULL;
	uint64_t offset = 0;
	bool eof = false, running = false;
	cJSON *r;

	for (pp = &m->logreqs; (lr = *pp); pp = &lr->next)
		if (lr->id == req)
			break;
	if (!lr)
		return; /* timed out already, or a repeat */
	*pp = lr->next;
	if (wire_get_str(e, "error", 512, &err) == 0) {
		reply_err(m, &lr->peer, ERR_IO, err);
		free(lr);
		return;
	}
	wire_get_str(e, "data", 4 * LOG_CHUNK_MAX / 3 + 8, &data);
	wire_get_u64(e, "offset", UINT64_MAX >> 11, &offset);
	wire_get_bool(e, "eof", &eof);
	wire_get_bool(e, "running", &running);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "data", data);
	cJSON_AddNumberToObject(r, "offset", (double)offset);
	cJSON_AddBoolToObject(r, "eof", eof);
	/* done: nothing more will ever be written. */
	cJSON_AddBoolToObject(r, "done", eof && !running);
	{
		/* The agent skipped bytes its --log-max dropped. */
		uint64_t dropped = 0, cap = 0;
		if (wire_get_u64(e, "dropped", UINT64_MAX >> 11, &dropped) == 0 && dropped) {
			cJSON_AddNumberToObject(r, "dropped", (double)dropped);
			wire_get_u64(e, "log_max", UINT64_MAX >> 11, &cap);
			cJSON_AddNumberToObject(r, "log_max", (double)cap);
		}
	}
	{
		uint64_t att = 0;
		wire_get_u64(e, "attempt", UINT32_MAX, &att);
		cJSON_AddNumberToObject(r, "attempt", (double)att);
	}
	out_reply(m, m->ctl, &lr->peer, WIRE_OK, r);
	free(lr);
}

void api_tick(struct master *m)
{
	struct logreq **pp = &m->logreqs, *lr;
	uint64_t now = now_ms();
	char msg[128];

	while ((lr = *pp)) {
		if (now < lr->deadline) {
			pp = &lr->next;
			continue;
		}
		*pp = lr->next;
		snprintf(msg, sizeof(msg), "node %s did not send the log in time", lr->node);
		reply_err(m, &lr->peer, ERR_TIMEDOUT, msg);
		free(lr);
	}
}

/* The serve job a request names, or NULL after replying why not
 * ("... only serve jobs WHAT"). */
static struct job *serve_job_or_reply(struct master *m, const struct net_peer *peer,
				      cJSON *body, const char *what)
{
	struct job *j = find_or_reply(m, peer, body);
	char msg[256];

	if (j && !j->serve) {
		snprintf(msg, sizeof(msg), "job %s is a %s job: only serve jobs %s", j->spec->name,
			 spec_kind_str(j->spec->kind), what);
		reply_err(m, peer, ERR_INVAL, msg);
		return NULL;
	}
	return j;
}

static void do_endpoints(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = serve_job_or_reply(m, peer, body, "have endpoints");
	cJSON *r;

	if (!j)
		return;
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "name", j->spec->name);
	cJSON_AddStringToObject(r, "state", job_state_str(j->state));
	cJSON_AddNumberToObject(r, "version", j->serve->version);
	cJSON_AddItemToObject(r, "endpoints", job_terminal(j->state) ? cJSON_CreateArray()
								    : serve_endpoints(m, j));
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

static void do_scale(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = find_or_reply(m, peer, body);
	uint64_t n = 0, k = 0;
	int64_t standby = -1;
	char by[64], why[256];
	cJSON *r;
	int rv;

	if (!j)
		return;
	if (wire_get_u64(body, "replicas", SPEC_MAX_TASKS, &n) != 0) {
		reply_err(m, peer, ERR_INVAL, "replicas: a number from 1 to 10000 is required");
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(body, "standby")) {
		if (wire_get_u64(body, "standby", SPEC_MAX_TASKS, &k) != 0) {
			reply_err(m, peer, ERR_INVAL, "standby: a number from 0 to 10000");
			return;
		}
		standby = (int64_t)k;
	}
	requester(m, peer, by, sizeof(by));
	if ((rv = serve_scale(m, j, (uint32_t)n, standby, by, why, sizeof(why))) != 0) {
		reply_err(m, peer, rv, why);
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "name", j->spec->name);
	cJSON_AddNumberToObject(r, "replicas", j->serve->replicas);
	cJSON_AddNumberToObject(r, "standby", j->serve->standby);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/* A new version from the current one: image, command or env changed. */
static void do_rollout(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = serve_job_or_reply(m, peer, body, "have versions");
	const cJSON *img, *cmd, *env, *e;
	cJSON *sj, *senv;
	struct spec *spec;
	char err[SPEC_ERR_LEN];

	if (!j)
		return;
	img = cJSON_GetObjectItemCaseSensitive(body, "image");
	cmd = cJSON_GetObjectItemCaseSensitive(body, "command");
	env = cJSON_GetObjectItemCaseSensitive(body, "env");
	if (!img && !cmd && !env) {
		reply_err(m, peer, ERR_INVAL, "a rollout needs a new image, command or env");
		return;
	}
	sj = spec_to_json(j->spec);
	if (img)
		cJSON_ReplaceItemInObjectCaseSensitive(sj, "image", cJSON_Duplicate(img, 1));
	if (cmd)
		cJSON_ReplaceItemInObjectCaseSensitive(sj, "command", cJSON_Duplicate(cmd, 1));
	if (env) {
		/* env adds to (or replaces keys of) the current env. */
		senv = cJSON_GetObjectItemCaseSensitive(sj, "env");
		if (!cJSON_IsObject(senv)) {
			cJSON_DeleteItemFromObjectCaseSensitive(sj, "env");
			senv = cJSON_AddObjectToObject(sj, "env");
		}
		cJSON_ArrayForEach(e, env)
		{
			if (cJSON_GetObjectItemCaseSensitive(senv, e->string))
				cJSON_ReplaceItemInObjectCaseSensitive(senv, e->string,
								       cJSON_Duplicate(e, 1));
			else
				cJSON_AddItemToObject(senv, e->string, cJSON_Duplicate(e, 1));
		}
	}
	if (spec_from_json(sj, &spec, err, sizeof(err)) != 0) {
		cJSON_Delete(sj);
		reply_err(m, peer, ERR_INVAL, err);
		return;
	}
	cJSON_Delete(sj);
	submit_rollout(m, peer, j, spec);
}

static void do_rollback(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = find_or_reply(m, peer, body);
	uint64_t to = 0;
	char by[64], why[256];
	int rv;

	if (!j)
		return;
	if (cJSON_GetObjectItemCaseSensitive(body, "to") &&
	    (wire_get_u64(body, "to", UINT32_MAX, &to) != 0 || to == 0)) {
		reply_err(m, peer, ERR_INVAL, "to: a version number (mlctl history lists them)");
		return;
	}
	requester(m, peer, by, sizeof(by));
	if ((rv = serve_rollback(m, j, (uint32_t)to, by, why, sizeof(why))) != 0) {
		reply_err(m, peer, rv, why);
		return;
	}
	reply_version(m, peer, j, false);
}

static void do_history(struct master *m, const struct net_peer *peer, cJSON *body)
{
	struct job *j = serve_job_or_reply(m, peer, body, "have versions");
	cJSON *r, *sv;

	if (!j)
		return;
	r = cJSON_CreateObject();
	cJSON_AddNumberToObject(r, "id", (double)j->id);
	cJSON_AddStringToObject(r, "name", j->spec->name);
	sv = serve_to_json(m, j, true, false);
	cJSON_AddItemToObject(r, "serve", sv);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/* What `mlctl top` shows: every node with its utilization, and the live
 * jobs with theirs (summed over running tasks), busiest first. */
#define TOP_JOBS_DEFAULT 20

struct top_job {
	const struct job *j;
	double cpu_pct, gpu_sum;
	uint64_t mem;
	uint32_t running, gpus_n;
	uint64_t gpus_milli; /* what its running tasks asked for */
};

static int top_cmp(const void *a, const void *b)
{
	const struct top_job *x = a, *y = b;
	double kx = x->gpus_n ? x->gpu_sum / x->gpus_n : 0, ky = y->gpus_n ? y->gpu_sum / y->gpus_n : 0;

	if (kx != ky)
		return kx < ky ? 1 : -1;
	return x->cpu_pct < y->cpu_pct ? 1 : x->cpu_pct > y->cpu_pct ? -1 : 0;
}

static void do_top(struct master *m, const struct net_peer *peer, cJSON *body)
{
	cJSON *r = cJSON_CreateObject(), *ns = cJSON_AddArrayToObject(r, "nodes");
	cJSON *js = cJSON_AddArrayToObject(r, "jobs");
	struct top_job *tj = xcalloc(m->nlive + 1, sizeof(*tj));
	uint64_t want = TOP_JOBS_DEFAULT;
	size_t n = 0;

	wire_get_u64(body, "jobs", 100000, &want);
	for (size_t i = 0; i < m->nnodes; i++)
		cJSON_AddItemToArray(ns, node_to_json(m->nodes[i], true));
	for (size_t i = 0; i < m->nlive; i++) {
		const struct job *j = m->live[i];
		struct top_job *e = &tj[n];
		memset(e, 0, sizeof(*e));
		e->j = j;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			const struct task *t = &j->tasks[k];
			struct node *nd;
			if (t->state != TASK_RUNNING)
				continue;
			e->running++;
			e->gpus_milli += task_res(j, t)->gpus_milli;
			e->cpu_pct += t->cpu_pct;
			e->mem += t->mem_used;
			nd = node_find(m, t->node);
			for (uint32_t g = 0; nd && g < t->ngpus; g++) {
				int u = t->gpu_pos[g] < nd->cap.ngpus
						? telemetry_gpu_util(nd, nd->cap.gpus[t->gpu_pos[g]].index)
						: -1;
				if (u >= 0) {
					e->gpu_sum += u;
					e->gpus_n++;
				}
			}
		}
		if (e->running)
			n++;
	}
	qsort(tj, n, sizeof(*tj), top_cmp);
	for (size_t i = 0; i < n && i < want; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "id", (double)tj[i].j->id);
		cJSON_AddStringToObject(o, "name", tj[i].j->spec->name);
		cJSON_AddStringToObject(o, "kind", spec_kind_str(tj[i].j->spec->kind));
		cJSON_AddNumberToObject(o, "running", tj[i].running);
		cJSON_AddNumberToObject(o, "cpu_pct", tj[i].cpu_pct);
		cJSON_AddNumberToObject(o, "mem_used", (double)tj[i].mem);
		cJSON_AddNumberToObject(o, "gpus", (double)tj[i].gpus_milli / 1000.0);
		cJSON_AddNumberToObject(o, "gpu_util",
					tj[i].gpus_n ? tj[i].gpu_sum / tj[i].gpus_n : -1);
		cJSON_AddItemToArray(js, o);
	}
	free(tj);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

/* mlctl pools [NAME] (pools.c builds the answer). */
static void do_pools(struct master *m, const struct net_peer *peer, cJSON *body)
{
	const char *name = NULL;
	cJSON *r, *p;
	char msg[160];

	if (cJSON_GetObjectItemCaseSensitive(body, "pool") &&
	    wire_get_str(body, "pool", NODE_NAME_MAX, &name) != 0) {
		reply_err(m, peer, ERR_INVAL, "pool: expected a pool name");
		return;
	}
	if (!m->pools) {
		reply_err(m, peer, ERR_NOENT,
			  "this master has no pools (start it with --pools FILE)");
		return;
	}
	if (!(p = pools_to_json(m, name))) {
		snprintf(msg, sizeof(msg), "no pool \"%s\" in %s", name, m->pools->path);
		reply_err(m, peer, ERR_NOENT, msg);
		return;
	}
	r = cJSON_CreateObject();
	cJSON_AddItemToObject(r, name ? "pool" : "pools", p);
	out_reply(m, m->ctl, peer, WIRE_OK, r);
}

void api_handle(struct master *m, const struct net_peer *peer, const struct wire_hdr *h,
		cJSON *body)
{
	if (!m->cfg.insecure)
		keys_refresh(m, KEYS_ADMINS); /* a stat: notices `mlmaster admin add|revoke` */
	if (!m->cfg.insecure && !keys_is_admin(m, peer->pk)) {
		char pk[SEAL_PK_STR_LEN], fp[SEAL_FP_LEN], msg[700];
		const char *broken = keys_admins_error(m);
		seal_pk_str(peer->pk, pk);
		seal_fingerprint(peer->pk, fp);
		if (broken)
			snprintf(msg, sizeof(msg),
				 "key %s (%s) is refused: the master cannot load its admin keys: %s",
				 pk, fp, broken);
		else
			snprintf(msg, sizeof(msg),
				 "key %s (%s) is not listed in %s/admins: not an admin of this "
				 "master, or revoked (mlmaster admin list shows the admins)",
				 pk, fp, m->cfg.state_dir);
		log_warn("client request refused: %s", msg);
		reply_err(m, peer, ERR_INVAL, msg);
		return;
	}
	switch (h->type) {
	case WIRE_SUBMIT:
		do_submit(m, peer, body);
		break;
	case WIRE_LIST:
		do_list(m, peer, body);
		break;
	case WIRE_STATUS:
		do_status(m, peer, body);
		break;
	case WIRE_CANCEL:
		do_cancel(m, peer, body);
		break;
	case WIRE_NODES:
		do_nodes(m, peer, body);
		break;
	case WIRE_LOGS:
		do_logs(m, peer, body);
		break;
	case WIRE_DRAIN:
		do_drain(m, peer, body);
		break;
	case WIRE_UNCORDON:
		do_uncordon(m, peer, body);
		break;
	case WIRE_NODE_REMOVE:
		do_node_remove(m, peer, body);
		break;
	case WIRE_ENDPOINTS:
		do_endpoints(m, peer, body);
		break;
	case WIRE_SCALE:
		do_scale(m, peer, body);
		break;
	case WIRE_ROLLOUT:
		do_rollout(m, peer, body);
		break;
	case WIRE_ROLLBACK:
		do_rollback(m, peer, body);
		break;
	case WIRE_HISTORY:
		do_history(m, peer, body);
		break;
	case WIRE_TOP:
		do_top(m, peer, body);
		break;
	case WIRE_POOLS:
		do_pools(m, peer, body);
		break;
	case WIRE_QUEUES:
		queues_api(m, peer, body);
		break;
	default:
		reply_err(m, peer, ERR_PROTO, "not a request type");
	}
}
