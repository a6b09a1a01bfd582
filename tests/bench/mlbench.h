/*
 * mlbench.h - what mlbench's files share: the replayed trace (loaded by
 * mlbench.c) and the entry points of the other modes.
 */
#ifndef MLSCHED_MLBENCH_H
#define MLSCHED_MLBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "res.h"
#include "sched/sched.h"

#define MILLI 1000u
#define MIB (1024ull * 1024ull)
#define MAX_SPEC_MODELS 8 /* models in one gpu_spec ("A|B|C") */
#define EXIT_BAD 2

/* A node of the trace. */
struct rnode {
	char name[SCHED_NAME_LEN];
	struct res_node cap;
};

/* A job (pod) of the trace: one task. */
struct rjob {
	struct res res;
	char models[MAX_SPEC_MODELS][RES_MODEL_LEN];
	uint32_t nmodels; /* 0 = any model */
	uint64_t create, delete; /* seconds; delete == UINT64_MAX: never */
	uint32_t order;          /* row in the file: ties in creation time keep it */
};

/* Read the nodes / jobs CSV (layouts: mlbench.c's header comment).  0 with
 * *out (caller frees) and its length, or ERR_* after printing one line that
 * names the file, the line and the field to stderr. */
int load_nodes(const char *path, struct rnode **out, uint32_t *nout);
int load_jobs(const char *path, struct rjob **out, uint32_t *nout);
/* qsort order of jobs: creation time, then file order. */
int cmp_create(const void *a, const void *b);
/* qsort order of uint32_t; nearest-rank percentile p (1..100) of a sorted
 * array (0 when empty). */
int cmp_u32(const void *a, const void *b);
uint32_t pct(const uint32_t *v, size_t n, size_t p);

/* mlbench replay --pools (mlbench_pools.c): argv[0] is "replay".  Returns
 * the exit status (0, 1 an internal check failed, EXIT_BAD bad input). */
int pools_replay_main(int argc, char **argv);
/* mlbench agents (mlbench_agents.c). */
int agents_main(int argc, char **argv);

#endif
