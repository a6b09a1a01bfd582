/*
 * gpus.c - the node's GPUs: found once at start (gpus_setup), read at each
 * SYNC (gpus_sample), and their errors reported to the master.
 *
 * The GPUs found at start stay the capacity's "gpus" list: one that fails or
 * disappears later is not dropped (the master decides what a node with a bad
 * GPU gets).  Its error goes into the capacity's "gpu_error" instead, one
 * text naming each GPU in error, the NVML call and NVML's reason:
 *
 *   GPU 1 (NVIDIA H100): nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)
 *
 * several joined with "; ", absent while every GPU reads fine; each change is
 * logged once (warn when set or changed, info when cleared).  A GPU whose
 * name or memory could not be read at start is listed with model "" and
 * memory 0 until a later SYNC reads them (then the capacity changes).
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "units.h"
#include "util.h"

/* Room kept at the end of the text for "; and N more". */
#define MORE_ROOM 16

void gpus_error_join(const struct gpu_info *gpus, const char *const *errs, size_t n, char *out,
		     size_t outlen)
{
	size_t i, len = 0, shown = 0, total = 0;

	if (!outlen)
		return;
	out[0] = '\0';
	for (i = 0; i < n; i++)
		total += errs[i] && errs[i][0];
	for (i = 0; i < n && shown < total; i++) {
		char one[GPU_MODEL_LEN + GPU_ERROR_LEN + 32];
		size_t need, room;

		if (!errs[i] || !errs[i][0])
			continue;
		if (gpus[i].model[0])
			snprintf(one, sizeof(one), "GPU %u (%s): %s", gpus[i].index, gpus[i].model,
				 errs[i]);
		else
			snprintf(one, sizeof(one), "GPU %u: %s", gpus[i].index, errs[i]);
		need = (shown ? 2 : 0) + strlen(one);
		/* Keep room to say how many more there are, unless this is
		 * the last one. */
		room = outlen - 1 - len;
		if (shown + 1 < total)
			room = room > MORE_ROOM ? room - MORE_ROOM : 0;
		if (need > room) {
			if (shown > 0)
				break;
			/* The first one alone is too long: cut it. */
			room = outlen - 1 > MORE_ROOM ? outlen - 1 - MORE_ROOM : outlen - 1;
			one[room < sizeof(one) - 1 ? room : sizeof(one) - 1] = '\0';
			need = strlen(one);
		}
		snprintf(out + len, outlen - len, "%s%s", shown ? "; " : "", one);
		len += need;
		shown++;
	}
	if (shown < total)
		snprintf(out + len, outlen - len, "; and %zu more", total - shown);
}

/* Set a->gpu_error from the GPUs' errors (errs[i] for a->gpus[i]). */
static void report(struct agent *a, const char *const *errs)
{
	char now[GPU_REPORT_MAX];

	gpus_error_join(a->gpus, errs, a->ngpus, now, sizeof(now));
	if (strcmp(now, a->gpu_error) == 0)
		return;
	if (now[0])
		log_warn("node=%s GPU error (reported to the master): %s", a->cfg.name, now);
	else
		log_info("node=%s GPUs read fine again (was: %s)", a->cfg.name, a->gpu_error);
	strlcpy_ok(a->gpu_error, now, sizeof(a->gpu_error));
}

static void log_gpu(const struct gpu_info *g, const char *when)
{
	char sz[32];

	if (g->error[0]) {
		log_warn("GPU %u: cannot be read: %s", g->index, g->error);
		return;
	}
	units_format_size(g->mem_total, sz, sizeof(sz));
	log_info("GPU %u: %s, %s%s", g->index, g->model, sz, when);
}

void gpus_setup(struct agent *a)
{
	const char *errs[GPU_MAX];
	char why[512];
	int rv;

	if (a->cfg.gpus) {
		a->gpu = &gpu_static_ops;
		if ((rv = a->gpu->init(a->cfg.gpus, &a->gpu_ctx, why, sizeof(why))) != 0)
			fatal("--gpus %s: %s", a->cfg.gpus, why);
		log_info("GPUs: declared inventory %s", a->cfg.gpus);
	} else {
		a->gpu = &gpu_nvml_ops;
		rv = a->gpu->init(a->cfg.nvml_lib, &a->gpu_ctx, why, sizeof(why));
		/* No driver is a node without GPUs; a library named with
		 * --nvml-lib that is not there is a mistake. */
		if (rv == ERR_NOENT && strcmp(a->cfg.nvml_lib, GPU_NVML_LIB) == 0) {
			log_info(
			    "GPUs: none (NVML not available: %s); declare fake ones with --gpus",
			    why);
			a->gpu = NULL;
			return;
		}
		if (rv != 0)
			fatal("NVML: %s", why);
		log_info("GPUs: NVML (%s)", a->cfg.nvml_lib);
	}
	a->ngpus = GPU_MAX;
	if ((rv = a->gpu->list(a->gpu_ctx, a->gpus, &a->ngpus)) != 0)
		fatal("cannot list GPUs through %s: %s", a->gpu->name, err_str(rv));
	for (size_t i = 0; i < a->ngpus; i++) {
		log_gpu(&a->gpus[i], "");
		errs[i] = a->gpus[i].error;
	}
	report(a, errs);
}

/* GPUs not read at start: try to read their details again. */
static void relist(struct agent *a)
{
	struct gpu_info now[GPU_MAX];
	size_t i, n = GPU_MAX;
	bool missing = false;

	for (i = 0; i < a->ngpus; i++)
		missing |= a->gpus[i].error[0] != '\0';
	if (!missing || a->gpu->list(a->gpu_ctx, now, &n) != 0)
		return;
	for (i = 0; i < a->ngpus && i < n; i++) {
		if (!a->gpus[i].error[0])
			continue;
		if (now[i].error[0]) {
			strlcpy_ok(a->gpus[i].error, now[i].error, sizeof(a->gpus[i].error));
			continue;
		}
		a->gpus[i] = now[i];
		log_gpu(&a->gpus[i], " (read now)");
	}
}

void gpus_sample(struct agent *a)
{
	struct gpu_util *gu = a->stats.gpu;
	const char *errs[GPU_MAX];
	size_t i, n = GPU_MAX;

	a->stats.ngpu = 0;
	if (!a->gpu)
		return;
	relist(a);
	if (a->gpu->util(a->gpu_ctx, gu, &n) != 0)
		n = 0;
	for (i = 0; i < a->ngpus; i++) {
		if (i >= n) {
			/* Not something our plugins do; say so rather than
			 * report a GPU as idle. */
			memset(&gu[i], 0, sizeof(gu[i]));
			snprintf(gu[i].error, sizeof(gu[i].error),
				 "the %s GPU plugin gave no reading", a->gpu->name);
		}
		gu[i].index = a->gpus[i].index;
		/* Details still unknown since start: that error stays the
		 * one reported (both are current: relist just ran). */
		errs[i] = a->gpus[i].error[0] ? a->gpus[i].error : gu[i].error;
	}
	a->stats.ngpu = a->ngpus;
	report(a, errs);
}
