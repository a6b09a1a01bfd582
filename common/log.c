/*
 * log.c - one line per event, one write(2) per line.
 *
 * The line is built in a stack buffer and written with a single write(2), so
 * lines from different threads never interleave (for pipes and O_APPEND files
 * up to PIPE_BUF bytes, which LOG_LINE_MAX stays within).  The settings are
 * plain globals: they are set once at start-up before threads exist.
 */
#include "log.h"
#include "err.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096
#define LOG_PROG_MAX 32

static char log_prog[LOG_PROG_MAX] = "mlsched";
static enum log_level log_level = LOG_LVL_INFO;
static int log_fd = 2;
static unsigned log_subs = LOG_SUB_ALL;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "ERROR",
	[LOG_LVL_WARN] = "WARN",
	[LOG_LVL_INFO] = "INFO",
	[LOG_LVL_DEBUG] = "DEBUG",
};

static const struct {
	const char *name;
	unsigned bit;
} sub_names[] = {
	{"sched", LOG_SUB_SCHED},
	{"runc", LOG_SUB_RUNC},
	{"store", LOG_SUB_STORE},
	{"wire", LOG_SUB_WIRE},
	{"all", LOG_SUB_ALL},
};

void log_init(const char *prog, enum log_level level, int fd)
{
	if (prog && *prog)
		strlcpy_ok(log_prog, prog, sizeof(log_prog));
	if (level >= LOG_LVL_ERROR && level <= LOG_LVL_DEBUG)
		log_level = level;
	if (fd >= 0)
		log_fd = fd;
}

int log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{"error", LOG_LVL_ERROR}, {"warn", LOG_LVL_WARN},   {"warning", LOG_LVL_WARN},
		{"info", LOG_LVL_INFO},   {"debug", LOG_LVL_DEBUG},
	};

	if (!s)
		return ERR_INVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return 0;
		}
	}
	return ERR_INVAL;
}

int log_parse_subs(const char *s, unsigned *mask)
{
	unsigned m = 0;
	const char *p = s;

	if (!s || !*s)
		return ERR_INVAL;
	if (strcasecmp(s, "none") == 0) {
		*mask = 0;
		return 0;
	}
	for (;;) {
		size_t n = strcspn(p, ",");
		size_t i;

		for (i = 0; i < sizeof(sub_names) / sizeof(sub_names[0]); i++) {
			if (strlen(sub_names[i].name) == n &&
			    strncasecmp(p, sub_names[i].name, n) == 0)
				break;
		}
		if (i == sizeof(sub_names) / sizeof(sub_names[0]))
			return ERR_INVAL; /* unknown name, or an empty item */
		m |= sub_names[i].bit;
		if (p[n] == '\0')
			break;
		p += n + 1;
	}
	*mask = m;
	return 0;
}

void log_set_subs(unsigned mask)
{
	log_subs = mask;
}

bool log_sub_on(unsigned sub)
{
	return (log_subs & sub) != 0;
}

static void log_vline(enum log_level level, const char *fmt, va_list ap)
{
	static const char cut[] = "...";
	char line[LOG_LINE_MAX];
	char ts[32];
	size_t off, room;
	int n, saved = errno; /* callers often log and then look at errno */

	if (level < LOG_LVL_ERROR || level > LOG_LVL_DEBUG)
		level = LOG_LVL_ERROR;
	fmt_time(wall_ms(), ts, sizeof(ts));
	n = snprintf(line, sizeof(line), "%s %s %s ", ts, log_prog, level_names[level]);
	off = n > 0 ? (size_t)n : 0;
	/* Keep one byte for the newline that ends the line. */
	room = sizeof(line) - 1 - off;
	n = vsnprintf(line + off, room + 1, fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > room) {
		/* Cut long messages visibly rather than splitting them into
		 * lines that would interleave with other threads'. */
		off = sizeof(line) - 1;
		memcpy(line + off - (sizeof(cut) - 1), cut, sizeof(cut) - 1);
	} else {
		off += (size_t)n;
	}
	/* A message's own trailing newlines would leave empty lines. */
	while (off > 0 && line[off - 1] == '\n')
		off--;
	line[off++] = '\n';

	while (write(log_fd, line, off) < 0 && errno == EINTR)
		;
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_vline(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(LOG_LVL_ERROR, fmt, ap);
	va_end(ap);
	exit(1);
}
