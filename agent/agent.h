/*
 * agent.h - mlagent's state and the functions its files share.  One thread
 * owns all of it: the loop in main.c waits on the master socket, a signalfd
 * (SIGCHLD, SIGTERM, SIGINT), the pidfds of shims it adopted, the sockets of
 * health checks in flight, and its timers.
 *
 *   main.c     options, set-up, the poll loop
 *   session.c  the master session: events, orders, the SYNC message
 *   task.c     the task table: start, stop, ends, reattach after a restart,
 *              ports and health probes of running tasks
 *   shim.c     the per-task shim process and the task folder's files
 *   probe.c    health checks (probe.h)
 *   gpus.c     the GPUs: found at start, read at each SYNC, errors reported
 *   runc.c     bundles and runc calls (runc.h)
 *   image.c    rootfs folders and the cache of unpacked OCI images (image.h)
 *
 * Each task runs under its own shim ("mlagent-shim shim DIR", see shim.c): a
 * child subreaper that starts the container with runc, reaps its init and
 * writes the exit status to DIR/exit.  Shims outlive the agent, so an agent
 * restart leaves containers running: the new agent finds each task's folder
 * (DIR/meta.json), adopts its live shim (a pidfd, since it is no longer our
 * child) or reads the exit it recorded meanwhile.
 *
 * Nothing here is thread-safe, and nothing needs to be.
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
#include "image.h"
#include "probe.h"
#include "runc.h"
#include "seal.h"
#include "sysinfo.h"
#include "metrics.h"

struct atask {
	uint64_t job;
	uint32_t idx;
	uint32_t attempt;      /* the master's count of requeues of this task */
	char id[RUNC_ID_MAX];  /* runc container id */
	char dir[PATH_MAX];    /* bundle folder */
	char cgroup[256];
	char image[IMAGE_ENTRY_LEN]; /* the image cache entry it runs from, "" = none */
	pid_t pid;             /* container init, on the host */
	pid_t shim;            /* its shim: our child, or adopted after a restart */
	int pidfd;             /* adopted shim's pidfd, -1 if none */
	bool adopted;          /* shim started by an earlier agent process */
	bool stopping;
	bool killed;           /* SIGKILL sent */
	uint64_t kill_at;      /* monotonic ms: SIGKILL if still running */
	cJSON *next_start;     /* start order of a later attempt, run once this
				* one has ended (they share the container id) */
	uint16_t port;         /* the master's port for it (PORT), 0 = none */
	struct probe *probe;   /* its health probe while it runs, or NULL */
	bool has_health;       /* it has a probe (health below is reported) */
	enum probe_state health; /* the probe's last verdict */
	int pfd;               /* index of the probe's pollfd this turn, -1 */
	bool log_capped;       /* its log passed --log-max (said once) */
	struct atask *next;
};

struct agent_cfg {
	const char *master, *name, *state_dir, *gpus, *labels, *runc_bin, *runc_root, *address;
	const char *join;
	const char *metrics_listen; /* HOST:PORT, NULL = off */
	const char *ports;       /* --ports LO-HI */
	uint64_t logs_keep;      /* --logs-keep bytes */
	uint64_t log_max;        /* --log-max bytes kept per attempt (logcap.h) */
	const char *nvml_lib;    /* --nvml-lib: the NVML library to dlopen */
	const char *umoci_bin;   /* --umoci: unpacks oci: images */
	uint64_t image_cache_max; /* --image-cache-max entries, 0 = no bound */
	uint64_t cpus_milli, memory, heartbeat_ms;
	bool insecure;
	bool stop_tasks_on_exit; /* SIGTERM/SIGINT kill the containers too */
};

#define RAN_MAX 4096
/* The capacity's "gpu_error" text, NUL included: the master takes at most
 * 255 bytes (master.h's REASON_MAX). */
#define GPU_REPORT_MAX 256

struct agent {
	struct {
		uint64_t job;
		uint32_t idx, attempt;
	} ran[RAN_MAX];  /* recent starts, see task_ran_before() */
	size_t ran_next;
	struct agent_cfg cfg;
	struct runc runc;
	nng_socket sock;
	int sock_fd;           /* readable when a reply waits (poll set) */
	int closed_fds[2];     /* readable when the master connection closed */
	bool sock_open;
	/* --master, split at commas: HA masters, one of them the leader. */
	char **masters;
	size_t nmasters, cur_master;
	char *leader_url;      /* named by a follower; used until it fails */
	uint64_t last_reply;   /* monotonic ms of the master's last answer */
	uint64_t sync_retry_ms; /* backoff while a SYNC cannot be sent */
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
	/* What the SYNCs in between heartbeats leave out (session_sync):
	 * when the last full one went, and the capacity last sent, to whom. */
	uint64_t beat_at;      /* monotonic ms */
	char *cap_sent;        /* its JSON text, owned; NULL: send it */
	char cap_boot[40];     /* the master_boot it went to */
	uint64_t cap_at;       /* monotonic ms */
	/* capacity */
	const struct gpu_ops *gpu;
	void *gpu_ctx;
	struct gpu_info gpus[GPU_MAX]; /* as found at start (gpus.c) */
	size_t ngpus;
	char gpu_error[GPU_REPORT_MAX]; /* the capacity's "gpu_error", "" = none */
	uint32_t cpu_milli;
	uint64_t mem_total;
	uint16_t port_lo, port_hi; /* --ports: what the master hands to tasks */
	cJSON *labels;
	struct cpu_sampler cpu;
	char logs_dir[PATH_MAX], tasks_dir[PATH_MAX]; /* absolute */
	char runc_root[PATH_MAX];                     /* absolute */
	char images_dir[PATH_MAX];                    /* STATE_DIR/images */
	struct image_unpack *unpacks; /* umoci children in flight (image.c) */
	struct pollfd *pfds;   /* the loop's poll set, grown as needed */
	size_t npfds_cap;
	struct seal_ctx *seal;
	char last_error[256];  /* the master's last refusal, logged once */
	/* For --metrics-listen (telemetry.c): what the last heartbeat sampled,
	 * and counts. */
	struct {
		double cpu_pct;
		uint64_t mem_used;
		struct gpu_util gpu[GPU_MAX]; /* entries with error set: no reading */
		size_t ngpu;
		uint64_t started, ended;
		struct metrics_server *server;
	} stats;
	bool joined;           /* the master has accepted our key */
};

/* ---- session.c: the master session ---- */

#define LOG_CHUNK_MAX (64 * 1024)
#define MAX_PENDING_EVENTS 100000
#define EVENTS_PER_SYNC 1000 /* the master takes at most 4096 per message */
#define SYNC_RETRY_MS 10     /* first retry of a SYNC that could not be sent */

/*
 * Queue an event {"seq", "type", "job", "task", "attempt"} for the master and
 * make the next SYNC go at once.  attempt: which run of the task (the master
 * requeues tasks); events of an old attempt must not touch a new one.
 * Returns the event (owned by a->events) for the caller to add fields to.
 */
cJSON *session_event(struct agent *a, const char *type, uint64_t job, uint32_t idx,
		     uint32_t attempt);
/* Send a SYNC request now (capacity, utilization, events, tasks); sets
 * in_flight, sent_at and next_sync. */
void session_sync(struct agent *a);
/* Take every reply waiting on the master socket (without blocking): orders
 * are carried out, refusals logged once; a follower's "not the leader"
 * moves the session to the leader it names. */
void session_receive(struct agent *a);
/* Split cfg.master (comma-separated) and connect to the first master.
 * 0 or an error with why. */
int session_start(struct agent *a, char *why, size_t whylen);
/* A master that has not answered for long (killed, frozen, cut off): move
 * to the next one in the list.  Called every loop turn. */
void session_check(struct agent *a);
/* The master connection closed (closed_fds[0] readable): with several
 * masters, move to the next at once (a killed master closes at once). */
void session_closed(struct agent *a);
void session_close(struct agent *a);

/* ---- task.c: the task table ---- */

struct atask *task_find(struct agent *a, uint64_t job, uint32_t idx);
/* STATE_DIR/logs/JOB-TASK.log; the caller frees it. */
char *task_log_path(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt);
/* Remove the oldest logs of ended tasks while the logs pass --logs-keep. */
void task_logs_trim(struct agent *a);
/* Unlink t from the task list and free it (its probe too); the container
 * and its folder stay (see task_remove). */
void task_forget(struct agent *a, struct atask *t);
/* The task has ended: remove its container and folder (the log is kept),
 * and forget it. */
void task_remove(struct agent *a, struct atask *t);
/*
 * A start order (o, for job/idx/attempt): write the bundle and meta.json,
 * check its port, start the shim, start its probe.  Reports "started" or
 * "failed" (with the reason) as an event; never fails otherwise.
 */
void task_start(struct agent *a, const cJSON *o, uint64_t job, uint32_t idx, uint32_t attempt);
/*
 * A stop order: SIGTERM now and SIGKILL after grace ms (at once when grace
 * is 0).  reason (may be NULL) says why the master wants it gone; with grace
 * 0 it is logged at warn level.  A stop for a run still waiting to start
 * drops it ("gone"); a stop for a task not here reports "gone".
 */
void task_stop(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt, uint64_t grace,
	       const char *reason);
/* t's shim is gone: report the exit it recorded, or else lost_why, remove
 * the task, and start the later attempt waiting for it, if any. */
void task_ended(struct agent *a, struct atask *t, const char *lost_why);
/* SIGCHLD: reap our children: shims (their tasks end) and exec probes
 * (handed to their probe). */
void task_reap(struct agent *a);
/* Shims adopted from an earlier agent that have exited since. */
void task_check_adopted(struct agent *a);
/* SIGKILL stopping tasks whose grace has run out. */
void task_kill_overdue(struct agent *a);
/* Take over what an earlier agent process left (task folders, strays). */
void task_reattach(struct agent *a);
/* SIGTERM/SIGINT: forget the tasks (they keep running) or, with
 * --stop-tasks-on-exit, kill them and report their ends. */
void task_shutdown(struct agent *a);
/* Has this process started (job, idx, attempt) lately?  And remember it. */
bool task_ran_before(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt);
void task_remember_ran(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt);
/*
 * Health probes of the running tasks, for the loop: task_probe_next gives
 * the earliest monotonic ms a probe needs a step (UINT64_MAX for none);
 * task_probe_pollfds appends the pollfds of checks in flight to a->pfds from
 * index np (growing it) and returns the new count; task_probe_step steps
 * every probe with the revents the poll left, and reports changes of
 * verdict ("health" events, log lines).
 */
uint64_t task_probe_next(struct agent *a);
size_t task_probe_pollfds(struct agent *a, size_t np);
void task_probe_step(struct agent *a, uint64_t now);

/* ---- shim.c: the shim and the task folder ---- */

#define SHIM_REPORT_FD 3
#define SHIM_REPORT_MAX 1024
#define SHIM_START_TIMEOUT_MS 120000 /* runc run takes tens of ms */
#define META_MAX (64 * 1024)
#define CMDLINE_MAX 8192

/* "mlagent-shim shim DIR": the shim process itself.  Exit status for main. */
int shim_main(const char *dir);
/* Find mlagent-shim beside our own binary (once, at start-up): 0, or
 * ERR_NOENT / ERR_SYS with the path and the reason in why. */
int shim_locate(char *why, size_t whylen);
/*
 * Start t's shim and wait for its report: 0 with t->shim and t->pid set once
 * the container runs, or ERR_RUNC / ERR_SYS with the reason in why.  A shim
 * that fails exits at once; task_reap() collects it.
 */
int shim_spawn(struct atask *t, char *why, size_t whylen);
/* Take over the live shim of a task an earlier agent started (t->shim):
 * sets t->pidfd.  False when the shim is gone (or the pid is another
 * process now). */
bool shim_adopt(struct atask *t);
/* Has an adopted shim exited? */
bool shim_gone(const struct atask *t);
/* The path of a file in t's folder; the caller frees it. */
char *shim_file(const struct atask *t, const char *name);
/* A number written alone in a small file (a pid, a time): read, write.
 * 0 or an err.h code. */
int shim_read_num(const char *path, uint64_t max, uint64_t *v);
int shim_write_num(const char *path, uint64_t v);
/*
 * Write t's meta.json: job, task, attempt, id, cgroup, runc, runc_root, log
 * (logp), started (wall ms, now), port (when t->port) and health (a copy of
 * the order's object, when not NULL).  0 or ERR_IO with why.
 */
int shim_meta_write(struct agent *a, const struct atask *t, const char *logp,
		    const cJSON *health, char *why, size_t whylen);

/* ---- gpus.c: the node's GPUs ---- */

/*
 * Open the GPU plugin (static with --gpus, else NVML from --nvml-lib), list
 * the GPUs into a->gpus (logged) and set a->gpu_error from the errors of
 * those that could not be read.  A bad --gpus, an NVML that fails to start
 * and a --nvml-lib that is not there are fatal; no NVML under its default
 * name means a node without GPUs (a->gpu NULL).
 */
void gpus_setup(struct agent *a);
/*
 * For each SYNC: read every GPU's utilization and memory in use into
 * a->stats.gpu (all a->ngpus of them; one with its error set has no
 * reading) and set a->gpu_error from the GPUs' errors, logging each change
 * once.  GPUs whose details could not be read at start are tried again.
 */
void gpus_sample(struct agent *a);
/*
 * The "gpu_error" text for gpus[0..n) with errors errs[0..n) (NULL or ""
 * for a GPU that is fine): "GPU I (MODEL): ERROR" ("GPU I: ERROR" when the
 * model is unknown) joined with "; ", cut to fit outlen (NUL included) and
 * ended with "; and N more" when not all fit; "" when no GPU has an error.
 */
void gpus_error_join(const struct gpu_info *gpus, const char *const *errs, size_t n, char *out,
		     size_t outlen);

/* ---- telemetry.c: Prometheus metrics (--metrics-listen) ---- */
int telemetry_start(struct agent *a, char *why, size_t whylen);
void telemetry_serve(struct agent *a); /* every loop turn */
void telemetry_stop(struct agent *a);

#endif
