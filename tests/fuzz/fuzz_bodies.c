/*
 * fuzz_bodies.c - libFuzzer harness for the JSON bodies the daemons accept.
 *
 * The handlers themselves (master/api.c, master/agents.c agents_handle and
 * apply_event, agent/session.c handle_orders) work on the master's and the
 * agent's whole state (jobs, nodes, the store, running tasks), so they do
 * not link without a daemon.  What they do with a body before touching that
 * state is common code, and that is what this harness drives, the way they
 * drive it, for a frame of any type:
 *
 *   - wire_decode, as both daemons' receive paths call it;
 *   - SUBMIT and ROLLOUT: spec_from_json on "spec" (api.c), with the
 *     request_id / job accessors;
 *   - SYNC (agent -> master): every field agents_handle, update_capacity,
 *     apply_event and reconcile read, with their limits, over capacity,
 *     util, events[] and tasks[];
 *   - ORDERS (master -> agent): every field handle_orders and task_start
 *     read, and the one agent parser that links on its own: probe_new
 *     (agent/probe.c) on each start order's "health" object, as task_start
 *     calls it.  Host names in probes are resolved with AI_NUMERICHOST
 *     here (see getaddrinfo below), so the fuzzer never waits on DNS;
 *   - any other type: the accessors api.c uses for it.
 *
 * Nothing is asserted about what the daemons then do; the sanitizers watch
 * every read, and the accessors' contracts are checked as in fuzz_wire.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "probe.h"
#include "seal.h"
#include "spec_check.h"
#include "util.h"
#include "wire.h"

/* Limits as the handlers spell them (master.h, agent.h, res.h). */
#define NODE_NAME_MAX 63
#define MAX_EVENTS 4096
#define MAX_TASKS_LISTED 65536
#define LOG_CHUNK_MAX (64 * 1024)

/* Numeric host names only: the real resolver, told not to look names up. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *,
			   struct addrinfo **);
	struct addrinfo h = {0};

	if (!real)
		real = (int (*)(const char *, const char *, const struct addrinfo *,
				struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
	if (hints)
		h = *hints;
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

static void str(const cJSON *o, const char *k, size_t max)
{
	const char *s = NULL;
	int rv = wire_get_str(o, k, max, &s);

	FZ_CHECK(rv != 0 || strlen(s) <= max);
}

static void u64(const cJSON *o, const char *k, uint64_t max)
{
	uint64_t v = 0;
	int rv = wire_get_u64(o, k, max, &v);

	FZ_CHECK(rv != 0 || v <= max);
}

static void i64(const cJSON *o, const char *k, int64_t min, int64_t max)
{
	int64_t v = 0;
	int rv = wire_get_int(o, k, min, max, &v);

	FZ_CHECK(rv != 0 || (v >= min && v <= max));
}

static void flag(const cJSON *o, const char *k)
{
	bool b;

	wire_get_bool(o, k, &b);
}

static const cJSON *arr(const cJSON *o, const char *k, size_t max)
{
	const cJSON *a = NULL;

	if (wire_get_array(o, k, max, &a) != 0)
		return NULL;
	FZ_CHECK((size_t)cJSON_GetArraySize(a) <= max);
	return a;
}

static const cJSON *obj(const cJSON *o, const char *k)
{
	const cJSON *v = NULL;

	return wire_get_object(o, k, &v) == 0 ? v : NULL;
}

static void submit_spec(const cJSON *body)
{
	const cJSON *sj = obj(body, "spec");
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL;
	int rv;

	str(body, "request_id", 39);
	if (!sj)
		return;
	rv = spec_from_json(sj, &s, err, sizeof(err));
	if (rv != 0) {
		check_spec_err(rv, err, sizeof(err));
		return;
	}
	check_spec(s);
	spec_free(s);
}

/* agents_handle, update_capacity, apply_event, reconcile. */
static void sync_body(const cJSON *body)
{
	const cJSON *cap, *util, *a, *e;
	const char *join = NULL;
	uint8_t pk[SEAL_PK_LEN], secret[SEAL_SECRET_LEN];

	str(body, "node", NODE_NAME_MAX);
	str(body, "boot", 39);
	str(body, "master_boot", 39);
	u64(body, "ack", UINT64_MAX >> 11);
	flag(body, "ping");
	if (wire_get_str(body, "join", SEAL_TOKEN_LEN, &join) == 0)
		seal_token_parse(join, pk, secret);
	if ((cap = obj(body, "capacity"))) {
		str(cap, "address", 63);
		u64(cap, "cpu_milli", UINT32_MAX);
		u64(cap, "memory", UINT64_MAX >> 11);
		if ((a = arr(cap, "gpus", RES_MAX_GPUS))) {
			cJSON_ArrayForEach(e, a)
			{
				u64(e, "index", 1024);
				u64(e, "memory", UINT64_MAX >> 11);
				str(e, "model", RES_MODEL_LEN - 1);
			}
		}
		arr(cap, "ports", 2);
		obj(cap, "labels");
	}
	if ((util = obj(body, "util"))) {
		i64(util, "cpu_pct", 0, 100);
		u64(util, "mem_used", UINT64_MAX >> 11);
		arr(util, "gpus", RES_MAX_GPUS);
	}
	if ((a = arr(body, "events", MAX_EVENTS))) {
		cJSON_ArrayForEach(e, a)
		{
			u64(e, "seq", UINT64_MAX >> 11);
			str(e, "type", 32);
			u64(e, "req", UINT64_MAX >> 11);
			u64(e, "job", UINT64_MAX >> 11);
			u64(e, "task", SPEC_MAX_TASKS);
			u64(e, "attempt", UINT32_MAX);
			str(e, "reason", 255);
			i64(e, "code", INT32_MIN, INT32_MAX);
			i64(e, "signal", 0, 128);
			flag(e, "healthy");
			u64(e, "at", UINT64_MAX >> 11);
			/* A log event's reply fields (api_log_reply). */
			str(e, "error", 512);
			str(e, "data", 4 * LOG_CHUNK_MAX / 3 + 8);
			u64(e, "offset", UINT64_MAX >> 11);
			flag(e, "eof");
			flag(e, "running");
		}
	}
	if ((a = arr(body, "tasks", MAX_TASKS_LISTED))) {
		cJSON_ArrayForEach(e, a)
		{
			str(e, "state", 16);
			u64(e, "cpu_ns", UINT64_MAX >> 11);
			u64(e, "mem", UINT64_MAX >> 11);
			str(e, "health", 16);
			u64(e, "job", UINT64_MAX >> 11);
			u64(e, "task", SPEC_MAX_TASKS);
			u64(e, "attempt", UINT32_MAX);
		}
	}
}

/* handle_orders, task_start, task_stop, send_log. */
static void orders_body(const cJSON *body)
{
	const cJSON *a, *o;

	str(body, "boot", 39);
	u64(body, "ack", UINT64_MAX >> 11);
	if (!(a = arr(body, "orders", 100000)))
		return;
	cJSON_ArrayForEach(o, a)
	{
		const cJSON *health = NULL;
		char why[256];
		struct probe *p;

		u64(o, "seq", UINT64_MAX >> 11);
		str(o, "op", 16);
		u64(o, "job", UINT64_MAX >> 11);
		u64(o, "task", SPEC_MAX_TASKS);
		u64(o, "attempt", UINT32_MAX);
		u64(o, "grace_ms", 3600000);
		str(o, "reason", 512);
		u64(o, "req", UINT64_MAX >> 11);
		u64(o, "offset", UINT64_MAX >> 11);
		u64(o, "max", LOG_CHUNK_MAX);
		str(o, "image", 4096);
		str(o, "workdir", 4096);
		u64(o, "memory", UINT64_MAX >> 11);
		u64(o, "cpu_milli", UINT32_MAX);
		u64(o, "gpus_milli", 1000000);
		u64(o, "port", 65535);
		arr(o, "command", SPEC_MAX_ARGS);
		if (wire_get_object(o, "health", &health) != 0)
			continue;
		why[0] = '\0';
		p = probe_new(health, "mls-1-0", NULL, 1000, 1000, why, sizeof(why));
		FZ_CHECK(p != NULL || why[0] != '\0');
		FZ_CHECK(strnlen(why, sizeof(why)) < sizeof(why));
		probe_free(p);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *frame = xmalloc(size ? size : 1);
	struct wire_hdr h;
	cJSON *body = NULL;

	if (size)
		memcpy(frame, data, size);
	if (wire_decode(frame, size, &h, &body, NULL, 0) != 0)
		goto out;
	switch (h.type) {
	case WIRE_SUBMIT:
	case WIRE_ROLLOUT:
		submit_spec(body);
		str(body, "job", 256);
		str(body, "image", 4096);
		arr(body, "command", SPEC_MAX_ARGS);
		obj(body, "env");
		break;
	case WIRE_SYNC:
		sync_body(body);
		break;
	case WIRE_ORDERS:
		orders_body(body);
		break;
	case WIRE_LOGS:
		str(body, "job", 256);
		u64(body, "task", SPEC_MAX_TASKS);
		u64(body, "offset", UINT64_MAX >> 11);
		u64(body, "max", LOG_CHUNK_MAX);
		break;
	case WIRE_DRAIN:
	case WIRE_UNCORDON:
		str(body, "node", NODE_NAME_MAX);
		flag(body, "evict");
		break;
	case WIRE_SCALE:
		str(body, "job", 256);
		u64(body, "replicas", SPEC_MAX_TASKS);
		u64(body, "standby", SPEC_MAX_TASKS);
		break;
	case WIRE_ROLLBACK:
		str(body, "job", 256);
		u64(body, "to", UINT32_MAX);
		break;
	case WIRE_ERROR:
		i64(body, "code", INT32_MIN, INT32_MAX);
		str(body, "message", 200);
		str(body, "leader_agents", 1024);
		break;
	default:
		str(body, "job", 256);
		flag(body, "all");
		break;
	}
out:
	cJSON_Delete(body);
	free(frame);
	return 0;
}
