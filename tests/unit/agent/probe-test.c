/*
 * probe-test.c - health probes (agent/probe.c) against real loopback
 * sockets: a small HTTP server thread that answers with a status the test
 * sets (or accepts and never answers), closed ports, and exec checks through
 * a stand-in for runc (a shell script that drops "--root R exec ID" and runs
 * the rest), reaped by the test as the agent's SIGCHLD handler would.
 *
 * The probes are driven the way the agent's loop does it: poll on
 * probe_pollfd until probe_next_ms, then probe_step with the revents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "err.h"
#include "probe.h"
#include "util.h"

/* ---- a loopback HTTP server on its own thread ---- */

#define SILENT_MAX 16

static struct server {
	int lfd;
	uint16_t port;
	int stop[2];	   /* a byte on stop[1] ends the thread */
	int status;	   /* answer with it; 0 = accept and never answer */
	unsigned requests; /* requests answered (or held, when silent) */
	int silent[SILENT_MAX];
	size_t nsilent;
	pthread_t th;
	pthread_mutex_t mu;
} srv;

static void *server_main(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pf[2] = {{.fd = srv.lfd, .events = POLLIN},
				       {.fd = srv.stop[0], .events = POLLIN}};
		char buf[2048], resp[128];
		size_t got = 0;
		int fd, status, n;

		if (poll(pf, 2, -1) < 0 || (pf[1].revents & POLLIN))
			break;
		if ((fd = accept(srv.lfd, NULL, NULL)) < 0)
			continue;
		pthread_mutex_lock(&srv.mu);
		status = srv.status;
		srv.requests++;
		if (status == 0 && srv.nsilent < SILENT_MAX) {
			srv.silent[srv.nsilent++] = fd; /* closed at the end */
			pthread_mutex_unlock(&srv.mu);
			continue;
		}
		pthread_mutex_unlock(&srv.mu);
		/* The request, up to its blank line. */
		while (got < sizeof(buf) - 1) {
			ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);
			if (r <= 0)
				break;
			got += (size_t)r;
			buf[got] = '\0';
			if (strstr(buf, "\r\n\r\n"))
				break;
		}
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.1 %d X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
			     status);
		if (write(fd, resp, (size_t)n) < 0)
			perror("server write");
		close(fd);
	}
	return NULL;
}

static int server_setup(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	(void)state;
	memset(&srv, 0, sizeof(srv));
	pthread_mutex_init(&srv.mu, NULL);
	srv.status = 200;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv.lfd < 0 || bind(srv.lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(srv.lfd, 16) != 0 || getsockname(srv.lfd, (struct sockaddr *)&sin, &len) != 0 ||
	    pipe(srv.stop) != 0)
		return -1;
	srv.port = ntohs(sin.sin_port);
	return pthread_create(&srv.th, NULL, server_main, NULL) == 0 ? 0 : -1;
}

static int server_teardown(void **state)
{
	(void)state;
	if (write(srv.stop[1], "x", 1) != 1)
		return -1;
	pthread_join(srv.th, NULL);
	for (size_t i = 0; i < srv.nsilent; i++)
		close(srv.silent[i]);
	close(srv.lfd);
	close(srv.stop[0]);
	close(srv.stop[1]);
	pthread_mutex_destroy(&srv.mu);
	return 0;
}

static void server_set(int status)
{
	pthread_mutex_lock(&srv.mu);
	srv.status = status;
	pthread_mutex_unlock(&srv.mu);
}

static unsigned server_requests(void)
{
	unsigned n;

	pthread_mutex_lock(&srv.mu);
	n = srv.requests;
	pthread_mutex_unlock(&srv.mu);
	return n;
}

/* A loopback port nothing listens on (bound, then closed). */
static uint16_t closed_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ---- driving a probe like the agent's loop ---- */

/* Reap exited children and hand them to p (the agent's task_reap). */
static void reap(struct probe *p)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		probe_child_exited(p, pid, st);
}

/*
 * Step p until its verdict changes or limit_ms passes.  Returns 1 when it
 * changed (with the time it took in *took_ms when given), 0 otherwise.
 */
static int drive(struct probe *p, uint64_t limit_ms, uint64_t *took_ms)
{
	uint64_t t0 = now_ms(), end = t0 + limit_ms;

	for (;;) {
		uint64_t now = now_ms(), next = probe_next_ms(p);
		struct pollfd pf;
		bool has = probe_pollfd(p, &pf);
		int timeout;

		if (now >= end)
			return 0;
		if (next > end)
			next = end;
		timeout = next > now ? (int)(next - now) : 0;
		/* exec checks end with SIGCHLD, which this test does not
		 * wait on: look every few ms. */
		if (timeout > 5)
			timeout = 5;
		if (has) {
			if (poll(&pf, 1, timeout) < 0 && errno != EINTR)
				fail_msg("poll: %s", strerror(errno));
		} else if (timeout > 0) {
			usleep((useconds_t)timeout * 1000);
		}
		reap(p);
		if (probe_step(p, now_ms(), has ? pf.revents : 0)) {
			if (took_ms)
				*took_ms = now_ms() - t0;
			return 1;
		}
	}
}

static struct probe *new_probe(const char *json, const struct runc *r)
{
	char why[256] = "";
	cJSON *h = cJSON_Parse(json);
	struct probe *p;

	assert_non_null(h);
	p = probe_new(h, "mls-1-0", r, now_ms(), now_ms(), why, sizeof(why));
	cJSON_Delete(h);
	if (!p)
		fail_msg("probe_new(%s): %s", json, why);
	return p;
}

static struct probe *http_probe(const char *path, const char *extra)
{
	char json[512];

	snprintf(json, sizeof(json), "{\"http\": \"http://127.0.0.1:%u%s\"%s}", srv.port, path,
		 extra);
	return new_probe(json, NULL);
}

/* ---- tests ---- */

static void test_http_healthy_then_unhealthy(void **state)
{
	struct probe *p = http_probe("/healthz", ", \"interval_ms\": 20, \"timeout_ms\": 1000, "
						 "\"failures\": 3");
	char want[128];
	unsigned before;

	(void)state;
	assert_int_equal(probe_state(p), PROBE_UNKNOWN);
	snprintf(want, sizeof(want), "GET http://127.0.0.1:%u/healthz", srv.port);
	assert_string_equal(probe_target(p), want);
	assert_int_equal(drive(p, 2000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	snprintf(want, sizeof(want), "GET http://127.0.0.1:%u/healthz: status 200", srv.port);
	assert_string_equal(probe_reason(p), want);
	assert_true(probe_at(p) > 0 && probe_at(p) <= wall_ms());
	assert_int_equal(probe_streak(p), 1);

	/* 404: unhealthy after exactly three checks, not before. */
	server_set(404);
	before = server_requests();
	assert_int_equal(drive(p, 3000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	assert_int_equal(server_requests() - before, 3);
	assert_int_equal(probe_streak(p), 3);
	snprintf(want, sizeof(want), "GET http://127.0.0.1:%u/healthz: status 404", srv.port);
	assert_string_equal(probe_reason(p), want);

	/* Further failures are no change. */
	assert_int_equal(drive(p, 100, NULL), 0);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);

	/* And back: one pass is enough (successes defaults to 1); 3xx is a
	 * pass too. */
	server_set(302);
	assert_int_equal(drive(p, 2000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	probe_free(p);
}

static void test_http_successes(void **state)
{
	struct probe *p = http_probe("", ", \"interval_ms\": 20, \"successes\": 3, "
					 "\"failures\": 1");
	unsigned before = server_requests();

	(void)state;
	server_set(200);
	assert_int_equal(drive(p, 3000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	assert_int_equal(server_requests() - before, 3);
	assert_int_equal(probe_streak(p), 3);

	/* A failure in a run of passes starts the count again. */
	server_set(500);
	assert_int_equal(drive(p, 2000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	server_set(200);
	before = server_requests();
	assert_int_equal(drive(p, 3000, NULL), 1);
	assert_int_equal(server_requests() - before, 3);
	probe_free(p);
}

static void test_grace(void **state)
{
	char json[256];
	uint16_t port = closed_port();
	uint64_t took = 0;
	struct probe *p;

	(void)state;
	/* Failures within the grace do not count... */
	snprintf(json, sizeof(json),
		 "{\"tcp\": \"127.0.0.1:%u\", \"interval_ms\": 20, \"failures\": 1, "
		 "\"grace_ms\": 300}",
		 port);
	p = new_probe(json, NULL);
	assert_int_equal(drive(p, 2000, &took), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	assert_true(took >= 280);
	probe_free(p);

	/* ...passes do, at once. */
	server_set(200);
	p = http_probe("/", ", \"interval_ms\": 20, \"grace_ms\": 60000");
	assert_int_equal(drive(p, 1000, &took), 1);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	assert_true(took < 1000);
	probe_free(p);
}

static void test_refused(void **state)
{
	char json[256], want[128];
	uint16_t port = closed_port();
	struct probe *p;

	(void)state;
	snprintf(json, sizeof(json),
		 "{\"http\": \"http://127.0.0.1:%u/healthz\", \"interval_ms\": 20, "
		 "\"failures\": 2}",
		 port);
	p = new_probe(json, NULL);
	assert_int_equal(drive(p, 2000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%u: connection refused", port);
	assert_string_equal(probe_reason(p), want);
	probe_free(p);
}

static void test_timeout(void **state)
{
	struct probe *p = http_probe("/slow", ", \"interval_ms\": 50, \"timeout_ms\": 100, "
					      "\"failures\": 1");
	char want[128];
	uint64_t took = 0;

	(void)state;
	server_set(0); /* accept, never answer */
	assert_int_equal(drive(p, 2000, &took), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	assert_true(took >= 95 && took < 1000);
	snprintf(want, sizeof(want), "GET http://127.0.0.1:%u/slow: timed out after 100 ms",
		 srv.port);
	assert_string_equal(probe_reason(p), want);
	probe_free(p);
	server_set(200);
}

static void test_tcp(void **state)
{
	char json[256], want[128];
	uint16_t port = closed_port();
	uint64_t took = 0;
	struct probe *p;

	(void)state;
	/* The first check comes one interval after the start. */
	snprintf(json, sizeof(json), "{\"tcp\": \"127.0.0.1:%u\", \"interval_ms\": 200}", srv.port);
	p = new_probe(json, NULL);
	assert_int_equal(drive(p, 2000, &took), 1);
	assert_true(took >= 195 && took < 1000);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%u: connected", srv.port);
	assert_string_equal(probe_reason(p), want);
	probe_free(p);

	snprintf(json, sizeof(json),
		 "{\"tcp\": \"127.0.0.1:%u\", \"interval_ms\": 20, "
		 "\"failures\": 1}",
		 port);
	p = new_probe(json, NULL);
	assert_int_equal(drive(p, 2000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	snprintf(want, sizeof(want), "connect 127.0.0.1:%u: connection refused", port);
	assert_string_equal(probe_reason(p), want);
	probe_free(p);
}

/* A stand-in for runc: "fake-runc --root R exec ID CMD..." runs CMD. */
static char fake_runc[64];

static int exec_setup(void **state)
{
	static const char text[] =
	    "#!/bin/sh\n[ \"$3\" = exec ] || exit 99\nshift 4\nexec \"$@\"\n";
	int fd;

	(void)state;
	snprintf(fake_runc, sizeof(fake_runc), "/tmp/probe-test-runc.XXXXXX");
	if ((fd = mkstemp(fake_runc)) < 0)
		return -1;
	if (write(fd, text, sizeof(text) - 1) != (ssize_t)(sizeof(text) - 1) ||
	    fchmod(fd, 0755) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int exec_teardown(void **state)
{
	(void)state;
	unlink(fake_runc);
	return 0;
}

static void test_exec(void **state)
{
	struct runc r = {.bin = fake_runc, .root = "/nonexistent"};
	struct probe *p;
	uint64_t took = 0;

	(void)state;
	p = new_probe("{\"exec\": [\"/bin/sh\", \"-c\", \"exit 0\"], \"interval_ms\": 20}", &r);
	assert_int_equal(drive(p, 5000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_HEALTHY);
	assert_string_equal(probe_reason(p), "exec /bin/sh -c exit 0: exit 0");
	probe_free(p);

	p = new_probe("{\"exec\": [\"/bin/false\"], \"interval_ms\": 20, \"failures\": 2}", &r);
	assert_int_equal(drive(p, 5000, NULL), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	assert_string_equal(probe_reason(p), "exec /bin/false: exit 1");
	assert_int_equal(probe_streak(p), 2);
	probe_free(p);

	/* Past its timeout the check is killed (and reaped). */
	p = new_probe("{\"exec\": [\"/bin/sleep\", \"10\"], \"interval_ms\": 20, "
		      "\"timeout_ms\": 150, \"failures\": 1}",
		      &r);
	assert_int_equal(drive(p, 5000, &took), 1);
	assert_int_equal(probe_state(p), PROBE_UNHEALTHY);
	assert_string_equal(probe_reason(p), "exec /bin/sleep 10: timed out after 150 ms");
	assert_true(took >= 145 && took < 3000);
	probe_free(p);

	/* Freed with a check in flight: killed and reaped, nothing left. */
	p = new_probe("{\"exec\": [\"/bin/sleep\", \"10\"], \"timeout_ms\": 5000}", &r);
	assert_int_equal(probe_step(p, now_ms(), 0), 0);
	probe_free(p);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void test_bad_health(void **state)
{
	static const char *const bad[][2] = {
	    {"{}", "exactly one of"},
	    {"{\"http\": \"http://127.0.0.1:1/\", \"tcp\": \"127.0.0.1:1\"}", "exactly one of"},
	    {"{\"http\": \"https://127.0.0.1/\"}", "not an http:// URL"},
	    {"{\"http\": \"http://127.0.0.1:99999/\"}", "is not http://HOST[:PORT]/PATH"},
	    {"{\"http\": \"http://127.0.0.1:80/a b\"}", "space or control"},
	    {"{\"http\": 5}", "must be a URL string"},
	    {"{\"tcp\": \"127.0.0.1\"}", "is not HOST:PORT"},
	    {"{\"exec\": []}", "list of 1 to"},
	    {"{\"exec\": [1]}", "non-empty strings"},
	    {"{\"tcp\": \"127.0.0.1:1\", \"interval_ms\": 0}", "health.interval_ms"},
	    {"{\"tcp\": \"127.0.0.1:1\", \"failures\": -1}", "health.failures"},
	    {"{\"tcp\": \"127.0.0.1:1\", \"timeout_ms\": \"1s\"}", "health.timeout_ms"},
	    {"[]", "must be an object"},
	};
	struct runc r = {.bin = "runc", .root = "/x"};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char why[256] = "";
		cJSON *h = cJSON_Parse(bad[i][0]);
		struct probe *p = probe_new(h, "mls-1-0", &r, now_ms(), now_ms(), why, sizeof(why));
		cJSON_Delete(h);
		if (p || !strstr(why, bad[i][1]))
			fail_msg("%s: got %s, \"%s\"; wanted \"%s\"", bad[i][0],
				 p ? "a probe" : "NULL", why, bad[i][1]);
	}
}

static void test_ipv6_and_defaults(void **state)
{
	struct probe *p = new_probe("{\"http\": \"http://[::1]:8080/x\"}", NULL);

	(void)state;
	assert_string_equal(probe_target(p), "GET http://[::1]:8080/x");
	/* Defaults: the first check is due a second (one interval) after
	 * the start. */
	assert_true(probe_next_ms(p) >= now_ms() + 900 && probe_next_ms(p) <= now_ms() + 1000);
	probe_free(p);
	p = new_probe("{\"http\": \"http://127.0.0.1/\"}", NULL);
	assert_string_equal(probe_target(p), "GET http://127.0.0.1/");
	probe_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_http_healthy_then_unhealthy),
	    cmocka_unit_test(test_http_successes),
	    cmocka_unit_test(test_grace),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_tcp),
	    cmocka_unit_test_setup_teardown(test_exec, exec_setup, exec_teardown),
	    cmocka_unit_test(test_bad_health),
	    cmocka_unit_test(test_ipv6_and_defaults),
	};

	return cmocka_run_group_tests(tests, server_setup, server_teardown);
}
