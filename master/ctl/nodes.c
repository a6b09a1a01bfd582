/*
 * nodes.c - mlctl nodes remove NODE: take a node out for good (its agent
 * key is revoked, its work moves elsewhere).
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "wire.h"

static const char usage_remove[] =
	"usage: mlctl nodes remove NODE\n"
	"Revoke NODE's agent key and move its tasks elsewhere, as when a node is lost.\n"
	"The agent is refused from its next message.  The name may join again only\n"
	"with a new agent key (delete agent.key in the agent's --state-dir) and a\n"
	"valid join token; rotate the token (mlmaster token --rotate) when the host\n"
	"may be compromised.\n";

int cmd_nodes_remove(int argc, char **argv)
{
	cJSON *b, *r;
	bool already = false, insecure = false;

	verb_help(argc, argv, usage_remove);
	if (argc != 2 || argv[1][0] == '-')
		die(2, "nodes remove: exactly one NODE is required (see mlctl nodes remove --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "node", argv[1]);
	r = call(WIRE_NODE_REMOVE, b);
	if (json_out) {
		print_json(r);
		cJSON_Delete(r);
		return 0;
	}
	wire_get_bool(r, "already", &already);
	wire_get_bool(r, "insecure", &insecure);
	if (already)
		printf("node %s was removed already\n", str(r, "node"));
	else
		printf("node %s removed: its agent key is revoked; %.0f task%s moved as for a "
		       "lost node\n",
		       str(r, "node"), num(r, "tasks_moved"), num(r, "tasks_moved") == 1 ? "" : "s");
	if (insecure && !already)
		printf("note: this master runs --insecure and has no agent keys: a running agent "
		       "named %s registers again\n",
		       str(r, "node"));
	cJSON_Delete(r);
	return 0;
}
