/*
 * pools.h - node pools, cloud bursting and scale-in (mlmaster --pools FILE).
 *
 * A pool is a set of nodes that share a label (pool=NAME), a price per GPU
 * hour and, for cloud pools, a machine template and two hooks: provision
 * (start a machine whose agent joins as a given node name) and release (stop
 * it).  On-prem pools have no hooks; they only carry a cost.
 *
 * THE LIFE OF A PROVISIONED NODE.  booting -> ready -> releasing -> gone.
 * The master decides to provision (burst.c: work pending for capacity for
 * burst_after, or a pool below min) and records the node as booting in the
 * store in that turn; the provision hook is spawned only after that commit
 * (pools_committed), so a crash before it leaves a booting record whose
 * agent never joins (released after boot_timeout), and a crash after it
 * finds the record: a node is never provisioned twice.  The agent joining
 * under that name makes it ready.  A booting node that does not join within
 * boot_timeout, or whose provision hook fails, is released and counts as a
 * failure: the pool then waits (burst_after doubling per failure in a row,
 * at most 10 minutes) before provisioning again.  A ready node without
 * tasks for idle (and above min), or lost for boot_timeout, is drained and
 * released; the record goes when the release hook exits 0 (otherwise the
 * hook is run again after a back-off).  Releasing records found at start
 * get their hook run again: release hooks must be idempotent.
 *
 * HOOKS run with posix_spawn (clean signal state, their own process group,
 * stdin and stdout /dev/null, stderr to STATE_DIR/hooks/POOL-NODE-ACTION.err),
 * never waited on: burst.c reaps them each turn with waitpid(WNOHANG) and
 * kills a hook still running after boot_timeout.  Every run, its exit code
 * and its stderr's tail are logged and kept in the pool's record (the last
 * POOL_HISTORY runs), which mlctl pools shows.
 *
 * Threading and durability: owned by the master's thread like the rest of
 * the model (master.h).  Each pool is one store record, "pools/NAME",
 * written by state_flush in the turn's transaction when it changed.
 */
#ifndef MLSCHED_POOLS_H
#define MLSCHED_POOLS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "res.h"
#include "sched/sched.h"

#define POOL_NAME_MAX 63
#define POOL_MAX 32          /* pools in one file */
#define POOL_MAX_NODES 1024  /* max of one pool */
#define POOL_HISTORY 16      /* hook runs kept per pool */
#define POOL_TAIL 512        /* bytes of a hook's stderr kept */
#define POOL_REASON_MAX 256
#define POOL_BACKOFF_MAX_MS (10 * 60 * 1000)

enum pnode_state { PNODE_BOOTING = 0, PNODE_READY, PNODE_RELEASING };

/* A node this master provisioned (stored). */
struct pnode {
	char name[POOL_NAME_MAX + 1];
	enum pnode_state state;
	uint64_t since;               /* wall ms it entered state */
	char reason[POOL_REASON_MAX]; /* why it was provisioned / is released */
	/* Not stored. */
	bool hook_due;        /* spawn its hook (provision or release) after the commit */
	pid_t hook_pid;       /* its hook while running, 0 = none */
	uint64_t retry_at;    /* releasing: monotonic ms to run the hook again */
	uint64_t idle_since;  /* ready: monotonic ms it was last seen without tasks, 0 = busy */
	uint64_t lost_since;  /* ready: monotonic ms it was first seen lost, 0 = not lost */
};

/* One hook run (stored, the last POOL_HISTORY per pool). */
struct hookrun {
	char node[POOL_NAME_MAX + 1];
	bool release;          /* else provision */
	char reason[POOL_REASON_MAX];
	uint64_t started, finished; /* wall ms; finished 0 = still running */
	int exit_code;         /* -1: killed by signal, or unknown */
	int signal;
	char tail[POOL_TAIL];  /* the end of its stderr, or what went wrong */
};

struct pool {
	/* From the file (immutable). */
	char name[POOL_NAME_MAX + 1];
	struct sched_label labels[SCHED_MAX_LABELS]; /* pool=NAME first */
	uint32_t nlabels;
	uint32_t cost_milli;   /* per GPU hour, thousandths */
	uint32_t min, max;
	char *provision, *release; /* NULL for on-prem pools */
	struct res_node tmpl;  /* the machine a provision starts */
	char *tmpl_gpus;       /* as written: "4x80G:H100" */
	uint64_t boot_timeout_ms, idle_ms;
	/* State (stored). */
	uint32_t next_seq;     /* node names are NAME-SEQ */
	uint32_t failures;     /* provisions in a row that did not join */
	uint64_t backoff_until; /* wall ms: no provision before */
	uint32_t provisioned, released, failed; /* totals */
	char last_provision[POOL_REASON_MAX], last_release[POOL_REASON_MAX];
	uint64_t last_provision_at, last_release_at; /* wall ms */
	struct pnode *nodes;
	uint32_t nnodes, cap_nodes;
	struct hookrun hist[POOL_HISTORY]; /* oldest first */
	uint32_t nhist;
	bool dirty;
};

struct pools {
	char *path;
	uint64_t burst_after_ms;
	struct pool *v;
	uint32_t n;
	/* Burst scans (burst.c), not stored. */
	uint64_t next_scan;    /* monotonic ms */
	struct pending_seen *seen; /* pending jobs and since when, by job id */
	size_t nseen;
	char last_burst[POOL_REASON_MAX]; /* the last scan's verdict, for logs */
	/* pools_load only: hooks this process runs (pools.c). */
	struct running *loading_run;
	size_t loading_nrun;
};

struct master;
struct node;

/* Read and validate a pools file.  0 with *out (pools_free it), or ERR_INVAL
 * / ERR_IO with one line in why: "pools.yaml:9: pools[1].max: must be at
 * least min (2)".  Unknown keys are refused. */
int pools_config(const char *path, struct pools **out, char *why, size_t whylen);
void pools_free(struct pools *p); /* NULL is fine */

/* The pool node n belongs to (its pool label), NULL if none is configured. */
struct pool *pools_of_node(const struct master *m, const struct node *n);
/* n's cost per GPU hour in thousandths (0 outside pools), for the core. */
uint32_t pools_node_cost(const struct master *m, const struct node *n);
/* A provisioned node by name, and its pool; NULL if none. */
struct pnode *pools_pnode(const struct master *m, const char *name, struct pool **pool);

/* Store: did a pool change this turn?  Write the changed ones (inside
 * state_flush's transaction); 0 or a store error.  Load them (state_load). */
bool pools_dirty(const struct master *m);
int pools_store(struct master *m);
int pools_load(struct master *m);

/* A new booting record named name in p (marks p dirty); the pointer is
 * valid until the next add or delete in p. */
struct pnode *pools_pnode_add(struct pool *p, const char *name);
/* Forget a record (marks p dirty). */
void pools_pnode_del(struct pool *p, struct pnode *pn);
/* Append a hook run to p's history (oldest dropped) and return it. */
struct hookrun *pools_hist_add(struct pool *p);
/* mlctl pools: every pool, or the one named (NULL if unknown). */
cJSON *pools_to_json(struct master *m, const char *name);

/* burst.c: per turn, after the scheduler pass: joins, timeouts, hook exits,
 * scale-in and burst decisions. */
void pools_tick(struct master *m);
/* After the turn's commit: spawn the hooks decided in it. */
void pools_committed(struct master *m);

#endif
