/*
 * sched.h - the scheduler core: nodes indexed by free GPUs, placement
 * policies (plugins), gangs placed all or nothing, a reservation for the
 * head of the queue with backfill around it, and preemption.
 *
 * Pure computation: no I/O, no threads, no master structures.  mlmaster
 * mirrors its nodes and jobs into a struct sched; mlbench drives the same
 * code with simulated nodes.  Not thread-safe: one owner thread.
 *
 * THE INDEX.  Every node sits in exactly one bucket, keyed by its number of
 * free whole GPUs (0..RES_MAX_GPUS; a GPU is "free whole" when nothing of it
 * is handed out).  Buckets are arrays with O(1) removal (swap with last; each
 * node remembers its position), so taking or giving back resources moves a
 * node between buckets in O(1).  A task that wants g whole GPUs only looks at
 * buckets g..RES_MAX_GPUS: binpack walks them upward (the first fitting node
 * leaves the fewest free GPUs), spread walks them downward.  Within a bucket
 * a node can still fail on memory, CPU, GPU memory, model, labels or a
 * reservation; those checks are O(1) each, and in GPU clusters the GPU count
 * is the binding dimension, so the walk is short.  Nodes with a GPU that is
 * partly handed out (a share) are also kept in a second array, the "shared"
 * set, so a fractional task finds a card to pack onto without a scan.
 * A non-empty-bucket bitmap (64 bits + 1) lets a walk skip empty buckets.
 */
#ifndef MLSCHED_SCHED_H
#define MLSCHED_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "res.h"

#define SCHED_NAME_LEN 64
#define SCHED_MAX_LABELS 16
#define SCHED_LABEL_LEN 64
#define SCHED_MAX_CONS 16 /* constraints per job */
#define SCHED_MAX_IN 8    /* values in one "in" constraint */
#define SCHED_REASON_LEN 256
#define SCHED_NONE UINT32_MAX

struct sched_label {
	char key[SCHED_LABEL_LEN];
	char val[SCHED_LABEL_LEN];
};

enum sched_cons_op { SCHED_EQ = 0, SCHED_NE, SCHED_IN };

/* A label constraint: "zone=a", "pool!=cloud", "gpu in (a100, h100)".
 * A node without the key fails EQ and IN and passes NE. */
struct sched_cons {
	char key[SCHED_LABEL_LEN];
	enum sched_cons_op op;
	char vals[SCHED_MAX_IN][SCHED_LABEL_LEN];
	uint32_t nvals; /* 1 for EQ and NE */
};

/* Parse one constraint.  0 or ERR_INVAL with a reason in why. */
int sched_cons_parse(const char *text, struct sched_cons *c, char *why, size_t whylen);
/* Format back to the canonical text ("gpu in (a100,h100)"). */
void sched_cons_format(const struct sched_cons *c, char *buf, size_t len);

struct sched_node {
	uint32_t id; /* slot in the cluster, stable while the node exists */
	char name[SCHED_NAME_LEN];
	struct res_node res;
	struct sched_label labels[SCHED_MAX_LABELS];
	uint32_t nlabels;
	bool schedulable;      /* ready and not drained; set with sched_node_set() */
	uint32_t cost_milli;   /* its pool's cost per GPU hour, in thousandths; set
				* with sched_node_cost() (THE COST TIERS) */
	uint64_t reserved_for; /* job id holding a reservation here, 0 = none */
	/* Index bookkeeping: private to sched.c. */
	uint32_t bucket, bpos, spos;
	uint32_t mix_mask, mix_gen; /* cache of sched_mix_node_mask() */
};

/* One placed task: a node and the GPU positions bound on it. */
struct sched_slot {
	uint32_t node;
	uint32_t ngpus;
	uint32_t gpu_pos[RES_MAX_GPUS];
};

struct sched;
struct sched_policy;

/*
 * One role of a multi-role gang (sched_req.parts): ntasks tasks, each
 * needing res, on nodes with gpu_model.  name is only for reasons ("role
 * ps: needs 64 CPUs on one node; largest node has 16").
 */
struct sched_part {
	const char *name;
	uint32_t ntasks;
	struct res res;
	const char *gpu_model; /* NULL = any */
};

/*
 * What a job asks for in one step: ntasks tasks, each needing res; or, with
 * nparts > 0, a gang of parts whose tasks differ: parts[0]'s tasks first,
 * then parts[1]'s and so on (slots come back in that order), ntasks their
 * sum, and res and gpu_model unused.  Either way all or nothing.  Of a gang
 * of parts the queue knows only necessary conditions for "could fit on an
 * empty cluster" (each part could, alone), so such a gang may hold the
 * reservation and still wait; placing itself is exact.
 */
struct sched_req {
	uint64_t job;       /* non-zero id: reservations and spread use it */
	int32_t priority;
	uint32_t ntasks;    /* placed all or nothing */
	struct res res;     /* per task */
	const char *gpu_model;  /* substring of the GPU model, NULL = any */
	const struct sched_cons *cons;
	uint32_t ncons;
	const struct sched_policy *policy; /* NULL: binpack */
	/* spread: node ids already running tasks of this job */
	const uint32_t *avoid;
	uint32_t navoid;
	/* Nodes whose cost_milli is above this are infeasible; 0 = any cost. */
	uint32_t max_cost_milli;
	const struct sched_part *parts; /* NULL: every task is res */
	uint32_t nparts;
};

/* Part i of req as a request of its own (req's job, priority, constraints,
 * policy and avoid list; parts NULL). */
void sched_req_part(const struct sched_req *req, uint32_t i, struct sched_req *out);
/* 0 when every task's request is well formed (res_check), else ERR_INVAL. */
int sched_req_check(const struct sched_req *req);

/*
 * A placement policy.  pick() chooses the node for the next task of req
 * given the tasks already chosen in this step (placed[0..nplaced), whose
 * resources are already taken), or returns NULL when no node fits.  It must
 * only return nodes for which sched_fits() is true, and should find them
 * through the index (sched_bucket_*, sched_shared_*), never by scanning all
 * nodes.  Plugins built as shared objects export one symbol,
 * "sched_policy_plugin", of this type, with version SCHED_POLICY_VERSION.
 */
#define SCHED_POLICY_VERSION 1
struct sched_policy {
	uint32_t version;
	const char *name;
	struct sched_node *(*pick)(struct sched *s, const struct sched_req *req,
				   const struct sched_slot *placed, uint32_t nplaced);
};

extern const struct sched_policy sched_binpack; /* plugins/sched/binpack */
extern const struct sched_policy sched_spread;  /* plugins/sched/spread */
extern const struct sched_policy sched_fgd;     /* plugins/sched/fgd */

/* Every policy sched_policy_find() knows, built-ins first: i < count. */
uint32_t sched_policy_count(void);
const struct sched_policy *sched_policy_at(uint32_t i);

/* A policy by name: built-ins and loaded plugins; NULL if unknown. */
const struct sched_policy *sched_policy_find(const char *name);
/* dlopen every *.so in dir and register the policies they export; a wrong
 * version or a name already taken is an error (ERR_VERSION / ERR_EXIST) that
 * names the file in why.  0 when all loaded. */
int sched_policy_load_dir(const char *dir, char *why, size_t whylen);
/* Register a policy linked into the program, with the same checks as a
 * loaded one: ERR_VERSION, ERR_EXIST (name taken, built-ins included) or
 * ERR_INVAL, with a reason in why.  p must outlive its registration. */
int sched_policy_register(const struct sched_policy *p, char *why, size_t whylen);
/* Forget every registered and loaded policy (dlclose-ing the loaded ones);
 * the built-ins stay.  For shutdown and tests: no pointer from
 * sched_policy_find() to a dropped policy may be used afterwards.  The
 * registry is process-wide and not thread-safe: set it up at start-up. */
void sched_policy_reset(void);


struct sched *sched_new(void);
void sched_free(struct sched *s); /* NULL is fine */

/* Add a node with capacity cap (used fields must be 0) and labels; the node
 * starts schedulable.  Returns the node (owned by s). */
struct sched_node *sched_node_add(struct sched *s, const char *name, const struct res_node *cap,
				  const struct sched_label *labels, uint32_t nlabels);
/* Remove a node.  Its allocations vanish with it: the caller stops or
 * requeues the tasks that were there. */
void sched_node_remove(struct sched *s, struct sched_node *n);
void sched_node_set(struct sched *s, struct sched_node *n, bool schedulable);
/* Set labels (replacing them). */
void sched_node_labels(struct sched *s, struct sched_node *n, const struct sched_label *labels,
		       uint32_t nlabels);
struct sched_node *sched_node_get(const struct sched *s, uint32_t id); /* NULL if none */
struct sched_node *sched_node_by_name(const struct sched *s, const char *name);
uint32_t sched_node_slots(const struct sched *s); /* ids are < this */
const char *sched_label_get(const struct sched_node *n, const char *key); /* NULL if absent */

/*
 * THE COST TIERS.  Each node carries a cost (its pool's price per GPU hour,
 * 0 by default).  The core keeps the distinct costs of its nodes in a small
 * sorted table (at most SCHED_MAX_TIERS; costs beyond that share the last,
 * most expensive attempt), and sched_place() tries the tiers cheapest first:
 * the policy places the whole step on nodes costing at most the cheapest
 * tier, else at most the next one, and so on.  So new work lands on the
 * cheapest pool that can take it all (on-prem before cloud) and running work
 * never moves.  Each attempt is the policy's ordinary index walk with one
 * more O(1) test in sched_fits(); with one tier (no pools) nothing changes.
 */
#define SCHED_MAX_TIERS 16
/* Set n's cost (thousandths per GPU hour). */
void sched_node_cost(struct sched *s, struct sched_node *n, uint32_t cost_milli);
/* Distinct node costs now, cheapest first: i < sched_tier_count(s). */
uint32_t sched_tier_count(const struct sched *s);
uint32_t sched_tier_at(const struct sched *s, uint32_t i);

/* Index access for policies. */
uint32_t sched_bucket_len(const struct sched *s, uint32_t free_gpus);
struct sched_node *sched_bucket_at(const struct sched *s, uint32_t free_gpus, uint32_t i);
/* Lowest / highest non-empty bucket >= from (<= from), or SCHED_NONE. */
uint32_t sched_bucket_next(const struct sched *s, uint32_t from);
uint32_t sched_bucket_prev(const struct sched *s, uint32_t from);
uint32_t sched_shared_len(const struct sched *s);
struct sched_node *sched_shared_at(const struct sched *s, uint32_t i);

/* Could one task of req go on n now?  Checks schedulable, the reservation
 * (a node reserved for another job is off limits), labels, GPU model and
 * res_fit.  On true, fills slot (node and GPU positions). */
bool sched_fits(const struct sched *s, const struct sched_node *n, const struct sched_req *req,
		struct sched_slot *slot);

/*
 * Place req->ntasks tasks all or nothing with req's policy.  On success
 * fills slots[0..ntasks), takes the resources and returns 0.  Otherwise
 * returns ERR_NOFIT and the cluster is exactly as before.
 */
int sched_place(struct sched *s, const struct sched_req *req, struct sched_slot *slots);
/* Take a known placement again (the master reloading its state): 0, or
 * ERR_NOFIT if it no longer fits (then nothing is taken). */
int sched_take(struct sched *s, const struct res *r, const struct sched_slot *slots, uint32_t n);
/* Give back what sched_place or sched_take took. */
void sched_release(struct sched *s, const struct res *r, const struct sched_slot *slots,
		   uint32_t n);

/* Why req does not fit now, for people: "needs 8 GPUs on one node; best
 * node has 6 free".  Walks all nodes: for status pages, not the hot path. */
void sched_explain(const struct sched *s, const struct sched_req *req, char *buf, size_t len);

/*
 * THE WORKLOAD MIX.  What tasks this cluster is asked to run, as a small
 * table of task shapes with weights: GPUs per task (share or whole), a
 * CPU class (tasks of one GPU shape are split by the bit length of their
 * CPU cores; each shape keeps the weighted mean CPU and memory of its
 * tasks) and a constraint mask.  A constraint is a GPU model substring
 * and/or a minimum memory per GPU; the mix numbers the distinct ones it has
 * seen (at most SCHED_MIX_CONS) and a shape's mask says which it accepts
 * (any of them; 0 = any GPU).  Policies use the mix to judge what a
 * placement costs the tasks that come next: fgd scores fragmentation against
 * it, binpack and fgd keep the nodes that only constrained shapes can use.
 *
 * Learning: every sched_place() call (placed or not) and every job
 * sched_pass() places adds its tasks, so the mix follows the workload by
 * itself; a caller can add tasks itself (sched_mix_add(), e.g. at
 * submission, or a whole replayed trace) and switch the automatic learning
 * off.  Old tasks fade: a task's weight halves after `halflife' newer ones
 * (SCHED_MIX_HALFLIFE by default; 0 = never).  Adding is O(shapes); when the
 * table is full the lightest shape makes room.  Reading a shape is O(1).
 */
#define SCHED_MIX_MAX 64        /* task shapes */
#define SCHED_MIX_CONS 32       /* distinct constraints (model / GPU memory) */
#define SCHED_MIX_HALFLIFE 5000 /* tasks */

struct sched_shape {
	uint32_t gpus_milli; /* 0, a share, or whole GPUs */
	uint32_t cpu_milli;  /* weighted mean of its tasks */
	uint64_t mem;        /* weighted mean, bytes */
	uint32_t cons;       /* constraint mask, 0 = any GPU */
	double share;        /* of all weight: 0..1, the shares add up to 1 */
};

/* Add weight tasks (usually 1 or a gang's size) of shape r.  models: the
 * GPU model substrings the tasks accept (any of them; nmodels 0 = any
 * model); r->gpu_mem is kept as a constraint too.  Tasks without GPUs keep
 * no constraint.  Models beyond SCHED_MIX_CONS distinct constraints are
 * dropped from the mask (the shape then looks less constrained). */
void sched_mix_add(struct sched *s, const struct res *r, const char *const *models,
		   uint32_t nmodels, double weight);
/* Forget every shape (constraint numbering is kept). */
void sched_mix_clear(struct sched *s);
/* Half-life in tasks (0 = no decay), and whether placements feed the mix
 * (default true). */
void sched_mix_config(struct sched *s, double halflife, bool learn);
/* The shapes: i < sched_mix_len(s); the pointer is valid until the next
 * change of the mix.  share is filled in by the call. */
uint32_t sched_mix_len(const struct sched *s);
const struct sched_shape *sched_mix_at(struct sched *s, uint32_t i);
/* Which of the mix's constraints node n satisfies (every card carries the
 * model and has the memory), as a mask; cached on the node.  A shape with
 * mask m may use n iff m == 0 or (m & mask) != 0. */
uint32_t sched_mix_node_mask(struct sched *s, struct sched_node *n);
/* How much of the mix (0..1) only some nodes can serve and n is one of
 * them: the summed share of constrained GPU shapes that may use n.  A task
 * that accepts any GPU should prefer nodes where this is low. */
double sched_mix_reserved(struct sched *s, struct sched_node *n);

/* fgd's fragmentation score (plugins/sched/fgd/fgd.c explains it), for
 * tests and status pages.  sched_fgd_frag: node n's expected fragmentation
 * under the mix now, in milli-GPUs.  sched_fgd_delta: how much it would grow
 * (negative: shrink) if one task of req went on n, in *delta; ERR_NOFIT
 * when the task does not fit n. */
double sched_fgd_frag(struct sched *s, struct sched_node *n);
int sched_fgd_delta(struct sched *s, struct sched_node *n, const struct sched_req *req,
		    double *delta);

/* ---- the queue: ordering, reservation, backfill, preemption ---- */

/* A job as the queue pass sees it. */
struct sched_job {
	struct sched_req req; /* pending: what to place now */
	uint64_t order;       /* submission order: smaller goes first */
	bool may_preempt;     /* false while its earlier victims are still stopping */
	/* Running jobs: what they hold (nslots tasks of req.res each).  Only
	 * jobs handed in as "running" are preemption candidates. */
	const struct sched_slot *held;
	uint32_t nheld;
	const struct res *held_res; /* nheld: what each slot holds; NULL = req.res */
	/* Best effort (a gang's optional tasks): placed when it fits now, else
	 * it waits, never holding the reservation or preempting. */
	bool best_effort;
	void *user;           /* for the caller */
	/* Team queues (TEAM QUEUES below; ignored while none are set):
	 * queue is 1 + its index in the sched_quota, 0 = no queue; share is
	 * its queue's fair-share value, lower goes first among jobs of equal
	 * priority (0 for jobs without a queue). */
	uint32_t queue;
	double share;
};

enum sched_action_type {
	SCHED_PLACED,  /* job placed: slots[0..req.ntasks) taken */
	SCHED_PREEMPT, /* stop every task of job (whole job) for for_job */
	SCHED_WAIT,    /* job stays pending; reason says why */
};

struct sched_action {
	enum sched_action_type type;
	struct sched_job *job;
	struct sched_job *for_job;     /* SCHED_PREEMPT */
	const struct sched_slot *slots; /* SCHED_PLACED; valid during the callback */
	char reason[SCHED_REASON_LEN]; /* SCHED_WAIT, SCHED_PREEMPT */
};

typedef void (*sched_emit_fn)(void *arg, const struct sched_action *a);

/*
 * One pass over the queue.  pending jobs are tried highest priority first,
 * then by share (team queues), then by order.  A job that fits is placed
 * (SCHED_PLACED).  The first job
 * that does not fit but could on an empty cluster gets a reservation: a set
 * of nodes that could hold its tasks, chosen to need the least waiting, that
 * no other job may use (nodes keep reserved_for across passes while that
 * job stays at the head).  Jobs behind it still place on the other nodes
 * (backfill), which cannot delay it.  A job that does not fit and may_preempt
 * looks for victims among running jobs of strictly lower priority (and, with
 * team queues, among borrowers: TEAM QUEUES below): the fewest,
 * lowest-priority whole jobs whose release makes it fit; none are
 * chosen unless it then fits.  Victims are emitted as SCHED_PREEMPT (their
 * resources stay taken until the caller releases them as their tasks stop),
 * and the job gets a reservation on the nodes they free.  Every job left
 * pending gets one SCHED_WAIT with a reason.  Returns the number placed.
 *
 * Details: there is at most one reservation, held by the first blocked job
 * that could fit on an empty cluster; a job that could not gets a WAIT
 * saying so and no reservation.  A job that fits only if reserved nodes are
 * counted waits "behind job J's reservation" and does not preempt.  Later
 * blocked jobs may still preempt (at most 16 victim searches per pass), but
 * only the reservation holder gets the nodes its victims free reserved.  A
 * running job chosen as a victim is neither chosen again nor placed in the
 * same pass.  The pass is deterministic: same state and inputs, same
 * actions in the same order.  emit must not change s (no sched_place(),
 * sched_release() or node changes from inside it): apply PREEMPT by
 * releasing the victims after sched_pass() returns.
 */
int sched_pass(struct sched *s, struct sched_job **pending, size_t npending,
	       struct sched_job **running, size_t nrunning, sched_emit_fn emit, void *arg);

/*
 * TEAM QUEUES.  Teams submit into queues, each with a GPU quota.  A queue's
 * running jobs hold its quota first; a queue that may borrow goes beyond it
 * onto GPUs that no one else's quota needs now (an owner's unused quota not
 * asked for by its own pending jobs, and capacity outside every quota); an
 * owner gets borrowed GPUs back by preemption.  With a sched_quota set,
 * sched_pass() does three things more:
 *  - the gate: before a job is tried, sched_quota_admit() decides whether
 *    its queue may hold its GPUs; when not, the job waits with the reason
 *    (its queue, the quota, what could be borrowed) and is not tried;
 *  - reclaim: a job whose queue stays within its quota with it may preempt
 *    jobs of other queues that are over their quotas (borrowers), whatever
 *    their priority, besides the usual lower-priority victims;
 *  - order: among jobs of equal priority, lower sched_job.share first.
 * The pass charges each placed job to its queue (used grows), so a queue
 * cannot run past its quota within one pass.  Costs: O(pending) at the start
 * of a pass, O(queues) per gated job.  GPU amounts are milli-GPUs, as in
 * struct res.  Without a sched_quota (the default) nothing of this runs.
 */
#define SCHED_QUEUES_MAX 64

struct sched_queue {
	const char *name;  /* for reasons */
	uint64_t quota;    /* milli-GPUs */
	bool borrow;       /* may hold more than quota on idle GPUs */
	uint64_t used;     /* milli-GPUs its running jobs hold: the caller sets
			    * it before a pass, the pass adds what it places */
	uint64_t want;     /* set by the pass: milli-GPUs its pending jobs ask
			    * that fit within its quota (not lent to others) */
};

struct sched_quota {
	struct sched_queue *q; /* queue i (sched_job.queue i + 1) is q[i] */
	uint32_t n;
	uint64_t pool;         /* milli-GPUs of capacity outside every quota */
	uint64_t gen;          /* bumped by every change the pass makes */
};

/* Gate the next passes with q (NULL: no queues).  q must stay valid while
 * set; the pass changes its used and want fields. */
void sched_quota_set(struct sched *s, struct sched_quota *q);
/* The milli-GPUs a job of req asks in one step (tasks times GPUs each). */
uint64_t sched_req_gpus(const struct sched_req *req);
/* May queue (1-based) hold need more milli-GPUs?  0: within its quota;
 * 1: by borrowing; ERR_NOFIT: not now, with the reason in why ("queue
 * research is at its quota: ...").  Queue 0 (none) is always 0. */
int sched_quota_admit(const struct sched_quota *q, uint32_t queue, uint64_t need, char *why,
		      size_t len);
/* How many milli-GPUs borrowers may hold in all: capacity outside quotas
 * plus every queue's quota that is neither used nor wanted (except queue
 * `except`, 1-based, 0 = none). */
uint64_t sched_quota_lendable(const struct sched_quota *q, uint32_t except);
/* May a job of queue claimant needing need milli-GPUs preempt a job of
 * queue victim to take back quota?  True when claimant stays within its
 * quota with the job and victim is another queue over its quota. */
bool sched_quota_reclaims(const struct sched_quota *q, uint32_t claimant, uint64_t need,
			  uint32_t victim);
/* Queue (1-based) now holds gpus more milli-GPUs (a placement). */
void sched_quota_charge(struct sched_quota *q, uint32_t queue, uint64_t gpus);

/* Fair share.  Usage is GPU-hours that decay exponentially with a
 * half-life.  sched_share_advance: usage after dt_s seconds during which
 * the queue held rate GPUs (exact integral of the decaying rate; half_life_s
 * 0 = no decay).  sched_share_value: usage / weight, what orders queues
 * (weight <= 0 counts as a tiny weight: the queue goes last). */
double sched_share_advance(double usage, double rate, double dt_s, double half_life_s);
double sched_share_value(double usage, double weight);

/* Drop every reservation (e.g. when the reserved job was cancelled): those
 * of job, or of every job when job is 0. */
void sched_unreserve(struct sched *s, uint64_t job);
/* The job holding the reservation after the last pass, 0 if none. */
uint64_t sched_reserved_job(const struct sched *s);

#endif
