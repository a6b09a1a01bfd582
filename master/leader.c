/*
 * leader.c - HA masters: one leader, the others standing by.
 *
 * With a store that has leases (etcd), every master keeps a lease of
 * --lease-ttl alive and campaigns for the key "leader" with it: one
 * transaction puts the key with this master's record (its boot id and the
 * URLs clients and agents reach it at) if no one holds it.  The winner loads
 * the state, fences the store on that key (every later commit applies only
 * while "leader" still holds its record, so a deposed leader cannot write),
 * and schedules.  The others answer every request with ERR_NOTLEADER and the
 * leader's URLs, so mlctl and agents move there, and campaign again every
 * CAMPAIGN_MS: when the leader dies its lease ends within the TTL, the key
 * goes with it, and the next campaign wins.
 *
 * Followers are warm: each loads the state and watches the store from the
 * revision it loaded at; a change marks its model stale and it loads again
 * (at most every RELOAD_MIN_MS, and never more often than four times its
 * last load took, so a big state cannot keep it busy).  It answers the
 * read-only requests (ls, status, nodes, endpoints, history) from that
 * model, which trails the leader by that much; on winning, a model with no
 * change pending is taken as it is, without reading the store again.
 *
 * A leader stops acting as soon as it cannot prove its lease: before each
 * turn's replies and orders go out it checks that its last successful
 * keepalive was sent less than the TTL (minus a margin) ago, on the
 * monotonic clock.  A leader that was frozen (SIGSTOP, a long GC-like
 * pause, a VM migration) therefore wakes up, sees the gap, and steps down
 * without sending anything; if it had already started a write, the fence
 * refuses it.  Stepping down forgets the model (state_reset); the master
 * then campaigns like any follower.
 *
 * With sqlite there is no election: the master that holds the state
 * folder's lock is the leader for its whole life, except while its store
 * cannot be written (leader_store_failed): then it stands by in its own
 * way, answering reads from the committed state and refusing the rest,
 * and probes the store until a write goes through again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "util.h"
#include "wire.h"

#define LEADER_KEY "leader"
#define CAMPAIGN_MS 250
#define MARGIN_MS 300 /* act only while the lease has this much left */
#define RELOAD_MIN_MS 500
#define STORE_PROBE_MS 500     /* the first probe, doubled up to the max */
#define STORE_PROBE_MAX_MS 4000
/* A probe write this big must go through before new work is taken again,
 * so that a store with a few pages left does not flap at every turn. */
#define STORE_PROBE_BYTES (256 * 1024)
#define STORE_PROBE_KEY "meta/write_check"

static void forget_leader(struct master *m)
{
	free(m->ha.ctl_url);
	free(m->ha.agent_url);
	m->ha.ctl_url = m->ha.agent_url = NULL;
}

/* Who holds the key, from its record. */
static void learn_leader(struct master *m, const char *rec)
{
	cJSON *o = cJSON_Parse(rec);
	const char *c = NULL, *a = NULL, *id = "";

	forget_leader(m);
	if (o && wire_get_str(o, "client", 1024, &c) == 0 && wire_get_str(o, "agents", 1024, &a) == 0) {
		m->ha.ctl_url = xstrdup(c);
		m->ha.agent_url = xstrdup(a);
		wire_get_str(o, "id", 64, &id);
		if (strcmp(id, m->ha.seen) != 0) {
			log_info("leader is master %s (clients %s, agents %s)", id, c, a);
			strlcpy_ok(m->ha.seen, id, sizeof(m->ha.seen));
		}
	}
	cJSON_Delete(o);
}

int leader_init(struct master *m)
{
	cJSON *o;
	int rv;

	rv = store_lease_grant(m->store, (int64_t)m->cfg.lease_ttl_ms, &m->ha.lease);
	if (rv == ERR_NOTSUP) {
		m->ha.on = false;
		m->ha.leading = true;
		return 0;
	}
	if (rv != 0)
		return rv;
	m->ha.on = true;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", m->boot); /* this process, for logs */
	cJSON_AddStringToObject(o, "client", m->cfg.advertise_client);
	cJSON_AddStringToObject(o, "agents", m->cfg.advertise_agents);
	m->ha.record = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	log_info("HA: campaigning for the leader key with a %" PRIu64 " ms lease", m->cfg.lease_ttl_ms);
	return 0;
}

static void step_down(struct master *m, const char *why)
{
	log_warn("no longer the leader: %s; dropping this turn's replies and orders and "
		 "standing by",
		 why);
	m->ha.leading = false;
	m->ha.loaded = m->ha.stale = false;
	state_reset(m);
	store_fence(m->store, NULL, NULL, 0);
	forget_leader(m);
	m->ha.next_campaign = 0;
}

/* A keepalive, or a new lease when ours is gone; 0 when ours is alive. */
static int renew(struct master *m)
{
	uint64_t t0 = now_ms();
	int rv = store_lease_keepalive(m->store, m->ha.lease, NULL);

	if (rv == 0) {
		m->ha.lease_ok_at = t0;
		return 0;
	}
	if (rv == ERR_NOENT && !m->ha.leading) {
		t0 = now_ms();
		if ((rv = store_lease_grant(m->store, (int64_t)m->cfg.lease_ttl_ms,
					    &m->ha.lease)) == 0)
			m->ha.lease_ok_at = t0;
	}
	return rv;
}

/* Watch events: any change but the leader key's makes the model stale; the
 * leader key deleted means an election is on. */
static void on_change(int type, const char *key, const void *val, size_t len, int64_t rev,
		      void *arg)
{
	struct master *m = arg;

	(void)val;
	(void)len;
	if (rev > m->ha.watch_from)
		m->ha.watch_from = rev;
	if (strcmp(key, LEADER_KEY) == 0) {
		if (type == STORE_WATCH_DEL)
			m->ha.next_campaign = 0;
		return;
	}
	m->ha.stale = true;
}

/* Take what the watch has brought (it never blocks). */
static void follow(struct master *m)
{
	int rv;

	if (!m->ha.watching)
		return;
	rv = store_watch_poll(m->store, on_change, m);
	if (rv == ERR_COMPACTED) {
		m->ha.stale = true;
		m->ha.loaded = false; /* load again, and watch from there */
		m->ha.watching = false;
	} else if (rv != 0) {
		/* Broken stream: again from the last revision seen. */
		m->ha.watching = store_watch_start(m->store, "", m->ha.watch_from + 1) == 0;
		if (!m->ha.watching)
			m->ha.loaded = false;
	}
}

/* (Re)load the follower's model and watch from where it was read. */
static void load_warm(struct master *m)
{
	uint64_t t0 = now_ms();
	void *v = NULL;
	size_t len;
	int64_t rev = 0;
	int rv;

	/* The revision before the lists: a change after it is either in
	 * what they read or delivered by the watch (or both: one more load). */
	rv = store_get(m->store, "meta/next_job_id", &v, &len);
	free(v);
	if ((rv != 0 && rv != ERR_NOENT) || store_revision(m->store, &rev) != 0)
		return;
	state_reset(m);
	m->ha.stale = false;
	if ((rv = state_load(m)) != 0) {
		log_warn("standby: cannot load the state: %s", err_str(rv));
		state_reset(m);
		m->ha.loaded = false;
		return;
	}
	m->ha.watch_from = rev;
	if (!m->ha.watching || !m->ha.loaded) {
		m->ha.watching = store_watch_start(m->store, "", rev + 1) == 0;
		if (!m->ha.watching) {
			state_reset(m);
			return;
		}
	}
	m->ha.loaded = true;
	m->ha.reload_ms = now_ms() - t0;
	m->ha.next_reload = now_ms() + (4 * m->ha.reload_ms > RELOAD_MIN_MS ? 4 * m->ha.reload_ms
									 : RELOAD_MIN_MS);
}

bool leader_follower_reads(const struct master *m, uint16_t type)
{
	return m->ha.loaded && (type == WIRE_LIST || type == WIRE_STATUS || type == WIRE_NODES ||
				type == WIRE_ENDPOINTS || type == WIRE_HISTORY || type == WIRE_TOP ||
				type == WIRE_QUEUES);
}

static void become_leader(struct master *m)
{
	uint8_t rnd[8];
	bool warm;
	int rv;

	/* A new session boot id: agents that knew this process as an earlier
	 * leader must start its order numbers again (the model, and so every
	 * node's order sequence, is new). */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(m->boot, sizeof(m->boot), rnd, sizeof(rnd));
	follow(m);
	warm = m->ha.loaded && !m->ha.stale;
	if (m->ha.watching)
		store_watch_stop(m->store);
	m->ha.watching = m->ha.loaded = m->ha.stale = false;
	if (!warm)
		state_reset(m);
	/* The outbox of a follower holds replies only; orders queued by a
	 * load go out once we lead. */
	if ((rv = store_fence(m->store, LEADER_KEY, m->ha.record, strlen(m->ha.record))) != 0 ||
	    (!warm && (rv = state_load(m)) != 0)) {
		log_error("won the election but cannot load the state: %s; resigning",
			  err_str(rv));
		state_reset(m);
		store_fence(m->store, NULL, NULL, 0);
		store_lease_revoke(m->store, m->ha.lease);
		m->ha.lease = 0;
		return;
	}
	for (size_t i = 0; i < m->nnodes; i++) {
		/* Silent from now on, and no session with their agents yet. */
		m->nodes[i]->last_seen = now_ms();
		m->nodes[i]->boot[0] = '\0';
		m->nodes[i]->poll_held = false;
	}
	m->ha.leading = true;
	m->sched_dirty = true;
	forget_leader(m);
	log_info("leader now (session %s): %zu nodes, %zu jobs (%s)", m->boot, m->nnodes, m->njobs,
		 warm ? "the standby's model, current" : "loaded");
}

bool leader_valid(struct master *m)
{
	if (!m->ha.on)
		return true;
	if (!m->ha.leading)
		return false;
	if (now_ms() - m->ha.lease_ok_at + MARGIN_MS >= m->cfg.lease_ttl_ms) {
		step_down(m, "its lease could not be renewed in time");
		return false;
	}
	return true;
}

void leader_store_failed(struct master *m, int rv)
{
	const char *why = store_why(m->store);
	uint64_t t0 = now_ms();
	struct outmsg *o, *next, *keep;

	snprintf(m->ha.degraded_why, sizeof(m->ha.degraded_why), "%s",
		 *why ? why : err_str(rv));
	log_error("store write failed (%s): this turn is dropped; new work is refused and reads "
		  "are answered from the committed state until the store takes writes again",
		  m->ha.degraded_why);
	m->stats.store_failures++;
	m->ha.leading = false;
	m->ha.degraded = true;
	m->ha.probe_ms = STORE_PROBE_MS;
	m->ha.next_probe = t0 + m->ha.probe_ms;
	/* Every reply of the turn becomes the refusal (none of it was
	 * committed), so that no client waits for an answer in vain. */
	keep = m->out_head;
	m->out_head = NULL;
	m->out_tail = &m->out_head;
	state_reset(m);
	if ((rv = state_load(m)) != 0)
		fatal("cannot load the committed state again after a failed write: %s",
		      err_str(rv));
	m->ha.loaded = true;
	for (o = keep; o; o = next) {
		next = o->next;
		leader_refuse(m, o->sock, &o->peer, false);
		cJSON_Delete(o->body);
		free(o);
	}
	log_info("reloaded the committed state in %" PRIu64 " ms: %zu nodes, %zu jobs",
		 now_ms() - t0, m->nnodes, m->njobs);
}

/* One write of STORE_PROBE_BYTES and its removal, each committed. */
static int probe_write(struct master *m)
{
	void *pad = xcalloc(1, STORE_PROBE_BYTES);
	int rv;

	if ((rv = store_begin(m->store)) == 0) {
		if ((rv = store_put(m->store, STORE_PROBE_KEY, pad, STORE_PROBE_BYTES)) == 0)
			rv = store_commit(m->store);
		else
			store_rollback(m->store);
	}
	free(pad);
	if (rv == 0 && (rv = store_begin(m->store)) == 0) {
		if ((rv = store_del(m->store, STORE_PROBE_KEY)) == 0)
			rv = store_commit(m->store);
		else
			store_rollback(m->store);
	}
	return rv;
}

static void probe_store(struct master *m)
{
	uint8_t rnd[8];
	int rv;

	if ((rv = probe_write(m)) != 0) {
		/* Back off, so that a long outage does not fill the log. */
		m->ha.probe_ms = m->ha.probe_ms * 2 > STORE_PROBE_MAX_MS ? STORE_PROBE_MAX_MS
									: m->ha.probe_ms * 2;
		m->ha.next_probe = now_ms() + m->ha.probe_ms;
		const char *why = store_why(m->store);
		if (*why && strcmp(why, m->ha.degraded_why) != 0) {
			snprintf(m->ha.degraded_why, sizeof(m->ha.degraded_why), "%s", why);
			log_warn("the store still cannot be written: %s", why);
		}
		return;
	}
	/* The model is the committed one, untouched since: a new session
	 * for the agents (their order numbers start again), as after an
	 * election. */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(m->boot, sizeof(m->boot), rnd, sizeof(rnd));
	for (size_t i = 0; i < m->nnodes; i++) {
		m->nodes[i]->last_seen = now_ms();
		m->nodes[i]->boot[0] = '\0';
		m->nodes[i]->poll_held = false;
	}
	m->ha.degraded = false;
	m->ha.loaded = false;
	m->ha.leading = true;
	m->sched_dirty = true;
	log_info("the store takes writes again (was: %s): accepting new work",
		 m->ha.degraded_why);
	m->ha.degraded_why[0] = '\0';
}

void leader_tick(struct master *m)
{
	uint64_t now = now_ms();

	if (!m->ha.on) {
		if (m->ha.degraded && now >= m->ha.next_probe)
			probe_store(m);
		return;
	}
	if (m->ha.leading) {
		if (!leader_valid(m))
			return;
		if (now - m->ha.lease_ok_at >= m->cfg.lease_ttl_ms / 3) {
			int rv = renew(m);
			if (rv == ERR_NOENT)
				step_down(m, "its lease expired");
			else if (rv != 0)
				log_warn("lease keepalive failed: %s", err_str(rv));
		}
		return;
	}
	follow(m);
	if (!m->ha.loaded || (m->ha.stale && now >= m->ha.next_reload))
		load_warm(m);
	if (now < m->ha.next_campaign)
		return;
	m->ha.next_campaign = now + CAMPAIGN_MS;
	if (m->ha.lease == 0 || now - m->ha.lease_ok_at >= m->cfg.lease_ttl_ms / 3) {
		if (m->ha.lease == 0) {
			uint64_t t0 = now_ms();
			if (store_lease_grant(m->store, (int64_t)m->cfg.lease_ttl_ms, &m->ha.lease) !=
			    0)
				return;
			m->ha.lease_ok_at = t0;
		} else if (renew(m) != 0) {
			return;
		}
	}
	{
		bool won = false;
		char *holder = NULL;
		size_t hlen = 0;
		int rv = store_put_if_absent(m->store, LEADER_KEY, m->ha.record,
					     strlen(m->ha.record), m->ha.lease, &won, &holder, &hlen);
		if (rv != 0) {
			free(holder);
			return;
		}
		/* A retried request may find its own earlier put. */
		if (won || (holder && strcmp(holder, m->ha.record) == 0))
			become_leader(m);
		else if (holder)
			learn_leader(m, holder);
		free(holder);
	}
}

void leader_refuse(struct master *m, nng_socket sock, const struct net_peer *peer, bool agents)
{
	const char *url = agents ? m->ha.agent_url : m->ha.ctl_url;
	cJSON *b;

	if (m->ha.degraded) {
		out_reply(m, sock, peer, WIRE_ERROR,
			  wire_error_body(ERR_STORE,
					  "the master's store cannot be written (%s): no new work "
					  "or changes are accepted until it can; reads are still "
					  "answered",
					  m->ha.degraded_why));
		return;
	}
	if (url)
		b = wire_error_body(ERR_NOTLEADER, "this master is standing by; the leader is at %s",
				    url);
	else
		b = wire_error_body(ERR_NOTLEADER,
				    "this master is standing by and no leader is elected yet");
	if (m->ha.ctl_url) {
		cJSON_AddStringToObject(b, "leader", m->ha.ctl_url);
		cJSON_AddStringToObject(b, "leader_agents", m->ha.agent_url);
	}
	out_reply(m, sock, peer, WIRE_ERROR, b);
}

void leader_resign(struct master *m)
{
	if (!m->ha.on || !m->ha.lease)
		return;
	/* The key goes with the lease: a follower takes over at once. */
	if (store_lease_revoke(m->store, m->ha.lease) == 0 && m->ha.leading)
		log_info("resigned the leadership");
	m->ha.lease = 0;
	free(m->ha.record);
	m->ha.record = NULL;
	forget_leader(m);
}
