/*
 * agent.h - mlagent's state.  One thread owns all of it: the loop in main.c
 * waits on the master socket, a signalfd (SIGCHLD, SIGTERM, SIGINT), the
 * pidfds of shims it adopted, and its timers.
 *
 * Each task runs under its own shim ("mlagent shim DIR", see main.c): a
 * child subreaper that starts the container with runc, reaps its init and
 * writes the exit status to DIR/exit.  Shims outlive the agent, so an agent
 * restart leaves containers running: the new agent finds each task's folder
 * (DIR/meta.json), adopts its live shim (a pidfd, since it is no longer our
 * child) or reads the exit it recorded meanwhile.
 */
#ifndef MLSCHED_AGENT_H
#define MLSCHED_AGENT_H

#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <nng/nng.h>
#include <cjson/cJSON.h>

#include "gpu/gpu.h"
#include "runc.h"
#include "seal.h"
#include "sysinfo.h"

struct atask {
	uint64_t job;
	uint32_t idx;
	uint32_t attempt;      /* the master's count of requeues of this task */
	char id[RUNC_ID_MAX];  /* runc container id */
	char dir[PATH_MAX];    /* bundle folder */
	char cgroup[256];
	pid_t pid;             /* container init, on the host */
	pid_t shim;            /* its shim: our child, or adopted after a restart */
	int pidfd;             /* adopted shim's pidfd, -1 if none */
	bool adopted;          /* shim started by an earlier agent process */
	bool stopping;
	bool killed;           /* SIGKILL sent */
	uint64_t kill_at;      /* monotonic ms: SIGKILL if still running */
	cJSON *next_start;     /* start order of a later attempt, run once this
				* one has ended (they share the container id) */
	struct atask *next;
};

struct agent_cfg {
	const char *master, *name, *state_dir, *gpus, *labels, *runc_bin, *runc_root, *address;
	const char *join;
	uint64_t cpus_milli, memory, heartbeat_ms;
	bool insecure;
	bool stop_tasks_on_exit; /* SIGTERM/SIGINT kill the containers too */
};

#define RAN_MAX 4096

struct agent {
	struct {
		uint64_t job;
		uint32_t idx, attempt;
	} ran[RAN_MAX];  /* recent starts, see ran_before() */
	size_t ran_next;
	struct agent_cfg cfg;
	struct runc runc;
	nng_socket sock;
	char boot[40];
	char master_boot[40];
	uint64_t sender;
	uint64_t seq;
	uint64_t order_ack;    /* orders processed up to here */
	uint64_t ev_seq;       /* last event number */
	cJSON *events;         /* unacknowledged events */
	struct atask *tasks;
	uint64_t next_sync;    /* monotonic ms */
	bool in_flight;        /* a SYNC awaits its reply */
	uint64_t sent_at;
	/* capacity */
	const struct gpu_ops *gpu;
	void *gpu_ctx;
	struct gpu_info gpus[GPU_MAX];
	size_t ngpus;
	uint32_t cpu_milli;
	uint64_t mem_total;
	cJSON *labels;
	struct cpu_sampler cpu;
	char logs_dir[PATH_MAX], tasks_dir[PATH_MAX]; /* absolute */
	char runc_root[PATH_MAX];                     /* absolute */
	struct pollfd *pfds;   /* the loop's poll set, grown as needed */
	size_t npfds_cap;
	struct seal_ctx *seal;
	char last_error[256];  /* the master's last refusal, logged once */
	bool joined;           /* the master has accepted our key */
};

#endif
