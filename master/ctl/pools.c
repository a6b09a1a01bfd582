/*
 * pools.c - mlctl pools [NAME]: node pools, what they cost, what the master
 * provisioned and released, and every hook run (master/pools.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "wire.h"

static const char usage_pools[] =
	"usage: mlctl [-o json] pools [NAME]\n"
	"Node pools (mlmaster --pools FILE): nodes ready, booting and releasing,\n"
	"GPUs used and free, what the pool costs per hour now, the last provision\n"
	"and release with their reasons.  With NAME: that pool's nodes and its\n"
	"hook runs (exit code and the end of stderr).\n";

static void print_hooks(const cJSON *p, int max)
{
	const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(p, "hooks"), *h;
	int n = cJSON_GetArraySize(hooks), i = 0;

	if (n == 0)
		return;
	printf("  hooks (oldest first):\n");
	cJSON_ArrayForEach(h, hooks)
	{
		char age[32], code[32];

		if (i++ < n - max)
			continue;
		fmt_age((uint64_t)num(h, "started"), age, sizeof(age));
		if (num(h, "finished") == 0)
			snprintf(code, sizeof(code), "running");
		else if (num(h, "signal") > 0)
			snprintf(code, sizeof(code), "signal %.0f", num(h, "signal"));
		else if (num(h, "exit_code") < 0)
			snprintf(code, sizeof(code), "unknown");
		else if (0)
			snprintf(code, sizeof(code), "signal %.0f", num(h, "signal"));
		else
			snprintf(code, sizeof(code), "exit %.0f", num(h, "exit_code"));
		printf("    %-9s %-16s %-9s %6s ago  %s\n", str(h, "action"), str(h, "node"), code,
		       age, str(h, "reason"));
		if (*str(h, "stderr")) {
			/* The tail, indented, at most its last 3 lines. */
			const char *s = str(h, "stderr"), *e = s + strlen(s);
			int lines = 0;
			while (e > s && lines < 3)
				if (*--e == '\n')
					lines++;
			if (*e == '\n')
				e++;
			for (const char *l = e; *l;) {
				const char *nl = strchr(l, '\n');
				int len = nl ? (int)(nl - l) : (int)strlen(l);
				printf("      stderr: %.*s\n", len, l);
				l = nl ? nl + 1 : l + len;
			}
		}
	}
}

static void print_pool(const cJSON *p, bool detail)
{
	const cJSON *n;
	char age[32];

	if (*str(p, "last_provision")) {
		fmt_age((uint64_t)num(p, "last_provision_at"), age, sizeof(age));
		printf("  last provision %s ago: %s\n", age, str(p, "last_provision"));
	}
	if (*str(p, "last_release")) {
		fmt_age((uint64_t)num(p, "last_release_at"), age, sizeof(age));
		printf("  last release %s ago: %s\n", age, str(p, "last_release"));
	}
	if (num(p, "failures") > 0)
		printf("  %.0f failed provision(s) in a row: backing off\n", num(p, "failures"));
	if (!detail) {
		print_hooks(p, 3);
		return;
	}
	printf("  nodes:\n");
	cJSON_ArrayForEach(n, cJSON_GetObjectItemCaseSensitive(p, "nodes"))
		printf("    %-20s %-10s %3.0f GPUs %3.0f tasks%s\n", str(n, "name"), str(n, "state"),
		       num(n, "gpus"), num(n, "tasks"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "provisioned"))
			       ? "  (provisioned)"
			       : "");
	print_hooks(p, 1000);
}

int cmd_pools(int argc, char **argv)
{
	cJSON *body = cJSON_CreateObject(), *r, *ps, *p;
	const char *name = NULL;

	verb_help(argc, argv, usage_pools);
	if (argc > 2)
		die(2, "pools: unexpected argument \"%s\"", argv[2]);
	if (argc == 2) {
		name = argv[1];
		cJSON_AddStringToObject(body, "pool", name);
	}
	r = call(WIRE_POOLS, body);
	ps = cJSON_GetObjectItemCaseSensitive(r, name ? "pool" : "pools");
	if (json_out) {
		print_json(ps);
		cJSON_Delete(r);
		return 0;
	}
	if (name) {
		cJSON *a = cJSON_CreateArray();
		cJSON_AddItemToArray(a, cJSON_Duplicate(ps, 1));
		cJSON_DeleteItemFromObjectCaseSensitive(r, "pool");
		cJSON_AddItemToObject(r, "pool", a);
		ps = a;
	}
	printf("%-12s %5s %7s %9s %9s %9s %8s %10s\n", "POOL", "READY", "BOOTING", "RELEASING",
	       "GPUS-USED", "GPUS-FREE", "COST/GPU", "COST/HOUR");
	cJSON_ArrayForEach(p, ps)
	{
		char lim[32] = "";
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "provisioned")))
			snprintf(lim, sizeof(lim), "  (min %.0f, max %.0f, %s)", num(p, "min"),
				 num(p, "max"),
				 str(cJSON_GetObjectItemCaseSensitive(p, "template"), "gpus"));
		printf("%-12s %5.0f %7.0f %9.0f %9g %9g %8.2f %10.2f%s\n", str(p, "name"),
		       num(p, "ready"), num(p, "booting"), num(p, "releasing"), num(p, "gpus_used"),
		       num(p, "gpus_free"), num(p, "cost_per_gpu_hour"), num(p, "cost_per_hour"), lim);
		print_pool(p, name != NULL);
	}
	cJSON_Delete(r);
	return 0;
}
