/*
 * pools_file.c - read and validate a pools file (pools_config, pools.h).
 * Apart from the rest of pools.c so that tools that only read the file
 * (mlbench replay --pools) link it without the master.
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
#include "pools.h"
#include "units.h"
#include "util.h"
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
