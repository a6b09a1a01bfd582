/*
 * shim_bin.c - mlagent-shim, the process that parents one container (see
 * shim.c).  The agent starts one per task and each lives as long as its
 * container, so with fifty containers there are fifty of them: this binary
 * links only what shim_main() needs (libc and cJSON), not the agent's nng,
 * libsodium, libmicrohttpd and their TLS stacks, whose relocated pages cost
 * every process that maps them.  Usage: mlagent-shim shim DIR (the same
 * argv layout as "mlagent shim DIR", which the agent still accepts, so that
 * shims of either kind are recognized when an agent takes them over).
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "shim") == 0)
		return shim_main(argv[2]);
	fprintf(stderr, "usage: mlagent-shim shim TASK_DIR (started by mlagent, one per task)\n");
	return 2;
}
