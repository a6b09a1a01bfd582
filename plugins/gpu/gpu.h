/*
 * gpu.h - GPU discovery and utilization behind one ops struct.
 *
 * "nvml" loads libnvidia-ml.so.1 with dlopen at run time (no link-time
 * dependency, so the agent runs on machines without the NVIDIA driver);
 * "static" serves a declared inventory such as "4x80G:A100" or
 * "2x40G:A100,2x80G:H100" (how tests declare fake GPUs).  Static GPUs report
 * utilization 0 and no memory in use, and never fail.
 *
 * Errors of one GPU (NVML's "GPU is lost", a query that fails) do not fail
 * list or util: the GPU keeps its place, with its error text in the entry's
 * error field ("" when it is fine), so that the caller can report which GPU
 * and which call.  The set of GPUs is fixed at init: a GPU that disappears
 * later is reported as an error at its index, not removed.
 */
#ifndef MLSCHED_GPU_H
#define MLSCHED_GPU_H

#include <stddef.h>
#include <stdint.h>

#define GPU_MAX 64
#define GPU_MODEL_LEN 64
#define GPU_UUID_LEN 96
/* One GPU's error: the failed call and its reason, e.g.
 * "nvmlDeviceGetUtilizationRates: GPU is lost (NVML error 15)". */
#define GPU_ERROR_LEN 160
/* The library "nvml" opens when init's arg is NULL. */
#define GPU_NVML_LIB "libnvidia-ml.so.1"

struct gpu_info {
	uint32_t index;
	uint64_t mem_total; /* bytes; 0 when error is set */
	char model[GPU_MODEL_LEN]; /* "" when error is set */
	char uuid[GPU_UUID_LEN]; /* "" for static GPUs */
	char error[GPU_ERROR_LEN]; /* "" or why the GPU could not be read */
};

struct gpu_util {
	uint32_t index;
	uint32_t util_pct; /* 0..100; 0 when error is set */
	uint64_t mem_used; /* bytes; 0 when error is set */
	char error[GPU_ERROR_LEN]; /* "" or why this GPU could not be read */
};

struct gpu_ops {
	const char *name;
	/* arg: the declared inventory for "static"; for "nvml" the library
	 * to dlopen (a file name or path), NULL for GPU_NVML_LIB.
	 * Returns 0, ERR_INVAL (bad inventory, message in why), ERR_NOENT
	 * (nvml: the library is not there or lacks a function we call),
	 * ERR_SYS (nvml: nvmlInit or the GPU count failed, or too many GPUs).
	 * On failure *ctx is NULL; otherwise fini frees it. */
	int (*init)(const char *arg, void **ctx, char *why, size_t whylen);
	/* Fills gpus[0..*n) (at most GPU_MAX), index i at position i.  A GPU
	 * that cannot be read is listed with its error set.  Returns 0. */
	int (*list)(void *ctx, struct gpu_info *gpus, size_t *n);
	/* Fills util[0..*n) for every GPU of list, same positions; a GPU
	 * that cannot be read (or is gone) has its error set.  Returns 0. */
	int (*util)(void *ctx, struct gpu_util *util, size_t *n);
	void (*fini)(void *ctx); /* accepts NULL */
};

extern const struct gpu_ops gpu_nvml_ops;
extern const struct gpu_ops gpu_static_ops;

#endif
