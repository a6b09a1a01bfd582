/*
 * serve.c - mlctl verbs for serve jobs: endpoints, scale, rollout, rollback,
 * history, and the serve part of `mlctl status`.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "spec.h"
#include "units.h"
#include "util.h"
#include "wire.h"

static uint32_t parse_count(const char *what, const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || s[0] == '-' || v > SPEC_MAX_TASKS)
		die(2, "%s: \"%s\" is not a number from 0 to %d", what, s, SPEC_MAX_TASKS);
	return (uint32_t)v;
}

static const char usage_endpoints[] = "usage: mlctl [-o json] endpoints JOB\n"
				      "The healthy serving replicas of a serve job, one host:port a "
				      "line.\n";

int cmd_endpoints(int argc, char **argv)
{
	cJSON *b, *r, *e;

	verb_help(argc, argv, usage_endpoints);
	if (argc != 2)
		die(2, "endpoints: exactly one JOB is required (see mlctl endpoints --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "job", argv[1]);
	r = call(WIRE_ENDPOINTS, b);
	if (json_out) {
		print_json(r);
	} else {
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r, "endpoints"))
		{
			if (cJSON_IsString(e))
				puts(e->valuestring);
		}
	}
	cJSON_Delete(r);
	return 0;
}

static const char usage_scale[] = "usage: mlctl scale JOB N [--standby K]\n"
				  "Set a serve job's serving replicas to N (and its hot standbys "
				  "to K).\n";

int cmd_scale(int argc, char **argv)
{
	cJSON *b, *r;
	const char *job = NULL, *n = NULL;

	verb_help(argc, argv, usage_scale);
	b = cJSON_CreateObject();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--standby") == 0 && i + 1 < argc)
			cJSON_AddNumberToObject(b, "standby", parse_count("--standby", argv[++i]));
		else if (argv[i][0] == '-')
			die(2, "scale: unknown option %s", argv[i]);
		else if (!job)
			job = argv[i];
		else if (!n)
			n = argv[i];
		else
			die(2, "scale: unexpected argument \"%s\"", argv[i]);
	}
	if (!job || !n)
		die(2, "scale: JOB and N are required (see mlctl scale --help)");
	cJSON_AddStringToObject(b, "job", job);
	cJSON_AddNumberToObject(b, "replicas", parse_count("N", n));
	r = call(WIRE_SCALE, b);
	if (json_out)
		print_json(r);
	else
		printf("job %.0f (%s) scaled: %.0f replicas, %.0f standby\n", num(r, "id"),
		       str(r, "name"), num(r, "replicas"), num(r, "standby"));
	cJSON_Delete(r);
	return 0;
}

static const char usage_rollout[] =
	"usage: mlctl rollout JOB [--image IMAGE] [--env K=V]... [-- CMD [ARG...]]\n"
	"Roll a serve job out to a new version: replicas are replaced one at a time, a\n"
	"new one healthy before an old one stops.  A version that does not get healthy\n"
	"within the job's rollout.deadline is rolled back by itself.\n";

int cmd_rollout(int argc, char **argv)
{
	cJSON *b = cJSON_CreateObject(), *env = NULL, *cmd = NULL, *r;
	const char *job = NULL;

	verb_help(argc, argv, usage_rollout);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--image") == 0 && i + 1 < argc) {
			cJSON_AddStringToObject(b, "image", argv[++i]);
		} else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc) {
			const char *kv = argv[++i], *eq = strchr(kv, '=');
			char key[256];
			if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
				die(2, "--env: \"%s\" is not KEY=VALUE", kv);
			memcpy(key, kv, (size_t)(eq - kv));
			key[eq - kv] = '\0';
			if (!env)
				env = cJSON_AddObjectToObject(b, "env");
			cJSON_DeleteItemFromObjectCaseSensitive(env, key);
			cJSON_AddStringToObject(env, key, eq + 1);
		} else if (strcmp(argv[i], "--") == 0) {
			cmd = cJSON_AddArrayToObject(b, "command");
			for (i++; i < argc; i++)
				cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
			if (cJSON_GetArraySize(cmd) == 0)
				die(2, "rollout: a command is required after --");
		} else if (argv[i][0] == '-') {
			die(2, "rollout: unknown option %s", argv[i]);
		} else if (!job) {
			job = argv[i];
		} else {
			die(2, "rollout: unexpected argument \"%s\"", argv[i]);
		}
	}
	if (!job)
		die(2, "rollout: JOB is required (see mlctl rollout --help)");
	if (!cJSON_GetObjectItemCaseSensitive(b, "image") && !env && !cmd)
		die(2, "rollout: give --image, --env or a command after --");
	cJSON_AddStringToObject(b, "job", job);
	r = call(WIRE_ROLLOUT, b);
	if (json_out)
		print_json(r);
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "unchanged")))
		printf("job %.0f (%s) unchanged: version %.0f has this image, command and env\n",
		       num(r, "id"), str(r, "name"), num(r, "version"));
	else
		printf("job %.0f (%s): rolling out version %.0f\n", num(r, "id"), str(r, "name"),
		       num(r, "version"));
	cJSON_Delete(r);
	return 0;
}

static const char usage_rollback[] = "usage: mlctl rollback JOB [--to VERSION]\n"
				     "Go back to the version before the current one (or VERSION), "
				     "one replica at a time.\n";

int cmd_rollback(int argc, char **argv)
{
	cJSON *b = cJSON_CreateObject(), *r;
	const char *job = NULL;

	verb_help(argc, argv, usage_rollback);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (!*argv[i] || *end || v == 0 || v > UINT32_MAX)
				die(2, "--to: \"%s\" is not a version number", argv[i]);
			cJSON_AddNumberToObject(b, "to", (double)v);
		} else if (argv[i][0] == '-') {
			die(2, "rollback: unknown option %s", argv[i]);
		} else if (!job) {
			job = argv[i];
		} else {
			die(2, "rollback: unexpected argument \"%s\"", argv[i]);
		}
	}
	if (!job)
		die(2, "rollback: JOB is required (see mlctl rollback --help)");
	cJSON_AddStringToObject(b, "job", job);
	r = call(WIRE_ROLLBACK, b);
	if (json_out)
		print_json(r);
	else
		printf("job %.0f (%s): rolling back to version %.0f\n", num(r, "id"),
		       str(r, "name"), num(r, "version"));
	cJSON_Delete(r);
	return 0;
}

static void print_events(const char *title, const cJSON *arr)
{
	const cJSON *e;
	char t[32];

	if (cJSON_GetArraySize(arr) == 0)
		return;
	printf("\n%s:\n", title);
	cJSON_ArrayForEach(e, arr)
	{
		fmt_time((uint64_t)num(e, "at"), t, sizeof(t));
		printf("  %s  %s\n", t, str(e, "what"));
	}
}

static const char usage_history[] = "usage: mlctl [-o json] history JOB\n"
				    "A serve job's versions (when, by which key) and its rollouts, "
				    "rollbacks and scaling.\n";

int cmd_history(int argc, char **argv)
{
	cJSON *b, *r, *sv, *v;
	char t[32];

	verb_help(argc, argv, usage_history);
	if (argc != 2)
		die(2, "history: exactly one JOB is required (see mlctl history --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "job", argv[1]);
	r = call(WIRE_HISTORY, b);
	sv = cJSON_GetObjectItemCaseSensitive(r, "serve");
	if (json_out) {
		print_json(r);
		cJSON_Delete(r);
		return 0;
	}
	printf("%-8s %-24s %-18s %s\n", "VERSION", "CREATED", "BY", "IMAGE");
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(sv, "versions"))
	{
		char ver[24];
		fmt_time((uint64_t)num(v, "at"), t, sizeof(t));
		snprintf(ver, sizeof(ver), "%.0f%s", num(v, "version"),
			 num(v, "version") == num(sv, "version") ? "*" : "");
		printf("%-8s %-24s %-18s %s\n", ver, t, *str(v, "by") ? str(v, "by") : "-",
		       str(v, "image"));
	}
	print_events("history", cJSON_GetObjectItemCaseSensitive(sv, "history"));
	cJSON_Delete(r);
	return 0;
}

void serve_status(const cJSON *j)
{
	const cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "serve"), *t, *e;
	const cJSON *ro = cJSON_GetObjectItemCaseSensitive(sv, "rollout");
	int n = 0;

	printf("serving:  %.0f replicas + %.0f standby, version %.0f\n", num(sv, "replicas"),
	       num(sv, "standby"), num(sv, "version"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ro, "active")))
		printf("rollout:  %s %.0f -> %.0f under way\n",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ro, "automatic")) ? "rollback"
										: "version",
		       num(ro, "from"), num(ro, "to"));
	if (*str(sv, "rollout_result"))
		printf("last rollout: %s\n", str(sv, "rollout_result"));
	printf("endpoints:");
	cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(sv, "endpoints"))
	{
		printf(" %s", cJSON_IsString(e) ? e->valuestring : "?");
		n++;
	}
	printf("%s\n", n ? "" : " none");
	printf("promotions: %.0f, health failures: %.0f\n", num(sv, "npromos"),
	       num(sv, "health_failures"));
	if (*str(sv, "last_scale"))
		printf("autoscale: %s\n", str(sv, "last_scale"));
	putchar('\n');
	printf("%-5s %-8s %-9s %-10s %-3s %-14s %-6s %6s %8s  %s\n", "TASK", "ROLE", "STATE",
	       "HEALTH", "VER", "NODE", "PORT", "CPU%", "MEMORY", "REASON");
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "tasks"))
	{
		char mem[24] = "-", port[16] = "-";
		const char *st = str(t, "state"), *why = str(t, "reason");
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "retire")) &&
		    strcmp(st, "running") != 0)
			continue;
		if (strcmp(st, "running") == 0)
			fmt_size((uint64_t)num(t, "mem_used"), mem, sizeof(mem));
		if (num(t, "port") > 0)
			snprintf(port, sizeof(port), "%.0f", num(t, "port"));
		if (strcmp(str(t, "health"), "unhealthy") == 0 && *str(t, "health_why"))
			why = str(t, "health_why");
		printf("%-5.0f %-8s %-9s %-10s %-3.0f %-14s %-6s %6.1f %8s  %s\n", num(t, "task"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "retire")) ? "retiring"
										 : str(t, "role"),
		       st, str(t, "health"), num(t, "version"), *str(t, "node") ? str(t, "node") : "-",
		       port, num(t, "cpu_pct"), mem, why);
	}
	print_events("promotions", cJSON_GetObjectItemCaseSensitive(sv, "promotions"));
}
