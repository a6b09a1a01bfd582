/*
 * logcap-test.c - a task log over --log-max keeps its newest bytes at the
 * same offsets (the head is punched out, the size stays), the kept start is
 * found again from the file alone, the disk usage is bounded however much is
 * written, and an agent's running and ended logs are both cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "logcap.h"
#include "util.h"

static char dir[] = "/tmp/logcap-test.XXXXXX";
static struct agent ag; /* large: not on the stack */

/* logcap_tasks names logs as task.c does; the test links without task.c. */
char *task_log_path(struct agent *a, uint64_t job, uint32_t idx, uint32_t attempt)
{
	return xasprintf("%s/%" PRIu64 "-%u.%u.log", a->logs_dir, job, idx, attempt);
}

/* Append n bytes, byte i of the file being 'a' + i % 26. */
static void grow(const char *path, uint64_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	struct stat st;
	char buf[4096];

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	for (uint64_t done = 0; done < n;) {
		size_t k = n - done < sizeof(buf) ? (size_t)(n - done) : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = (char)('a' + (st.st_size + done + i) % 26);
		assert_int_equal(write(fd, buf, k), (ssize_t)k);
		done += k;
	}
	close(fd);
}

static uint64_t usage(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return logcap_usage((uint64_t)st.st_size, (uint64_t)st.st_blocks);
}

static void test_trim_keeps_tail(void **state)
{
	char *p = xasprintf("%s/one.log", dir), why[256], c;
	uint64_t dropped, start, max = 64 * 1024;
	int truncated, fd;

	(void)state;
	assert_int_equal(logcap_trim(p, max, &dropped, &truncated, why, sizeof(why)), ERR_NOENT);
	grow(p, 50000);
	assert_int_equal(logcap_trim(p, max, &dropped, &truncated, why, sizeof(why)), 0);
	assert_int_equal(dropped, 0); /* under the cap: untouched */
	grow(p, 1000000);
	assert_int_equal(logcap_trim(p, max, &dropped, &truncated, why, sizeof(why)), 0);
	assert_int_equal(truncated, 0);
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	start = logcap_start(fd, 1050000);
	assert_int_equal(dropped, start);
	/* At most the cap is kept, and no less than a block short of it. */
	assert_true(1050000 - start <= max);
	assert_true(1050000 - start > max - 4096);
	/* Offsets still mean the same bytes. */
	assert_int_equal(pread(fd, &c, 1, (off_t)start), 1);
	assert_int_equal(c, 'a' + start % 26);
	assert_int_equal(pread(fd, &c, 1, 1049999), 1);
	assert_int_equal(c, 'a' + 1049999 % 26);
	close(fd);
	assert_true(usage(p) <= max + 4096);
	/* Again: nothing more to drop. */
	assert_int_equal(logcap_trim(p, max, &dropped, &truncated, why, sizeof(why)), 0);
	assert_int_equal(dropped, 0);
	/* Keep writing and cutting: the disk usage stays bounded. */
	for (int i = 0; i < 20; i++) {
		grow(p, 300000);
		assert_int_equal(logcap_trim(p, max, &dropped, &truncated, why, sizeof(why)), 0);
		assert_true(dropped > 0);
		assert_true(usage(p) <= max + 4096);
	}
	unlink(p);
	free(p);
}

static void test_agent_logs(void **state)
{
	struct atask t;
	char *run, *ended;

	(void)state;
	memset(&ag, 0, sizeof(ag));
	memset(&t, 0, sizeof(t));
	snprintf(ag.logs_dir, sizeof(ag.logs_dir), "%s", dir);
	ag.cfg.log_max = 64 * 1024;
	t.job = 7;
	t.idx = 1;
	t.attempt = 2;
	ag.tasks = &t;
	run = task_log_path(&ag, 7, 1, 2);
	ended = task_log_path(&ag, 7, 1, 1);
	grow(run, 500000);
	grow(ended, 500000);
	/* A heartbeat cuts the running task's log only. */
	logcap_tasks(&ag, 0);
	assert_true(usage(run) <= ag.cfg.log_max);
	assert_true(t.log_capped);
	assert_true(usage(ended) > ag.cfg.log_max);
	/* A task's end (or the start) cuts every log over the cap. */
	logcap_tasks(&ag, 1);
	assert_true(usage(ended) <= ag.cfg.log_max);
	unlink(run);
	unlink(ended);
	free(run);
	free(ended);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_trim_keeps_tail),
	    cmocka_unit_test(test_agent_logs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
