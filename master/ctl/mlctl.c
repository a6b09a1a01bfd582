/*
 * mlctl - the user's command line: submit, run, ls, status, logs, cancel,
 * nodes.  Talks to mlmaster over nng req/rep with wire frames.
 *
 * Exit codes: 0 success, 1 the master refused or failed (its message is
 * printed), 2 bad usage or input (a message says what), 3 no master answered.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "err.h"
#include "net.h"
#include "seal.h"
#include "spec.h"
#include "units.h"
#include "util.h"
#include "wire.h"
#include "ctl.h"

#define DEFAULT_MASTER "tcp://127.0.0.1:7070"

static const char *master_url;
bool json_out;
static nng_socket sock;
static bool connected;
static int timeout_ms = 10000;
static const char *key_path;
static struct seal_ctx *seal;

#define DEFAULT_KEY "/var/lib/mlsched/master/admin.key"


/*
 * Seal requests when an admin key is at hand: --key, else $MLSCHED_KEY,
 * else the local master's admin key.  The master's public key is read from
 * master.pub beside the key file (mlmaster init writes both).  Without a
 * key, requests go in the clear, which only an --insecure master accepts.
 */
static void setup_key(void)
{
	struct seal_key k;
	uint8_t mpk[SEAL_PK_LEN];
	char why[256], *pub, *dir, *text;
	size_t len;

	if (seal)
		return; /* once per process: a retry or a move to another master reuses it */
	if (!key_path)
		key_path = getenv("MLSCHED_KEY");
	if (!key_path || !*key_path) {
		if (access(DEFAULT_KEY, R_OK) != 0)
			return;
		key_path = DEFAULT_KEY;
	}
	if (seal_key_load(key_path, &k, why, sizeof(why)) != 0)
		die(2, "%s", why);
	dir = xstrdup(key_path);
	if (strrchr(dir, '/'))
		*strrchr(dir, '/') = '\0';
	else
		strcpy(dir, ".");
	pub = xasprintf("%s/master.pub", dir);
	if (file_read(pub, 4096, &text, &len) != 0)
		die(2, "%s: cannot read the master's public key (it sits beside the admin key)",
		    pub);
	text[strcspn(text, "\r\n")] = '\0';
	if (seal_pk_parse(text, mpk) != 0)
		die(2, "%s: not a public key", pub);
	seal = seal_ctx_new(&k);
	sodium_memzero(&k, sizeof(k));
	net_seal(seal, true);
	net_peer_key(mpk);
	free(text);
	free(pub);
	free(dir);
}

static const char usage_main[] =
	"usage: mlctl [--master URL] [--key FILE] [--timeout 10s] [-o json] VERB [ARGS]\n"
	"\n"
	"verbs:\n"
	"  run [--gpus N] [--memory 8G] [--cpus 2] [--name X] [--kind K] [--wait]\n"
	"      IMAGE -- CMD...     run a command in a container\n"
	"  submit [--wait] job.yaml submit a job spec\n"
	"  ls                      list jobs\n"
	"  status JOB              show a job and its tasks\n"
	"  logs [-f] JOB[/TASK]    print a task's output (-f: follow to the end)\n"
	"  cancel JOB              stop a job's tasks\n"
	"  nodes                   list agents and their resources\n"
	"  nodes remove NODE       revoke NODE's agent key, move its tasks away\n"
	"  drain [--evict] NODE    no new tasks on NODE (--evict: requeue its tasks)\n"
	"  uncordon NODE           let NODE take tasks again\n"
	"  endpoints JOB           a serve job's healthy serving host:port list\n"
	"  scale JOB N [--standby K]  set a serve job's replicas (and standbys)\n"
	"  rollout JOB [--image X] [--env K=V]... [-- CMD...]  a new version, one replica at a time\n"
	"  rollback JOB [--to V]   back to the previous (or a given) version\n"
	"  history JOB             a serve job's versions, rollouts and scaling\n"
	"  top                     nodes and the busiest jobs, live (-o json: once)\n"
	"  pools [NAME]            node pools: nodes, GPUs, cost, bursts and hook runs\n"
	"  queues                  team queues: quotas, GPUs in use and borrowed, fair share\n"
	"\n"
	"JOB is a job id or name.  The master is --master, else $MLSCHED_MASTER, else\n"
	DEFAULT_MASTER ".  Requests are sealed with the admin key --key, else\n"
	"$MLSCHED_KEY, else " DEFAULT_KEY " when readable\n"
	"(master.pub must sit beside it).  `mlctl VERB --help` describes one verb.\n";

void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("mlctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (connected)
		nng_close(sock);
	exit(code);
}

/*
 * --master may list several masters (HA): "tcp://a:7070,tcp://b:7070".  A
 * request goes to the current one; a follower answers ERR_NOTLEADER with the
 * leader's URL and the request goes there; a master that does not answer
 * within its share of --timeout is skipped for the next in the list.
 */
#define MAX_MASTERS 16
static char *masters[MAX_MASTERS];
static size_t nmasters, cur_master;
static char *leader_url; /* a leader named by a follower, not in the list */

static const char *current_url(void)
{
	return leader_url ? leader_url : masters[cur_master];
}

static void split_masters(void)
{
	char *list = xstrdup(master_url), *save = NULL, *tok;

	for (tok = strtok_r(list, ",", &save); tok && nmasters < MAX_MASTERS;
	     tok = strtok_r(NULL, ",", &save))
		if (*tok)
			masters[nmasters++] = xstrdup(tok);
	free(list);
	if (nmasters == 0)
		die(2, "--master: no URL in \"%s\"", master_url);
}

static void disconnect(void)
{
	if (connected)
		nng_close(sock);
	connected = false;
}

/* Send a request and return the OK body (caller deletes); exits on errors. */
/* Wait and ask again when the master says this client is over its rate
 * (mlmaster --rate-limit), instead of failing: set by commands that make
 * many requests in a row (logs). */
static bool retry_busy;

cJSON *call(uint16_t type, cJSON *body)
{
	struct wire_hdr h;
	cJSON *r = NULL;
	char why[256];
	uint64_t deadline;
	int rv, per_try, hops = 0;

	if (!nmasters)
		split_masters();
	/* With several masters, one that does not answer must not take the
	 * whole --timeout. */
	per_try = nmasters > 1 && timeout_ms > 2000 ? 2000 : timeout_ms;
	deadline = now_ms() + (uint64_t)timeout_ms * (nmasters > 1 ? 2 : 1);
	for (;;) {
		if (!connected) {
			setup_key();
			if (net_dial_req(current_url(), per_try, &sock, why, sizeof(why)) != 0)
				die(2, "%s", why);
			connected = true;
		}
		r = NULL;
		rv = net_call(sock, type, 0, 0, body, &h, &r, why, sizeof(why));
		if (rv == ERR_TIMEDOUT && nmasters > 1 && now_ms() < deadline) {
			disconnect();
			free(leader_url);
			leader_url = NULL;
			cur_master = (cur_master + 1) % nmasters;
			continue;
		}
		if (rv == ERR_TIMEDOUT)
			die(3, "no answer from the master at %s (is mlmaster running?)",
			    current_url());
		if (rv == ERR_TOOBIG)
			die(1, "the %s request is over the limit of %u bytes a message "
			       "(WIRE_MAX_BODY)",
			    wire_type_str(type), WIRE_MAX_BODY);
		if (rv != 0)
			die(3, "talking to %s: %s", current_url(), why);
		if (h.type == WIRE_ERROR) {
			const char *msg = "unknown error", *lead = NULL;
			int64_t code = 0;
			wire_get_int(r, "code", INT32_MIN, INT32_MAX, &code);
			wire_get_str(r, "message", WIRE_MAX_STR, &msg);
			if (code == ERR_BUSY && retry_busy && now_ms() < deadline) {
				cJSON_Delete(r);
				usleep(50000);
				continue;
			}
			if (code == ERR_NOTLEADER && ++hops <= (int)nmasters + 2 &&
			    now_ms() < deadline) {
				/* A follower: go to the leader it names, or try
				 * the next master while an election is on. */
				disconnect();
				free(leader_url);
				leader_url = NULL;
				bool named = wire_get_str(r, "leader", 1024, &lead) == 0 && *lead;
				if (named) {
					/* One of ours: make it the current one, so
					 * that the next after it is right. */
					size_t i;
					for (i = 0; i < nmasters && strcmp(masters[i], lead); i++)
						;
					if (i < nmasters)
						cur_master = i;
					else
						leader_url = xstrdup(lead);
				} else {
					cur_master = (cur_master + 1) % nmasters;
				}
				cJSON_Delete(r);
				if (!named)
					usleep(100000); /* no leader yet */
				continue;
			}
			fprintf(stderr, "mlctl: %s\n", msg);
			cJSON_Delete(r);
			disconnect();
			exit(1);
		}
		break;
	}
	cJSON_Delete(body);
	if (h.type != WIRE_OK)
		die(3, "unexpected %s reply", wire_type_str(h.type));
	return r;
}

void print_json(const cJSON *o)
{
	char *s = cJSON_Print(o);
	puts(s);
	free(s);
}

const char *str(const cJSON *o, const char *k)
{
	const char *s = "";
	wire_get_str(o, k, WIRE_MAX_STR, &s);
	return s;
}

double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* Sizes for people: "23.5G", "512M". */
void fmt_size(uint64_t b, char *buf, size_t len)
{
	const char *u = "KMGTP";
	double v = (double)b;
	int i = -1;

	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, b);
	else
		snprintf(buf, len, v < 10 && v != (int)v ? "%.1f%c" : "%.0f%c", v, u[i]);
}

void fmt_age(uint64_t wall, char *buf, size_t len)
{
	uint64_t now = wall_ms();
	if (!wall || wall > now)
		snprintf(buf, len, "-");
	else if (now - wall < 1000)
		snprintf(buf, len, "0s");
	else
		units_format_duration((now - wall) / 1000 * 1000, buf, len);
}

/* --help on a verb: print its usage and exit 0; other flags parsed by getopt. */
void verb_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			exit(0);
		}
}

/* ---- status polling for --wait ---- */

cJSON *get_job(const char *ref)
{
	cJSON *b = cJSON_CreateObject(), *r, *j;

	cJSON_AddStringToObject(b, "job", ref);
	r = call(WIRE_STATUS, b);
	j = cJSON_DetachItemFromObjectCaseSensitive(r, "job");
	cJSON_Delete(r);
	if (!j)
		die(3, "malformed status reply");
	return j;
}

/* Wait until every task of the job has started (or the job ended).  Polls
 * quickly at first, then backs off; says once why a job is still pending. */
static int wait_started(const char *ref)
{
	useconds_t delay = 2000;
	uint64_t t0 = now_ms();
	bool told = false;

	for (;;) {
		cJSON *j = get_job(ref);
		const char *st = str(j, "state");
		int rc = -1;
		if (!told && !json_out && strcmp(st, "pending") == 0 && now_ms() - t0 > 1000 &&
		    *str(j, "reason")) {
			fprintf(stderr, "mlctl: job %s pending: %s\n", ref, str(j, "reason"));
			told = true;
		}
		if (strcmp(st, "running") == 0 || strcmp(st, "succeeded") == 0)
			rc = 0;
		else if (strcmp(st, "failed") == 0 || strcmp(st, "cancelled") == 0) {
			fprintf(stderr, "mlctl: job %s %s: %s\n", ref, st, str(j, "reason"));
			rc = 1;
		}
		cJSON_Delete(j);
		if (rc >= 0)
			return rc;
		usleep(delay);
		/* Containers start in tens of ms: poll every 2 ms for the
		 * first 200 ms, then back off to 200 ms. */
		if (now_ms() - t0 > 200 && delay < 200000)
			delay += delay / 4;
	}
}

static int submit_spec(struct spec *s, bool wait)
{
	cJSON *b = cJSON_CreateObject(), *r;
	char id[32];

	uint8_t rnd[16];
	char rid[33];

	cJSON_AddItemToObject(b, "spec", spec_to_json(s));
	/* The same request sent again (an HA master died before it
	 * answered) must not make a second job. */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(rid, sizeof(rid), rnd, sizeof(rnd));
	cJSON_AddStringToObject(b, "request_id", rid);
	r = call(WIRE_SUBMIT, b);
	if (json_out)
		print_json(r);
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "unchanged")))
		printf("job %.0f (%s) unchanged: version %.0f has this image, command and env\n",
		       num(r, "id"), str(r, "name"), num(r, "version"));
	else if (cJSON_GetObjectItemCaseSensitive(r, "version"))
		printf("job %.0f (%s): version %.0f, rolling out\n", num(r, "id"), str(r, "name"),
		       num(r, "version"));
	else
		printf("job %.0f (%s) submitted\n", num(r, "id"), str(r, "name"));
	snprintf(id, sizeof(id), "%.0f", num(r, "id"));
	cJSON_Delete(r);
	fflush(stdout);
	return wait ? wait_started(id) : 0;
}

/* ---- verbs ---- */

static const char usage_run[] =
	"usage: mlctl run [OPTIONS] IMAGE -- CMD [ARG...]\n"
	"Run CMD in a container of IMAGE (a rootfs folder on the nodes, or oci:PATH[:TAG], an\n"
	"OCI image layout there).\n"
	"  --gpus N        GPUs (0.25 for a share of one)     --memory SIZE  memory (128M)\n"
	"  --cpus N        CPUs (0.1)                          --name NAME    job name\n"
	"  --kind K        train or batch (batch)              --workers N    train workers\n"
	"  --priority P    -1000..1000                         --env K=V      (repeatable)\n"
	"  --constraint C  node label constraint: zone=a, pool!=cloud, gpu in (a100,h100)\n"
	"  --policy P      placement policy (binpack, spread, ...)\n"
	"  --queue Q       team queue (mlctl queues lists them)\n"
	"  --wait          return once every task runs\n";

static int cmd_run(int argc, char **argv)
{
	struct spec *s = xcalloc(1, sizeof(*s));
	static const struct option lo[] = {
		{"gpus", 1, 0, 'g'},     {"memory", 1, 0, 'm'}, {"cpus", 1, 0, 'c'},
		{"name", 1, 0, 'n'},     {"kind", 1, 0, 'k'},   {"workers", 1, 0, 'w'},
		{"priority", 1, 0, 'p'}, {"env", 1, 0, 'e'},    {"wait", 0, 0, 'W'},
		{"constraint", 1, 0, 'C'}, {"policy", 1, 0, 'P'},
		{"queue", 1, 0, 'Q'},
		{0, 0, 0, 0},
	};
	bool wait = false;
	char *end, err[SPEC_ERR_LEN];
	struct spec *ok;
	cJSON *j;
	int c, rv;

	verb_help(argc, argv, usage_run);
	s->kind = SPEC_BATCH;
	s->res.mem = 128ull << 20;
	s->res.cpu_milli = 100;
	s->workers = s->replicas = s->array = s->parallelism = 1;
	s->restart_max = 3;
	s->reschedule_max = 3;
	s->workdir = xstrdup("/work");
	optind = 1;
	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'g':
			if (units_parse_milli(optarg, &s->res.gpus_milli) != 0)
				die(2, "--gpus: \"%s\" is not a number of GPUs", optarg);
			break;
		case 'm':
			if (units_parse_size(optarg, &s->res.mem) != 0)
				die(2, "--memory: \"%s\" is not a size (like 512M, 8G)", optarg);
			break;
		case 'c':
			if (units_parse_milli(optarg, &s->res.cpu_milli) != 0)
				die(2, "--cpus: \"%s\" is not a number of CPUs", optarg);
			break;
		case 'n':
			s->name = xstrdup(optarg);
			break;
		case 'k':
			if (strcmp(optarg, "batch") == 0)
				s->kind = SPEC_BATCH;
			else if (strcmp(optarg, "train") == 0)
				s->kind = SPEC_TRAIN;
			else
				die(2, "--kind: \"%s\" must be train or batch", optarg);
			break;
		case 'w':
			s->workers = (uint32_t)strtoul(optarg, &end, 10);
			if (*end || !*optarg)
				die(2, "--workers: \"%s\" is not a number", optarg);
			break;
		case 'p':
			s->priority = (int32_t)strtol(optarg, &end, 10);
			if (*end || !*optarg)
				die(2, "--priority: \"%s\" is not a number", optarg);
			break;
		case 'e': {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				die(2, "--env: \"%s\" is not KEY=VALUE", optarg);
			s->env = xrealloc(s->env, (s->nenv + 1) * sizeof(*s->env));
			s->env[s->nenv].key = xstrndup(optarg, (size_t)(eq - optarg));
			s->env[s->nenv].val = xstrdup(eq + 1);
			s->nenv++;
			break;
		}
		case 'W':
			wait = true;
			break;
		case 'C':
			s->constraints =
				xrealloc(s->constraints, (s->nconstraints + 1) * sizeof(char *));
			s->constraints[s->nconstraints++] = xstrdup(optarg);
			break;
		case 'P':
			free(s->policy);
			s->policy = xstrdup(optarg);
			break;
		case 'Q':
			free(s->queue);
			s->queue = xstrdup(optarg);
			break;
		default:
			die(2, "see mlctl run --help");
		}
	}
	if (optind >= argc)
		die(2, "run: IMAGE is required (see mlctl run --help)");
	if (argv[optind][0] == '/' || strncmp(argv[optind], "oci:", 4) == 0) {
		/* A folder on the nodes, or an OCI layout there (ociref.h). */
		s->image = xstrdup(argv[optind]);
	} else {
		/* A relative image means a folder here: the agents need the
		 * absolute path (it must exist at that path on them too). */
		char *abs = realpath(argv[optind], NULL);
		if (!abs)
			die(2, "run: image \"%s\": %s (use an absolute path on the nodes)",
			    argv[optind], strerror(errno));
		s->image = abs;
	}
	optind++;
	if (optind < argc && strcmp(argv[optind - 0], "--") == 0)
		optind++;
	if (optind >= argc)
		die(2, "run: a command is required after IMAGE -- (see mlctl run --help)");
	s->ncommand = (size_t)(argc - optind);
	s->command = xcalloc(s->ncommand, sizeof(char *));
	for (size_t i = 0; i < s->ncommand; i++)
		s->command[i] = xstrdup(argv[optind + (int)i]);
	if (!s->name) {
		/* Unique enough for a default; users name jobs they come back to. */
		uint8_t r[3];
		char hex[7];
		randombytes_buf(r, sizeof(r));
		sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
		s->name = xasprintf("run-%s", hex);
	}
	s->restart = RESTART_NEVER;
	if (s->kind != SPEC_TRAIN && s->workers != 1)
		die(2, "--workers is only for --kind train");
	/* Validate through the same rules the master applies. */
	j = spec_to_json(s);
	rv = spec_from_json(j, &ok, err, sizeof(err));
	cJSON_Delete(j);
	spec_free(s);
	if (rv != 0)
		die(2, "%s", err);
	rv = submit_spec(ok, wait);
	spec_free(ok);
	return rv;
}

static const char usage_submit[] = "usage: mlctl submit [--wait] job.yaml\n"
				   "Submit the job spec in job.yaml (see contrib/examples).\n"
				   "  --wait   return once every task runs\n";

static int cmd_submit(int argc, char **argv)
{
	char err[SPEC_ERR_LEN];
	struct spec *s;
	bool wait = false;
	const char *path = NULL;
	int rv;

	verb_help(argc, argv, usage_submit);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0)
			wait = true;
		else if (argv[i][0] == '-' && argv[i][1])
			die(2, "submit: unknown option %s", argv[i]);
		else if (path)
			die(2, "submit: one spec file at a time");
		else
			path = argv[i];
	}
	if (!path)
		die(2, "submit: a spec file is required (see mlctl submit --help)");
	if (spec_parse_file(path, &s, err, sizeof(err)) != 0)
		die(2, "%s", err);
	rv = submit_spec(s, wait);
	spec_free(s);
	return rv;
}

static const char usage_ls[] = "usage: mlctl [-o json] ls [--all]\n"
			       "List unfinished jobs and the newest finished ones, oldest first.\n"
			       "  --all   every job the master remembers\n";

static int cmd_ls(int argc, char **argv)
{
	cJSON *r, *jobs, *j;

	cJSON *b = cJSON_CreateObject();

	verb_help(argc, argv, usage_ls);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			cJSON_AddBoolToObject(b, "all", true);
		else
			die(2, "ls: unexpected argument \"%s\"", argv[i]);
	}
	r = call(WIRE_LIST, b);
	jobs = cJSON_GetObjectItemCaseSensitive(r, "jobs");
	if (json_out) {
		print_json(jobs);
	} else {
		printf("%-6s %-24s %-6s %-10s %5s %6s %8s  %s\n", "ID", "NAME", "KIND", "STATE",
		       "TASKS", "GPUS", "AGE", "REASON");
		cJSON_ArrayForEach(j, jobs)
		{
			char age[32], gpus[16];
			fmt_age((uint64_t)num(j, "submitted"), age, sizeof(age));
			units_format_milli((uint32_t)num(j, "gpus_milli"), gpus, sizeof(gpus));
			printf("%-6.0f %-24s %-6s %-10s %5.0f %6s %8s  %s\n", num(j, "id"),
			       str(j, "name"), str(j, "kind"), str(j, "state"), num(j, "ntasks"),
			       gpus, age, str(j, "reason"));
		}
	}
	if (!json_out && num(r, "omitted") > 0)
		fprintf(stderr, "(%.0f older finished jobs not shown; use --all)\n",
			num(r, "omitted"));
	cJSON_Delete(r);
	return 0;
}

static const char usage_status[] = "usage: mlctl [-o json] status JOB\n"
				   "Show a job, its tasks, where they run and how they ended.\n";

static int cmd_status(int argc, char **argv)
{
	cJSON *j, *t;

	verb_help(argc, argv, usage_status);
	if (argc != 2)
		die(2, "status: exactly one JOB is required (see mlctl status --help)");
	j = get_job(argv[1]);
	if (json_out) {
		print_json(j);
		cJSON_Delete(j);
		return 0;
	}
	printf("job:      %.0f (%s)\nkind:     %s\nstate:    %s\n", num(j, "id"), str(j, "name"),
	       str(j, "kind"), str(j, "state"));
	if (*str(j, "reason"))
		printf("reason:   %s\n", str(j, "reason"));
	printf("priority: %.0f\n", num(j, "priority"));
	if (*str(j, "queue"))
		printf("queue:    %s\n", str(j, "queue"));
	if (strcmp(str(j, "restart_policy"), "never") != 0)
		printf("restart:  %s, %.0f of %.0f used%s%s%s\n", str(j, "restart_policy"),
		       num(j, "restarts"), num(j, "restart_max"),
		       *str(j, "last_restart") ? " (last: " : "", str(j, "last_restart"),
		       *str(j, "last_restart") ? ")" : "");
	if (num(j, "preemptions") > 0)
		printf("requeued: %.0f time%s (last: %s)\n", num(j, "preemptions"),
		       num(j, "preemptions") == 1 ? "" : "s", str(j, "last_requeue"));
	if (num(j, "reschedule_max") > 0 || num(j, "reschedules") > 0)
		printf("reschedule: on node loss, %.0f of %.0f used%s%s%s\n", num(j, "reschedules"),
		       num(j, "reschedule_max"), *str(j, "last_reschedule") ? " (last: " : "",
		       str(j, "last_reschedule"), *str(j, "last_reschedule") ? ")" : "");
	else
		printf("reschedule: off\n");
	if (cJSON_GetObjectItemCaseSensitive(j, "serve")) {
		serve_status(j);
		cJSON_Delete(j);
		return 0;
	}
	putchar('\n');
	/* A multi-role gang (roles:) shows each task's role and index. */
	const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
	bool roles = cJSON_GetArraySize(tasks) > 0 &&
		     cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(tasks, 0), "role_index");
	if (roles)
		printf("%-5s %-14s %-9s %-16s %-8s %5s %7s %9s %5s  %s\n", "TASK", "ROLE", "STATE",
		       "NODE", "GPUS", "EXIT", "CPU%", "MEMORY", "GPU%", "REASON");
	else
		printf("%-5s %-9s %-16s %-8s %5s %7s %9s %5s  %s\n", "TASK", "STATE", "NODE",
		       "GPUS", "EXIT", "CPU%", "MEMORY", "GPU%", "REASON");
	cJSON_ArrayForEach(t, tasks)
	{
		char role[48] = "";
		char gpus[64] = "", exit_s[16] = "-", mem[24] = "-";
		const cJSON *g;
		const char *st = str(t, "state");
		cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(t, "gpus"))
		{
			size_t l = strlen(gpus);
			snprintf(gpus + l, sizeof(gpus) - l, "%s%d", l ? "," : "", g->valueint);
		}
		if (strcmp(st, "exited") == 0 || strcmp(st, "killed") == 0)
			snprintf(exit_s, sizeof(exit_s), "%.0f", num(t, "exit_code"));
		if (strcmp(st, "running") == 0)
			fmt_size((uint64_t)num(t, "mem_used"), mem, sizeof(mem));
		char gpct[16] = "-";
		if (num(t, "gpu_util") >= 0 && cJSON_GetObjectItemCaseSensitive(t, "gpu_util"))
			snprintf(gpct, sizeof(gpct), "%.0f", num(t, "gpu_util"));
		if (roles) {
			snprintf(role, sizeof(role), "%s/%.0f", str(t, "role"), num(t, "role_index"));
			printf("%-5.0f %-14s ", num(t, "task"), role);
		} else {
			printf("%-5.0f ", num(t, "task"));
		}
		printf("%-9s %-16s %-8s %5s %7.1f %9s %5s  %s\n", st,
		       *str(t, "node") ? str(t, "node") : "-", gpus[0] ? gpus : "-", exit_s,
		       num(t, "cpu_pct"), mem, gpct, str(t, "reason"));
	}
	/* Tasks that ran more than once: where each run's log is. */
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(j, "tasks"))
	{
		const cJSON *runs = cJSON_GetObjectItemCaseSensitive(t, "runs"), *r;
		if (cJSON_GetArraySize(runs) < 2)
			continue;
		printf("task %.0f logs:", num(t, "task"));
		cJSON_ArrayForEach(r, runs)
		{
			printf(" attempt %.0f on %s%s", num(r, "attempt"), str(r, "node"),
			       r->next ? "," : "");
		}
		printf(" (mlctl logs %s/%.0f --attempt N)\n", str(j, "name"), num(t, "task"));
	}
	cJSON_Delete(j);
	return 0;
}

static const char usage_cancel[] = "usage: mlctl cancel JOB\n"
				   "Stop every task of JOB (SIGTERM, then SIGKILL after the "
				   "master's --grace) and mark it cancelled.\n";

static int cmd_cancel(int argc, char **argv)
{
	cJSON *b, *r;

	verb_help(argc, argv, usage_cancel);
	if (argc != 2)
		die(2, "cancel: exactly one JOB is required (see mlctl cancel --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "job", argv[1]);
	r = call(WIRE_CANCEL, b);
	if (json_out)
		print_json(r);
	else
		printf("job %.0f: cancel requested (%s)\n", num(r, "id"), str(r, "state"));
	cJSON_Delete(r);
	return 0;
}

static const char usage_nodes[] = "usage: mlctl [-o json] nodes [remove NODE]\n"
				  "List agents: state, free/total GPUs, CPU and memory.\n"
				  "remove NODE: revoke its agent key, move its tasks away.\n";

static int cmd_nodes(int argc, char **argv)
{
	cJSON *r, *ns, *n;

	if (argc > 1 && strcmp(argv[1], "remove") == 0)
		return cmd_nodes_remove(argc - 1, argv + 1);
	verb_help(argc, argv, usage_nodes);
	if (argc > 1)
		die(2, "nodes: unexpected argument \"%s\"", argv[1]);
	r = call(WIRE_NODES, cJSON_CreateObject());
	ns = cJSON_GetObjectItemCaseSensitive(r, "nodes");
	if (json_out) {
		print_json(ns);
		cJSON_Delete(r);
		return 0;
	}
	printf("%-16s %-8s %9s %13s %17s %5s %5s  %s\n", "NAME", "STATE", "GPUS", "CPUS",
	       "MEMORY", "CPU%", "GPU%", "LABELS");
	cJSON_ArrayForEach(n, ns)
	{
		const cJSON *g, *l;
		char gpus[32], cpus[64], a[24], b[24], mem[64], labels[256] = "";
		int total = 0, free_g = 0;
		cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(n, "gpus"))
		{
			total++;
			if (num(g, "used_milli") == 0)
				free_g++;
		}
		snprintf(gpus, sizeof(gpus), "%d/%d", free_g, total);
		units_format_milli((uint32_t)(num(n, "cpu_milli") - num(n, "cpu_used")), a,
				   sizeof(a));
		units_format_milli((uint32_t)num(n, "cpu_milli"), b, sizeof(b));
		snprintf(cpus, sizeof(cpus), "%s/%s", a, b);
		fmt_size((uint64_t)(num(n, "memory") - num(n, "memory_used")), a, sizeof(a));
		fmt_size((uint64_t)num(n, "memory"), b, sizeof(b));
		snprintf(mem, sizeof(mem), "%s/%s", a, b);
		cJSON_ArrayForEach(l, cJSON_GetObjectItemCaseSensitive(n, "labels"))
		{
			size_t len = strlen(labels);
			if (cJSON_IsString(l))
				snprintf(labels + len, sizeof(labels) - len, "%s%s=%s",
					 len ? "," : "", l->string, l->valuestring);
		}
		bool drained = false;
		wire_get_bool(n, "drained", &drained);
		/* The mean utilization of its GPUs, as NVML reports it. */
		double gsum = 0;
		int gn = 0;
		char gpct[16] = "-";
		cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(n, "util_gpus"))
		{
			gsum += num(g, "util_pct");
			gn++;
		}
		if (gn)
			snprintf(gpct, sizeof(gpct), "%.0f", gsum / gn);
		printf("%-16s %-8s %9s %13s %17s %5.0f %5s  %s\n", str(n, "name"),
		       strcmp(str(n, "state"), "removed") == 0 ? "removed"
		       : drained			       ? "drained"
		       : *str(n, "gpu_error")		       ? "gpu-err"
							       : str(n, "state"),
		       gpus, cpus, mem, num(n, "util_cpu_pct"), gpct, labels);
		if (*str(n, "gpu_error"))
			printf("  unschedulable: %s\n", str(n, "gpu_error"));
	}
	cJSON_Delete(r);
	return 0;
}

static const char usage_logs[] = "usage: mlctl logs [-f] [--attempt N] JOB[/TASK]\n"
				 "Print a task's stdout and stderr.  TASK defaults to 0 when the\n"
				 "job has one task.  -f follows the log until the task ends.\n"
				 "--attempt N: the log of run N of the task (a restart, a requeue\n"
				 "or a reschedule starts a new one; default: the latest);\n"
				 "`mlctl status` lists the attempts whose logs are kept.\n";

static int cmd_logs(int argc, char **argv)
{
	bool follow = false;
	const char *ref = NULL;
	char *job, *slash;
	uint64_t task = 0, offset = 0;
	int64_t attempt = -1;

	verb_help(argc, argv, usage_logs);
	retry_busy = true;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0)
			follow = true;
		else if (strcmp(argv[i], "--attempt") == 0 && i + 1 < argc) {
			char *end;
			unsigned long long v = strtoull(argv[++i], &end, 10);
			if (!*argv[i] || *end || argv[i][0] == '-' || v > UINT32_MAX)
				die(2, "--attempt: \"%s\" is not an attempt number", argv[i]);
			attempt = (int64_t)v;
		}
		else if (argv[i][0] == '-')
			die(2, "logs: unknown option %s", argv[i]);
		else if (ref)
			die(2, "logs: one JOB[/TASK] at a time");
		else
			ref = argv[i];
	}
	if (!ref)
		die(2, "logs: JOB[/TASK] is required (see mlctl logs --help)");
	job = xstrdup(ref);
	if ((slash = strchr(job, '/'))) {
		char *end;
		*slash = '\0';
		task = strtoull(slash + 1, &end, 10);
		if (!slash[1] || *end)
			die(2, "logs: \"%s\" is not a task number", slash + 1);
	} else {
		cJSON *j = get_job(job);
		double n = num(j, "ntasks");
		cJSON_Delete(j);
		if (n > 1)
			die(2, "logs: job %s has %.0f tasks: name one as %s/TASK", job, n, job);
	}
	for (;;) {
		cJSON *b = cJSON_CreateObject(), *r;
		const char *data;
		unsigned char *raw;
		size_t rawlen = 0, b64len;
		bool eof = false, done = false;

		cJSON_AddStringToObject(b, "job", job);
		cJSON_AddNumberToObject(b, "task", (double)task);
		cJSON_AddNumberToObject(b, "offset", (double)offset);
		cJSON_AddNumberToObject(b, "max", 65536);
		if (attempt >= 0)
			cJSON_AddNumberToObject(b, "attempt", (double)attempt);
		r = call(WIRE_LOGS, b);
		/* Stay with the run the first answer came from. */
		if (attempt < 0)
			attempt = (int64_t)num(r, "attempt");
		if (wire_get_str(r, "data", 4 * 65536 / 3 + 8, &data) != 0)
			die(3, "malformed log reply from the master");
		b64len = strlen(data);
		raw = xmalloc(b64len + 1);
		if (sodium_base642bin(raw, b64len + 1, data, b64len, NULL, &rawlen, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0)
			die(3, "malformed log data from the master");
		{
			/* The node kept only the log's tail (mlagent --log-max). */
			uint64_t dropped = 0, cap = 0;
			if (wire_get_u64(r, "dropped", UINT64_MAX >> 11, &dropped) == 0 &&
			    dropped) {
				char c[32] = "?";
				if (wire_get_u64(r, "log_max", UINT64_MAX >> 11, &cap) == 0)
					units_format_size(cap, c, sizeof(c));
				fflush(stdout);
				fprintf(stderr,
					"mlctl: %" PRIu64 " older bytes of this log were dropped: "
					"its node keeps the newest %s of each attempt's log "
					"(mlagent --log-max)\n",
					dropped, c);
			}
		}
		fwrite(raw, 1, rawlen, stdout);
		fflush(stdout);
		free(raw);
		offset = (uint64_t)num(r, "offset");
		wire_get_bool(r, "eof", &eof);
		wire_get_bool(r, "done", &done);
		cJSON_Delete(r);
		if (eof && (!follow || done))
			break;
		if (eof)
			usleep(200000);
	}
	free(job);
	return 0;
}

static const char usage_drain[] =
	"usage: mlctl drain [--evict] NODE\n"
	"Stop placing tasks on NODE.  Its running tasks finish there; with --evict\n"
	"they are stopped and requeued (a training gang as a whole).\n";

static int cmd_drain(int argc, char **argv)
{
	const char *node = NULL;
	bool evict = false;
	cJSON *b, *r;

	verb_help(argc, argv, usage_drain);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--evict") == 0)
			evict = true;
		else if (argv[i][0] == '-')
			die(2, "drain: unknown option %s", argv[i]);
		else if (node)
			die(2, "drain: one NODE at a time");
		else
			node = argv[i];
	}
	if (!node)
		die(2, "drain: NODE is required (see mlctl drain --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "node", node);
	cJSON_AddBoolToObject(b, "evict", evict);
	r = call(WIRE_DRAIN, b);
	if (json_out)
		print_json(r);
	else if (evict)
		printf("node %s drained; %.0f jobs requeued from it\n", str(r, "node"),
		       num(r, "jobs_evicted"));
	else
		printf("node %s drained; %.0f jobs still run there\n", str(r, "node"),
		       num(r, "jobs_running"));
	cJSON_Delete(r);
	return 0;
}

static const char usage_uncordon[] = "usage: mlctl uncordon NODE\n"
				     "Let NODE take new tasks again after a drain.\n";

static int cmd_uncordon(int argc, char **argv)
{
	cJSON *b, *r;

	verb_help(argc, argv, usage_uncordon);
	if (argc != 2 || argv[1][0] == '-')
		die(2, "uncordon: exactly one NODE is required (see mlctl uncordon --help)");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "node", argv[1]);
	r = call(WIRE_UNCORDON, b);
	if (json_out)
		print_json(r);
	else
		printf("node %s uncordoned (%s)\n", str(r, "node"), str(r, "state"));
	cJSON_Delete(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} verbs[] = {
		{"run", cmd_run},       {"submit", cmd_submit}, {"ls", cmd_ls},
		{"status", cmd_status}, {"logs", cmd_logs},     {"cancel", cmd_cancel},
		{"nodes", cmd_nodes},   {"drain", cmd_drain},   {"uncordon", cmd_uncordon},
		{"endpoints", cmd_endpoints}, {"scale", cmd_scale}, {"rollout", cmd_rollout},
		{"rollback", cmd_rollback},   {"history", cmd_history},   {"top", cmd_top},
		{"pools", cmd_pools},
		{"queues", cmd_queues},
	};
	int i = 1, rv;

	if (sodium_init() < 0)
		die(3, "libsodium failed to initialise");
	master_url = getenv("MLSCHED_MASTER");
	if (!master_url || !*master_url)
		master_url = DEFAULT_MASTER;
	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(usage_main, stdout);
			return 0;
		} else if (strcmp(argv[i], "--master") == 0 && i + 1 < argc) {
			master_url = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--master=", 9) == 0) {
			master_url = argv[i++] + 9;
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			if (strcmp(argv[i + 1], "json") != 0)
				die(2, "-o: only json is supported");
			json_out = true;
			i += 2;
		} else if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) {
			key_path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			uint64_t ms;
			if (units_parse_duration(argv[i + 1], &ms) != 0 || ms == 0 || ms > 3600000)
				die(2, "--timeout: \"%s\" is not a duration (like 500ms, 10s)",
				    argv[i + 1]);
			timeout_ms = (int)ms;
			i += 2;
		} else if (strcmp(argv[i], "--version") == 0) {
			puts("mlctl " MLSCHED_VERSION);
			return 0;
		} else {
			die(2, "unknown option %s (see mlctl --help)", argv[i]);
		}
	}
	if (i >= argc) {
		fputs(usage_main, stderr);
		return 2;
	}
	for (size_t k = 0; k < sizeof(verbs) / sizeof(*verbs); k++) {
		if (strcmp(argv[i], verbs[k].name) != 0)
			continue;
		/* Global flags may also follow the verb: mlctl ls -o json. */
		int n = argc - i, w = 1;
		char **v = argv + i;
		for (int x = 1; x < n; x++) {
			if (strcmp(v[x], "--") == 0) {
				while (x < n)
					v[w++] = v[x++];
				break;
			}
			if (strcmp(v[x], "-o") == 0 && x + 1 < n && strcmp(v[x + 1], "json") == 0) {
				json_out = true;
				x++;
				continue;
			}
			v[w++] = v[x];
		}
		rv = verbs[k].fn(w, v);
		if (connected)
			nng_close(sock);
		return rv;
	}
	die(2, "unknown verb \"%s\" (see mlctl --help)", argv[i]);
}
