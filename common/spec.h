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

enum spec_kind { SPEC_TRAIN = 0, SPEC_SERVE, SPEC_BATCH };
enum spec_restart { RESTART_NEVER = 0, RESTART_ON_FAILURE, RESTART_ALWAYS };

struct spec_env {
	char *key; /* [A-Za-z_][A-Za-z0-9_]* */
	char *val;
};

struct spec_health {
	bool set;
	char *http;     /* "http://127.0.0.1:8080/healthz" or NULL */
	char **exec;    /* command run inside the container, or NULL */
	size_t nexec;
	uint64_t interval_ms, timeout_ms; /* defaults 1s, 500ms */
	uint32_t failures;                /* default 3 */
};

struct spec_autoscale {
	bool set;
	uint32_t min, max;       /* 1 <= min <= max */
	uint32_t target_gpu_util; /* percent, 1..100 */
	uint64_t cooldown_ms;     /* default 30s */
};

struct spec {
	char *name;          /* required */
	enum spec_kind kind; /* required: train | serve | batch */
	char *image;         /* required: absolute rootfs path or oci:... */
	char **command;      /* required, at least one element */
	size_t ncommand;
	char *workdir;       /* cwd inside the container, default "/work" */
	uint32_t workers;    /* train: default 1 */
	uint32_t replicas;   /* serve: default 1 */
	uint32_t standby;    /* serve: default 0 */
	uint32_t array;      /* batch: default 1 */
	uint32_t parallelism;/* batch: default = array */
	struct res res;      /* defaults: 0 GPUs, 128M memory, 100m CPU */
	char *gpu_model;     /* optional substring match on the GPU model */
	int32_t priority;    /* -1000..1000, default 0 */
	enum spec_restart restart; /* default never (train/batch), always (serve) */
	uint32_t restart_max;      /* default 3 */
	struct spec_env *env;
	size_t nenv;
	char *policy;        /* placement policy name or NULL */
	char **constraints;  /* node label constraints: "zone=a", "pool!=cloud",
			      * "gpu in (a100, h100)"; the master checks them */
	size_t nconstraints;
	struct spec_health health;
	struct spec_autoscale autoscale;
};

/* Parse YAML text.  path is used only in messages.  On success *out is a new
 * spec (spec_free it); on failure returns ERR_INVAL and writes one message
 * line into err (SPEC_ERR_LEN bytes is enough). */
int spec_parse_yaml(const char *path, const char *text, size_t len, struct spec **out, char *err,
		    size_t errlen);
/* Read and parse a file (at most SPEC_MAX_BYTES). */
int spec_parse_file(const char *path, struct spec **out, char *err, size_t errlen);

/* Canonical JSON form (every field, defaults filled in).  Caller owns it. */
cJSON *spec_to_json(const struct spec *s);
/* From JSON, validated like YAML input.  Same contract as spec_parse_yaml. */
int spec_from_json(const cJSON *j, struct spec **out, char *err, size_t errlen);

/* Number of tasks the job expands into (workers, replicas + standby, array). */
uint32_t spec_ntasks(const struct spec *s);
const char *spec_kind_str(enum spec_kind k);
const char *spec_restart_str(enum spec_restart r);
/* Job names: 1..SPEC_NAME_MAX chars, [a-z0-9] first, then [a-z0-9._-]. */
bool spec_name_ok(const char *name);

void spec_free(struct spec *s); /* NULL is fine */

#endif
