/*
 * top.c - `mlctl top`: nodes (GPU utilization and memory per GPU, CPU,
 * memory) and the busiest jobs, refreshed every second like top(1);
 * `-o json` prints one snapshot.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "units.h"
#include "util.h"
#include "wire.h"

static volatile sig_atomic_t stop;

static void on_int(int sig)
{
	(void)sig;
	stop = 1;
}

static void show(const cJSON *r)
{
	const cJSON *n, *g, *j;
	char a[24], b[24];

	printf("%-16s %-8s %5s %15s  %s\n", "NODE", "STATE", "CPU%", "MEMORY", "GPUS (util% used/total)");
	cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(r, "nodes"))
	{
		const cJSON *util = cJSON_GetObjectItemCaseSensitive(n, "util_gpus");
		fmt_size((uint64_t)num(n, "util_mem_used"), a, sizeof(a));
		fmt_size((uint64_t)num(n, "memory"), b, sizeof(b));
		printf("%-16s %-8s %5.0f %7s/%-7s ", str(n, "name"), str(n, "state"),
		       num(n, "util_cpu_pct"), a, b);
		cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(n, "gpus"))
		{
			const cJSON *u;
			int pct = -1;
			double used = 0;
			cJSON_ArrayForEach(u, util)
			{
				if (num(u, "index") == num(g, "index")) {
					pct = (int)num(u, "util_pct");
					used = num(u, "mem_used");
				}
			}
			fmt_size((uint64_t)used, a, sizeof(a));
			fmt_size((uint64_t)num(g, "memory"), b, sizeof(b));
			if (pct >= 0)
				printf(" %.0f:%d%% %s/%s", num(g, "index"), pct, a, b);
			else
				printf(" %.0f:- -/%s", num(g, "index"), b);
		}
		putchar('\n');
	}
	printf("\n%-6s %-24s %-6s %5s %7s %9s %6s %5s\n", "ID", "JOB", "KIND", "TASKS", "CPU%",
	       "MEMORY", "GPUS", "GPU%");
	cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(r, "jobs"))
	{
		char gu[16] = "-";
		fmt_size((uint64_t)num(j, "mem_used"), a, sizeof(a));
		if (num(j, "gpu_util") >= 0)
			snprintf(gu, sizeof(gu), "%.0f", num(j, "gpu_util"));
		printf("%-6.0f %-24s %-6s %5.0f %7.1f %9s %6.2f %5s\n", num(j, "id"), str(j, "name"),
		       str(j, "kind"), num(j, "running"), num(j, "cpu_pct"), a, num(j, "gpus"), gu);
	}
}

static const char usage_top[] = "usage: mlctl [-o json] top [--jobs N] [--interval 1s] [--once]\n"
				"Nodes and the busiest jobs with what they use, refreshed every\n"
				"interval until Ctrl-C.  -o json or --once: one snapshot.\n";

int cmd_top(int argc, char **argv)
{
	uint64_t interval = 1000;
	double jobs = 20;
	bool once = json_out;

	verb_help(argc, argv, usage_top);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--once") == 0) {
			once = true;
		} else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
			char *end;
			jobs = strtod(argv[++i], &end);
			if (*end || jobs < 1 || jobs > 100000)
				die(2, "--jobs: \"%s\" is not a number from 1 to 100000", argv[i]);
		} else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			if (units_parse_duration(argv[++i], &interval) != 0 || interval < 100)
				die(2, "--interval: \"%s\" is not a duration of at least 100ms",
				    argv[i]);
		} else {
			die(2, "top: unexpected argument \"%s\" (see mlctl top --help)", argv[i]);
		}
	}
	signal(SIGINT, on_int);
	signal(SIGTERM, on_int);
	do {
		cJSON *b = cJSON_CreateObject(), *r;
		cJSON_AddNumberToObject(b, "jobs", jobs);
		r = call(WIRE_TOP, b);
		if (json_out) {
			print_json(r);
		} else {
			if (!once)
				fputs("\033[H\033[2J", stdout); /* home, clear */
			show(r);
		}
		fflush(stdout);
		cJSON_Delete(r);
		if (!once)
			usleep((useconds_t)interval * 1000);
	} while (!once && !stop);
	return 0;
}
