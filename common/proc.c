/*
 * proc.c - see proc.h.
 */
#include "proc.h"

#include <signal.h>

int proc_spawnattr(posix_spawnattr_t *attr, bool own_group)
{
	static const int dfl_sigs[] = {SIGCHLD, SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
	sigset_t none, dfl;
	int e;

	if ((e = posix_spawnattr_init(attr)) != 0)
		return e;
	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < sizeof(dfl_sigs) / sizeof(dfl_sigs[0]); i++)
		sigaddset(&dfl, dfl_sigs[i]);
	if ((e = posix_spawnattr_setsigmask(attr, &none)) != 0 ||
	    (e = posix_spawnattr_setsigdefault(attr, &dfl)) != 0 ||
	    (own_group && (e = posix_spawnattr_setpgroup(attr, 0)) != 0))
		return e;
	return posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						      (own_group ? POSIX_SPAWN_SETPGROUP : 0));
}
