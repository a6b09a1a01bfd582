/*
 * queues.h - team queues in the master (mlmaster --queues FILE): the queues
 * file, each queue's fair-share usage (accounted from running tasks, kept in
 * the store), what a queue pass needs from them, and `mlctl queues`.
 *
 * The file:
 *     queues:
 *       - {name: research, gpus: 8, weight: 2, borrow: true}
 *       - {name: prod, gpus: 16}
 *     fair_share_half_life: 1h     # optional, default 24h
 * name (required, a job-name-like word), gpus (required, whole GPUs >= 0,
 * the quota), weight (> 0, default 1), borrow (default false).  Anything
 * else is refused with the field and line.
 *
 * Jobs: a job names its queue (spec `queue:`).  A job without one goes to
 * the queue named "default" when the file has one and is refused otherwise;
 * a name the file does not have is refused with the list.  Without
 * --queues, a job naming a queue is refused and the rest schedule as
 * before.  A stored job whose queue left the file waits, saying so; a
 * stored job without a queue (from before --queues) schedules outside the
 * quotas.
 *
 * Usage: each queue's GPU-hours, decaying with the half-life, advanced
 * once a second from the GPUs its live tasks hold (sched_share_advance) and
 * written to the store ("queues/NAME") in that turn's transaction whenever
 * it grew.  A restarted master goes on from the stored value and time, so
 * the GPUs held while it was down are counted too.  Everything here runs
 * on the master's one thread (master.h).
 */
#ifndef MLSCHED_MASTER_QUEUES_H
#define MLSCHED_MASTER_QUEUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#include "sched/sched.h"

#define QUEUE_NAME_MAX 63
#define QUEUES_DEFAULT_HALF_LIFE_MS (24ull * 3600 * 1000)
#define QUEUE_GPUS_MAX 1000000u

struct mqueue {
	char name[QUEUE_NAME_MAX + 1];
	uint32_t gpus;     /* quota, whole GPUs */
	double weight;
	bool borrow;
	double usage;      /* decayed GPU-hours as of usage_at */
	uint64_t usage_at; /* wall ms, 0 = never */
	double rate;       /* GPUs held since usage_at (the last tick) */
	bool dirty;        /* usage to be written in this turn */
	/* Derived each second and each pass (not stored). */
	uint64_t used;     /* milli-GPUs its live tasks hold */
	uint32_t pending, running; /* jobs */
	double share;      /* fair-share value at the last queues_prepare */
};

struct queues {
	struct mqueue *q;
	uint32_t n;
	uint64_t half_life_ms;
	uint64_t next_tick; /* monotonic ms */
	bool primed;        /* rates taken since the last load */
	/* The core's view during a pass (queues_prepare). */
	struct sched_queue sq[SCHED_QUEUES_MAX];
	struct sched_quota quota;
};

/* Parse a queues file's text (path for messages).  0 with *out (free with
 * queues_free), or ERR_INVAL with "FILE:LINE: FIELD: reason" in why. */
int queues_parse(const char *path, const char *text, size_t len, struct queues **out, char *why,
		 size_t whylen);
/* Read and parse a queues file: as queues_parse, ERR_IO when unreadable. */
int queues_load_file(const char *path, struct queues **out, char *why, size_t whylen);
void queues_free(struct queues *qs); /* NULL is fine */
/* 1 + the index of the queue called name, 0 when there is none. */
uint32_t queues_find(const struct queues *qs, const char *name);
/* "research, prod" into buf. */
void queues_names(const struct queues *qs, char *buf, size_t len);

struct master;
struct job;
struct spec;
struct net_peer;

/* Submission: check (and default) spec->queue.  0, or ERR_INVAL with the
 * message for the user in why. */
int queues_submit(struct master *m, struct spec *spec, char *why, size_t len);
/* Per turn: once a second, advance every queue's usage. */
void queues_tick(struct master *m);
/* Read the stored usage of the configured queues (state_load). */
int queues_state_load(struct master *m);
/* Something to write in this turn?  And write it (inside state_flush's
 * transaction): 0 or the store's error. */
bool queues_dirty(const struct master *m);
int queues_flush(struct master *m);
/* Before a pass (and before queues_job): each queue's GPUs in use and
 * fair-share value, the capacity outside quotas; returns the quota for
 * sched_quota_set(), NULL without queues. */
struct sched_quota *queues_prepare(struct master *m);
/* A job's queue for the core (sched_job.queue and .share).  Returns false
 * (with the reason in why) when the job names a queue the file lacks: it
 * must wait. */
bool queues_job(struct master *m, const struct job *j, uint32_t *queue, double *share, char *why,
		size_t len);
/* `mlctl queues`: WIRE_QUEUES. */
void queues_api(struct master *m, const struct net_peer *peer, cJSON *body);

#endif
