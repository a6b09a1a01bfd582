/*
 * net.c - wire frames over nng sockets (see net.h).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

#include <sodium.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "err.h"
#include "net.h"
#include "util.h"
#include "log.h"

static struct seal_ctx *seal_ctx;
static bool seal_required;
static bool have_peer_key;
static uint8_t peer_key[SEAL_PK_LEN];

/*
 * Listening sockets' connections (see net_limit_conns in net.h).  Entries
 * are made by the thread that opens listeners and never freed; the pipe
 * callbacks, on nng's threads, touch only the atomics of their own entry.
 */
#define NET_LISTENERS_MAX 8
#define NET_REFUSAL_LOG_MS 1000 /* at most one refusal line a second */

static struct net_conns {
	int sock;                /* nng_socket_id, 0 = free entry */
	atomic_int closed_fd;    /* where REM_POST writes pipe ids, -1 = none */
	atomic_uint max;         /* 0 = no cap */
	atomic_uint open;        /* pipes between ADD_PRE and REM_POST */
	atomic_uint_fast64_t refused, logged_at;
	char what[32], opt[32];
} conns_tab[NET_LISTENERS_MAX];
static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;

static struct net_conns *conns_find(nng_socket s, bool create)
{
	struct net_conns *c = NULL;
	int id = nng_socket_id(s);

	pthread_mutex_lock(&conns_lock);
	for (size_t i = 0; i < NET_LISTENERS_MAX && !c; i++)
		if (conns_tab[i].sock == id)
			c = &conns_tab[i];
	for (size_t i = 0; i < NET_LISTENERS_MAX && !c && create; i++)
		if (!conns_tab[i].sock) {
			c = &conns_tab[i];
			c->sock = id;
			atomic_store(&c->closed_fd, -1);
			snprintf(c->what, sizeof(c->what), "a");
		}
	pthread_mutex_unlock(&conns_lock);
	return c;
}

/* nng threads.  nng delivers REM_POST for every pipe it delivered ADD_PRE
 * for, also one closed in ADD_PRE, so the count stays exact. */
static void conns_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct net_conns *c = arg;
	uint32_t id = (uint32_t)nng_pipe_id(p);
	unsigned n, max;
	int fd;

	if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&c->open, 1);
		/* A full pipe means the loop is far behind; the node
		 * timeout still catches a silent node, so a failed write
		 * is let go. */
		if ((fd = atomic_load(&c->closed_fd)) >= 0)
			(void)!write(fd, &id, sizeof(id));
		return;
	}
	n = atomic_fetch_add(&c->open, 1) + 1;
	max = atomic_load(&c->max);
	if (max && n > max) {
		uint64_t now = now_ms(), last = atomic_load(&c->logged_at);
		uint64_t refused = atomic_fetch_add(&c->refused, 1) + 1;
		nng_pipe_close(p);
		if (now - last >= NET_REFUSAL_LOG_MS &&
		    atomic_compare_exchange_strong(&c->logged_at, &last, now))
			log_warn("%s listener: connection refused: %u connections open is the "
				 "limit (%s %u); %" PRIu64 " refused so far",
				 c->what, max, c->opt, max, refused);
	}
}

void net_seal(struct seal_ctx *ctx, bool required)
{
	seal_ctx = ctx;
	seal_required = required;
}

void net_peer_key(const uint8_t *pk)
{
	have_peer_key = pk != NULL;
	if (pk)
		memcpy(peer_key, pk, SEAL_PK_LEN);
}

int net_listen_raw(const char *url, nng_socket *s, char *why, size_t whylen)
{
	int rv;

	if ((rv = nng_rep0_open_raw(s)) != 0) {
		snprintf(why, whylen, "cannot open socket: %s", nng_strerror(rv));
		return ERR_IO;
	}
	/* Count connections from the first one (net_limit_conns). */
	{
		struct net_conns *c = conns_find(*s, true);
		if (!c || nng_pipe_notify(*s, NNG_PIPE_EV_ADD_PRE, conns_event, c) != 0 ||
		    nng_pipe_notify(*s, NNG_PIPE_EV_REM_POST, conns_event, c) != 0) {
			snprintf(why, whylen, "cannot watch connections: more than %d listeners",
				 NET_LISTENERS_MAX);
			nng_close(*s);
			return ERR_IO;
		}
	}
	/* Replies may be held for a while (long polls, log relays): make
	 * sure bursts of agents do not drop requests. */
	nng_socket_set_int(*s, NNG_OPT_RECVBUF, 1024);
	/* Replies are sent without blocking from the one master thread; with
	 * nng's default send buffer of 0 a reply is dropped whenever the
	 * previous one has not been taken by the pipe yet. */
	nng_socket_set_int(*s, NNG_OPT_SENDBUF, 1024);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, SEAL_MAX_FRAME);
	if ((rv = nng_listen(*s, url, NULL, 0)) != 0) {
		snprintf(why, whylen, "cannot listen on %s: %s", url, nng_strerror(rv));
		nng_close(*s);
		return ERR_IO;
	}
	return 0;
}

static void pipe_closed(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	uint32_t id = (uint32_t)nng_pipe_id(p);
	int fd = (int)(intptr_t)arg;

	(void)ev;
	/* A full pipe means the loop is far behind; the node timeout still
	 * catches a silent node, so a lost notice costs only speed. */
	if (write(fd, &id, sizeof(id)) < 0)
		return;
}

int net_limit_conns(nng_socket s, uint32_t max, const char *what, const char *opt)
{
	struct net_conns *c = conns_find(s, false);

	if (!c)
		return ERR_INVAL;
	pthread_mutex_lock(&conns_lock);
	snprintf(c->what, sizeof(c->what), "%s", what);
	snprintf(c->opt, sizeof(c->opt), "%s", opt);
	pthread_mutex_unlock(&conns_lock);
	atomic_store(&c->max, max);
	return 0;
}

uint32_t net_conns_open(nng_socket s)
{
	struct net_conns *c = conns_find(s, false);

	return c ? atomic_load(&c->open) : 0;
}

uint64_t net_conns_refused(nng_socket s)
{
	struct net_conns *c = conns_find(s, false);

	return c ? atomic_load(&c->refused) : 0;
}

int net_watch_closed_pair(nng_socket s, int fds[2])
{
	struct net_conns *c = conns_find(s, false);

	if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
		return ERR_SYS;
	if (c) {
		/* A listener of ours: its callback already runs. */
		atomic_store(&c->closed_fd, fds[1]);
		return 0;
	}
	if (nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, pipe_closed, (void *)(intptr_t)fds[1]) != 0) {
		close(fds[0]);
		close(fds[1]);
		return ERR_SYS;
	}
	return 0;
}

int net_watch_closed(nng_socket s, int *fd)
{
	int p[2], rv;

	if ((rv = net_watch_closed_pair(s, p)) != 0)
		return rv;
	*fd = p[0];
	return 0;
}

int net_dial_req(const char *url, int recv_timeout_ms, nng_socket *s, char *why, size_t whylen)
{
	int rv;

	if ((rv = nng_req0_open(s)) != 0) {
		snprintf(why, whylen, "cannot open socket: %s", nng_strerror(rv));
		return ERR_IO;
	}
	nng_socket_set_ms(*s, NNG_OPT_RECVTIMEO, recv_timeout_ms);
	nng_socket_set_ms(*s, NNG_OPT_SENDTIMEO, recv_timeout_ms);
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, SEAL_MAX_FRAME);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(*s, NNG_OPT_RECONNMAXT, 500);
	if ((rv = nng_dial(*s, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(why, whylen, "cannot dial %s: %s", url, nng_strerror(rv));
		nng_close(*s);
		return ERR_IO;
	}
	return 0;
}

int net_recv_fd(nng_socket s, int *fd)
{
	return nng_socket_get_int(s, NNG_OPT_RECVFD, fd) == 0 ? 0 : ERR_IO;
}

/* Encode (and seal to pk, when given and sealing is on) into a message. */
static int msg_from_frame(uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body,
			  const uint8_t *pk, nng_msg **out)
{
	uint8_t *buf, *sealed;
	size_t len, slen;
	int rv;

	if ((rv = wire_encode(type, seq, sender, body, &buf, &len)) != 0)
		return rv;
	if (seal_ctx && pk) {
		rv = seal_frame(seal_ctx, pk, buf, len, &sealed, &slen);
		free(buf);
		if (rv != 0)
			return rv;
		buf = sealed;
		len = slen;
	}
	if (nng_msg_alloc(out, 0) != 0 || nng_msg_append(*out, buf, len) != 0) {
		free(buf);
		fprintf(stderr, "out of memory\n");
		abort();
	}
	free(buf);
	return 0;
}

/*
 * Open (when sealed) and decode a received message.  *sealed and pk say who
 * sealed it.  Unsealed frames are refused when sealing is required.
 */
static int decode_msg(nng_msg *m, struct wire_hdr *h, cJSON **body, bool *sealed, uint8_t *pk,
		      char *why, size_t whylen)
{
	const uint8_t *buf = nng_msg_body(m);
	size_t len = nng_msg_len(m);
	uint8_t *plain;
	size_t plen;
	int rv;

	*sealed = seal_is_sealed(buf, len);
	/* The size first: a peer learns that limit whether or not it seals. */
	if (!*sealed && len > WIRE_HDR_LEN + WIRE_MAX_BODY) {
		snprintf(why, whylen,
			 "a message of %zu bytes is over the limit of %u bytes a message body "
			 "(WIRE_MAX_BODY) plus its %d-byte header",
			 len, WIRE_MAX_BODY, WIRE_HDR_LEN);
		return ERR_TOOBIG;
	}
	if (!*sealed) {
		if (seal_required) {
			snprintf(why, whylen,
				 "unsealed message refused (this side runs without --insecure)");
			return ERR_PROTO;
		}
		return wire_decode(buf, len, h, body, why, whylen);
	}
	if (!seal_ctx) {
		snprintf(why, whylen, "sealed message, but this side has no key (--insecure)");
		return ERR_PROTO;
	}
	if ((rv = seal_open(seal_ctx, buf, len, &plain, &plen, pk, why, whylen)) != 0)
		return rv;
	rv = wire_decode(plain, plen, h, body, why, whylen);
	free(plain);
	return rv;
}

int net_recv_raw(nng_socket s, struct net_peer *peer, struct wire_hdr *h, cJSON **body, char *why,
		 size_t whylen)
{
	nng_msg *m;
	int rv;

	rv = nng_recvmsg(s, &m, NNG_FLAG_NONBLOCK);
	if (rv == NNG_EAGAIN)
		return ERR_TIMEDOUT;
	if (rv != 0) {
		snprintf(why, whylen, "receive: %s", nng_strerror(rv));
		return ERR_IO;
	}
	peer->btlen = nng_msg_header_len(m);
	if (peer->btlen > NET_BT_MAX) {
		snprintf(why, whylen, "backtrace of %zu bytes", peer->btlen);
		nng_msg_free(m);
		return ERR_PROTO;
	}
	memcpy(peer->bt, nng_msg_header(m), peer->btlen);
	peer->pipe = (uint32_t)nng_pipe_id(nng_msg_get_pipe(m));
	rv = decode_msg(m, h, body, &peer->sealed, peer->pk, why, whylen);
	nng_msg_free(m);
	return rv;
}

int net_reply_raw(nng_socket s, const struct net_peer *peer, uint16_t type, uint64_t seq,
		  uint64_t sender, const cJSON *body)
{
	nng_msg *m;
	int rv;

	if ((rv = msg_from_frame(type, seq, sender, body, peer->sealed ? peer->pk : NULL, &m)) != 0)
		return rv;
	if (nng_msg_header_append(m, peer->bt, peer->btlen) != 0) {
		nng_msg_free(m);
		return ERR_IO;
	}
	/* A raw rep send never blocks for long: if the peer has gone the
	 * message is dropped, which is what we want. */
	if ((rv = nng_sendmsg(s, m, NNG_FLAG_NONBLOCK)) != 0) {
		nng_msg_free(m);
		log_warn("reply dropped: %s", nng_strerror(rv));
		return ERR_IO;
	}
	return 0;
}

int net_send(nng_socket s, uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body,
	     int flags)
{
	nng_msg *m;
	int rv;

	if ((rv = msg_from_frame(type, seq, sender, body, have_peer_key ? peer_key : NULL, &m)) != 0)
		return rv;
	if ((rv = nng_sendmsg(s, m, flags)) != 0) {
		nng_msg_free(m);
		return rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN ? ERR_TIMEDOUT : ERR_IO;
	}
	return 0;
}

int net_recv(nng_socket s, struct wire_hdr *h, cJSON **body, int flags, char *why, size_t whylen)
{
	nng_msg *m;
	int rv;

	rv = nng_recvmsg(s, &m, flags);
	/* ESTATE: no request in flight, so no reply can come. */
	if (rv == NNG_ETIMEDOUT || rv == NNG_EAGAIN || rv == NNG_ESTATE) {
		snprintf(why, whylen, "no answer");
		return ERR_TIMEDOUT;
	}
	if (rv != 0) {
		snprintf(why, whylen, "receive: %s", nng_strerror(rv));
		return ERR_IO;
	}
	{
		bool sealed;
		uint8_t pk[SEAL_PK_LEN];
		rv = decode_msg(m, h, body, &sealed, pk, why, whylen);
		/* A reply must come from the master we sealed to. */
		if (rv == 0 && have_peer_key && (!sealed || sodium_memcmp(pk, peer_key, SEAL_PK_LEN))) {
			snprintf(why, whylen, "reply not sealed by the master's key: refused");
			cJSON_Delete(*body);
			*body = NULL;
			rv = ERR_PROTO;
		}
	}
	nng_msg_free(m);
	return rv;
}

int net_call(nng_socket s, uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body,
	     struct wire_hdr *rh, cJSON **rbody, char *why, size_t whylen)
{
	int rv;

	if ((rv = net_send(s, type, seq, sender, body, 0)) != 0) {
		snprintf(why, whylen, "send: %s", err_str(rv));
		return rv;
	}
	return net_recv(s, rh, rbody, 0, why, whylen);
}
