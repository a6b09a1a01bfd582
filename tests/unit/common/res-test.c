/*
 * res-test.c - resource vectors and GPU placement on one node: every
 * dimension must fit, a GPU is never handed out twice, shares pack onto
 * shared cards and never exceed one card, and take/give undo each other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "res.h"

#define GiB (1024ull * 1024 * 1024)

/* A node with ngpus cards of gpu_mem bytes each, 256 GiB and 64 cores. */
static void node_init(struct res_node *n, uint32_t ngpus, uint64_t gpu_mem)
{
	memset(n, 0, sizeof(*n));
	n->ngpus = ngpus;
	for (uint32_t i = 0; i < ngpus; i++) {
		n->gpus[i].index = i;
		n->gpus[i].mem = gpu_mem;
		snprintf(n->gpus[i].model, sizeof(n->gpus[i].model), "fake-%u", i);
	}
	n->mem_total = 256 * GiB;
	n->cpu_total = 64000;
}

static struct res req(uint32_t gpus_milli, uint64_t gpu_mem, uint64_t mem, uint32_t cpu)
{
	struct res r = {.gpus_milli = gpus_milli, .gpu_mem = gpu_mem, .mem = mem, .cpu_milli = cpu};

	return r;
}

static void test_check(void **state)
{
	char why[128];
	struct res r;

	static const uint32_t good[] = {0, 1, 250, 999, 1000, 2000, 64000};
	static const uint32_t bad[] = {1001, 1500, 2500, 65000, 1000000, UINT32_MAX};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		r = req(good[i], 0, 0, 0);
		assert_int_equal(res_check(&r, why, sizeof(why)), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		r = req(bad[i], 0, 0, 0);
		assert_int_equal(res_check(&r, why, sizeof(why)), ERR_INVAL);
		assert_true(strlen(why) > 0);
	}
	r = req(1500, 0, 0, 0);
	assert_int_equal(res_check(&r, NULL, 0), ERR_INVAL);

	r = req(3000, 0, 0, 0);
	assert_int_equal(res_whole_gpus(&r), 3);
	assert_false(res_is_share(&r));
	r = req(250, 0, 0, 0);
	assert_int_equal(res_whole_gpus(&r), 0);
	assert_true(res_is_share(&r));
	r = req(0, 0, 0, 0);
	assert_false(res_is_share(&r));
}

static void test_vector_math(void **state)
{
	struct res a = req(2000, 7, 10 * GiB, 4000), b = req(1000, 9, 4 * GiB, 1000);

	res_add(&a, &b);
	assert_int_equal(a.gpus_milli, 3000);
	assert_true(a.mem == 14 * GiB);
	assert_int_equal(a.cpu_milli, 5000);
	assert_true(a.gpu_mem == 7);
	assert_true(res_le(&b, &a));
	assert_false(res_le(&a, &b));

	res_sub(&a, &b);
	res_sub(&a, &b);
	assert_int_equal(a.gpus_milli, 1000);
	assert_true(a.mem == 6 * GiB);
	assert_int_equal(a.cpu_milli, 3000);
	res_sub(&a, &b);
	res_sub(&a, &b); /* clamps at 0, never wraps */
	assert_int_equal(a.gpus_milli, 0);
	assert_true(a.mem == 0);
	assert_int_equal(a.cpu_milli, 1000);

	/* res_le looks at every dimension: one too big is enough to fail. */
	a = req(1000, 0, 1, 1);
	b = req(1000, 0, 1, 0);
	assert_false(res_le(&a, &b));
	assert_true(res_le(&b, &a));
}

static void test_fit_memory_cpu(void **state)
{
	struct res_node n, before;
	uint32_t idx[RES_MAX_GPUS], nidx = 99;
	struct res r;

	node_init(&n, 0, 0);
	n.mem_used = 200 * GiB;
	n.cpu_used = 60000;
	before = n;

	r = req(0, 0, 56 * GiB, 4000); /* exactly what is left */
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 0);
	r = req(0, 0, 56 * GiB + 1, 1000);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(0, 0, 1 * GiB, 4001);
	assert_false(res_fit(&n, &r, idx, &nidx));
	assert_memory_equal(&n, &before, sizeof(n)); /* fit never changes the node */

	/* Memory and CPU are checked for GPU requests too. */
	node_init(&n, 8, 80 * GiB);
	n.mem_used = n.mem_total;
	r = req(1000, 0, 1, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(250, 0, 1, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(1000, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));

	/* Bookkeeping beyond capacity fits nothing rather than wrapping. */
	node_init(&n, 0, 0);
	n.cpu_used = n.cpu_total + 5;
	r = req(0, 0, 0, 1);
	assert_false(res_fit(&n, &r, idx, &nidx));
}

static void test_fit_gpu_count(void **state)
{
	struct res_node n;
	uint32_t idx[RES_MAX_GPUS], nidx;
	struct res r;

	node_init(&n, 4, 80 * GiB);
	n.gpus[0].used_milli = 1000;
	n.gpus[2].used_milli = 1000;

	r = req(3000, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(2000, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 2);
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 3);
	r = req(1000, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 1);
	assert_int_equal(idx[0], 1); /* lowest position */

	/* Malformed requests never fit. */
	r = req(1500, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	node_init(&n, RES_MAX_GPUS, 80 * GiB);
	r = req(RES_MAX_GPUS * 1000, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, RES_MAX_GPUS);
	r = req((RES_MAX_GPUS + 1) * 1000, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));

	/* No GPUs at all. */
	node_init(&n, 0, 0);
	r = req(1000, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(100, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
}

static void test_fit_gpu_mem(void **state)
{
	struct res_node n;
	uint32_t idx[RES_MAX_GPUS], nidx;
	struct res r;

	/* Small cards at 0, 1, 3; large ones at 2 and 4. */
	node_init(&n, 5, 16 * GiB);
	n.gpus[2].mem = 80 * GiB;
	n.gpus[4].mem = 80 * GiB;

	r = req(2000, 40 * GiB, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 2);
	assert_int_equal(idx[0], 2);
	assert_int_equal(idx[1], 4);
	r = req(3000, 40 * GiB, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(1000, 16 * GiB, 0, 0); /* the minimum is inclusive */
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 0);
	r = req(1000, 16 * GiB + 1, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 2);
	assert_int_equal(res_free_whole_gpus(&n, 0), 5);
	assert_int_equal(res_free_whole_gpus(&n, 40 * GiB), 2);

	/* Shares obey the minimum too, even when a small card is shared. */
	n.gpus[0].used_milli = 200;
	r = req(300, 40 * GiB, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 1);
	assert_int_equal(idx[0], 2);
	assert_int_equal(res_free_whole_gpus(&n, 0), 4);
}

static void test_no_double_assignment(void **state)
{
	struct res_node n;
	uint32_t idx[RES_MAX_GPUS], nidx, seen[RES_MAX_GPUS] = {0};
	struct res r = req(3000, 0, 1 * GiB, 1000);
	int placed = 0;

	node_init(&n, 16, 80 * GiB);
	while (res_fit(&n, &r, idx, &nidx)) {
		assert_int_equal(nidx, 3);
		for (uint32_t i = 0; i < nidx; i++) {
			assert_true(idx[i] < n.ngpus);
			assert_int_equal(n.gpus[idx[i]].used_milli, 0);
			seen[idx[i]]++;
		}
		res_take(&n, &r, idx, nidx);
		placed++;
	}
	assert_int_equal(placed, 5); /* 16 cards, 3 each: one left over */
	for (uint32_t i = 0; i < n.ngpus; i++) {
		assert_true(seen[i] <= 1);
		assert_int_equal(n.gpus[i].used_milli, seen[i] ? 1000 : 0);
	}
	assert_int_equal(res_free_whole_gpus(&n, 0), 1);
	assert_true(n.mem_used == 5 * GiB);
	assert_int_equal(n.cpu_used, 5000);
}

static void test_share_packing(void **state)
{
	struct res_node n;
	uint32_t idx[RES_MAX_GPUS], nidx;
	struct res r;

	node_init(&n, 4, 80 * GiB);

	/* The first share opens the lowest free card, the next ones join it. */
	r = req(300, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(nidx, 1);
	assert_int_equal(idx[0], 0);
	res_take(&n, &r, idx, nidx);
	assert_int_equal(n.gpus[0].used_milli, 300);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 0);
	res_take(&n, &r, idx, nidx);
	assert_int_equal(n.gpus[0].used_milli, 600);

	/* Best fit: the fullest shared card that still has room. */
	node_init(&n, 4, 80 * GiB);
	n.gpus[1].used_milli = 500;
	n.gpus[3].used_milli = 700;
	r = req(300, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 3); /* 700 + 300 = 1000 exactly */
	r = req(400, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 1); /* card 3 would go over */
	r = req(600, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 0); /* no shared card has room: a free one */

	/* A full node of shares has no room for another. */
	node_init(&n, 2, 80 * GiB);
	n.gpus[0].used_milli = 900;
	n.gpus[1].used_milli = 1000;
	r = req(200, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	r = req(100, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 0);
}

static void test_whole_never_on_shared(void **state)
{
	struct res_node n;
	uint32_t idx[RES_MAX_GPUS], nidx;
	struct res r;

	node_init(&n, 3, 80 * GiB);
	n.gpus[0].used_milli = 1; /* barely used, still not whole */

	r = req(2000, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 1);
	assert_int_equal(idx[1], 2);
	r = req(3000, 0, 0, 0);
	assert_false(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(res_free_whole_gpus(&n, 0), 2);

	/* Shares do not break a free card while a shared one has room. */
	r = req(999, 0, 0, 0);
	assert_true(res_fit(&n, &r, idx, &nidx));
	assert_int_equal(idx[0], 0);
}

/* Deterministic xorshift so a failure reproduces. */
static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 32);
}

struct placed {
	struct res r;
	uint32_t idx[RES_MAX_GPUS];
	uint32_t nidx;
};

/* Random mixes of whole and shared requests: the per-card sums stay within
 * one card, whole cards stay exclusive, and giving everything back in any
 * order returns the node to where it started. */
static void test_random_take_give(void **state)
{
	static struct placed p[512];
	uint64_t seed = 0x243f6a8885a308d3ull;

	for (int round = 0; round < 50; round++) {
		struct res_node n, start;
		uint32_t shares[RES_MAX_GPUS] = {0}, whole[RES_MAX_GPUS] = {0};
		int np = 0;

		node_init(&n, 1 + rnd(&seed) % 16, 40 * GiB);
		for (uint32_t i = 0; i < n.ngpus; i++)
			n.gpus[i].mem = (1 + rnd(&seed) % 4) * 20 * GiB;
		start = n;

		for (int tries = 0; tries < 400 && np < 512; tries++) {
			struct placed *q = &p[np];
			uint32_t kind = rnd(&seed) % 3;

			q->r = req(kind == 0 ? (1 + rnd(&seed) % 3) * 1000 : 50 + rnd(&seed) % 900,
				   rnd(&seed) % 2 ? 0 : (rnd(&seed) % 5) * 20 * GiB,
				   (rnd(&seed) % 8) * GiB, rnd(&seed) % 2000);
			if (!res_fit(&n, &q->r, q->idx, &q->nidx))
				continue;
			for (uint32_t i = 0; i < q->nidx; i++) {
				uint32_t g = q->idx[i];

				assert_true(n.gpus[g].mem >= q->r.gpu_mem);
				assert_int_equal(whole[g], 0);
				if (res_is_share(&q->r)) {
					shares[g] += q->r.gpus_milli;
					assert_true(shares[g] <= 1000);
				} else {
					assert_int_equal(shares[g], 0);
					whole[g] = 1;
				}
			}
			res_take(&n, &q->r, q->idx, q->nidx);
			for (uint32_t g = 0; g < n.ngpus; g++)
				assert_int_equal(n.gpus[g].used_milli, whole[g] ? 1000 : shares[g]);
			assert_true(n.mem_used <= n.mem_total);
			assert_true(n.cpu_used <= n.cpu_total);
			np++;
		}
		assert_true(np > 0);

		/* Give back in a shuffled order. */
		for (int i = np - 1; i > 0; i--) {
			int j = (int)(rnd(&seed) % (uint32_t)(i + 1));
			struct placed t = p[i];

			p[i] = p[j];
			p[j] = t;
		}
		for (int i = 0; i < np; i++)
			res_give(&n, &p[i].r, p[i].idx, p[i].nidx);
		assert_memory_equal(&n, &start, sizeof(n));
	}
}

static void test_take_give_symmetric(void **state)
{
	struct res_node n, start;
	uint32_t idx[RES_MAX_GPUS], nidx;
	struct res whole = req(2000, 0, 8 * GiB, 4000), share = req(250, 0, 1 * GiB, 500);
	uint32_t widx[RES_MAX_GPUS], wn;

	node_init(&n, 4, 80 * GiB);
	start = n;
	assert_true(res_fit(&n, &whole, widx, &wn));
	res_take(&n, &whole, widx, wn);
	assert_int_equal(n.gpus[0].used_milli, 1000);
	assert_int_equal(n.gpus[1].used_milli, 1000);
	assert_true(n.mem_used == 8 * GiB);
	assert_int_equal(n.cpu_used, 4000);

	assert_true(res_fit(&n, &share, idx, &nidx));
	assert_int_equal(idx[0], 2);
	res_take(&n, &share, idx, nidx);
	assert_int_equal(n.gpus[2].used_milli, 250);
	assert_true(n.mem_used == 9 * GiB);
	assert_int_equal(n.cpu_used, 4500);

	res_give(&n, &whole, widx, wn);
	assert_int_equal(n.gpus[0].used_milli, 0);
	assert_int_equal(n.gpus[2].used_milli, 250);
	res_give(&n, &share, idx, nidx);
	assert_memory_equal(&n, &start, sizeof(n));

	/* Giving back more than was taken clamps at zero. */
	res_give(&n, &share, idx, nidx);
	assert_memory_equal(&n, &start, sizeof(n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_vector_math),
		cmocka_unit_test(test_fit_memory_cpu),
		cmocka_unit_test(test_fit_gpu_count),
		cmocka_unit_test(test_fit_gpu_mem),
		cmocka_unit_test(test_no_double_assignment),
		cmocka_unit_test(test_share_packing),
		cmocka_unit_test(test_whole_never_on_shared),
		cmocka_unit_test(test_random_take_give),
		cmocka_unit_test(test_take_give_symmetric),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
