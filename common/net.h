/*
 * net.h - wire frames over nng sockets.
 *
 * The master listens with rep sockets in raw mode: a request's backtrace
 * (nng's message header) is kept in a struct net_peer so that the reply can
 * be sent later, from the master's one thread, after the store has recorded
 * what the request changed (and, for long polls, when there is something to
 * say).  mlctl and the agent use ordinary (cooked) req sockets.
 */
#ifndef MLSCHED_NET_H
#define MLSCHED_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <nng/nng.h>
#include <cjson/cJSON.h>

#include "seal.h"
#include "wire.h"

#define NET_BT_MAX 64 /* bytes of nng backtrace we keep */

/* Who to answer: the backtrace of one raw request, and who sent it. */
struct net_peer {
	uint8_t bt[NET_BT_MAX];
	size_t btlen;
	bool sealed;             /* the request was sealed by pk */
	uint32_t pipe;           /* the nng connection it came on */
	uint8_t pk[SEAL_PK_LEN];
};

/*
 * Sealing, process-wide (each process has one identity).  With a context,
 * frames to a known key are sealed (replies go sealed to the key that sealed
 * the request; clients seal to the peer key set here) and sealed frames are
 * opened.  With required, unsealed frames are refused on receipt.  Without a
 * context everything travels in the clear (--insecure).  Call before any
 * other net_* function; the context stays owned by the caller.
 */
void net_seal(struct seal_ctx *ctx, bool required);
/* Clients: the master's public key to seal requests to, and to check
 * replies against.  NULL: send in the clear. */
void net_peer_key(const uint8_t *pk);

/* Open a raw rep socket listening on url.  0 or ERR_IO (why says).  Frames
 * over SEAL_MAX_FRAME bytes are refused by nng before it allocates them
 * (NNG_OPT_RECVMAXSZ): it closes the connection that sent one.  A process
 * opens at most 8 such listeners (each has a connection count for
 * net_limit_conns, kept for the process's life). */
int net_listen_raw(const char *url, nng_socket *s, char *why, size_t whylen);
/*
 * Cap the connections a socket from net_listen_raw holds at max (0: no
 * cap).  A connection over the cap is closed as nng adds it
 * (NNG_PIPE_EV_ADD_PRE), before any message is read from it, and a warning
 * names the listener (what, e.g. "client") and the option that sets the cap
 * (opt, e.g. "--max-conns"), at most one line a second.
 *
 * Threads: the count is kept by pipe callbacks on nng's threads with
 * atomics only (no lock, nothing of the caller's state is touched), so the
 * caller's one-owner-thread model is unchanged.  0, or ERR_INVAL for a
 * socket not opened by net_listen_raw.
 */
int net_limit_conns(nng_socket s, uint32_t max, const char *what, const char *opt);
/* Connections of such a socket open now, and refused by the cap so far. */
uint32_t net_conns_open(nng_socket s);
uint64_t net_conns_refused(nng_socket s);
/*
 * Learn when connections of s close: returns a descriptor that polls
 * readable and yields the uint32_t ids of closed pipes (as in
 * net_peer.pipe), those closed by net_limit_conns' cap included.  The
 * callback that writes them runs on an nng thread and does nothing else.
 * 0 or ERR_SYS.
 */
int net_watch_closed(nng_socket s, int *fd);
/* The same, for a socket that will be closed: fds[0] to read, fds[1] the
 * write end; close both only after nng_close(s) (no callback runs then). */
int net_watch_closed_pair(nng_socket s, int fds[2]);

/* Open a req socket dialing url (non-blocking dial: it reconnects by
 * itself), with the given receive timeout.  0 or ERR_IO. */
int net_dial_req(const char *url, int recv_timeout_ms, nng_socket *s, char *why, size_t whylen);
/* The file descriptor that polls readable when a message can be received. */
int net_recv_fd(nng_socket s, int *fd);

/*
 * Receive one frame from a raw socket without blocking.  Returns 0 with the
 * peer, header and body (caller deletes body), ERR_TIMEDOUT when nothing is
 * queued, ERR_PROTO for a frame that failed wire_decode (dropped, reason in
 * why), ERR_TOOBIG for one over WIRE_MAX_BODY (why names the limit), ERR_IO
 * otherwise.
 */
int net_recv_raw(nng_socket s, struct net_peer *peer, struct wire_hdr *h, cJSON **body, char *why,
		 size_t whylen);
/* Send a reply to peer on a raw socket.  0 or ERR_IO / ERR_TOOBIG. */
int net_reply_raw(nng_socket s, const struct net_peer *peer, uint16_t type, uint64_t seq,
		  uint64_t sender, const cJSON *body);

/* Send a request on a cooked req socket (a new request cancels the one in
 * flight).  flags: 0 or NNG_FLAG_NONBLOCK. */
int net_send(nng_socket s, uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body,
	     int flags);
/* Receive the reply on a cooked req socket.  flags as for net_send.
 * ERR_TIMEDOUT when none came (or none is queued with NONBLOCK). */
int net_recv(nng_socket s, struct wire_hdr *h, cJSON **body, int flags, char *why, size_t whylen);
/* net_send then net_recv (blocking). */
int net_call(nng_socket s, uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body,
	     struct wire_hdr *rh, cJSON **rbody, char *why, size_t whylen);

#endif
