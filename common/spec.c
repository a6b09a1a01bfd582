/*
 * spec.c - job specs from YAML (libyaml) and JSON (cJSON), one set of rules.
 *
 * Both inputs are first turned into the same small tree (struct node), then
 * one table-driven decoder fills a struct spec and one validator applies the
 * cross-field rules and the defaults.  The two formats differ only in the key
 * names of the unit-carrying fields (YAML "memory: 8G", JSON "memory":
 * 8589934592, YAML "cpus: 2", JSON "cpu_milli": 2000) and in how strictly
 * scalars are typed, so no rule is written twice and a spec that came over the
 * wire is held to exactly the standard of one read from a file.
 */
#include "spec.h"
#include "err.h"
#include "ociref.h"
#include "units.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <yaml.h>

/* A spec is at most three levels deep (health.exec[i]); anything much deeper
 * is not a spec, and the limit keeps the recursive walks below bounded. */
#define MAX_DEPTH 16
/* JSON numbers are doubles: integers beyond 2^53 would not read back. */
#define MAX_EXACT ((int64_t)1 << 53)
#define DEFAULT_WORKDIR "/work"
#define DEFAULT_MEM (128ull << 20)
#define DEFAULT_CPU_MILLI 100
#define DEFAULT_RESTART_MAX 3
#define DEFAULT_HEALTH_INTERVAL_MS 1000
#define DEFAULT_HEALTH_TIMEOUT_MS 500
#define DEFAULT_HEALTH_FAILURES 3
#define DEFAULT_HEALTH_SUCCESSES 1
#define DEFAULT_COOLDOWN_MS 30000
#define DEFAULT_WINDOW_MS 30000
#define DEFAULT_RESCHEDULE_MAX 3
#define DEFAULT_ROLLOUT_DEADLINE_MS (2 * 60 * 1000)
#define MAX_COUNT 1000000 /* restart, reschedule, failures, successes */

/* ---- the common tree ---------------------------------------------------- */

enum ntype { N_STR, N_NUM, N_BOOL, N_NULL, N_MAP, N_SEQ };

struct node {
	enum ntype type;
	char *text;   /* scalars: the text (YAML), the string (JSON); else NULL */
	bool has_nul; /* text had an embedded NUL byte */
	double num;   /* N_NUM */
	int line;     /* 1-based; 0 for JSON */
	char *key;    /* set when this node is a mapping value */
	int kline;
	size_t n;
	struct node *kids;
};

static void node_clear(struct node *n)
{
	for (size_t i = 0; i < n->n; i++)
		node_clear(&n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n->key);
}

/* ---- messages ------------------------------------------------------------ */

struct ctx {
	const char *file; /* "job.yaml" or "spec" */
	bool json;
	char *err;
	size_t errlen;
	const char *prefix; /* put before every path ("roles.ps."), or NULL */
};

/* "file:line: path: reason" (no ":line" for JSON or when line is 0). */
static int fail(const struct ctx *c, int line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(const struct ctx *c, int line, const char *path, const char *fmt, ...)
{
	char why[SPEC_ERR_LEN];
	va_list ap;

	if (!c->err || c->errlen == 0)
		return ERR_INVAL;
	char full[256];

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (c->prefix) {
		snprintf(full, sizeof(full), "%s%s", c->prefix, path ? path : "");
		path = full;
	}
	if (line > 0 && !c->json)
		snprintf(c->err, c->errlen, "%s:%d: %s%s%s", c->file, line, path ? path : "",
			 path ? ": " : "", why);
	else
		snprintf(c->err, c->errlen, "%s: %s%s%s", c->file, path ? path : "",
			 path ? ": " : "", why);
	return ERR_INVAL;
}

/* A user's value for a message: quoted, control bytes shown as '?', long
 * values cut, so one bad field cannot flood a terminal or a log line. */
static const char *quote(const char *s, char *buf, size_t len)
{
	size_t o = 0, max = len > 8 ? len - 6 : 0;

	buf[o++] = '"';
	for (; *s && o < max; s++)
		buf[o++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
	if (*s) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* A key to quote() rather than print: long, or with a quote or a control
 * byte in it (a message is one readable line). */
static bool odd_key(const char *k, size_t max)
{
	size_t n = 0;

	for (; k[n]; n++)
		if ((unsigned char)k[n] < 0x20 || k[n] == 0x7f || k[n] == '"')
			return true;
	return n > max;
}

static const char *word_map(const struct ctx *c)
{
	return c->json ? "an object" : "a mapping";
}

static const char *word_seq(const struct ctx *c)
{
	return c->json ? "an array" : "a list";
}

/* ---- YAML -> tree -------------------------------------------------------- */

static int yaml_syntax(const struct ctx *c, const yaml_parser_t *p)
{
	/* Reader errors (bad UTF-8, NUL bytes) carry only a byte offset. */
	int line = p->error == YAML_READER_ERROR ? 0 : (int)p->problem_mark.line + 1;

	return fail(c, line, NULL, "YAML syntax error: %s",
		    p->problem ? p->problem : "unknown problem");
}

/*
 * The document API resolves aliases silently into shared nodes, so they are
 * found on the event stream first.  This pass also catches syntax errors,
 * more than one document and absurd nesting before any tree is built.
 */
static int yaml_prescan(const struct ctx *c, const char *text, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int rv = 0, depth = 0, docs = 0;
	bool done = false;

	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	while (!done) {
		int line;

		if (!yaml_parser_parse(&p, &ev)) {
			rv = yaml_syntax(c, &p);
			goto out;
		}
		line = (int)ev.start_mark.line + 1;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				rv = fail(c, line, NULL, "only one YAML document is allowed");
			break;
		case YAML_ALIAS_EVENT:
			rv = fail(c, line, NULL, "aliases are not allowed");
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (++depth > MAX_DEPTH)
				rv = fail(c, line, NULL, "nested too deeply");
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (rv < 0)
			goto out;
	}
out:
	yaml_parser_delete(&p);
	return rv;
}

/* Plain (unquoted) scalars that YAML reads as null. */
static bool yaml_is_null(const yaml_node_t *y)
{
	const char *t = (const char *)y->data.scalar.value;

	if (y->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !strcmp(t, "") || !strcmp(t, "~") || !strcmp(t, "null") || !strcmp(t, "Null") ||
	       !strcmp(t, "NULL");
}

static int yaml_to_node(const struct ctx *c, yaml_document_t *doc, yaml_node_t *y, struct node *n)
{
	int rv;

	n->line = (int)y->start_mark.line + 1;
	switch (y->type) {
	case YAML_SCALAR_NODE:
		n->type = yaml_is_null(y) ? N_NULL : N_STR;
		n->text = xstrndup((const char *)y->data.scalar.value, y->data.scalar.length);
		n->has_nul = strlen(n->text) != y->data.scalar.length;
		return 0;
	case YAML_SEQUENCE_NODE: {
		yaml_node_item_t *it = y->data.sequence.items.start;

		n->type = N_SEQ;
		n->n = (size_t)(y->data.sequence.items.top - it);
		n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
		for (size_t i = 0; i < n->n; i++) {
			rv = yaml_to_node(c, doc, yaml_document_get_node(doc, it[i]), &n->kids[i]);
			if (rv < 0)
				return rv;
		}
		return 0;
	}
	case YAML_MAPPING_NODE: {
		yaml_node_pair_t *pr = y->data.mapping.pairs.start;

		n->type = N_MAP;
		n->n = (size_t)(y->data.mapping.pairs.top - pr);
		n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
		for (size_t i = 0; i < n->n; i++) {
			yaml_node_t *k = yaml_document_get_node(doc, pr[i].key);
			struct node *kid = &n->kids[i];

			kid->kline = (int)k->start_mark.line + 1;
			if (k->type != YAML_SCALAR_NODE)
				return fail(c, kid->kline, NULL, "keys must be scalars");
			kid->key =
			    xstrndup((const char *)k->data.scalar.value, k->data.scalar.length);
			rv = yaml_to_node(c, doc, yaml_document_get_node(doc, pr[i].value), kid);
			if (rv < 0)
				return rv;
		}
		return 0;
	}
	default:
		return fail(c, n->line, NULL, "empty YAML node");
	}
}

static int yaml_to_tree(const struct ctx *c, const char *text, size_t len, struct node *root)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_node_t *top;
	int rv;

	rv = yaml_prescan(c, text, len);
	if (rv < 0)
		return rv;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &doc)) {
		rv = yaml_syntax(c, &p);
		yaml_parser_delete(&p);
		return rv;
	}
	top = yaml_document_get_root_node(&doc);
	if (!top)
		rv = fail(c, 0, NULL, "the spec is empty");
	else if (top->type != YAML_MAPPING_NODE)
		rv = fail(c, (int)top->start_mark.line + 1, NULL,
			  "expected a mapping at the top level");
	else
		rv = yaml_to_node(c, &doc, top, root);
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return rv;
}

/* ---- JSON -> tree -------------------------------------------------------- */

static int json_to_node(const struct ctx *c, const cJSON *j, struct node *n, int depth)
{
	const cJSON *e;
	size_t i = 0;
	int rv;

	if (depth > MAX_DEPTH)
		return fail(c, 0, NULL, "nested too deeply");
	if (cJSON_IsString(j)) {
		n->type = N_STR;
		n->text = xstrdup(j->valuestring ? j->valuestring : "");
	} else if (cJSON_IsNumber(j)) {
		n->type = N_NUM;
		n->num = j->valuedouble;
	} else if (cJSON_IsBool(j)) {
		n->type = N_BOOL;
		n->num = cJSON_IsTrue(j) ? 1 : 0;
	} else if (cJSON_IsNull(j)) {
		n->type = N_NULL;
	} else if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		n->type = cJSON_IsObject(j) ? N_MAP : N_SEQ;
		n->n = (size_t)cJSON_GetArraySize(j);
		n->kids = xcalloc(n->n ? n->n : 1, sizeof(*n->kids));
		cJSON_ArrayForEach(e, j)
		{
			if (n->type == N_MAP)
				n->kids[i].key = xstrdup(e->string ? e->string : "");
			rv = json_to_node(c, e, &n->kids[i++], depth + 1);
			if (rv < 0)
				return rv;
		}
	} else {
		return fail(c, 0, NULL, "unsupported JSON value");
	}
	return 0;
}

/* ---- the field table ----------------------------------------------------- */

enum fid {
	F_TOP = 0,
	F_NAME,
	F_KIND,
	F_IMAGE,
	F_COMMAND,
	F_WORKDIR,
	F_WORKERS,
	F_REPLICAS,
	F_STANDBY,
	F_ARRAY,
	F_PARALLELISM,
	F_RESOURCES,
	F_GPUS,
	F_GPU_MEMORY,
	F_GPU_MODEL,
	F_MEMORY,
	F_CPUS,
	F_PRIORITY,
	F_RESTART,
	F_RESTART_POLICY,
	F_RESTART_MAX,
	F_ENV,
	F_POLICY,
	F_QUEUE,
	F_CONSTRAINTS,
	F_HEALTH,
	F_HTTP,
	F_TCP,
	F_EXEC,
	F_INTERVAL,
	F_TIMEOUT,
	F_FAILURES,
	F_SUCCESSES,
	F_GRACE,
	F_AUTOSCALE,
	F_AS_MIN,
	F_AS_MAX,
	F_AS_TARGET,
	F_AS_CPU_TARGET,
	F_AS_WINDOW,
	F_AS_COOLDOWN,
	F_RESCHEDULE,
	F_RESCHEDULE_MAX,
	F_ROLLOUT,
	F_ROLLOUT_DEADLINE,
	F_MAX_COST,
	F_ROLES,
	F_COUNT
};

enum ftype {
	T_MAP,
	T_STR,
	T_KIND,
	T_RESTART,
	T_ARGV,
	T_ADDR, /* text; JSON also takes an integer (health.tcp: 8080) */
	T_LIST,
	T_ENV,
	T_U32,
	T_I32,
	T_SIZE,
	T_DUR,
	T_MILLI,
	T_ROLES /* spec_roles: decode_roles() */
};

#define K_TRAIN (1u << SPEC_TRAIN)
#define K_SERVE (1u << SPEC_SERVE)
#define K_BATCH (1u << SPEC_BATCH)
#define K_ALL (K_TRAIN | K_SERVE | K_BATCH)

struct field {
	enum fid parent;
	const char *yname, *jname; /* key in YAML, key in JSON */
	enum ftype type;
	size_t off;	  /* into struct spec */
	int64_t min, max; /* numeric types */
	unsigned kinds;	  /* kinds the field is allowed on */
};

#define OFF(m) offsetof(struct spec, m)
#define U32MAX ((int64_t)UINT32_MAX)

static const struct field fields[F_COUNT] = {
    [F_NAME] = {F_TOP, "name", "name", T_STR, OFF(name), 0, 0, K_ALL},
    [F_KIND] = {F_TOP, "kind", "kind", T_KIND, OFF(kind), 0, 0, K_ALL},
    [F_IMAGE] = {F_TOP, "image", "image", T_STR, OFF(image), 0, 0, K_ALL},
    [F_COMMAND] = {F_TOP, "command", "command", T_ARGV, OFF(command), 0, 0, K_ALL},
    [F_WORKDIR] = {F_TOP, "workdir", "workdir", T_STR, OFF(workdir), 0, 0, K_ALL},
    [F_WORKERS] = {F_TOP, "workers", "workers", T_U32, OFF(workers), 1, U32MAX, K_TRAIN},
    [F_REPLICAS] = {F_TOP, "replicas", "replicas", T_U32, OFF(replicas), 1, U32MAX, K_SERVE},
    [F_STANDBY] = {F_TOP, "standby", "standby", T_U32, OFF(standby), 0, U32MAX, K_SERVE},
    [F_ARRAY] = {F_TOP, "array", "array", T_U32, OFF(array), 1, U32MAX, K_BATCH},
    [F_PARALLELISM] = {F_TOP, "parallelism", "parallelism", T_U32, OFF(parallelism), 1, U32MAX,
		       K_BATCH},
    [F_RESOURCES] = {F_TOP, "resources", "resources", T_MAP, 0, 0, 0, K_ALL},
    [F_GPUS] = {F_RESOURCES, "gpus", "gpus_milli", T_MILLI, OFF(res.gpus_milli), 0, U32MAX, K_ALL},
    [F_GPU_MEMORY] = {F_RESOURCES, "gpu_memory", "gpu_memory", T_SIZE, OFF(res.gpu_mem), 0,
		      MAX_EXACT, K_ALL},
    [F_GPU_MODEL] = {F_RESOURCES, "gpu_model", "gpu_model", T_STR, OFF(gpu_model), 0, 0, K_ALL},
    [F_MEMORY] = {F_RESOURCES, "memory", "memory", T_SIZE, OFF(res.mem), 1, MAX_EXACT, K_ALL},
    [F_CPUS] = {F_RESOURCES, "cpus", "cpu_milli", T_MILLI, OFF(res.cpu_milli), 1, U32MAX, K_ALL},
    [F_PRIORITY] = {F_TOP, "priority", "priority", T_I32, OFF(priority), -1000, 1000, K_ALL},
    [F_RESTART] = {F_TOP, "restart", "restart", T_MAP, 0, 0, 0, K_ALL},
    [F_RESTART_POLICY] = {F_RESTART, "policy", "policy", T_RESTART, OFF(restart), 0, 0, K_ALL},
    [F_RESTART_MAX] = {F_RESTART, "max", "max", T_U32, OFF(restart_max), 0, MAX_COUNT, K_ALL},
    [F_ENV] = {F_TOP, "env", "env", T_ENV, 0, 0, 0, K_ALL},
    [F_POLICY] = {F_TOP, "policy", "policy", T_STR, OFF(policy), 0, 0, K_ALL},
    [F_QUEUE] = {F_TOP, "queue", "queue", T_STR, OFF(queue), 0, 0, K_ALL},
    [F_CONSTRAINTS] = {F_TOP, "constraints", "constraints", T_LIST, OFF(constraints), 0, 0, K_ALL},
    [F_HEALTH] = {F_TOP, "health", "health", T_MAP, OFF(health.set), 0, 0, K_SERVE},
    [F_HTTP] = {F_HEALTH, "http", "http", T_STR, OFF(health.http), 0, 0, K_SERVE},
    [F_TCP] = {F_HEALTH, "tcp", "tcp", T_ADDR, OFF(health.tcp), -MAX_EXACT, MAX_EXACT, K_SERVE},
    [F_EXEC] = {F_HEALTH, "exec", "exec", T_ARGV, OFF(health.exec), 0, 0, K_SERVE},
    [F_INTERVAL] = {F_HEALTH, "interval", "interval_ms", T_DUR, OFF(health.interval_ms), 1,
		    MAX_EXACT, K_SERVE},
    [F_TIMEOUT] = {F_HEALTH, "timeout", "timeout_ms", T_DUR, OFF(health.timeout_ms), 1, MAX_EXACT,
		   K_SERVE},
    [F_FAILURES] = {F_HEALTH, "failures", "failures", T_U32, OFF(health.failures), 1, MAX_COUNT,
		    K_SERVE},
    [F_SUCCESSES] = {F_HEALTH, "successes", "successes", T_U32, OFF(health.successes), 1, MAX_COUNT,
		     K_SERVE},
    [F_GRACE] = {F_HEALTH, "grace", "grace_ms", T_DUR, OFF(health.grace_ms), 0, MAX_EXACT, K_SERVE},
    [F_AUTOSCALE] = {F_TOP, "autoscale", "autoscale", T_MAP, OFF(autoscale.set), 0, 0, K_SERVE},
    [F_AS_MIN] = {F_AUTOSCALE, "min", "min", T_U32, OFF(autoscale.min), 1, SPEC_MAX_TASKS, K_SERVE},
    [F_AS_MAX] = {F_AUTOSCALE, "max", "max", T_U32, OFF(autoscale.max), 1, SPEC_MAX_TASKS, K_SERVE},
    [F_AS_TARGET] = {F_AUTOSCALE, "target_gpu_util", "target_gpu_util", T_U32,
		     OFF(autoscale.target_gpu_util), 1, 100, K_SERVE},
    [F_AS_CPU_TARGET] = {F_AUTOSCALE, "target_cpu_util", "target_cpu_util", T_U32,
			 OFF(autoscale.target_cpu_util), 1, 100, K_SERVE},
    [F_AS_WINDOW] = {F_AUTOSCALE, "window", "window_ms", T_DUR, OFF(autoscale.window_ms), 1,
		     MAX_EXACT, K_SERVE},
    [F_AS_COOLDOWN] = {F_AUTOSCALE, "cooldown", "cooldown_ms", T_DUR, OFF(autoscale.cooldown_ms), 0,
		       MAX_EXACT, K_SERVE},
    [F_RESCHEDULE] = {F_TOP, "reschedule", "reschedule", T_MAP, 0, 0, 0, K_ALL},
    [F_RESCHEDULE_MAX] = {F_RESCHEDULE, "max", "max", T_U32, OFF(reschedule_max), 0, MAX_COUNT,
			  K_ALL},
    [F_ROLLOUT] = {F_TOP, "rollout", "rollout", T_MAP, 0, 0, 0, K_SERVE},
    [F_ROLLOUT_DEADLINE] = {F_ROLLOUT, "deadline", "deadline_ms", T_DUR, OFF(rollout_deadline_ms),
			    1, MAX_EXACT, K_SERVE},
    [F_MAX_COST] = {F_TOP, "max_cost_per_gpu_hour", "max_cost_milli", T_MILLI, OFF(max_cost_milli),
		    1, U32MAX, K_ALL},
    [F_ROLES] = {F_TOP, "roles", "roles", T_ROLES, 0, 0, 0, K_TRAIN},
};

/* Where each field was found.  set: present with a non-null value. */
struct where {
	bool seen[F_COUNT], set[F_COUNT];
	int line[F_COUNT];
};

static const char *fname(const struct ctx *c, enum fid f)
{
	return c->json ? fields[f].jname : fields[f].yname;
}

/* The dotted path of a field as the user wrote it: "resources.memory". */
static const char *fpath(const struct ctx *c, enum fid f, char *buf, size_t len)
{
	if (fields[f].parent == F_TOP)
		snprintf(buf, len, "%s", fname(c, f));
	else
		snprintf(buf, len, "%s.%s", fname(c, fields[f].parent), fname(c, f));
	return buf;
}

static void *at(struct spec *s, enum fid f)
{
	return (char *)s + fields[f].off;
}

/* ---- decoding ------------------------------------------------------------ */

/* Text of a scalar where text is wanted.  JSON wants a string, YAML any
 * scalar (YAML "port: 80" is the text "80"). */
static int want_text(const struct ctx *c, const struct node *n, const char *path, const char **out)
{
	if (n->type != N_STR && (c->json || n->type != N_NULL))
		return fail(c, n->line, path, "expected %s", c->json ? "a string" : "a scalar");
	if (n->has_nul)
		return fail(c, n->line, path, "contains a NUL byte");
	*out = n->text;
	return 0;
}

static int check_range(const struct ctx *c, const struct node *n, const char *path,
		       const struct field *fd, int64_t v)
{
	if (v < fd->min)
		return fail(c, n->line, path, "must be at least %lld", (long long)fd->min);
	if (v > fd->max)
		return fail(c, n->line, path, "must be at most %lld", (long long)fd->max);
	return 0;
}

/* An integer-valued field of any numeric type.  YAML text goes through the
 * parser of its unit; a JSON number must already be the integer. */
static int decode_number(const struct ctx *c, const struct node *n, const char *path,
			 const struct field *fd, int64_t *out)
{
	char q[80];
	const char *t = "";
	int rv;

	if (c->json) {
		if (n->type != N_NUM)
			return fail(c, n->line, path, "expected a number");
		/* The range test also rejects NaN and infinities, and makes the
		 * cast below defined. */
		if (!(n->num >= -(double)MAX_EXACT && n->num <= (double)MAX_EXACT) ||
		    (double)(int64_t)n->num != n->num)
			return fail(c, n->line, path, "%g is not an integer in range", n->num);
		*out = (int64_t)n->num;
		return check_range(c, n, path, fd, *out);
	}
	if (n->type != N_STR)
		return fail(c, n->line, path, "expected a scalar");
	rv = want_text(c, n, path, &t);
	if (rv < 0)
		return rv;
	switch (fd->type) {
	case T_SIZE:
	case T_DUR: {
		uint64_t v;

		if ((fd->type == T_SIZE ? units_parse_size(t, &v) : units_parse_duration(t, &v)) <
		    0)
			return fail(c, n->line, path, "%s is not a %s", quote(t, q, sizeof(q)),
				    fd->type == T_SIZE ? "size" : "duration");
		if (v > (uint64_t)fd->max)
			return fail(c, n->line, path, "%s is too large", quote(t, q, sizeof(q)));
		*out = (int64_t)v;
		break;
	}
	case T_MILLI: {
		uint32_t v;

		if (units_parse_milli(t, &v) < 0)
			return fail(c, n->line, path, "%s is not a number", quote(t, q, sizeof(q)));
		*out = v;
		break;
	}
	default: {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(t, &end, 10);
		if (end == t || *end != '\0' || (*t != '-' && (*t < '0' || *t > '9')))
			return fail(c, n->line, path, "%s is not an integer",
				    quote(t, q, sizeof(q)));
		if (errno == ERANGE)
			return fail(c, n->line, path, "%s is too large", quote(t, q, sizeof(q)));
		*out = v;
		break;
	}
	}
	return check_range(c, n, path, fd, *out);
}

/* A command: a list of scalars, or one string run by /bin/sh -c. */
static int decode_argv(const struct ctx *c, const struct node *n, const char *path, char ***argvp,
		       size_t *nargvp, bool list)
{
	char ep[128]; /* path (< 96) + "[index]" */
	char **argv;
	const char *t = "";
	int rv;

	if (list && n->type != N_SEQ)
		return fail(c, n->line, path, "expected %s", word_seq(c));
	if (list && n->n > SPEC_MAX_CONSTRAINTS)
		return fail(c, n->line, path, "more than %d entries, the limit (SPEC_MAX_CONSTRAINTS)",
			    SPEC_MAX_CONSTRAINTS);
	if (list && n->n == 0) {
		*argvp = NULL;
		*nargvp = 0;
		return 0;
	}
	if (n->type == N_STR) {
		if (n->has_nul)
			return fail(c, n->line, path, "contains a NUL byte");
		if (n->text[0] == '\0')
			return fail(c, n->line, path, "must not be empty");
		argv = xcalloc(3, sizeof(*argv));
		argv[0] = xstrdup("/bin/sh");
		argv[1] = xstrdup("-c");
		argv[2] = xstrdup(n->text);
		*argvp = argv;
		*nargvp = 3;
		return 0;
	}
	if (n->type != N_SEQ)
		return fail(c, n->line, path, "expected %s or a string", word_seq(c));
	if (n->n == 0)
		return fail(c, n->line, path, "must not be empty");
	if (n->n > SPEC_MAX_ARGS)
		return fail(c, n->line, path, "more than %d arguments, the limit (SPEC_MAX_ARGS)",
			    SPEC_MAX_ARGS);
	for (size_t i = 0; i < n->n; i++) {
		snprintf(ep, sizeof(ep), "%s[%zu]", path, i);
		rv = want_text(c, &n->kids[i], ep, &t);
		if (rv < 0)
			return rv;
	}
	/* Allocated only once every element is known good, so a failure
	 * above leaves nothing half-built in the spec. */
	argv = xcalloc(n->n, sizeof(*argv));
	for (size_t i = 0; i < n->n; i++)
		argv[i] = xstrdup(n->kids[i].text);
	*argvp = argv;
	*nargvp = n->n;
	return 0;
}

static bool env_key_ok(const char *k)
{
	if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
		return false;
	for (k++; *k; k++)
		if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
		      (*k >= '0' && *k <= '9') || *k == '_'))
			return false;
	return true;
}

static int decode_env(const struct ctx *c, const struct node *n, struct spec *s)
{
	char ep[96], q[80];
	const char *t = "";
	int rv;

	if (n->type != N_MAP)
		return fail(c, n->line, "env", "expected %s", word_map(c));
	if (n->n > SPEC_MAX_ENV)
		return fail(c, n->line, "env", "more than %d variables, the limit (SPEC_MAX_ENV)",
			    SPEC_MAX_ENV);
	s->env = xcalloc(n->n ? n->n : 1, sizeof(*s->env));
	for (size_t i = 0; i < n->n; i++) {
		const struct node *kid = &n->kids[i];

		if (!env_key_ok(kid->key))
			return fail(c, kid->kline, "env", "%s is not a valid variable name",
				    quote(kid->key, q, sizeof(q)));
		snprintf(ep, sizeof(ep), "env.%s", kid->key);
		for (size_t k = 0; k < s->nenv; k++)
			if (!strcmp(s->env[k].key, kid->key))
				return fail(c, kid->kline, ep, "duplicate field");
		rv = want_text(c, kid, ep, &t);
		if (rv < 0)
			return rv;
		s->env[s->nenv].key = xstrdup(kid->key);
		s->env[s->nenv].val = xstrdup(t);
		s->nenv++;
	}
	return 0;
}

static int decode_map(const struct ctx *c, const struct node *m, enum fid parent, struct spec *s,
		      struct where *w);
static int decode_roles(const struct ctx *c, const struct node *n, struct spec *s);

static int decode_field(const struct ctx *c, const struct node *n, enum fid f, struct spec *s,
			struct where *w)
{
	const struct field *fd = &fields[f];
	char path[96], q[80];
	const char *t = "";
	int64_t v = 0;
	int rv;

	fpath(c, f, path, sizeof(path));
	switch (fd->type) {
	case T_MAP:
		if (n->type != N_MAP)
			return fail(c, n->line, path, "expected %s", word_map(c));
		if (f == F_HEALTH || f == F_AUTOSCALE)
			*(bool *)at(s, f) = true;
		return decode_map(c, n, f, s, w);
	case T_STR:
		rv = want_text(c, n, path, &t);
		if (rv < 0)
			return rv;
		*(char **)at(s, f) = xstrdup(t);
		return 0;
	case T_KIND:
	case T_RESTART: {
		static const char *const kinds[] = {"train", "serve", "batch"};
		static const char *const restarts[] = {"never", "on-failure", "always"};
		const char *const *names = fd->type == T_KIND ? kinds : restarts;

		rv = want_text(c, n, path, &t);
		if (rv < 0)
			return rv;
		for (int i = 0; i < 3; i++) {
			if (!strcmp(t, names[i])) {
				if (f == F_KIND)
					s->kind = (enum spec_kind)i;
				else
					s->restart = (enum spec_restart)i;
				return 0;
			}
		}
		return fail(c, n->line, path, "%s is not %s, %s or %s", quote(t, q, sizeof(q)),
			    names[0], names[1], names[2]);
	}
	case T_ADDR:
		if (c->json && n->type == N_NUM) {
			char num[24];

			rv = decode_number(c, n, path, fd, &v);
			if (rv < 0)
				return rv;
			snprintf(num, sizeof(num), "%lld", (long long)v);
			*(char **)at(s, f) = xstrdup(num);
			return 0;
		}
		rv = want_text(c, n, path, &t);
		if (rv < 0)
			return rv;
		*(char **)at(s, f) = xstrdup(t);
		return 0;
	case T_ARGV:
		return decode_argv(c, n, path, (char ***)at(s, f),
				   f == F_COMMAND ? &s->ncommand : &s->health.nexec, false);
	case T_LIST:
		return decode_argv(c, n, path, (char ***)at(s, f), &s->nconstraints, true);
	case T_ENV:
		return decode_env(c, n, s);
	case T_ROLES:
		return decode_roles(c, n, s);
	case T_U32:
	case T_I32:
	case T_SIZE:
	case T_DUR:
	case T_MILLI:
		rv = decode_number(c, n, path, fd, &v);
		if (rv < 0)
			return rv;
		if (fd->type == T_SIZE || fd->type == T_DUR)
			*(uint64_t *)at(s, f) = (uint64_t)v;
		else if (fd->type == T_I32)
			*(int32_t *)at(s, f) = (int32_t)v;
		else
			*(uint32_t *)at(s, f) = (uint32_t)v;
		return 0;
	}
	return ERR_INVAL;
}

static int decode_map(const struct ctx *c, const struct node *m, enum fid parent, struct spec *s,
		      struct where *w)
{
	char path[160];
	int rv;

	for (size_t i = 0; i < m->n; i++) {
		const struct node *kid = &m->kids[i];
		enum fid f;

		for (f = F_TOP + 1; f < F_COUNT; f++)
			if (fields[f].parent == parent && !strcmp(fname(c, f), kid->key))
				break;
		if (f == F_COUNT) {
			char q[80];

			if (parent == F_TOP)
				snprintf(path, sizeof(path), "%s", kid->key);
			else
				snprintf(path, sizeof(path), "%s.%s", fname(c, parent), kid->key);
			/* Keys are user text too: keep odd ones readable. */
			if (odd_key(path, 64))
				snprintf(path, sizeof(path), "%s", quote(kid->key, q, sizeof(q)));
			return fail(c, kid->kline, path, "unknown field");
		}
		if (w->seen[f])
			return fail(c, kid->kline, fpath(c, f, path, sizeof(path)),
				    "duplicate field");
		w->seen[f] = true;
		w->line[f] = kid->line;
		/* null (YAML "~" or an empty value, JSON null) means "not given". */
		if (kid->type == N_NULL)
			continue;
		w->set[f] = true;
		rv = decode_field(c, kid, f, s, w);
		if (rv < 0)
			return rv;
	}
	return 0;
}

/* ---- validation and defaults (both formats) ------------------------------ */

/* A rootfs folder (absolute) or an OCI layout reference (ociref.h). */
static bool image_ok(const char *im, char *why, size_t len)
{
	if (im[0] == '/')
		return true;
	if (ociref_is(im)) {
		char r[200];
		if (ociref_parse(im, NULL, 0, NULL, 0, r, sizeof(r)) == 0)
			return true;
		snprintf(why, len, "is not oci:PATH[:TAG]: %s", r);
		return false;
	}
	snprintf(why, len, "must be an absolute path or oci:PATH[:TAG]");
	return false;
}

/* ---- roles (train) --------------------------------------------------------- */

/* Role names: what TF_CONFIG and mlctl status show ("chief", "ps"). */
static bool role_name_ok(const char *k)
{
	size_t n = strlen(k);

	if (n == 0 || n > SPEC_ROLE_NAME_MAX || k[0] < 'a' || k[0] > 'z')
		return false;
	return strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static int decode_bool(const struct ctx *c, const struct node *n, const char *path, bool *out)
{
	const char *t = "";
	char q[80];
	int rv;

	if (c->json) {
		if (n->type != N_BOOL)
			return fail(c, n->line, path, "expected true or false");
		*out = n->num != 0;
		return 0;
	}
	rv = want_text(c, n, path, &t);
	if (rv < 0)
		return rv;
	if (!strcmp(t, "true") || !strcmp(t, "false")) {
		*out = t[0] == 't';
		return 0;
	}
	return fail(c, n->line, path, "%s is not true or false", quote(t, q, sizeof(q)));
}

/* One role's resources block, with the defaults of a job's and its checks. */
static int decode_role_res(const struct ctx *c, const struct node *n, struct spec_role *r)
{
	struct spec tmp;
	struct where w;
	char path[96];
	int rv;

	memset(&tmp, 0, sizeof(tmp));
	memset(&w, 0, sizeof(w));
	if (n->type != N_MAP)
		return fail(c, n->line, fname(c, F_RESOURCES), "expected %s", word_map(c));
	rv = decode_map(c, n, F_RESOURCES, &tmp, &w);
	if (rv == 0 && tmp.gpu_model && !tmp.gpu_model[0])
		rv = fail(c, w.line[F_GPU_MODEL], fpath(c, F_GPU_MODEL, path, sizeof(path)),
			  "must not be empty");
	if (rv == 0 && tmp.res.gpus_milli > 1000 && tmp.res.gpus_milli % 1000 != 0)
		rv = fail(c, w.line[F_GPUS], fpath(c, F_GPUS, path, sizeof(path)),
			  "a share must be below 1");
	if (rv == 0 && tmp.res.gpus_milli / 1000 > RES_MAX_GPUS)
		rv = fail(c, w.line[F_GPUS], fpath(c, F_GPUS, path, sizeof(path)),
			  "more than %d GPUs", RES_MAX_GPUS);
	if (rv < 0) {
		free(tmp.gpu_model);
		return rv;
	}
	r->own_res = true;
	r->res = tmp.res;
	if (!w.set[F_MEMORY])
		r->res.mem = DEFAULT_MEM;
	if (!w.set[F_CPUS])
		r->res.cpu_milli = DEFAULT_CPU_MILLI;
	r->gpu_model = tmp.gpu_model;
	return 0;
}

/* One role: count, optional, resources, image, command, env. */
static int decode_role(const struct ctx *c, const struct node *n, struct spec_role *r)
{
	static const char *const keys[] = {"count", "optional", "resources", "image", "command",
					   "env"};
	static const struct field count = {F_TOP, "count", "count", T_U32, 0, 1, SPEC_MAX_TASKS,
					   K_TRAIN};
	bool seen[6] = {false};
	int64_t v;
	int rv;

	r->count = 1;
	if (n->type == N_NULL)
		return 0; /* "evaluator:" alone: one task, all from the job */
	if (n->type != N_MAP)
		return fail(c, n->line, NULL, "expected %s", word_map(c));
	for (size_t i = 0; i < n->n; i++) {
		const struct node *kid = &n->kids[i];
		const char *t = "";
		size_t k;

		for (k = 0; k < 6 && strcmp(kid->key, keys[k]) != 0; k++)
			;
		if (k == 6) {
			char q[80];

			return fail(c, kid->kline,
				    odd_key(kid->key, 40) ? quote(kid->key, q, sizeof(q)) : kid->key,
				    "unknown field (a role has count, optional, resources, image, "
				    "command and env)");
		}
		if (seen[k])
			return fail(c, kid->kline, keys[k], "duplicate field");
		seen[k] = true;
		if (kid->type == N_NULL)
			continue;
		switch (k) {
		case 0:
			rv = decode_number(c, kid, "count", &count, &v);
			r->count = (uint32_t)v;
			break;
		case 1:
			rv = decode_bool(c, kid, "optional", &r->optional);
			break;
		case 2:
			rv = decode_role_res(c, kid, r);
			break;
		case 3:
			rv = want_text(c, kid, "image", &t);
			if (rv == 0) {
				char q[80], why[256];

				if (!image_ok(t, why, sizeof(why)))
					rv = fail(c, kid->line, "image", "%s %s",
						  quote(t, q, sizeof(q)), why);
			}
			if (rv == 0)
				r->image = xstrdup(t);
			break;
		case 4:
			rv = decode_argv(c, kid, "command", &r->command, &r->ncommand, false);
			break;
		default: {
			struct spec tmp;

			memset(&tmp, 0, sizeof(tmp));
			rv = decode_env(c, kid, &tmp);
			r->env = tmp.env;
			r->nenv = tmp.nenv;
			break;
		}
		}
		if (rv < 0)
			return rv;
	}
	return 0;
}

/* roles: a mapping of role name -> role, in the order tasks are numbered. */
static int decode_roles(const struct ctx *c, const struct node *n, struct spec *s)
{
	char prefix[SPEC_ROLE_NAME_MAX + 16], q[80];
	struct ctx rc = *c;
	int rv;

	if (n->type != N_MAP)
		return fail(c, n->line, "roles", "expected %s of role names", word_map(c));
	if (n->n == 0)
		return fail(c, n->line, "roles", "must name at least one role");
	if (n->n > SPEC_MAX_ROLES)
		return fail(c, n->line, "roles", "more than %d roles", SPEC_MAX_ROLES);
	s->roles = xcalloc(n->n, sizeof(*s->roles));
	for (size_t i = 0; i < n->n; i++) {
		const struct node *kid = &n->kids[i];

		if (!role_name_ok(kid->key))
			return fail(c, kid->kline, "roles",
				    "%s is not a valid role name ([a-z][a-z0-9_-]*, at most %d)",
				    quote(kid->key, q, sizeof(q)), SPEC_ROLE_NAME_MAX);
		for (size_t k = 0; k < s->nroles; k++)
			if (!strcmp(s->roles[k].name, kid->key)) {
				snprintf(prefix, sizeof(prefix), "roles.%s", kid->key);
				return fail(c, kid->kline, prefix, "duplicate role");
			}
		s->roles[s->nroles].name = xstrdup(kid->key);
		snprintf(prefix, sizeof(prefix), "roles.%s%s", kid->key,
			 kid->type == N_MAP ? "." : "");
		rc.prefix = prefix;
		/* Counted before decoding, so spec_free frees a half-built role. */
		rv = decode_role(&rc, kid, &s->roles[s->nroles++]);
		if (rv < 0)
			return rv;
		if (s->roles[i].optional && spec_role_in_world(&s->roles[i])) {
			snprintf(prefix, sizeof(prefix), "roles.%s.optional", kid->key);
			return fail(c, kid->line, prefix,
				    "the %s role is part of the torch world (RANK, WORLD_SIZE) "
				    "and cannot be optional", kid->key);
		}
	}
	return 0;
}

/* Cross-field rules of roles and the job's values for what a role left out
 * (after the job's own defaults). */
static int validate_roles(const struct ctx *c, struct spec *s, const struct where *w)
{
	char path[96];
	uint64_t tasks = 0;
	bool required = false;

	if (!s->roles) {
		if (!w->set[F_COMMAND])
			return fail(c, 0, fname(c, F_COMMAND), "required");
		return 0;
	}
	if (w->set[F_WORKERS])
		return fail(c, w->line[F_WORKERS], fname(c, F_WORKERS),
			    "not with roles (each role has its own count)");
	for (size_t i = 0; i < s->nroles; i++) {
		struct spec_role *r = &s->roles[i];

		tasks += r->count;
		required |= !r->optional;
		if (!r->command && !s->command) {
			snprintf(path, sizeof(path), "roles.%s.command", r->name);
			return fail(c, w->line[F_ROLES], path,
				    "required (the job has no command to inherit)");
		}
	}
	if (!required)
		return fail(c, w->line[F_ROLES], "roles",
			    "every role is optional: at least one must be required");
	if (tasks > SPEC_MAX_TASKS)
		return fail(c, w->line[F_ROLES], "roles", "%llu tasks is more than %d",
			    (unsigned long long)tasks, SPEC_MAX_TASKS);
	for (size_t i = 0; i < s->nroles; i++) {
		struct spec_role *r = &s->roles[i];
		size_t own = r->nenv;

		if (!r->own_res) {
			r->res = s->res;
			r->gpu_model = s->gpu_model ? xstrdup(s->gpu_model) : NULL;
		}
		if (!r->image)
			r->image = xstrdup(s->image);
		if (!r->command) {
			r->command = xcalloc(s->ncommand, sizeof(*r->command));
			for (size_t k = 0; k < s->ncommand; k++)
				r->command[k] = xstrdup(s->command[k]);
			r->ncommand = s->ncommand;
		}
		/* The job's variables the role does not set itself. */
		r->env = xrealloc(r->env, (own + s->nenv + 1) * sizeof(*r->env));
		for (size_t k = 0; k < s->nenv; k++) {
			bool mine = false;

			for (size_t o = 0; o < own && !mine; o++)
				mine = !strcmp(r->env[o].key, s->env[k].key);
			if (mine)
				continue;
			r->env[r->nenv].key = xstrdup(s->env[k].key);
			r->env[r->nenv].val = xstrdup(s->env[k].val);
			r->nenv++;
		}
	}
	return 0;
}

/* Spaces or control bytes would let a value break the probe's request line. */
static bool has_space(const char *t, size_t n)
{
	for (size_t i = 0; i < n && t[i]; i++)
		if ((unsigned char)t[i] <= 0x20 || t[i] == 0x7f)
			return true;
	return false;
}

/* health.http: a path probed at the task's port, or an http:// URL. */
static int check_http(const struct ctx *c, int line, const char *path, const char *u)
{
	char q[80];

	if (u[0] != '/' && (strncmp(u, "http://", 7) != 0 || u[7] == '\0' || u[7] == '/'))
		return fail(c, line, path, "%s is not a path or an http:// URL",
			    quote(u, q, sizeof(q)));
	if (has_space(u, strlen(u)))
		return fail(c, line, path, "%s contains spaces or control characters",
			    quote(u, q, sizeof(q)));
	return 0;
}

/* "$PORT" or a decimal port 1..65535. */
static bool port_ok(const char *p)
{
	size_t n = strspn(p, "0123456789");
	unsigned long v;

	if (!strcmp(p, "$PORT"))
		return true;
	if (n == 0 || n > 5 || p[n] != '\0')
		return false;
	v = strtoul(p, NULL, 10);
	return v >= 1 && v <= 65535;
}

/* health.tcp: "$PORT", "8080", "HOST:8080" or "HOST:$PORT".  A host with a
 * colon (IPv6) must be bracketed: "[::1]:$PORT". */
static int check_tcp(const struct ctx *c, int line, const char *path, const char *t)
{
	const char *colon = strrchr(t, ':');
	char q[80], q2[80], *host;
	size_t hn;
	int rv = 0;

	if (!colon) {
		if (port_ok(t))
			return 0;
		if (t[0] && strspn(t, "0123456789") == strlen(t))
			return fail(c, line, path, "%s is not a port (1..65535)",
				    quote(t, q, sizeof(q)));
		return fail(c, line, path, "%s is not $PORT, a port or HOST:PORT",
			    quote(t, q, sizeof(q)));
	}
	hn = (size_t)(colon - t);
	if (hn == 0)
		return fail(c, line, path, "%s has no host before the colon",
			    quote(t, q, sizeof(q)));
	host = xstrndup(t, hn);
	if (has_space(host, hn) || strchr(host, '/') ||
	    (strchr(host, ':') && (host[0] != '[' || host[hn - 1] != ']')))
		rv = fail(c, line, path, "%s: %s is not a host name or address",
			  quote(t, q, sizeof(q)), quote(host, q2, sizeof(q2)));
	else if (!port_ok(colon + 1))
		rv = fail(c, line, path, "%s: %s is not a port (1..65535) or $PORT",
			  quote(t, q, sizeof(q)), quote(colon + 1, q2, sizeof(q2)));
	free(host);
	return rv;
}

static int validate(const struct ctx *c, struct spec *s, const struct where *w)
{
	/* command: validate_roles() (a role job may do without). */
	static const enum fid required[] = {F_NAME, F_KIND, F_IMAGE};
	char path[96], q[80], why[256];
	uint64_t tasks;

	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!w->set[required[i]])
			return fail(c, 0, fname(c, required[i]), "required");
	/* Kind-specific fields on another kind are mistakes, not no-ops. */
	for (enum fid f = F_TOP + 1; f < F_COUNT; f++) {
		if (w->set[f] && !(fields[f].kinds & (1u << s->kind)))
			return fail(c, w->line[f], fpath(c, f, path, sizeof(path)),
				    "only for kind %s",
				    fields[f].kinds == K_TRAIN	 ? "train"
				    : fields[f].kinds == K_SERVE ? "serve"
								 : "batch");
	}
	for (enum fid f = F_TOP + 1; f < F_COUNT; f++) {
		if (fields[f].type == T_STR && w->set[f] && (*(char **)at(s, f))[0] == '\0')
			return fail(c, w->line[f], fpath(c, f, path, sizeof(path)),
				    "must not be empty");
	}
	if (!spec_name_ok(s->name))
		return fail(c, w->line[F_NAME], fname(c, F_NAME),
			    "%s is not a valid job name ([a-z0-9][a-z0-9._-]*, not all digits, at "
			    "most %d)",
			    quote(s->name, q, sizeof(q)), SPEC_NAME_MAX);
	if (!image_ok(s->image, why, sizeof(why)))
		return fail(c, w->line[F_IMAGE], fname(c, F_IMAGE), "%s %s",
			    quote(s->image, q, sizeof(q)), why);
	if (s->workdir && s->workdir[0] != '/')
		return fail(c, w->line[F_WORKDIR], fname(c, F_WORKDIR),
			    "%s must be an absolute path", quote(s->workdir, q, sizeof(q)));
	if (s->policy && !spec_name_ok(s->policy))
		return fail(c, w->line[F_POLICY], fname(c, F_POLICY),
			    "%s is not a valid policy name", quote(s->policy, q, sizeof(q)));
	if (s->queue && !spec_name_ok(s->queue))
		return fail(c, w->line[F_QUEUE], fname(c, F_QUEUE),
			    "%s is not a valid queue name", quote(s->queue, q, sizeof(q)));

	/* Defaults. */
	if (!s->workdir)
		s->workdir = xstrdup(DEFAULT_WORKDIR);
	if (!w->set[F_MEMORY])
		s->res.mem = DEFAULT_MEM;
	if (!w->set[F_CPUS])
		s->res.cpu_milli = DEFAULT_CPU_MILLI;
	if (!w->set[F_RESTART_POLICY])
		s->restart = s->kind == SPEC_SERVE ? RESTART_ALWAYS : RESTART_NEVER;
	if (!w->set[F_RESTART_MAX])
		s->restart_max = DEFAULT_RESTART_MAX;
	if (!w->set[F_RESCHEDULE_MAX])
		s->reschedule_max = DEFAULT_RESCHEDULE_MAX;
	if (s->kind == SPEC_SERVE && !w->set[F_ROLLOUT_DEADLINE])
		s->rollout_deadline_ms = DEFAULT_ROLLOUT_DEADLINE_MS;
	if (s->kind == SPEC_TRAIN && !w->set[F_WORKERS])
		s->workers = 1;
	if (s->kind == SPEC_SERVE && !w->set[F_REPLICAS])
		s->replicas = s->autoscale.set && w->set[F_AS_MIN] ? s->autoscale.min : 1;
	if (s->kind == SPEC_BATCH && !w->set[F_ARRAY])
		s->array = 1;
	if (s->kind == SPEC_BATCH && !w->set[F_PARALLELISM])
		s->parallelism = s->array;
	if (s->health.set) {
		if (!w->set[F_INTERVAL])
			s->health.interval_ms = DEFAULT_HEALTH_INTERVAL_MS;
		if (!w->set[F_TIMEOUT])
			s->health.timeout_ms = DEFAULT_HEALTH_TIMEOUT_MS;
		if (!w->set[F_FAILURES])
			s->health.failures = DEFAULT_HEALTH_FAILURES;
		if (!w->set[F_SUCCESSES])
			s->health.successes = DEFAULT_HEALTH_SUCCESSES;
	}
	if (s->autoscale.set && !w->set[F_AS_COOLDOWN])
		s->autoscale.cooldown_ms = DEFAULT_COOLDOWN_MS;
	if (s->autoscale.set && !w->set[F_AS_WINDOW])
		s->autoscale.window_ms = DEFAULT_WINDOW_MS;

	if (s->roles)
		s->workers = 0;
	{
		int rv = validate_roles(c, s, w);

		if (rv < 0)
			return rv;
	}

	/* Counts. */
	if (s->kind == SPEC_BATCH && s->parallelism > s->array)
		return fail(c, w->line[F_PARALLELISM], fname(c, F_PARALLELISM),
			    "must be at most array (%u)", s->array);
	tasks = spec_ntasks(s);
	if (s->kind == SPEC_SERVE && tasks > SPEC_MAX_TASKS)
		return fail(c, w->line[F_REPLICAS], fname(c, F_REPLICAS),
			    "%u replicas + %u standby is more than %d tasks, the limit "
			    "(SPEC_MAX_TASKS)", s->replicas,
			    s->standby, SPEC_MAX_TASKS);
	else if (tasks > SPEC_MAX_TASKS) {
		enum fid f = s->kind == SPEC_TRAIN ? F_WORKERS : F_ARRAY;

		return fail(c, w->line[f], fname(c, f), "%llu tasks is more than %d, the limit (SPEC_MAX_TASKS)",
			    (unsigned long long)tasks, SPEC_MAX_TASKS);
	}

	/* GPUs: a share of one card, or whole cards. */
	if (s->res.gpus_milli > 1000 && s->res.gpus_milli % 1000 != 0)
		return fail(c, w->line[F_GPUS], fpath(c, F_GPUS, path, sizeof(path)),
			    "a share must be below 1");
	if (s->res.gpus_milli / 1000 > RES_MAX_GPUS)
		return fail(c, w->line[F_GPUS], fpath(c, F_GPUS, path, sizeof(path)),
			    "more than %d GPUs", RES_MAX_GPUS);

	if (s->health.set) {
		int rv;

		if (!!s->health.http + !!s->health.tcp + !!s->health.exec != 1)
			return fail(c, w->line[F_HEALTH], fname(c, F_HEALTH),
				    "needs exactly one of http, tcp or exec");
		if (s->health.http) {
			rv = check_http(c, w->line[F_HTTP], fpath(c, F_HTTP, path, sizeof(path)),
					s->health.http);
			if (rv < 0)
				return rv;
		}
		if (s->health.tcp) {
			rv = check_tcp(c, w->line[F_TCP], fpath(c, F_TCP, path, sizeof(path)),
				       s->health.tcp);
			if (rv < 0)
				return rv;
		}
	}
	if (s->autoscale.set) {
		static const enum fid as_req[] = {F_AS_MIN, F_AS_MAX};

		for (size_t i = 0; i < sizeof(as_req) / sizeof(as_req[0]); i++)
			if (!w->set[as_req[i]])
				return fail(c, w->line[F_AUTOSCALE],
					    fpath(c, as_req[i], path, sizeof(path)), "required");
		if (w->set[F_AS_TARGET] == w->set[F_AS_CPU_TARGET])
			return fail(c, w->line[F_AUTOSCALE], fname(c, F_AUTOSCALE),
				    "needs exactly one of target_gpu_util or target_cpu_util");
		if (s->autoscale.max < s->autoscale.min)
			return fail(c, w->line[F_AS_MAX], fpath(c, F_AS_MAX, path, sizeof(path)),
				    "must be at least min (%u)", s->autoscale.min);
		if (s->replicas < s->autoscale.min || s->replicas > s->autoscale.max)
			return fail(c, w->line[F_REPLICAS], fname(c, F_REPLICAS),
				    "must be within autoscale %u..%u", s->autoscale.min,
				    s->autoscale.max);
		if ((uint64_t)s->autoscale.max + s->standby > SPEC_MAX_TASKS)
			return fail(c, w->line[F_AS_MAX], fpath(c, F_AS_MAX, path, sizeof(path)),
				    "%u + %u standby is more than %d tasks, the limit "
				    "(SPEC_MAX_TASKS)",
				    s->autoscale.max,
				    s->standby, SPEC_MAX_TASKS);
	}
	return 0;
}

/* Decode a tree built from either format, validate, hand out the spec. */
static int spec_from_tree(const struct ctx *c, const struct node *root, struct spec **out)
{
	struct spec *s = xcalloc(1, sizeof(*s));
	struct where w;
	int rv;

	memset(&w, 0, sizeof(w));
	rv = decode_map(c, root, F_TOP, s, &w);
	if (rv < 0)
		goto out;
	rv = validate(c, s, &w);
out:
	if (rv < 0) {
		spec_free(s);
		s = NULL;
	}
	*out = s;
	return rv;
}

/* ---- public API ---------------------------------------------------------- */

int spec_parse_yaml(const char *path, const char *text, size_t len, struct spec **out, char *err,
		    size_t errlen)
{
	struct ctx c = {path ? path : "spec", false, err, errlen, NULL};
	struct node root;
	int rv;

	*out = NULL;
	memset(&root, 0, sizeof(root));
	if (err && errlen)
		err[0] = '\0';
	if (len > SPEC_MAX_BYTES)
		return fail(&c, 0, NULL, "larger than %d bytes, the limit (SPEC_MAX_BYTES)",
			    SPEC_MAX_BYTES);
	rv = yaml_to_tree(&c, text, len, &root);
	if (rv < 0)
		goto out;
	rv = spec_from_tree(&c, &root, out);
out:
	node_clear(&root);
	return rv;
}

int spec_parse_file(const char *path, struct spec **out, char *err, size_t errlen)
{
	struct ctx c = {path, false, err, errlen, NULL};
	char *text = NULL;
	size_t len = 0;
	int rv;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	rv = file_read(path, SPEC_MAX_BYTES, &text, &len);
	if (rv == ERR_TOOBIG)
		fail(&c, 0, NULL, "larger than %d bytes, the limit (SPEC_MAX_BYTES)",
			    SPEC_MAX_BYTES);
	else if (rv < 0)
		fail(&c, 0, NULL, "cannot read: %s", err_str(rv));
	else
		rv = spec_parse_yaml(path, text, len, out, err, errlen);
	free(text);
	return rv;
}

int spec_from_json(const cJSON *j, struct spec **out, char *err, size_t errlen)
{
	struct ctx c = {"spec", true, err, errlen, NULL};
	struct node root;
	int rv;

	*out = NULL;
	memset(&root, 0, sizeof(root));
	if (err && errlen)
		err[0] = '\0';
	if (!cJSON_IsObject(j))
		return fail(&c, 0, NULL, "expected an object at the top level");
	rv = json_to_node(&c, j, &root, 0);
	if (rv < 0)
		goto out;
	rv = spec_from_tree(&c, &root, out);
out:
	node_clear(&root);
	return rv;
}


static void free_argv(char **argv, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
}

void spec_free(struct spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->image);
	free_argv(s->command, s->ncommand);
	free(s->workdir);
	free(s->gpu_model);
	for (size_t i = 0; i < s->nenv; i++) {
		free(s->env[i].key);
		free(s->env[i].val);
	}
	free(s->env);
	free(s->policy);
	free(s->queue);
	free(s->health.http);
	free(s->health.tcp);
	free_argv(s->health.exec, s->health.nexec);
	free_argv(s->constraints, s->nconstraints);
	for (size_t i = 0; i < s->nroles; i++) {
		struct spec_role *r = &s->roles[i];

		free(r->name);
		free(r->gpu_model);
		free(r->image);
		free_argv(r->command, r->ncommand);
		for (size_t k = 0; k < r->nenv; k++) {
			free(r->env[k].key);
			free(r->env[k].val);
		}
		free(r->env);
	}
	free(s->roles);
	free(s);
}
