/*
 * queues.c - `mlctl queues`: each team queue's quota, weight, borrowing,
 * GPUs in use and borrowed, pending jobs and fair-share usage (the master's
 * --queues; README, Team queues).
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "wire.h"

static const char usage_queues[] =
	"usage: mlctl [-o json] queues\n"
	"Team queues: QUOTA is the queue's GPUs, IN USE what its running jobs hold,\n"
	"BORROWED the part beyond its quota, GPU-HOURS its recent use (decaying with\n"
	"the half-life), SHARE that divided by WEIGHT (lower goes first).\n";

int cmd_queues(int argc, char **argv)
{
	cJSON *r;
	const cJSON *q;

	verb_help(argc, argv, usage_queues);
	if (argc != 1)
		die(2, "queues: no arguments expected (see mlctl queues --help)");
	r = call(WIRE_QUEUES, cJSON_CreateObject());
	if (json_out) {
		print_json(r);
		cJSON_Delete(r);
		return 0;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "configured"))) {
		printf("no queues: the master runs without --queues\n");
		cJSON_Delete(r);
		return 0;
	}
	printf("%-20s %6s %6s %-6s %7s %8s %7s %7s %10s %10s\n", "QUEUE", "QUOTA", "WEIGHT",
	       "BORROW", "IN USE", "BORROWED", "RUNNING", "PENDING", "GPU-HOURS", "SHARE");
	cJSON_ArrayForEach(q, cJSON_GetObjectItemCaseSensitive(r, "queues"))
	{
		printf("%-20s %6.0f %6g %-6s %7g %8g %7.0f %7.0f %10.4f %10.4f\n", str(q, "name"),
		       num(q, "gpus"), num(q, "weight"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(q, "borrow")) ? "yes" : "no",
		       num(q, "gpus_in_use"), num(q, "borrowed"), num(q, "running"),
		       num(q, "pending"), num(q, "gpu_hours"), num(q, "fair_share"));
	}
	printf("\nfair-share half-life: %.0f s\n", num(r, "half_life_ms") / 1000.0);
	cJSON_Delete(r);
	return 0;
}
