/*
 * guard.c - the master's limits at the edge: connections per listener,
 * requests a second per peer, and the size of what arrives, checked before a
 * request reaches a handler (docs/limits.md).
 *
 * Rates are kept per peer in two tables, one per socket, so that clients
 * can never use up what agents' heartbeats need: a client over its rate is
 * answered with an error (cheap, and bounded per turn by drain), and the
 * agent socket is read with its own budget in the same turn.  A peer is its
 * sealing key; in the clear (--insecure) a client is its remote address (all
 * clients of one host share a bucket) and an agent its sender id.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "bounds.h"
#include "log.h"
#include "master.h"
#include "util.h"

#define GUARD_RATE_SLOTS 4096 /* peers whose bucket is kept, per socket */
#define GUARD_LOG_MS 1000     /* at most one refusal line a second */

void guard_init(struct master *m)
{
	m->guard.clients = bounds_rate_new((uint32_t)m->cfg.rate_limit, 0, GUARD_RATE_SLOTS);
	m->guard.agents = bounds_rate_new((uint32_t)m->cfg.agent_rate_limit, 0, GUARD_RATE_SLOTS);
	net_limit_conns(m->ctl, (uint32_t)m->cfg.max_conns, "client", "--max-conns");
	net_limit_conns(m->agents, (uint32_t)m->cfg.max_agent_conns, "agent", "--max-agent-conns");
}

void guard_free(struct master *m)
{
	bounds_rate_free(m->guard.clients);
	bounds_rate_free(m->guard.agents);
	m->guard.clients = m->guard.agents = NULL;
}

/* Who a request is from, for its rate bucket. */
static size_t peer_key(const struct net_peer *peer, const struct wire_hdr *h, bool agents,
		       uint8_t key[BOUNDS_KEY_LEN])
{
	nng_sockaddr sa;
	nng_pipe p = NNG_PIPE_INITIALIZER;

	if (peer->sealed) {
		memcpy(key, peer->pk, SEAL_PK_LEN < BOUNDS_KEY_LEN ? SEAL_PK_LEN : BOUNDS_KEY_LEN);
		return SEAL_PK_LEN < BOUNDS_KEY_LEN ? SEAL_PK_LEN : BOUNDS_KEY_LEN;
	}
	if (agents) {
		memcpy(key, &h->sender, sizeof(h->sender));
		return sizeof(h->sender);
	}
	p.id = peer->pipe;
	if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) == 0) {
		if (sa.s_family == NNG_AF_INET) {
			memcpy(key, &sa.s_in.sa_addr, sizeof(sa.s_in.sa_addr));
			return sizeof(sa.s_in.sa_addr);
		}
		if (sa.s_family == NNG_AF_INET6) {
			memcpy(key, sa.s_in6.sa_addr, sizeof(sa.s_in6.sa_addr));
			return sizeof(sa.s_in6.sa_addr);
		}
	}
	/* ipc:// and the like: the connection. */
	memcpy(key, &peer->pipe, sizeof(peer->pipe));
	return sizeof(peer->pipe);
}

static void refuse(struct master *m, nng_socket s, const struct net_peer *peer, int code,
		   const char *what, const char *msg)
{
	uint64_t now = now_ms();

	m->guard.refused++;
	if (now - m->guard.logged_at >= GUARD_LOG_MS) {
		log_warn("%s request refused: %s (%" PRIu64 " refused so far)", what, msg,
			 m->guard.refused);
		m->guard.logged_at = now;
	}
	out_reply(m, s, peer, WIRE_ERROR, wire_error_body(code, "%s", msg));
}

bool guard_admit(struct master *m, nng_socket s, const struct net_peer *peer,
		 const struct wire_hdr *h, bool agents)
{
	struct bounds_rate *r = agents ? m->guard.agents : m->guard.clients;
	uint8_t key[BOUNDS_KEY_LEN];
	size_t klen = peer_key(peer, h, agents, key);
	char msg[256];

	if (!bounds_rate_take(r, key, klen, now_ms())) {
		snprintf(msg, sizeof(msg),
			 "rate limit: %u requests/s per %s (mlmaster %s); retry later",
			 bounds_rate_rate(r), agents ? "agent" : "client",
			 agents ? "--agent-rate-limit" : "--rate-limit");
		refuse(m, s, peer, ERR_BUSY, agents ? "agent" : "client", msg);
		return false;
	}
	/* A spec travels whole in a submit or rollout: its limit applies
	 * to the request before any of it is parsed. */
	if (!agents && (h->type == WIRE_SUBMIT || h->type == WIRE_ROLLOUT) &&
	    h->body_len > SPEC_MAX_BYTES) {
		snprintf(msg, sizeof(msg),
			 "spec: the %s request is %" PRIu32 " bytes, over the limit of %d bytes "
			 "for a spec (SPEC_MAX_BYTES)",
			 wire_type_str(h->type), h->body_len, SPEC_MAX_BYTES);
		refuse(m, s, peer, ERR_TOOBIG, "client", msg);
		return false;
	}
	return true;
}

void guard_refuse_frame(struct master *m, nng_socket s, const struct net_peer *peer, bool agents,
			const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "message refused: %s", why);
	refuse(m, s, peer, ERR_TOOBIG, agents ? "agent" : "client", msg);
}
