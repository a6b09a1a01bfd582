/*
 * logcap.c - cap a task log by punching out its head (see logcap.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "err.h"
#include "log.h"
#include "logcap.h"
#include "units.h"
#include "util.h"

uint64_t logcap_start(int fd, uint64_t size)
{
	off_t d = lseek(fd, 0, SEEK_DATA);

	if (d < 0)
		/* ENXIO: no data at all (all of it dropped, or empty). */
		return errno == ENXIO ? size : 0;
	return (uint64_t)d;
}

uint64_t logcap_usage(uint64_t size, uint64_t blocks512)
{
	return blocks512 * 512 < size ? blocks512 * 512 : size;
}

int logcap_trim(const char *path, uint64_t max, uint64_t *dropped, int *truncated, char *why,
		size_t whylen)
{
	struct stat st;
	uint64_t size, start, cut, blk;
	int fd, rv = 0;

	*dropped = 0;
	*truncated = 0;
	if ((fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return ERR_NOENT;
		set_why(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return ERR_SYS;
	}
	if (fstat(fd, &st) != 0) {
		set_why(why, whylen, "cannot stat %s: %s", path, strerror(errno));
		rv = ERR_SYS;
		goto out;
	}
	size = (uint64_t)st.st_size;
	start = logcap_start(fd, size);
	if (size - start <= max)
		goto out;
	/* Whole blocks only: a partly punched block would read as NULs. */
	blk = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
	cut = (size - max + blk - 1) / blk * blk;
	if (cut > size)
		cut = size / blk * blk;
	if (cut <= start)
		goto out;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)cut) == 0) {
		*dropped = cut - start;
		goto out;
	}
	if (errno != EOPNOTSUPP && errno != ENOSYS) {
		set_why(why, whylen, "cannot drop the head of %s: %s", path, strerror(errno));
		rv = ERR_SYS;
		goto out;
	}
	if (ftruncate(fd, 0) != 0) {
		set_why(why, whylen, "cannot truncate %s: %s", path, strerror(errno));
		rv = ERR_SYS;
		goto out;
	}
	*dropped = size - start;
	*truncated = 1;
out:
	close(fd);
	return rv;
}

/* Cut one log file when it takes more than the cap on disk. */
static void cap_file(struct agent *a, const char *path, const char *what, bool *said)
{
	struct stat st;
	uint64_t dropped;
	int truncated;
	char why[512], cap[32];

	if (stat(path, &st) != 0 ||
	    logcap_usage((uint64_t)st.st_size, (uint64_t)st.st_blocks) <= a->cfg.log_max)
		return;
	if (logcap_trim(path, a->cfg.log_max, &dropped, &truncated, why, sizeof(why)) != 0) {
		log_warn("%s: log over --log-max: %s", what, why);
		return;
	}
	if (!dropped || (said && *said && !truncated))
		return;
	units_format_size(a->cfg.log_max, cap, sizeof(cap));
	if (truncated)
		log_warn("%s: log over --log-max %s and this file system cannot drop its head: "
			 "truncated (%" PRIu64 " bytes dropped)",
			 what, cap, dropped);
	else
		log_info("%s: log over --log-max %s: its oldest bytes are dropped from now on "
			 "(%" PRIu64 " so far)",
			 what, cap, dropped);
	if (said)
		*said = true;
}

void logcap_tasks(struct agent *a, int all)
{
	char what[96];

	for (struct atask *t = a->tasks; t; t = t->next) {
		char *p = task_log_path(a, t->job, t->idx, t->attempt);
		snprintf(what, sizeof(what), "job=%" PRIu64 " task=%u attempt=%u", t->job, t->idx,
			 t->attempt);
		cap_file(a, p, what, &t->log_capped);
		free(p);
	}
	if (all) {
		DIR *d = opendir(a->logs_dir);
		struct dirent *de;
		size_t n;
		while (d && (de = readdir(d))) {
			char *p;
			n = strlen(de->d_name);
			if (n < 5 || strcmp(de->d_name + n - 4, ".log") != 0)
				continue;
			p = xasprintf("%s/%s", a->logs_dir, de->d_name);
			snprintf(what, sizeof(what), "log %.80s", de->d_name);
			cap_file(a, p, what, NULL);
			free(p);
		}
		if (d)
			closedir(d);
	}
}
