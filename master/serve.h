/*
 * serve.h - serve jobs: roles, health, promotion, endpoints, scaling,
 * autoscaling, versions and rollouts.
 *
 * A serve job's tasks are interchangeable slots.  Each has a role: serving
 * (an endpoint while it runs and its probe says healthy) or standby
 * (started and probed like a replica, kept out of the endpoints).  The
 * master wants `replicas` serving and `standby` standby slots, both moved by
 * `mlctl scale` and the autoscaler; slots are added at the end of the task
 * array and retired from the end, so a task's index never changes while it
 * lives.
 *
 * serve_reconcile() is the whole policy, run from job_update() whenever a
 * serve job changes, so it acts in the same turn as the event that called
 * for it:
 *   - a serving slot that is down (exited, lost, unhealthy, stopping) swaps
 *     roles with a ready standby at once: promotion is one state change, no
 *     container start on the critical path; the failed slot restarts (under
 *     restart:) as the new standby;
 *   - role counts are brought to `replicas` serving, the rest standby;
 *   - slots past replicas + standby (+1 during a rollout that needs room)
 *     are retired: stopped for good, neither a success nor a failure;
 *   - a rollout moves one slot at a time to the new version: a standby of
 *     the new version becomes ready, then swaps roles with an old serving
 *     slot, which is restarted at the new version as the next standby; so
 *     serving capacity never drops below `replicas`.  A slot of the new
 *     version that is not ready within rollout.deadline rolls the job back
 *     to the version it came from, the same way.
 * Cost: O(tasks of that job) per call.
 *
 * Versions: every change of image, command or env makes a new version,
 * kept with the job (the spec of each, when, by which key).  j->spec is the
 * spec of the version wanted now; tasks name the version they run.
 *
 * Endpoints: `mlctl endpoints`, and with --endpoints-dir a file DIR/NAME.json
 * per serve job, rewritten atomically after the turn that changed it was
 * committed (serve_publish).
 */
#ifndef MLSCHED_SERVE_H
#define MLSCHED_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define SERVE_PROMOTIONS_KEPT 20
#define SERVE_HISTORY_KEPT 100
#define SERVE_VERSIONS_KEPT 100
#define SERVE_SAMPLES 256
#define SERVE_BY_LEN 64

struct master;
struct job;
struct task;
struct spec;

struct serve_version {
	uint32_t version;
	struct spec *spec; /* owned, except the one that is j->spec's */
	uint64_t at;       /* wall ms */
	char by[SERVE_BY_LEN];
};

/* A promotion, a scaling decision, a rollout step: what `mlctl status` and
 * `mlctl history` show. */
struct serve_event {
	uint64_t at;
	char what[256];
};

struct serve {
	uint32_t replicas, standby; /* wanted now */
	uint32_t version;           /* wanted now: j->spec is its spec */
	struct serve_version *versions;
	size_t nversions;
	/* Promotions (newest last, the last SERVE_PROMOTIONS_KEPT) and their
	 * total count. */
	struct serve_event promos[SERVE_PROMOTIONS_KEPT];
	uint32_t npromos;
	uint32_t health_failures; /* replicas replaced for failing their probe */
	struct serve_event history[SERVE_HISTORY_KEPT]; /* versions, rollouts, scaling */
	uint32_t nhistory;
	struct {
		bool active;
		bool automatic; /* a rollback the master started itself */
		bool surge;     /* one slot more than replicas + standby */
		uint32_t from, to;
		uint64_t started, step_at; /* wall ms */
	} rollout;
	char rollout_result[256];
	/* Autoscaling. */
	uint64_t last_scale_at; /* wall ms */
	char last_scale[256];
	/* Not stored: utilization samples (monotonic ms, percent). */
	struct {
		uint64_t at;
		double pct;
	} samples[SERVE_SAMPLES];
	uint32_t nsamples, sample_head;
	uint64_t next_sample;
	char *endpoints;      /* the endpoint list last published (JSON text) */
	bool publish;         /* endpoints changed: write the file after commit */
};

/* Set up j->serve: from the stored record rec, or for a new job (rec NULL:
 * version 1, roles assigned).  0 or ERR_STORE. */
int serve_init(struct master *m, struct job *j, const cJSON *rec);
void serve_free(struct job *j);
/* The serve part of a job's JSON (store: what the record keeps; full: the
 * lists status shows). */
cJSON *serve_to_json(const struct master *m, const struct job *j, bool full, bool store);
/* The spec a task runs: its version's for serve jobs, else j->spec. */
const struct spec *serve_task_spec(const struct job *j, const struct task *t);
/* The agent's probe changed its verdict on t. */
void serve_health(struct master *m, struct job *j, struct task *t, bool healthy, const char *why,
		  uint64_t at);
/* See the top of this file.  Called by job_update for serve jobs. */
void serve_reconcile(struct master *m, struct job *j);
/* Per turn: autoscaling samples and decisions, rollout deadlines. */
void serve_tick(struct master *m);
/* After the commit: endpoint files of jobs whose endpoints changed. */
void serve_publish(struct master *m);
/* The healthy serving endpoints ("host:port"), a new array. */
cJSON *serve_endpoints(const struct master *m, const struct job *j);

/* Requests (api.c).  Each returns 0, or an error code with a message for
 * the user in why.  by names who asked (an admin key or "insecure"). */
int serve_scale(struct master *m, struct job *j, uint32_t replicas, int64_t standby,
		const char *by, char *why, size_t len);
/* Takes ownership of spec on success. */
int serve_rollout(struct master *m, struct job *j, struct spec *spec, const char *by, char *why,
		  size_t len);
/* to = 0: the version before the current one. */
int serve_rollback(struct master *m, struct job *j, uint32_t to, const char *by, char *why,
		   size_t len);

#endif
