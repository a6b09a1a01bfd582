/*
 * pools.c - the pools file, the pools' stored records and their JSON (see
 * pools.h).  Decisions and hooks are burst.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "pools.h"
#include "units.h"
#include "util.h"
#include "wire.h"
#include "gpu/gpu.h"

#define POOLS_FILE_MAX (64 * 1024)
#define POOL_NAME_USER_MAX 40 /* leaves room for "-SEQ" in node names */

/* ---- the file ---- */

struct cfgctx {
	const char *path;
	yaml_document_t *doc;
	char *why;
	size_t whylen;
};

static int cfail(struct cfgctx *c, const yaml_node_t *n, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int cfail(struct cfgctx *c, const yaml_node_t *n, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n)
		snprintf(c->why, c->whylen, "%s:%lu: %s: %s", c->path,
			 (unsigned long)n->start_mark.line + 1, field, msg);
	else
		snprintf(c->why, c->whylen, "%s: %s: %s", c->path, field, msg);
	return ERR_INVAL;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int want_scalar(struct cfgctx *c, const yaml_node_t *n, const char *field, const char **out)
{
	if (!(*out = scalar(n)) || !**out)
		return cfail(c, n, field, "expected a value");
	return 0;
}

static int get_dur(struct cfgctx *c, const yaml_node_t *n, const char *field, uint64_t min,
		   uint64_t *out)
{
	const char *t;
	int rv;

	if ((rv = want_scalar(c, n, field, &t)) != 0)
		return rv;
	if (units_parse_duration(t, out) != 0)
		return cfail(c, n, field, "\"%s\" is not a duration (e.g. 30s, 10m)", t);
	if (*out < min)
		return cfail(c, n, field, "must be at least %" PRIu64 "ms", min);
	return 0;
}

static int get_u32(struct cfgctx *c, const yaml_node_t *n, const char *field, uint32_t max,
		   uint32_t *out)
{
	const char *t;
	char *end;
	unsigned long v;
	int rv;

	if ((rv = want_scalar(c, n, field, &t)) != 0)
		return rv;
	errno = 0;
	v = strtoul(t, &end, 10);
	if (!isdigit((unsigned char)t[0]) || *end || errno)
		return cfail(c, n, field, "\"%s\" is not a whole number", t);
	if (v > max)
		return cfail(c, n, field, "must be at most %u", max);
	*out = (uint32_t)v;
	return 0;
}

static bool pool_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > POOL_NAME_USER_MAX || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-' ||
		      *s == '_' || *s == '.'))
			return false;
	return true;
}

static bool label_text_ok(const char *s)
{
	if (!*s || strlen(s) >= SCHED_LABEL_LEN)
		return false;
	for (; *s; s++)
		if (!isgraph((unsigned char)*s) || *s == '=' || *s == ',')
			return false;
	return true;
}

static int get_labels(struct cfgctx *c, const yaml_node_t *n, const char *field, struct pool *p)
{
	char f[200];

	if (n->type != YAML_MAPPING_NODE)
		return cfail(c, n, field, "expected a mapping of label: value");
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		const char *k = scalar(yaml_document_get_node(c->doc, pr->key));
		const yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
		const char *v = scalar(vn);

		snprintf(f, sizeof(f), "%.60s.%.60s", field, k ? k : "?");
		if (!k || !label_text_ok(k))
			return cfail(c, vn, field, "label names are 1 to %d printable characters "
				     "without '=' or ','", SCHED_LABEL_LEN - 1);
		if (strcmp(k, "pool") == 0)
			return cfail(c, vn, f, "the pool label is the pool's name: drop it");
		if (!v || !label_text_ok(v))
			return cfail(c, vn, f, "expected a value of 1 to %d printable characters "
				     "without '=' or ','", SCHED_LABEL_LEN - 1);
		for (uint32_t i = 0; i < p->nlabels; i++)
			if (strcmp(p->labels[i].key, k) == 0)
				return cfail(c, vn, f, "duplicate label");
		if (p->nlabels >= SCHED_MAX_LABELS)
			return cfail(c, vn, field, "more than %d labels", SCHED_MAX_LABELS - 1);
		strlcpy_ok(p->labels[p->nlabels].key, k, SCHED_LABEL_LEN);
		strlcpy_ok(p->labels[p->nlabels].val, v, SCHED_LABEL_LEN);
		p->nlabels++;
	}
	return 0;
}

static int get_template(struct cfgctx *c, const yaml_node_t *n, const char *field, struct pool *p)
{
	bool gpus = false, cpus = false, mem = false;
	char f[200];

	if (n->type != YAML_MAPPING_NODE)
		return cfail(c, n, field, "expected a mapping {gpus, cpus, memory}");
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		const char *k = scalar(yaml_document_get_node(c->doc, pr->key)), *t;
		const yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
		int rv;

		snprintf(f, sizeof(f), "%.60s.%.60s", field, k ? k : "?");
		if (!k)
			return cfail(c, vn, field, "keys must be scalars");
		if ((rv = want_scalar(c, vn, f, &t)) != 0)
			return rv;
		if (strcmp(k, "gpus") == 0) {
			struct gpu_info g[GPU_MAX];
			size_t ng = GPU_MAX;
			char why[160];
			void *ctx;

			if (gpus)
				return cfail(c, vn, f, "duplicate field");
			if (gpu_static_ops.init(t, &ctx, why, sizeof(why)) != 0)
				return cfail(c, vn, f, "%s", why);
			gpu_static_ops.list(ctx, g, &ng);
			gpu_static_ops.fini(ctx);
			if (ng > RES_MAX_GPUS)
				return cfail(c, vn, f, "more than %d GPUs", RES_MAX_GPUS);
			for (size_t i = 0; i < ng; i++) {
				p->tmpl.gpus[i].index = g[i].index;
				p->tmpl.gpus[i].mem = g[i].mem_total;
				strlcpy_ok(p->tmpl.gpus[i].model, g[i].model, RES_MODEL_LEN);
			}
			p->tmpl.ngpus = (uint32_t)ng;
			p->tmpl_gpus = xstrdup(t);
			gpus = true;
		} else if (strcmp(k, "cpus") == 0) {
			if (cpus)
				return cfail(c, vn, f, "duplicate field");
			if (units_parse_milli(t, &p->tmpl.cpu_total) != 0 || p->tmpl.cpu_total == 0)
				return cfail(c, vn, f, "\"%s\" is not a positive number of CPUs", t);
			cpus = true;
		} else if (strcmp(k, "memory") == 0) {
			if (mem)
				return cfail(c, vn, f, "duplicate field");
			if (units_parse_size(t, &p->tmpl.mem_total) != 0 || p->tmpl.mem_total == 0)
				return cfail(c, vn, f, "\"%s\" is not a size (e.g. 64G)", t);
			mem = true;
		} else {
			return cfail(c, vn, f, "unknown field (template has gpus, cpus, memory)");
		}
	}
	if (!gpus || !cpus || !mem)
		return cfail(c, n, field, "needs gpus, cpus and memory (e.g. {gpus: 4x80G:H100, "
			     "cpus: 16, memory: 64G})");
	return 0;
}

static int get_hook(struct cfgctx *c, const yaml_node_t *n, const char *field, char **out)
{
	const char *t;
	int rv;

	if ((rv = want_scalar(c, n, field, &t)) != 0)
		return rv;
	if (t[0] != '/')
		return cfail(c, n, field, "\"%s\" must be an absolute path", t);
	if (access(t, X_OK) != 0)
		return cfail(c, n, field, "%s: %s", t,
			     errno == ENOENT ? "no such file" : "not executable");
	*out = xstrdup(t);
	return 0;
}

enum { PK_NAME, PK_LABELS, PK_COST, PK_MIN, PK_MAX, PK_TEMPLATE, PK_PROVISION, PK_RELEASE,
       PK_BOOT, PK_IDLE, PK_N };
static const char *const pool_keys[PK_N] = {
	"name", "labels", "cost_per_gpu_hour", "min", "max", "template", "provision", "release",
	"boot_timeout", "idle"};

static int get_pool(struct cfgctx *c, const yaml_node_t *n, uint32_t idx, struct pool *p)
{
	const yaml_node_t *at[PK_N] = {0};
	char pf[32], f[200];
	int rv;

	snprintf(pf, sizeof(pf), "pools[%u]", idx);
	if (n->type != YAML_MAPPING_NODE)
		return cfail(c, n, pf, "expected a mapping (name, cost_per_gpu_hour, ...)");
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		const char *k = scalar(yaml_document_get_node(c->doc, pr->key));
		const yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
		int i;

		for (i = 0; i < PK_N && (!k || strcmp(k, pool_keys[i]) != 0); i++)
			;
		snprintf(f, sizeof(f), "%s.%.60s", pf, k ? k : "?");
		if (i == PK_N)
			return cfail(c, vn, f, "unknown field");
		if (at[i])
			return cfail(c, vn, f, "duplicate field");
		at[i] = vn;
	}
	p->boot_timeout_ms = 5 * 60 * 1000;
	p->idle_ms = 10 * 60 * 1000;
	/* pool=NAME is label 0: it is what makes a node a member. */
	p->nlabels = 1;
	strlcpy_ok(p->labels[0].key, "pool", SCHED_LABEL_LEN);
	if (!at[PK_NAME])
		return cfail(c, n, pf, "name is required");
	snprintf(f, sizeof(f), "%s.name", pf);
	const char *name;
	if ((rv = want_scalar(c, at[PK_NAME], f, &name)) != 0)
		return rv;
	if (!pool_name_ok(name))
		return cfail(c, at[PK_NAME], f,
			     "\"%s\": 1 to %d characters, [a-z0-9] first, then [a-z0-9._-]", name,
			     POOL_NAME_USER_MAX);
	strlcpy_ok(p->name, name, sizeof(p->name));
	strlcpy_ok(p->labels[0].val, name, SCHED_LABEL_LEN);
	snprintf(pf, sizeof(pf), "pools[%u]", idx);
	if (at[PK_LABELS]) {
		snprintf(f, sizeof(f), "%s.labels", pf);
		if ((rv = get_labels(c, at[PK_LABELS], f, p)) != 0)
			return rv;
	}
	if (at[PK_COST]) {
		const char *t;
		snprintf(f, sizeof(f), "%s.cost_per_gpu_hour", pf);
		if ((rv = want_scalar(c, at[PK_COST], f, &t)) != 0)
			return rv;
		if (units_parse_milli(t, &p->cost_milli) != 0)
			return cfail(c, at[PK_COST], f,
				     "\"%s\" is not a price (a number such as 2.5, at most 3 decimals)",
				     t);
	}
	if (!at[PK_PROVISION]) {
		/* On-prem: nodes come and go by themselves. */
		for (int i = PK_MIN; i < PK_N; i++)
			if (at[i]) {
				snprintf(f, sizeof(f), "%s.%s", pf, pool_keys[i]);
				return cfail(c, at[i], f,
					     "only for pools the master provisions (with provision:)");
			}
		return 0;
	}
	snprintf(f, sizeof(f), "%s.provision", pf);
	if ((rv = get_hook(c, at[PK_PROVISION], f, &p->provision)) != 0)
		return rv;
	snprintf(f, sizeof(f), "%s.release", pf);
	if (!at[PK_RELEASE])
		return cfail(c, n, f, "required with provision: (it stops what provision started)");
	if ((rv = get_hook(c, at[PK_RELEASE], f, &p->release)) != 0)
		return rv;
	snprintf(f, sizeof(f), "%s.template", pf);
	if (!at[PK_TEMPLATE])
		return cfail(c, n, f, "required with provision: (the machine it starts)");
	if ((rv = get_template(c, at[PK_TEMPLATE], f, p)) != 0)
		return rv;
	snprintf(f, sizeof(f), "%s.max", pf);
	if (!at[PK_MAX])
		return cfail(c, n, f, "required with provision: (the most nodes it may start)");
	if ((rv = get_u32(c, at[PK_MAX], f, POOL_MAX_NODES, &p->max)) != 0)
		return rv;
	if (p->max == 0)
		return cfail(c, at[PK_MAX], f, "must be at least 1");
	if (at[PK_MIN]) {
		snprintf(f, sizeof(f), "%s.min", pf);
		if ((rv = get_u32(c, at[PK_MIN], f, POOL_MAX_NODES, &p->min)) != 0)
			return rv;
		if (p->min > p->max)
			return cfail(c, at[PK_MIN], f, "must be at most max (%u)", p->max);
	}
	if (at[PK_BOOT]) {
		snprintf(f, sizeof(f), "%s.boot_timeout", pf);
		if ((rv = get_dur(c, at[PK_BOOT], f, 1000, &p->boot_timeout_ms)) != 0)
			return rv;
	}
	if (at[PK_IDLE]) {
		snprintf(f, sizeof(f), "%s.idle", pf);
		if ((rv = get_dur(c, at[PK_IDLE], f, 1000, &p->idle_ms)) != 0)
			return rv;
	}
	return 0;
}

static void pool_clear(struct pool *p)
{
	free(p->provision);
	free(p->release);
	free(p->tmpl_gpus);
	free(p->nodes);
}

void pools_free(struct pools *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->n; i++)
		pool_clear(&p->v[i]);
	free(p->v);
	free(p->seen);
	free(p->path);
	free(p);
}

int pools_config(const char *path, struct pools **out, char *why, size_t whylen)
{
	struct pools *ps = xcalloc(1, sizeof(*ps));
	struct cfgctx c = {.path = path, .why = why, .whylen = whylen};
	yaml_parser_t parser;
	yaml_document_t doc;
	const yaml_node_t *root, *list = NULL;
	bool parsed = false;
	char *text = NULL;
	size_t len;
	int rv;

	*out = NULL;
	ps->path = xstrdup(path);
	ps->burst_after_ms = 30 * 1000;
	if ((rv = file_read(path, POOLS_FILE_MAX, &text, &len)) != 0) {
		snprintf(why, whylen, "%s: cannot read: %s", path,
			 rv == ERR_TOOBIG ? "larger than 64K" : strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(why, whylen, "%s:%lu: %s", path, (unsigned long)parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		rv = ERR_INVAL;
		goto out;
	}
	yaml_parser_delete(&parser);
	parsed = true;
	c.doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		rv = cfail(&c, root, "(top)", "expected a mapping with pools: (and burst_after:)");
		goto out;
	}
	for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
	     pr < root->data.mapping.pairs.top; pr++) {
		const char *k = scalar(yaml_document_get_node(&doc, pr->key));
		const yaml_node_t *vn = yaml_document_get_node(&doc, pr->value);

		if (k && strcmp(k, "burst_after") == 0) {
			if ((rv = get_dur(&c, vn, "burst_after", 100, &ps->burst_after_ms)) != 0)
				goto out;
		} else if (k && strcmp(k, "pools") == 0) {
			if (list) {
				rv = cfail(&c, vn, "pools", "duplicate field");
				goto out;
			}
			list = vn;
		} else {
			rv = cfail(&c, vn, k ? k : "?", "unknown field (the file has burst_after "
				   "and pools)");
			goto out;
		}
	}
	if (!list || list->type != YAML_SEQUENCE_NODE ||
	    list->data.sequence.items.top == list->data.sequence.items.start) {
		rv = cfail(&c, list, "pools", "expected a list of at least one pool");
		goto out;
	}
	size_t np = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (np > POOL_MAX) {
		rv = cfail(&c, list, "pools", "more than %d pools", POOL_MAX);
		goto out;
	}
	ps->v = xcalloc(np, sizeof(*ps->v));
	for (size_t i = 0; i < np; i++) {
		const yaml_node_t *pn =
			yaml_document_get_node(&doc, list->data.sequence.items.start[i]);
		struct pool *p = &ps->v[ps->n++];
		char f[64];

		p->next_seq = 1;
		if ((rv = get_pool(&c, pn, (uint32_t)i, p)) != 0)
			goto out;
		for (uint32_t k = 0; k + 1 < ps->n; k++)
			if (strcmp(ps->v[k].name, p->name) == 0) {
				snprintf(f, sizeof(f), "pools[%zu].name", i);
				rv = cfail(&c, pn, f, "pool \"%s\" is defined twice", p->name);
				goto out;
			}
	}
	*out = ps;
	ps = NULL;
	rv = 0;
out:
	if (parsed)
		yaml_document_delete(&doc);
	free(text);
	pools_free(ps);
	return rv;
}

static void pnode_push(struct pool *p, const struct pnode *pn);

/* ---- lookups ---- */

struct pool *pools_of_node(const struct master *m, const struct node *n)
{
	const cJSON *l;

	if (!m->pools || !n->labels)
		return NULL;
	l = cJSON_GetObjectItemCaseSensitive(n->labels, "pool");
	if (!cJSON_IsString(l))
		return NULL;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (strcmp(m->pools->v[i].name, l->valuestring) == 0)
			return &m->pools->v[i];
	return NULL;
}

uint32_t pools_node_cost(const struct master *m, const struct node *n)
{
	const struct pool *p = pools_of_node(m, n);

	return p ? p->cost_milli : 0;
}

struct pnode *pools_pnode(const struct master *m, const char *name, struct pool **pool)
{
	if (!m->pools)
		return NULL;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++)
			if (strcmp(p->nodes[k].name, name) == 0) {
				if (pool)
					*pool = p;
				return &p->nodes[k];
			}
	}
	return NULL;
}

struct pnode *pools_pnode_add(struct pool *p, const char *name)
{
	struct pnode pn;

	memset(&pn, 0, sizeof(pn));
	strlcpy_ok(pn.name, name, sizeof(pn.name));
	pn.since = wall_ms();
	pnode_push(p, &pn);
	p->dirty = true;
	return &p->nodes[p->nnodes - 1];
}

void pools_pnode_del(struct pool *p, struct pnode *pn)
{
	size_t i = (size_t)(pn - p->nodes);

	if (i >= p->nnodes)
		return;
	memmove(&p->nodes[i], &p->nodes[i + 1], (p->nnodes - i - 1) * sizeof(*p->nodes));
	p->nnodes--;
	p->dirty = true;
}

struct hookrun *pools_hist_add(struct pool *p)
{
	if (p->nhist == POOL_HISTORY) {
		memmove(&p->hist[0], &p->hist[1], (POOL_HISTORY - 1) * sizeof(p->hist[0]));
		p->nhist--;
	}
	memset(&p->hist[p->nhist], 0, sizeof(p->hist[0]));
	return &p->hist[p->nhist++];
}

/* ---- records ---- */

static const char *const pnode_states[] = {"booting", "ready", "releasing"};

static cJSON *hook_json(const struct hookrun *h)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "node", h->node);
	cJSON_AddStringToObject(o, "action", h->release ? "release" : "provision");
	cJSON_AddStringToObject(o, "reason", h->reason);
	cJSON_AddNumberToObject(o, "started", (double)h->started);
	cJSON_AddNumberToObject(o, "finished", (double)h->finished);
	cJSON_AddNumberToObject(o, "exit_code", h->exit_code);
	cJSON_AddNumberToObject(o, "signal", h->signal);
	cJSON_AddStringToObject(o, "stderr", h->tail);
	return o;
}

/* The stored part of a pool (also shown by mlctl pools). */
static cJSON *pool_state_json(const struct pool *p)
{
	cJSON *o = cJSON_CreateObject(), *a;

	cJSON_AddNumberToObject(o, "next_seq", p->next_seq);
	cJSON_AddNumberToObject(o, "failures", p->failures);
	cJSON_AddNumberToObject(o, "backoff_until", (double)p->backoff_until);
	cJSON_AddNumberToObject(o, "provisioned", p->provisioned);
	cJSON_AddNumberToObject(o, "released", p->released);
	cJSON_AddNumberToObject(o, "failed", p->failed);
	cJSON_AddStringToObject(o, "last_provision", p->last_provision);
	cJSON_AddNumberToObject(o, "last_provision_at", (double)p->last_provision_at);
	cJSON_AddStringToObject(o, "last_release", p->last_release);
	cJSON_AddNumberToObject(o, "last_release_at", (double)p->last_release_at);
	a = cJSON_AddArrayToObject(o, "provisioned_nodes");
	for (uint32_t i = 0; i < p->nnodes; i++) {
		const struct pnode *pn = &p->nodes[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", pn->name);
		cJSON_AddStringToObject(e, "state", pnode_states[pn->state]);
		cJSON_AddNumberToObject(e, "since", (double)pn->since);
		cJSON_AddStringToObject(e, "reason", pn->reason);
		cJSON_AddItemToArray(a, e);
	}
	a = cJSON_AddArrayToObject(o, "hooks");
	for (uint32_t i = 0; i < p->nhist; i++)
		cJSON_AddItemToArray(a, hook_json(&p->hist[i]));
	return o;
}

bool pools_dirty(const struct master *m)
{
	if (!m->pools)
		return false;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (m->pools->v[i].dirty)
			return true;
	return false;
}

int pools_store(struct master *m)
{
	char key[STORE_KEY_MAX];
	int rv;

	if (!m->pools)
		return 0;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		if (!p->dirty)
			continue;
		cJSON *o = pool_state_json(p);
		char *s = cJSON_PrintUnformatted(o);
		snprintf(key, sizeof(key), "pools/%s", p->name);
		rv = store_put(m->store, key, s, strlen(s));
		free(s);
		cJSON_Delete(o);
		if (rv != 0)
			return rv;
		p->dirty = false;
	}
	return 0;
}

static void get_text(const cJSON *o, const char *k, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	buf[0] = '\0';
	if (cJSON_IsString(v))
		strlcpy_ok(buf, v->valuestring, len);
}

static uint64_t get_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	/* The range keeps the cast defined (UBSan's float-cast-overflow). */
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15
		       ? (uint64_t)v->valuedouble
		       : 0;
}

static int get_int(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble >= -1e6 && v->valuedouble <= 1e6
		       ? (int)v->valuedouble
		       : -1;
}

static void pnode_push(struct pool *p, const struct pnode *pn)
{
	if (p->nnodes == p->cap_nodes) {
		p->cap_nodes = p->cap_nodes ? p->cap_nodes * 2 : 8;
		p->nodes = xrealloc(p->nodes, p->cap_nodes * sizeof(*p->nodes));
	}
	p->nodes[p->nnodes++] = *pn;
}

/* Hooks this process runs, kept across a reload (the master goes back to
 * the committed state after a failed write, or a new HA term loads): their
 * pids are still ours to reap. */
struct running {
	char name[POOL_NAME_MAX + 1];
	pid_t pid;
	uint64_t deadline;
};

static int load_pool(const char *key, const void *val, size_t len, void *arg)
{
	struct master *m = arg;
	const char *name = key + strlen("pools/");
	struct pool *p = NULL;
	cJSON *o, *a, *e;

	(void)len;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (strcmp(m->pools->v[i].name, name) == 0)
			p = &m->pools->v[i];
	if (!(o = cJSON_Parse(val))) {
		log_error("store: record %s is not JSON: skipped", key);
		return 0;
	}
	if (!p) {
		a = cJSON_GetObjectItemCaseSensitive(o, "provisioned_nodes");
		if (cJSON_GetArraySize(a) > 0)
			log_warn("pool %s is no longer in %s but provisioned %d node(s) that are "
				 "still recorded: release them by hand (its record is kept)",
				 name, m->pools->path, cJSON_GetArraySize(a));
		cJSON_Delete(o);
		return 0;
	}
	p->next_seq = (uint32_t)get_num(o, "next_seq");
	if (p->next_seq == 0)
		p->next_seq = 1;
	p->failures = (uint32_t)get_num(o, "failures");
	p->backoff_until = get_num(o, "backoff_until");
	p->provisioned = (uint32_t)get_num(o, "provisioned");
	p->released = (uint32_t)get_num(o, "released");
	p->failed = (uint32_t)get_num(o, "failed");
	get_text(o, "last_provision", p->last_provision, sizeof(p->last_provision));
	p->last_provision_at = get_num(o, "last_provision_at");
	get_text(o, "last_release", p->last_release, sizeof(p->last_release));
	p->last_release_at = get_num(o, "last_release_at");
	p->nnodes = 0;
	a = cJSON_GetObjectItemCaseSensitive(o, "provisioned_nodes");
	cJSON_ArrayForEach(e, a)
	{
		struct pnode pn;
		char st[16];

		memset(&pn, 0, sizeof(pn));
		get_text(e, "name", pn.name, sizeof(pn.name));
		get_text(e, "state", st, sizeof(st));
		get_text(e, "reason", pn.reason, sizeof(pn.reason));
		pn.since = get_num(e, "since");
		if (!pn.name[0])
			continue;
		if (strcmp(st, "ready") == 0)
			pn.state = PNODE_READY;
		else if (strcmp(st, "releasing") == 0)
			pn.state = PNODE_RELEASING;
		else
			pn.state = PNODE_BOOTING;
		/* A release that may not have finished runs again, unless
		 * this process still runs its hook. */
		pn.hook_due = pn.state == PNODE_RELEASING;
		for (size_t r = 0; r < m->pools->loading_nrun; r++) {
			struct running *run = m->pools->loading_run;
			if (strcmp(run[r].name, pn.name) == 0) {
				pn.hook_pid = run[r].pid;
				pn.retry_at = run[r].deadline;
				pn.hook_due = false;
			}
		}
		pnode_push(p, &pn);
	}
	p->nhist = 0;
	a = cJSON_GetObjectItemCaseSensitive(o, "hooks");
	cJSON_ArrayForEach(e, a)
	{
		struct hookrun *h = pools_hist_add(p);
		char act[16];

		get_text(e, "node", h->node, sizeof(h->node));
		get_text(e, "action", act, sizeof(act));
		h->release = strcmp(act, "release") == 0;
		get_text(e, "reason", h->reason, sizeof(h->reason));
		get_text(e, "stderr", h->tail, sizeof(h->tail));
		h->started = get_num(e, "started");
		h->finished = get_num(e, "finished");
		h->exit_code = get_int(e, "exit_code");
		h->signal = (int)get_num(e, "signal");
		bool ours = false;
		for (uint32_t k = 0; k < p->nnodes; k++)
			ours |= p->nodes[k].hook_pid && strcmp(p->nodes[k].name, h->node) == 0;
		if (!h->finished && !ours) {
			/* Its master died while it ran: nobody reaped it. */
			h->finished = wall_ms();
			h->exit_code = -1;
			strlcpy_ok(h->tail, "outcome unknown: the master restarted while it ran",
				   sizeof(h->tail));
			p->dirty = true;
		}
	}
	cJSON_Delete(o);
	return 0;
}

int pools_load(struct master *m)
{
	struct running *run = NULL;
	size_t nrun = 0;
	int rv;

	if (!m->pools)
		return 0;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++) {
			if (!p->nodes[k].hook_pid)
				continue;
			run = xrealloc(run, (nrun + 1) * sizeof(*run));
			strlcpy_ok(run[nrun].name, p->nodes[k].name, sizeof(run[nrun].name));
			run[nrun].pid = p->nodes[k].hook_pid;
			run[nrun++].deadline = p->nodes[k].retry_at;
		}
		p->nnodes = 0;
		p->nhist = 0;
	}
	m->pools->loading_run = run;
	m->pools->loading_nrun = nrun;
	rv = store_list(m->store, "pools/", load_pool, m);
	m->pools->loading_run = NULL;
	m->pools->loading_nrun = 0;
	free(run);
	if (rv != 0)
		return rv;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		uint32_t nb = 0, nr = 0, nx = 0;
		for (uint32_t k = 0; k < p->nnodes; k++) {
			nb += p->nodes[k].state == PNODE_BOOTING;
			nr += p->nodes[k].state == PNODE_READY;
			nx += p->nodes[k].state == PNODE_RELEASING;
		}
		if (p->nnodes)
			log_info("pool=%s: %u booting, %u ready and %u releasing node(s) from the "
				 "store",
				 p->name, nb, nr, nx);
	}
	return 0;
}

/* ---- mlctl pools ---- */

static double milli(uint32_t v)
{
	return v / 1000.0;
}

static cJSON *pool_json(struct master *m, struct pool *p)
{
	cJSON *o = cJSON_CreateObject(), *l, *nodes, *st = pool_state_json(p), *it;
	uint32_t ready = 0, lost = 0, booting = 0, releasing = 0;
	uint64_t used_milli = 0, total_milli = 0, billed_gpus = 0;

	cJSON_AddStringToObject(o, "name", p->name);
	l = cJSON_AddObjectToObject(o, "labels");
	for (uint32_t i = 1; i < p->nlabels; i++)
		cJSON_AddStringToObject(l, p->labels[i].key, p->labels[i].val);
	cJSON_AddNumberToObject(o, "cost_per_gpu_hour", milli(p->cost_milli));
	cJSON_AddBoolToObject(o, "provisioned", p->provision != NULL);
	if (p->provision) {
		char mem[32];
		cJSON *t = cJSON_AddObjectToObject(o, "template");
		units_format_size(p->tmpl.mem_total, mem, sizeof(mem));
		cJSON_AddStringToObject(t, "gpus", p->tmpl_gpus);
		cJSON_AddNumberToObject(t, "cpus", milli(p->tmpl.cpu_total));
		cJSON_AddStringToObject(t, "memory", mem);
		cJSON_AddNumberToObject(o, "min", p->min);
		cJSON_AddNumberToObject(o, "max", p->max);
		cJSON_AddNumberToObject(o, "boot_timeout_ms", (double)p->boot_timeout_ms);
		cJSON_AddNumberToObject(o, "idle_ms", (double)p->idle_ms);
		cJSON_AddStringToObject(o, "provision", p->provision);
		cJSON_AddStringToObject(o, "release", p->release);
	}
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		struct pnode *pn;
		cJSON *e;
		const char *state;

		if (pools_of_node(m, n) != p)
			continue;
		pn = pools_pnode(m, n->name, NULL);
		if (pn && pn->state == PNODE_RELEASING)
			state = "releasing";
		else if (pn && pn->state == PNODE_BOOTING)
			state = "booting";
		else if (n->state == NODE_READY)
			state = n->drained ? "drained" : "ready";
		else if (pn)
			state = "lost";
		else
			continue; /* gone (released earlier, or an on-prem node that left) */
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", n->name);
		cJSON_AddStringToObject(e, "state", state);
		cJSON_AddBoolToObject(e, "provisioned", pn != NULL);
		cJSON_AddNumberToObject(e, "gpus", n->cap.ngpus);
		cJSON_AddNumberToObject(e, "tasks", n->ntasks);
		cJSON_AddItemToArray(nodes, e);
		if (strcmp(state, "ready") == 0) {
			ready++;
			for (uint32_t g = 0; n->sn && g < n->sn->res.ngpus; g++) {
				used_milli += n->sn->res.gpus[g].used_milli;
				total_milli += 1000;
			}
		} else if (strcmp(state, "lost") == 0) {
			lost++;
		}
		if (strcmp(state, "lost") != 0)
			billed_gpus += n->cap.ngpus;
		if (strcmp(state, "booting") == 0)
			booting++;
		if (strcmp(state, "releasing") == 0)
			releasing++;
	}
	/* Provisioned nodes whose agent has not spoken yet. */
	for (uint32_t k = 0; k < p->nnodes; k++) {
		struct pnode *pn = &p->nodes[k];
		struct node *n = node_find(m, pn->name);
		cJSON *e;

		if (n && pools_of_node(m, n) == p)
			continue;
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", pn->name);
		cJSON_AddStringToObject(e, "state", pnode_states[pn->state]);
		cJSON_AddBoolToObject(e, "provisioned", true);
		cJSON_AddNumberToObject(e, "gpus", p->tmpl.ngpus);
		cJSON_AddNumberToObject(e, "tasks", 0);
		cJSON_AddItemToArray(nodes, e);
		billed_gpus += p->tmpl.ngpus;
		if (pn->state == PNODE_BOOTING)
			booting++;
		else if (pn->state == PNODE_RELEASING)
			releasing++;
	}
	cJSON_AddNumberToObject(o, "ready", ready);
	cJSON_AddNumberToObject(o, "booting", booting);
	cJSON_AddNumberToObject(o, "releasing", releasing);
	cJSON_AddNumberToObject(o, "lost", lost);
	cJSON_AddNumberToObject(o, "gpus_used", used_milli / 1000.0);
	cJSON_AddNumberToObject(o, "gpus_free", (total_milli - used_milli) / 1000.0);
	cJSON_AddNumberToObject(o, "cost_per_hour", (double)billed_gpus * milli(p->cost_milli));
	cJSON_ArrayForEach(it, st)
	{
		if (strcmp(it->string, "next_seq") == 0)
			continue;
		cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
	}
	cJSON_Delete(st);
	return o;
}

cJSON *pools_to_json(struct master *m, const char *name)
{
	cJSON *a;

	if (!m->pools)
		return cJSON_CreateArray();
	if (name) {
		for (uint32_t i = 0; i < m->pools->n; i++)
			if (strcmp(m->pools->v[i].name, name) == 0)
				return pool_json(m, &m->pools->v[i]);
		return NULL;
	}
	a = cJSON_CreateArray();
	for (uint32_t i = 0; i < m->pools->n; i++)
		cJSON_AddItemToArray(a, pool_json(m, &m->pools->v[i]));
	return a;
}
