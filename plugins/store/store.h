/*
 * store.h - the master's state store: a small key/value interface with
 * transactions, implemented by plugins: sqlite (one master, one file) and
 * etcd (several masters, one of them the leader; plugins/store/etcd/).
 *
 * Keys are '/'-separated strings ("jobs/00000042"); values are opaque bytes
 * (the master stores JSON).  Writes between store_begin() and store_commit()
 * are applied atomically and durably (fsync'd per the plugin's rules) when
 * commit returns 0; nothing is visible to a later open before that.  Inside a
 * transaction, get and list see the transaction's own writes.
 *
 * THREADS.  A store is used from one thread; no call blocks for longer than
 * the plugin's request timeout (etcd: 2 s per endpoint tried), and none
 * starts a thread.
 *
 * HA OPS.  The etcd plugin also has fencing, leases, a campaign
 * (put_if_absent), a revision and a watch stream; they are optional ops
 * (NULL in sqlite) and their wrappers below return ERR_NOTSUP, with a log
 * line, for a store without them.  How a master uses them: campaign for the
 * leader key with a lease it keeps alive; once it holds the key, fence on it
 * so that every later commit applies only while the key still holds its id
 * (ERR_FENCED otherwise: it lost the lease and must stop writing); a standby
 * lists everything, reads store_revision(), and watches from that revision +
 * 1 to follow the leader's writes without a gap.
 *
 * etcd should run with --max-txn-ops 10000 --max-request-bytes 10485760
 * (both flags exist in etcd 3.4; its defaults, 128 operations and 1.5 MiB,
 * are too small for one scheduler turn's commit): a commit over the server's
 * limits fails with ERR_TOOBIG and a log line naming the flag; it is never
 * split, since that would break its atomicity.
 */
#ifndef MLSCHED_STORE_H
#define MLSCHED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_KEY_MAX 512

struct store;

/* Called once per key in key order; return non-zero to stop early (that
 * value is then returned by store_list). */
typedef int (*store_list_cb)(const char *key, const void *val, size_t len, void *arg);

/* Kinds of watch events. */
enum store_watch_type {
	STORE_WATCH_PUT = 1, /* key was created or changed to val */
	STORE_WATCH_DEL = 2, /* key was deleted (val NULL, len 0) */
};

/*
 * Called once per watch event, in revision order.  key is relative to the
 * store (the etcd prefix stripped), val is NUL-terminated for convenience
 * (len excludes it); both are valid only during the call.  mod_rev is the
 * store revision of the change.  The callback may call any store function
 * except the store_watch_* ones.
 */
typedef void (*store_watch_cb)(int type, const char *key, const void *val, size_t len,
			       int64_t mod_rev, void *arg);

struct store_ops {
	const char *name; /* "sqlite" */
	int (*open)(const char *arg, struct store **out);
	void (*close)(struct store *s);
	int (*begin)(struct store *s);
	int (*commit)(struct store *s);
	int (*rollback)(struct store *s);
	int (*put)(struct store *s, const char *key, const void *val, size_t len);
	int (*get)(struct store *s, const char *key, void **val, size_t *len);
	int (*del)(struct store *s, const char *key);
	int (*list)(struct store *s, const char *prefix, store_list_cb cb, void *arg);
	/* Optional (NULL: the store has no such thing; see the wrappers). */
	int (*fence)(struct store *s, const char *key, const void *val, size_t len);
	int (*lease_grant)(struct store *s, int64_t ttl_ms, int64_t *id);
	int (*lease_keepalive)(struct store *s, int64_t id, int64_t *ttl_ms_left);
	int (*lease_revoke)(struct store *s, int64_t id);
	int (*put_if_absent)(struct store *s, const char *key, const void *val, size_t len,
			     int64_t lease_id, bool *won, char **holder, size_t *holder_len);
	int (*revision)(struct store *s, int64_t *rev);
	int (*watch_start)(struct store *s, const char *prefix, int64_t from_rev);
	int (*watch_poll)(struct store *s, store_watch_cb cb, void *arg);
	void (*watch_stop)(struct store *s);
};

/* Every store object starts with its ops pointer.  why holds the store's
 * own words for its latest failure ("database or disk is full"), for the
 * messages users read; "" when it never failed. */
#define STORE_WHY_MAX 200
struct store {
	const struct store_ops *ops;
	char why[STORE_WHY_MAX];
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_etcd_ops;

/*
 * Open a store from a URI:
 *   "sqlite:/path/to/state.db"
 *   "etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]"  (default prefix "/mlsched/";
 *       a prefix without a trailing '/' gets one).  Every key is stored under
 *       the prefix; open asks the endpoints (failing over between them) and
 *       fails with ERR_STORE when none answers.
 * Returns 0, ERR_INVAL for an unknown scheme or a malformed URI (message in
 * why), ERR_STORE.
 */
int store_open(const char *uri, struct store **out, char *why, size_t whylen);
void store_close(struct store *s); /* NULL is fine */
/* The store's message for its latest failure ("" if none); owned by s,
 * valid until its next call. */
const char *store_why(const struct store *s);

/* Thin wrappers over the ops.  get: *val is malloc'd (NUL-terminated for
 * convenience, *len excludes it), caller frees; ERR_NOENT if absent.
 * del of a missing key is not an error. */
int store_begin(struct store *s);
int store_commit(struct store *s);
int store_rollback(struct store *s);
int store_put(struct store *s, const char *key, const void *val, size_t len);
int store_get(struct store *s, const char *key, void **val, size_t *len);
int store_del(struct store *s, const char *key);
int store_list(struct store *s, const char *prefix, store_list_cb cb, void *arg);

/*
 * The HA ops.  Each returns ERR_NOTSUP (and logs it) for a store without it
 * (sqlite); etcd errors are logged with etcd's message and mapped: no
 * endpoint answered -> ERR_STORE, over a size or operation limit ->
 * ERR_TOOBIG, lease gone -> ERR_NOENT, watch start revision compacted ->
 * ERR_COMPACTED.
 */

/*
 * Fence on key: from now on every commit (and every put or del outside a
 * transaction) applies only if key still holds exactly val (len bytes), in
 * the same atomic etcd transaction; otherwise it applies nothing and returns
 * ERR_FENCED.  The store copies key and val.  key NULL clears the fence.
 * Calling it inside a transaction is ERR_STATE.
 */
int store_fence(struct store *s, const char *key, const void *val, size_t len);

/* Grant a lease of ttl_ms (rounded up to whole seconds; etcd may raise it to
 * its minimum, about 2 s) into *id.  0 or an error. */
int store_lease_grant(struct store *s, int64_t ttl_ms, int64_t *id);

/* Renew lease id; *ttl_ms_left (may be NULL) gets the TTL it now has.
 * ERR_NOENT when the lease expired or was revoked. */
int store_lease_keepalive(struct store *s, int64_t id, int64_t *ttl_ms_left);

/* Revoke lease id, deleting the keys attached to it.  ERR_NOENT when it is
 * already gone. */
int store_lease_revoke(struct store *s, int64_t id);

/*
 * Campaign: in one etcd transaction, put key = val attached to lease_id (0:
 * no lease) if key does not exist, else read it.  *won says which.  *holder
 * (when holder is not NULL) gets a malloc'd, NUL-terminated copy of the value
 * key now holds (val when won), *holder_len its length; the caller frees it.
 * A request retried after a timeout may find its own earlier put: compare
 * *holder with val before concluding that another master won.  Not fenced;
 * ERR_STATE inside a transaction.
 */
int store_put_if_absent(struct store *s, const char *key, const void *val, size_t len,
			int64_t lease_id, bool *won, char **holder, size_t *holder_len);

/* The store revision in the last response's header; store_list leaves the
 * revision of its snapshot here, so list then watch from *rev + 1 misses
 * nothing. */
int store_revision(struct store *s, int64_t *rev);

/*
 * Start watching every key under prefix ("" or NULL: all keys), from store
 * revision from_rev (0: from now).  A watch already running is stopped
 * first.  Returns 0 once the request is under way: connection errors show up
 * in store_watch_poll.
 */
int store_watch_start(struct store *s, const char *prefix, int64_t from_rev);

/*
 * Never blocks: moves the stream along and calls cb once per event that has
 * arrived whole (events of a message split across reads wait for the rest).
 * Call it every loop turn (the master ticks every 50 ms).  Returns 0;
 * ERR_STORE when the stream broke (it stays broken: restart it from the last
 * event's mod_rev + 1); ERR_COMPACTED when etcd no longer has from_rev (list
 * everything again and watch from the new revision); ERR_STATE when no watch
 * runs.  Events that arrived before a break are delivered first.
 */
int store_watch_poll(struct store *s, store_watch_cb cb, void *arg);

/* Stop the watch and free its resources; without one, nothing happens. */
void store_watch_stop(struct store *s);

#endif
