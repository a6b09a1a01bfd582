/*
 * spec.h - the job spec: parsed from YAML (libyaml), carried as JSON (cJSON).
 *
 * The YAML format is DESIGN.md's.  Errors name the file, the line, the field
 * path and the reason, e.g.
 *     job.yaml:12: resources.memory: "12Q" is not a size
 * Unknown keys are errors ("job.yaml:4: imgae: unknown field"), so typos never
 * pass silently.  spec_from_json() applies the same validation to a spec that
 * came over the wire, with "spec" as the file name and no line.
 */
#ifndef MLSCHED_SPEC_H
#define MLSCHED_SPEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <cjson/cJSON.h>

#include "res.h"

#define SPEC_MAX_BYTES (256 * 1024) /* a spec file */
#define SPEC_NAME_MAX 63            /* [a-z0-9] then [a-z0-9._-]* */
#define SPEC_MAX_ARGS 256
#define SPEC_MAX_ENV 256
#define SPEC_MAX_TASKS 10000        /* workers, replicas + standby, array */
#define SPEC_MAX_CONSTRAINTS 16
#define SPEC_ERR_LEN 512
#define SPEC_MAX_ROLES 16           /* roles of one train job */
#define SPEC_ROLE_NAME_MAX 31       /* [a-z] then [a-z0-9_-]* */

enum spec_kind { SPEC_TRAIN = 0, SPEC_SERVE, SPEC_BATCH };
enum spec_restart { RESTART_NEVER = 0, RESTART_ON_FAILURE, RESTART_ALWAYS };

struct spec_env {
	char *key; /* [A-Za-z_][A-Za-z0-9_]* */
	char *val;
};

/*
 * A serving replica's health check: exactly one of http, tcp and exec.  The
 * agent runs it every interval; failures consecutive failures make the
 * replica unhealthy, successes consecutive successes healthy again, and
 * failures during the first grace after start do not count.  In http and tcp
 * the literal text "$PORT" stands for the port the agent hands the task;
 * spec_health_target() resolves both to what is probed.
 */
struct spec_health {
	bool set;
	char *http;     /* "/healthz" (probed at the task's $PORT) or a full
			 * "http://HOST[:PORT]/PATH" that may contain $PORT; or NULL */
	char *tcp;      /* "$PORT", "8080", "HOST:8080" or "HOST:$PORT"; or NULL */
	char **exec;    /* command run inside the container, or NULL */
	size_t nexec;
	uint64_t interval_ms, timeout_ms; /* defaults 1s, 500ms */
	uint32_t failures;                /* default 3, 1..1000000 */
	uint32_t successes;               /* default 1, 1..1000000 */
	uint64_t grace_ms;                /* default 0 */
};

/*
 * One role of a multi-role training gang (train, roles:), like TFJob's chief,
 * worker, ps and evaluator.  A parsed spec holds every role resolved: a role
 * that gave no resources block has the job's (the block as a whole, not
 * field by field), one without image or command has the job's, and env is
 * the job's env with the role's own variables added (the role's value wins
 * for a key both set).  Tasks are numbered role after role in the order the
 * spec lists the roles.  The required roles (not optional) are one gang,
 * placed all or nothing; an optional role's tasks are placed one by one once
 * the gang runs, whenever they fit (README, "Multi-role training gangs").
 */
struct spec_role {
	char *name;        /* [a-z][a-z0-9_-]*, at most SPEC_ROLE_NAME_MAX */
	uint32_t count;    /* tasks of this role, default 1 */
	bool optional;     /* default false */
	bool own_res;      /* it gave resources: (else res is the job's) */
	struct res res;    /* per task */
	char *gpu_model;   /* or NULL */
	char *image;       /* never NULL once parsed */
	char **command;    /* never empty once parsed */
	size_t ncommand;
	struct spec_env *env;
	size_t nenv;
};

/* Exactly one of target_gpu_util and target_cpu_util is set (the other is 0). */
struct spec_autoscale {
	bool set;
	uint32_t min, max;        /* 1 <= min <= max */
	uint32_t target_gpu_util; /* percent, 1..100, or 0 */
	uint32_t target_cpu_util; /* percent, 1..100, or 0 */
	uint64_t window_ms;       /* the signal is averaged over it; default 30s */
	uint64_t cooldown_ms;     /* default 30s */
};

struct spec {
	char *name;          /* required */
	enum spec_kind kind; /* required: train | serve | batch */
	char *image;         /* required: absolute rootfs path or oci:... */
	char **command;      /* required, at least one element (with roles:
			      * optional when every role has its own; then NULL) */
	size_t ncommand;
	char *workdir;       /* cwd inside the container, default "/work" */
	uint32_t workers;    /* train: default 1; 0 with roles */
	uint32_t replicas;   /* serve: default 1 */
	uint32_t standby;    /* serve: default 0 */
	uint32_t array;      /* batch: default 1 */
	uint32_t parallelism;/* batch: default = array */
	struct res res;      /* defaults: 0 GPUs, 128M memory, 100m CPU */
	char *gpu_model;     /* optional substring match on the GPU model */
	int32_t priority;    /* -1000..1000, default 0 */
	enum spec_restart restart; /* default never (train/batch), always (serve) */
	uint32_t restart_max;      /* default 3 */
	uint32_t reschedule_max;   /* reschedule: {max}: times work lost with its
				    * node is placed again elsewhere; default 3,
				    * 0 turns it off; all kinds */
	struct spec_env *env;
	size_t nenv;
	char *policy;        /* placement policy name or NULL */
	char *queue;         /* team queue (mlmaster --queues) or NULL */
	char **constraints;  /* node label constraints: "zone=a", "pool!=cloud",
			      * "gpu in (a100, h100)"; the master checks them */
	size_t nconstraints;
	struct spec_health health;
	struct spec_autoscale autoscale;
	uint32_t max_cost_milli; /* max_cost_per_gpu_hour, in thousandths: nodes
				  * whose pool costs more per GPU hour are
				  * infeasible; 0 = no cap */
	uint64_t rollout_deadline_ms; /* serve, rollout: {deadline}: how long a new
				       * version's replica may take to become
				       * healthy before the rollout rolls back;
				       * default 2m (0 for other kinds) */
	struct spec_role *roles; /* train, roles: (not with workers:), or NULL */
	size_t nroles;
};

/* Parse YAML text.  path is used only in messages.  On success *out is a new
 * spec (spec_free it); on failure returns ERR_INVAL and writes one message
 * line into err (SPEC_ERR_LEN bytes is enough). */
int spec_parse_yaml(const char *path, const char *text, size_t len, struct spec **out, char *err,
		    size_t errlen);
/* Read and parse a file (at most SPEC_MAX_BYTES). */
int spec_parse_file(const char *path, struct spec **out, char *err, size_t errlen);

/* Canonical JSON form (every field, defaults filled in, unset optional
 * fields as null).  Keys are the YAML ones except where a unit is folded
 * into the number: gpus -> gpus_milli, cpus -> cpu_milli, memory and
 * gpu_memory in bytes, durations as *_ms (health.interval_ms, timeout_ms,
 * grace_ms; autoscale.window_ms, cooldown_ms; rollout.deadline_ms).
 * health.tcp is always a string.  Caller owns it. */
cJSON *spec_to_json(const struct spec *s);
/* From JSON, validated like YAML input.  Same contract as spec_parse_yaml. */
int spec_from_json(const cJSON *j, struct spec **out, char *err, size_t errlen);

/*
 * What the agent probes for an http or tcp check of a task on port (every
 * "$PORT" replaced by it): an http path gives "http://127.0.0.1:PORT/PATH",
 * a URL is kept with $PORT replaced; tcp "$PORT" and "N" give
 * "127.0.0.1:PORT" and "127.0.0.1:N", "HOST:$PORT" gives "HOST:PORT".
 * Writes a NUL-terminated string into out and returns 0; returns ERR_INVAL
 * (out holds "") when the check is exec or not set, when the result does not
 * fit in len bytes, or when the check uses the task's port and port is 0 or
 * above 65535.
 */
int spec_health_target(const struct spec_health *h, uint32_t port, char *out, size_t len);

/*
 * Whether b may replace a by a rollout: true when the two specs differ at
 * most in image, command and env.  Otherwise false, with why (len bytes, may
 * be NULL) naming the first other field in canonical JSON order that
 * differs, one level deep for objects, e.g. "resources.memory differs: a
 * rollout may change only image, command and env".  why is "" on true.
 * Field names are the JSON ones (health.interval_ms).
 */
bool spec_same_except_version(const struct spec *a, const struct spec *b, char *why, size_t len);

/* Number of tasks the job expands into (workers or the roles' counts,
 * replicas + standby, array). */
uint32_t spec_ntasks(const struct spec *s);
/* The role task idx belongs to, and its index within that role (*index,
 * may be NULL); NULL when the job has no roles or idx is out of range. */
const struct spec_role *spec_task_role(const struct spec *s, uint32_t idx, uint32_t *index);
/* Which roles form the torch world (torchrun's RANK/WORLD_SIZE) of a role
 * job: "chief" or "master" (rank 0, like PyTorchJob's master) and "worker",
 * in the spec's order with chief/master first. */
bool spec_role_in_world(const struct spec_role *r);
const char *spec_kind_str(enum spec_kind k);
const char *spec_restart_str(enum spec_restart r);
/* Job names: 1..SPEC_NAME_MAX chars, [a-z0-9] first, then [a-z0-9._-]. */
bool spec_name_ok(const char *name);

void spec_free(struct spec *s); /* NULL is fine */

#endif
