/*
 * res.c - resource vectors and placement on one node's GPUs.
 *
 * Placement is first-fit by position for whole GPUs, so a node fills from the
 * low indices and leaves a contiguous high block free for larger jobs.  Shares
 * go best-fit onto cards that are already shared, so whole cards stay whole
 * for the tasks that need them.
 */
#include "res.h"
#include "err.h"

#include <stdio.h>

#define MILLI_PER_GPU 1000u

uint32_t res_whole_gpus(const struct res *r)
{
	return r->gpus_milli >= MILLI_PER_GPU ? r->gpus_milli / MILLI_PER_GPU : 0;
}

bool res_is_share(const struct res *r)
{
	return r->gpus_milli > 0 && r->gpus_milli < MILLI_PER_GPU;
}

int res_check(const struct res *r, char *why, size_t len)
{
	const char *reason = NULL;

	if (r->gpus_milli >= MILLI_PER_GPU && r->gpus_milli % MILLI_PER_GPU != 0)
		reason = "gpus must be a share below 1 or a whole number";
	else if (res_whole_gpus(r) > RES_MAX_GPUS)
		reason = "more GPUs than a node can hold";
	if (!reason)
		return 0;
	if (why && len > 0)
		snprintf(why, len, "%s", reason);
	return ERR_INVAL;
}

static uint64_t sat_add64(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static uint32_t sat_add32(uint32_t a, uint32_t b)
{
	return a + b < a ? UINT32_MAX : a + b;
}

void res_add(struct res *a, const struct res *b)
{
	a->gpus_milli = sat_add32(a->gpus_milli, b->gpus_milli);
	a->mem = sat_add64(a->mem, b->mem);
	a->cpu_milli = sat_add32(a->cpu_milli, b->cpu_milli);
}

void res_sub(struct res *a, const struct res *b)
{
	a->gpus_milli = a->gpus_milli > b->gpus_milli ? a->gpus_milli - b->gpus_milli : 0;
	a->mem = a->mem > b->mem ? a->mem - b->mem : 0;
	a->cpu_milli = a->cpu_milli > b->cpu_milli ? a->cpu_milli - b->cpu_milli : 0;
}

bool res_le(const struct res *a, const struct res *b)
{
	return a->gpus_milli <= b->gpus_milli && a->mem <= b->mem && a->cpu_milli <= b->cpu_milli;
}

static uint32_t node_ngpus(const struct res_node *n)
{
	return n->ngpus > RES_MAX_GPUS ? RES_MAX_GPUS : n->ngpus;
}

static bool gpu_mem_ok(const struct res_gpu *g, uint64_t min_mem)
{
	return min_mem == 0 || g->mem >= min_mem;
}

/* The card a share should go on: the fullest shared card it still fits on
 * (best fit keeps the free room in few large pieces), else the lowest free
 * card.  -1 when none. */
static int pick_share(const struct res_node *n, const struct res *want)
{
	uint32_t ng = node_ngpus(n);
	int best = -1, free_card = -1;

	for (uint32_t i = 0; i < ng; i++) {
		const struct res_gpu *g = &n->gpus[i];

		if (!gpu_mem_ok(g, want->gpu_mem) || g->used_milli >= MILLI_PER_GPU)
			continue;
		if (g->used_milli == 0) {
			if (free_card < 0)
				free_card = (int)i;
			continue;
		}
		if (g->used_milli + want->gpus_milli > MILLI_PER_GPU)
			continue;
		if (best < 0 || g->used_milli > n->gpus[best].used_milli)
			best = (int)i;
	}
	return best >= 0 ? best : free_card;
}

bool res_fit(const struct res_node *n, const struct res *want, uint32_t *idx, uint32_t *nidx)
{
	uint32_t ng = node_ngpus(n), k, got = 0;

	*nidx = 0;
	if (res_check(want, NULL, 0) != 0)
		return false;
	if (n->mem_used > n->mem_total || n->mem_total - n->mem_used < want->mem)
		return false;
	if (n->cpu_used > n->cpu_total || n->cpu_total - n->cpu_used < want->cpu_milli)
		return false;

	if (res_is_share(want)) {
		int i = pick_share(n, want);

		if (i < 0)
			return false;
		idx[0] = (uint32_t)i;
		*nidx = 1;
		return true;
	}

	k = res_whole_gpus(want);
	for (uint32_t i = 0; i < ng && got < k; i++) {
		if (n->gpus[i].used_milli == 0 && gpu_mem_ok(&n->gpus[i], want->gpu_mem))
			idx[got++] = i;
	}
	if (got < k)
		return false;
	*nidx = got;
	return true;
}

/* What one bound card carries for want: the share, or the whole card. */
static uint32_t per_gpu_milli(const struct res *want)
{
	return res_is_share(want) ? want->gpus_milli : MILLI_PER_GPU;
}

void res_take(struct res_node *n, const struct res *want, const uint32_t *idx, uint32_t nidx)
{
	uint32_t m = per_gpu_milli(want);

	for (uint32_t i = 0; i < nidx; i++) {
		struct res_gpu *g;

		if (idx[i] >= node_ngpus(n))
			continue;
		g = &n->gpus[idx[i]];
		g->used_milli += m;
		if (g->used_milli > MILLI_PER_GPU)
			g->used_milli = MILLI_PER_GPU;
	}
	n->mem_used = sat_add64(n->mem_used, want->mem);
	n->cpu_used = sat_add32(n->cpu_used, want->cpu_milli);
}

void res_give(struct res_node *n, const struct res *want, const uint32_t *idx, uint32_t nidx)
{
	uint32_t m = per_gpu_milli(want);

	for (uint32_t i = 0; i < nidx; i++) {
		struct res_gpu *g;

		if (idx[i] >= node_ngpus(n))
			continue;
		g = &n->gpus[idx[i]];
		g->used_milli = g->used_milli > m ? g->used_milli - m : 0;
	}
	n->mem_used = n->mem_used > want->mem ? n->mem_used - want->mem : 0;
	n->cpu_used = n->cpu_used > want->cpu_milli ? n->cpu_used - want->cpu_milli : 0;
}

uint32_t res_free_whole_gpus(const struct res_node *n, uint64_t min_mem)
{
	uint32_t ng = node_ngpus(n), count = 0;

	for (uint32_t i = 0; i < ng; i++) {
		if (n->gpus[i].used_milli == 0 && gpu_mem_ok(&n->gpus[i], min_mem))
			count++;
	}
	return count;
}
