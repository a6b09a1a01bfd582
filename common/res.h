/*
 * res.h - resource vectors and the GPU inventory of one node.
 *
 * A request (struct res) asks for GPUs in milli-GPUs (1000 = one whole GPU;
 * below 1000 is a share of one card), a minimum memory per GPU, host memory
 * and CPU millicores.  A node holds an array of GPUs, each with the milli
 * already handed out; whole-GPU tasks only take GPUs with nothing handed out,
 * and shares of one card add up to at most 1000.
 */
#ifndef MLSCHED_RES_H
#define MLSCHED_RES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RES_MAX_GPUS 64      /* GPUs on one node */
#define RES_MODEL_LEN 64

struct res {
	uint32_t gpus_milli; /* 0, a share < 1000, or a multiple of 1000 */
	uint64_t gpu_mem;    /* minimum memory per GPU, bytes; 0 = any */
	uint64_t mem;        /* host memory, bytes */
	uint32_t cpu_milli;  /* CPU millicores */
};

struct res_gpu {
	uint32_t index;
	uint64_t mem;                /* bytes */
	char model[RES_MODEL_LEN];   /* "NVIDIA A100-SXM4-80GB", "" if unknown */
	uint32_t used_milli;         /* handed out: 0..1000 */
};

struct res_node {
	struct res_gpu gpus[RES_MAX_GPUS];
	uint32_t ngpus;
	uint64_t mem_total, mem_used;
	uint32_t cpu_total, cpu_used; /* millicores */
};

/* Whole GPUs a request asks for (gpus_milli / 1000, 0 for a share). */
uint32_t res_whole_gpus(const struct res *r);
/* True when r asks for a share of one GPU (0 < gpus_milli < 1000). */
bool res_is_share(const struct res *r);
/* A request is well formed: gpus_milli below 1000 or a multiple of it, and
 * at most RES_MAX_GPUS whole GPUs.  0 or ERR_INVAL with a reason in why. */
int res_check(const struct res *r, char *why, size_t len);

/* Plain vector arithmetic on the memory/cpu/gpu-count dimensions (gpu_mem is a
 * per-GPU minimum, not a quantity: add/sub leave a's alone, res_le ignores it).
 * res_add saturates at the type's maximum. */
void res_add(struct res *a, const struct res *b);
void res_sub(struct res *a, const struct res *b); /* clamps at 0 */
bool res_le(const struct res *a, const struct res *b); /* every dimension a <= b */

/*
 * Does want fit node n now?  On success fills idx[] with the GPU indices to
 * bind (res_whole_gpus(want) of them, or 1 for a share) and *nidx, and
 * returns true.  idx[] are positions in n->gpus (n->gpus[i].index is the
 * device index).  Picks the lowest positions that fit; for a share it prefers a
 * GPU that is already shared (so whole GPUs stay whole).  Does not change n.
 */
bool res_fit(const struct res_node *n, const struct res *want, uint32_t *idx, uint32_t *nidx);
/* Take / give back what res_fit chose.  idx are positions in n->gpus. */
void res_take(struct res_node *n, const struct res *want, const uint32_t *idx, uint32_t nidx);
void res_give(struct res_node *n, const struct res *want, const uint32_t *idx, uint32_t nidx);
/* Free whole GPUs (used_milli == 0) with at least min_mem bytes. */
uint32_t res_free_whole_gpus(const struct res_node *n, uint64_t min_mem);

#endif
