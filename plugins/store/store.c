/*
 * store.c - pick a store plugin from a URI and forward calls to its ops.
 *
 * Keys are checked here, at the edge, so every plugin can rely on a
 * non-empty key shorter than STORE_KEY_MAX (it then fits a
 * char[STORE_KEY_MAX] with its NUL).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

static const struct store_ops *const store_plugins[] = {
    &store_sqlite_ops,
    &store_etcd_ops,
};

int store_open(const char *uri, struct store **out, char *why, size_t whylen)
{
	const char *colon = uri ? strchr(uri, ':') : NULL;
	int rv;

	*out = NULL;
	if (!out)
		return ERR_INVAL;
	for (size_t i = 0; colon && i < sizeof(store_plugins) / sizeof(store_plugins[0]); i++) {
		const struct store_ops *ops = store_plugins[i];
		const char *arg = colon + 1;

		if (strlen(ops->name) != (size_t)(colon - uri) ||
		    strncmp(uri, ops->name, (size_t)(colon - uri)) != 0)
			continue;
		if (*arg == '\0') {
			set_why(why, whylen, "store \"%s\" needs a %s: use %s", uri,
				ops == &store_etcd_ops ? "host" : "path",
				ops == &store_etcd_ops ? "etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]"
						       : "sqlite:PATH");
			return ERR_INVAL;
		}
		if ((rv = ops->open(arg, out)) != 0) {
			*out = NULL;
			set_why(why, whylen, "cannot open store \"%s\": %s (see the log)", uri,
				err_str(rv));
			return rv;
		}
		return 0;
	}
	set_why(
	    why, whylen,
	    "unknown store \"%s\"; use sqlite:PATH or etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]",
	    uri ? uri : "(null)");
	return ERR_INVAL;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

const char *store_why(const struct store *s)
{
	return s->why;
}

static int check_key(const char *key)
{
	if (!key || !*key)
		return ERR_INVAL;
	if (strlen(key) >= STORE_KEY_MAX)
		return ERR_TOOBIG;
	return 0;
}

int store_begin(struct store *s)
{
	return s->ops->begin(s);
}

int store_commit(struct store *s)
{
	return s->ops->commit(s);
}

int store_rollback(struct store *s)
{
	return s->ops->rollback(s);
}

int store_put(struct store *s, const char *key, const void *val, size_t len)
{
	int rv;

	if ((rv = check_key(key)) != 0)
		return rv;
	if (!val && len)
		return ERR_INVAL;
	return s->ops->put(s, key, val, len);
}

int store_get(struct store *s, const char *key, void **val, size_t *len)
{
	int rv;

	if ((rv = check_key(key)) != 0)
		return rv;
	return s->ops->get(s, key, val, len);
}

int store_del(struct store *s, const char *key)
{
	int rv;

	if ((rv = check_key(key)) != 0)
		return rv;
	return s->ops->del(s, key);
}

int store_list(struct store *s, const char *prefix, store_list_cb cb, void *arg)
{
	if (!prefix)
		prefix = "";
	if (strlen(prefix) >= STORE_KEY_MAX)
		return ERR_TOOBIG;
	if (!cb)
		return ERR_INVAL;
	return s->ops->list(s, prefix, cb, arg);
}

/* The HA ops are optional: a store without one says so, once per call. */
static int not_supported(struct store *s, const char *what)
{
	log_error("store: the %s store has no %s (use an etcd:// store)", s->ops->name, what);
	return ERR_NOTSUP;
}

int store_fence(struct store *s, const char *key, const void *val, size_t len)
{
	int rv;

	if (!s->ops->fence)
		return not_supported(s, "fencing");
	if (key && (rv = check_key(key)) != 0)
		return rv;
	if (key && !val && len)
		return ERR_INVAL;
	return s->ops->fence(s, key, val, len);
}

int store_lease_grant(struct store *s, int64_t ttl_ms, int64_t *id)
{
	if (!s->ops->lease_grant)
		return not_supported(s, "leases");
	if (ttl_ms <= 0 || !id)
		return ERR_INVAL;
	return s->ops->lease_grant(s, ttl_ms, id);
}

int store_lease_keepalive(struct store *s, int64_t id, int64_t *ttl_ms_left)
{
	int64_t dummy;

	if (!s->ops->lease_keepalive)
		return not_supported(s, "leases");
	return s->ops->lease_keepalive(s, id, ttl_ms_left ? ttl_ms_left : &dummy);
}

int store_lease_revoke(struct store *s, int64_t id)
{
	if (!s->ops->lease_revoke)
		return not_supported(s, "leases");
	return s->ops->lease_revoke(s, id);
}

int store_put_if_absent(struct store *s, const char *key, const void *val, size_t len,
			int64_t lease_id, bool *won, char **holder, size_t *holder_len)
{
	int rv;

	if (!s->ops->put_if_absent)
		return not_supported(s, "put_if_absent");
	if ((rv = check_key(key)) != 0)
		return rv;
	if ((!val && len) || !won || (holder && !holder_len))
		return ERR_INVAL;
	return s->ops->put_if_absent(s, key, val, len, lease_id, won, holder, holder_len);
}

int store_revision(struct store *s, int64_t *rev)
{
	if (!s->ops->revision)
		return not_supported(s, "revisions");
	if (!rev)
		return ERR_INVAL;
	return s->ops->revision(s, rev);
}

int store_watch_start(struct store *s, const char *prefix, int64_t from_rev)
{
	if (!s->ops->watch_start)
		return not_supported(s, "watches");
	if (!prefix)
		prefix = "";
	if (strlen(prefix) >= STORE_KEY_MAX)
		return ERR_TOOBIG;
	if (from_rev < 0)
		return ERR_INVAL;
	return s->ops->watch_start(s, prefix, from_rev);
}

int store_watch_poll(struct store *s, store_watch_cb cb, void *arg)
{
	if (!s->ops->watch_poll)
		return not_supported(s, "watches");
	if (!cb)
		return ERR_INVAL;
	return s->ops->watch_poll(s, cb, arg);
}

void store_watch_stop(struct store *s)
{
	if (s && s->ops->watch_stop)
		s->ops->watch_stop(s);
}
