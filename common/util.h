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
/* The same with the file's mode (e.g. 0600 for a secret), set on the
 * temporary file before anything is written to it. */
int file_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode);
/* The same without fsync: readers never see a half-written file, and the
 * content survives the writer's crash, but not the machine's.  For state
 * that dies with the machine anyway (a container's files on its node). */
int file_replace(const char *path, const void *data, size_t len);
/* mkdir -p with the given mode.  0 or ERR_SYS. */
int mkdir_p(const char *path, unsigned mode);
/* Remove a directory tree (like rm -rf).  Missing path is not an error. */
int rm_rf(const char *path);

/* write(2) all of data, retrying on EINTR and short writes.  0 or -1. */
int write_all(int fd, const void *data, size_t len);
/* fsync the folder holding path, so a rename or link in it is durable.
 * 0 or -1. */
int fsync_parent(const char *path);
/* Format a reason into why (when why is not NULL and whylen > 0). */
void set_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Big-endian integers in byte buffers (the wire format). */
static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
	return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

/* Bounded string copy that always NUL-terminates; returns false if cut. */
bool strlcpy_ok(char *dst, const char *src, size_t size);

#endif
