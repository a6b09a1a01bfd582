/*
 * probe.c - health probes (see probe.h for the loop, its cost and the
 * verdict rules).  Every check is non-blocking: sockets in O_NONBLOCK mode
 * driven by the caller's poll, exec checks as child processes the caller
 * reaps.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "probe.h"
#include "proc.h"
#include "util.h"
#include "wire.h"

extern char **environ;

#define PROBE_TARGET_LEN 200
#define PROBE_REQ_MAX 1400
#define PROBE_STATUS_MAX 256 /* bytes of the response read for its status line */
/* The limits of the spec parser (common/spec.c), which the master applies
 * first: whatever it accepts runs. */
#define PROBE_MS_MAX (UINT64_MAX >> 11)
#define PROBE_COUNT_MAX 1000000

enum probe_kind { KIND_HTTP, KIND_TCP, KIND_EXEC };
enum probe_phase { PH_IDLE, PH_CONNECTING, PH_SENDING, PH_READING, PH_EXEC };

struct probe {
	enum probe_kind kind;
	char target[PROBE_TARGET_LEN]; /* "GET http://h:p/x", "connect h:p", "exec cmd" */
	char where[PROBE_TARGET_LEN];  /* "h:p", for connect failures */
	struct sockaddr_storage addr;  /* http and tcp */
	socklen_t addrlen;
	char req[PROBE_REQ_MAX]; /* http request */
	size_t reqlen;
	char **argv; /* exec: runc --root R exec ID CMD..., NULL-ended */
	size_t argc;
	/* settings */
	uint64_t interval, timeout, grace, grace_until;
	uint32_t need_fail, need_ok;
	/* verdict */
	enum probe_state state;
	uint32_t fails, oks; /* consecutive counted failures, passes */
	char reason[PROBE_REASON_LEN];
	uint64_t at; /* wall ms of the last result */
	/* the check in flight */
	enum probe_phase phase;
	uint64_t started, deadline, next_at;
	int fd;
	size_t sent, got;
	char resp[PROBE_STATUS_MAX + 1];
	pid_t pid;
	bool exited;
	int status;
};

/* ---- parsing ---- */

/* "[v6]:port" or "host:port" (port required when need_port) into host and
 * port; *rest points after them.  0 or ERR_INVAL. */
static int split_hostport(const char *s, char *host, size_t hlen, char *port, size_t plen,
			  const char **rest, bool need_port)
{
	const char *h = s, *e;
	size_t n;

	if (*s == '[') {
		h = s + 1;
		if (!(e = strchr(h, ']')))
			return ERR_INVAL;
		n = (size_t)(e - h);
		e++;
	} else {
		e = h + strcspn(h, ":/");
		n = (size_t)(e - h);
	}
	if (n == 0 || n >= hlen)
		return ERR_INVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	if (*e == ':') {
		const char *p = ++e;
		unsigned long v;
		char *end;
		while (isdigit((unsigned char)*e))
			e++;
		if (e == p || (size_t)(e - p) >= plen)
			return ERR_INVAL;
		v = strtoul(p, &end, 10);
		if (v < 1 || v > 65535)
			return ERR_INVAL;
		snprintf(port, plen, "%lu", v);
	} else if (need_port) {
		return ERR_INVAL;
	} else {
		snprintf(port, plen, "80");
	}
	*rest = e;
	return 0;
}

static int resolve(struct probe *p, const char *host, const char *port, const char *field,
		   char *why, size_t whylen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *res;
	int e;

	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		set_why(why, whylen, "health.%s: cannot resolve %.100s: %s", field, host,
			gai_strerror(e));
		return ERR_INVAL;
	}
	memcpy(&p->addr, res->ai_addr, res->ai_addrlen);
	p->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int parse_http(struct probe *p, const char *url, char *why, size_t whylen)
{
	char host[256], port[8];
	const char *path;
	int n;

	if (strncmp(url, "http://", 7) != 0) {
		set_why(why, whylen, "health.http: \"%.100s\" is not an http:// URL", url);
		return ERR_INVAL;
	}
	if (split_hostport(url + 7, host, sizeof(host), port, sizeof(port), &path, false) != 0 ||
	    (*path && *path != '/')) {
		set_why(why, whylen, "health.http: \"%.100s\" is not http://HOST[:PORT]/PATH", url);
		return ERR_INVAL;
	}
	if (!*path)
		path = "/";
	for (const char *c = path; *c; c++)
		if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
			set_why(why, whylen,
				"health.http: the path of \"%.100s\" has a space or "
				"control character",
				url);
			return ERR_INVAL;
		}
	n = snprintf(p->req, sizeof(p->req),
		     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: mlagent-probe\r\n"
		     "Accept: */*\r\nConnection: close\r\n\r\n",
		     path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	if (n < 0 || (size_t)n >= sizeof(p->req)) {
		set_why(why, whylen, "health.http: URL too long");
		return ERR_INVAL;
	}
	p->reqlen = (size_t)n;
	snprintf(p->target, sizeof(p->target), "GET %.180s", url);
	snprintf(p->where, sizeof(p->where), "%s%.150s%s:%s", strchr(host, ':') ? "[" : "", host,
		 strchr(host, ':') ? "]" : "", port);
	p->kind = KIND_HTTP;
	return resolve(p, host, port, "http", why, whylen);
}

static int parse_tcp(struct probe *p, const char *hp, char *why, size_t whylen)
{
	char host[256], port[8];
	const char *rest;

	if (split_hostport(hp, host, sizeof(host), port, sizeof(port), &rest, true) != 0 || *rest) {
		set_why(why, whylen, "health.tcp: \"%.100s\" is not HOST:PORT", hp);
		return ERR_INVAL;
	}
	snprintf(p->where, sizeof(p->where), "%s%.150s%s:%s", strchr(host, ':') ? "[" : "", host,
		 strchr(host, ':') ? "]" : "", port);
	snprintf(p->target, sizeof(p->target), "connect %.180s", p->where);
	p->kind = KIND_TCP;
	return resolve(p, host, port, "tcp", why, whylen);
}

static int parse_exec(struct probe *p, const cJSON *cmd, const char *id, const struct runc *r,
		      char *why, size_t whylen)
{
	size_t n = (size_t)cJSON_GetArraySize(cmd), k = 0, len;
	const cJSON *e;

	if (!cJSON_IsArray(cmd) || n < 1 || n > PROBE_EXEC_ARGS_MAX) {
		set_why(why, whylen, "health.exec: must be a list of 1 to %d strings",
			PROBE_EXEC_ARGS_MAX);
		return ERR_INVAL;
	}
	p->argv = xcalloc(n + 6, sizeof(*p->argv));
	p->argv[k++] = xstrdup(r && r->bin ? r->bin : "runc");
	if (r && r->root) {
		p->argv[k++] = xstrdup("--root");
		p->argv[k++] = xstrdup(r->root);
	}
	p->argv[k++] = xstrdup("exec");
	p->argv[k++] = xstrdup(id);
	p->argc = k;
	snprintf(p->target, sizeof(p->target), "exec");
	cJSON_ArrayForEach(e, cmd)
	{
		if (!cJSON_IsString(e) || !e->valuestring[0]) {
			set_why(why, whylen, "health.exec: arguments must be non-empty strings");
			return ERR_INVAL;
		}
		p->argv[p->argc++] = xstrdup(e->valuestring);
		len = strlen(p->target);
		snprintf(p->target + len, sizeof(p->target) - len, " %s", e->valuestring);
	}
	p->kind = KIND_EXEC;
	return 0;
}

/* An optional number of the health object within [min, max]. */
static int get_num(const cJSON *h, const char *key, uint64_t min, uint64_t max, uint64_t dflt,
		   uint64_t *out, char *why, size_t whylen)
{
	uint64_t v = dflt;
	int rv = wire_get_u64(h, key, max, &v);

	if (rv == ERR_NOENT) {
		*out = dflt;
		return 0;
	}
	if (rv != 0 || v < min) {
		set_why(why, whylen, "health.%s: must be a whole number from %llu to %llu", key,
			(unsigned long long)min, (unsigned long long)max);
		return ERR_INVAL;
	}
	*out = v;
	return 0;
}

struct probe *probe_new(const cJSON *health, const char *container_id, const struct runc *r,
			uint64_t started, uint64_t now, char *why, size_t whylen)
{
	const cJSON *http = cJSON_GetObjectItemCaseSensitive(health, "http");
	const cJSON *tcp = cJSON_GetObjectItemCaseSensitive(health, "tcp");
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(health, "exec");
	struct probe *p = xcalloc(1, sizeof(*p));
	uint64_t fails, oks, grace;

	p->fd = -1;
	if (!cJSON_IsObject(health)) {
		set_why(why, whylen, "health: must be an object");
		goto fail;
	}
	if (!!http + !!tcp + !!ex != 1) {
		set_why(why, whylen, "health: needs exactly one of http, tcp or exec");
		goto fail;
	}
	if (get_num(health, "interval_ms", 1, PROBE_MS_MAX, PROBE_INTERVAL_MS, &p->interval, why,
		    whylen) != 0 ||
	    get_num(health, "timeout_ms", 1, PROBE_MS_MAX, PROBE_TIMEOUT_MS, &p->timeout, why,
		    whylen) != 0 ||
	    get_num(health, "failures", 1, PROBE_COUNT_MAX, PROBE_FAILURES, &fails, why, whylen) != 0 ||
	    get_num(health, "successes", 1, PROBE_COUNT_MAX, PROBE_SUCCESSES, &oks, why, whylen) != 0 ||
	    get_num(health, "grace_ms", 0, PROBE_MS_MAX, 0, &grace, why, whylen) != 0)
		goto fail;
	p->need_fail = (uint32_t)fails;
	p->need_ok = (uint32_t)oks;
	p->grace = grace;
	p->grace_until = started + grace;
	if (http) {
		if (!cJSON_IsString(http)) {
			set_why(why, whylen, "health.http: must be a URL string");
			goto fail;
		}
		if (parse_http(p, http->valuestring, why, whylen) != 0)
			goto fail;
	} else if (tcp) {
		if (!cJSON_IsString(tcp)) {
			set_why(why, whylen, "health.tcp: must be a HOST:PORT string");
			goto fail;
		}
		if (parse_tcp(p, tcp->valuestring, why, whylen) != 0)
			goto fail;
	} else if (!container_id || !*container_id) {
		set_why(why, whylen, "health.exec: no container to run it in");
		goto fail;
	} else if (parse_exec(p, ex, container_id, r, why, whylen) != 0) {
		goto fail;
	}
	/* The first check one interval after the start: a check at once
	 * would only find the server not listening yet.  An adopted
	 * container started long ago is checked at once. */
	p->next_at = started + p->interval > now ? started + p->interval : now;
	return p;
fail:
	probe_free(p);
	return NULL;
}

/* End the check in flight, if any, without a result. */
static void check_end(struct probe *p)
{
	int st;

	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	if (p->pid > 0 && !p->exited) {
		/* SIGKILL ends it at once; the wait is immediate. */
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	p->pid = 0;
	p->exited = false;
	p->phase = PH_IDLE;
}

void probe_free(struct probe *p)
{
	if (!p)
		return;
	check_end(p);
	for (size_t i = 0; p->argv && i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p);
}

/* ---- one check ---- */

/* strerror with a lower-case first letter, as it sits mid-sentence. */
static void set_errno_reason(struct probe *p, const char *what, int e)
{
	snprintf(p->reason, sizeof(p->reason), "%s: %s", what, strerror(e));
	for (char *c = p->reason + strlen(what) + 2; *c; c++) {
		*c = (char)tolower((unsigned char)*c);
		break;
	}
}

static int spawn_exec(struct probe *p)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int devnull, e;

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return errno;
	if (devnull <= 2) {
		int hi = fcntl(devnull, F_DUPFD_CLOEXEC, 3);
		close(devnull);
		if ((devnull = hi) < 0)
			return errno;
	}
	posix_spawn_file_actions_init(&fa);
	if ((e = proc_spawnattr(&attr, false)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 0)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 1)) == 0 &&
	    (e = posix_spawn_file_actions_adddup2(&fa, devnull, 2)) == 0)
		e = posix_spawnp(&p->pid, p->argv[0], &fa, &attr, p->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(devnull);
	if (e != 0)
		p->pid = 0;
	return e;
}

/*
 * Drive the check in flight as far as it goes without blocking.
 * 0: still in flight; 1: passed; -1: failed (reason set).
 */
static int advance(struct probe *p, short revents)
{
	ssize_t n;
	int e = 0;
	socklen_t elen = sizeof(e);

	switch (p->phase) {
	case PH_CONNECTING:
		if (!(revents & (POLLOUT | POLLERR | POLLHUP)))
			return 0;
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &elen) != 0)
			e = errno;
		if (e == EINPROGRESS || e == EALREADY)
			return 0;
		if (e != 0) {
			char what[PROBE_TARGET_LEN + 16];
			snprintf(what, sizeof(what), "connect %s", p->where);
			set_errno_reason(p, what, e);
			return -1;
		}
		if (p->kind == KIND_TCP) {
			snprintf(p->reason, sizeof(p->reason), "%s: connected", p->target);
			return 1;
		}
		p->phase = PH_SENDING;
		p->sent = 0;
		/* fall through */
	case PH_SENDING:
		while (p->sent < p->reqlen) {
			n = send(p->fd, p->req + p->sent, p->reqlen - p->sent, MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return 0;
			if (n < 0) {
				char what[PROBE_TARGET_LEN + 16];
				snprintf(what, sizeof(what), "%s: send", p->target);
				set_errno_reason(p, what, errno);
				return -1;
			}
			p->sent += (size_t)n;
		}
		p->phase = PH_READING;
		p->got = 0;
		/* fall through */
	case PH_READING:
		for (;;) {
			char *nl;
			int code = 0;
			n = recv(p->fd, p->resp + p->got, PROBE_STATUS_MAX - p->got, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return 0;
			if (n < 0) {
				char what[PROBE_TARGET_LEN + 16];
				snprintf(what, sizeof(what), "%s: receive", p->target);
				set_errno_reason(p, what, errno);
				return -1;
			}
			p->got += (size_t)n;
			p->resp[p->got] = '\0';
			nl = strchr(p->resp, '\n');
			if (!nl && n > 0 && p->got < PROBE_STATUS_MAX)
				continue;
			if (p->got == 0) {
				snprintf(p->reason, sizeof(p->reason),
					 "%s: connection closed without a response", p->target);
				return -1;
			}
			/* "HTTP/1.1 200 OK" */
			if (strncmp(p->resp, "HTTP/", 5) != 0 ||
			    sscanf(p->resp, "HTTP/%*d.%*d %3d", &code) != 1 || code < 100) {
				snprintf(p->reason, sizeof(p->reason), "%s: not an HTTP response",
					 p->target);
				return -1;
			}
			snprintf(p->reason, sizeof(p->reason), "%s: status %d", p->target, code);
			return code >= 200 && code <= 399 ? 1 : -1;
		}
	case PH_EXEC:
		if (!p->exited)
			return 0;
		if (WIFEXITED(p->status)) {
			snprintf(p->reason, sizeof(p->reason), "%s: exit %d", p->target,
				 WEXITSTATUS(p->status));
			return WEXITSTATUS(p->status) == 0 ? 1 : -1;
		}
		snprintf(p->reason, sizeof(p->reason), "%s: killed by signal %d", p->target,
			 WIFSIGNALED(p->status) ? WTERMSIG(p->status) : 0);
		return -1;
	case PH_IDLE:
		break;
	}
	return 0;
}

/* Start a check.  0: in flight; 1 or -1: it ended at once. */
static int check_start(struct probe *p, uint64_t now)
{
	int e;

	p->started = now;
	p->deadline = now + p->timeout;
	if (p->kind == KIND_EXEC) {
		p->exited = false;
		if ((e = spawn_exec(p)) != 0) {
			char what[PROBE_TARGET_LEN + 32];
			snprintf(what, sizeof(what), "%s: cannot start %s", p->target, p->argv[0]);
			set_errno_reason(p, what, e);
			return -1;
		}
		p->phase = PH_EXEC;
		return 0;
	}
	p->fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		set_errno_reason(p, "socket", errno);
		return -1;
	}
	p->phase = PH_CONNECTING;
	if (connect(p->fd, (struct sockaddr *)&p->addr, p->addrlen) == 0)
		return advance(p, POLLOUT);
	if (errno == EINPROGRESS || errno == EINTR)
		return 0;
	{
		char what[PROBE_TARGET_LEN + 16];
		snprintf(what, sizeof(what), "connect %s", p->where);
		set_errno_reason(p, what, errno);
	}
	return -1;
}

/* A check ended with res (1 passed, -1 failed): count it.  1 when the
 * verdict changed. */
static int record(struct probe *p, uint64_t now, int res)
{
	check_end(p);
	p->at = wall_ms();
	p->next_at = p->started + p->interval > now ? p->started + p->interval : now;
	if (res > 0) {
		p->fails = 0;
		if (p->oks < UINT32_MAX)
			p->oks++;
		if (p->state != PROBE_HEALTHY && p->oks >= p->need_ok) {
			p->state = PROBE_HEALTHY;
			return 1;
		}
		return 0;
	}
	p->oks = 0;
	if (now < p->grace_until)
		return 0; /* still starting up */
	if (p->fails < UINT32_MAX)
		p->fails++;
	if (p->state != PROBE_UNHEALTHY && p->fails >= p->need_fail) {
		p->state = PROBE_UNHEALTHY;
		return 1;
	}
	return 0;
}

int probe_step(struct probe *p, uint64_t now, short revents)
{
	int res;

	if (p->phase == PH_IDLE) {
		if (now < p->next_at)
			return 0;
		res = check_start(p, now);
	} else {
		res = advance(p, revents);
	}
	if (res == 0 && p->phase != PH_IDLE && now >= p->deadline) {
		snprintf(p->reason, sizeof(p->reason), "%s: timed out after %llu ms", p->target,
			 (unsigned long long)p->timeout);
		res = -1;
	}
	return res == 0 ? 0 : record(p, now, res);
}

bool probe_child_exited(struct probe *p, pid_t pid, int status)
{
	if (!p || p->phase != PH_EXEC || p->pid != pid || p->exited || pid <= 0)
		return false;
	p->exited = true;
	p->status = status;
	return true;
}

uint64_t probe_next_ms(const struct probe *p)
{
	return p->phase == PH_IDLE ? p->next_at : p->deadline;
}

bool probe_pollfd(const struct probe *p, struct pollfd *out)
{
	if (p->fd < 0)
		return false;
	out->fd = p->fd;
	out->events = p->phase == PH_READING ? POLLIN : POLLOUT;
	out->revents = 0;
	return true;
}

enum probe_state probe_state(const struct probe *p)
{
	return p->state;
}

const char *probe_state_str(enum probe_state s)
{
	return s == PROBE_HEALTHY ? "healthy" : s == PROBE_UNHEALTHY ? "unhealthy" : "unknown";
}

const char *probe_reason(const struct probe *p)
{
	return p->reason;
}

uint64_t probe_at(const struct probe *p)
{
	return p->at;
}

uint32_t probe_streak(const struct probe *p)
{
	return p->state == PROBE_HEALTHY ? p->oks : p->state == PROBE_UNHEALTHY ? p->fails : 0;
}

const char *probe_target(const struct probe *p)
{
	return p->target;
}

void probe_started(struct probe *p, uint64_t started)
{
	p->grace_until = started + p->grace;
	p->next_at = started + p->interval;
}
