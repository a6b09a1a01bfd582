/*
 * quota-test.c - team queues in the scheduler core (sched.h, TEAM QUEUES):
 * the fair-share arithmetic, the quota gate and borrowing, reclaim
 * decisions, and a queue pass that borrows, reclaims and orders by share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "res.h"
#include "sched/sched.h"

#define GiB (1024ull * 1024 * 1024)

/* ---- fair share ---- */

static void test_share_arithmetic(void **state)
{
	const double h = 3600; /* half-life, seconds */
	double u, sum;

	(void)state;
	/* No time, no change; no decay: GPU-hours add up. */
	assert_true(sched_share_advance(5, 8, 0, h) == 5);
	assert_true(fabs(sched_share_advance(1, 2, 1800, 0) - 2.0) < 1e-12);
	/* Idle for one half-life: half is left; two: a quarter. */
	assert_true(fabs(sched_share_advance(8, 0, h, h) - 4) < 1e-9);
	assert_true(fabs(sched_share_advance(8, 0, 2 * h, h) - 2) < 1e-9);
	/* Holding r GPUs for ever tends to r * h / ln 2 GPU-seconds. */
	u = sched_share_advance(0, 4, 1000 * h, h);
	assert_true(fabs(u - 4 * h / M_LN2 / 3600) < 1e-6);
	/* The closed form equals many small steps (it is the exact integral,
	 * so splitting an interval changes nothing). */
	sum = 0;
	for (int i = 0; i < 3600; i++)
		sum = sched_share_advance(sum, 2, 1, h);
	assert_true(fabs(sum - sched_share_advance(0, 2, 3600, h)) < 1e-9);
	/* One hour at 2 GPUs with a 1 h half-life: 2 * (1 - 1/2) / ln 2. */
	assert_true(fabs(sum - 1.0 / M_LN2) < 1e-9);
	/* Tiny steps of a short run: about the GPU-hours held. */
	assert_true(fabs(sched_share_advance(0, 1, 36, h) - 0.01) < 1e-4);
	/* Value: usage over weight; a double weight halves it. */
	assert_true(sched_share_value(6, 2) == 3);
	assert_true(sched_share_value(6, 1) > sched_share_value(6, 2));
	assert_true(sched_share_value(1, 0) > 1e6); /* no weight: goes last */
}

/* ---- the gate ---- */

static struct sched_queue qs3[3];
static struct sched_quota quota3;

/* a: quota 2, borrows; b: quota 2; c: quota 1, no borrowing. */
static void setup3(uint64_t pool)
{
	memset(qs3, 0, sizeof(qs3));
	qs3[0] = (struct sched_queue){.name = "a", .quota = 2000, .borrow = true};
	qs3[1] = (struct sched_queue){.name = "b", .quota = 2000, .borrow = false};
	qs3[2] = (struct sched_queue){.name = "c", .quota = 1000, .borrow = false};
	quota3 = (struct sched_quota){.q = qs3, .n = 3, .pool = pool};
}

static void test_admit(void **state)
{
	char why[256] = "";

	(void)state;
	setup3(0);
	/* Within its quota. */
	assert_int_equal(sched_quota_admit(&quota3, 1, 2000, why, sizeof(why)), 0);
	/* No queue: always. */
	assert_int_equal(sched_quota_admit(&quota3, 0, 99000, why, sizeof(why)), 0);
	/* Beyond: a borrows b's and c's idle quota (3 GPUs) ... */
	assert_int_equal(sched_quota_lendable(&quota3, 1), 3000);
	assert_int_equal(sched_quota_admit(&quota3, 1, 5000, why, sizeof(why)), 1);
	/* ... but not more. */
	assert_int_equal(sched_quota_admit(&quota3, 1, 5001, why, sizeof(why)), ERR_NOFIT);
	assert_non_null(strstr(why, "queue a would go 3 GPUs beyond its quota of 2; only 3 idle"));
	/* c may not borrow: it waits at its quota and says so. */
	qs3[2].used = 1000;
	assert_int_equal(sched_quota_admit(&quota3, 3, 1000, why, sizeof(why)), ERR_NOFIT);
	assert_string_equal(why, "queue c is at its quota: 1 of 1 GPUs in use, this job needs 1 "
				 "(borrow: false)");
	/* Pending work of b within its quota is not lent. */
	qs3[2].used = 0;
	qs3[1].want = 2000;
	assert_int_equal(sched_quota_lendable(&quota3, 1), 1000);
	assert_int_equal(sched_quota_admit(&quota3, 1, 4000, why, sizeof(why)), ERR_NOFIT);
	assert_int_equal(sched_quota_admit(&quota3, 1, 3000, why, sizeof(why)), 1);
	/* Capacity outside every quota is lent too. */
	setup3(4000);
	assert_int_equal(sched_quota_lendable(&quota3, 1), 7000);
	/* Another borrower's GPUs count against what is left to lend. */
	setup3(0);
	qs3[2].borrow = true;
	qs3[2].used = 3000; /* c borrowed 2 (b's idle quota) */
	assert_int_equal(sched_quota_admit(&quota3, 1, 2000, why, sizeof(why)), 0);
	assert_int_equal(sched_quota_admit(&quota3, 1, 3000, why, sizeof(why)), ERR_NOFIT);
}

static void test_reclaim_and_charge(void **state)
{
	(void)state;
	setup3(0);
	qs3[0].used = 4000; /* a borrows 2 */
	/* b within its quota may take it back from a ... */
	assert_true(sched_quota_reclaims(&quota3, 2, 2000, 1));
	/* ... but not beyond its quota, not from itself, not from c (not over). */
	assert_false(sched_quota_reclaims(&quota3, 2, 3000, 1));
	assert_false(sched_quota_reclaims(&quota3, 1, 1000, 1));
	assert_false(sched_quota_reclaims(&quota3, 2, 1000, 3));
	assert_false(sched_quota_reclaims(&quota3, 0, 1000, 1));
	assert_false(sched_quota_reclaims(&quota3, 2, 1000, 0));
	/* a over its quota has nothing to reclaim. */
	qs3[1].used = 3000;
	assert_false(sched_quota_reclaims(&quota3, 1, 1000, 2));
	/* Charging: used grows; want shrinks by what fitted in the quota. */
	setup3(0);
	qs3[1].want = 2000;
	sched_quota_charge(&quota3, 2, 2000);
	assert_int_equal(qs3[1].used, 2000);
	assert_int_equal(qs3[1].want, 0);
	sched_quota_charge(&quota3, 0, 2000); /* no queue: nothing */
	sched_quota_charge(&quota3, 9, 2000);
}

/* ---- a pass ---- */

static struct sched_node *add(struct sched *s, const char *name, uint32_t ngpus)
{
	struct res_node cap;

	memset(&cap, 0, sizeof(cap));
	cap.ngpus = ngpus;
	for (uint32_t i = 0; i < ngpus; i++) {
		cap.gpus[i].index = i;
		cap.gpus[i].mem = 80 * GiB;
		snprintf(cap.gpus[i].model, sizeof(cap.gpus[i].model), "H100");
	}
	cap.mem_total = 512 * GiB;
	cap.cpu_total = 64000;
	return sched_node_add(s, name, &cap, NULL, 0);
}

static struct sched_job mkjob(uint64_t id, uint32_t queue, uint32_t ntasks, uint32_t gpus)
{
	struct sched_job j;

	memset(&j, 0, sizeof(j));
	j.req.job = id;
	j.req.ntasks = ntasks;
	j.req.res.gpus_milli = gpus * 1000;
	j.req.res.mem = GiB;
	j.req.res.cpu_milli = 1000;
	j.order = id;
	j.may_preempt = true;
	j.queue = queue;
	return j;
}

struct acts {
	int n;
	enum sched_action_type type[16];
	uint64_t job[16], for_job[16];
	char reason[16][SCHED_REASON_LEN];
	struct sched_slot slots[16][4];
};

static void rec(void *arg, const struct sched_action *a)
{
	struct acts *r = arg;

	assert_true(r->n < 16);
	r->type[r->n] = a->type;
	r->job[r->n] = a->job->req.job;
	r->for_job[r->n] = a->for_job ? a->for_job->req.job : 0;
	snprintf(r->reason[r->n], SCHED_REASON_LEN, "%s", a->reason);
	if (a->type == SCHED_PLACED)
		memcpy(r->slots[r->n], a->slots, a->job->req.ntasks * sizeof(*a->slots));
	r->n++;
}

static int find(const struct acts *r, uint64_t job, enum sched_action_type t)
{
	for (int i = 0; i < r->n; i++) {
		if (r->job[i] == job && r->type[i] == t)
			return i;
	}
	return -1;
}

static void test_pass_borrow_reclaim(void **state)
{
	struct sched *s = sched_new();
	struct sched_job a = mkjob(1, 1, 2, 2), b = mkjob(2, 2, 1, 2), a2;
	struct sched_job *pend[2], *run[1];
	struct sched_slot held[2];
	struct acts r;
	int k;

	(void)state;
	add(s, "n1", 4);
	setup3(0);
	sched_quota_set(s, &quota3);
	/* a's 2x2 gang borrows b's idle quota. */
	pend[0] = &a;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 1, NULL, 0, rec, &r), 1);
	assert_int_equal(qs3[0].used, 4000);
	/* a runs; b wants 2 GPUs of its own quota: a's gang is preempted
	 * though its priority is higher, because it borrows. */
	a2 = a;
	memcpy(held, r.slots[0], sizeof(held));
	a2.held = held;
	a2.nheld = 2;
	a2.req.ntasks = 0;
	a2.req.priority = 50;
	run[0] = &a2;
	pend[0] = &b;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 1, run, 1, rec, &r), 0);
	assert_true((k = find(&r, 1, SCHED_PREEMPT)) >= 0);
	assert_int_equal(r.for_job[k], 2);
	assert_non_null(strstr(r.reason[k], "queue b takes back GPUs of its quota (2) that queue a "
					     "borrowed"));
	assert_true((k = find(&r, 2, SCHED_WAIT)) >= 0);
	assert_non_null(strstr(r.reason[k], "preempting 1 lower-priority or borrowing job (1)"));
	/* Without queues the same pass preempts nothing (a has the higher
	 * priority). */
	sched_quota_set(s, NULL);
	b.may_preempt = true;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 1, run, 1, rec, &r), 0);
	assert_int_equal(find(&r, 1, SCHED_PREEMPT), -1);
	sched_free(s);
}

static void test_pass_gate_and_share(void **state)
{
	struct sched *s = sched_new();
	struct sched_job c1 = mkjob(1, 3, 1, 1), c2 = mkjob(2, 3, 1, 1);
	struct sched_job x = mkjob(3, 1, 1, 2), y = mkjob(4, 2, 1, 2);
	struct sched_job *pend[4];
	struct acts r;
	int k;

	(void)state;
	add(s, "n1", 4);
	setup3(0);
	sched_quota_set(s, &quota3);
	/* c (quota 1, no borrowing) places one job of two in one pass: the
	 * pass charges what it places. */
	pend[0] = &c1;
	pend[1] = &c2;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 2, NULL, 0, rec, &r), 1);
	assert_true(find(&r, 1, SCHED_PLACED) >= 0);
	assert_true((k = find(&r, 2, SCHED_WAIT)) >= 0);
	assert_string_equal(r.reason[k], "queue c is at its quota: 1 of 1 GPUs in use, this job "
					 "needs 1 (borrow: false)");
	/* Two queues' jobs, 3 GPUs left, room for one: the lower share goes
	 * first, whatever the submission order. */
	sched_quota_set(s, NULL);
	setup3(0);
	qs3[0].used = 0;
	sched_quota_set(s, &quota3);
	x.share = 5.0; /* a has used more */
	y.share = 1.0;
	pend[0] = &x;
	pend[1] = &y;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 2, NULL, 0, rec, &r), 1);
	assert_true(find(&r, 4, SCHED_PLACED) >= 0);
	assert_true(find(&r, 3, SCHED_PLACED) < 0);
	/* Priority still comes first. */
	sched_free(s);
	s = sched_new();
	add(s, "n1", 2);
	setup3(0);
	sched_quota_set(s, &quota3);
	x.req.priority = 10;
	memset(&r, 0, sizeof(r));
	assert_int_equal(sched_pass(s, pend, 2, NULL, 0, rec, &r), 1);
	assert_true(find(&r, 3, SCHED_PLACED) >= 0);
	sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_share_arithmetic),
		cmocka_unit_test(test_admit),
		cmocka_unit_test(test_reclaim_and_charge),
		cmocka_unit_test(test_pass_borrow_reclaim),
		cmocka_unit_test(test_pass_gate_and_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
