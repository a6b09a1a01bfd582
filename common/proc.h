/*
 * proc.h - the clean start of a child process (posix_spawn attributes).
 * Apart from util.h because <spawn.h> pulls in <sched.h>, which a file
 * built with -I master would find as master/sched.h.
 */
#ifndef MLSCHED_PROC_H
#define MLSCHED_PROC_H

#include <spawn.h>
#include <stdbool.h>

/* Initialise attr for a child that starts with no signal blocked and the
 * default disposition of the signals our daemons block or handle (SIGCHLD,
 * SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT); with own_group, in a process
 * group of its own (so that its whole tree can be signalled).  The caller
 * destroys attr (also on failure).  0 or an errno value. */
int proc_spawnattr(posix_spawnattr_t *attr, bool own_group);

#endif
