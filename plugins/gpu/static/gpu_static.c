/*
 * gpu_static.c - GPUs declared on the command line ("4x80G",
 * "2x40G:A100,2x80G:H100").  Tests and machines without NVML use it; the
 * GPUs report no utilization and no memory in use, and never an error.
 */
#include "gpu/gpu.h"
#include "err.h"
#include "units.h"
#include "util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATIC_DEFAULT_MODEL "fake"

struct static_ctx {
	size_t n;
	struct gpu_info gpus[GPU_MAX];
};

/* Models name hardware; keep them to characters that are safe in logs,
 * labels and the wire format. */
static bool model_ok(const char *m)
{
	if (!*m)
		return false;
	for (; *m; m++) {
		unsigned char c = (unsigned char)*m;

		if (!isascii(c) || !(isalnum(c) || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

/* One "NxSIZE[:MODEL]" group, appended to c.  group is modifiable. */
static int parse_group(struct static_ctx *c, char *group, char *why, size_t whylen)
{
	char *x, *colon, *end;
	const char *model = STATIC_DEFAULT_MODEL;
	unsigned long count;
	uint64_t size;
	size_t i;

	x = strchr(group, 'x');
	if (!x || x == group) {
		set_why(why, whylen, "GPU group \"%s\" is not COUNTxSIZE[:MODEL] (e.g. 4x80G:A100)",
			group);
		return ERR_INVAL;
	}
	*x = '\0';
	if (!isdigit((unsigned char)group[0])) {
		set_why(why, whylen, "GPU count \"%s\" is not a number", group);
		return ERR_INVAL;
	}
	count = strtoul(group, &end, 10);
	if (*end || count < 1 || count > GPU_MAX) {
		set_why(why, whylen, "GPU count \"%s\" is not between 1 and %d", group, GPU_MAX);
		return ERR_INVAL;
	}
	if (c->n + count > GPU_MAX) {
		set_why(why, whylen, "more than %d GPUs declared", GPU_MAX);
		return ERR_INVAL;
	}
	colon = strchr(x + 1, ':');
	if (colon) {
		*colon = '\0';
		model = colon + 1;
		if (!model_ok(model) || strlen(model) >= GPU_MODEL_LEN) {
			set_why(why, whylen,
				"GPU model \"%s\" must be 1 to %d letters, digits, '-', '_' or '.'",
				model, GPU_MODEL_LEN - 1);
			return ERR_INVAL;
		}
	}
	if (units_parse_size(x + 1, &size) != 0 || size == 0) {
		set_why(why, whylen, "GPU memory size \"%s\" is not a size such as 80G", x + 1);
		return ERR_INVAL;
	}
	for (i = 0; i < count; i++) {
		struct gpu_info *g = &c->gpus[c->n];

		memset(g, 0, sizeof(*g));
		g->index = (uint32_t)c->n;
		g->mem_total = size;
		strlcpy_ok(g->model, model, sizeof(g->model));
		c->n++;
	}
	return 0;
}

static int static_init(const char *arg, void **ctx, char *why, size_t whylen)
{
	struct static_ctx *c = NULL;
	char *copy = NULL, *group, *next;
	int rv;

	*ctx = NULL;
	if (why && whylen)
		why[0] = '\0';
	if (!arg || !*arg) {
		set_why(why, whylen,
			"no GPU inventory given (e.g. 4x80G or 2x40G:A100,2x80G:H100)");
		return ERR_INVAL;
	}
	c = xcalloc(1, sizeof(*c));
	copy = xstrdup(arg);
	/* strsep, not strtok: an empty group ("4x80G,,2x40G") is an error,
	 * not something to skip. */
	for (next = copy; (group = strsep(&next, ",")) != NULL;) {
		if (!*group) {
			set_why(why, whylen, "empty GPU group in \"%s\"", arg);
			rv = ERR_INVAL;
			goto out;
		}
		if ((rv = parse_group(c, group, why, whylen)) != 0)
			goto out;
	}
	*ctx = c;
	c = NULL;
	rv = 0;
out:
	free(copy);
	free(c);
	return rv;
}

static int static_list(void *ctx, struct gpu_info *gpus, size_t *n)
{
	const struct static_ctx *c = ctx;

	memcpy(gpus, c->gpus, c->n * sizeof(*gpus));
	*n = c->n;
	return 0;
}

static int static_util(void *ctx, struct gpu_util *util, size_t *n)
{
	const struct static_ctx *c = ctx;
	size_t i;

	for (i = 0; i < c->n; i++) {
		util[i].index = c->gpus[i].index;
		util[i].util_pct = 0;
		util[i].mem_used = 0;
		util[i].error[0] = '\0';
	}
	*n = c->n;
	return 0;
}

static void static_fini(void *ctx)
{
	free(ctx);
}

const struct gpu_ops gpu_static_ops = {
	.name = "static",
	.init = static_init,
	.list = static_list,
	.util = static_util,
	.fini = static_fini,
};
