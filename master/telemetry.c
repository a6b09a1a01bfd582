/*
 * telemetry.c - the master's Prometheus metrics (--metrics-listen).
 *
 * Counters and histograms are bumped where things happen (m->stats); the
 * gauges (queue, nodes, GPUs, utilization) are computed from the model at
 * each scrape, which runs on the master's thread (common/metrics.h), so it
 * reads the model without a lock.  A scrape walks the nodes and the
 * unfinished jobs once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"
#include "wire.h"

int telemetry_gpu_util(const struct node *n, uint32_t index)
{
	const cJSON *g;

	cJSON_ArrayForEach(g, n->gpu_util)
	{
		uint64_t i = 0, u = 0;
		if (wire_get_u64(g, "index", 1024, &i) == 0 && i == index &&
		    wire_get_u64(g, "util_pct", 100, &u) == 0)
			return (int)u;
	}
	return -1;
}

/* Why a job waits, as a small set of label values. */
static const char *pending_reason(const struct job *j)
{
	if (j->victims > 0 || strncmp(j->reason, "waiting for", 11) == 0)
		return "preemption";
	if (strstr(j->reason, "would not fit even on an empty cluster"))
		return "unplaceable";
	if (!j->reason[0])
		return "new";
	return "capacity";
}

/* Label values are names we validated ([a-z0-9._-]): no escaping needed. */
static void render(struct metrics_buf *b, void *arg)
{
	struct master *m = arg;
	static const char *reasons[] = {"new", "capacity", "preemption", "unplaceable"};
	uint64_t queued[4] = {0}, ready = 0, lost = 0, drained = 0, unconfirmed = 0;
	uint64_t gpus = 0, gpus_busy = 0;
	double gpus_alloc = 0;

	for (size_t i = 0; i < m->nlive; i++) {
		const struct job *j = m->live[i];
		if (j->state != JOB_PENDING)
			continue;
		const char *r = pending_reason(j);
		for (size_t k = 0; k < 4; k++)
			if (strcmp(r, reasons[k]) == 0)
				queued[k]++;
	}
	metrics_head(b, "mlsched_jobs_pending", "gauge", "Jobs waiting to be placed, by reason.");
	for (size_t k = 0; k < 4; k++)
		metrics_printf(b, "mlsched_jobs_pending{reason=\"%s\"} %" PRIu64 "\n", reasons[k],
			       queued[k]);
	metrics_head(b, "mlsched_jobs_live", "gauge", "Jobs not finished.");
	metrics_printf(b, "mlsched_jobs_live %zu\n", m->nlive);

	metrics_head(b, "mlsched_submitted_total", "counter", "Jobs submitted.");
	metrics_printf(b, "mlsched_submitted_total %" PRIu64 "\n", m->stats.submitted);
	metrics_head(b, "mlsched_placements_total", "counter", "Tasks placed on a node.");
	metrics_printf(b, "mlsched_placements_total %" PRIu64 "\n", m->stats.placements);
	metrics_head(b, "mlsched_preemptions_total", "counter", "Jobs preempted.");
	metrics_printf(b, "mlsched_preemptions_total %" PRIu64 "\n", m->stats.preemptions);
	metrics_head(b, "mlsched_node_losses_total", "counter", "Nodes declared lost.");
	metrics_printf(b, "mlsched_node_losses_total %" PRIu64 "\n", m->stats.node_losses);
	metrics_head(b, "mlsched_restarts_total", "counter", "Task restarts under restart:.");
	metrics_printf(b, "mlsched_restarts_total %" PRIu64 "\n", m->stats.restarts);
	metrics_head(b, "mlsched_reschedules_total", "counter",
		     "Jobs moved off a lost node (one per job and loss).");
	metrics_printf(b, "mlsched_reschedules_total %" PRIu64 "\n", m->stats.reschedules);
	metrics_head(b, "mlsched_promotions_total", "counter", "Standbys promoted to serving.");
	metrics_printf(b, "mlsched_promotions_total %" PRIu64 "\n", m->stats.promotions);
	metrics_head(b, "mlsched_health_failures_total", "counter",
		     "Serve tasks replaced for failing their probe.");
	metrics_printf(b, "mlsched_health_failures_total %" PRIu64 "\n", m->stats.health_failures);
	metrics_head(b, "mlsched_store_write_failures_total", "counter",
		     "Commits the store refused (disk full, read-only): each drops its turn.");
	metrics_printf(b, "mlsched_store_write_failures_total %" PRIu64 "\n",
		       m->stats.store_failures);
	metrics_head(b, "mlsched_store_writable", "gauge",
		     "0 while the store refuses writes and only reads are answered.");
	metrics_printf(b, "mlsched_store_writable %d\n", m->ha.degraded ? 0 : 1);

	metrics_histo_write(b, "mlsched_sched_pass_seconds", "Time of one scheduler pass.",
			    &m->stats.sched_pass);
	metrics_histo_write(b, "mlsched_submit_to_running_seconds",
			    "From submission to every task of the job running.",
			    &m->stats.submit_to_running);
	metrics_histo_write(b, "mlsched_store_commit_seconds",
			    "Time to write and commit one turn's records.", &m->stats.store_commit);

	metrics_head(b, "mlsched_gpu_utilization_ratio", "gauge",
		     "A GPU's utilization as its agent reports it (NVML), 0..1.");
	for (size_t i = 0; i < m->nnodes; i++) {
		const struct node *n = m->nodes[i];
		const struct res_node *r = n->sn ? &n->sn->res : &n->cap;
		if (n->state == NODE_LOST)
			lost++;
		else if (!n->confirmed)
			unconfirmed++;
		else if (n->drained)
			drained++;
		else
			ready++;
		if (n->state == NODE_LOST)
			continue;
		gpus += n->cap.ngpus;
		for (uint32_t g = 0; g < r->ngpus; g++) {
			int u = telemetry_gpu_util(n, r->gpus[g].index);
			gpus_alloc += (double)r->gpus[g].used_milli / 1000.0;
			if (u > 0)
				gpus_busy++;
			if (u >= 0)
				metrics_printf(b,
					       "mlsched_gpu_utilization_ratio{node=\"%s\",gpu=\"%u\"} "
					       "%.2f\n",
					       n->name, r->gpus[g].index, u / 100.0);
		}
	}
	metrics_head(b, "mlsched_nodes", "gauge", "Nodes by state.");
	metrics_printf(b, "mlsched_nodes{state=\"ready\"} %" PRIu64 "\n", ready);
	metrics_printf(b, "mlsched_nodes{state=\"drained\"} %" PRIu64 "\n", drained);
	metrics_printf(b, "mlsched_nodes{state=\"unconfirmed\"} %" PRIu64 "\n", unconfirmed);
	metrics_printf(b, "mlsched_nodes{state=\"lost\"} %" PRIu64 "\n", lost);
	metrics_head(b, "mlsched_gpus", "gauge",
		     "GPUs of nodes not lost: total, allocated to tasks, in use (utilization > 0).");
	metrics_printf(b, "mlsched_gpus{kind=\"total\"} %" PRIu64 "\n", gpus);
	metrics_printf(b, "mlsched_gpus{kind=\"allocated\"} %.3f\n", gpus_alloc);
	metrics_printf(b, "mlsched_gpus{kind=\"in_use\"} %" PRIu64 "\n", gpus_busy);

	/* Per job: the mean utilization of the GPUs its running tasks hold. */
	metrics_head(b, "mlsched_job_gpu_utilization_ratio", "gauge",
		     "Mean utilization of the GPUs a job's running tasks hold, 0..1.");
	for (size_t i = 0; i < m->nlive; i++) {
		const struct job *j = m->live[i];
		double sum = 0;
		uint32_t n = 0;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			const struct task *t = &j->tasks[k];
			struct node *nd;
			if (t->state != TASK_RUNNING || !t->ngpus ||
			    !(nd = node_find(m, t->node)))
				continue;
			for (uint32_t g = 0; g < t->ngpus; g++) {
				int u = t->gpu_pos[g] < nd->cap.ngpus
						? telemetry_gpu_util(nd, nd->cap.gpus[t->gpu_pos[g]].index)
						: -1;
				if (u >= 0) {
					sum += u;
					n++;
				}
			}
		}
		if (n)
			metrics_printf(b, "mlsched_job_gpu_utilization_ratio{job=\"%s\",id=\"%" PRIu64
					  "\"} %.2f\n",
				       j->spec->name, j->id, sum / n / 100.0);
	}
	metrics_head(b, "mlsched_leader", "gauge", "1 on the master that leads.");
	metrics_printf(b, "mlsched_leader %d\n", m->ha.leading ? 1 : 0);
}

int telemetry_start(struct master *m, char *why, size_t whylen)
{
	if (!m->cfg.metrics_listen)
		return 0;
	return metrics_start(m->cfg.metrics_listen, render, m, &m->stats.server, why, whylen);
}

void telemetry_serve(struct master *m)
{
	metrics_serve(m->stats.server);
}

void telemetry_stop(struct master *m)
{
	metrics_stop(m->stats.server);
	m->stats.server = NULL;
}
