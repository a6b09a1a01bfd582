/*
 * store-test.c - the store plugins against the real thing, one cmocka group
 * per store running the same suite: put/get/del, prefix listing (paged in
 * etcd), transactions that read their own writes.
 *
 * sqlite: a real file in a temporary folder; durability when the writing
 * process is killed with SIGKILL right after (or before) a commit, file
 * modes, pragmas, and store_open's handling of URIs.
 *
 * etcd: the group starts its own etcd (found in PATH) on free loopback ports
 * with a temporary data dir, and always kills it (SIGKILL, waitpid, rm -rf) at
 * the end; each test works under its own key prefix.  Besides the suite:
 * failover past a dead and a silent endpoint, fencing, leases and campaigns,
 * watches (order, split messages, compaction), the --max-txn-ops error, and
 * a commit surviving kill -9 of etcd.  Without an etcd binary the group is
 * skipped with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128]; /* dir/state.db */
	char uri[160];	/* sqlite:path, or etcd://127.0.0.1:PORT/tN/ */
	char logpath[128];
	int logfd;
};

/* The etcd the etcd group runs on. */
static struct {
	char bin[512]; /* empty: none in PATH */
	char dir[64];  /* data dir and log */
	int cport, pport;
	pid_t pid;
} etcd;

static bool on_etcd;   /* which group runs */
static int prefix_seq; /* each etcd test works under /t<N>/ */

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/store-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
	if (on_etcd)
		snprintf(f->uri, sizeof(f->uri), "etcd://127.0.0.1:%d/t%d/", etcd.cport,
			 ++prefix_seq);
	else
		snprintf(f->uri, sizeof(f->uri), "sqlite:%s", f->path);
	snprintf(f->logpath, sizeof(f->logpath), "%s/log", f->dir);
	f->logfd = open(f->logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (f->logfd < 0)
		return -1;
	/* Errors the tests provoke go to a file the tests can read. */
	log_init("store-test", LOG_LVL_WARN, f->logfd);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	log_init(NULL, LOG_LVL_WARN, 2);
	close(f->logfd);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static char *read_log(struct fixture *f)
{
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(file_read(f->logpath, 1 << 20, &text, &len), 0);
	return text;
}

static struct store *open_ok(struct fixture *f)
{
	struct store *s = NULL;
	char why[256] = "";

	if (store_open(f->uri, &s, why, sizeof(why)) != 0)
		fail_msg("store_open %s: %s", f->uri, why);
	assert_non_null(s);
	return s;
}

static void put_str(struct store *s, const char *key, const char *val)
{
	assert_int_equal(store_put(s, key, val, strlen(val)), 0);
}

/* Asserts key holds exactly val (val NULL: key absent). */
static void expect(struct store *s, const char *key, const char *val)
{
	void *got = (void *)0x1;
	size_t len = 12345;
	int rv = store_get(s, key, &got, &len);

	if (!val) {
		assert_int_equal(rv, ERR_NOENT);
		return;
	}
	if (rv != 0)
		fail_msg("get %s: %s", key, err_str(rv));
	assert_int_equal(len, strlen(val));
	assert_memory_equal(got, val, len);
	assert_int_equal(((char *)got)[len], '\0');
	free(got);
}

static void test_put_get_del(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);

	expect(s, "jobs/1", NULL);
	put_str(s, "jobs/1", "{\"name\":\"a\"}");
	expect(s, "jobs/1", "{\"name\":\"a\"}");
	put_str(s, "jobs/1", "{\"name\":\"b\"}"); /* overwrite */
	expect(s, "jobs/1", "{\"name\":\"b\"}");
	put_str(s, "jobs/2", "two");
	assert_int_equal(store_del(s, "jobs/1"), 0);
	expect(s, "jobs/1", NULL);
	expect(s, "jobs/2", "two");
	assert_int_equal(store_del(s, "jobs/1"), 0); /* missing: not an error */
	assert_int_equal(store_del(s, "never"), 0);

	/* An empty value is a value, not an absence. */
	assert_int_equal(store_put(s, "empty", NULL, 0), 0);
	expect(s, "empty", "");
	assert_int_equal(store_put(s, "empty2", "", 0), 0);
	expect(s, "empty2", "");
	store_close(s);
	store_close(NULL);
}

static void test_key_checks(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	char key[STORE_KEY_MAX + 1];
	void *v = NULL;
	size_t n = 0;

	assert_int_equal(store_put(s, "", "x", 1), ERR_INVAL);
	assert_int_equal(store_put(s, NULL, "x", 1), ERR_INVAL);
	assert_int_equal(store_put(s, "k", NULL, 1), ERR_INVAL);
	assert_int_equal(store_get(s, "", &v, &n), ERR_INVAL);
	assert_int_equal(store_del(s, ""), ERR_INVAL);
	memset(key, 'k', STORE_KEY_MAX);
	key[STORE_KEY_MAX] = '\0';
	assert_int_equal(store_put(s, key, "x", 1), ERR_TOOBIG);
	assert_int_equal(store_list(s, key, NULL, NULL), ERR_TOOBIG);
	key[STORE_KEY_MAX - 1] = '\0'; /* the longest key allowed */
	assert_int_equal(store_put(s, key, "x", 1), 0);
	expect(s, key, "x");
	store_close(s);
}

static void test_binary_values(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	static const unsigned char bin[] = {0, 1, 0, 0xff, 0xfe, 0, '\n', 0x80, 0};
	size_t big_len = 1 << 20;
	unsigned char *big = xmalloc(big_len);
	void *got = NULL;
	size_t len = 0;

	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)(i * 2654435761u >> 13);
	assert_int_equal(store_put(s, "bin", bin, sizeof(bin)), 0);
	assert_int_equal(store_put(s, "big", big, big_len), 0);
	store_close(s);

	s = open_ok(f);
	assert_int_equal(store_get(s, "bin", &got, &len), 0);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(got, bin, sizeof(bin));
	free(got);
	assert_int_equal(store_get(s, "big", &got, &len), 0);
	assert_int_equal(len, big_len);
	assert_memory_equal(got, big, big_len);
	free(got);
	free(big);
	store_close(s);
}

struct collected {
	char keys[16][64];
	char vals[16][64];
	int n;
	int stop_after; /* return 7 after this many; 0: never */
};

static int collect(const char *key, const void *val, size_t len, void *arg)
{
	struct collected *c = arg;

	assert_true(c->n < 16);
	assert_true(len < 64);
	snprintf(c->keys[c->n], 64, "%s", key);
	memcpy(c->vals[c->n], val, len);
	c->vals[c->n][len] = '\0';
	c->n++;
	return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

/* Lists prefix and asserts the keys seen, in order, with value "v:<key>". */
static void expect_list(struct store *s, const char *prefix, const char *const *want, int nwant)
{
	struct collected c = {0};

	assert_int_equal(store_list(s, prefix, collect, &c), 0);
	if (c.n != nwant)
		fail_msg("prefix \"%s\": %d keys, want %d", prefix, c.n, nwant);
	for (int i = 0; i < nwant; i++) {
		char v[80];

		assert_string_equal(c.keys[i], want[i]);
		snprintf(v, sizeof(v), "v:%s", want[i]);
		assert_string_equal(c.vals[i], v);
	}
}

static void test_list_prefix(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	static const char *const keys[] = {
	    "jobs/10", "jobs/2", "jobs/1", "job",	"jobsx", "jobs/1/tasks/0",
	    "nodes/a", "jobs0",	 "k\xff",  "k\xff\xff", "l",	 "jobs/",
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char v[80];

		snprintf(v, sizeof(v), "v:%s", keys[i]);
		put_str(s, keys[i], v);
	}

	static const char *const j1[] = {"jobs/1", "jobs/1/tasks/0", "jobs/10"};
	expect_list(s, "jobs/1", j1, 3);
	static const char *const j1s[] = {"jobs/1/tasks/0"};
	expect_list(s, "jobs/1/", j1s, 1);
	static const char *const j10[] = {"jobs/10"};
	expect_list(s, "jobs/10", j10, 1);
	static const char *const js[] = {"jobs/", "jobs/1", "jobs/1/tasks/0", "jobs/10", "jobs/2"};
	expect_list(s, "jobs/", js, 5);
	static const char *const jobs[] = {"jobs/",  "jobs/1", "jobs/1/tasks/0", "jobs/10",
					   "jobs/2", "jobs0",  "jobsx"};
	expect_list(s, "jobs", jobs, 7);
	static const char *const kff[] = {"k\xff", "k\xff\xff"};
	expect_list(s, "k\xff", kff, 2);
	static const char *const kffff[] = {"k\xff\xff"};
	expect_list(s, "k\xff\xff", kffff, 1);
	expect_list(s, "zzz", NULL, 0);
	expect_list(s, "jobs/3", NULL, 0);

	static const char *const all[] = {"job",     "jobs/",	  "jobs/1", "jobs/1/tasks/0",
					  "jobs/10", "jobs/2",	  "jobs0",  "jobsx",
					  "k\xff",   "k\xff\xff", "l",	    "nodes/a"};
	struct collected c = {0};
	assert_int_equal(store_list(s, "", collect, &c), 0);
	assert_int_equal(c.n, 12);
	for (int i = 0; i < 12; i++)
		assert_string_equal(c.keys[i], all[i]);
	/* NULL lists everything too. */
	struct collected c2 = {0};
	assert_int_equal(store_list(s, NULL, collect, &c2), 0);
	assert_int_equal(c2.n, 12);
	store_close(s);
}

struct nest {
	struct store *s;
	struct collected inner;
	int outer;
};

/* Lists "b/" and reads a key from inside a listing of "a/". */
static int nest_cb(const char *key, const void *val, size_t len, void *arg)
{
	struct nest *n = arg;
	void *v = NULL;
	size_t vlen = 0;

	n->outer++;
	n->inner.n = 0;
	assert_int_equal(store_list(n->s, "b/", collect, &n->inner), 0);
	assert_int_equal(n->inner.n, 2);
	assert_int_equal(store_get(n->s, "b/1", &v, &vlen), 0);
	free(v);
	return 0;
}

static void test_list_stop_and_nest(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	struct collected c = {.stop_after = 2};
	struct nest n = {.s = s};

	put_str(s, "a/1", "v:a/1");
	put_str(s, "a/2", "v:a/2");
	put_str(s, "a/3", "v:a/3");
	put_str(s, "b/1", "v:b/1");
	put_str(s, "b/2", "v:b/2");
	assert_int_equal(store_list(s, "a/", collect, &c), 7);
	assert_int_equal(c.n, 2);
	assert_int_equal(store_list(s, "a/", NULL, NULL), ERR_INVAL);

	/* The outer scan survives inner scans of the same kind. */
	assert_int_equal(store_list(s, "a/", nest_cb, &n), 0);
	assert_int_equal(n.outer, 3);
	store_close(s);
}

static void test_rollback(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);

	put_str(s, "keep", "old");
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_begin(s), ERR_STATE); /* no nesting */
	put_str(s, "new", "x");
	put_str(s, "keep", "changed");
	assert_int_equal(store_del(s, "keep"), 0);
	expect(s, "new", "x"); /* a transaction sees its own writes */
	expect(s, "keep", NULL);
	assert_int_equal(store_rollback(s), 0);
	expect(s, "new", NULL);
	expect(s, "keep", "old");

	assert_int_equal(store_commit(s), ERR_STATE); /* nothing to commit */
	assert_int_equal(store_rollback(s), 0);	      /* no-op outside a transaction */
	store_close(s);

	s = open_ok(f);
	expect(s, "new", NULL);
	expect(s, "keep", "old");
	/* Closing inside a transaction rolls it back. */
	assert_int_equal(store_begin(s), 0);
	put_str(s, "dropped", "x");
	store_close(s);
	s = open_ok(f);
	expect(s, "dropped", NULL);
	store_close(s);

	char *log = read_log(f);
	assert_non_null(strstr(log, "begin inside a transaction"));
	assert_non_null(strstr(log, "rolled back"));
	free(log);
}

static void test_commit_persists(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);

	assert_int_equal(store_begin(s), 0);
	put_str(s, "jobs/1", "one");
	put_str(s, "jobs/2", "two");
	put_str(s, "gone", "x");
	assert_int_equal(store_del(s, "gone"), 0);
	assert_int_equal(store_commit(s), 0);
	put_str(s, "auto", "committed alone"); /* outside a transaction: autocommit */
	store_close(s);

	s = open_ok(f);
	expect(s, "jobs/1", "one");
	expect(s, "jobs/2", "two");
	expect(s, "gone", NULL);
	expect(s, "auto", "committed alone");
	store_close(s);
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/* argv[0]: children re-execute this program so that each is a fresh
 * process (as a restarted master would be) and, under valgrind, runs
 * natively rather than reporting the memory SIGKILL leaves behind. */
static const char *self_path;

/* Runs "self --child what uri" and expects it to end by SIGKILL; an early
 * exit(n) there names the step that failed. */
static void run_killed_child(struct fixture *f, const char *what)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execl(self_path, self_path, "--child", what, f->uri, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status))
		fail_msg("child %s exited with %d instead of being killed", what,
			 WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
}

static void child_commit_then_die(const char *uri)
{
	struct store *s = NULL;

	if (store_open(uri, &s, NULL, 0) != 0)
		exit(1);
	if (store_begin(s) != 0)
		exit(2);
	if (store_put(s, "jobs/42", "durable", 7) != 0 || store_put(s, "keep", "new", 3) != 0)
		exit(3);
	if (store_commit(s) != 0)
		exit(4);
	kill(getpid(), SIGKILL);
}

static void test_kill_after_commit(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	char wal[160];

	put_str(s, "keep", "old");
	store_close(s); /* no connection may cross fork() */

	run_killed_child(f, "commit");
	/* The child never checkpointed: the commit lives only in the WAL. */
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_true(file_size(wal) > 0);

	s = open_ok(f);
	expect(s, "jobs/42", "durable");
	expect(s, "keep", "new");
	store_close(s);
}

#define SPILL_KEYS 3000
#define SPILL_VAL 4096

static void child_die_uncommitted(const char *uri)
{
	struct store *s = NULL;
	char *val = xmalloc(SPILL_VAL);
	char key[32];

	memset(val, 'u', SPILL_VAL);
	if (store_open(uri, &s, NULL, 0) != 0)
		exit(1);
	if (store_put(s, "committed", "by child", 8) != 0) /* autocommit */
		exit(2);
	if (store_begin(s) != 0)
		exit(3);
	if (store_put(s, "keep", "changed", 7) != 0 || store_del(s, "other") != 0)
		exit(4);
	/* 12 MB, beyond sqlite's page cache, so uncommitted pages spill into
	 * the WAL: recovery must see they lack a commit record. */
	for (int i = 0; i < SPILL_KEYS; i++) {
		snprintf(key, sizeof(key), "spill/%05d", i);
		if (store_put(s, key, val, SPILL_VAL) != 0)
			exit(5);
	}
	kill(getpid(), SIGKILL);
}

static void test_kill_uncommitted(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	struct collected c = {0};
	char wal[160];

	put_str(s, "keep", "old");
	put_str(s, "other", "still here");
	store_close(s);

	run_killed_child(f, "uncommitted");
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_true(file_size(wal) > 1 << 20); /* the spill happened */

	s = open_ok(f);
	expect(s, "committed", "by child");
	expect(s, "keep", "old");
	expect(s, "other", "still here");
	expect(s, "spill/00000", NULL);
	assert_int_equal(store_list(s, "spill/", collect, &c), 0);
	assert_int_equal(c.n, 0);
	store_close(s);
}

static int mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

static void test_file_modes_and_pragmas(void **state)
{
	struct fixture *f = *state;
	mode_t old = umask(022);
	struct store *s = open_ok(f);
	char side[160];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	put_str(s, "k", "v");
	assert_int_equal(mode_of(f->path), 0600);
	snprintf(side, sizeof(side), "%s-wal", f->path);
	assert_int_equal(mode_of(side), 0600);
	snprintf(side, sizeof(side), "%s-shm", f->path);
	assert_int_equal(mode_of(side), 0600);

	/* A second connection sees WAL mode and a kv table a range query can
	 * search by primary key (no full scan). */
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "EXPLAIN QUERY PLAN SELECT key, value FROM kv "
					    "WHERE key >= ?1 AND key < ?2 ORDER BY key",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *plan = (const char *)sqlite3_column_text(st, 3);
	assert_non_null(strstr(plan, "SEARCH"));
	assert_non_null(strstr(plan, "PRIMARY KEY"));
	sqlite3_finalize(st);
	sqlite3_close(db);
	store_close(s);

	/* An existing file with looser permissions is tightened. */
	assert_int_equal(chmod(f->path, 0644), 0);
	s = open_ok(f);
	assert_int_equal(mode_of(f->path), 0600);
	store_close(s);
	umask(old);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	struct store *s = (struct store *)0x1;
	char why[256];
	char uri[200], missing[160];

	assert_int_equal(store_open("foo:/var/lib/x.db", &s, why, sizeof(why)), ERR_INVAL);
	assert_string_equal(why, "unknown store \"foo:/var/lib/x.db\"; use sqlite:PATH or "
				 "etcd://HOST:PORT[,HOST:PORT...][/PREFIX/]");
	assert_null(s);
	/* Malformed etcd URIs fail before any connection. */
	assert_int_equal(store_open("etcd:", &s, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "needs a host: use etcd://HOST:PORT"));
	static const char *const bad_etcd[] = {
	    "etcd:h:2379",  "etcd://",	    "etcd://h",	    "etcd://h:0",	"etcd://h:99999",
	    "etcd://h:12x", "etcd://h:1,,", "etcd://:2379", "etcd:///mlsched/", "ETCD://h:2379",
	};
	for (size_t i = 0; i < sizeof(bad_etcd) / sizeof(bad_etcd[0]); i++) {
		s = (struct store *)0x1;
		if (store_open(bad_etcd[i], &s, why, sizeof(why)) != ERR_INVAL)
			fail_msg("store_open(\"%s\") did not fail with ERR_INVAL", bad_etcd[i]);
		assert_null(s);
	}
	assert_int_equal(store_open(f->path, &s, why, sizeof(why)), ERR_INVAL); /* no scheme */
	assert_non_null(strstr(why, "unknown store"));
	assert_int_equal(store_open("SQLITE:/x", &s, why, sizeof(why)), ERR_INVAL);
	assert_int_equal(store_open("sqlit:/x", &s, why, sizeof(why)), ERR_INVAL);
	assert_int_equal(store_open("sqlite", &s, why, sizeof(why)), ERR_INVAL);
	assert_int_equal(store_open("sqlite:", &s, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "needs a path"));
	assert_int_equal(store_open("foo:x", &s, NULL, 0), ERR_INVAL);

	/* A missing folder is reported, not created. */
	snprintf(missing, sizeof(missing), "%s/nope", f->dir);
	snprintf(uri, sizeof(uri), "sqlite:%s/state.db", missing);
	assert_int_equal(store_open(uri, &s, why, sizeof(why)), ERR_STORE);
	assert_null(s);
	assert_non_null(strstr(why, "cannot open store"));
	assert_int_equal(access(missing, F_OK), -1);
	char *log = read_log(f);
	assert_non_null(strstr(log, "No such file or directory; create it first"));
	free(log);

	/* A file that is not a database. */
	assert_int_equal(file_write_atomic(f->path, "not a database, just text.......", 32), 0);
	assert_int_equal(store_open(f->uri, &s, why, sizeof(why)), ERR_STORE);
	assert_null(s);
	log = read_log(f);
	assert_non_null(strstr(log, "file is not a database"));
	free(log);
}

struct seen {
	int n;
	char last[32];
};

/* Counts keys, checks they come in strictly increasing order, and that key
 * number n holds "n". */
static int count_cb(const char *k, const void *v, size_t len, void *arg)
{
	struct seen *seen = arg;
	char want[32];

	snprintf(want, sizeof(want), "%d", seen->n);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(v, want, len);
	assert_true(strcmp(seen->last, k) < 0);
	snprintf(seen->last, sizeof(seen->last), "%s", k);
	seen->n++;
	return 0;
}

/* Inside a transaction get and list see its writes, merged in key order
 * with what is stored; a listing is complete over several etcd pages. */
static void test_txn_reads_and_paging(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	static const char *const want[] = {"a/1", "a/2", "a/4"};
	struct collected c = {0};
	char key[32], val[32];
	struct seen seen = {0};

	put_str(s, "a/1", "v:old");
	put_str(s, "a/3", "v:a/3");
	assert_int_equal(store_begin(s), 0);
	put_str(s, "a/2", "v:a/2");
	assert_int_equal(store_del(s, "a/3"), 0);
	put_str(s, "a/4", "v:a/4");
	put_str(s, "a/1", "v:a/1");
	expect_list(s, "a/", want, 3);
	expect(s, "a/3", NULL);
	assert_int_equal(store_commit(s), 0);
	expect_list(s, "a/", want, 3);

	/* 2500 keys written in one transaction, listed in order. */
	assert_int_equal(store_begin(s), 0);
	for (int i = 0; i < 2500; i++) {
		snprintf(key, sizeof(key), "many/%05d", i);
		snprintf(val, sizeof(val), "%d", i);
		put_str(s, key, val);
	}
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_list(s, "many/", count_cb, &seen), 0);
	assert_int_equal(seen.n, 2500);
	assert_string_equal(seen.last, "many/02499");
	assert_int_equal(store_list(s, "a/", collect, &c), 0);
	assert_int_equal(c.n, 3);
	store_close(s);
}

static void test_sqlite_has_no_ha_ops(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	int64_t v = 0;
	bool won = false;

	assert_int_equal(store_fence(s, "leader", "A", 1), ERR_NOTSUP);
	assert_int_equal(store_lease_grant(s, 1000, &v), ERR_NOTSUP);
	assert_int_equal(store_lease_keepalive(s, 1, &v), ERR_NOTSUP);
	assert_int_equal(store_lease_revoke(s, 1), ERR_NOTSUP);
	assert_int_equal(store_put_if_absent(s, "k", "v", 1, 0, &won, NULL, NULL), ERR_NOTSUP);
	assert_int_equal(store_revision(s, &v), ERR_NOTSUP);
	assert_int_equal(store_watch_start(s, "jobs/", 0), ERR_NOTSUP);
	store_watch_stop(s);
	store_close(s);
	char *log = read_log(f);
	assert_non_null(strstr(log, "the sqlite store has no leases"));
	assert_non_null(strstr(log, "the sqlite store has no watches"));
	free(log);
}

/* ---- etcd: the server ---- */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A socket that listens and never accepts: connecting works, no answer
 * comes.  The caller closes it. */
static int silent_listener(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static bool find_etcd(void)
{
	const char *path = getenv("PATH");
	char *copy = xstrdup(path ? path : "/usr/bin:/bin"), *save = copy;

	for (char *d = strsep(&save, ":"); d; d = strsep(&save, ":")) {
		snprintf(etcd.bin, sizeof(etcd.bin), "%s/etcd", *d ? d : ".");
		if (access(etcd.bin, X_OK) == 0) {
			free(copy);
			return true;
		}
	}
	etcd.bin[0] = '\0';
	free(copy);
	return false;
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
	struct {
		char buf[4096];
		size_t len;
	} *b = arg;
	size_t take = size * n;

	if (take > sizeof(b->buf) - 1 - b->len)
		take = sizeof(b->buf) - 1 - b->len;
	memcpy(b->buf + b->len, p, take);
	b->len += take;
	b->buf[b->len] = '\0';
	return size * n;
}

/* POST body to our etcd; the HTTP status, or -1 when it did not answer.
 * The answer (first 4 KiB) goes to answer when not NULL. */
static long etcd_post(const char *path, const char *body, char *answer, size_t alen)
{
	struct {
		char buf[4096];
		size_t len;
	} b = {.len = 0};
	char url[128];
	CURL *c = curl_easy_init();
	long http = -1;

	assert_non_null(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", etcd.cport, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
	curl_easy_cleanup(c);
	if (answer)
		snprintf(answer, alen, "%s", b.buf);
	return http;
}

/* Start etcd on etcd.dir and its ports; wait (10 s at most) until it
 * answers.  true when it does. */
static bool etcd_start(void)
{
	char data[96], logp[96], curl_url[64], purl[64], cluster[96];

	snprintf(data, sizeof(data), "%s/data", etcd.dir);
	snprintf(logp, sizeof(logp), "%s/etcd.log", etcd.dir);
	snprintf(curl_url, sizeof(curl_url), "http://127.0.0.1:%d", etcd.cport);
	snprintf(purl, sizeof(purl), "http://127.0.0.1:%d", etcd.pport);
	snprintf(cluster, sizeof(cluster), "default=%s", purl);
	etcd.pid = fork();
	if (etcd.pid < 0)
		return false;
	if (etcd.pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);

		/* Dies with us, even if we crash before the group's teardown. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(etcd.bin, etcd.bin, "--name", "default", "--data-dir", data,
		      "--listen-client-urls", curl_url, "--advertise-client-urls", curl_url,
		      "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		      "--initial-cluster", cluster, "--max-txn-ops", "10000", "--max-request-bytes",
		      "10485760", "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int status;

		if (etcd_post("/v3/kv/range", "{\"key\":\"AA==\"}", NULL, 0) == 200)
			return true;
		if (waitpid(etcd.pid, &status, WNOHANG) == etcd.pid) {
			etcd.pid = 0;
			return false;
		}
		usleep(50 * 1000);
	}
	return false;
}

static void etcd_kill(void)
{
	if (etcd.pid > 0) {
		kill(etcd.pid, SIGKILL);
		waitpid(etcd.pid, NULL, 0);
		etcd.pid = 0;
	}
}

static void etcd_cleanup(void)
{
	etcd_kill();
	if (etcd.dir[0]) {
		rm_rf(etcd.dir);
		etcd.dir[0] = '\0';
	}
}

static int etcd_group_setup(void **state)
{
	on_etcd = true;
	strcpy(etcd.dir, "/tmp/store-test-etcd.XXXXXX");
	if (!mkdtemp(etcd.dir)) {
		etcd.dir[0] = '\0';
		return -1;
	}
	atexit(etcd_cleanup);
	for (int attempt = 0; attempt < 3; attempt++) {
		etcd.cport = free_port();
		etcd.pport = free_port();
		if (etcd.cport != etcd.pport && etcd_start())
			return 0;
		etcd_kill();
	}
	fprintf(stderr, "store-test: etcd would not start; see %s/etcd.log\n", etcd.dir);
	return -1;
}

static int etcd_group_teardown(void **state)
{
	etcd_cleanup();
	on_etcd = false;
	return 0;
}

static int sqlite_group_setup(void **state)
{
	on_etcd = false;
	return 0;
}

static struct store *open_uri(const char *uri)
{
	struct store *s = NULL;
	char why[256] = "";

	if (store_open(uri, &s, why, sizeof(why)) != 0)
		fail_msg("store_open %s: %s", uri, why);
	return s;
}

static bool log_has(struct fixture *f, const char *what)
{
	char *log = read_log(f);
	bool yes = strstr(log, what) != NULL;

	if (!yes)
		fprintf(stderr, "log lacks \"%s\":\n%s", what, log);
	free(log);
	return yes;
}

/* ---- etcd-only tests ---- */

static void test_etcd_failover(void **state)
{
	struct fixture *f = *state;
	int dead = free_port(), silent_port, silent = silent_listener(&silent_port);
	char uri[200], msg[200];
	struct store *s, *t;
	uint64_t t0;

	/* A refused connection: the next endpoint at once. */
	snprintf(uri, sizeof(uri), "etcd://127.0.0.1:%d,127.0.0.1:%d/t%d/", dead, etcd.cport,
		 prefix_seq);
	s = open_uri(uri);
	put_str(s, "k", "v");
	expect(s, "k", "v");
	snprintf(msg, sizeof(msg), "store: etcd 127.0.0.1:%d unreachable (", dead);
	assert_true(log_has(f, msg));
	snprintf(msg, sizeof(msg), "): trying 127.0.0.1:%d", etcd.cport);
	assert_true(log_has(f, msg));

	/* A silent endpoint: the next one after the request timeout. */
	snprintf(uri, sizeof(uri), "etcd://127.0.0.1:%d,127.0.0.1:%d/t%d/", silent_port, etcd.cport,
		 prefix_seq);
	t0 = now_ms();
	t = open_uri(uri);
	assert_true(now_ms() - t0 >= 1900);
	expect(t, "k", "v");
	t0 = now_ms();
	put_str(t, "k2", "v2"); /* stays on the endpoint that answered */
	assert_true(now_ms() - t0 < 1500);
	expect(s, "k2", "v2");
	snprintf(msg, sizeof(msg), "store: etcd 127.0.0.1:%d unreachable (", silent_port);
	assert_true(log_has(f, msg));
	store_close(t);
	store_close(s);
	close(silent);

	/* Nobody answers. */
	snprintf(uri, sizeof(uri), "etcd://127.0.0.1:%d,127.0.0.1:%d/", dead, free_port());
	s = (struct store *)0x1;
	assert_int_equal(store_open(uri, &s, msg, sizeof(msg)), ERR_STORE);
	assert_null(s);
	assert_non_null(strstr(msg, "cannot open store"));
	assert_true(log_has(f, "store: no etcd endpoint answered: 127.0.0.1:"));
}

static void test_etcd_fence(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_ok(f), *b = open_ok(f);

	put_str(a, "leader", "A");
	assert_int_equal(store_fence(a, "leader", "A", 1), 0);
	assert_int_equal(store_begin(a), 0);
	assert_int_equal(store_fence(a, NULL, NULL, 0), ERR_STATE);
	put_str(a, "x", "1");
	assert_int_equal(store_commit(a), 0);
	put_str(a, "single", "fenced but holding"); /* a single put passes the fence */
	expect(b, "x", "1");
	expect(b, "single", "fenced but holding");

	/* Another master takes the key: nothing a writes applies any more. */
	put_str(b, "leader", "B");
	assert_int_equal(store_begin(a), 0);
	put_str(a, "y", "2");
	assert_int_equal(store_del(a, "x"), 0);
	assert_int_equal(store_commit(a), ERR_FENCED);
	assert_int_equal(store_commit(a), ERR_STATE); /* the failed commit ended it */
	expect(b, "y", NULL);
	expect(b, "x", "1");
	assert_int_equal(store_put(a, "z", "3", 1), ERR_FENCED);
	assert_int_equal(store_del(a, "x"), ERR_FENCED);
	assert_int_equal(store_begin(a), 0); /* an empty commit checks the fence too */
	assert_int_equal(store_commit(a), ERR_FENCED);
	expect(b, "z", NULL);
	expect(b, "x", "1");
	expect(b, "leader", "B");
	assert_true(log_has(f, "fenced: the leader key"));

	/* The fence compares the value, and goes away when cleared. */
	assert_int_equal(store_fence(a, "leader", "B", 1), 0);
	put_str(a, "z", "3");
	assert_int_equal(store_del(b, "leader"), 0);
	assert_int_equal(store_put(a, "z", "4", 1), ERR_FENCED); /* a missing key fails too */
	assert_int_equal(store_fence(a, NULL, NULL, 0), 0);
	put_str(a, "z", "5");
	expect(b, "z", "5");
	store_close(a);
	store_close(b);
}

static void test_etcd_leases(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_ok(f), *b = open_ok(f);
	int64_t lease = 0, lease2 = 0, left = 0;
	char *holder = NULL;
	size_t hlen = 0;
	bool won = false;
	uint64_t deadline;
	int rv;

	assert_int_equal(store_lease_grant(a, 1000, &lease), 0);
	assert_true(lease != 0);
	assert_int_equal(store_lease_keepalive(a, lease, &left), 0);
	assert_true(left >= 1000);

	assert_int_equal(store_put_if_absent(a, "leader", "A", 1, lease, &won, &holder, &hlen), 0);
	assert_true(won);
	assert_int_equal(hlen, 1);
	assert_string_equal(holder, "A");
	free(holder);
	assert_int_equal(store_put_if_absent(b, "leader", "B", 1, 0, &won, &holder, &hlen), 0);
	assert_false(won);
	assert_int_equal(hlen, 1);
	assert_string_equal(holder, "A");
	free(holder);
	assert_int_equal(store_put_if_absent(b, "leader", "B", 1, 0, &won, NULL, NULL), 0);
	assert_false(won);

	/* No more keepalives: the lease expires and takes the key along. */
	deadline = now_ms() + 10000;
	while ((rv = store_get(b, "leader", (void **)&holder, &hlen)) == 0 && now_ms() < deadline) {
		free(holder);
		usleep(200 * 1000);
	}
	assert_int_equal(rv, ERR_NOENT);
	assert_int_equal(store_lease_keepalive(a, lease, &left), ERR_NOENT);
	assert_int_equal(store_lease_revoke(a, lease), ERR_NOENT);
	assert_true(log_has(f, "is gone (expired or revoked)"));
	assert_true(log_has(f, "requested lease not found"));

	/* The other one wins now; revoking its lease frees the key at once. */
	assert_int_equal(store_lease_grant(b, 5000, &lease2), 0);
	assert_int_equal(store_put_if_absent(b, "leader", "B", 1, lease2, &won, &holder, &hlen), 0);
	assert_true(won);
	free(holder);
	assert_int_equal(store_begin(b), 0);
	assert_int_equal(store_put_if_absent(b, "x", "y", 1, 0, &won, NULL, NULL), ERR_STATE);
	assert_int_equal(store_rollback(b), 0);
	assert_int_equal(store_lease_revoke(b, lease2), 0);
	expect(a, "leader", NULL);
	assert_int_equal(store_lease_keepalive(b, lease2, NULL), ERR_NOENT);
	assert_int_equal(store_put_if_absent(a, "leader", "", 0, 0, &won, &holder, &hlen), 0);
	assert_true(won);
	assert_int_equal(hlen, 0);
	assert_string_equal(holder, "");
	free(holder);
	store_close(a);
	store_close(b);
}

#define WATCH_MAX 16

struct events {
	int type[WATCH_MAX];
	char key[WATCH_MAX][64];
	char *val[WATCH_MAX];
	size_t len[WATCH_MAX];
	int64_t rev[WATCH_MAX];
	int n;
};

static void on_event(int type, const char *key, const void *val, size_t len, int64_t rev, void *arg)
{
	struct events *e = arg;

	assert_true(e->n < WATCH_MAX);
	e->type[e->n] = type;
	snprintf(e->key[e->n], 64, "%s", key);
	e->val[e->n] = xmalloc(len + 1);
	if (len)
		memcpy(e->val[e->n], val, len);
	e->val[e->n][len] = '\0';
	e->len[e->n] = len;
	e->rev[e->n] = rev;
	e->n++;
}

static void events_free(struct events *e)
{
	for (int i = 0; i < e->n; i++)
		free(e->val[i]);
	e->n = 0;
}

/* Poll until n events arrived or 5 s passed; returns the last poll's code. */
static int poll_for(struct store *s, struct events *e, int n)
{
	uint64_t deadline = now_ms() + 5000;
	int rv = 0;

	while (e->n < n && now_ms() < deadline && (rv = store_watch_poll(s, on_event, e)) == 0)
		usleep(10 * 1000);
	return rv;
}

static void test_etcd_watch(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_ok(f), *b = open_ok(f);
	struct collected c = {0};
	struct events e = {.n = 0};
	size_t big_len = 300000;
	char *big = xmalloc(big_len);
	int64_t rev = 0, rev2 = 0;
	char body[96];
	int rv;

	memset(big, 'b', big_len);
	assert_int_equal(store_watch_poll(b, on_event, &e), ERR_STATE); /* not started */
	put_str(a, "jobs/0", "before");
	assert_int_equal(store_list(b, "jobs/", collect, &c), 0);
	assert_int_equal(store_revision(b, &rev), 0);
	assert_true(rev > 0);
	assert_int_equal(store_watch_start(b, "jobs/", rev + 1), 0);
	assert_int_equal(store_watch_poll(b, on_event, &e), 0);

	put_str(a, "jobs/1", "x");
	put_str(a, "other/1", "not watched");
	assert_int_equal(store_begin(a), 0);
	put_str(a, "jobs/2", "y");
	assert_int_equal(store_del(a, "jobs/1"), 0);
	assert_int_equal(store_commit(a), 0);
	assert_int_equal(store_put(a, "jobs/3", big, big_len), 0); /* arrives in pieces */
	assert_int_equal(poll_for(b, &e, 4), 0);
	assert_int_equal(e.n, 4);
	assert_int_equal(e.type[0], STORE_WATCH_PUT);
	assert_string_equal(e.key[0], "jobs/1");
	assert_string_equal(e.val[0], "x");
	/* One commit, one revision, its writes in key order. */
	assert_int_equal(e.type[1], STORE_WATCH_DEL);
	assert_string_equal(e.key[1], "jobs/1");
	assert_int_equal(e.len[1], 0);
	assert_int_equal(e.type[2], STORE_WATCH_PUT);
	assert_string_equal(e.key[2], "jobs/2");
	assert_int_equal(e.rev[1], e.rev[2]);
	assert_true(e.rev[0] > rev && e.rev[1] > e.rev[0] + 1); /* other/1 came between */
	assert_string_equal(e.key[3], "jobs/3");
	assert_int_equal(e.len[3], big_len);
	assert_memory_equal(e.val[3], big, big_len);
	assert_true(e.rev[3] > e.rev[2]);
	assert_int_equal(store_watch_poll(b, on_event, &e), 0);
	assert_int_equal(e.n, 4);
	events_free(&e);

	/* Restart from a revision: the history replays from there. */
	assert_int_equal(store_watch_start(b, "jobs/", rev + 1), 0);
	assert_int_equal(poll_for(b, &e, 4), 0);
	assert_int_equal(e.n, 4);
	assert_string_equal(e.key[0], "jobs/1");
	events_free(&e);

	/* Compacted away: the caller must reload. */
	put_str(a, "jobs/4", "z");
	assert_int_equal(store_revision(a, &rev2), 0);
	snprintf(body, sizeof(body), "{\"revision\":\"%lld\",\"physical\":true}", (long long)rev2);
	assert_int_equal(etcd_post("/v3/kv/compaction", body, NULL, 0), 200);
	assert_int_equal(store_watch_start(b, "jobs/", rev + 1), 0);
	rv = poll_for(b, &e, 1);
	assert_int_equal(rv, ERR_COMPACTED);
	assert_int_equal(e.n, 0);
	assert_int_equal(store_watch_poll(b, on_event, &e), ERR_COMPACTED); /* stays so */
	assert_true(log_has(f, "list everything again"));
	store_watch_stop(b);
	assert_int_equal(store_watch_poll(b, on_event, &e), ERR_STATE);
	store_watch_stop(b); /* twice is fine */

	/* From now (0): only what happens next.  The watch exists only once
	 * etcd has seen the request, so write until an event comes. */
	assert_int_equal(store_watch_start(b, "", 0), 0);
	for (int i = 0; i < 50 && e.n == 0; i++) {
		put_str(a, "other/2", "w");
		for (int k = 0; k < 10 && e.n == 0; k++) {
			assert_int_equal(store_watch_poll(b, on_event, &e), 0);
			usleep(10 * 1000);
		}
	}
	assert_true(e.n >= 1);
	assert_string_equal(e.key[0], "other/2");
	assert_string_equal(e.val[0], "w");
	assert_true(e.rev[0] > rev2);
	events_free(&e);
	free(big);
	store_close(a);
	store_close(b); /* closes the running watch */
}

static void test_etcd_txn_limits(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f);
	char key[32];

	/* The last write to a key wins (etcd refuses a key twice in a txn). */
	put_str(s, "k3", "old");
	assert_int_equal(store_begin(s), 0);
	put_str(s, "k", "a");
	put_str(s, "k", "b");
	assert_int_equal(store_del(s, "k2"), 0);
	put_str(s, "k2", "c");
	put_str(s, "k3", "d");
	assert_int_equal(store_del(s, "k3"), 0);
	assert_int_equal(store_commit(s), 0);
	expect(s, "k", "b");
	expect(s, "k2", "c");
	expect(s, "k3", NULL);

	/* Over --max-txn-ops: refused whole, with the flag named. */
	assert_int_equal(store_begin(s), 0);
	for (int i = 0; i < 10001; i++) {
		snprintf(key, sizeof(key), "big/%05d", i);
		put_str(s, key, "v");
	}
	assert_int_equal(store_commit(s), ERR_TOOBIG);
	expect(s, "big/00000", NULL);
	assert_true(log_has(f, "--max-txn-ops"));
	store_close(s);
}

/* A commit that returned survives kill -9 of etcd; a watch sees the break. */
static void test_etcd_kill_after_commit(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_ok(f), *w = open_ok(f);
	struct events e = {.n = 0};
	int rv;

	assert_int_equal(store_watch_start(w, "", 0), 0);
	assert_int_equal(store_begin(s), 0);
	put_str(s, "jobs/42", "durable");
	put_str(s, "keep", "new");
	assert_int_equal(store_commit(s), 0);
	store_close(s);

	etcd_kill();
	rv = poll_for(w, &e, WATCH_MAX);
	assert_int_equal(rv, ERR_STORE);
	assert_int_equal(store_watch_poll(w, on_event, &e), ERR_STORE); /* stays broken */
	events_free(&e);
	assert_int_equal(store_put(w, "k", "v", 1), ERR_STORE);
	assert_true(log_has(f, "no etcd endpoint answered"));

	assert_true(etcd_start());
	s = open_ok(f);
	expect(s, "jobs/42", "durable");
	expect(s, "keep", "new");
	store_close(s);
	/* The same handle works again once etcd is back. */
	put_str(w, "k", "v");
	store_close(w);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "--child") == 0) {
		if (strcmp(argv[2], "commit") == 0)
			child_commit_then_die(argv[3]);
		else if (strcmp(argv[2], "uncommitted") == 0)
			child_die_uncommitted(argv[3]);
		return 98; /* the child functions do not return */
	}
	self_path = argv[0];

	const struct CMUnitTest sqlite_tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_stop_and_nest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_txn_reads_and_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_uncommitted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_modes_and_pragmas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sqlite_has_no_ha_ops, setup, teardown),
	};
	const struct CMUnitTest etcd_tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_stop_and_nest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_txn_reads_and_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_failover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_fence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_leases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_watch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_txn_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_etcd_kill_after_commit, setup, teardown),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests_name("sqlite", sqlite_tests, sqlite_group_setup, NULL);
	if (find_etcd())
		rc |= cmocka_run_group_tests_name("etcd", etcd_tests, etcd_group_setup,
						  etcd_group_teardown);
	else
		printf("store-test: etcd not found (apt-get install etcd-server): skipping the "
		       "etcd run\n");
	curl_global_cleanup();
	return rc;
}
