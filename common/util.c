/*
 * util.c - allocation that aborts, clocks, whole-file I/O and small string
 * helpers.
 */
#include "util.h"
#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Daemons cannot do anything useful without memory: say so and stop. */
static void oom(size_t n)
{
	fprintf(stderr, "mlsched: out of memory allocating %zu bytes\n", n);
	abort();
}

void *xmalloc(size_t n)
{
	/* malloc(0) may return NULL legitimately; ask for one byte instead so
	 * NULL always means failure. */
	void *p = malloc(n ? n : 1);

	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	p = calloc(nmemb, size);
	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		oom(n);
	return q;
}

char *xstrdup(const char *s)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		oom(strlen(s) + 1);
	return d;
}

char *xstrndup(const char *s, size_t n)
{
	char *d;

	if (!s)
		return NULL;
	d = strndup(s, n);
	if (!d)
		oom(n + 1);
	return d;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int rv;

	va_start(ap, fmt);
	rv = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rv < 0)
		oom(0);
	return s;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t now_ms(void)
{
	return clock_ns(CLOCK_MONOTONIC) / 1000000ull;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

uint64_t wall_ms(void)
{
	return clock_ns(CLOCK_REALTIME) / 1000000ull;
}

void fmt_time(uint64_t wall, char *buf, size_t len)
{
	time_t secs = (time_t)(wall / 1000);
	unsigned ms = (unsigned)(wall % 1000);
	struct tm tm;

	if (!buf || len == 0)
		return;
	if (!gmtime_r(&secs, &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

int file_read(const char *path, size_t max, char **out, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, used = 0;
	int fd, rv;

	*out = NULL;
	if (len)
		*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? ERR_NOENT : ERR_IO;

	/* Read until EOF rather than trusting st_size: /proc and pipes report
	 * 0, and a file may grow while we read it. */
	for (;;) {
		ssize_t n;

		if (cap - used < 2) {
			cap = cap ? cap * 2 : 4096;
			/* One byte past max lets us notice an oversized file. */
			if (max < SIZE_MAX - 2 && cap > max + 2)
				cap = max + 2;
			if (cap - used < 2) {
				rv = ERR_TOOBIG;
				goto out;
			}
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + used, cap - used - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rv = ERR_IO;
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			rv = ERR_TOOBIG;
			goto out;
		}
	}
	if (!buf)
		buf = xmalloc(1);
	buf[used] = '\0';
	*out = buf;
	buf = NULL;
	if (len)
		*len = used;
	rv = 0;
out:
	free(buf);
	close(fd);
	return rv;
}

int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A rename is only durable once the directory holding it is on disk. */
int fsync_parent(const char *path)
{
	char *copy = xstrdup(path);
	int fd, rv = 0;

	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rv = -1;
		goto out;
	}
	if (fsync(fd) < 0 && errno != EINVAL)
		rv = -1;
	close(fd);
out:
	free(copy);
	return rv;
}

static int replace_file(const char *path, const void *data, size_t len, bool sync,
			unsigned mode)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd, rv = ERR_IO;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		goto out;
	/* The mode from the start (not after the rename), whatever the
	 * umask: a secret never exists on disk with wider permissions. */
	if (fchmod(fd, mode) < 0 || write_all(fd, data, len) < 0 || (sync && fsync(fd) < 0)) {
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		goto out;
	}
	if (sync && fsync_parent(path) < 0)
		goto out;
	rv = 0;
out:
	free(tmp);
	return rv;
}

int file_write_atomic(const char *path, const void *data, size_t len)
{
	return replace_file(path, data, len, true, 0644);
}

int file_write_atomic_mode(const char *path, const void *data, size_t len, unsigned mode)
{
	return replace_file(path, data, len, true, mode);
}

int file_replace(const char *path, const void *data, size_t len)
{
	return replace_file(path, data, len, false, 0644);
}

int mkdir_p(const char *path, unsigned mode)
{
	char *p = xstrdup(path);
	char *s;
	struct stat st;
	int rv = ERR_SYS;

	if (!*p) {
		errno = ENOENT;
		goto out;
	}
	/* Create each prefix in turn; an existing directory is fine. */
	for (s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, (mode_t)mode) < 0) {
			if (errno != EEXIST)
				goto out;
			if (stat(p, &st) < 0)
				goto out;
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				goto out;
			}
		}
		*s = c;
		if (c == '\0')
			break;
	}
	rv = 0;
out:
	free(p);
	return rv;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_DP || type == FTW_D || type == FTW_DNR)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
}

int rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : ERR_SYS;
	/* FTW_PHYS: a symlink inside the tree is removed, never followed, so
	 * a hostile link cannot make us delete outside the tree. */
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) != 0)
		return ERR_SYS;
	return 0;
}

bool strlcpy_ok(char *dst, const char *src, size_t size)
{
	size_t n;

	/* Not even room for the NUL: nothing can be copied. */
	if (size == 0)
		return false;
	n = strlen(src);
	if (n >= size) {
		memcpy(dst, src, size - 1);
		dst[size - 1] = '\0';
		return false;
	}
	memcpy(dst, src, n + 1);
	return true;
}

void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}
