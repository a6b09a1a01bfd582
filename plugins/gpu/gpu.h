/*
 * gpu.h - GPU discovery and utilization behind one ops struct.
 *
 * "nvml" loads libnvidia-ml.so.1 with dlopen at run time (no link-time
 * dependency, so the agent runs on machines without the NVIDIA driver);
 * "static" serves a declared inventory such as "4x80G:A100" or
 * "2x40G:A100,2x80G:H100" (how tests declare fake GPUs).  Static GPUs report
 * utilization 0 and no memory in use.
 */
#ifndef MLSCHED_GPU_H
#define MLSCHED_GPU_H

#include <stddef.h>
#include <stdint.h>

#define GPU_MAX 64
#define GPU_MODEL_LEN 64
#define GPU_UUID_LEN 96

struct gpu_info {
	uint32_t index;
	uint64_t mem_total; /* bytes */
	char model[GPU_MODEL_LEN];
	char uuid[GPU_UUID_LEN]; /* "" for static GPUs */
};

struct gpu_util {
	uint32_t index;
	uint32_t util_pct; /* 0..100 */
	uint64_t mem_used; /* bytes */
};

struct gpu_ops {
	const char *name;
	/* arg: the declared inventory for "static", unused (NULL) for "nvml".
	 * Returns 0, ERR_INVAL (bad inventory, message in why), ERR_NOENT
	 * (nvml: the library is not there), ERR_SYS (nvml: a call failed). */
	int (*init)(const char *arg, void **ctx, char *why, size_t whylen);
	/* Fills gpus[0..*n) (at most GPU_MAX). */
	int (*list)(void *ctx, struct gpu_info *gpus, size_t *n);
	/* Fills util[0..*n) for every GPU. */
	int (*util)(void *ctx, struct gpu_util *util, size_t *n);
	void (*fini)(void *ctx);
};

extern const struct gpu_ops gpu_nvml_ops;
extern const struct gpu_ops gpu_static_ops;

#endif
