/*
 * fakenvml.c - a stand-in for libnvidia-ml.so.1 that the tests load through
 * the nvml GPU plugin (its init arg, mlagent --nvml-lib).  It exports the
 * functions plugins/gpu/nvml/gpu_nvml.c looks up (its syms[] list: keep them
 * in step) and answers from a small text file named by the environment
 * variable MLS_FAKE_NVML, read again at every call, so that a test changes
 * what the "driver" says by rewriting the file (write a new file and rename
 * it over the old one: a reader never sees half a file).
 *
 * The file holds KEY=VALUE lines; '#' starts a comment.  Keys:
 *
 *   count=N            GPUs present (default 0, at most 128).  Handles of GPUs at or past
 *                      N (a GPU that disappeared) answer GPU_IS_LOST.
 *   init_error=E       nvmlInit_v2 fails with E
 *   count_error=E      nvmlDeviceGetCount_v2 fails with E
 *   I.name=TEXT        GPU I's name (default "Fake GPU I")
 *   I.uuid=TEXT        (default "GPU-fake-I")
 *   I.mem_total=BYTES  (default 80 GiB)
 *   I.mem_used=BYTES   (default 0)
 *   I.util=PCT         (default 0)
 *   I.error=E          every query of GPU I fails with E (15: GPU is lost)
 *   I.handle_error=E   nvmlDeviceGetHandleByIndex_v2 fails for I
 *   I.util_error=E     nvmlDeviceGetUtilizationRates fails for I
 *   I.mem_error=E      nvmlDeviceGetMemoryInfo fails for I
 *   I.name_error=E     nvmlDeviceGetName fails for I
 *
 * Without MLS_FAKE_NVML, or when the file cannot be read, nvmlInit answers
 * NVML_ERROR_DRIVER_NOT_LOADED and every other call NVML_ERROR_UNKNOWN.
 * Calls before nvmlInit (or after nvmlShutdown) answer
 * NVML_ERROR_UNINITIALIZED, as the real library does.
 *
 * Not thread-safe, and needs not be: the agent calls NVML from one thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_MAX 128 /* above the plugin's GPU_MAX, to test its limit */
#define FAKE_TEXT 96

/* nvmlReturn_t values (NVML's ABI). */
enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
	NVML_ERROR_GPU_IS_LOST = 15,
	NVML_ERROR_UNKNOWN = 999,
};

typedef struct fake_dev *nvmlDevice_t;

typedef struct {
	unsigned long long total, free, used;
} nvmlMemory_t;

typedef struct {
	unsigned int gpu, memory;
} nvmlUtilization_t;

struct fake_dev {
	unsigned index;
};

struct fake_gpu {
	char name[FAKE_TEXT], uuid[FAKE_TEXT];
	unsigned long long mem_total, mem_used;
	unsigned util;
	int error, handle_error, util_error, mem_error, name_error;
};

struct fake_state {
	unsigned count;
	int init_error, count_error;
	struct fake_gpu gpus[FAKE_MAX];
};

static struct fake_dev devs[FAKE_MAX];
static int initialized; /* nvmlInit calls not yet shut down */

/* Read the state file into s: 0, or -1 when it cannot be read. */
static int load(struct fake_state *s)
{
	const char *path = getenv("MLS_FAKE_NVML");
	char line[512];
	FILE *f;

	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < FAKE_MAX; i++) {
		snprintf(s->gpus[i].name, FAKE_TEXT, "Fake GPU %u", i);
		snprintf(s->gpus[i].uuid, FAKE_TEXT, "GPU-fake-%u", i);
		s->gpus[i].mem_total = 80ull << 30;
	}
	if (!path || !(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *eq, *key = line, *val, *dot;
		struct fake_gpu *g;
		unsigned long idx;
		size_t len;

		line[strcspn(line, "#\n")] = '\0';
		len = strlen(line);
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		if (!(eq = strchr(line, '=')))
			continue;
		*eq = '\0';
		val = eq + 1;
		if (strcmp(key, "count") == 0) {
			s->count = (unsigned)strtoul(val, NULL, 10);
			if (s->count > FAKE_MAX)
				s->count = FAKE_MAX;
			continue;
		}
		if (strcmp(key, "init_error") == 0) {
			s->init_error = atoi(val);
			continue;
		}
		if (strcmp(key, "count_error") == 0) {
			s->count_error = atoi(val);
			continue;
		}
		idx = strtoul(key, &dot, 10);
		if (dot == key || *dot != '.' || idx >= FAKE_MAX)
			continue;
		g = &s->gpus[idx];
		key = dot + 1;
		if (strcmp(key, "name") == 0)
			snprintf(g->name, FAKE_TEXT, "%s", val);
		else if (strcmp(key, "uuid") == 0)
			snprintf(g->uuid, FAKE_TEXT, "%s", val);
		else if (strcmp(key, "mem_total") == 0)
			g->mem_total = strtoull(val, NULL, 10);
		else if (strcmp(key, "mem_used") == 0)
			g->mem_used = strtoull(val, NULL, 10);
		else if (strcmp(key, "util") == 0)
			g->util = (unsigned)strtoul(val, NULL, 10);
		else if (strcmp(key, "error") == 0)
			g->error = atoi(val);
		else if (strcmp(key, "handle_error") == 0)
			g->handle_error = atoi(val);
		else if (strcmp(key, "util_error") == 0)
			g->util_error = atoi(val);
		else if (strcmp(key, "mem_error") == 0)
			g->mem_error = atoi(val);
		else if (strcmp(key, "name_error") == 0)
			g->name_error = atoi(val);
	}
	fclose(f);
	return 0;
}

/* The state for a call, or an error to return: not initialized, no file. */
static int state(struct fake_state *s)
{
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	return load(s) == 0 ? NVML_SUCCESS : NVML_ERROR_UNKNOWN;
}

/* The GPU behind a handle, or an error: gone (past count), or its error. */
static int gpu_of(struct fake_state *s, nvmlDevice_t dev, struct fake_gpu **g)
{
	int r;

	if ((r = state(s)) != NVML_SUCCESS)
		return r;
	if (!dev || dev < devs || dev >= devs + FAKE_MAX)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (dev->index >= s->count)
		return NVML_ERROR_GPU_IS_LOST;
	*g = &s->gpus[dev->index];
	return (*g)->error;
}

int nvmlInit_v2(void)
{
	struct fake_state s;

	if (load(&s) != 0)
		return NVML_ERROR_DRIVER_NOT_LOADED;
	if (s.init_error)
		return s.init_error;
	initialized++;
	return NVML_SUCCESS;
}

int nvmlShutdown(void)
{
	if (!initialized)
		return NVML_ERROR_UNINITIALIZED;
	initialized--;
	return NVML_SUCCESS;
}

int nvmlDeviceGetCount_v2(unsigned *count)
{
	struct fake_state s;
	int r;

	if ((r = state(&s)) != NVML_SUCCESS)
		return r;
	if (!count)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (s.count_error)
		return s.count_error;
	*count = s.count;
	return NVML_SUCCESS;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned index, nvmlDevice_t *dev)
{
	struct fake_state s;
	int r;

	if ((r = state(&s)) != NVML_SUCCESS)
		return r;
	if (!dev || index >= s.count)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (s.gpus[index].handle_error)
		return s.gpus[index].handle_error;
	devs[index].index = index;
	*dev = &devs[index];
	return NVML_SUCCESS;
}

static int copy_text(char *dst, unsigned len, const char *src)
{
	if (!dst)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(src) >= len)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(dst, src, strlen(src) + 1);
	return NVML_SUCCESS;
}

int nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned len)
{
	struct fake_state s;
	struct fake_gpu *g;
	int r;

	if ((r = gpu_of(&s, dev, &g)) != NVML_SUCCESS)
		return r;
	if (g->name_error)
		return g->name_error;
	return copy_text(name, len, g->name);
}

int nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned len)
{
	struct fake_state s;
	struct fake_gpu *g;
	int r;

	if ((r = gpu_of(&s, dev, &g)) != NVML_SUCCESS)
		return r;
	return copy_text(uuid, len, g->uuid);
}

int nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *mem)
{
	struct fake_state s;
	struct fake_gpu *g;
	int r;

	if ((r = gpu_of(&s, dev, &g)) != NVML_SUCCESS)
		return r;
	if (g->mem_error)
		return g->mem_error;
	if (!mem)
		return NVML_ERROR_INVALID_ARGUMENT;
	mem->total = g->mem_total;
	mem->used = g->mem_used;
	mem->free = g->mem_total > g->mem_used ? g->mem_total - g->mem_used : 0;
	return NVML_SUCCESS;
}

int nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *util)
{
	struct fake_state s;
	struct fake_gpu *g;
	int r;

	if ((r = gpu_of(&s, dev, &g)) != NVML_SUCCESS)
		return r;
	if (g->util_error)
		return g->util_error;
	if (!util)
		return NVML_ERROR_INVALID_ARGUMENT;
	util->gpu = g->util;
	util->memory = 0;
	return NVML_SUCCESS;
}

/* NVML's own texts for the codes tests use. */
const char *nvmlErrorString(int r)
{
	switch (r) {
	case 0:
		return "Success";
	case 1:
		return "Uninitialized";
	case 2:
		return "Invalid Argument";
	case 3:
		return "Not Supported";
	case 4:
		return "Insufficient Permissions";
	case 6:
		return "Not Found";
	case 7:
		return "Insufficient Size";
	case 9:
		return "Driver Not Loaded";
	case 10:
		return "Timeout";
	case 12:
		return "NVML Shared Library Not Found";
	case 13:
		return "Function Not Found";
	case 14:
		return "Corrupted infoROM";
	case 15:
		return "GPU is lost";
	case 16:
		return "GPU requires restart";
	case 17:
		return "Operating System Call Failed";
	default:
		return "Unknown Error";
	}
}
