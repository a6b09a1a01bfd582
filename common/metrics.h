/*
 * metrics.h - Prometheus text exposition over HTTP, for mlmaster and
 * mlagent (--metrics-listen HOST:PORT).
 *
 * The HTTP server is libmicrohttpd, run without threads of its own: the
 * daemon's loop calls metrics_serve() every turn, which accepts and answers
 * whatever is waiting (MHD_run, never blocking) and calls the daemon's
 * render callback on that same thread, so rendering reads the daemon's state
 * without a lock.  A scrape therefore waits at most one loop turn.
 *
 * struct metrics_buf collects the text; histograms are fixed-bucket
 * (seconds).
 */
#ifndef MLSCHED_METRICS_H
#define MLSCHED_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics_server;

struct metrics_buf {
	char *s;
	size_t len, cap;
};

/* Append printf-style text. */
void metrics_printf(struct metrics_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n". */
void metrics_head(struct metrics_buf *b, const char *name, const char *type, const char *help);

#define METRICS_BUCKETS 12
extern const double metrics_bounds[METRICS_BUCKETS - 1]; /* seconds; the last is +Inf */

struct metrics_histo {
	uint64_t count;
	double sum;
	uint64_t buckets[METRICS_BUCKETS]; /* not cumulative */
};

void metrics_observe(struct metrics_histo *h, double seconds);
/* The series name_bucket{le=...}, name_sum, name_count (with HELP/TYPE). */
void metrics_histo_write(struct metrics_buf *b, const char *name, const char *help,
			 const struct metrics_histo *h);

/* Called for each scrape of /metrics: fill b. */
typedef void (*metrics_render_fn)(struct metrics_buf *b, void *arg);

/* Listen on "HOST:PORT" (an IPv4 address or localhost).  0, or an error
 * with why.  *out is freed by metrics_stop. */
int metrics_start(const char *listen, metrics_render_fn render, void *arg,
		  struct metrics_server **out, char *why, size_t whylen);
/* Answer what is waiting; never blocks.  NULL is fine. */
void metrics_serve(struct metrics_server *s);
void metrics_stop(struct metrics_server *s); /* NULL is fine */

#endif
