/*
 * mlbench_agents.c - `mlbench agents`: many simulated agents in one process,
 * speaking the real agent protocol with real sealing to a real mlmaster.
 *
 *   mlbench agents [--count 1000] [--interval 1s] [--tasks-per-agent 4]
 *                  [--window 10s] [--submit N] [--clients 8] [--run-time 0]
 *                  [--conns 0] [--threads 2] [--mlmaster PATH] [--keep]
 *   mlbench agents --master URL --join TOKEN [--client URL --key ADMIN.KEY]
 *                  [--master-pid PID] ...
 *
 * Without --master the tool runs `mlmaster init` in a temporary state folder
 * and starts `mlmaster --state-dir DIR` on two free loopback TCP ports, so
 * the benchmark is one command; the master's log goes to DIR/mlmaster.log and
 * the folder is removed at the end unless --keep.
 *
 * Each simulated agent has its own node name (sim-00000, ...), its own agent
 * key and seal context (seal_ctx_new per agent: the process-wide context of
 * net.c holds one identity, so the agents seal and open their frames with
 * seal_frame/seal_open directly), its own boot id, event and order numbers,
 * and behaves like agent/session.c: it keeps one SYNC in flight, sends a new
 * one every --interval (superseding the held one), asks for an answer
 * ("ping") once it has heard nothing for two intervals, shows the join
 * secret until the master accepts it, answers every reply with a SYNC at
 * once (acknowledging the orders), turns a "start" order into a "started"
 * event at once (and an "exited" event --run-time later, when set), a "stop"
 * order into "exited" (signal 15), and resends its events until the master
 * acknowledges them.  Capacity: 8 GPUs of 80 GB, 128 CPUs, 1 TiB, ports
 * 20000-29999.  As session_sync() does, utilization and the task list go
 * once per interval (and at once to a new master), the capacity only to a
 * master that has not had it, and the SYNCs in between carry the
 * acknowledgements and events alone; --full-syncs puts everything in every
 * SYNC, as agents did before, for a baseline.
 *
 * Transport.  Each connection is a raw nng req socket (xreq): the request id
 * (nng's backtrace) is chosen here, its low 17 bits name the agent, so
 * replies find their agent and a new request never cancels a held one (as
 * with the real agent, the master keeps only the newest).  --conns 0 (the
 * default) gives every agent its own TCP connection, as real agents have;
 * --conns N shares N connections.  Replies arrive on nng's threads (one
 * receive aio per connection), are stamped and handed to the worker thread
 * that owns the agent (--threads); workers build, seal and send SYNCs and
 * handle replies.
 *
 * Phases:
 *   register  every agent joins (its first SYNC carries the join secret)
 *   fill      --tasks-per-agent x --count single-GPU batch jobs (policy
 *             spread), submitted through the client API, until each runs
 *   steady    --window of heartbeats only: the master's CPU (utime+stime
 *             from /proc/PID/stat over the window), the heartbeat round trip
 *             (SYNCs that ask for an answer: sent -> reply received)
 *   submit    --submit N single-task jobs of 1 GPU, built like `mlctl run`
 *             (kind batch, 128M, 0.1 CPU, restart never), sent by --clients
 *             threads (each its own req socket, sealed with the admin key)
 *             as fast as the master answers, until every one is running:
 *             the master has acknowledged its agent's "started" event (that
 *             is, committed the task as running)
 *
 * Exit status: 0 done (targets met or not), 1 the run failed (agents did not
 * join, jobs refused or not running in time), 2 bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "err.h"
#include "net.h"
#include "opt.h"
#include "seal.h"
#include "spec.h"
#include "util.h"
#include "wire.h"

extern char **environ;

#define AG_EXIT_FAIL 1
#define AG_EXIT_BAD 2
#define AG_ID_BITS 17 /* agent index in a request id */
#define AG_MAX_AGENTS ((1u << AG_ID_BITS) - 1)
#define AG_GPUS 8
#define AG_GPU_MEM (80ull << 30)
#define AG_MEM (1ull << 40)
#define AG_CPU_MILLI 128000
#define AG_INFLIGHT 4 /* recent requests remembered per agent, for round trips */
#define AG_MAX_WORKERS 16
#define AG_MAX_CLIENTS 256
#define AG_EVENTS_PER_SYNC 256

enum { PH_REGISTER, PH_FILL, PH_STEADY, PH_SUBMIT, PH_N };
enum { RT_PING, RT_EVENTS, RT_N }; /* what a timed SYNC carried */

/* ---- options and shared state ---- */

static struct {
	uint64_t count, interval_ms, per_agent, window_ms, submit, clients, run_ms, conns,
		threads, timeout_ms, master_pid;
	bool keep, full_syncs;
	const char *mlmaster, *master_url, *client_url, *join, *key_path, *prefix, *loglevel;
} cfg;

static uint8_t master_pk[SEAL_PK_LEN];
static char join_token[SEAL_TOKEN_LEN + 1];
static atomic_int phase;
static atomic_bool stopping;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A growable text buffer for JSON bodies written by hand (much cheaper than
 * building cJSON trees for 10,000+ SYNCs a second on a 2-core machine that
 * also runs the master; the result is checked with wire_decode at start). */
struct sbuf {
	char *p;
	size_t len, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)(n > 0 ? n : 64) + 256;
		b->p = xrealloc(b->p, b->cap);
	}
}

/* A vector of latency samples in microseconds. */
struct samples {
	uint32_t *v;
	size_t n, cap;
};

static void samples_add(struct samples *s, uint64_t ns)
{
	uint64_t us = ns / 1000;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of a sorted array, in ms. */
static double pct_ms(const uint32_t *v, size_t n, double p)
{
	size_t rank = (size_t)((double)n * p / 100.0 + 0.999999);

	if (n == 0)
		return 0;
	return v[rank < 1 ? 0 : (rank > n ? n - 1 : rank - 1)] / 1000.0;
}

/* ---- simulated agents ---- */

struct sev {
	uint64_t seq, job;
	uint32_t task, attempt, bench; /* bench: index of a timed job, or UINT32_MAX */
	bool exited;
	int sig;
};

struct stask {
	uint64_t job;
	uint32_t task, attempt, bench;
	uint64_t started_ns, exit_ns; /* exit_ns 0: runs until stopped */
};

struct sagent {
	uint32_t id;
	char name[32];
	char boot[33];
	char master_boot[40];
	uint64_t sender;
	struct seal_ctx *seal;
	struct conn *conn;
	uint64_t seq, ev_seq, order_ack;
	bool joined;
	uint64_t last_reply_ns;
	uint64_t beat_ns;     /* the last SYNC with utilization and tasks */
	char cap_boot[40];    /* the master_boot the capacity last went to */
	uint64_t due_ns;  /* next SYNC */
	uint32_t due_gen; /* heap entries of older gens are stale */
	uint32_t req_gen;
	struct {
		uint32_t reqid;
		uint64_t sent_ns;
		int kind; /* RT_PING, RT_EVENTS, or -1: not timed (may be held) */
	} fl[AG_INFLIGHT];
	uint32_t flpos;
	struct sev *ev;
	uint32_t nev, cap_ev;
	struct stask *tasks;
	uint32_t ntasks, cap_tasks;
};

struct conn {
	nng_socket s;
	nng_aio *aio;
	bool open;
};

struct reply {
	nng_msg *msg;
	uint64_t at_ns;
	uint32_t agent;
	struct reply *next;
};

struct heapent {
	uint64_t t;
	uint32_t agent, gen;
};

struct worker {
	pthread_t th;
	uint32_t idx;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct reply *q_head, **q_tail; /* under mu */
	struct heapent *heap;
	size_t nheap, capheap;
	struct sbuf sb;
	/* counters and samples, read by the main thread at phase ends (under mu) */
	uint64_t syncs[PH_N], replies[PH_N], send_fail, open_fail, refused;
	struct samples rtt[PH_N][RT_N];
	char last_error[256];
};

static struct sagent *agents;
static struct conn *conns;
static struct worker workers[AG_MAX_WORKERS];
static atomic_uint_fast64_t joined_count;
static atomic_uint_fast64_t fill_running, sub_running;
static atomic_uint_fast64_t orders_seen;

/* Timed jobs of the submit phase: when sent, accepted, ordered, running. */
static uint64_t *t_sent, *t_acc, *t_order, *t_run;

static struct worker *worker_of(uint32_t agent)
{
	return &workers[agent % cfg.threads];
}

static void heap_push(struct worker *w, uint64_t t, uint32_t agent, uint32_t gen)
{
	size_t i;

	if (w->nheap == w->capheap) {
		w->capheap = w->capheap ? w->capheap * 2 : 1024;
		w->heap = xrealloc(w->heap, w->capheap * sizeof(*w->heap));
	}
	i = w->nheap++;
	while (i > 0 && w->heap[(i - 1) / 2].t > t) {
		w->heap[i] = w->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->heap[i] = (struct heapent){t, agent, gen};
}

static struct heapent heap_pop(struct worker *w)
{
	struct heapent top = w->heap[0], last = w->heap[--w->nheap];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->nheap)
			break;
		if (c + 1 < w->nheap && w->heap[c + 1].t < w->heap[c].t)
			c++;
		if (w->heap[c].t >= last.t)
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->nheap)
		w->heap[i] = last;
	return top;
}

static void set_due(struct worker *w, struct sagent *a, uint64_t t)
{
	a->due_ns = t;
	heap_push(w, t, a->id, ++a->due_gen);
}

static void add_event(struct sagent *a, const struct stask *t, bool exited, int sig)
{
	if (a->nev == a->cap_ev) {
		a->cap_ev = a->cap_ev ? a->cap_ev * 2 : 8;
		a->ev = xrealloc(a->ev, a->cap_ev * sizeof(*a->ev));
	}
	a->ev[a->nev++] = (struct sev){.seq = ++a->ev_seq,
				       .job = t->job,
				       .task = t->task,
				       .attempt = t->attempt,
				       .bench = t->bench,
				       .exited = exited,
				       .sig = sig};
}

static void remove_task(struct sagent *a, uint32_t i)
{
	a->tasks[i] = a->tasks[--a->ntasks];
}

/* Tasks whose run time is over exit with code 0. */
static void reap_tasks(struct sagent *a, uint64_t now)
{
	for (uint32_t i = 0; i < a->ntasks;) {
		if (a->tasks[i].exit_ns && a->tasks[i].exit_ns <= now) {
			add_event(a, &a->tasks[i], true, 0);
			remove_task(a, i);
		} else {
			i++;
		}
	}
}

/* The SYNC body, as session_sync() builds it. */
static void sync_body(struct sbuf *b, struct sagent *a, uint64_t now, bool ping, bool beat,
		      bool cap)
{
	uint32_t nev = a->nev < AG_EVENTS_PER_SYNC ? a->nev : AG_EVENTS_PER_SYNC;

	b->len = 0;
	sb_printf(b, "{\"node\":\"%s\",\"boot\":\"%s\",\"ack\":%" PRIu64 ",\"master_boot\":\"%s\"",
		  a->name, a->boot, a->order_ack, a->master_boot);
	if (!a->joined)
		sb_printf(b, ",\"join\":\"%s\"", join_token);
	if (cap) {
		sb_printf(b,
			  ",\"capacity\":{\"address\":\"127.0.0.1\",\"cpu_milli\":%u,\"memory\":%llu,"
			  "\"gpus\":[",
			  AG_CPU_MILLI, (unsigned long long)AG_MEM);
		for (int g = 0; g < AG_GPUS; g++)
			sb_printf(b,
				  "%s{\"index\":%d,\"memory\":%llu,\"model\":\"NVIDIA H100 80GB HBM3\"}",
				  g ? "," : "", g, (unsigned long long)AG_GPU_MEM);
		sb_printf(b, "],\"labels\":{},\"ports\":[20000,29999]}");
	}
	if (beat) {
		sb_printf(b, ",\"util\":{\"cpu_pct\":%u,\"mem_used\":%llu,\"gpus\":[",
			  (unsigned)((a->id * 7 + now / 1000000000ull) % 100),
			  (unsigned long long)(AG_MEM / 8 + a->ntasks * (4ull << 30)));
		for (int g = 0; g < AG_GPUS; g++)
			sb_printf(b, "%s{\"index\":%d,\"util_pct\":%d,\"mem_used\":%llu}",
				  g ? "," : "", g, g < (int)a->ntasks ? 90 : 0,
				  (unsigned long long)(g < (int)a->ntasks ? 40ull << 30 : 0));
		sb_printf(b, "]}");
	}
	sb_printf(b, ",\"events\":[");
	for (uint32_t i = 0; i < nev; i++) {
		const struct sev *e = &a->ev[i];
		sb_printf(b,
			  "%s{\"seq\":%" PRIu64 ",\"type\":\"%s\",\"job\":%" PRIu64
			  ",\"task\":%u,\"attempt\":%u",
			  i ? "," : "", e->seq, e->exited ? "exited" : "started", e->job, e->task,
			  e->attempt);
		if (e->exited)
			sb_printf(b, ",\"code\":0,\"signal\":%d", e->sig);
		sb_printf(b, "}");
	}
	sb_printf(b, "]");
	if (beat)
		sb_printf(b, ",\"tasks\":[");
	for (uint32_t i = 0; beat && i < a->ntasks; i++) {
		const struct stask *t = &a->tasks[i];
		sb_printf(b,
			  "%s{\"job\":%" PRIu64 ",\"task\":%u,\"attempt\":%u,\"state\":\"running\","
			  "\"cpu_ns\":%" PRIu64 ",\"mem\":%llu}",
			  i ? "," : "", t->job, t->task, t->attempt, (now - t->started_ns) / 2,
			  (unsigned long long)(2ull << 30));
	}
	if (beat)
		sb_printf(b, "]");
	if (ping)
		sb_printf(b, ",\"ping\":true");
	sb_printf(b, "}");
}

/* A sealed SYNC frame with the raw req header (request id) in front. */
static int sync_msg(struct sagent *a, const struct sbuf *b, uint32_t reqid, nng_msg **out)
{
	uint8_t *frame = xmalloc(WIRE_HDR_LEN + b->len), *sealed = NULL, id[4];
	size_t slen = 0;
	int rv;

	put_be32(frame, WIRE_MAGIC);
	put_be16(frame + 4, WIRE_VERSION);
	put_be16(frame + 6, WIRE_SYNC);
	put_be32(frame + 8, 0);
	put_be32(frame + 12, (uint32_t)b->len);
	put_be64(frame + 16, ++a->seq);
	put_be64(frame + 24, a->sender);
	memcpy(frame + WIRE_HDR_LEN, b->p, b->len);
	rv = seal_frame(a->seal, master_pk, frame, WIRE_HDR_LEN + b->len, &sealed, &slen);
	free(frame);
	if (rv != 0)
		return rv;
	put_be32(id, reqid);
	if (nng_msg_alloc(out, 0) != 0 || nng_msg_header_append(*out, id, 4) != 0 ||
	    nng_msg_append(*out, sealed, slen) != 0) {
		fprintf(stderr, "mlbench agents: out of memory\n");
		abort();
	}
	free(sealed);
	return 0;
}

static void send_sync(struct worker *w, struct sagent *a, uint64_t now)
{
	bool ping = now - a->last_reply_ns >= 2 * cfg.interval_ms * 1000000ull;
	bool new_master = strcmp(a->cap_boot, a->master_boot) != 0;
	bool beat = cfg.full_syncs || !a->joined || new_master ||
		    now - a->beat_ns >= cfg.interval_ms * 1000000ull;
	bool cap = cfg.full_syncs || !a->joined || new_master;
	uint32_t reqid;
	nng_msg *m;
	int ph = atomic_load(&phase), rv;

	reap_tasks(a, now);
	sync_body(&w->sb, a, now, ping, beat, cap);
	a->req_gen = (a->req_gen + 1) & ((1u << (31 - AG_ID_BITS)) - 1);
	reqid = 0x80000000u | (a->req_gen << AG_ID_BITS) | a->id;
	if ((rv = sync_msg(a, &w->sb, reqid, &m)) != 0) {
		fprintf(stderr, "mlbench agents: %s: cannot seal a SYNC: %s\n", a->name,
			err_str(rv));
		abort();
	}
	/* Stamped here, not at the start of a burst of due SYNCs: building
	 * and sealing the ones before it is not the master's time. */
	now = mono_ns();
	if ((rv = nng_sendmsg(a->conn->s, m, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(m);
		pthread_mutex_lock(&w->mu);
		w->send_fail++;
		pthread_mutex_unlock(&w->mu);
		/* Not connected yet, or the connection is backed up: again soon. */
		set_due(w, a, now + 50000000ull);
		return;
	}
	if (beat)
		a->beat_ns = now;
	if (cap)
		memcpy(a->cap_boot, a->master_boot, sizeof(a->cap_boot));
	a->fl[a->flpos].reqid = reqid;
	a->fl[a->flpos].sent_ns = now;
	a->fl[a->flpos].kind = a->nev ? RT_EVENTS : ping || !a->joined ? RT_PING : -1;
	a->flpos = (a->flpos + 1) % AG_INFLIGHT;
	pthread_mutex_lock(&w->mu);
	w->syncs[ph]++;
	pthread_mutex_unlock(&w->mu);
	set_due(w, a, now + cfg.interval_ms * 1000000ull);
}

/* "sub-123" -> 123 (a timed job), anything else -> UINT32_MAX. */
static uint32_t bench_index(const char *name)
{
	char *end;
	unsigned long v;

	if (strncmp(name, "sub-", 4) != 0)
		return UINT32_MAX;
	v = strtoul(name + 4, &end, 10);
	return *end || v >= cfg.submit ? UINT32_MAX : (uint32_t)v;
}

static void handle_orders(struct sagent *a, const cJSON *body, uint64_t now)
{
	const char *boot = "";
	const cJSON *orders, *o;
	uint64_t ack = 0;

	wire_get_str(body, "boot", 39, &boot);
	if (strcmp(boot, a->master_boot) != 0) {
		strlcpy_ok(a->master_boot, boot, sizeof(a->master_boot));
		a->order_ack = 0;
	}
	if (wire_get_u64(body, "ack", UINT64_MAX >> 11, &ack) == 0) {
		uint32_t k = 0;
		for (uint32_t i = 0; i < a->nev; i++) {
			struct sev *e = &a->ev[i];
			if (e->seq > ack) {
				a->ev[k++] = *e;
				continue;
			}
			if (e->exited)
				continue;
			/* The master committed the task as running. */
			if (e->bench != UINT32_MAX) {
				t_run[e->bench] = now;
				atomic_fetch_add(&sub_running, 1);
			} else {
				atomic_fetch_add(&fill_running, 1);
			}
		}
		a->nev = k;
	}
	if (wire_get_array(body, "orders", 100000, &orders) != 0)
		return;
	cJSON_ArrayForEach(o, orders)
	{
		const char *op = "", *name = "";
		uint64_t seq = 0, job = 0, idx = 0, attempt = 0;
		uint32_t i;

		if (wire_get_u64(o, "seq", UINT64_MAX >> 11, &seq) != 0 || seq <= a->order_ack)
			continue;
		a->order_ack = seq;
		wire_get_str(o, "op", 16, &op);
		if (wire_get_u64(o, "job", UINT64_MAX >> 11, &job) != 0 ||
		    wire_get_u64(o, "task", SPEC_MAX_TASKS, &idx) != 0)
			continue;
		wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
		atomic_fetch_add(&orders_seen, 1);
		for (i = 0; i < a->ntasks; i++)
			if (a->tasks[i].job == job && a->tasks[i].task == idx)
				break;
		if (strcmp(op, "start") == 0 && i == a->ntasks) {
			struct stask t = {.job = job,
					  .task = (uint32_t)idx,
					  .attempt = (uint32_t)attempt,
					  .started_ns = now,
					  .exit_ns = cfg.run_ms ? now + cfg.run_ms * 1000000ull : 0};
			wire_get_str(o, "name", SPEC_NAME_MAX, &name);
			t.bench = bench_index(name);
			if (t.bench != UINT32_MAX)
				t_order[t.bench] = now;
			if (a->ntasks == a->cap_tasks) {
				a->cap_tasks = a->cap_tasks ? a->cap_tasks * 2 : 8;
				a->tasks = xrealloc(a->tasks, a->cap_tasks * sizeof(*a->tasks));
			}
			a->tasks[a->ntasks++] = t;
			add_event(a, &t, false, 0);
		} else if (strcmp(op, "stop") == 0 && i < a->ntasks &&
			   a->tasks[i].attempt == attempt) {
			add_event(a, &a->tasks[i], true, 15);
			remove_task(a, i);
		}
	}
}

static void handle_reply(struct worker *w, struct reply *r)
{
	struct sagent *a = &agents[r->agent];
	nng_msg *m = r->msg;
	uint32_t reqid = get_be32(nng_msg_header(m));
	uint8_t *plain = NULL, pk[SEAL_PK_LEN];
	size_t plen = 0;
	struct wire_hdr h;
	cJSON *body = NULL;
	char why[256];
	int ph = atomic_load(&phase);

	for (int i = 0; i < AG_INFLIGHT; i++) {
		if (a->fl[i].reqid != reqid)
			continue;
		pthread_mutex_lock(&w->mu);
		if (a->fl[i].kind >= 0 && r->at_ns >= a->fl[i].sent_ns)
			samples_add(&w->rtt[ph][a->fl[i].kind], r->at_ns - a->fl[i].sent_ns);
		pthread_mutex_unlock(&w->mu);
		a->fl[i].reqid = 0;
		break;
	}
	if (seal_open(a->seal, nng_msg_body(m), nng_msg_len(m), &plain, &plen, pk, why,
		      sizeof(why)) != 0 ||
	    sodium_memcmp(pk, master_pk, SEAL_PK_LEN) != 0 ||
	    wire_decode(plain, plen, &h, &body, why, sizeof(why)) != 0) {
		pthread_mutex_lock(&w->mu);
		w->open_fail++;
		snprintf(w->last_error, sizeof(w->last_error), "%s: reply rejected: %.200s", a->name,
			 why);
		pthread_mutex_unlock(&w->mu);
		goto out;
	}
	a->last_reply_ns = r->at_ns;
	pthread_mutex_lock(&w->mu);
	w->replies[ph]++;
	pthread_mutex_unlock(&w->mu);
	if (h.type == WIRE_ORDERS) {
		if (!a->joined) {
			a->joined = true;
			atomic_fetch_add(&joined_count, 1);
		}
		handle_orders(a, body, mono_ns());
		set_due(w, a, 0); /* acknowledge at once */
	} else if (h.type == WIRE_ERROR) {
		const char *msg = "?";
		wire_get_str(body, "message", 200, &msg);
		pthread_mutex_lock(&w->mu);
		w->refused++;
		snprintf(w->last_error, sizeof(w->last_error), "%s: the master refuses: %.200s",
			 a->name, msg);
		pthread_mutex_unlock(&w->mu);
		if (a->joined)
			atomic_fetch_sub(&joined_count, 1);
		a->joined = false;
	}
out:
	cJSON_Delete(body);
	free(plain);
	nng_msg_free(m);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	while (!atomic_load(&stopping)) {
		struct reply *q;
		uint64_t now, wait_ns;

		pthread_mutex_lock(&w->mu);
		q = w->q_head;
		w->q_head = NULL;
		w->q_tail = &w->q_head;
		pthread_mutex_unlock(&w->mu);
		while (q) {
			struct reply *next = q->next;
			handle_reply(w, q);
			free(q);
			q = next;
		}
		now = mono_ns();
		while (w->nheap && w->heap[0].t <= now) {
			struct heapent e = heap_pop(w);
			struct sagent *a = &agents[e.agent];
			if (e.gen != a->due_gen)
				continue;
			send_sync(w, a, now);
		}
		wait_ns = w->nheap ? (w->heap[0].t > now ? w->heap[0].t - now : 0) : 100000000ull;
		if (wait_ns > 100000000ull)
			wait_ns = 100000000ull;
		pthread_mutex_lock(&w->mu);
		if (!w->q_head && wait_ns > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)wait_ns;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

/* On an nng thread: stamp the reply and hand it to its agent's worker. */
static void conn_recv_cb(void *arg)
{
	struct conn *c = arg;
	nng_msg *m;
	uint32_t id;
	struct worker *w;
	struct reply *r;

	if (nng_aio_result(c->aio) != 0) {
		if (!atomic_load(&stopping))
			nng_recv_aio(c->s, c->aio);
		return;
	}
	m = nng_aio_get_msg(c->aio);
	nng_recv_aio(c->s, c->aio);
	if (nng_msg_header_len(m) < 4 ||
	    (id = get_be32(nng_msg_header(m)) & AG_MAX_AGENTS) >= cfg.count) {
		nng_msg_free(m);
		return;
	}
	r = xmalloc(sizeof(*r));
	r->msg = m;
	r->at_ns = mono_ns();
	r->agent = id;
	r->next = NULL;
	w = worker_of(id);
	pthread_mutex_lock(&w->mu);
	*w->q_tail = r;
	w->q_tail = &r->next;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int conn_open(struct conn *c, const char *url, int sendbuf, char *why, size_t whylen)
{
	int rv;

	if ((rv = nng_req0_open_raw(&c->s)) != 0) {
		snprintf(why, whylen, "cannot open a raw req socket: %s", nng_strerror(rv));
		return ERR_IO;
	}
	nng_socket_set_size(c->s, NNG_OPT_RECVMAXSZ, SEAL_MAX_FRAME);
	nng_socket_set_int(c->s, NNG_OPT_SENDBUF, sendbuf);
	nng_socket_set_int(c->s, NNG_OPT_RECVBUF, sendbuf);
	nng_socket_set_ms(c->s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(c->s, NNG_OPT_RECONNMAXT, 500);
	if ((rv = nng_aio_alloc(&c->aio, conn_recv_cb, c)) != 0 ||
	    (rv = nng_dial(c->s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(why, whylen, "cannot dial %s: %s", url, nng_strerror(rv));
		nng_close(c->s);
		return ERR_IO;
	}
	c->open = true;
	nng_recv_aio(c->s, c->aio);
	return 0;
}

static void agent_init(struct sagent *a, uint32_t id, uint64_t first_ns)
{
	struct seal_key k;
	uint8_t rnd[16];

	a->id = id;
	snprintf(a->name, sizeof(a->name), "%s-%05u", cfg.prefix, id);
	a->sender = wire_sender_id(a->name);
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(a->boot, sizeof(a->boot), rnd, sizeof(rnd));
	if (seal_key_generate(&k) != 0 || !(a->seal = seal_ctx_new(&k))) {
		fprintf(stderr, "mlbench agents: libsodium failed\n");
		exit(AG_EXIT_FAIL);
	}
	sodium_memzero(&k, sizeof(k));
	a->conn = &conns[id % cfg.conns];
	a->last_reply_ns = first_ns;
	set_due(worker_of(id), a, first_ns);
}

/* ---- clients (the submit path of mlctl run) ---- */

static atomic_uint_fast64_t next_job;
static atomic_uint_fast64_t submit_errors;
static char submit_error[512];
static pthread_mutex_t submit_mu = PTHREAD_MUTEX_INITIALIZER;

struct client_job {
	const char *prefix; /* names: "fill-N" or "sub-N" */
	uint64_t n;       /* jobs */
	const char *policy;
	bool timed;
};
static struct client_job client_job;

/* A spec as `mlctl run --gpus 1 IMAGE -- sleep infinity` builds it. */
static cJSON *job_spec(const char *name, const char *policy)
{
	static char *cmd[] = {"sleep", "infinity"};
	struct spec s;

	memset(&s, 0, sizeof(s));
	s.name = (char *)name;
	s.kind = SPEC_BATCH;
	s.image = "/var/lib/mlsched/images/bench";
	s.command = cmd;
	s.ncommand = 2;
	s.workdir = "/work";
	s.workers = s.replicas = s.array = s.parallelism = 1;
	s.res.gpus_milli = 1000;
	s.res.mem = 128ull << 20;
	s.res.cpu_milli = 100;
	s.restart = RESTART_NEVER;
	s.restart_max = 3;
	s.reschedule_max = 3;
	s.policy = (char *)policy;
	return spec_to_json(&s);
}

static void submit_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void submit_fail(const char *fmt, ...)
{
	va_list ap;

	atomic_fetch_add(&submit_errors, 1);
	pthread_mutex_lock(&submit_mu);
	va_start(ap, fmt);
	vsnprintf(submit_error, sizeof(submit_error), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&submit_mu);
}

static void *client_main(void *arg)
{
	nng_socket s;
	char why[512];
	uint64_t seq = 0;

	(void)arg;
	if (net_dial_req(cfg.client_url, (int)cfg.timeout_ms, &s, why, sizeof(why)) != 0) {
		submit_fail("%s", why);
		return NULL;
	}
	for (;;) {
		uint64_t i = atomic_fetch_add(&next_job, 1);
		char name[40], rid[33];
		uint8_t rnd[16];
		struct wire_hdr rh;
		cJSON *b, *rb = NULL;
		int rv;

		if (i >= client_job.n || atomic_load(&stopping))
			break;
		snprintf(name, sizeof(name), "%s%u", client_job.prefix, (unsigned)i);
		b = cJSON_CreateObject();
		cJSON_AddItemToObject(b, "spec", job_spec(name, client_job.policy));
		randombytes_buf(rnd, sizeof(rnd));
		sodium_bin2hex(rid, sizeof(rid), rnd, sizeof(rnd));
		cJSON_AddStringToObject(b, "request_id", rid);
		if (client_job.timed)
			t_sent[i] = mono_ns();
		rv = net_call(s, WIRE_SUBMIT, ++seq, 0, b, &rh, &rb, why, sizeof(why));
		cJSON_Delete(b);
		if (rv != 0) {
			submit_fail("job %s: %s", name, why);
		} else if (rh.type != WIRE_OK) {
			const char *msg = "?";
			wire_get_str(rb, "message", 400, &msg);
			submit_fail("job %s refused: %s", name, msg);
		} else if (client_job.timed) {
			t_acc[i] = mono_ns();
		}
		cJSON_Delete(rb);
	}
	nng_close(s);
	return NULL;
}

/* Submit client_job with cfg.clients threads; returns when all answered. */
static void run_clients(const char *prefix, uint64_t n, const char *policy, bool timed)
{
	pthread_t th[AG_MAX_CLIENTS];
	uint64_t nc = cfg.clients < n ? cfg.clients : n;

	client_job = (struct client_job){prefix, n, policy, timed};
	atomic_store(&next_job, 0);
	for (uint64_t i = 0; i < nc; i++)
		if (pthread_create(&th[i], NULL, client_main, NULL) != 0) {
			fprintf(stderr, "mlbench agents: pthread_create failed\n");
			exit(AG_EXIT_FAIL);
		}
	for (uint64_t i = 0; i < nc; i++)
		pthread_join(th[i], NULL);
}

/* ---- the master process ---- */

static pid_t master_pid;
static char *state_dir;

static int run_wait(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rv;

	posix_spawn_file_actions_init(&fa);
	if (log) {
		posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	rv = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "mlbench agents: cannot run %s: %s\n", argv[0], strerror(rv));
		return -1;
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "mlbench agents: %s %s failed (see %s)\n", argv[0], argv[1],
			log ? log : "its output");
		return -1;
	}
	return 0;
}

static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static const char *find_mlmaster(const char *argv0)
{
	static char buf[4200];
	const char *env = getenv("MLMASTER");
	char self[4096];
	ssize_t n;

	(void)argv0;
	if (cfg.mlmaster)
		return cfg.mlmaster;
	if (env && *env)
		return env;
	/* build/tests/bench/mlbench -> build/master/mlmaster */
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		if (strrchr(self, '/'))
			*strrchr(self, '/') = '\0';
		snprintf(buf, sizeof(buf), "%s/../../master/mlmaster", self);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	if (access("build/master/mlmaster", X_OK) == 0)
		return "build/master/mlmaster";
	return NULL;
}

static int start_master(const char *bin)
{
	char tmpl[] = "/tmp/mlbench-agents.XXXXXX", *log, *p, *tok, *pub, *agent_url, *ctl_url;
	char *init_argv[] = {(char *)bin, "init", "--state-dir", NULL, NULL};
	char *argv[24];
	posix_spawn_file_actions_t fa;
	int aport, cport, rv, i = 0;
	size_t len;
	uint8_t secret[SEAL_SECRET_LEN];

	if (!mkdtemp(tmpl)) {
		fprintf(stderr, "mlbench agents: mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	state_dir = xstrdup(tmpl);
	log = xasprintf("%s/mlmaster.log", state_dir);
	init_argv[3] = state_dir;
	if (run_wait(init_argv, log) != 0)
		return -1;
	p = xasprintf("%s/join.token", state_dir);
	if (file_read(p, 4096, &tok, &len) != 0) {
		fprintf(stderr, "mlbench agents: cannot read %s\n", p);
		return -1;
	}
	tok[strcspn(tok, "\r\n")] = '\0';
	strlcpy_ok(join_token, tok, sizeof(join_token));
	free(tok);
	free(p);
	if (seal_token_parse(join_token, master_pk, secret) != 0) {
		fprintf(stderr, "mlbench agents: %s/join.token: not a join token\n", state_dir);
		return -1;
	}
	pub = xasprintf("%s/admin.key", state_dir);
	cfg.key_path = pub;
	aport = free_port();
	cport = free_port();
	if (aport < 0 || cport < 0 || aport == cport) {
		fprintf(stderr, "mlbench agents: cannot find free loopback ports\n");
		return -1;
	}
	agent_url = xasprintf("tcp://127.0.0.1:%d", aport);
	ctl_url = xasprintf("tcp://127.0.0.1:%d", cport);
	cfg.master_url = agent_url;
	cfg.client_url = ctl_url;
	argv[i++] = (char *)bin;
	argv[i++] = "--state-dir";
	argv[i++] = state_dir;
	argv[i++] = "--listen";
	argv[i++] = ctl_url;
	argv[i++] = "--agent-listen";
	argv[i++] = agent_url;
	argv[i++] = "--log-level";
	argv[i++] = (char *)cfg.loglevel;
	/* A benchmark measures throughput: the per-client rate limit and
	 * the connection caps (docs/limits.md) would measure themselves. */
	argv[i++] = "--rate-limit";
	argv[i++] = "0";
	argv[i++] = "--agent-rate-limit";
	argv[i++] = "0";
	argv[i++] = "--max-agent-conns";
	argv[i++] = "0";
	argv[i] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rv = posix_spawn(&master_pid, bin, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rv != 0) {
		fprintf(stderr, "mlbench agents: cannot start %s: %s\n", bin, strerror(rv));
		return -1;
	}
	for (int t = 0; t < 200; t++) {
		int st;
		if (port_open(aport) && port_open(cport))
			break;
		if (waitpid(master_pid, &st, WNOHANG) == master_pid) {
			master_pid = 0;
			fprintf(stderr, "mlbench agents: mlmaster exited at start (see %s)\n", log);
			return -1;
		}
		usleep(50000);
	}
	cfg.master_pid = (uint64_t)master_pid;
	printf("master: %s (pid %d), state %s, log %s\n", bin, (int)master_pid, state_dir, log);
	free(log);
	return 0;
}

static void stop_master(void)
{
	int st;

	if (master_pid <= 0)
		return;
	kill(master_pid, SIGTERM);
	for (int t = 0; t < 100; t++) {
		if (waitpid(master_pid, &st, WNOHANG) == master_pid) {
			master_pid = 0;
			break;
		}
		usleep(50000);
	}
	if (master_pid > 0) {
		kill(master_pid, SIGKILL);
		waitpid(master_pid, &st, 0);
	}
	master_pid = 0;
	if (state_dir && !cfg.keep)
		rm_rf(state_dir);
	else if (state_dir)
		printf("kept %s\n", state_dir);
}

/* The admin key for submissions: seal with it to the master's key. */
static int setup_client_key(void)
{
	struct seal_key k;
	struct seal_ctx *ctx;
	char why[512];

	if (!cfg.key_path || !cfg.client_url)
		return 0;
	if (seal_key_load(cfg.key_path, &k, why, sizeof(why)) != 0) {
		fprintf(stderr, "mlbench agents: %s\n", why);
		return -1;
	}
	ctx = seal_ctx_new(&k);
	sodium_memzero(&k, sizeof(k));
	if (!ctx)
		return -1;
	/* Process-wide, for the client threads only: the agents seal with
	 * their own contexts and never go through net_send. */
	net_seal(ctx, true);
	net_peer_key(master_pk);
	return 0;
}

/* utime + stime of a process in clock ticks, its RSS in bytes and threads. */
struct pstat {
	uint64_t ticks, rss;
	long threads;
	bool ok;
};

static struct pstat proc_stat(pid_t pid)
{
	struct pstat ps = {0};
	char path[64], buf[2048], *p;
	unsigned long ut = 0, st = 0;
	long threads = 0, rss = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return ps;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) &&
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld %*d "
		   "%*u %*u %ld",
		   &ut, &st, &threads, &rss) == 4) {
		ps.ticks = ut + st;
		ps.rss = (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
		ps.threads = threads;
		ps.ok = true;
	}
	fclose(f);
	return ps;
}

static uint64_t self_cpu_ns(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000ull;
}

/* ---- measuring ---- */

struct window {
	uint64_t t0, self0;
	struct pstat m0;
	uint64_t syncs0, replies0;
};

static void totals(int ph, uint64_t *syncs, uint64_t *replies)
{
	*syncs = *replies = 0;
	for (uint64_t i = 0; i < cfg.threads; i++) {
		pthread_mutex_lock(&workers[i].mu);
		*syncs += workers[i].syncs[ph];
		*replies += workers[i].replies[ph];
		pthread_mutex_unlock(&workers[i].mu);
	}
}

static void window_start(struct window *w, int ph)
{
	atomic_store(&phase, ph);
	w->t0 = mono_ns();
	w->self0 = self_cpu_ns();
	w->m0 = cfg.master_pid ? proc_stat((pid_t)cfg.master_pid) : (struct pstat){0};
	totals(ph, &w->syncs0, &w->replies0);
}

/* What the phase cost: the master's and our CPU, message rates, round trips. */
static double window_report(const struct window *w, int ph)
{
	uint64_t t1 = mono_ns(), self1 = self_cpu_ns(), syncs, replies;
	double secs = (double)(t1 - w->t0) / 1e9, mcpu = -1;
	struct pstat m1 = cfg.master_pid ? proc_stat((pid_t)cfg.master_pid) : (struct pstat){0};
	struct samples all[RT_N] = {{0}};

	totals(ph, &syncs, &replies);
	if (w->m0.ok && m1.ok)
		mcpu = 100.0 * (double)(m1.ticks - w->m0.ticks) / (double)sysconf(_SC_CLK_TCK) /
		       secs;
	if (mcpu >= 0)
		printf("  master CPU      %.1f%% of one core over %.1f s; RSS %.0f MiB, %ld "
		       "threads\n",
		       mcpu, secs, (double)m1.rss / (1 << 20), m1.threads);
	else
		printf("  master CPU      unknown (no --master-pid)\n");
	printf("  simulator CPU   %.1f%% of one core (%" PRIu64 " agents, %" PRIu64
	       " worker threads)\n",
	       100.0 * (double)(self1 - w->self0) / 1e9 / secs, cfg.count, cfg.threads);
	printf("  SYNCs sent      %.0f/s, replies %.0f/s\n", (double)(syncs - w->syncs0) / secs,
	       (double)(replies - w->replies0) / secs);
	for (int k = 0; k < RT_N; k++) {
		for (uint64_t i = 0; i < cfg.threads; i++) {
			struct samples *s = &workers[i].rtt[ph][k];
			pthread_mutex_lock(&workers[i].mu);
			for (size_t j = 0; j < s->n; j++)
				samples_add(&all[k], (uint64_t)s->v[j] * 1000);
			pthread_mutex_unlock(&workers[i].mu);
		}
		if (!all[k].n)
			continue;
		qsort(all[k].v, all[k].n, sizeof(uint32_t), cmp_u32);
		printf("  %s p50 %.2f ms  p99 %.2f ms  max %.2f ms  (%zu)\n",
		       k == RT_PING ? "heartbeat RTT  " : "event RTT      ",
		       pct_ms(all[k].v, all[k].n, 50), pct_ms(all[k].v, all[k].n, 99),
		       pct_ms(all[k].v, all[k].n, 100), all[k].n);
	}
	if (ph == PH_STEADY && all[RT_PING].n)
		printf("  target: master <= 25%% of one core %s, heartbeat p99 <= 50 ms %s\n",
		       mcpu < 0 ? "(unknown)" : mcpu <= 25 ? "MET" : "MISSED",
		       pct_ms(all[RT_PING].v, all[RT_PING].n, 99) <= 50 ? "MET" : "MISSED");
	for (int k = 0; k < RT_N; k++)
		free(all[k].v);
	return mcpu;
}

static void print_errors(void)
{
	uint64_t sf = 0, of = 0, rf = 0;

	for (uint64_t i = 0; i < cfg.threads; i++) {
		pthread_mutex_lock(&workers[i].mu);
		sf += workers[i].send_fail;
		of += workers[i].open_fail;
		rf += workers[i].refused;
		if (workers[i].last_error[0])
			printf("  last agent error: %s\n", workers[i].last_error);
		pthread_mutex_unlock(&workers[i].mu);
	}
	if (sf || of || rf)
		printf("  agent troubles: %" PRIu64 " SYNCs not sent (retried), %" PRIu64
		       " replies rejected, %" PRIu64 " refusals\n",
		       sf, of, rf);
	if (atomic_load(&submit_errors))
		printf("  submit errors: %" PRIu64 " (last: %s)\n",
		       (uint64_t)atomic_load(&submit_errors), submit_error);
}

/* Wait until *v reaches want; false on timeout or when the master died. */
static bool wait_for(atomic_uint_fast64_t *v, uint64_t want, uint64_t timeout_ms, const char *what)
{
	uint64_t t0 = now_ms(), last = t0;

	while (atomic_load(v) < want) {
		int st;
		if (now_ms() - t0 > timeout_ms) {
			printf("  timed out after %.1f s: %" PRIu64 " of %" PRIu64 " %s\n",
			       (double)(now_ms() - t0) / 1000, (uint64_t)atomic_load(v), want, what);
			return false;
		}
		if (master_pid > 0 && waitpid(master_pid, &st, WNOHANG) == master_pid) {
			master_pid = 0;
			printf("  mlmaster exited (see its log in %s)\n", state_dir);
			return false;
		}
		if (now_ms() - last >= 5000) {
			last = now_ms();
			fprintf(stderr, "  ... %" PRIu64 " of %" PRIu64 " %s\n",
				(uint64_t)atomic_load(v), want, what);
		}
		usleep(2000);
	}
	return true;
}

static void lat_line(const char *what, const uint64_t *from, const uint64_t *to, uint64_t n)
{
	struct samples s = {0};

	for (uint64_t i = 0; i < n; i++)
		if (from[i] && to[i] >= from[i])
			samples_add(&s, to[i] - from[i]);
	if (s.n) {
		qsort(s.v, s.n, sizeof(uint32_t), cmp_u32);
		printf("  %-30s p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%zu)\n", what,
		       pct_ms(s.v, s.n, 50), pct_ms(s.v, s.n, 99), pct_ms(s.v, s.n, 100), s.n);
	}
	free(s.v);
}

/* Tasks per agent: min and max over all agents (read while idle). */
static void spread_line(void)
{
	uint32_t lo = UINT32_MAX, hi = 0;

	for (uint64_t i = 0; i < cfg.count; i++) {
		pthread_mutex_lock(&worker_of((uint32_t)i)->mu);
		lo = agents[i].ntasks < lo ? agents[i].ntasks : lo;
		hi = agents[i].ntasks > hi ? agents[i].ntasks : hi;
		pthread_mutex_unlock(&worker_of((uint32_t)i)->mu);
	}
	printf("  tasks per agent min %u, max %u (as the agents list them)\n", lo, hi);
}

/* ---- the command ---- */

static int run(void)
{
	struct window w;
	char why[512];
	uint64_t t0, njobs, nc;
	int rc = AG_EXIT_FAIL, sendbuf;
	bool ok = true;

	nc = cfg.conns;
	/* Real agents: one connection each.  Shared connections carry many
	 * requests at once and need room in the send queue. */
	sendbuf = nc == cfg.count ? 4 : 1024;
	conns = xcalloc(nc, sizeof(*conns));
	for (uint64_t i = 0; i < nc; i++)
		if (conn_open(&conns[i], cfg.master_url, sendbuf, why, sizeof(why)) != 0) {
			fprintf(stderr, "mlbench agents: connection %" PRIu64 ": %s\n", i, why);
			return AG_EXIT_FAIL;
		}
	agents = xcalloc(cfg.count, sizeof(*agents));
	/* First SYNCs spread over one interval, as agents that start at
	 * different moments. */
	t0 = mono_ns();
	for (uint64_t i = 0; i < cfg.count; i++)
		agent_init(&agents[i], (uint32_t)i,
			   t0 + 100000000ull + i * cfg.interval_ms * 1000000ull / cfg.count);
	for (uint64_t i = 0; i < cfg.threads; i++)
		if (pthread_create(&workers[i].th, NULL, worker_main, &workers[i]) != 0) {
			fprintf(stderr, "mlbench agents: pthread_create failed\n");
			return AG_EXIT_FAIL;
		}

	printf("register: %" PRIu64 " agents x %d GPUs, heartbeat %" PRIu64 " ms, %" PRIu64
	       " connections\n",
	       cfg.count, AG_GPUS, cfg.interval_ms, nc);
	window_start(&w, PH_REGISTER);
	if (!wait_for(&joined_count, cfg.count, cfg.timeout_ms, "agents joined")) {
		print_errors();
		return AG_EXIT_FAIL;
	}
	printf("  all joined in %.2f s\n", (double)(mono_ns() - w.t0) / 1e9);
	window_report(&w, PH_REGISTER);

	njobs = cfg.count * cfg.per_agent;
	if (njobs) {
		printf("fill: %" PRIu64 " single-GPU jobs (policy spread), %" PRIu64 " clients\n",
		       njobs, cfg.clients);
		window_start(&w, PH_FILL);
		run_clients("fill-", njobs, "spread", false);
		if (atomic_load(&submit_errors)) {
			print_errors();
			return AG_EXIT_FAIL;
		}
		printf("  submitted in %.2f s\n", (double)(mono_ns() - w.t0) / 1e9);
		ok = wait_for(&fill_running, njobs, cfg.timeout_ms, "fill tasks running");
		printf("  all running in %.2f s (%.0f jobs/s)\n", (double)(mono_ns() - w.t0) / 1e9,
		       (double)njobs / ((double)(mono_ns() - w.t0) / 1e9));
		window_report(&w, PH_FILL);
		if (!ok) {
			print_errors();
			return AG_EXIT_FAIL;
		}
		spread_line();
		/* Let the acks and the next round of heartbeats settle. */
		sleep((unsigned)(2 * cfg.interval_ms / 1000 + 1));
	}

	printf("steady: %.1f s of heartbeats only\n", (double)cfg.window_ms / 1000);
	window_start(&w, PH_STEADY);
	usleep((useconds_t)(cfg.window_ms * 1000));
	window_report(&w, PH_STEADY);

	if (cfg.submit) {
		uint64_t done_ns, t_last_acc = 0;
		double secs;
		if (!cfg.key_path) {
			printf("submit: skipped (no admin key: --key)\n");
			goto out;
		}
		t_sent = xcalloc(cfg.submit, sizeof(*t_sent));
		t_acc = xcalloc(cfg.submit, sizeof(*t_acc));
		t_order = xcalloc(cfg.submit, sizeof(*t_order));
		t_run = xcalloc(cfg.submit, sizeof(*t_run));
		printf("submit: %" PRIu64 " single-GPU jobs as fast as %" PRIu64
		       " clients can, until all run\n",
		       cfg.submit, cfg.clients);
		window_start(&w, PH_SUBMIT);
		run_clients("sub-", cfg.submit, NULL, true);
		for (uint64_t i = 0; i < cfg.submit; i++)
			t_last_acc = t_acc[i] > t_last_acc ? t_acc[i] : t_last_acc;
		if (t_last_acc)
			printf("  accepted in %.2f s (%.0f submissions/s)\n",
			       (double)(t_last_acc - w.t0) / 1e9,
			       (double)cfg.submit / ((double)(t_last_acc - w.t0) / 1e9));
		ok = !atomic_load(&submit_errors) &&
		     wait_for(&sub_running, cfg.submit, cfg.timeout_ms, "submitted jobs running");
		done_ns = mono_ns();
		secs = (double)(done_ns - w.t0) / 1e9;
		printf("  %" PRIu64 " of %" PRIu64 " running %.2f s after the first submission: "
		       "%.0f jobs/s end to end\n",
		       (uint64_t)atomic_load(&sub_running), cfg.submit, secs,
		       (double)atomic_load(&sub_running) / secs);
		lat_line("submit -> accepted (reply)", t_sent, t_acc, cfg.submit);
		lat_line("submit -> start order at agent", t_sent, t_order, cfg.submit);
		lat_line("submit -> running (acked)", t_sent, t_run, cfg.submit);
		{
			struct samples s = {0};
			for (uint64_t i = 0; i < cfg.submit; i++)
				if (t_sent[i] && t_run[i] >= t_sent[i])
					samples_add(&s, t_run[i] - t_sent[i]);
			if (s.n) {
				qsort(s.v, s.n, sizeof(uint32_t), cmp_u32);
				printf("  target: >= 5000 jobs/s %s, p99 <= 1 s %s\n",
				       ok && (double)cfg.submit / secs >= 5000 ? "MET" : "MISSED",
				       ok && pct_ms(s.v, s.n, 99) <= 1000 ? "MET" : "MISSED");
			}
			free(s.v);
		}
		window_report(&w, PH_SUBMIT);
		if (!ok) {
			print_errors();
			goto out;
		}
	}
	rc = 0;
out:
	print_errors();
	return rc;
}

static void shutdown_agents(void)
{
	atomic_store(&stopping, true);
	for (uint64_t i = 0; i < cfg.threads; i++) {
		pthread_mutex_lock(&workers[i].mu);
		pthread_cond_signal(&workers[i].cv);
		pthread_mutex_unlock(&workers[i].mu);
		if (workers[i].th)
			pthread_join(workers[i].th, NULL);
	}
	for (uint64_t i = 0; conns && i < cfg.conns; i++)
		if (conns[i].open) {
			nng_close(conns[i].s);
			nng_aio_stop(conns[i].aio);
			nng_aio_free(conns[i].aio);
		}
}

int agents_main(int argc, char **argv)
{
	const struct opt tab[] = {
		{"count", OPT_UINT, "1000", "simulated agents", &cfg.count},
		{"interval", OPT_DUR, "1s", "heartbeat interval of every agent", &cfg.interval_ms},
		{"tasks-per-agent", OPT_UINT, "4",
		 "before measuring, run this many single-GPU tasks per agent (0..8)",
		 &cfg.per_agent},
		{"window", OPT_DUR, "10s", "length of the heartbeat-only measurement",
		 &cfg.window_ms},
		{"submit", OPT_UINT, "0", "then submit this many single-GPU jobs and time them",
		 &cfg.submit},
		{"clients", OPT_UINT, "8", "concurrent submitting clients", &cfg.clients},
		{"run-time", OPT_DUR, "0s",
		 "tasks exit (code 0) this long after they start (0: they run on)", &cfg.run_ms},
		{"conns", OPT_UINT, "0",
		 "connections to the master, shared by the agents (0: one per agent)",
		 &cfg.conns},
		{"threads", OPT_UINT, "2", "worker threads that drive the agents", &cfg.threads},
		{"timeout", OPT_DUR, "120s", "give up on a phase after this long", &cfg.timeout_ms},
		{"mlmaster", OPT_STR, NULL,
		 "master binary to start (default: $MLMASTER, ../../master/mlmaster from this "
		 "binary, build/master/mlmaster)",
		 &cfg.mlmaster},
		{"log-level", OPT_STR, "info", "the started master's --log-level", &cfg.loglevel},
		{"keep", OPT_BOOL, NULL, "keep the started master's state folder and log", &cfg.keep},
		{"full-syncs", OPT_BOOL, NULL,
		 "every SYNC carries capacity, utilization and tasks (the agents' protocol "
		 "before 2026-12; a baseline)",
		 &cfg.full_syncs},
		{"master", OPT_STR, NULL, "use this running master's agent URL instead",
		 &cfg.master_url},
		{"join", OPT_STR, NULL, "with --master: the join token", &cfg.join},
		{"client", OPT_STR, NULL, "with --master: its client URL (for --tasks-per-agent, "
		 "--submit)", &cfg.client_url},
		{"key", OPT_STR, NULL, "with --master: an admin key (master.pub beside it)",
		 &cfg.key_path},
		{"master-pid", OPT_UINT, "0", "with --master: its pid, to measure its CPU",
		 &cfg.master_pid},
		{"name-prefix", OPT_STR, "sim", "node names are PREFIX-00000, ...", &cfg.prefix},
		{NULL, 0, NULL, NULL, NULL},
	};
	struct rlimit rl;
	char err[512];
	int nargs, rc;
	uint64_t need_fds;

	rc = opt_parse(tab, argc, argv, &nargs, "mlbench agents", "[options]", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc != 0 || nargs != 0) {
		fprintf(stderr, "mlbench agents: %s\n", rc ? err : "unexpected argument");
		return AG_EXIT_BAD;
	}
	if (cfg.conns == 0 || cfg.conns > cfg.count)
		cfg.conns = cfg.count;
	if (cfg.count == 0 || cfg.count > AG_MAX_AGENTS || cfg.interval_ms < 10 ||
	    cfg.per_agent > AG_GPUS || cfg.threads == 0 || cfg.threads > AG_MAX_WORKERS ||
	    cfg.clients == 0 || cfg.clients > AG_MAX_CLIENTS || cfg.submit > UINT32_MAX / 2 ||
	    !spec_name_ok(cfg.prefix)) {
		fprintf(stderr,
			"mlbench agents: --count 1..%u, --interval >= 10ms, --tasks-per-agent "
			"0..%d, --threads 1..%d, --clients 1..%d, a valid --name-prefix\n",
			AG_MAX_AGENTS, AG_GPUS, AG_MAX_WORKERS, AG_MAX_CLIENTS);
		return AG_EXIT_BAD;
	}
	if (cfg.per_agent * cfg.count + cfg.submit > cfg.count * AG_GPUS && !cfg.run_ms)
		fprintf(stderr, "mlbench agents: warning: %" PRIu64 " jobs of 1 GPU do not fit "
			"on %" PRIu64 " GPUs; some will wait\n",
			cfg.per_agent * cfg.count + cfg.submit, cfg.count * AG_GPUS);
	if (sodium_init() < 0) {
		fprintf(stderr, "mlbench agents: libsodium failed to initialise\n");
		return AG_EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	/* One descriptor per connection here, and as many in the master we
	 * start (it inherits the limit). */
	need_fds = cfg.conns + cfg.clients + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < need_fds) {
			fprintf(stderr,
				"mlbench agents: %" PRIu64 " connections need about %" PRIu64
				" descriptors, the limit is %llu: raise ulimit -n (hard) or use "
				"--conns\n",
				cfg.conns, need_fds, (unsigned long long)rl.rlim_cur);
			return AG_EXIT_BAD;
		}
	}
	for (uint64_t i = 0; i < cfg.threads; i++) {
		workers[i].idx = (uint32_t)i;
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		/* worker_main waits for deadlines on the monotonic clock */
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_mutex_init(&workers[i].mu, NULL);
		pthread_cond_init(&workers[i].cv, &ca);
		pthread_condattr_destroy(&ca);
		workers[i].q_tail = &workers[i].q_head;
	}
	if (cfg.master_url) {
		uint8_t secret[SEAL_SECRET_LEN];
		if (!cfg.join || seal_token_parse(cfg.join, master_pk, secret) != 0) {
			fprintf(stderr, "mlbench agents: --master needs --join TOKEN (mlmaster "
					"token)\n");
			return AG_EXIT_BAD;
		}
		strlcpy_ok(join_token, cfg.join, sizeof(join_token));
		if ((cfg.per_agent || cfg.submit) && (!cfg.client_url || !cfg.key_path)) {
			fprintf(stderr, "mlbench agents: --tasks-per-agent and --submit need "
					"--client URL and --key ADMIN.KEY with --master\n");
			return AG_EXIT_BAD;
		}
	} else {
		const char *bin = find_mlmaster(argv[0]);
		if (!bin) {
			fprintf(stderr, "mlbench agents: no mlmaster found: pass --mlmaster PATH\n");
			return AG_EXIT_BAD;
		}
		if (start_master(bin) != 0) {
			stop_master();
			return AG_EXIT_FAIL;
		}
	}
	if (setup_client_key() != 0) {
		stop_master();
		return AG_EXIT_BAD;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = run();
	shutdown_agents();
	stop_master();
	return rc;
}

#ifdef AGENTS_STANDALONE
int main(int argc, char **argv)
{
	return agents_main(argc - 1, argv + 1);
}
#endif
