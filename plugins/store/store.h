/*
 * store.h - the master's state store: a small key/value interface with
 * transactions, implemented by plugins (sqlite today, etcd for HA).
 *
 * Keys are '/'-separated strings ("jobs/00000042"); values are opaque bytes
 * (the master stores JSON).  Writes between store_begin() and store_commit()
 * are applied atomically and durably (fsync'd per the plugin's rules) when
 * commit returns 0; nothing is visible to a later open before that.  A store
 * is used from one thread.
 */
#ifndef MLSCHED_STORE_H
#define MLSCHED_STORE_H

#include <stddef.h>

#define STORE_KEY_MAX 512

struct store;

/* Called once per key in key order; return non-zero to stop early (that
 * value is then returned by store_list). */
typedef int (*store_list_cb)(const char *key, const void *val, size_t len, void *arg);

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
};

/* Every store object starts with its ops pointer. */
struct store {
	const struct store_ops *ops;
};

extern const struct store_ops store_sqlite_ops;

/*
 * Open a store from a URI: "sqlite:/path/to/state.db".  (Later: "etcd://h:p".)
 * Returns 0, ERR_INVAL for an unknown scheme (message in why), ERR_STORE.
 */
int store_open(const char *uri, struct store **out, char *why, size_t whylen);
void store_close(struct store *s); /* NULL is fine */

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

#endif
