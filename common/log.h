/*
 * log.h - one line per event: "2026-11-25T23:16:27.539Z mlmaster INFO msg".
 *
 * Messages name the ids they concern ("job=3 task=0 node=gpu-07").  The level
 * and the per-subsystem debug flags are process-wide and set once at start-up,
 * before threads exist; log calls themselves are thread-safe (one write(2) per
 * line).
 */
#ifndef MLSCHED_LOG_H
#define MLSCHED_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Debug subsystems, OR-ed into a mask. */
enum log_sub {
	LOG_SUB_SCHED = 1 << 0,
	LOG_SUB_RUNC = 1 << 1,
	LOG_SUB_STORE = 1 << 2,
	LOG_SUB_WIRE = 1 << 3,
	LOG_SUB_ALL = 0xff,
};

/* prog appears on every line; fd is where lines go (2 for stderr). */
void log_init(const char *prog, enum log_level level, int fd);
/* "error", "warn", "info", "debug" -> level.  0 or ERR_INVAL. */
int log_parse_level(const char *s, enum log_level *out);
/* "sched,runc,store,wire" or "all" -> mask.  0 or ERR_INVAL. */
int log_parse_subs(const char *s, unsigned *mask);
void log_set_subs(unsigned mask);
bool log_sub_on(unsigned sub);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
/* Debug lines of one subsystem: printed when the level is debug and the
 * subsystem's flag is set (all flags are set by default). */
#define log_debug(sub, ...)                                                                        \
	do {                                                                                       \
		if (log_sub_on(sub))                                                               \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)

/* Start-up failures only: log at error level and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
