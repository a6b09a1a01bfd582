/*
 * spread.c - the "spread" placement policy: replicas on different nodes and
 * zones, so that losing one node or one zone loses few of them.
 *
 * For each task it prefers, in order: a node that runs none of this job's
 * tasks (neither the ones in req->avoid nor the ones chosen earlier in this
 * step), a zone (label "zone") with the fewest of this job's tasks, and the
 * most free GPUs.  It reuses a node only when no fresh one fits.
 *
 * Cost.  The buckets are walked downward (most free GPUs first), so the first
 * fresh node in an untouched zone is the best answer and the walk stops
 * there; nodes without a zone label count as an untouched zone.  Otherwise
 * it looks at up to SCAN_MAX fitting nodes and takes the best seen, so one
 * pick is bounded even in a big cluster whose zones all hold tasks.  Each
 * node looked at is checked against avoid[] and placed[] (linear: spread is
 * for replica sets of tens, not for gangs of thousands), and zones are
 * counted once per pick over avoid[] and placed[].  So spread looks at more
 * nodes than binpack, which stops at the first fit.
 */
#include "sched/sched.h"

#include <string.h>

#define SCAN_MAX 512  /* fitting nodes looked at when no perfect one shows up */
#define MAX_ZONES 64  /* zones counted per pick; tasks in more zones count as 0 */

struct zone_count {
	const char *zone;
	uint32_t n;
};

static void count_zone(struct zone_count *zc, uint32_t *nz, const struct sched_node *n)
{
	const char *z = n ? sched_label_get(n, "zone") : NULL;

	if (!z)
		return;
	for (uint32_t i = 0; i < *nz; i++) {
		if (strcmp(zc[i].zone, z) == 0) {
			zc[i].n++;
			return;
		}
	}
	if (*nz < MAX_ZONES) {
		zc[*nz].zone = z;
		zc[*nz].n = 1;
		(*nz)++;
	}
}

static uint32_t zone_tasks(const struct zone_count *zc, uint32_t nz, const struct sched_node *n)
{
	const char *z = sched_label_get(n, "zone");

	if (!z)
		return 0;
	for (uint32_t i = 0; i < nz; i++) {
		if (strcmp(zc[i].zone, z) == 0)
			return zc[i].n;
	}
	return 0;
}

static bool used_by_job(const struct sched_req *req, const struct sched_slot *placed,
			uint32_t nplaced, uint32_t id)
{
	for (uint32_t i = 0; i < req->navoid; i++) {
		if (req->avoid[i] == id)
			return true;
	}
	for (uint32_t i = 0; i < nplaced; i++) {
		if (placed[i].node == id)
			return true;
	}
	return false;
}

/* Best so far: a fresh node first, then the fewest tasks in its zone; the
 * walk order (most free GPUs first) breaks ties. */
struct best {
	struct sched_node *n;
	uint32_t used, zone, seen;
};

/* Consider n; true when the search can stop. */
static bool consider(struct sched *s, const struct sched_req *req, const struct sched_slot *placed,
		     uint32_t nplaced, const struct zone_count *zc, uint32_t nz,
		     struct sched_node *n, struct best *b)
{
	uint32_t used, zone;

	if (!sched_fits(s, n, req, NULL))
		return false;
	used = used_by_job(req, placed, nplaced, n->id) ? 1 : 0;
	zone = zone_tasks(zc, nz, n);
	if (!b->n || used < b->used || (used == b->used && zone < b->zone)) {
		b->n = n;
		b->used = used;
		b->zone = zone;
		if (used == 0 && zone == 0)
			return true;
	}
	return ++b->seen >= SCAN_MAX;
}

static struct sched_node *spread_pick(struct sched *s, const struct sched_req *req,
				      const struct sched_slot *placed, uint32_t nplaced)
{
	struct zone_count zc[MAX_ZONES];
	uint32_t nz = 0, g = res_whole_gpus(&req->res), low;
	bool share = res_is_share(&req->res);
	struct best b = {NULL, 0, 0, 0};

	for (uint32_t i = 0; i < req->navoid; i++)
		count_zone(zc, &nz, sched_node_get(s, req->avoid[i]));
	for (uint32_t i = 0; i < nplaced; i++)
		count_zone(zc, &nz, sched_node_get(s, placed[i].node));

	/* Whole GPUs: buckets down to g.  Shares: down to 1, then the shared
	 * nodes without a free card (bucket 0 holds every full node, which
	 * must not be walked).  No GPUs: every bucket. */
	low = share ? 1 : g;
	for (uint32_t bk = sched_bucket_prev(s, RES_MAX_GPUS); bk != SCHED_NONE && bk >= low;
	     bk = bk ? sched_bucket_prev(s, bk - 1) : SCHED_NONE) {
		uint32_t len = sched_bucket_len(s, bk);

		for (uint32_t i = 0; i < len; i++) {
			if (consider(s, req, placed, nplaced, zc, nz, sched_bucket_at(s, bk, i), &b))
				return b.n;
		}
	}
	if (share) {
		uint32_t len = sched_shared_len(s);

		for (uint32_t i = 0; i < len; i++) {
			struct sched_node *n = sched_shared_at(s, i);

			if (n->bucket == 0 && consider(s, req, placed, nplaced, zc, nz, n, &b))
				return b.n;
		}
	}
	return b.n;
}

const struct sched_policy sched_spread = {
	.version = SCHED_POLICY_VERSION,
	.name = "spread",
	.pick = spread_pick,
};
