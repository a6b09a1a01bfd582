/*
 * sched.c - first-fit placement, all or nothing per job (see sched.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "sched.h"
#include "units.h"
#include "util.h"

static int by_priority(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;

	if (x->spec->priority != y->spec->priority)
		return x->spec->priority > y->spec->priority ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static bool model_ok(const struct spec *s, const struct res_node *n)
{
	if (!s->gpu_model || !s->gpu_model[0] || s->res.gpus_milli == 0)
		return true;
	for (uint32_t i = 0; i < n->ngpus; i++)
		if (strstr(n->gpus[i].model, s->gpu_model))
			return true;
	return false;
}

/* Why no ready node fits one task of j, for `mlctl status`. */
static void explain(struct master *m, struct job *j)
{
	const struct res *r = &j->spec->res;
	uint32_t want = res_whole_gpus(r), best_gpus = 0, ready = 0;
	uint64_t best_mem = 0;
	uint32_t best_cpu = 0;
	char a[32], b[32];

	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		if (n->state != NODE_READY)
			continue;
		ready++;
		uint32_t g = res_free_whole_gpus(&n->res, r->gpu_mem);
		if (g > best_gpus)
			best_gpus = g;
		if (n->res.mem_total - n->res.mem_used > best_mem)
			best_mem = n->res.mem_total - n->res.mem_used;
		if (n->res.cpu_total - n->res.cpu_used > best_cpu)
			best_cpu = n->res.cpu_total - n->res.cpu_used;
	}
	if (ready == 0) {
		snprintf(j->reason, sizeof(j->reason), "no ready node");
	} else if (want > best_gpus) {
		snprintf(j->reason, sizeof(j->reason),
			 "needs %u GPUs%s on one node; best node has %u free", want,
			 r->gpu_mem ? " with enough memory" : "", best_gpus);
	} else if (r->mem > best_mem) {
		units_format_size(r->mem, a, sizeof(a));
		units_format_size(best_mem, b, sizeof(b));
		snprintf(j->reason, sizeof(j->reason),
			 "needs %s of memory on one node; best node has %s free", a, b);
	} else if (r->cpu_milli > best_cpu) {
		units_format_milli(r->cpu_milli, a, sizeof(a));
		units_format_milli(best_cpu, b, sizeof(b));
		snprintf(j->reason, sizeof(j->reason),
			 "needs %s CPUs on one node; best node has %s free", a, b);
	} else if (j->spec->gpu_model && j->spec->gpu_model[0]) {
		snprintf(j->reason, sizeof(j->reason), "needs GPU model \"%s\"", j->spec->gpu_model);
	} else {
		snprintf(j->reason, sizeof(j->reason),
			 "needs %u tasks placed at once; not enough nodes have room", j->ntasks);
	}
}

/* Place every task of j or none.  Returns true when placed. */
static bool place_job(struct master *m, struct job *j)
{
	const struct res *r = &j->spec->res;
	uint32_t done = 0;

	for (uint32_t k = 0; k < j->ntasks; k++) {
		struct task *t = &j->tasks[k];
		bool placed = false;
		for (size_t i = 0; i < m->nnodes && !placed; i++) {
			struct node *n = m->nodes[i];
			if (n->state != NODE_READY || !model_ok(j->spec, &n->res))
				continue;
			if (!res_fit(&n->res, r, t->gpu_pos, &t->ngpus))
				continue;
			res_take(&n->res, r, t->gpu_pos, t->ngpus);
			strlcpy_ok(t->node, n->name, sizeof(t->node));
			placed = true;
		}
		if (!placed)
			break;
		done++;
	}
	if (done < j->ntasks) {
		/* Give back the partial hold: all or nothing. */
		for (uint32_t k = 0; k < done; k++) {
			struct task *t = &j->tasks[k];
			struct node *n = node_find(m, t->node);
			res_give(&n->res, r, t->gpu_pos, t->ngpus);
			t->node[0] = '\0';
			t->ngpus = 0;
		}
		return false;
	}
	for (uint32_t k = 0; k < j->ntasks; k++) {
		struct task *t = &j->tasks[k];
		t->state = TASK_ASSIGNED;
		t->reason[0] = '\0';
		log_debug(LOG_SUB_SCHED, "job=%" PRIu64 " task=%u node=%s placed", j->id, k, t->node);
		agents_order_start(m, j, t);
	}
	return true;
}

int sched_run(struct master *m)
{
	struct job **pend = NULL;
	size_t np = 0;
	int placed = 0;

	for (size_t i = 0; i < m->njobs; i++)
		if (m->jobs[i]->state == JOB_PENDING && !m->jobs[i]->cancel)
			np++;
	if (np == 0)
		return 0;
	pend = xmalloc(np * sizeof(*pend));
	np = 0;
	for (size_t i = 0; i < m->njobs; i++)
		if (m->jobs[i]->state == JOB_PENDING && !m->jobs[i]->cancel)
			pend[np++] = m->jobs[i];
	qsort(pend, np, sizeof(*pend), by_priority);
	for (size_t i = 0; i < np; i++) {
		struct job *j = pend[i];
		char old[REASON_MAX];
		if (place_job(m, j)) {
			j->state = JOB_PLACING;
			j->reason[0] = '\0';
			j->dirty = true;
			placed++;
			log_info("job=%" PRIu64 " name=%s placed: %u tasks", j->id, j->spec->name,
				 j->ntasks);
			continue;
		}
		memcpy(old, j->reason, sizeof(old));
		explain(m, j);
		if (strcmp(old, j->reason) != 0) {
			j->dirty = true;
			log_info("job=%" PRIu64 " name=%s pending: %s", j->id, j->spec->name,
				 j->reason);
		}
	}
	free(pend);
	return placed;
}
