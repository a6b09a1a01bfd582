/*
 * store-test.c - the sqlite store on a real file in a temporary folder:
 * put/get/del, prefix listing, transactions, durability when the writing
 * process is killed with SIGKILL right after (or before) a commit, file modes,
 * and store_open's handling of URIs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

struct fixture {
	char dir[64];
	char path[128]; /* dir/state.db */
	char uri[160];	/* sqlite:path */
	char logpath[128];
	int logfd;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/store-test.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/state.db", f->dir);
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
	assert_string_equal(why, "unknown store \"foo:/var/lib/x.db\"; use sqlite:PATH");
	assert_null(s);
	assert_int_equal(store_open("etcd://h:2379", &s, why, sizeof(why)), ERR_INVAL);
	assert_string_equal(why, "unknown store \"etcd://h:2379\"; use sqlite:PATH");
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

	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_checks, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_binary_values, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_prefix, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list_stop_and_nest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_persists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_after_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_kill_uncommitted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_modes_and_pragmas, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
