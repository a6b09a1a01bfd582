/*
 * master.h - the master's in-memory model and the pieces of its one thread.
 *
 * Threading: everything here is owned by the master's main thread (main.c's
 * loop).  nng does its I/O on its own threads but hands every message to that
 * loop through the sockets' receive queues; no lock exists.
 *
 * Durability: a turn of the loop reads every queued message, changes the
 * model, writes what changed to the store in one transaction, commits, and
 * only then sends the replies and orders the turn produced (struct outbox).
 * So nothing is acknowledged or acted on before it is on disk.
 */
#ifndef MLSCHED_MASTER_H
#define MLSCHED_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <nng/nng.h>
#include <cjson/cJSON.h>

#include "net.h"
#include "seal.h"
#include "res.h"
#include "spec.h"
#include "sched/sched.h"
#include "store/store.h"
#include "serve.h"
#include "metrics.h"
#include "queues.h"
#include "bounds.h"

#define NODE_NAME_MAX 63
#define REASON_MAX 256
#define LOG_CHUNK_MAX (64 * 1024)
#define TASK_RUNS_KEPT 8 /* attempts whose node a task remembers */
#define NODE_REVOKED_MAX 16 /* revoked agent keys a node record keeps */

enum job_state { JOB_PENDING = 0, JOB_PLACING, JOB_RUNNING, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED };
enum task_state {
	TASK_NONE = 0, /* not placed yet (job pending) */
	TASK_ASSIGNED, /* placed; start order queued for the agent */
	TASK_STARTING, /* the agent took the order */
	TASK_RUNNING,
	TASK_EXITED,   /* exit_code / signal say how */
	TASK_FAILED,   /* could not start (runc error, bad image): reason says */
	TASK_LOST,     /* its node stopped answering, or forgot it */
	TASK_KILLED,   /* stopped on request */
};
enum node_state { NODE_READY = 0, NODE_LOST };
/* Serve tasks: a serving replica is an endpoint while healthy; a standby is
 * started and probed but kept out of the endpoints until it is promoted. */
enum task_role { ROLE_NONE = 0, ROLE_SERVING, ROLE_STANDBY };
/* What the agent's probe says (HEALTH_NONE: the job has no health check). */
enum task_health { HEALTH_NONE = 0, HEALTH_UNKNOWN, HEALTH_OK, HEALTH_BAD };

#define PORTS_DEFAULT_LO 20000
#define PORTS_DEFAULT_HI 29999

struct task {
	uint32_t idx;
	enum task_state state;
	char node[NODE_NAME_MAX + 1];
	uint32_t gpu_pos[RES_MAX_GPUS]; /* positions in the node's gpu array */
	uint32_t ngpus;
	int exit_code;  /* valid in TASK_EXITED */
	int signal;     /* non-zero: killed by this signal */
	char reason[REASON_MAX];
	uint64_t started, finished; /* wall ms */
	bool stop_sent;
	bool requeue;   /* preempted or evicted: back to TASK_NONE when it stops */
	uint32_t attempt; /* how many times it was requeued; events name it */
	bool restarted;   /* requeued by the job's restart policy */
	bool rescheduled; /* requeued because its node was lost */
	bool rolled;      /* requeued to run another version (serve rollouts) */
	bool retire;      /* stopped for good (scaled down): never requeued */
	uint32_t port;    /* from its node's port range while placed, 0 = none */
	uint8_t role;     /* enum task_role */
	uint8_t health;   /* enum task_health */
	uint32_t version; /* serve: the job version it runs */
	char health_why[REASON_MAX]; /* the probe's last failure */
	uint64_t health_at;          /* wall ms of the last health change */
	uint64_t stored_hash;        /* of the record last written, 0 = unknown */
	uint32_t node_pos;           /* its slot in its node's task list while live */
	/* Its latest runs (attempt, node), newest last: where each attempt's
	 * log is (mlctl logs --attempt). */
	struct {
		uint32_t attempt;
		char node[NODE_NAME_MAX + 1];
	} runs[TASK_RUNS_KEPT];
	uint32_t nruns;
	/* Not stored: the latest utilization the agent reported. */
	double cpu_pct;
	uint64_t mem_used, cpu_ns_prev, cpu_ns_at;
};

struct job {
	uint64_t id;
	struct spec *spec;
	enum job_state state;
	char reason[REASON_MAX];
	uint64_t submitted, finished; /* wall ms */
	uint64_t first_running; /* wall ms it first ran whole (not stored) */
	bool cancel;     /* cancel requested: stop tasks, end as cancelled */
	uint32_t preemptions;  /* times it was preempted or evicted and requeued */
	char last_requeue[REASON_MAX]; /* why, the last time */
	uint32_t restarts;     /* restarts under restart: (of restart.max) */
	char last_restart[REASON_MAX];
	uint32_t reschedules;  /* times work lost with a node was moved */
	char last_reschedule[REASON_MAX];
	struct serve *serve;   /* kind serve only (serve.h) */
	char request_id[40];   /* the client's id of the submission, "" = none */
	uint64_t preempted_by; /* job whose placement is waiting on this one, 0 = none */
	uint32_t victims;      /* jobs still stopping so that this one can place */
	bool dirty;      /* in m->dirty: must be written in this turn */
	uint64_t stored_hash; /* of the job record last written, 0 = unknown */
	size_t live_pos; /* position in m->live while not finished */
	uint32_t ntasks;
	struct task *tasks;
};

/* A live task of some job, as a node lists it (task arrays move when a
 * serve job grows, so not a pointer to the task). */
struct node_task {
	struct job *j;
	uint32_t idx;
};

struct node {
	char name[NODE_NAME_MAX + 1];
	enum node_state state;
	bool confirmed;         /* its agent spoke to this master process */
	bool drained;           /* no new tasks (mlctl drain) */
	char address[64];       /* where peers reach it (MASTER_ADDR) */
	struct res_node cap;    /* capacity as the agent reports it (used fields 0) */
	struct sched_node *sn;  /* the scheduler's copy: allocations live here */
	uint32_t port_lo, port_hi; /* the agent's --ports range */
	char gpu_error[REASON_MAX]; /* what NVML reports wrong: no new work while set */
	uint32_t port_next;     /* where the next port search starts */
	cJSON *labels;          /* object, owned */
	uint64_t registered;    /* wall ms */
	bool has_pk;            /* the agent key that joined as this node */
	uint8_t pk[SEAL_PK_LEN];
	/* mlctl nodes remove: the node is out (state lost, listed "removed")
	 * and the agent keys removed under its name are refused for good
	 * (agents_remove): owned array, newest last, at most NODE_REVOKED_MAX
	 * (the oldest goes first). */
	bool removed;
	uint8_t (*revoked)[SEAL_PK_LEN];
	uint32_t nrevoked;
	bool dirty;
	/* Session (not stored). */
	uint64_t last_seen;     /* monotonic ms */
	char boot[40];          /* the agent process we talk to */
	bool poll_held;         /* a SYNC request is waiting for orders */
	uint32_t pipe;          /* connection of its latest SYNC */
	uint64_t closed_at;     /* monotonic ms that connection closed, 0 = open */
	struct net_peer poll;
	uint64_t order_seq;     /* last order seq issued */
	uint64_t order_acked;   /* agent has processed orders <= this */
	cJSON *orders;          /* array of orders not yet acked */
	uint64_t event_acked;   /* we have processed events <= this */
	double cpu_pct;
	uint64_t mem_used;
	cJSON *gpu_util;        /* array, owned, may be NULL */
	/* Its live tasks (assigned, starting, running), so that a heartbeat
	 * or a node loss costs what the node runs, not the cluster. */
	struct node_task *tasks;
	uint32_t ntasks, cap_tasks;
};

/* A log request relayed to an agent; the mlctl request waits on it. */
struct logreq {
	uint64_t id;
	struct net_peer peer;
	uint64_t deadline; /* monotonic ms */
	char node[NODE_NAME_MAX + 1];
	struct logreq *next;
};

/* A reply or order to send once the turn's writes are committed. */
struct outmsg {
	nng_socket sock;
	struct net_peer peer;
	uint16_t type;
	cJSON *body;
	struct outmsg *next;
};

struct master_cfg {
	const char *state_dir;
	const char *listen;
	const char *agent_listen;
	const char *store_uri;
	const char *store_prefix; /* etcd: --store-prefix */
	uint64_t node_timeout_ms;
	uint64_t grace_ms;       /* default stop grace */
	const char *sched_policy; /* default policy name, NULL = per kind */
	const char *plugin_dir;   /* extra placement policies (*.so) */
	const char *endpoints_dir; /* DIR/JOB.json per serve job, NULL = none */
	const char *metrics_listen; /* HOST:PORT for Prometheus, NULL = off */
	uint64_t lease_ttl_ms;     /* HA: the leader lease */
	const char *advertise_client, *advertise_agents; /* HA: URLs others are told */
	bool insecure;
	const char *pools_file; /* --pools: node pools and bursting (pools.h) */
	const char *queues_file; /* --queues: team queues (queues.h), NULL = none */
	/* Limits at the edge (guard.c, docs/limits.md); 0 = none. */
	uint64_t max_conns, max_agent_conns;   /* connections per listener */
	uint64_t rate_limit, agent_rate_limit; /* requests a second per peer */
};

struct master {
	struct master_cfg cfg;
	/* Identity (keys.c); unused with --insecure. */
	struct seal_key key;
	struct seal_ctx *seal;
	uint8_t join_secret[SEAL_SECRET_LEN];
	uint8_t (*admins)[SEAL_PK_LEN];
	size_t nadmins;
	struct keys_files *keyfiles; /* keys.c: the files loaded, to notice changes */
	struct store *store;
	struct sched *core;
	struct pools *pools; /* --pools, NULL without (pools.h) */
	struct queues *queues; /* --queues (queues.h), NULL = none */
	nng_socket ctl, agents;
	char boot[40];
	uint64_t next_job_id;
	uint64_t stored_next_id; /* what the store holds */
	/* Jobs in id order (ids only grow, so appending keeps the order). */
	struct job **jobs;
	size_t njobs, cap_jobs;
	/* Jobs not finished, in no order: what every per-turn and
	 * per-heartbeat walk looks at, however long the history grows. */
	struct job **live;
	size_t nlive, cap_live;
	/* Serve jobs not known to have ended: what serve_tick walks each
	 * turn (autoscaling, rollout deadlines), instead of every live job. */
	struct job **serving;
	size_t nserving, cap_serving;
	/* Jobs changed in this turn (written by state_flush). */
	struct job **dirty;
	size_t ndirty, cap_dirty;
	struct node **nodes;
	size_t nnodes, cap_nodes;
	/* Name -> node (open addressing, power-of-two size, never shrinks:
	 * nodes are not removed), and scheduler node id -> node. */
	struct node **node_index;
	size_t index_cap;
	struct node **node_by_id;
	size_t by_id_cap;
	/* Job name -> the newest job of that name, and a submission's
	 * request id -> its job (open addressing, at most half full). */
	struct job **by_name, **by_rid;
	size_t by_name_cap, by_rid_cap, by_name_n, by_rid_n;
	bool sched_dirty;     /* something changed that may let a job place */
	struct logreq *logreqs;
	uint64_t next_logreq;
	struct outmsg *out_head, **out_tail;
	uint64_t seq;
	/* guard.c: request rates per peer, one table per socket. */
	struct {
		struct bounds_rate *clients, *agents;
		uint64_t refused, logged_at;
	} guard;
	/* Counters and histograms for --metrics-listen (telemetry.c). */
	struct {
		uint64_t submitted, placements, preemptions, node_losses, restarts, reschedules,
			promotions, health_failures, store_failures;
		struct metrics_histo sched_pass, submit_to_running, store_commit;
		struct metrics_server *server;
	} stats;
	/* HA (leader.c); with sqlite, on = false and leading = true. */
	struct {
		bool on;           /* the store elects a leader */
		bool leading;
		int64_t lease;
		uint64_t lease_ok_at;   /* monotonic ms the last good keepalive was sent */
		uint64_t next_campaign; /* monotonic ms */
		char *record;      /* our value for the leader key */
		char *ctl_url, *agent_url; /* the leader's, when known */
		char seen[64];     /* the leader id last logged */
		/* Follower: a model loaded from the store, kept current by
		 * a watch (reloaded when it reports changes). */
		bool loaded, stale, watching;
		int64_t watch_from;     /* revision the watch started after */
		uint64_t next_reload;   /* monotonic ms */
		uint64_t reload_ms;     /* how long the last load took */
		/* sqlite: the store refused a commit (disk full, read-only):
		 * reads only, from the committed state, until a probe write
		 * succeeds (leader_store_failed). */
		bool degraded;
		char degraded_why[REASON_MAX];
		uint64_t next_probe;    /* monotonic ms */
		uint64_t probe_ms;      /* the wait before the next one */
	} ha;
};

/* state.c: the model and its persistence. */
const char *job_state_str(enum job_state s);
const char *task_state_str(enum task_state s);
bool job_terminal(enum job_state s);
bool task_terminal(enum task_state s);
struct job *job_find(struct master *m, const char *ref); /* id or name */
/* Mark j to be written at the end of this turn. */
void job_dirty(struct master *m, struct job *j);
struct job *job_by_id(struct master *m, uint64_t id);
/* The job a submission with this request id made, or NULL. */
struct job *job_by_request(struct master *m, const char *rid);
/* Index j under its name and request id (job_create and loading do). */
void job_index(struct master *m, struct job *j);
struct node *node_find(struct master *m, const char *name);
struct node *node_add(struct master *m, const char *name);
/* The node the scheduler core knows as id, or NULL. */
struct node *node_by_sched_id(struct master *m, uint32_t id);
/* Record that n's core node is sn (sched_sync_node). */
void node_set_sched(struct master *m, struct node *n, struct sched_node *sn);
/* t (of j) became live on its node t->node / stopped being live there. */
void node_task_add(struct master *m, struct job *j, struct task *t);
void node_task_del(struct master *m, struct job *j, struct task *t);
/* A copy of n's live tasks (caller frees), for walks that may change it. */
struct node_task *node_tasks_copy(const struct node *n, uint32_t *count);
/* Create a job from a validated spec (takes ownership of spec). */
struct job *job_create(struct master *m, struct spec *spec);
/* Recompute the job's state from its tasks; queue stop orders when the job
 * failed or is being cancelled. */
void job_update(struct master *m, struct job *j);
/* What one task of j asks for: its role's resources (roles:), else the
 * job's.  Valid while j's spec is. */
const struct res *task_res(const struct job *j, const struct task *t);
/* t belongs to an optional role (roles: ... optional: true): it is placed
 * after the gang, on its own, when it fits (sched.c), and the job's
 * success does not wait for it (job_update). */
bool task_optional(const struct job *j, const struct task *t);
/* Record that t's current attempt was placed on t->node (runs). */
void task_ran(struct task *t);
/* Give a task's resources back to its node (if any) and mark it terminal. */
void task_finish(struct master *m, struct job *j, struct task *t, enum task_state st);
int state_load(struct master *m);
/* Forget every job, node and unsent message (see state.c). */
void state_reset(struct master *m);
/* Write dirty jobs and nodes and the next id in one transaction (none when
 * nothing changed). */
int state_flush(struct master *m);
/* Nothing in memory waits for a commit: the model is what the store holds,
 * so any reply queued now acknowledges only committed state.  O(nodes). */
bool state_clean(const struct master *m);
cJSON *job_to_json(const struct master *m, const struct job *j, bool full);
cJSON *node_to_json(const struct node *n, bool full);

/* sched.c: drives the scheduler core (plugins/sched) from the job model. */
/* One queue pass: place what fits, reserve, preempt; returns placed count. */
int sched_run(struct master *m);
/* Mirror a node into the core (new node, capacity or label change). */
void sched_sync_node(struct master *m, struct node *n);
/* Is the node schedulable (ready and not drained)?  Tells the core. */
void sched_node_state(struct master *m, struct node *n);
/* Give back a task's resources to the core. */
void sched_task_release(struct master *m, struct job *j, struct task *t);
/* The placement policy for a job, NULL if its name is unknown. */
const struct sched_policy *sched_job_policy(struct master *m, const struct spec *s);

/* ports.c: ports for tasks from their node's range (see ports.c). */
/* The node's range (the default when its agent did not say). */
void ports_range(const struct node *n, uint32_t *lo, uint32_t *hi);
/* A port no live task on n holds, or 0 when the range is full. */
uint32_t ports_take(struct master *m, struct node *n);

/* agents.c */
void agents_handle(struct master *m, const struct net_peer *peer, const struct wire_hdr *h,
		   cJSON *body);
/* Queue an order for a node (takes ownership of order) and wake its poll. */
void agents_order(struct master *m, struct node *n, cJSON *order);
void agents_order_start(struct master *m, struct job *j, struct task *t);
void agents_order_stop(struct master *m, struct job *j, struct task *t);
/* Answer held polls that have orders; mark silent nodes lost. */
void agents_tick(struct master *m);
/* mlctl nodes remove: revoke n's agent key and move its work away as for a
 * lost node; returns how many of its tasks were live there. */
uint32_t agents_remove(struct master *m, struct node *n);
/* Add pk to n's revoked keys (dropping the oldest beyond NODE_REVOKED_MAX). */
void node_revoke_key(struct node *n, const uint8_t *pk);
/* An agent connection closed (pipe id from net_watch_closed). */
void agents_closed(struct master *m, uint32_t pipe);

/* api.c */
void api_handle(struct master *m, const struct net_peer *peer, const struct wire_hdr *h,
		cJSON *body);
/* A log chunk came back from an agent. */
void api_log_reply(struct master *m, uint64_t req, cJSON *event);
/* Fail log requests whose agent did not answer in time. */
void api_tick(struct master *m);

/* leader.c: HA masters (see leader.c).  Without leases in the store
 * (sqlite) the master leads from the start. */
/* Decide whether the store elects (etcd); 0 or a store error. */
int leader_init(struct master *m);
/* Per turn, first: renew the lease, or campaign (and on winning, load the
 * state). */
void leader_tick(struct master *m);
/* Leading, with a lease provably alive?  Steps down (forgetting the model
 * and this turn's messages) when not. */
bool leader_valid(struct master *m);
/* A follower with a warm model answers this request type itself? */
bool leader_follower_reads(const struct master *m, uint16_t type);
/* A follower's answer: ERR_NOTLEADER with the leader's URLs (ERR_STORE and
 * its reason while the store cannot be written). */
void leader_refuse(struct master *m, nng_socket sock, const struct net_peer *peer, bool agents);
/* Give the lease back (clean shutdown). */
void leader_resign(struct master *m);
/*
 * A single master's (sqlite) commit failed: the disk is full, the file
 * system read-only, or the file unwritable.  Nothing of the turn was
 * acknowledged: its orders are dropped, its replies become refusals, and
 * the model is loaded again from what was committed.  Until a probe write
 * succeeds (after 0.5 s, backing off to every 4 s; leader_tick), the master
 * answers the read-only requests from that model and refuses everything
 * else, agents included, with the store's reason; then it takes work again
 * by itself.  Exits only when even the reload fails.
 */
void leader_store_failed(struct master *m, int rv);

/* telemetry.c: the master's Prometheus metrics. */
/* Start serving --metrics-listen (when set); 0 or an error with why. */
int telemetry_start(struct master *m, char *why, size_t whylen);
/* Answer scrapes waiting (every turn). */
void telemetry_serve(struct master *m);
void telemetry_stop(struct master *m);
/* A GPU's utilization as node n's agent last reported it, -1 if unknown. */
int telemetry_gpu_util(const struct node *n, uint32_t index);

/* keys.c */
/* Create what is missing of the master's key files in dir (see keys.c);
 * print_token prints the join token. */
int keys_init(const char *dir, bool print_token, char *why, size_t whylen);
/* A new join secret for master key mk in dir/join.token (0600 from the
 * start, atomic); token gets the token text.  0 or an error with why. */
int keys_token_new(const char *dir, const struct seal_key *mk, char token[SEAL_TOKEN_LEN],
		   char *why, size_t whylen);
/* Load the key, join secret and admin list; makes m->seal and
 * m->keyfiles (keys_free frees it). */
int keys_load(struct master *m, char *why, size_t whylen);
void keys_free(struct master *m);
/* Reload join.token (KEYS_TOKEN) and/or admins (KEYS_ADMINS) when they
 * changed on disk (a stat each); a file that no longer loads fails closed
 * (see keys.c).  No-op without keys (--insecure). */
#define KEYS_TOKEN 1u
#define KEYS_ADMINS 2u
void keys_refresh(struct master *m, unsigned which);
/* Does token (may be NULL) carry this master's current join secret?  false
 * with the reason for the agent in why. */
bool keys_join_ok(const struct master *m, const char *token, char *why, size_t whylen);
/* Why the admins file could not be reloaded, or NULL when it was. */
const char *keys_admins_error(const struct master *m);
bool keys_is_admin(const struct master *m, const uint8_t *pk);

/* keyscmd.c: `mlmaster init | token [--rotate] | admin ...` (files only). */
bool keys_is_command(const char *verb);
/* Run the command argv[0..nargs-1] on state folder dir; the exit status. */
int keys_command(const char *dir, int nargs, char **argv, bool rotate);
/* guard.c: limits checked before a request reaches a handler. */
/* Make the rate tables and cap the listeners' connections (from cfg). */
void guard_init(struct master *m);
void guard_free(struct master *m);
/* May this request go on?  False: over its peer's rate or a size limit, and
 * an error naming the limit is queued as its reply. */
bool guard_admit(struct master *m, nng_socket s, const struct net_peer *peer,
		 const struct wire_hdr *h, bool agents);
/* Answer a frame refused for its size (why from net_recv_raw). */
void guard_refuse_frame(struct master *m, nng_socket s, const struct net_peer *peer, bool agents,
			const char *why);

/* main.c */
void out_reply(struct master *m, nng_socket sock, const struct net_peer *peer, uint16_t type,
	       cJSON *body);

#endif
