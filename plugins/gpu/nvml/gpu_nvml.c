/*
 * gpu_nvml.c - GPU discovery and utilization through NVML.
 *
 * libnvidia-ml.so.1 is opened with dlopen at init, never linked, so one agent
 * binary runs on nodes with and without the NVIDIA driver.  We declare the
 * few NVML types we use ourselves (they are part of NVML's stable ABI) rather
 * than build against nvml.h.  init's arg names another library to open
 * (mlagent --nvml-lib): the tests load tests/fakenvml/ that way.
 *
 * A GPU that fails a query (NVML_ERROR_GPU_IS_LOST after it fell off the
 * bus, any other error) keeps its place with the call and NVML's reason in
 * its error field; list and util themselves do not fail once init worked.
 */
#include "gpu/gpu.h"
#include "err.h"
#include "util.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int nvml_ret;		/* nvmlReturn_t: 0 is NVML_SUCCESS */
typedef struct nvml_dev *nvml_dev; /* nvmlDevice_t, opaque */
#define NVML_SUCCESS 0
#define NVML_ERROR_NOT_SUPPORTED 3

struct nvml_memory { /* nvmlMemory_t */
	unsigned long long total, free, used;
};

struct nvml_utilization { /* nvmlUtilization_t */
	unsigned int gpu, memory;
};

struct nvml_ctx {
	void *lib;
	char *path;       /* what was opened, for messages */
	unsigned count;   /* GPUs at init: the set list and util report */
	/* Handles are taken once and kept (NVML's handles stay valid for the
	 * session; a GPU that falls off the bus answers GPU_IS_LOST through
	 * its handle); one that could not be had is looked up again at every
	 * call until it can. */
	nvml_dev devs[GPU_MAX];
	bool have_dev[GPU_MAX];
	nvml_ret (*init)(void);
	nvml_ret (*shutdown)(void);
	nvml_ret (*get_count)(unsigned *count);
	nvml_ret (*get_handle)(unsigned index, nvml_dev *dev);
	nvml_ret (*get_name)(nvml_dev dev, char *name, unsigned len);
	nvml_ret (*get_memory)(nvml_dev dev, struct nvml_memory *mem);
	nvml_ret (*get_uuid)(nvml_dev dev, char *uuid, unsigned len);
	nvml_ret (*get_util)(nvml_dev dev, struct nvml_utilization *util);
	const char *(*error_string)(nvml_ret r);
};

static const char *nvml_err(const struct nvml_ctx *c, nvml_ret r)
{
	const char *s = c->error_string ? c->error_string(r) : NULL;

	return s ? s : "unknown NVML error";
}

/* "CALL: REASON (NVML error N)": what a GPU's error field holds. */
static void nvml_why(const struct nvml_ctx *c, char *buf, size_t len, const char *call,
		     nvml_ret r)
{
	snprintf(buf, len, "%s: %s (NVML error %d)", call, nvml_err(c, r), r);
}

/* Look every symbol up; the names are NVML's own (the _v2 variants are the
 * ones current drivers export).  tests/fakenvml/fakenvml.c exports the same
 * list: keep them in step. */
static int nvml_syms(struct nvml_ctx *c, char *why, size_t whylen)
{
	const struct {
		const char *name;
		void **fn;
	} syms[] = {
		{"nvmlInit_v2", (void **)&c->init},
		{"nvmlShutdown", (void **)&c->shutdown},
		{"nvmlDeviceGetCount_v2", (void **)&c->get_count},
		{"nvmlDeviceGetHandleByIndex_v2", (void **)&c->get_handle},
		{"nvmlDeviceGetName", (void **)&c->get_name},
		{"nvmlDeviceGetMemoryInfo", (void **)&c->get_memory},
		{"nvmlDeviceGetUUID", (void **)&c->get_uuid},
		{"nvmlDeviceGetUtilizationRates", (void **)&c->get_util},
		{"nvmlErrorString", (void **)&c->error_string},
	};
	size_t i;

	for (i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		*syms[i].fn = dlsym(c->lib, syms[i].name);
		if (!*syms[i].fn) {
			const char *e = dlerror();

			set_why(why, whylen, "%s: no symbol %s: %s", c->path, syms[i].name,
				e ? e : "not found");
			/* A driver too old for us counts as no NVML. */
			return ERR_NOENT;
		}
	}
	return 0;
}

/* GPU i's handle: 0, or the NVML error with its text in why. */
static int nvml_dev_get(struct nvml_ctx *c, unsigned i, nvml_dev *dev, char *why, size_t whylen)
{
	nvml_ret r;

	if (!c->have_dev[i]) {
		if ((r = c->get_handle(i, &c->devs[i])) != NVML_SUCCESS) {
			nvml_why(c, why, whylen, "nvmlDeviceGetHandleByIndex", r);
			return r;
		}
		c->have_dev[i] = true;
	}
	*dev = c->devs[i];
	return 0;
}

static int nvml_init(const char *arg, void **ctx, char *why, size_t whylen)
{
	struct nvml_ctx *c = xcalloc(1, sizeof(*c));
	bool started = false;
	nvml_ret r;
	int rv;

	*ctx = NULL;
	if (why && whylen)
		why[0] = '\0';
	c->path = xstrdup(arg ? arg : GPU_NVML_LIB);
	c->lib = dlopen(c->path, RTLD_NOW | RTLD_LOCAL);
	if (!c->lib) {
		const char *e = dlerror();

		set_why(why, whylen, "cannot load %s (is the NVIDIA driver installed?): %s",
			c->path, e ? e : "unknown error");
		rv = ERR_NOENT;
		goto out;
	}
	if ((rv = nvml_syms(c, why, whylen)) != 0)
		goto out;
	if ((r = c->init()) != NVML_SUCCESS) {
		set_why(why, whylen, "%s: nvmlInit: %s (NVML error %d)", c->path, nvml_err(c, r),
			r);
		rv = ERR_SYS;
		goto out;
	}
	started = true;
	if ((r = c->get_count(&c->count)) != NVML_SUCCESS) {
		set_why(why, whylen, "%s: nvmlDeviceGetCount: %s (NVML error %d)", c->path,
			nvml_err(c, r), r);
		rv = ERR_SYS;
		goto out;
	}
	if (c->count > GPU_MAX) {
		set_why(why, whylen, "%u GPUs found, at most %d supported", c->count, GPU_MAX);
		rv = ERR_SYS;
		goto out;
	}
	*ctx = c;
	c = NULL;
	rv = 0;
out:
	if (c) {
		if (started)
			c->shutdown();
		if (c->lib)
			dlclose(c->lib);
		free(c->path);
		free(c);
	}
	return rv;
}

/* One GPU's details, or its error. */
static void nvml_list_one(struct nvml_ctx *c, unsigned i, struct gpu_info *g)
{
	struct nvml_memory mem = {0, 0, 0};
	nvml_dev dev;
	nvml_ret r;

	memset(g, 0, sizeof(*g));
	g->index = i;
	if (nvml_dev_get(c, i, &dev, g->error, sizeof(g->error)) != 0)
		goto fail;
	if ((r = c->get_name(dev, g->model, sizeof(g->model))) != NVML_SUCCESS) {
		nvml_why(c, g->error, sizeof(g->error), "nvmlDeviceGetName", r);
		goto fail;
	}
	if ((r = c->get_uuid(dev, g->uuid, sizeof(g->uuid))) != NVML_SUCCESS) {
		nvml_why(c, g->error, sizeof(g->error), "nvmlDeviceGetUUID", r);
		goto fail;
	}
	if ((r = c->get_memory(dev, &mem)) != NVML_SUCCESS) {
		nvml_why(c, g->error, sizeof(g->error), "nvmlDeviceGetMemoryInfo", r);
		goto fail;
	}
	g->model[sizeof(g->model) - 1] = '\0';
	g->uuid[sizeof(g->uuid) - 1] = '\0';
	g->mem_total = mem.total;
	return;
fail:
	g->model[0] = g->uuid[0] = '\0';
	g->mem_total = 0;
}

static int nvml_list(void *ctx, struct gpu_info *gpus, size_t *n)
{
	struct nvml_ctx *c = ctx;
	unsigned i;

	for (i = 0; i < c->count; i++)
		nvml_list_one(c, i, &gpus[i]);
	*n = c->count;
	return 0;
}

static int nvml_util(void *ctx, struct gpu_util *util, size_t *n)
{
	struct nvml_ctx *c = ctx;
	unsigned i;

	for (i = 0; i < c->count; i++) {
		struct gpu_util *g = &util[i];
		struct nvml_utilization u = {0, 0};
		struct nvml_memory mem = {0, 0, 0};
		nvml_dev dev;
		nvml_ret r;

		memset(g, 0, sizeof(*g));
		g->index = i;
		if (nvml_dev_get(c, i, &dev, g->error, sizeof(g->error)) != 0)
			continue;
		/* Some devices (MIG parents, some vGPUs) cannot report
		 * utilization: that reads as idle, any other failure is the
		 * GPU's error. */
		r = c->get_util(dev, &u);
		if (r != NVML_SUCCESS && r != NVML_ERROR_NOT_SUPPORTED) {
			nvml_why(c, g->error, sizeof(g->error), "nvmlDeviceGetUtilizationRates", r);
			continue;
		}
		if ((r = c->get_memory(dev, &mem)) != NVML_SUCCESS) {
			nvml_why(c, g->error, sizeof(g->error), "nvmlDeviceGetMemoryInfo", r);
			continue;
		}
		g->util_pct = u.gpu > 100 ? 100 : u.gpu;
		g->mem_used = mem.used;
	}
	*n = c->count;
	return 0;
}

static void nvml_fini(void *ctx)
{
	struct nvml_ctx *c = ctx;

	if (!c)
		return;
	c->shutdown();
	dlclose(c->lib);
	free(c->path);
	free(c);
}

const struct gpu_ops gpu_nvml_ops = {
	.name = "nvml",
	.init = nvml_init,
	.list = nvml_list,
	.util = nvml_util,
	.fini = nvml_fini,
};
