/*
 * util.h - small helpers used everywhere: allocation that aborts on failure,
 * clocks, and whole-file I/O.
 */
#ifndef MLSCHED_UTIL_H
#define MLSCHED_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Allocation: on failure these print a message to stderr and abort(). */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);                       /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Monotonic milliseconds / nanoseconds (CLOCK_MONOTONIC). */
uint64_t now_ms(void);
uint64_t now_ns(void);
/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME). */
uint64_t wall_ms(void);
/* Format wall-clock ms as "2026-11-25T23:16:27.539Z" into buf (>= 32 bytes). */
void fmt_time(uint64_t wall, char *buf, size_t len);

/*
 * Read a whole file.  On success *out is a NUL-terminated buffer the caller
 * frees and *len its length without the NUL.  Files over max bytes give
 * ERR_TOOBIG.  Returns 0 or a negative err.h code (ERR_NOENT, ERR_IO).
 */
int file_read(const char *path, size_t max, char **out, size_t *len);
/* Write data to path atomically (temp file, fsync, rename).  0 or err. */
int file_write_atomic(const char *path, const void *data, size_t len);
/* mkdir -p with the given mode.  0 or ERR_SYS. */
int mkdir_p(const char *path, unsigned mode);
/* Remove a directory tree (like rm -rf).  Missing path is not an error. */
int rm_rf(const char *path);

/* Bounded string copy that always NUL-terminates; returns false if cut. */
bool strlcpy_ok(char *dst, const char *src, size_t size);

#endif
