/*
 * logcap.h - the bytes kept of one task attempt's log (mlagent --log-max).
 *
 * A container writes its output straight into its log file (the shim hands
 * runc the descriptor, opened O_APPEND), so the file cannot be rotated under
 * it: a renamed file would still be the one written.  Instead the head of
 * the file is punched out in place (fallocate PUNCH_HOLE): the blocks are
 * freed, the file keeps its size, and every offset keeps meaning the same
 * byte, so `mlctl logs -f` readers following by offset are not disturbed.
 * Where the kept bytes start is the file's first data (lseek SEEK_DATA); no
 * other record is needed, and it survives an agent restart.
 *
 * The cap is checked on every heartbeat for running tasks and when a task
 * ends, so a log may pass it by what the task writes in one heartbeat
 * interval before it is cut back.  A file system that cannot punch holes
 * gets the log truncated to nothing instead (logged), never left unbounded.
 */
#ifndef MLSCHED_LOGCAP_H
#define MLSCHED_LOGCAP_H

#include <stdint.h>
#include <stddef.h>

#define LOGCAP_MIN (64u * 1024) /* smallest --log-max */

/* Where the kept bytes of the open log fd start (0 when nothing was
 * dropped; size when all was).  size: the file's size. */
uint64_t logcap_start(int fd, uint64_t size);

/*
 * Keep at most max bytes (the newest) of the log at path.  On success sets
 * *dropped to the bytes dropped by this call (0 when it was under the cap)
 * and returns 0; ERR_NOENT when there is no such file; ERR_SYS with why
 * otherwise.  *truncated is set when the file system cannot punch holes and
 * the whole log was truncated instead.
 */
int logcap_trim(const char *path, uint64_t max, uint64_t *dropped, int *truncated, char *why,
		size_t whylen);

struct agent;
/*
 * Apply --log-max to the logs of the tasks running on a (each heartbeat) and
 * to every log file in its logs folder over it (all = true: when a task
 * ended, and at start).  Logs a line the first time an attempt's log is cut.
 */
void logcap_tasks(struct agent *a, int all);

/* The bytes a log file takes on disk, from its stat: its size, or less
 * when its head was punched out. */
uint64_t logcap_usage(uint64_t size, uint64_t blocks512);

#endif
