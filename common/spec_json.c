/*
 * spec_json.c - a parsed spec turned back into JSON (the form the master
 * stores and sends), what counts as a new version of a spec, the probe
 * target of a health check and the small accessors that name its enums.
 * Parsing and validation live in spec.c.
 */
#include "spec.h"
#include "err.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void json_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

/* An autoscale target: 1..100, or 0 for the one not chosen (null). */
static void json_pct(cJSON *o, const char *k, uint32_t v)
{
	if (v)
		cJSON_AddNumberToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static cJSON *json_argv(char **argv, size_t n)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(argv[i]));
	return a;
}

static cJSON *json_res(cJSON *parent, const char *key, const struct res *r, const char *model)
{
	cJSON *o = cJSON_AddObjectToObject(parent, key);

	cJSON_AddNumberToObject(o, "gpus_milli", r->gpus_milli);
	cJSON_AddNumberToObject(o, "gpu_memory", (double)r->gpu_mem);
	json_str(o, "gpu_model", model);
	cJSON_AddNumberToObject(o, "memory", (double)r->mem);
	cJSON_AddNumberToObject(o, "cpu_milli", r->cpu_milli);
	return o;
}

static cJSON *json_env(cJSON *parent, const struct spec_env *env, size_t n)
{
	cJSON *o = cJSON_AddObjectToObject(parent, "env");

	for (size_t i = 0; i < n; i++)
		cJSON_AddStringToObject(o, env[i].key, env[i].val);
	return o;
}

/* Roles as parsed: resolved, so the JSON form reads back the same. */
static void json_roles(cJSON *j, const struct spec *s)
{
	cJSON *rs = cJSON_AddObjectToObject(j, "roles");

	for (size_t i = 0; i < s->nroles; i++) {
		const struct spec_role *r = &s->roles[i];
		cJSON *o = cJSON_AddObjectToObject(rs, r->name);

		cJSON_AddNumberToObject(o, "count", r->count);
		cJSON_AddBoolToObject(o, "optional", r->optional);
		json_res(o, "resources", &r->res, r->gpu_model);
		json_str(o, "image", r->image);
		cJSON_AddItemToObject(o, "command", json_argv(r->command, r->ncommand));
		json_env(o, r->env, r->nenv);
	}
}

/* cJSON allocation failures are not survivable here any more than
 * xmalloc's; the result is checked once by the caller of spec_to_json. */
cJSON *spec_to_json(const struct spec *s)
{
	cJSON *j = cJSON_CreateObject(), *o;

	json_str(j, "name", s->name);
	json_str(j, "kind", spec_kind_str(s->kind));
	json_str(j, "image", s->image);
	if (s->command)
		cJSON_AddItemToObject(j, "command", json_argv(s->command, s->ncommand));
	else
		cJSON_AddNullToObject(j, "command"); /* roles that all have their own */
	json_str(j, "workdir", s->workdir);
	switch (s->kind) {
	case SPEC_TRAIN:
		if (s->roles)
			json_roles(j, s);
		else
			cJSON_AddNumberToObject(j, "workers", s->workers);
		break;
	case SPEC_SERVE:
		cJSON_AddNumberToObject(j, "replicas", s->replicas);
		cJSON_AddNumberToObject(j, "standby", s->standby);
		break;
	case SPEC_BATCH:
		cJSON_AddNumberToObject(j, "array", s->array);
		cJSON_AddNumberToObject(j, "parallelism", s->parallelism);
		break;
	}
	json_res(j, "resources", &s->res, s->gpu_model);
	cJSON_AddNumberToObject(j, "priority", s->priority);
	o = cJSON_AddObjectToObject(j, "restart");
	json_str(o, "policy", spec_restart_str(s->restart));
	cJSON_AddNumberToObject(o, "max", s->restart_max);
	o = cJSON_AddObjectToObject(j, "reschedule");
	cJSON_AddNumberToObject(o, "max", s->reschedule_max);
	json_env(j, s->env, s->nenv);
	json_str(j, "policy", s->policy);
	if (s->queue) /* absent rather than null: specs without queues stay as they were */
		cJSON_AddStringToObject(j, "queue", s->queue);
	cJSON_AddItemToObject(j, "constraints", json_argv(s->constraints, s->nconstraints));
	if (s->max_cost_milli)
		cJSON_AddNumberToObject(j, "max_cost_milli", s->max_cost_milli);
	else
		cJSON_AddNullToObject(j, "max_cost_milli");
	if (s->kind == SPEC_SERVE) {
		if (s->health.set) {
			o = cJSON_AddObjectToObject(j, "health");
			json_str(o, "http", s->health.http);
			json_str(o, "tcp", s->health.tcp);
			if (s->health.exec)
				cJSON_AddItemToObject(o, "exec",
						      json_argv(s->health.exec, s->health.nexec));
			else
				cJSON_AddNullToObject(o, "exec");
			cJSON_AddNumberToObject(o, "interval_ms", (double)s->health.interval_ms);
			cJSON_AddNumberToObject(o, "timeout_ms", (double)s->health.timeout_ms);
			cJSON_AddNumberToObject(o, "failures", s->health.failures);
			cJSON_AddNumberToObject(o, "successes", s->health.successes);
			cJSON_AddNumberToObject(o, "grace_ms", (double)s->health.grace_ms);
		} else {
			cJSON_AddNullToObject(j, "health");
		}
		if (s->autoscale.set) {
			o = cJSON_AddObjectToObject(j, "autoscale");
			cJSON_AddNumberToObject(o, "min", s->autoscale.min);
			cJSON_AddNumberToObject(o, "max", s->autoscale.max);
			json_pct(o, "target_gpu_util", s->autoscale.target_gpu_util);
			json_pct(o, "target_cpu_util", s->autoscale.target_cpu_util);
			cJSON_AddNumberToObject(o, "window_ms", (double)s->autoscale.window_ms);
			cJSON_AddNumberToObject(o, "cooldown_ms", (double)s->autoscale.cooldown_ms);
		} else {
			cJSON_AddNullToObject(j, "autoscale");
		}
		o = cJSON_AddObjectToObject(j, "rollout");
		cJSON_AddNumberToObject(o, "deadline_ms", (double)s->rollout_deadline_ms);
	}
	return j;
}

/* Append [t, t+n) to out at *o, every "$PORT" replaced by port; false when
 * it does not fit (len includes the NUL) or $PORT is there and port is not a
 * port. */
static bool put_subst(char *out, size_t len, size_t *o, const char *t, size_t n, uint32_t port)
{
	char num[12];
	size_t nn = (size_t)snprintf(num, sizeof(num), "%u", port);

	for (size_t i = 0; i < n;) {
		const char *piece = t + i;
		size_t pn = 1;

		if (n - i >= 5 && !strncmp(t + i, "$PORT", 5)) {
			if (port == 0 || port > 65535)
				return false;
			piece = num;
			pn = nn;
			i += 5;
		} else {
			i++;
		}
		if (*o + pn >= len)
			return false;
		memcpy(out + *o, piece, pn);
		*o += pn;
	}
	out[*o] = '\0';
	return true;
}

int spec_health_target(const struct spec_health *h, uint32_t port, char *out, size_t len)
{
	static const char local[] = "127.0.0.1:";
	const char *pre = "", *t;
	size_t o = 0;

	if (!out || len == 0)
		return ERR_INVAL;
	out[0] = '\0';
	if (!h || !h->set)
		return ERR_INVAL;
	if (h->http) {
		t = h->http;
		if (t[0] == '/')
			pre = "http://127.0.0.1:$PORT";
	} else if (h->tcp) {
		t = h->tcp;
		if (!strchr(t, ':'))
			pre = local;
	} else {
		return ERR_INVAL; /* exec: nothing to resolve */
	}
	if (!put_subst(out, len, &o, pre, strlen(pre), port) ||
	    !put_subst(out, len, &o, t, strlen(t), port)) {
		out[0] = '\0';
		return ERR_INVAL;
	}
	return 0;
}

/* Keys a rollout may change: a new version of the same service. */
static const char *const version_keys[] = {"image", "command", "env"};

/* The first key of object x, in x's order, whose value differs in object y,
 * then the first key only y has; NULL when they are equal. */
static const char *first_diff(const cJSON *x, const cJSON *y)
{
	const cJSON *e, *o;

	cJSON_ArrayForEach(e, x)
	{
		o = cJSON_GetObjectItemCaseSensitive(y, e->string);
		if (!o || !cJSON_Compare(e, o, true))
			return e->string;
	}
	cJSON_ArrayForEach(e, y)
	{
		if (!cJSON_GetObjectItemCaseSensitive(x, e->string))
			return e->string;
	}
	return NULL;
}

bool spec_same_except_version(const struct spec *a, const struct spec *b, char *why, size_t len)
{
	cJSON *ja = spec_to_json(a), *jb = spec_to_json(b);
	const cJSON *x, *y;
	const char *k, *k2 = NULL;
	char diff[160] = "";
	bool same;

	for (size_t i = 0; i < sizeof(version_keys) / sizeof(version_keys[0]); i++) {
		cJSON_DeleteItemFromObjectCaseSensitive(ja, version_keys[i]);
		cJSON_DeleteItemFromObjectCaseSensitive(jb, version_keys[i]);
	}
	k = first_diff(ja, jb);
	if (k) {
		x = cJSON_GetObjectItemCaseSensitive(ja, k);
		y = cJSON_GetObjectItemCaseSensitive(jb, k);
		if (cJSON_IsObject(x) && cJSON_IsObject(y))
			k2 = first_diff(x, y);
		snprintf(diff, sizeof(diff), "%s%s%s", k, k2 ? "." : "", k2 ? k2 : "");
	}
	same = k == NULL; /* k points into ja */
	cJSON_Delete(ja);
	cJSON_Delete(jb);
	if (why && len) {
		if (!same)
			snprintf(why, len,
				 "%s differs: a rollout may change only image, command and env",
				 diff);
		else
			why[0] = '\0';
	}
	return same;
}

uint32_t spec_ntasks(const struct spec *s)
{
	uint32_t n = 0;

	switch (s->kind) {
	case SPEC_TRAIN:
		if (!s->roles)
			return s->workers;
		for (size_t i = 0; i < s->nroles; i++)
			n += s->roles[i].count; /* at most SPEC_MAX_TASKS in all */
		return n;
	case SPEC_SERVE:
		/* Saturate: both are uint32 and only the sum is checked. */
		return s->replicas > UINT32_MAX - s->standby ? UINT32_MAX
							     : s->replicas + s->standby;
	case SPEC_BATCH:
		return s->array;
	}
	return 0;
}

const struct spec_role *spec_task_role(const struct spec *s, uint32_t idx, uint32_t *index)
{
	for (size_t i = 0; i < s->nroles; i++) {
		if (idx < s->roles[i].count) {
			if (index)
				*index = idx;
			return &s->roles[i];
		}
		idx -= s->roles[i].count;
	}
	return NULL;
}

bool spec_role_in_world(const struct spec_role *r)
{
	return !strcmp(r->name, "chief") || !strcmp(r->name, "master") ||
	       !strcmp(r->name, "worker");
}

const char *spec_kind_str(enum spec_kind k)
{
	switch (k) {
	case SPEC_TRAIN:
		return "train";
	case SPEC_SERVE:
		return "serve";
	case SPEC_BATCH:
		return "batch";
	}
	return "?";
}

const char *spec_restart_str(enum spec_restart r)
{
	switch (r) {
	case RESTART_NEVER:
		return "never";
	case RESTART_ON_FAILURE:
		return "on-failure";
	case RESTART_ALWAYS:
		return "always";
	}
	return "?";
}

/* Names that are all digits would read as job ids ("mlctl status 12"). */
bool spec_name_ok(const char *name)
{
	size_t n;

	if (!name || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
		return false;
	for (n = 1; name[n]; n++) {
		char ch = name[n];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '_' || ch == '-'))
			return false;
	}
	return n <= SPEC_NAME_MAX && strspn(name, "0123456789") < n;
}
