/*
 * telemetry.c - the agent's own Prometheus metrics (mlagent --metrics-listen,
 * off by default).
 *
 * Rendered on the agent's thread at each scrape (common/metrics.h): node CPU
 * and GPU figures are the ones the last heartbeat sampled (a scrape must not
 * reset the CPU sampler the heartbeat reads), container CPU and memory are
 * read from their cgroups at the scrape.
 */
#include <inttypes.h>
#include <stdio.h>

#include "agent.h"
#include "metrics.h"
#include "util.h"

static void render(struct metrics_buf *b, void *arg)
{
	struct agent *a = arg;
	size_t ntasks = 0;

	metrics_head(b, "mlagent_cpu_ratio", "gauge",
		     "Node CPU busy, 0..1, as the last heartbeat sampled it.");
	metrics_printf(b, "mlagent_cpu_ratio{node=\"%s\"} %.3f\n", a->cfg.name,
		       a->stats.cpu_pct / 100.0);
	metrics_head(b, "mlagent_memory_used_bytes", "gauge", "Node memory in use.");
	metrics_printf(b, "mlagent_memory_used_bytes{node=\"%s\"} %" PRIu64 "\n", a->cfg.name,
		       a->stats.mem_used);
	metrics_head(b, "mlagent_gpu_utilization_ratio", "gauge", "GPU utilization (NVML), 0..1.");
	for (size_t i = 0; i < a->stats.ngpu; i++)
		if (!a->stats.gpu[i].error[0])
			metrics_printf(b, "mlagent_gpu_utilization_ratio{node=\"%s\",gpu=\"%u\"} %.2f\n",
				       a->cfg.name, a->stats.gpu[i].index, a->stats.gpu[i].util_pct / 100.0);
	metrics_head(b, "mlagent_gpu_memory_used_bytes", "gauge", "GPU memory in use (NVML).");
	for (size_t i = 0; i < a->stats.ngpu; i++)
		if (!a->stats.gpu[i].error[0])
			metrics_printf(b,
				       "mlagent_gpu_memory_used_bytes{node=\"%s\",gpu=\"%u\"} %" PRIu64 "\n",
				       a->cfg.name, a->stats.gpu[i].index, a->stats.gpu[i].mem_used);
	metrics_head(b, "mlagent_gpu_healthy", "gauge",
		     "1 while the GPU reads fine, 0 while it reports an error (lost, a query "
		     "fails: the agent's log and the node's gpu_error say which).");
	for (size_t i = 0; i < a->stats.ngpu; i++)
		metrics_printf(b, "mlagent_gpu_healthy{node=\"%s\",gpu=\"%u\"} %d\n", a->cfg.name,
			       a->stats.gpu[i].index, !a->stats.gpu[i].error[0]);
	metrics_head(b, "mlagent_task_cpu_seconds_total", "counter",
		     "CPU time of a task's container (cgroup).");
	for (struct atask *t = a->tasks; t; t = t->next) {
		uint64_t cpu = 0, mem = 0;
		ntasks++;
		cgroup_usage(t->cgroup, &cpu, &mem);
		metrics_printf(b, "mlagent_task_cpu_seconds_total{job=\"%" PRIu64 "\",task=\"%u\"} %.3f\n",
			       t->job, t->idx, (double)cpu / 1e9);
	}
	metrics_head(b, "mlagent_task_memory_bytes", "gauge", "Memory of a task's container (cgroup).");
	for (struct atask *t = a->tasks; t; t = t->next) {
		uint64_t cpu = 0, mem = 0;
		cgroup_usage(t->cgroup, &cpu, &mem);
		metrics_printf(b, "mlagent_task_memory_bytes{job=\"%" PRIu64 "\",task=\"%u\"} %" PRIu64 "\n",
			       t->job, t->idx, mem);
	}
	metrics_head(b, "mlagent_task_healthy", "gauge",
		     "1 while a probed task's probe says healthy, 0 otherwise.");
	for (struct atask *t = a->tasks; t; t = t->next)
		if (t->has_health)
			metrics_printf(b, "mlagent_task_healthy{job=\"%" PRIu64 "\",task=\"%u\"} %d\n",
				       t->job, t->idx, t->health == PROBE_HEALTHY);
	metrics_head(b, "mlagent_tasks", "gauge", "Containers this agent supervises.");
	metrics_printf(b, "mlagent_tasks %zu\n", ntasks);
	metrics_head(b, "mlagent_containers_started_total", "counter", "Containers started.");
	metrics_printf(b, "mlagent_containers_started_total %" PRIu64 "\n", a->stats.started);
	metrics_head(b, "mlagent_containers_ended_total", "counter",
		     "Containers that exited or failed to start.");
	metrics_printf(b, "mlagent_containers_ended_total %" PRIu64 "\n", a->stats.ended);
}

int telemetry_start(struct agent *a, char *why, size_t whylen)
{
	if (!a->cfg.metrics_listen)
		return 0;
	return metrics_start(a->cfg.metrics_listen, render, a, &a->stats.server, why, whylen);
}

void telemetry_serve(struct agent *a)
{
	metrics_serve(a->stats.server);
}

void telemetry_stop(struct agent *a)
{
	metrics_stop(a->stats.server);
	a->stats.server = NULL;
}
