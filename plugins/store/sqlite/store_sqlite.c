/*
 * store_sqlite.c - the state store in one sqlite file.
 *
 * One table, kv(key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID, so
 * the rows live in the primary-key b-tree in key order and a prefix listing
 * is a range scan of it.  The file runs in WAL mode with synchronous=FULL:
 * every commit fsyncs the WAL before COMMIT returns, so a commit that
 * returned survives kill -9 and power loss; WAL also lets a reader look at the
 * file while the master writes.  Statements are prepared once at open.
 *
 * The store is used from one thread (store.h), so the connection is opened
 * without sqlite's own mutex.  The file and its -wal/-shm companions (which
 * sqlite creates with the database file's mode) are 0600: the state holds job
 * specs and environment variables.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

#define SQLITE_BUSY_MS 5000

struct sqlite_store {
	struct store base; /* first: store.h hands this out as a struct store */
	sqlite3 *db;
	char *path;
	sqlite3_stmt *get, *put, *del, *list, *list_all, *begin, *commit, *rollback;
};

static const struct {
	size_t off;
	const char *sql;
} stmt_sql[] = {
    {offsetof(struct sqlite_store, get), "SELECT value FROM kv WHERE key = ?1"},
    {offsetof(struct sqlite_store, put), "INSERT INTO kv(key, value) VALUES(?1, ?2) "
					 "ON CONFLICT(key) DO UPDATE SET value = excluded.value"},
    {offsetof(struct sqlite_store, del), "DELETE FROM kv WHERE key = ?1"},
    /* Written as a range, not LIKE or substr(), so the planner walks the
     * primary key from prefix to the prefix's successor. */
    {offsetof(struct sqlite_store, list),
     "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key"},
    {offsetof(struct sqlite_store, list_all),
     "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key"},
    /* IMMEDIATE takes the write lock now, so a second process fails (after
     * the busy timeout) at begin rather than at a commit with work done. */
    {offsetof(struct sqlite_store, begin), "BEGIN IMMEDIATE"},
    {offsetof(struct sqlite_store, commit), "COMMIT"},
    {offsetof(struct sqlite_store, rollback), "ROLLBACK"},
};

static sqlite3_stmt **stmt_at(struct sqlite_store *s, size_t i)
{
	return (sqlite3_stmt **)((char *)s + stmt_sql[i].off);
}

static struct sqlite_store *to_sqlite(struct store *st)
{
	return (struct sqlite_store *)st;
}

/* Log what failed with sqlite's own message and map it to ERR_STORE. */
static int db_fail(struct sqlite_store *s, const char *what, const char *key)
{
	snprintf(s->base.why, sizeof(s->base.why), "sqlite %s: %s", what, sqlite3_errmsg(s->db));
	log_error("store: sqlite %s%s%s failed: %s (path=%s)", what, key ? " key=" : "",
		  key ? key : "", sqlite3_errmsg(s->db), s->path);
	return ERR_STORE;
}

/* Run a statement that returns no rows, then make it reusable. */
static int step_done(struct sqlite_store *s, sqlite3_stmt *st, const char *what, const char *key)
{
	int rc = sqlite3_step(st);
	int rv = 0;

	if (rc != SQLITE_DONE)
		rv = db_fail(s, what, key);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rv;
}

static int exec_sql(struct sqlite_store *s, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("store: sqlite \"%s\" failed: %s (path=%s)", sql,
			  msg ? msg : sqlite3_errmsg(s->db), s->path);
		sqlite3_free(msg);
		return ERR_STORE;
	}
	return 0;
}

/* WAL needs a file system with shared memory and locks; sqlite reports the
 * mode it ended up in rather than failing, so check the answer. */
static int set_wal(struct sqlite_store *s)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int rv = ERR_STORE;

	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
		rv = db_fail(s, "journal_mode=WAL", NULL);
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW) {
		rv = db_fail(s, "journal_mode=WAL", NULL);
		goto out;
	}
	mode = sqlite3_column_text(st, 0);
	if (!mode || strcmp((const char *)mode, "wal") != 0) {
		log_error("store: sqlite refused WAL mode (got %s) for path=%s",
			  mode ? (const char *)mode : "nothing", s->path);
		goto out;
	}
	rv = 0;
out:
	sqlite3_finalize(st);
	return rv;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rv = 0;

	if (fd < 0 || fsync(fd) != 0)
		rv = ERR_SYS;
	if (fd >= 0)
		close(fd);
	return rv;
}

/*
 * Create the file ourselves, before sqlite does, for two reasons: sqlite
 * would create it with 0644 (less the umask) and its -wal/-shm files copy
 * that mode; and a missing folder should be reported as such, not as
 * sqlite's "unable to open database file".  A new file's directory entry is
 * fsync'd so the file itself survives a power loss.
 */
static int prepare_file(const char *path)
{
	char *copy = xstrdup(path);
	const char *dir = dirname(copy);
	struct stat st;
	bool created = true;
	int fd = -1, rv;

	if (stat(dir, &st) != 0) {
		log_error("store: folder %s for the sqlite store %s: %s%s", dir, path,
			  strerror(errno), errno == ENOENT ? "; create it first" : "");
		rv = ERR_STORE;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("store: %s, the folder for the sqlite store %s, is not a folder", dir,
			  path);
		rv = ERR_STORE;
		goto out;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(path, O_RDWR | O_CLOEXEC);
	}
	if (fd < 0) {
		log_error("store: cannot open sqlite store %s: %s", path, strerror(errno));
		rv = ERR_STORE;
		goto out;
	}
	/* The umask may have taken bits away; an existing file may have more. */
	if (fchmod(fd, 0600) != 0) {
		log_error("store: chmod 0600 %s: %s", path, strerror(errno));
		rv = ERR_STORE;
		goto out;
	}
	if (created && fsync_dir(dir) != 0) {
		log_error("store: fsync of folder %s: %s", dir, strerror(errno));
		rv = ERR_STORE;
		goto out;
	}
	rv = 0;
out:
	if (fd >= 0)
		close(fd);
	free(copy);
	return rv;
}

static void sqlite_close(struct store *st)
{
	struct sqlite_store *s = to_sqlite(st);

	if (!s)
		return;
	if (s->db) {
		if (!sqlite3_get_autocommit(s->db))
			log_warn("store: closing %s inside a transaction; it is rolled back",
				 s->path);
		for (size_t i = 0; i < sizeof(stmt_sql) / sizeof(stmt_sql[0]); i++)
			sqlite3_finalize(*stmt_at(s, i));
		if (sqlite3_close(s->db) != SQLITE_OK) {
			log_error("store: sqlite close of %s: %s", s->path, sqlite3_errmsg(s->db));
			sqlite3_close_v2(s->db);
		}
	}
	free(s->path);
	free(s);
}

static int sqlite_open(const char *arg, struct store **out)
{
	struct sqlite_store *s = NULL;
	int rv;

	*out = NULL;
	if (!arg || !*arg)
		return ERR_INVAL;
	if ((rv = prepare_file(arg)) != 0)
		return rv;

	s = xcalloc(1, sizeof(*s));
	s->base.ops = &store_sqlite_ops;
	s->path = xstrdup(arg);
	if (sqlite3_open_v2(arg, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		rv = s->db ? db_fail(s, "open", NULL) : ERR_STORE;
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	if (sqlite3_busy_timeout(s->db, SQLITE_BUSY_MS) != SQLITE_OK) {
		rv = db_fail(s, "busy_timeout", NULL);
		goto out;
	}
	if ((rv = set_wal(s)) != 0)
		goto out;
	if ((rv = exec_sql(s, "PRAGMA synchronous=FULL")) != 0)
		goto out;
	if ((rv = exec_sql(s, "CREATE TABLE IF NOT EXISTS kv(key TEXT PRIMARY KEY, "
			      "value BLOB NOT NULL) WITHOUT ROWID")) != 0)
		goto out;
	for (size_t i = 0; i < sizeof(stmt_sql) / sizeof(stmt_sql[0]); i++) {
		if (sqlite3_prepare_v3(s->db, stmt_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
				       stmt_at(s, i), NULL) != SQLITE_OK) {
			rv = db_fail(s, "prepare", NULL);
			goto out;
		}
	}
	log_debug(LOG_SUB_STORE, "store: opened sqlite %s", arg);
	*out = &s->base;
	s = NULL;
	rv = 0;
out:
	sqlite_close(s ? &s->base : NULL);
	return rv;
}

static int sqlite_begin(struct store *st)
{
	struct sqlite_store *s = to_sqlite(st);

	if (!sqlite3_get_autocommit(s->db)) {
		log_error("store: begin inside a transaction (path=%s)", s->path);
		return ERR_STATE;
	}
	return step_done(s, s->begin, "begin", NULL);
}

/* A failed COMMIT can leave the transaction open (sqlite rolls back by itself
 * only for some errors); roll it back so the caller always ends up outside a
 * transaction with nothing applied. */
static int sqlite_commit(struct store *st)
{
	struct sqlite_store *s = to_sqlite(st);
	int rv;

	if (sqlite3_get_autocommit(s->db)) {
		log_error("store: commit without a transaction (path=%s)", s->path);
		return ERR_STATE;
	}
	rv = step_done(s, s->commit, "commit", NULL);
	if (rv != 0 && !sqlite3_get_autocommit(s->db)) {
		char why[STORE_WHY_MAX];

		/* The commit's reason is the one to report. */
		memcpy(why, s->base.why, sizeof(why));
		step_done(s, s->rollback, "rollback after failed commit", NULL);
		memcpy(s->base.why, why, sizeof(why));
	}
	return rv;
}

/* Rolling back with no transaction open is a no-op, so clean-up paths can
 * call it after a failed commit (which already rolled back). */
static int sqlite_rollback(struct store *st)
{
	struct sqlite_store *s = to_sqlite(st);

	if (sqlite3_get_autocommit(s->db))
		return 0;
	return step_done(s, s->rollback, "rollback", NULL);
}

static int sqlite_put(struct store *st, const char *key, const void *val, size_t len)
{
	struct sqlite_store *s = to_sqlite(st);
	int rc;

	rc = sqlite3_bind_text(s->put, 1, key, -1, SQLITE_STATIC);
	/* bind_blob with a NULL pointer binds SQL NULL, which the table refuses:
	 * an empty value is a zero-length blob. */
	if (rc == SQLITE_OK)
		rc = len ? sqlite3_bind_blob64(s->put, 2, val, len, SQLITE_STATIC)
			 : sqlite3_bind_zeroblob(s->put, 2, 0);
	if (rc != SQLITE_OK) {
		int rv = rc == SQLITE_TOOBIG ? ERR_TOOBIG : db_fail(s, "bind", key);

		sqlite3_clear_bindings(s->put);
		return rv;
	}
	return step_done(s, s->put, "put", key);
}

static int sqlite_get(struct store *st, const char *key, void **val, size_t *len)
{
	struct sqlite_store *s = to_sqlite(st);
	const void *blob;
	size_t n;
	char *copy;
	int rc, rv;

	if (sqlite3_bind_text(s->get, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
		rv = db_fail(s, "bind", key);
		goto out;
	}
	rc = sqlite3_step(s->get);
	if (rc == SQLITE_DONE) {
		rv = ERR_NOENT;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		rv = db_fail(s, "get", key);
		goto out;
	}
	blob = sqlite3_column_blob(s->get, 0);
	n = (size_t)sqlite3_column_bytes(s->get, 0);
	copy = xmalloc(n + 1);
	if (n)
		memcpy(copy, blob, n);
	copy[n] = '\0';
	*val = copy;
	*len = n;
	rv = 0;
out:
	/* Reset at once: a statement left on a row pins a WAL read snapshot. */
	sqlite3_reset(s->get);
	sqlite3_clear_bindings(s->get);
	return rv;
}

static int sqlite_del(struct store *st, const char *key)
{
	struct sqlite_store *s = to_sqlite(st);

	if (sqlite3_bind_text(s->del, 1, key, -1, SQLITE_STATIC) != SQLITE_OK) {
		sqlite3_clear_bindings(s->del);
		return db_fail(s, "bind", key);
	}
	return step_done(s, s->del, "del", key);
}

/*
 * The smallest string greater than every string that starts with prefix
 * (n bytes, fits out): drop trailing 0xff bytes and add one to the last byte.
 * Keys compare with memcmp (BINARY collation), so this bound is exact for any
 * bytes.  Returns false when there is none (an empty prefix, or all 0xff):
 * then the scan needs only its lower bound.
 */
static bool prefix_successor(const char *prefix, size_t n, char *out)
{
	memcpy(out, prefix, n);
	while (n > 0 && (unsigned char)out[n - 1] == 0xff)
		n--;
	if (n == 0)
		return false;
	out[n - 1] = (char)((unsigned char)out[n - 1] + 1);
	out[n] = '\0';
	return true;
}

static int sqlite_list(struct store *st, const char *prefix, store_list_cb cb, void *arg)
{
	struct sqlite_store *s = to_sqlite(st);
	char upper[STORE_KEY_MAX + 1];
	size_t plen = strlen(prefix);
	sqlite3_stmt *q, *own = NULL;
	bool bounded;
	int rc, rv = 0;

	if (plen > STORE_KEY_MAX)
		return ERR_TOOBIG;
	bounded = prefix_successor(prefix, plen, upper);
	q = bounded ? s->list : s->list_all;
	/* A callback that lists again would otherwise reset the scan under us. */
	if (sqlite3_stmt_busy(q)) {
		if (sqlite3_prepare_v2(s->db, sqlite3_sql(q), -1, &own, NULL) != SQLITE_OK)
			return db_fail(s, "prepare", prefix);
		q = own;
	}
	if (sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC) != SQLITE_OK ||
	    (bounded && sqlite3_bind_text(q, 2, upper, -1, SQLITE_STATIC) != SQLITE_OK)) {
		rv = db_fail(s, "bind", prefix);
		goto out;
	}
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *key = (const char *)sqlite3_column_text(q, 0);
		const void *val = sqlite3_column_blob(q, 1);
		size_t n = (size_t)sqlite3_column_bytes(q, 1);

		if (!key) {
			rv = db_fail(s, "list", prefix);
			goto out;
		}
		if ((rv = cb(key, val ? val : "", n, arg)) != 0)
			goto out;
	}
	if (rc != SQLITE_DONE)
		rv = db_fail(s, "list", prefix);
out:
	if (own) {
		sqlite3_finalize(own);
	} else {
		sqlite3_reset(q);
		sqlite3_clear_bindings(q);
	}
	return rv;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .put = sqlite_put,
    .get = sqlite_get,
    .del = sqlite_del,
    .list = sqlite_list,
};
