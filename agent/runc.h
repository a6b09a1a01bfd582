/*
 * runc.h - OCI bundles and the runc command line.
 *
 * The agent never links libcontainer: it writes a bundle (config.json beside a
 * rootfs path) and runs the runc binary with posix_spawn (the agent is
 * threaded through nng, so no bare fork).  Every runc call gets
 * "--root RUNC_ROOT" so that each agent keeps its own container list.
 * Failures carry runc's own stderr message in why.
 */
#ifndef MLSCHED_RUNC_H
#define MLSCHED_RUNC_H

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RUNC_ID_MAX 128 /* container ids: [A-Za-z0-9_.-]+ */
#define RUNC_WHY_LEN 512

struct runc {
	const char *bin;  /* "runc" (looked up in PATH) or a path */
	const char *root; /* runc --root folder */
};

struct bundle_opts {
	const char *rootfs;        /* image folder, mounted read-only as / */
	const char *const *args;   /* process.args, nargs >= 1 */
	size_t nargs;
	const char *const *env;    /* "KEY=VALUE" strings, PATH/HOME added if absent */
	size_t nenv;
	const char *cwd;           /* inside the container, default "/work" */
	const char *work_host;     /* host folder bind-mounted read-write at /work */
	const char *tmp_host;      /* host folder bind-mounted read-write at /tmp */
	const char *hostname;      /* container hostname (UTS namespace) */
	const char *cgroup_path;   /* linux.cgroupsPath, e.g. "/mlsched/<id>" */
	uint64_t mem_limit;        /* bytes, 0 = none */
	uint32_t cpu_milli;        /* CFS quota = cpu_milli * period / 1000; 0 = none */
	const uint32_t *gpus;      /* device indices assigned */
	size_t ngpus;
	bool gpu_devices;          /* add /dev/nvidia{ctl,-uvm,N} device nodes that exist */
};

/*
 * Write <dir>/config.json for o (dir must exist).  The container shares the
 * host network namespace and gets its own pid, ipc, uts and mount namespaces,
 * no new privileges, the default runc capability set, /proc, /dev, /dev/pts,
 * /dev/shm, /sys (read-only).  0 or ERR_IO / ERR_INVAL.
 */
int bundle_write(const char *dir, const struct bundle_opts *o, char *why, size_t whylen);

/*
 * "runc run --detach --pid-file <bundle>/pid --bundle <bundle> <id>" with the
 * container's stdout and stderr both sent to log_fd.  Returns once the
 * container is running, with its host pid in *pid.  The caller should be a
 * child subreaper (prctl PR_SET_CHILD_SUBREAPER) so that the container's exit
 * reaches its waitpid().  ERR_RUNC with runc's message in why.
 */
int runc_run(const struct runc *r, const char *id, const char *bundle, int log_fd, pid_t *pid,
	     char *why, size_t whylen);
/* runc kill [--all] <id> <sig>. */
int runc_kill(const struct runc *r, const char *id, int sig, char *why, size_t whylen);
/* runc delete [--force] <id>.  A container runc does not know gives ERR_NOENT. */
int runc_delete(const struct runc *r, const char *id, bool force, char *why, size_t whylen);
/* runc state <id>: status into buf ("running", "stopped", "created", "paused")
 * and the pid.  ERR_NOENT when runc does not know the container. */
int runc_state(const struct runc *r, const char *id, char *status, size_t len, pid_t *pid,
	       char *why, size_t whylen);
/* Ids of every container under r->root (runc list -q).  *ids is a malloc'd
 * array of malloc'd strings; free with runc_ids_free. */
int runc_list(const struct runc *r, char ***ids, size_t *n, char *why, size_t whylen);
void runc_ids_free(char **ids, size_t n);

/* True for an id runc accepts and we can use in paths. */
bool runc_id_ok(const char *id);

/*
 * Run argv (argv[0] looked up in PATH) with posix_spawnp, stdin from
 * /dev/null, stdout to out_fd (or /dev/null when -1), and stderr captured into
 * err (NUL-terminated, cut to errlen).  Waits for it and returns its exit
 * status in *status (as waitpid reports it).  0 or ERR_SYS.
 */
int proc_run(const char *const argv[], int out_fd, int *status, char *err, size_t errlen);


#endif
