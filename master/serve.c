/*
 * serve.c - serve jobs (see serve.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "serve.h"
#include "util.h"
#include "wire.h"

/* ---- small helpers ---- */

static bool live_state(enum task_state st)
{
	return st == TASK_ASSIGNED || st == TASK_STARTING || st == TASK_RUNNING;
}

/* Running, not being stopped, and its probe (if any) says healthy. */
static bool ready(const struct task *t)
{
	return t->state == TASK_RUNNING && !t->stop_sent && !t->retire &&
	       (t->health == HEALTH_NONE || t->health == HEALTH_OK);
}

/* Placed, not failing: it will serve once it is ready.  (A slot back in
 * the queue, TASK_NONE, is not: it has no node and no container yet.) */
static bool coming(const struct task *t)
{
	return live_state(t->state) && !t->stop_sent && !t->retire && t->health != HEALTH_BAD;
}

static void add_event(struct serve_event *ring, uint32_t kept, uint32_t *count,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_event(struct serve_event *ring, uint32_t kept, uint32_t *count,
		      const char *fmt, ...)
{
	struct serve_event *e = &ring[*count % kept];
	va_list ap;

	e->at = wall_ms();
	va_start(ap, fmt);
	vsnprintf(e->what, sizeof(e->what), fmt, ap);
	va_end(ap);
	(*count)++;
}

#define HISTORY(sv, ...) add_event((sv)->history, SERVE_HISTORY_KEPT, &(sv)->nhistory, __VA_ARGS__)

static struct serve_version *version_find(const struct serve *sv, uint32_t v)
{
	for (size_t i = 0; i < sv->nversions; i++)
		if (sv->versions[i].version == v)
			return &sv->versions[i];
	return NULL;
}

const struct spec *serve_task_spec(const struct job *j, const struct task *t)
{
	const struct serve_version *v;

	if (!j->serve || !(v = version_find(j->serve, t->version)))
		return j->spec;
	return v->spec;
}

static void version_add(struct job *j, uint32_t version, struct spec *spec, uint64_t at,
			const char *by)
{
	struct serve *sv = j->serve;
	struct serve_version *v;

	if (sv->nversions == SERVE_VERSIONS_KEPT) {
		/* Drop the oldest that no task runs and that is not wanted. */
		for (size_t i = 0; i < sv->nversions; i++) {
			bool used = sv->versions[i].spec == j->spec;
			for (uint32_t k = 0; k < j->ntasks && !used; k++)
				used = j->tasks[k].version == sv->versions[i].version;
			if (used)
				continue;
			spec_free(sv->versions[i].spec);
			memmove(&sv->versions[i], &sv->versions[i + 1],
				(sv->nversions - i - 1) * sizeof(*sv->versions));
			sv->nversions--;
			break;
		}
	}
	sv->versions = xrealloc(sv->versions, (sv->nversions + 1) * sizeof(*sv->versions));
	v = &sv->versions[sv->nversions++];
	memset(v, 0, sizeof(*v));
	v->version = version;
	v->spec = spec;
	v->at = at;
	strlcpy_ok(v->by, by, sizeof(v->by));
}

static uint32_t version_max(const struct serve *sv)
{
	uint32_t v = 0;

	for (size_t i = 0; i < sv->nversions; i++)
		if (sv->versions[i].version > v)
			v = sv->versions[i].version;
	return v;
}

/* ---- set up, store ---- */

static void events_load(const cJSON *arr, struct serve_event *ring, uint32_t kept,
			uint32_t *count)
{
	const cJSON *e;
	uint32_t total = *count, n = (uint32_t)cJSON_GetArraySize(arr), i = 0;

	/* The record lists the kept events oldest first; put them back where
	 * add_event would have. */
	cJSON_ArrayForEach(e, arr)
	{
		uint32_t seq = total - n + i++;
		struct serve_event *ev = &ring[seq % kept];
		uint64_t at = 0;
		const char *what = "";
		wire_get_u64(e, "at", UINT64_MAX >> 11, &at);
		wire_get_str(e, "what", sizeof(ev->what) - 1, &what);
		ev->at = at;
		strlcpy_ok(ev->what, what, sizeof(ev->what));
	}
}

static cJSON *events_json(const struct serve_event *ring, uint32_t kept, uint32_t count)
{
	cJSON *a = cJSON_CreateArray();
	uint32_t first = count > kept ? count - kept : 0;

	for (uint32_t i = first; i < count; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "at", (double)ring[i % kept].at);
		cJSON_AddStringToObject(e, "what", ring[i % kept].what);
		cJSON_AddItemToArray(a, e);
	}
	return a;
}

int serve_init(struct master *m, struct job *j, const cJSON *rec)
{
	struct serve *sv = xcalloc(1, sizeof(*sv));
	const cJSON *vs, *v, *o;
	uint64_t u;
	const char *s;

	j->serve = sv;
	if (m->nserving == m->cap_serving) {
		m->cap_serving = m->cap_serving ? m->cap_serving * 2 : 16;
		m->serving = xrealloc(m->serving, m->cap_serving * sizeof(*m->serving));
	}
	m->serving[m->nserving++] = j;
	if (!rec) {
		sv->replicas = j->spec->replicas;
		sv->standby = j->spec->standby;
		sv->version = 1;
		version_add(j, 1, j->spec, wall_ms(), "");
		for (uint32_t i = 0; i < j->ntasks; i++) {
			struct task *t = &j->tasks[i];
			t->role = i < sv->replicas ? ROLE_SERVING : ROLE_STANDBY;
			t->version = 1;
			t->health = j->spec->health.set ? HEALTH_UNKNOWN : HEALTH_NONE;
		}
		HISTORY(sv, "version 1 submitted");
		return 0;
	}
	if (!cJSON_IsObject(rec) || wire_get_u64(rec, "replicas", SPEC_MAX_TASKS, &u) != 0)
		return ERR_STORE;
	sv->replicas = (uint32_t)u;
	if (wire_get_u64(rec, "standby", SPEC_MAX_TASKS, &u) != 0)
		return ERR_STORE;
	sv->standby = (uint32_t)u;
	if (wire_get_u64(rec, "version", UINT32_MAX, &u) != 0)
		return ERR_STORE;
	sv->version = (uint32_t)u;
	vs = cJSON_GetObjectItemCaseSensitive(rec, "versions");
	cJSON_ArrayForEach(v, vs)
	{
		uint64_t ver = 0, at = 0;
		const char *by = "";
		struct spec *spec = NULL;
		char err[SPEC_ERR_LEN];
		wire_get_u64(v, "version", UINT32_MAX, &ver);
		wire_get_u64(v, "at", UINT64_MAX >> 11, &at);
		wire_get_str(v, "by", SERVE_BY_LEN - 1, &by);
		if (ver == sv->version) {
			spec = j->spec;
		} else if (wire_get_object(v, "spec", &o) != 0 ||
			   spec_from_json(o, &spec, err, sizeof(err)) != 0) {
			log_error("job=%" PRIu64 " version %" PRIu64 ": bad spec", j->id, ver);
			return ERR_STORE;
		}
		version_add(j, (uint32_t)ver, spec, at, by);
	}
	if (!version_find(sv, sv->version))
		version_add(j, sv->version, j->spec, j->submitted, "");
	if (wire_get_u64(rec, "npromos", UINT32_MAX, &u) == 0)
		sv->npromos = (uint32_t)u;
	events_load(cJSON_GetObjectItemCaseSensitive(rec, "promotions"), sv->promos,
		    SERVE_PROMOTIONS_KEPT, &sv->npromos);
	if (wire_get_u64(rec, "nhistory", UINT32_MAX, &u) == 0)
		sv->nhistory = (uint32_t)u;
	events_load(cJSON_GetObjectItemCaseSensitive(rec, "history"), sv->history,
		    SERVE_HISTORY_KEPT, &sv->nhistory);
	if (wire_get_u64(rec, "health_failures", UINT32_MAX, &u) == 0)
		sv->health_failures = (uint32_t)u;
	if ((o = cJSON_GetObjectItemCaseSensitive(rec, "rollout")) && cJSON_IsObject(o)) {
		wire_get_bool(o, "active", &sv->rollout.active);
		wire_get_bool(o, "automatic", &sv->rollout.automatic);
		wire_get_bool(o, "surge", &sv->rollout.surge);
		if (wire_get_u64(o, "from", UINT32_MAX, &u) == 0)
			sv->rollout.from = (uint32_t)u;
		if (wire_get_u64(o, "to", UINT32_MAX, &u) == 0)
			sv->rollout.to = (uint32_t)u;
		wire_get_u64(o, "started", UINT64_MAX >> 11, &sv->rollout.started);
		wire_get_u64(o, "step_at", UINT64_MAX >> 11, &sv->rollout.step_at);
	}
	if (wire_get_str(rec, "rollout_result", sizeof(sv->rollout_result) - 1, &s) == 0)
		strlcpy_ok(sv->rollout_result, s, sizeof(sv->rollout_result));
	wire_get_u64(rec, "last_scale_at", UINT64_MAX >> 11, &sv->last_scale_at);
	if (wire_get_str(rec, "last_scale", sizeof(sv->last_scale) - 1, &s) == 0)
		strlcpy_ok(sv->last_scale, s, sizeof(sv->last_scale));
	/* Publish the endpoints once after a restart: the file may be stale. */
	sv->publish = true;
	return 0;
}

void serve_free(struct job *j)
{
	struct serve *sv = j->serve;

	if (!sv)
		return;
	for (size_t i = 0; i < sv->nversions; i++)
		if (sv->versions[i].spec != j->spec)
			spec_free(sv->versions[i].spec);
	free(sv->versions);
	free(sv->endpoints);
	free(sv);
	j->serve = NULL;
}

cJSON *serve_to_json(const struct master *m, const struct job *j, bool full, bool store)
{
	const struct serve *sv = j->serve;
	cJSON *o = cJSON_CreateObject(), *vs, *r;

	cJSON_AddNumberToObject(o, "replicas", sv->replicas);
	cJSON_AddNumberToObject(o, "standby", sv->standby);
	cJSON_AddNumberToObject(o, "version", sv->version);
	cJSON_AddNumberToObject(o, "npromos", sv->npromos);
	cJSON_AddNumberToObject(o, "nhistory", sv->nhistory);
	cJSON_AddNumberToObject(o, "health_failures", sv->health_failures);
	cJSON_AddNumberToObject(o, "last_scale_at", (double)sv->last_scale_at);
	cJSON_AddStringToObject(o, "last_scale", sv->last_scale);
	cJSON_AddStringToObject(o, "rollout_result", sv->rollout_result);
	r = cJSON_AddObjectToObject(o, "rollout");
	cJSON_AddBoolToObject(r, "active", sv->rollout.active);
	cJSON_AddBoolToObject(r, "automatic", sv->rollout.automatic);
	cJSON_AddBoolToObject(r, "surge", sv->rollout.surge);
	cJSON_AddNumberToObject(r, "from", sv->rollout.from);
	cJSON_AddNumberToObject(r, "to", sv->rollout.to);
	cJSON_AddNumberToObject(r, "started", (double)sv->rollout.started);
	cJSON_AddNumberToObject(r, "step_at", (double)sv->rollout.step_at);
	if (!full && !store)
		return o;
	cJSON_AddItemToObject(o, "promotions",
			      events_json(sv->promos, SERVE_PROMOTIONS_KEPT, sv->npromos));
	cJSON_AddItemToObject(o, "history", events_json(sv->history, SERVE_HISTORY_KEPT,
							sv->nhistory));
	vs = cJSON_AddArrayToObject(o, "versions");
	for (size_t i = 0; i < sv->nversions; i++) {
		const struct serve_version *v = &sv->versions[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "version", v->version);
		cJSON_AddNumberToObject(e, "at", (double)v->at);
		cJSON_AddStringToObject(e, "by", v->by);
		if (store) {
			/* The wanted version's spec is the record's "spec". */
			if (v->spec != j->spec)
				cJSON_AddItemToObject(e, "spec", spec_to_json(v->spec));
		} else {
			cJSON_AddStringToObject(e, "image", v->spec->image);
			cJSON *env = cJSON_AddObjectToObject(e, "env");
			for (size_t k = 0; k < v->spec->nenv; k++)
				cJSON_AddStringToObject(env, v->spec->env[k].key,
							v->spec->env[k].val);
		}
		cJSON_AddItemToArray(vs, e);
	}
	if (!store)
		cJSON_AddItemToObject(o, "endpoints", serve_endpoints(m, j));
	return o;
}

/* ---- endpoints ---- */

cJSON *serve_endpoints(const struct master *m, const struct job *j)
{
	cJSON *a = cJSON_CreateArray();

	for (uint32_t i = 0; i < j->ntasks; i++) {
		const struct task *t = &j->tasks[i];
		struct node *n;
		char buf[128];
		if (t->role != ROLE_SERVING || !ready(t) || !t->port)
			continue;
		n = node_find((struct master *)m, t->node);
		snprintf(buf, sizeof(buf), "%s:%u", n && n->address[0] ? n->address : "127.0.0.1",
			 t->port);
		cJSON_AddItemToArray(a, cJSON_CreateString(buf));
	}
	return a;
}

/* Mark the endpoint file for rewriting if the list changed. */
static void endpoints_check(struct master *m, struct job *j)
{
	struct serve *sv = j->serve;
	cJSON *a = job_terminal(j->state) ? cJSON_CreateArray() : serve_endpoints(m, j);
	char *s = cJSON_PrintUnformatted(a);

	cJSON_Delete(a);
	if (sv->endpoints && strcmp(sv->endpoints, s) == 0) {
		free(s);
		return;
	}
	log_info("job=%" PRIu64 " name=%s endpoints %s", j->id, j->spec->name, s);
	free(sv->endpoints);
	sv->endpoints = s;
	sv->publish = true;
}

void serve_publish(struct master *m)
{
	if (!m->cfg.endpoints_dir)
		return;
	/* Finished jobs too: their file must say that nothing serves. */
	for (size_t i = m->njobs; i-- > 0;) {
		struct job *j = m->jobs[i];
		struct serve *sv = j->serve;
		cJSON *o, *a;
		char *path, *text;
		if (!sv || !sv->publish)
			continue;
		if (!sv->endpoints)
			endpoints_check(m, j);
		sv->publish = false;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "job", j->spec->name);
		cJSON_AddNumberToObject(o, "id", (double)j->id);
		cJSON_AddStringToObject(o, "state", job_state_str(j->state));
		cJSON_AddNumberToObject(o, "version", sv->version);
		a = cJSON_Parse(sv->endpoints);
		cJSON_AddItemToObject(o, "endpoints", a ? a : cJSON_CreateArray());
		cJSON_AddNumberToObject(o, "updated", (double)wall_ms());
		text = cJSON_Print(o);
		cJSON_Delete(o);
		path = xasprintf("%s/%s.json", m->cfg.endpoints_dir, j->spec->name);
		if (file_write_atomic(path, text, strlen(text)) != 0)
			log_error("job=%" PRIu64 " cannot write %s: %s", j->id, path,
				  strerror(errno));
		free(path);
		free(text);
	}
}

/* ---- health ---- */

void serve_health(struct master *m, struct job *j, struct task *t, bool healthy, const char *why,
		  uint64_t at)
{
	struct serve *sv = j->serve;
	const struct spec *s = j->spec;
	enum task_health h = healthy ? HEALTH_OK : HEALTH_BAD;

	if (!sv || t->health == HEALTH_NONE || t->health == h || t->retire)
		return;
	t->health = (uint8_t)h;
	t->health_at = at;
	if (!healthy)
		strlcpy_ok(t->health_why, why, sizeof(t->health_why));
	job_dirty(m, j);
	log_info("job=%" PRIu64 " task=%u node=%s %s %s%s%s", j->id, t->idx, t->node,
		 t->role == ROLE_SERVING ? "serving" : "standby",
		 healthy ? "healthy" : "unhealthy", healthy ? "" : ": ", healthy ? "" : why);
	if (healthy || t->state != TASK_RUNNING || t->stop_sent)
		return;
	/* A slot of a version being rolled out that never became healthy is
	 * the rollout's business (its deadline), not a failure to count. */
	if (sv->rollout.active && t->version == sv->rollout.to && t->role == ROLE_STANDBY)
		return;
	/* Out of the endpoints now (it is no longer ready); replaced under
	 * the restart policy. */
	sv->health_failures++;
	m->stats.health_failures++;
	snprintf(t->reason, sizeof(t->reason), "failed its health check: %.200s", why);
	if (s->restart != RESTART_NEVER && j->restarts < s->restart_max) {
		j->restarts++;
		m->stats.restarts++;
		snprintf(j->last_restart, sizeof(j->last_restart), "task %u failed its health check",
			 t->idx);
		log_info("job=%" PRIu64 " name=%s restart %u of %u: task %u failed its health check",
			 j->id, s->name, j->restarts, s->restart_max, t->idx);
		t->requeue = t->restarted = true;
	}
	agents_order_stop(m, j, t);
}

/* ---- roles ---- */

/* Why a serving slot is down, for the promotion record. */
static void down_reason(const struct task *t, char *buf, size_t len)
{
	if (t->health == HEALTH_BAD && t->health_why[0])
		snprintf(buf, len, "failed its health check: %.200s", t->health_why);
	else if (t->reason[0])
		snprintf(buf, len, "%.200s", t->reason);
	else if (t->signal)
		snprintf(buf, len, "killed by signal %d", t->signal);
	else if (t->state == TASK_EXITED || t->state == TASK_NONE)
		snprintf(buf, len, "exited with code %d", t->exit_code);
	else
		snprintf(buf, len, "%s", t->stop_sent ? "stopping" : task_state_str(t->state));
}

/* The best standby to promote: ready ones first, the wanted version first. */
static struct task *pick_standby(struct job *j, uint32_t want, bool need_ready)
{
	struct task *best = NULL;
	int best_score = -1;

	for (uint32_t i = 0; i < want && i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		int score;
		if (t->role != ROLE_STANDBY || t->retire)
			continue;
		if (ready(t))
			score = 4;
		else if (need_ready)
			continue;
		else if (coming(t))
			score = 2;
		else
			score = 0; /* queued or failing */
		score += t->version == j->serve->version;
		if (score > best_score) {
			best = t;
			best_score = score;
		}
	}
	return best;
}

static void promote(struct master *m, struct job *j, struct task *sb, struct task *down,
		    const char *why)
{
	struct serve *sv = j->serve;

	char instead[48] = "";

	sb->role = ROLE_SERVING;
	m->stats.promotions++;
	if (down) {
		down->role = ROLE_STANDBY;
		snprintf(instead, sizeof(instead), " in place of task %u", down->idx);
	}
	add_event(sv->promos, SERVE_PROMOTIONS_KEPT, &sv->npromos, "task %u (node %s) promoted%s: %s",
		  sb->idx, sb->node[0] ? sb->node : "-", instead, why);
	log_info("job=%" PRIu64 " name=%s task=%u node=%s promoted to serving%s: %s", j->id,
		 j->spec->name, sb->idx, sb->node, down ? " (a standby took over)" : "", why);
	job_dirty(m, j);
}

static uint32_t slots_wanted(const struct serve *sv)
{
	return sv->replicas + sv->standby + (sv->rollout.active && sv->rollout.surge);
}

/* Add, revive or retire slots so that the first `want` are in use. */
static void resize(struct master *m, struct job *j, uint32_t want)
{
	struct serve *sv = j->serve;

	if (want > j->ntasks) {
		j->tasks = xrealloc(j->tasks, want * sizeof(*j->tasks));
		for (uint32_t i = j->ntasks; i < want; i++) {
			struct task *t = &j->tasks[i];
			memset(t, 0, sizeof(*t));
			t->idx = i;
			t->role = ROLE_STANDBY;
			t->version = sv->version;
			t->health = j->spec->health.set ? HEALTH_UNKNOWN : HEALTH_NONE;
		}
		j->ntasks = want;
		m->sched_dirty = true;
		job_dirty(m, j);
	}
	for (uint32_t i = 0; i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		if (i < want && t->retire && (task_terminal(t->state) || t->state == TASK_NONE)) {
			/* Wanted again: its next attempt is a new standby. */
			struct task old = *t;
			memset(t, 0, sizeof(*t));
			t->idx = i;
			t->attempt = old.attempt + 1;
			memcpy(t->runs, old.runs, sizeof(t->runs));
			t->nruns = old.nruns;
			t->role = ROLE_STANDBY;
			t->version = sv->version;
			t->health = j->spec->health.set ? HEALTH_UNKNOWN : HEALTH_NONE;
			m->sched_dirty = true;
			job_dirty(m, j);
		} else if (i >= want && !t->retire) {
			t->retire = true;
			t->role = ROLE_STANDBY;
			t->requeue = false;
			if (t->state == TASK_NONE) {
				t->state = TASK_KILLED;
				snprintf(t->reason, sizeof(t->reason), "scaled down");
			} else if (!task_terminal(t->state) && !t->stop_sent) {
				snprintf(t->reason, sizeof(t->reason), "scaled down");
				agents_order_stop(m, j, t);
			}
			job_dirty(m, j);
		}
	}
}

/* Bring the serving role count to sv->replicas among the first want slots,
 * promoting standbys for serving slots that are down. */
static void balance_roles(struct master *m, struct job *j, uint32_t want)
{
	struct serve *sv = j->serve;
	uint32_t serving = 0;
	char why[REASON_MAX];

	for (uint32_t i = 0; i < want && i < j->ntasks; i++) {
		struct task *t = &j->tasks[i], *sb;
		if (t->role != ROLE_SERVING || t->retire)
			continue;
		if (!coming(t) && (sb = pick_standby(j, want, true))) {
			down_reason(t, why, sizeof(why));
			promote(m, j, sb, t, why);
		}
	}
	for (uint32_t i = 0; i < want && i < j->ntasks; i++)
		serving += j->tasks[i].role == ROLE_SERVING && !j->tasks[i].retire;
	while (serving < sv->replicas) {
		struct task *sb = pick_standby(j, want, false);
		if (!sb)
			break;
		promote(m, j, sb, NULL, "more replicas wanted");
		serving++;
	}
	/* Too many: demote those that are not ready first, the last first. */
	for (int pass = 0; pass < 2 && serving > sv->replicas; pass++)
		for (uint32_t i = want < j->ntasks ? want : j->ntasks; i-- > 0 && serving > sv->replicas;) {
			struct task *t = &j->tasks[i];
			if (t->role != ROLE_SERVING || t->retire || (pass == 0 && ready(t)))
				continue;
			t->role = ROLE_STANDBY;
			serving--;
			job_dirty(m, j);
		}
}

/* ---- rollouts ---- */

/* Restart slot t at version v (its next attempt runs v). */
static void roll_slot(struct master *m, struct job *j, struct task *t, uint32_t v)
{
	t->version = v;
	if (live_state(t->state) && !t->stop_sent) {
		t->requeue = t->rolled = true;
		agents_order_stop(m, j, t);
	}
	job_dirty(m, j);
}

static void rollout_start(struct master *m, struct job *j, uint32_t from, uint32_t to,
			  bool automatic)
{
	struct serve *sv = j->serve;
	struct serve_version *v = version_find(sv, to);

	sv->version = to;
	j->spec = v->spec;
	sv->rollout.active = true;
	sv->rollout.automatic = automatic;
	sv->rollout.surge = false;
	sv->rollout.from = from;
	sv->rollout.to = to;
	sv->rollout.started = wall_ms();
	sv->rollout.step_at = wall_ms();
	sv->rollout_result[0] = '\0';
	m->sched_dirty = true;
	job_dirty(m, j);
}

static void rollout_step(struct master *m, struct job *j, uint32_t want)
{
	struct serve *sv = j->serve;
	uint32_t to = sv->rollout.to;
	struct task *old_serving = NULL, *old_standby = NULL, *new_ready = NULL, *pending = NULL;
	uint64_t now = wall_ms();

	for (uint32_t i = 0; i < want && i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		if (t->retire)
			continue;
		if (t->version != to) {
			if (t->role == ROLE_SERVING && !old_serving)
				old_serving = t;
			else if (t->role == ROLE_STANDBY && !old_standby)
				old_standby = t;
		} else if (ready(t)) {
			if (t->role == ROLE_STANDBY && !new_ready)
				new_ready = t;
		} else if (!pending) {
			pending = t;
		}
	}
	if (pending) {
		const struct spec *s = j->spec;
		if (now - sv->rollout.step_at <= s->rollout_deadline_ms)
			return;
		char why[REASON_MAX];
		down_reason(pending, why, sizeof(why));
		if (pending->health == HEALTH_UNKNOWN && pending->state == TASK_RUNNING)
			snprintf(why, sizeof(why), "no health verdict yet");
		if (sv->rollout.automatic) {
			snprintf(sv->rollout_result, sizeof(sv->rollout_result),
				 "rollback to version %u stuck: task %u not ready within %" PRIu64
				 " ms (%.120s)",
				 to, pending->idx, s->rollout_deadline_ms, why);
			HISTORY(sv, "%s", sv->rollout_result);
			log_warn("job=%" PRIu64 " name=%s %s", j->id, s->name, sv->rollout_result);
			sv->rollout.step_at = now; /* say it once per deadline */
			return;
		}
		snprintf(sv->rollout_result, sizeof(sv->rollout_result),
			 "version %u rolled back: task %u was not ready within %" PRIu64
			 " ms (%.120s)",
			 to, pending->idx, s->rollout_deadline_ms, why);
		HISTORY(sv, "rollout %u -> %u failed; rolling back: task %u not ready within %" PRIu64
			    " ms (%.120s)",
			sv->rollout.from, to, pending->idx, s->rollout_deadline_ms, why);
		log_warn("job=%" PRIu64 " name=%s %s", j->id, s->name, sv->rollout_result);
		char keep[sizeof(sv->rollout_result)];
		memcpy(keep, sv->rollout_result, sizeof(keep));
		rollout_start(m, j, to, sv->rollout.from, true);
		memcpy(sv->rollout_result, keep, sizeof(keep));
		return;
	}
	if (old_serving && new_ready) {
		/* Capacity first: the new one serves before the old one stops. */
		char why[160];
		snprintf(why, sizeof(why), "rollout to version %u (task %u ran version %u)", to,
			 old_serving->idx, old_serving->version);
		promote(m, j, new_ready, old_serving, why);
		roll_slot(m, j, old_serving, to);
		sv->rollout.step_at = now;
		return;
	}
	if (old_serving || old_standby) {
		if (old_standby) {
			roll_slot(m, j, old_standby, to);
		} else if (!sv->rollout.surge) {
			/* No standby to turn over: one slot more for now. */
			sv->rollout.surge = true;
			job_dirty(m, j);
		}
		sv->rollout.step_at = now;
		return;
	}
	/* Every slot runs the new version. */
	sv->rollout.active = false;
	sv->rollout.surge = false;
	if (!sv->rollout.automatic)
		snprintf(sv->rollout_result, sizeof(sv->rollout_result),
			 "version %u rolled out in %.1f s", to,
			 (double)(now - sv->rollout.started) / 1000.0);
	HISTORY(sv, "now at version %u (%s from version %u)", to,
		sv->rollout.automatic ? "rolled back" : "rolled out", sv->rollout.from);
	log_info("job=%" PRIu64 " name=%s at version %u", j->id, j->spec->name, to);
	job_dirty(m, j);
}

void serve_reconcile(struct master *m, struct job *j)
{
	struct serve *sv = j->serve;
	uint32_t want;

	if (!sv)
		return;
	if (!j->cancel && !job_terminal(j->state) && j->state != JOB_FAILED) {
		if (sv->rollout.active)
			rollout_step(m, j, slots_wanted(sv));
		want = slots_wanted(sv);
		/* Before retiring the last slot, let a ready standby take its
		 * serving role, so that shrinking does not cost capacity. */
		for (uint32_t i = want; i < j->ntasks; i++) {
			struct task *t = &j->tasks[i], *sb;
			if (t->role == ROLE_SERVING && !t->retire && (sb = pick_standby(j, want, true)))
				promote(m, j, sb, t, "scaled down");
		}
		resize(m, j, want);
		balance_roles(m, j, want);
	}
	endpoints_check(m, j);
}

/* ---- scaling ---- */

static void set_counts(struct master *m, struct job *j, uint32_t replicas, uint32_t standby)
{
	j->serve->replicas = replicas;
	j->serve->standby = standby;
	job_dirty(m, j);
	serve_reconcile(m, j);
}

/* May j be scaled or rolled?  A serve job that has not ended; why says
 * what it is otherwise ("only serve jobs WHAT"). */
static int changeable(const struct job *j, const char *what, char *why, size_t len)
{
	if (!j->serve) {
		snprintf(why, len, "job %s is a %s job: only serve jobs %s", j->spec->name,
			 spec_kind_str(j->spec->kind), what);
		return ERR_INVAL;
	}
	if (job_terminal(j->state) || j->cancel) {
		snprintf(why, len, "job %s has ended (%s)", j->spec->name, job_state_str(j->state));
		return ERR_INVAL;
	}
	return 0;
}

int serve_scale(struct master *m, struct job *j, uint32_t replicas, int64_t standby,
		const char *by, char *why, size_t len)
{
	struct serve *sv = j->serve;
	const struct spec *s = j->spec;
	uint32_t k;
	int rv;

	if ((rv = changeable(j, "scale", why, len)) != 0)
		return rv;
	k = standby < 0 ? sv->standby : (uint32_t)standby;
	if (replicas < 1) {
		snprintf(why, len, "replicas must be at least 1 (cancel the job to stop it)");
		return ERR_INVAL;
	}
	if (s->autoscale.set && (replicas < s->autoscale.min || replicas > s->autoscale.max)) {
		snprintf(why, len, "%u replicas is outside the job's autoscale range %u..%u",
			 replicas, s->autoscale.min, s->autoscale.max);
		return ERR_INVAL;
	}
	if ((uint64_t)replicas + k > SPEC_MAX_TASKS) {
		snprintf(why, len, "%u replicas + %u standby is more than %d tasks", replicas, k,
			 SPEC_MAX_TASKS);
		return ERR_INVAL;
	}
	HISTORY(sv, "scaled from %u+%u to %u+%u (replicas+standby) by %s", sv->replicas,
		sv->standby, replicas, k, by);
	log_info("job=%" PRIu64 " name=%s scaled %u+%u -> %u+%u by %s", j->id, s->name, sv->replicas,
		 sv->standby, replicas, k, by);
	set_counts(m, j, replicas, k);
	return 0;
}

/* The utilization of j's serving replicas now, in percent of what they
 * asked for; false when there is nothing to measure. */
static bool sample(struct master *m, struct job *j, double *pct)
{
	const struct spec *s = j->spec;
	double sum = 0;
	uint32_t n = 0;

	for (uint32_t i = 0; i < j->ntasks; i++) {
		const struct task *t = &j->tasks[i];
		if (t->role != ROLE_SERVING || t->state != TASK_RUNNING || t->retire)
			continue;
		if (s->autoscale.target_cpu_util) {
			if (!t->cpu_ns_at || !s->res.cpu_milli)
				continue;
			sum += t->cpu_pct * 1000.0 / s->res.cpu_milli;
			n++;
		} else {
			struct node *nd = node_find(m, t->node);
			const cJSON *g;
			double gs = 0;
			uint32_t gn = 0;
			if (!nd || !nd->gpu_util || t->ngpus == 0)
				continue;
			for (uint32_t k = 0; k < t->ngpus; k++) {
				uint32_t idx = nd->cap.gpus[t->gpu_pos[k]].index;
				cJSON_ArrayForEach(g, nd->gpu_util)
				{
					uint64_t gi = 0, u = 0;
					wire_get_u64(g, "index", 1024, &gi);
					if (gi == idx && wire_get_u64(g, "util_pct", 100, &u) == 0) {
						gs += (double)u;
						gn++;
					}
				}
			}
			if (gn) {
				sum += gs / gn;
				n++;
			}
		}
	}
	if (!n)
		return false;
	*pct = sum / n;
	return true;
}

#define AUTOSCALE_SAMPLE_MS 500
#define AUTOSCALE_TOLERANCE 0.10

static void autoscale(struct master *m, struct job *j, uint64_t mono)
{
	struct serve *sv = j->serve;
	const struct spec_autoscale *as = &j->spec->autoscale;
	uint32_t target = as->target_cpu_util ? as->target_cpu_util : as->target_gpu_util;
	const char *what = as->target_cpu_util ? "CPU" : "GPU";
	double pct, sum = 0, ratio;
	uint32_t n = 0, want;
	uint64_t oldest = mono;

	if (mono < sv->next_sample)
		return;
	sv->next_sample = mono + AUTOSCALE_SAMPLE_MS;
	if (!sample(m, j, &pct))
		return;
	sv->samples[sv->sample_head].at = mono;
	sv->samples[sv->sample_head].pct = pct;
	sv->sample_head = (sv->sample_head + 1) % SERVE_SAMPLES;
	if (sv->nsamples < SERVE_SAMPLES)
		sv->nsamples++;
	for (uint32_t i = 0; i < sv->nsamples; i++) {
		if (mono - sv->samples[i].at > as->window_ms)
			continue;
		sum += sv->samples[i].pct;
		if (sv->samples[i].at < oldest)
			oldest = sv->samples[i].at;
		n++;
	}
	/* Decide on a full window only, and not within the cooldown. */
	if (!n || mono - oldest + AUTOSCALE_SAMPLE_MS < as->window_ms ||
	    wall_ms() - sv->last_scale_at < as->cooldown_ms || sv->rollout.active)
		return;
	pct = sum / n;
	ratio = pct / target;
	if (fabs(ratio - 1.0) <= AUTOSCALE_TOLERANCE)
		return;
	want = (uint32_t)ceil(sv->replicas * ratio);
	if (want < as->min)
		want = as->min;
	if (want > as->max)
		want = as->max;
	if (want == sv->replicas)
		return;
	snprintf(sv->last_scale, sizeof(sv->last_scale),
		 "%u -> %u replicas: %s %.0f%% over %.0f s against a target of %u%%", sv->replicas,
		 want, what, pct, (double)as->window_ms / 1000.0, target);
	sv->last_scale_at = wall_ms();
	HISTORY(sv, "autoscaled %s", sv->last_scale);
	log_info("job=%" PRIu64 " name=%s autoscale: %s", j->id, j->spec->name, sv->last_scale);
	sv->nsamples = sv->sample_head = 0;
	set_counts(m, j, want, sv->standby);
}

void serve_tick(struct master *m)
{
	uint64_t mono = now_ms();

	for (size_t i = m->nserving; i-- > 0;) {
		struct job *j = m->serving[i];
		if (job_terminal(j->state)) {
			m->serving[i] = m->serving[--m->nserving];
			continue;
		}
		if (j->cancel)
			continue;
		if (j->spec->autoscale.set && j->state == JOB_RUNNING)
			autoscale(m, j, mono);
		if (j->serve->rollout.active &&
		    wall_ms() - j->serve->rollout.step_at > j->spec->rollout_deadline_ms)
			job_update(m, j);
	}
}

/* ---- versions ---- */

int serve_rollout(struct master *m, struct job *j, struct spec *spec, const char *by, char *why,
		  size_t len)
{
	struct serve *sv = j->serve;
	char diff[256];
	uint32_t from, to;
	int rv;

	if ((rv = changeable(j, "have versions", why, len)) != 0)
		return rv;
	if (!spec_same_except_version(j->spec, spec, diff, sizeof(diff))) {
		snprintf(why, len, "%s", diff);
		return ERR_INVAL;
	}
	{
		cJSON *a = spec_to_json(j->spec), *b = spec_to_json(spec);
		bool same = cJSON_Compare(a, b, 1);
		cJSON_Delete(a);
		cJSON_Delete(b);
		if (same) {
			snprintf(why, len,
				 "nothing to roll out: version %u already has this image, command "
				 "and env",
				 sv->version);
			return ERR_EXIST;
		}
	}
	from = sv->version;
	to = version_max(sv) + 1;
	version_add(j, to, spec, wall_ms(), by);
	HISTORY(sv, "version %u created by %s (image %.100s); rolling out from version %u", to, by,
		spec->image, from);
	log_info("job=%" PRIu64 " name=%s rollout %u -> %u by %s", j->id, spec->name, from, to, by);
	rollout_start(m, j, from, to, false);
	job_update(m, j);
	return 0;
}

int serve_rollback(struct master *m, struct job *j, uint32_t to, const char *by, char *why,
		   size_t len)
{
	struct serve *sv = j->serve;
	uint32_t from;
	int rv;

	if ((rv = changeable(j, "have versions", why, len)) != 0)
		return rv;
	from = sv->version;
	if (!to) {
		/* The version before the wanted one. */
		for (size_t i = 0; i < sv->nversions; i++)
			if (sv->versions[i].version < from && sv->versions[i].version > to)
				to = sv->versions[i].version;
		if (!to) {
			snprintf(why, len, "job %s has no version before %u", j->spec->name, from);
			return ERR_NOENT;
		}
	}
	if (!version_find(sv, to)) {
		snprintf(why, len, "job %s has no version %u (mlctl history %s lists them)",
			 j->spec->name, to, j->spec->name);
		return ERR_NOENT;
	}
	if (to == from) {
		snprintf(why, len, "job %s is at version %u already", j->spec->name, to);
		return ERR_EXIST;
	}
	HISTORY(sv, "rollback from version %u to %u by %s", from, to, by);
	log_info("job=%" PRIu64 " name=%s rollback %u -> %u by %s", j->id, j->spec->name, from, to,
		 by);
	rollout_start(m, j, from, to, false);
	job_update(m, j);
	return 0;
}
