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
#include "util.h"
#include "store/store.h"

static const struct store_ops *const store_plugins[] = {
    &store_sqlite_ops,
};

int store_open(const char *uri, struct store **out, char *why, size_t whylen)
{
	const char *colon = uri ? strchr(uri, ':') : NULL;
	int rv;

	*out = NULL;
	for (size_t i = 0; colon && i < sizeof(store_plugins) / sizeof(store_plugins[0]); i++) {
		const struct store_ops *ops = store_plugins[i];
		const char *arg = colon + 1;

		if (strlen(ops->name) != (size_t)(colon - uri) ||
		    strncmp(uri, ops->name, (size_t)(colon - uri)) != 0)
			continue;
		if (*arg == '\0') {
			set_why(why, whylen, "store \"%s\" needs a path: use %s:PATH", uri,
				ops->name);
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
	set_why(why, whylen, "unknown store \"%s\"; use sqlite:PATH", uri ? uri : "(null)");
	return ERR_INVAL;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
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
