/*
 * session.c - the agent's side of its session with the master (protocol:
 * docs/design-notes.md, "Agent protocol"; the master's side is
 * master/agents.c).  One SYNC request is in flight at a time; it carries
 * the unacknowledged events and, once per heartbeat, utilization and the
 * task list (and the capacity when it changed), and its reply carries
 * orders (start, stop, log), which are carried out here in order and
 * acknowledged in the next SYNC.
 *
 * The master holds a SYNC until it has something to say (a long poll), so
 * the agent answers every reply with a new SYNC at once: that acknowledges
 * the orders and re-arms the poll.  Those SYNCs between heartbeats carry
 * only the acknowledgements and the events: the master reads a missing
 * "capacity", "util" or "tasks" as "unchanged".  At 10,000 agents this
 * halves the bytes the master decodes.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "logcap.h"
#include "net.h"
#include "spec.h"
#include "util.h"
#include "wire.h"

/* ---- events to the master ---- */

/* attempt: which run of the task (the master requeues tasks); events of an
 * old attempt must not touch a new one. */
cJSON *session_event(struct agent *a, const char *type, uint64_t job, uint32_t idx,
		     uint32_t attempt)
{
	cJSON *e = cJSON_CreateObject();

	cJSON_AddNumberToObject(e, "seq", (double)++a->ev_seq);
	cJSON_AddStringToObject(e, "type", type);
	cJSON_AddNumberToObject(e, "job", (double)job);
	cJSON_AddNumberToObject(e, "task", idx);
	cJSON_AddNumberToObject(e, "attempt", attempt);
	if (strcmp(type, "started") == 0)
		a->stats.started++;
	else if (strcmp(type, "exited") == 0 || strcmp(type, "failed") == 0)
		a->stats.ended++;
	if (cJSON_GetArraySize(a->events) >= MAX_PENDING_EVENTS) {
		/* The master has been away for very long: keep the newest. */
		cJSON_Delete(cJSON_DetachItemFromArray(a->events, 0));
		log_warn("event queue full: dropped the oldest event");
	}
	cJSON_AddItemToArray(a->events, e);
	a->next_sync = 0; /* tell the master now */
	return e;
}

/* ---- orders ---- */

static void send_log(struct agent *a, const cJSON *o, uint64_t job, uint32_t idx)
{
	uint64_t req = 0, offset = 0, max = LOG_CHUNK_MAX, attempt = 0;
	char *path, *b64 = NULL;
	unsigned char *buf = NULL;
	struct stat st;
	ssize_t n = 0;
	int fd = -1;
	struct atask *rt = task_find(a, job, idx);
	bool running; /* checked before reading */
	cJSON *e;

	wire_get_u64(o, "req", UINT64_MAX >> 11, &req);
	wire_get_u64(o, "offset", UINT64_MAX >> 11, &offset);
	wire_get_u64(o, "max", LOG_CHUNK_MAX, &max);
	wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
	path = task_log_path(a, job, idx, (uint32_t)attempt);
	running = rt && rt->attempt == attempt;
	if (access(path, F_OK) != 0) {
		/* A log written before logs were kept per attempt. */
		char *old = xasprintf("%s/%" PRIu64 "-%u.log", a->logs_dir, job, idx);
		if (access(old, F_OK) == 0) {
			free(path);
			path = old;
		} else {
			free(old);
		}
	}
	e = session_event(a, "log", job, idx, (uint32_t)attempt);
	cJSON_AddNumberToObject(e, "req", (double)req);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		char msg[256];
		snprintf(msg, sizeof(msg), "no log for job %" PRIu64 " task %u on node %s: %s", job,
			 idx, a->cfg.name, strerror(errno));
		cJSON_AddStringToObject(e, "error", msg);
		goto out;
	}
	{
		/* Bytes before the kept tail were dropped (--log-max,
		 * logcap.h): skip to it and say how many were skipped. */
		uint64_t start = logcap_start(fd, (uint64_t)st.st_size);
		if (offset < start) {
			cJSON_AddNumberToObject(e, "dropped", (double)(start - offset));
			cJSON_AddNumberToObject(e, "log_max", (double)a->cfg.log_max);
			offset = start;
		}
	}
	buf = xmalloc(max ? max : 1);
	if (offset < (uint64_t)st.st_size && max > 0) {
		n = pread(fd, buf, max, (off_t)offset);
		if (n < 0)
			n = 0;
	}
	b64 = xmalloc(sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL));
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN((size_t)n, sodium_base64_VARIANT_ORIGINAL),
			  buf, (size_t)n, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(e, "data", b64);
	cJSON_AddNumberToObject(e, "offset", (double)(offset + (uint64_t)n));
	cJSON_AddBoolToObject(e, "eof", offset + (uint64_t)n >= (uint64_t)st.st_size);
	cJSON_AddBoolToObject(e, "running", running);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(b64);
	free(path);
}

static void handle_orders(struct agent *a, const cJSON *body)
{
	const char *boot = "";
	const cJSON *orders, *o;
	uint64_t ack = 0, t0 = now_ms();

	wire_get_str(body, "boot", 39, &boot);
	if (strcmp(boot, a->master_boot) != 0) {
		/* A new master process: its order numbers start again. */
		if (a->master_boot[0])
			log_info("master restarted (boot %s)", boot);
		strlcpy_ok(a->master_boot, boot, sizeof(a->master_boot));
		a->order_ack = 0;
	}
	if (wire_get_u64(body, "ack", UINT64_MAX >> 11, &ack) == 0)
		wire_drop_acked(a->events, ack);
	a->next_sync = 0; /* acknowledge at once */
	if (wire_get_array(body, "orders", 100000, &orders) != 0)
		return;
	cJSON_ArrayForEach(o, orders)
	{
		const char *op = "";
		uint64_t seq = 0, job = 0, idx = 0, grace = 10000, attempt = 0;
		if (wire_get_u64(o, "seq", UINT64_MAX >> 11, &seq) != 0 || seq <= a->order_ack)
			continue;
		/* Starting containers blocks this loop (runc takes tens of ms
		 * each): stop after a share of the heartbeat interval, say
		 * what we did, and take the rest from the master's next
		 * answer (it keeps orders until they are acknowledged). */
		if (now_ms() - t0 > a->cfg.heartbeat_ms / 2)
			break;
		a->order_ack = seq;
		wire_get_str(o, "op", 16, &op);
		if (wire_get_u64(o, "job", UINT64_MAX >> 11, &job) != 0 ||
		    wire_get_u64(o, "task", SPEC_MAX_TASKS, &idx) != 0) {
			log_warn("order %" PRIu64 " without job/task: ignored", seq);
			continue;
		}
		if (strcmp(op, "start") == 0) {
			struct atask *t = task_find(a, job, (uint32_t)idx);
			wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
			if (task_ran_before(a, job, (uint32_t)idx, (uint32_t)attempt))
				continue;
			if (!t) {
				task_start(a, o, job, (uint32_t)idx, (uint32_t)attempt);
			} else if (t->attempt != attempt) {
				/* An earlier attempt still runs here (e.g. it
				 * outlived an agent restart after the master
				 * had given it up; the master stops it). */
				log_info("job=%" PRIu64 " task=%" PRIu64 " attempt=%" PRIu64
					 " starts once attempt %u has ended",
					 job, idx, attempt, t->attempt);
				cJSON_Delete(t->next_start);
				t->next_start = cJSON_Duplicate(o, 1);
			}
		} else if (strcmp(op, "stop") == 0) {
			const char *reason = NULL;
			wire_get_u64(o, "grace_ms", 3600000, &grace);
			wire_get_u64(o, "attempt", UINT32_MAX, &attempt);
			wire_get_str(o, "reason", 512, &reason);
			task_stop(a, job, (uint32_t)idx, (uint32_t)attempt, grace, reason);
		} else if (strcmp(op, "log") == 0) {
			send_log(a, o, job, (uint32_t)idx);
		} else {
			log_warn("order %" PRIu64 ": unknown op \"%s\": ignored", seq, op);
		}
	}
}

/* ---- the SYNC message ---- */

/* The capacity goes again at least this often, whatever changed. */
#define CAPACITY_REFRESH_MS (60 * 1000)

static cJSON *capacity_json(struct agent *a)
{
	cJSON *c = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(c, "gpus"), *ports;

	cJSON_AddStringToObject(c, "address", a->cfg.address);
	cJSON_AddNumberToObject(c, "cpu_milli", a->cpu_milli);
	cJSON_AddNumberToObject(c, "memory", (double)a->mem_total);
	for (size_t i = 0; i < a->ngpus; i++) {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "index", a->gpus[i].index);
		cJSON_AddNumberToObject(e, "memory", (double)a->gpus[i].mem_total);
		cJSON_AddStringToObject(e, "model", a->gpus[i].model);
		cJSON_AddItemToArray(g, e);
	}
	/* A GPU that is lost or fails its queries (gpus.c): the master
	 * decides; the list above stays as found at start. */
	if (a->gpu_error[0])
		cJSON_AddStringToObject(c, "gpu_error", a->gpu_error);
	cJSON_AddItemToObject(c, "labels", cJSON_Duplicate(a->labels, 1));
	/* The range the master picks each serve task's and gang worker's
	 * port from (start orders carry "port"). */
	ports = cJSON_AddArrayToObject(c, "ports");
	cJSON_AddItemToArray(ports, cJSON_CreateNumber(a->port_lo));
	cJSON_AddItemToArray(ports, cJSON_CreateNumber(a->port_hi));
	return c;
}

/* Samples the GPUs too (and so sets the capacity's gpu_error): call it
 * before capacity_json. */
static cJSON *util_json(struct agent *a)
{
	cJSON *u = cJSON_CreateObject(), *g = cJSON_AddArrayToObject(u, "gpus");

	a->stats.cpu_pct = sysinfo_cpu_pct(&a->cpu);
	a->stats.mem_used = sysinfo_mem_used();
	cJSON_AddNumberToObject(u, "cpu_pct", (int)(a->stats.cpu_pct + 0.5));
	cJSON_AddNumberToObject(u, "mem_used", (double)a->stats.mem_used);
	gpus_sample(a);
	for (size_t i = 0; i < a->stats.ngpu; i++) {
		const struct gpu_util *gu = &a->stats.gpu[i];
		cJSON *e;
		/* No reading is no entry, rather than a made-up idle one. */
		if (gu->error[0])
			continue;
		e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "index", gu->index);
		cJSON_AddNumberToObject(e, "util_pct", gu->util_pct);
		cJSON_AddNumberToObject(e, "mem_used", (double)gu->mem_used);
		cJSON_AddItemToArray(g, e);
	}
	return u;
}

void session_sync(struct agent *a)
{
	cJSON *b = cJSON_CreateObject(), *ts, *ev, *e, *u;
	uint64_t now = now_ms();
	/* A heartbeat is due, or a master does not know us yet (one that
	 * refused us, or a new master process: it wants our tasks now). */
	bool beat = !a->joined || now - a->beat_at >= a->cfg.heartbeat_ms ||
		    strcmp(a->cap_boot, a->master_boot) != 0;
	int rv;

	cJSON_AddStringToObject(b, "node", a->cfg.name);
	cJSON_AddStringToObject(b, "boot", a->boot);
	cJSON_AddNumberToObject(b, "ack", (double)a->order_ack);
	/* Whose order numbers ack counts: a new master must not take an ack
	 * meant for its predecessor. */
	cJSON_AddStringToObject(b, "master_boot", a->master_boot);
	/* The join secret goes only until the master has accepted us (and
	 * again after a refusal, e.g. a master that lost its state). */
	if (a->cfg.join && !a->joined)
		cJSON_AddStringToObject(b, "join", a->cfg.join);
	if (beat) {
		cJSON *cap;
		char *text;
		u = util_json(a);
		cap = capacity_json(a);
		text = cJSON_PrintUnformatted(cap);
		/* To a master that has not had it: a new one, one that
		 * refused us, or after a change (labels, a GPU error). */
		if (!a->joined || !a->cap_sent || strcmp(text, a->cap_sent) != 0 ||
		    strcmp(a->cap_boot, a->master_boot) != 0 || now - a->cap_at >= CAPACITY_REFRESH_MS) {
			cJSON_AddItemToObject(b, "capacity", cap);
			free(a->cap_sent);
			a->cap_sent = text;
			strlcpy_ok(a->cap_boot, a->master_boot, sizeof(a->cap_boot));
			a->cap_at = now;
		} else {
			cJSON_Delete(cap);
			free(text);
		}
		cJSON_AddItemToObject(b, "util", u);
	}
	ev = cJSON_AddArrayToObject(b, "events");
	cJSON_ArrayForEach(e, a->events)
	{
		if (cJSON_GetArraySize(ev) >= EVENTS_PER_SYNC)
			break;
		cJSON_AddItemToArray(ev, cJSON_Duplicate(e, 1));
	}
	ts = beat ? cJSON_AddArrayToObject(b, "tasks") : NULL;
	for (struct atask *t = ts ? a->tasks : NULL; t; t = t->next) {
		uint64_t cpu = 0, mem = 0;
		e = cJSON_CreateObject();
		cgroup_usage(t->cgroup, &cpu, &mem);
		cJSON_AddNumberToObject(e, "job", (double)t->job);
		cJSON_AddNumberToObject(e, "task", t->idx);
		cJSON_AddNumberToObject(e, "attempt", t->attempt);
		cJSON_AddStringToObject(e, "state", t->stopping ? "stopping" : "running");
		cJSON_AddNumberToObject(e, "cpu_ns", (double)cpu);
		cJSON_AddNumberToObject(e, "mem", (double)mem);
		if (t->port)
			cJSON_AddNumberToObject(e, "port", t->port);
		/* So that a restarted master learns the verdicts again. */
		if (t->has_health)
			cJSON_AddStringToObject(e, "health", probe_state_str(t->health));
		cJSON_AddItemToArray(ts, e);
	}
	/* A master holds a SYNC with nothing to say (a long poll); ask for
	 * an answer now and then, so that a dead or frozen one shows. */
	if (now_ms() - a->last_reply >= 2 * a->cfg.heartbeat_ms)
		cJSON_AddBoolToObject(b, "ping", true);
	rv = net_send(a->sock, WIRE_SYNC, ++a->seq, a->sender, b, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		log_debug(LOG_SUB_WIRE, "sync not sent: %s", err_str(rv));
		if (beat) {
			/* Not sent: the next one carries all of it. */
			free(a->cap_sent);
			a->cap_sent = NULL;
		}
	} else if (beat) {
		a->beat_at = now;
	}
	cJSON_Delete(b);
	a->in_flight = rv == 0;
	a->sent_at = now_ms();
	/* Not sent (the connection is not up yet, right after a start or a
	 * move to another master): try again soon, backing off to the
	 * heartbeat, rather than a whole heartbeat later. */
	if (rv == 0) {
		a->sync_retry_ms = 0;
		a->next_sync = a->sent_at + a->cfg.heartbeat_ms;
	} else {
		a->sync_retry_ms = a->sync_retry_ms ? a->sync_retry_ms * 2 : SYNC_RETRY_MS;
		if (a->sync_retry_ms > a->cfg.heartbeat_ms)
			a->sync_retry_ms = a->cfg.heartbeat_ms;
		a->next_sync = a->sent_at + a->sync_retry_ms;
	}
}

static const char *current_url(const struct agent *a)
{
	return a->leader_url ? a->leader_url : a->masters[a->cur_master];
}

static void close_socket(struct agent *a)
{
	if (!a->sock_open)
		return;
	nng_close(a->sock);
	/* No pipe callback runs after nng_close: the pipe may go now. */
	if (a->closed_fds[0] >= 0) {
		close(a->closed_fds[0]);
		close(a->closed_fds[1]);
	}
	a->closed_fds[0] = a->closed_fds[1] = -1;
	a->sock_open = false;
}

static int connect_to(struct agent *a, const char *url, char *why, size_t whylen)
{
	int rv;

	close_socket(a);
	a->in_flight = false;
	if ((rv = net_dial_req(url, 1000, &a->sock, why, whylen)) != 0)
		return rv;
	/* Resend a request that got no reply after a master restart. */
	nng_socket_set_ms(a->sock, NNG_OPT_REQ_RESENDTIME, (nng_duration)(a->cfg.heartbeat_ms * 3));
	if (net_recv_fd(a->sock, &a->sock_fd) != 0) {
		nng_close(a->sock);
		snprintf(why, whylen, "cannot get the socket descriptor of %s", url);
		return ERR_SYS;
	}
	if (a->nmasters > 1 && net_watch_closed_pair(a->sock, a->closed_fds) != 0)
		a->closed_fds[0] = a->closed_fds[1] = -1;
	a->sock_open = true;
	a->last_reply = now_ms();
	a->next_sync = 0;
	return 0;
}

int session_start(struct agent *a, char *why, size_t whylen)
{
	char *list = xstrdup(a->cfg.master), *save = NULL, *tok;

	a->closed_fds[0] = a->closed_fds[1] = -1;
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!*tok)
			continue;
		a->masters = xrealloc(a->masters, (a->nmasters + 1) * sizeof(*a->masters));
		a->masters[a->nmasters++] = xstrdup(tok);
	}
	free(list);
	if (a->nmasters == 0) {
		snprintf(why, whylen, "--master: no URL in \"%s\"", a->cfg.master);
		return ERR_INVAL;
	}
	return connect_to(a, current_url(a), why, whylen);
}

/* Move to url (a leader a follower named) or, url NULL, to the master after
 * the one we talk to in the list.  A named URL that is in the list becomes
 * the current one, so that "the next" after it is right. */
static void switch_master(struct agent *a, const char *url, const char *why)
{
	char err[256];
	char *from = xstrdup(current_url(a));

	free(a->leader_url);
	a->leader_url = NULL;
	if (url) {
		size_t i;
		for (i = 0; i < a->nmasters && strcmp(a->masters[i], url) != 0; i++)
			;
		if (i < a->nmasters)
			a->cur_master = i;
		else
			a->leader_url = xstrdup(url);
	} else {
		a->cur_master = (a->cur_master + 1) % a->nmasters;
	}
	log_info("master %s %s: moving to %s", from, why, current_url(a));
	free(from);
	if (connect_to(a, current_url(a), err, sizeof(err)) != 0)
		log_warn("cannot dial %s: %s", current_url(a), err);
}

void session_closed(struct agent *a)
{
	uint32_t ids[16];

	while (a->closed_fds[0] >= 0 && read(a->closed_fds[0], ids, sizeof(ids)) > 0)
		;
	if (a->nmasters > 1)
		switch_master(a, NULL, "closed the connection");
}

/*
 * The master revoked this agent's key (mlctl nodes remove) and moved its
 * tasks elsewhere: every container here is a stale copy, killed at once
 * as the master would order for a stale copy.  A stop already under way is
 * only cut short.
 */
static void stop_all_revoked(struct agent *a)
{
	for (struct atask *t = a->tasks; t; t = t->next)
		if (!t->killed)
			task_stop(a, t->job, t->idx, t->attempt, 0,
				  "this agent's key was revoked (mlctl nodes remove): its tasks "
				  "run elsewhere now");
}

/* A follower's refusal: true when it was one (and the session moved). */
static bool not_leader(struct agent *a, const cJSON *body)
{
	int64_t code = 0;
	const char *lead = NULL;

	if (wire_get_int(body, "code", INT32_MIN, INT32_MAX, &code) != 0 || code != ERR_NOTLEADER)
		return false;
	if (wire_get_str(body, "leader_agents", 1024, &lead) == 0 && *lead &&
	    strcmp(lead, current_url(a)) != 0)
		switch_master(a, lead, "is not the leader");
	else if (a->nmasters > 1)
		switch_master(a, NULL, "is not the leader and knows none yet");
	return true;
}

void session_check(struct agent *a)
{
	uint64_t silent = now_ms() - a->last_reply;
	uint64_t limit = 4 * a->cfg.heartbeat_ms < 2000 ? 2000 : 4 * a->cfg.heartbeat_ms;

	if (silent < limit || (a->nmasters < 2 && !a->leader_url))
		return;
	switch_master(a, NULL, "does not answer");
}

void session_close(struct agent *a)
{
	close_socket(a);
	for (size_t i = 0; i < a->nmasters; i++)
		free(a->masters[i]);
	free(a->masters);
	free(a->leader_url);
}

void session_receive(struct agent *a)
{
	char err[512];
	int rv;

	for (;;) {
		struct wire_hdr h;
		cJSON *body;
		rv = net_recv(a->sock, &h, &body, NNG_FLAG_NONBLOCK, err, sizeof(err));
		if (rv == ERR_TIMEDOUT)
			break;
		if (rv != 0) {
			log_warn("master reply rejected: %s", err);
			a->next_sync = 0;
			break;
		}
		a->in_flight = false;
		a->last_reply = now_ms();
		if (h.type == WIRE_ERROR && not_leader(a, body)) {
			cJSON_Delete(body);
			break; /* the socket was replaced */
		}
		if (h.type == WIRE_ORDERS) {
			a->last_error[0] = '\0';
			a->joined = true;
			handle_orders(a, body);
		} else if (h.type == WIRE_ERROR) {
			const char *msg = "?";
			char cut[sizeof(a->last_error)];
			bool revoked = false;
			wire_get_str(body, "message", WIRE_MAX_STR, &msg);
			/* Compared as kept, so a long reason is logged once. */
			strlcpy_ok(cut, msg, sizeof(cut));
			if (strcmp(cut, a->last_error) != 0)
				log_error("the master refuses this agent: %s", msg);
			strlcpy_ok(a->last_error, msg, sizeof(a->last_error));
			a->joined = false;
			if (wire_get_bool(body, "revoked", &revoked) == 0 && revoked)
				stop_all_revoked(a);
		} else
			log_warn("unexpected %s message from the master", wire_type_str(h.type));
		cJSON_Delete(body);
	}
}
