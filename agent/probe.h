/*
 * probe.h - health probes of serving containers: http, tcp or exec.
 *
 * THE PROBE LOOP.  Probes run inside the agent's single-threaded poll loop
 * and never block it.  A probe is a small state machine: idle until its due
 * time (probe_next_ms), then one check in flight until it ends or its
 * deadline (start + timeout_ms) passes, then idle again until start +
 * interval_ms.  An http or tcp check is a non-blocking socket: connect
 * (EINPROGRESS), wait for POLLOUT, check SO_ERROR; tcp is done there, http
 * sends one "GET PATH HTTP/1.1" with "Connection: close" and reads only the
 * status line.  While in flight the probe lends the loop one pollfd
 * (probe_pollfd) and the loop hands back its revents (probe_step).  An exec
 * check is "runc --root ROOT exec CONTAINER CMD..." started with posix_spawn
 * (never fork: nng runs threads); the loop's SIGCHLD handler passes the exit
 * to probe_child_exited, and a check past its deadline is SIGKILLed.  The
 * loop's poll timeout is the earliest probe_next_ms, which is a due time or
 * an in-flight deadline.  Cost: an idle probe is one comparison per loop
 * turn; a check is one socket and two or three syscalls (or one process for
 * exec), one pollfd while in flight; a probe holds ~2 KiB.  Names are
 * resolved once, in probe_new (the master sends addresses, so that is a
 * numeric parse; a host name costs one resolver call there).
 *
 * VERDICTS.  A probe starts "unknown"; its first check comes one interval
 * after the container started (a check at the start would only find the
 * server not listening yet).  successes consecutive passes make it
 * healthy, failures consecutive failures make it unhealthy; only a change of
 * verdict is reported (probe_step returns 1).  Failures before grace_ms has
 * passed since the container started do not count (and reset the run of
 * passes); passes count at once.
 *
 * Not thread-safe: one owner (the agent's loop).  Time is monotonic ms
 * (util.h now_ms), passed in so that tests can drive it.
 */
#ifndef MLSCHED_PROBE_H
#define MLSCHED_PROBE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cjson/cJSON.h>

#include "runc.h"

#define PROBE_REASON_LEN 320
#define PROBE_EXEC_ARGS_MAX 64
/* Defaults for fields the health object leaves out. */
#define PROBE_INTERVAL_MS 1000
#define PROBE_TIMEOUT_MS 1000
#define PROBE_FAILURES 3
#define PROBE_SUCCESSES 1

enum probe_state { PROBE_UNKNOWN = 0, PROBE_HEALTHY, PROBE_UNHEALTHY };

struct probe;

/*
 * A probe from a start order's "health" object: exactly one of
 * "http": "http://HOST:PORT/PATH", "tcp": "HOST:PORT",
 * "exec": ["cmd", "arg", ...], and optional "interval_ms", "timeout_ms",
 * "failures", "successes", "grace_ms".  container_id and r name the
 * container an exec check runs in (both copied).  started is the monotonic
 * ms at which the container started (grace counts from there; an adopted
 * container's start may lie in the past); the first check is due one
 * interval after it (at once when that is past).
 * Returns a new probe (free with probe_free), or NULL with the reason in why
 * ("health: ...").
 */
struct probe *probe_new(const cJSON *health, const char *container_id, const struct runc *r,
			uint64_t started, uint64_t now, char *why, size_t whylen);
/* The container has started now (a probe made before runc ran, to refuse a
 * bad health object before anything starts): grace and the first check
 * count from started, not from probe_new's, which can be hundreds of ms
 * earlier on a loaded node.  Call before the first probe_step. */
void probe_started(struct probe *p, uint64_t started);
/* Ends a check in flight (closes its socket, SIGKILLs and reaps its exec
 * process) and frees p.  NULL is fine. */
void probe_free(struct probe *p);

/* Monotonic ms at which probe_step has something to do: the next check, or
 * the deadline of the one in flight. */
uint64_t probe_next_ms(const struct probe *p);
/* The descriptor to watch while a socket check is in flight: true with *out
 * filled (revents cleared), false when there is none. */
bool probe_pollfd(const struct probe *p, struct pollfd *out);
/*
 * Advance p: start a check that is due, take revents (those of the pollfd
 * from probe_pollfd, 0 when it had none or nothing happened) for the one in
 * flight, time it out, take an exec exit.  Call it every loop turn (it is
 * cheap when nothing is due).  Returns 1 when the verdict changed (read it
 * with probe_state, probe_reason, probe_at, probe_streak), else 0.
 */
int probe_step(struct probe *p, uint64_t now, short revents);
/*
 * pid was reaped with status: if it is p's exec check, record its result for
 * the next probe_step and return true; false when p does not own pid.
 */
bool probe_child_exited(struct probe *p, pid_t pid, int status);

enum probe_state probe_state(const struct probe *p);
/* "unknown", "healthy" or "unhealthy". */
const char *probe_state_str(enum probe_state s);
/* The last check's result: "GET http://127.0.0.1:20001/healthz: status 404",
 * "connect 127.0.0.1:20001: connection refused", "exec /bin/false: exit 1",
 * "...: timed out after 300 ms".  Owned by p. */
const char *probe_reason(const struct probe *p);
/* Wall-clock ms of the last check's result. */
uint64_t probe_at(const struct probe *p);
/* Consecutive results behind the current verdict (passes when healthy,
 * counted failures when unhealthy). */
uint32_t probe_streak(const struct probe *p);
/* What is checked, for logs: "GET http://...", "connect H:P", "exec CMD". */
const char *probe_target(const struct probe *p);

#endif
