/*
 * metrics.c - Prometheus text over libmicrohttpd (see metrics.h).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "err.h"
#include "metrics.h"
#include "util.h"

const double metrics_bounds[METRICS_BUCKETS - 1] = {0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05,
						    0.1,    0.5,    1,     5,     10};

struct metrics_server {
	struct MHD_Daemon *d;
	metrics_render_fn render;
	void *arg;
};

void metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (b->s && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->s = xrealloc(b->s, b->cap);
	}
}

void metrics_head(struct metrics_buf *b, const char *name, const char *type, const char *help)
{
	metrics_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_observe(struct metrics_histo *h, double seconds)
{
	size_t i = 0;

	while (i < METRICS_BUCKETS - 1 && seconds > metrics_bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += seconds;
}

void metrics_histo_write(struct metrics_buf *b, const char *name, const char *help,
			 const struct metrics_histo *h)
{
	uint64_t cum = 0;

	metrics_head(b, name, "histogram", help);
	for (size_t i = 0; i < METRICS_BUCKETS; i++) {
		cum += h->buckets[i];
		if (i < METRICS_BUCKETS - 1)
			metrics_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[i],
				       (unsigned long long)cum);
		else
			metrics_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
				       (unsigned long long)cum);
	}
	metrics_printf(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name,
		       (unsigned long long)h->count);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **con)
{
	struct metrics_server *s = cls;
	struct metrics_buf b = {0};
	struct MHD_Response *r;
	enum MHD_Result rv;
	unsigned code = MHD_HTTP_OK;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)con;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		metrics_printf(&b, "only GET\n");
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	} else if (strcmp(url, "/metrics") != 0) {
		metrics_printf(&b, "not found: the metrics are at /metrics\n");
		code = MHD_HTTP_NOT_FOUND;
	} else {
		s->render(&b, s->arg);
	}
	if (!b.s)
		metrics_printf(&b, "%s", "");
	r = MHD_create_response_from_buffer(b.len, b.s, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	rv = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return rv;
}

int metrics_start(const char *listen, metrics_render_fn render, void *arg,
		  struct metrics_server **out, char *why, size_t whylen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *colon = listen ? strrchr(listen, ':') : NULL;
	char host[64];
	unsigned long port;
	char *end;
	struct metrics_server *s;

	*out = NULL;
	if (!colon || (size_t)(colon - listen) >= sizeof(host) || colon == listen) {
		set_why(why, whylen, "\"%s\" is not HOST:PORT (e.g. 127.0.0.1:9464)",
			listen ? listen : "");
		return ERR_INVAL;
	}
	memcpy(host, listen, (size_t)(colon - listen));
	host[colon - listen] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || port == 0 || port > 65535) {
		set_why(why, whylen, "\"%s\": the port must be 1..65535", listen);
		return ERR_INVAL;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		set_why(why, whylen, "\"%s\": %s is not an IPv4 address", listen, host);
		return ERR_INVAL;
	}
	sa.sin_port = htons((uint16_t)port);
	s = xcalloc(1, sizeof(*s));
	s->render = render;
	s->arg = arg;
	/* No MHD thread: the daemon's loop drives it (metrics_serve). */
	s->d = MHD_start_daemon(MHD_NO_FLAG, (uint16_t)port, NULL, NULL, answer, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
	if (!s->d) {
		set_why(why, whylen, "cannot listen on %s for metrics (in use?)", listen);
		free(s);
		return ERR_IO;
	}
	*out = s;
	return 0;
}

void metrics_serve(struct metrics_server *s)
{
	if (s)
		MHD_run(s->d);
}

void metrics_stop(struct metrics_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->d);
	free(s);
}
