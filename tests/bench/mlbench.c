/*
 * mlbench.c - drive the scheduler core (plugins/sched) with simulated nodes and
 * compare it with a naive first fit over the same input.
 *
 *   mlbench sched  [--nodes 10000] [--gpus-per-node 8] [--jobs 100000]
 *                  [--mix 1:50,2:25,4:15,8:10] [--policy binpack] [--seed 1]
 *                  [--gpu-mem 80G] [--node-mem 1T] [--node-cpus 128] [--pin]
 *                  [--no-baseline]
 *   mlbench replay --nodes nodes.csv --jobs jobs.csv [--policy binpack|LIST|all]
 *                  [--no-deletions] [--no-baseline] [--inflate 130 [--seed 1]]
 *                  [--csv curve.csv] [--mix trace|seen] [--plugin-dir DIR] [--quiet]
 *   mlbench replay --pools pools.yaml --nodes nodes.csv --jobs jobs.csv
 *                  [--policy binpack] [--boot-time 2m]   (mlbench_pools.c)
 *
 * sched: identical nodes, a random job stream drawn from --mix ("GPUs:weight"
 * pairs; GPUs may be a share such as 0.5), each job one task, placed one after
 * the other with sched_place() and never finished.  Every call is timed.  The
 * same stream then goes through the baseline: for each job, scan a plain array
 * of nodes from the first and take the first one res_fit() accepts.
 *
 * replay: nodes and jobs from CSV files in the layout of public GPU-cluster
 * traces (name,cpu_milli,memory_mib,gpu,model and name,cpu_milli,memory_mib,
 * num_gpu,gpu_milli[,gpu_spec][,qos,pod_phase][,creation_time][,deletion_time]
 * [,scheduled_time]: with a header, the columns in brackets may be missing
 * and unknown ones are ignored; see load_nodes() and load_jobs()), replayed
 * in creation order (file order where there is no creation_time).  Each job
 * is tried once (a job that does not fit is counted as failed, not queued)
 * and, unless --no-deletions, a placed job is released at its deletion time.
 * Every policy in --policy runs on the same arrivals; the baselines are a
 * first fit and a best fit over a plain array in file order.  --inflate P
 * measures as Weng et al. (ATC '23) do: after the trace, tasks sampled from
 * it (seeded) keep arriving, never ending, until the GPU demand that arrived
 * is P% of the capacity, and the allocated share at each 5% of arrived
 * demand is printed per policy side by side (and written to --csv).
 *
 * Exit status: 0 done, 1 an internal check failed, 2 bad arguments or input.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "mlbench.h"
#include "opt.h"
#include "res.h"
#include "sched/sched.h"
#include "units.h"
#include "util.h"

#define MAX_MIX 16
#define MAX_CSV_FIELDS 32
#define MAX_CSV_BYTES (1024ull * 1024ull * 1024ull)

/* ---- small helpers ---- */

static uint64_t clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: tiny, fast, and the same stream for the same seed everywhere. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile (p in 1..100) of a sorted array. */
uint32_t pct(const uint32_t *v, size_t n, size_t p)
{
	size_t rank = (n * p + 99) / 100;

	if (n == 0)
		return 0;
	return v[rank < 1 ? 0 : rank - 1];
}

static double share_pct(uint64_t part, uint64_t whole)
{
	return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* What one clock read adds to each sample: the median gap between two reads. */
static uint32_t clock_overhead_ns(void)
{
	uint32_t gap[1001];
	uint64_t prev = clock_ns();

	for (size_t i = 0; i < 1001; i++) {
		uint64_t now = clock_ns();

		gap[i] = (uint32_t)(now - prev);
		prev = now;
	}
	qsort(gap, 1001, sizeof(gap[0]), cmp_u32);
	return gap[500];
}

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		fprintf(stderr, "mlbench: --pin: sched_setaffinity: %s (running unpinned)\n",
			strerror(errno));
}

/* Fill a node's capacity: ngpus identical GPUs, all free. */
static void node_cap(struct res_node *cap, uint32_t ngpus, uint64_t gpu_mem, const char *model,
		     uint64_t mem, uint32_t cpu_milli)
{
	memset(cap, 0, sizeof(*cap));
	cap->ngpus = ngpus;
	for (uint32_t i = 0; i < ngpus; i++) {
		cap->gpus[i].index = i;
		cap->gpus[i].mem = gpu_mem;
		strlcpy_ok(cap->gpus[i].model, model, sizeof(cap->gpus[i].model));
	}
	cap->mem_total = mem;
	cap->cpu_total = cpu_milli;
}

/* Sum of used_milli over every node the scheduler holds: checks our own tally. */
static uint64_t sched_used_milli(const struct sched *s)
{
	uint64_t sum = 0;

	for (uint32_t id = 0; id < sched_node_slots(s); id++) {
		const struct sched_node *n = sched_node_get(s, id);

		if (!n)
			continue;
		for (uint32_t g = 0; g < n->res.ngpus; g++)
			sum += n->res.gpus[g].used_milli;
	}
	return sum;
}

static uint64_t plain_used_milli(const struct res_node *nodes, uint32_t nnodes)
{
	uint64_t sum = 0;

	for (uint32_t i = 0; i < nnodes; i++)
		for (uint32_t g = 0; g < nodes[i].ngpus; g++)
			sum += nodes[i].gpus[g].used_milli;
	return sum;
}

/* ================================================================
 * sched mode: synthetic saturation benchmark
 * ================================================================ */

struct mix_entry {
	uint32_t milli; /* GPUs per task */
	double weight;
};

/* What one placement run measured. */
struct run_stats {
	uint64_t attempts, placed, rejected;
	uint64_t total_ns;
	uint32_t *lat;       /* ns per attempt, attempts entries */
	uint64_t cap_milli;  /* GPU capacity */
	uint64_t alloc_milli; /* GPU milli held at the end */
	bool rejected_once;
	uint64_t first_reject_job;   /* index of the first rejected job */
	uint64_t first_reject_milli; /* GPU milli held when it was rejected */
	uint64_t before_ns;          /* time spent on attempts before it */
};

static int parse_mix(const char *text, uint32_t gpus_per_node, struct mix_entry *mix,
		     uint32_t *nmix)
{
	char *copy = xstrdup(text), *save = NULL, *tok;
	int rc = ERR_INVAL;
	uint32_t n = 0;

	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *end;
		struct res r = {0};
		double w;

		if (!colon) {
			fprintf(stderr, "mlbench: --mix: \"%s\" is not GPUS:PERCENT\n", tok);
			goto out;
		}
		*colon = '\0';
		if (n == MAX_MIX) {
			fprintf(stderr, "mlbench: --mix: more than %d entries\n", MAX_MIX);
			goto out;
		}
		if (units_parse_milli(tok, &r.gpus_milli) != 0 || res_check(&r, NULL, 0) != 0) {
			fprintf(stderr, "mlbench: --mix: \"%s\" is not a GPU count "
				"(a share below 1 or a whole number)\n", tok);
			goto out;
		}
		if (res_whole_gpus(&r) > gpus_per_node) {
			fprintf(stderr, "mlbench: --mix: %s GPUs do not fit a %" PRIu32
				"-GPU node\n", tok, gpus_per_node);
			goto out;
		}
		errno = 0;
		w = strtod(colon + 1, &end);
		if (errno || end == colon + 1 || *end || !(w > 0)) {
			fprintf(stderr, "mlbench: --mix: \"%s\" is not a positive percentage\n",
				colon + 1);
			goto out;
		}
		mix[n].milli = r.gpus_milli;
		mix[n].weight = w;
		n++;
	}
	if (n == 0) {
		fprintf(stderr, "mlbench: --mix is empty\n");
		goto out;
	}
	*nmix = n;
	rc = 0;
out:
	free(copy);
	return rc;
}

/*
 * The job stream.  Each task also asks for host memory and CPU in proportion
 * to its GPUs, a quarter of the node's per-GPU amount, so that GPUs stay the
 * binding dimension (a CPU-only entry, "0:W", asks a quarter of one GPU's
 * worth).
 */
static struct res *make_jobs(uint64_t njobs, const struct mix_entry *mix, uint32_t nmix,
			     uint64_t seed, uint32_t gpus_per_node, uint64_t node_mem,
			     uint32_t node_cpu_milli)
{
	struct res *jobs = xcalloc(njobs ? njobs : 1, sizeof(*jobs));
	uint64_t state = seed;
	double total = 0;
	uint64_t mem_per_gpu = node_mem / gpus_per_node;
	uint64_t cpu_per_gpu = node_cpu_milli / gpus_per_node;

	for (uint32_t i = 0; i < nmix; i++)
		total += mix[i].weight;
	for (uint64_t j = 0; j < njobs; j++) {
		/* 53 random bits -> [0, total) */
		double x = (double)(rng_next(&state) >> 11) / 9007199254740992.0 * total;
		uint32_t k = 0;
		uint64_t milli;

		while (k + 1 < nmix && x >= mix[k].weight) {
			x -= mix[k].weight;
			k++;
		}
		milli = mix[k].milli ? mix[k].milli : 250;
		jobs[j].gpus_milli = mix[k].milli;
		jobs[j].mem = mem_per_gpu / 4 / MILLI * milli;
		jobs[j].cpu_milli = (uint32_t)(cpu_per_gpu * milli / 4 / MILLI);
	}
	return jobs;
}

static void note_attempt(struct run_stats *st, uint64_t j, bool ok, const struct res *r,
			 uint64_t ns)
{
	st->lat[j] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
	st->attempts++;
	if (ok) {
		st->placed++;
		st->alloc_milli += r->gpus_milli;
		if (!st->rejected_once)
			st->before_ns += ns;
		return;
	}
	st->rejected++;
	if (!st->rejected_once) {
		st->rejected_once = true;
		st->first_reject_job = j;
		st->first_reject_milli = st->alloc_milli;
	}
}

/*
 * Ours.  The loop reads the clock once per call: each sample is the call plus
 * the loop's own bookkeeping (a few ns), and one clock read (about 20 ns with
 * the vDSO).
 */
static int run_ours(const struct res *jobs, uint64_t njobs, uint32_t nnodes,
		    const struct res_node *cap, const struct sched_policy *policy,
		    struct run_stats *st)
{
	struct sched *s = sched_new();
	struct sched_slot slot;
	struct sched_req req;
	char name[SCHED_NAME_LEN];
	uint64_t t0, prev, now;
	int rc = 0;

	for (uint32_t i = 0; i < nnodes; i++) {
		snprintf(name, sizeof(name), "node-%05" PRIu32, i);
		if (!sched_node_add(s, name, cap, NULL, 0)) {
			fprintf(stderr, "mlbench: sched_node_add %s failed\n", name);
			rc = 1;
			goto out;
		}
	}
	memset(&req, 0, sizeof(req));
	req.ntasks = 1;
	req.policy = policy;

	t0 = prev = clock_ns();
	for (uint64_t j = 0; j < njobs; j++) {
		bool ok;

		req.job = j + 1;
		req.res = jobs[j];
		ok = sched_place(s, &req, &slot) == 0;
		now = clock_ns();
		note_attempt(st, j, ok, &jobs[j], now - prev);
		prev = now;
	}
	st->total_ns = prev - t0;

	/* The scheduler's own books must agree with what it said it placed. */
	if (sched_used_milli(s) != st->alloc_milli) {
		fprintf(stderr, "mlbench: scheduler holds %" PRIu64 " GPU milli, placements add "
			"up to %" PRIu64 "\n", sched_used_milli(s), st->alloc_milli);
		rc = 1;
	}
out:
	sched_free(s);
	return rc;
}

/* The baseline: first fit by linear scan over a plain array. */
static int run_firstfit(const struct res *jobs, uint64_t njobs, uint32_t nnodes,
			const struct res_node *cap, struct run_stats *st)
{
	struct res_node *nodes = xmalloc((size_t)nnodes * sizeof(*nodes));
	uint32_t idx[RES_MAX_GPUS], nidx;
	uint64_t t0, prev, now;
	int rc = 0;

	for (uint32_t i = 0; i < nnodes; i++)
		nodes[i] = *cap;
	t0 = prev = clock_ns();
	for (uint64_t j = 0; j < njobs; j++) {
		bool ok = false;

		for (uint32_t i = 0; i < nnodes; i++) {
			if (res_fit(&nodes[i], &jobs[j], idx, &nidx)) {
				res_take(&nodes[i], &jobs[j], idx, nidx);
				ok = true;
				break;
			}
		}
		now = clock_ns();
		note_attempt(st, j, ok, &jobs[j], now - prev);
		prev = now;
	}
	st->total_ns = prev - t0;
	if (plain_used_milli(nodes, nnodes) != st->alloc_milli) {
		fprintf(stderr, "mlbench: baseline books disagree\n");
		rc = 1;
	}
	free(nodes);
	return rc;
}

static double per_sec(uint64_t n, uint64_t ns)
{
	return ns ? (double)n * 1e9 / (double)ns : 0.0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

static void print_run(const char *title, struct run_stats *st)
{
	printf("%s\n", title);
	printf("  placements attempted    %" PRIu64 "\n", st->attempts);
	printf("  placed                  %" PRIu64 "\n", st->placed);
	printf("  rejected                %" PRIu64 "\n", st->rejected);
	printf("  total time              %.3f s\n", (double)st->total_ns / 1e9);
	printf("  placements/s            %.0f (all attempts, one core)\n",
	       per_sec(st->attempts, st->total_ns));
	if (st->rejected_once)
		printf("  placements/s            %.0f (the %" PRIu64 " before the first "
		       "rejection)\n", per_sec(st->first_reject_job, st->before_ns),
		       st->first_reject_job);
	if (st->rejected_once && st->first_reject_job > 0) {
		/* Rejections on a full cluster are cheap: show the filling phase alone too. */
		size_t n = st->first_reject_job;
		uint32_t *pre = xmalloc(n * sizeof(*pre));

		memcpy(pre, st->lat, n * sizeof(*pre));
		qsort(pre, n, sizeof(*pre), cmp_u32);
		printf("  ns per placement        p50 %" PRIu32 "  p99 %" PRIu32 "  max %" PRIu32
		       " (before the first rejection)\n", pct(pre, n, 50), pct(pre, n, 99),
		       pct(pre, n, 100));
		free(pre);
	}
	qsort(st->lat, st->attempts, sizeof(*st->lat), cmp_u32);
	printf("  ns per placement        p50 %" PRIu32 "  p99 %" PRIu32 "  max %" PRIu32
	       " (all attempts)\n", pct(st->lat, st->attempts, 50), pct(st->lat, st->attempts, 99),
	       pct(st->lat, st->attempts, 100));
	if (st->rejected_once)
		printf("  GPUs allocated at the first rejection  %.2f%% (job %" PRIu64 ")\n",
		       share_pct(st->first_reject_milli, st->cap_milli), st->first_reject_job + 1);
	else
		printf("  GPUs allocated at the first rejection  - (nothing rejected)\n");
	printf("  GPUs allocated at the end              %.2f%%\n",
	       share_pct(st->alloc_milli, st->cap_milli));
}

static int cmd_sched(int argc, char **argv)
{
	uint64_t nnodes, gpn, njobs, seed, gpu_mem, node_mem, node_cpus;
	const char *mixtext, *pname;
	bool pin, no_baseline;
	const struct opt tab[] = {
		{"nodes", OPT_UINT, "10000", "simulated nodes, all alike", &nnodes},
		{"gpus-per-node", OPT_UINT, "8", "GPUs on each node", &gpn},
		{"jobs", OPT_UINT, "100000", "jobs to place, one task each", &njobs},
		{"mix", OPT_STR, "1:50,2:25,4:15,8:10",
		 "GPUS:PERCENT,... job sizes and their shares (GPUS may be 0.5)", &mixtext},
		{"policy", OPT_STR, "binpack", "placement policy", &pname},
		{"seed", OPT_UINT, "1", "seed of the job stream", &seed},
		{"gpu-mem", OPT_SIZE, "80G", "memory of each GPU", &gpu_mem},
		{"node-mem", OPT_SIZE, "1T", "host memory of each node", &node_mem},
		{"node-cpus", OPT_UINT, "128", "CPUs of each node", &node_cpus},
		{"pin", OPT_BOOL, "false", "pin to CPU 0", &pin},
		{"no-baseline", OPT_BOOL, "false", "skip the first-fit baseline", &no_baseline},
		{NULL, 0, NULL, NULL, NULL},
	};
	struct mix_entry mix[MAX_MIX];
	uint32_t nmix;
	struct res_node *cap = NULL;
	struct res *jobs = NULL;
	const struct sched_policy *policy;
	struct run_stats ours = {0}, base = {0};
	char err[256];
	int nargs, rc;

	rc = opt_parse(tab, argc, argv, &nargs, "mlbench sched", "[options]", err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc != 0 || nargs != 0) {
		fprintf(stderr, "mlbench sched: %s\n", rc ? err : "unexpected argument");
		return EXIT_BAD;
	}
	rc = EXIT_BAD;
	if (nnodes == 0 || nnodes > UINT32_MAX / 2 || gpn == 0 || gpn > RES_MAX_GPUS ||
	    node_cpus == 0 || node_cpus > UINT32_MAX / MILLI || njobs > UINT32_MAX ||
	    node_mem == 0) {
		fprintf(stderr, "mlbench sched: --nodes, --node-cpus and --node-mem must be "
			"positive, --gpus-per-node 1..%d, --jobs below 2^32\n", RES_MAX_GPUS);
		goto out;
	}
	if (parse_mix(mixtext, (uint32_t)gpn, mix, &nmix) != 0)
		goto out;
	policy = sched_policy_find(pname);
	if (!policy) {
		fprintf(stderr, "mlbench sched: no policy \"%s\" (built in: binpack, spread, fgd)\n",
			pname);
		goto out;
	}
	if (pin)
		pin_cpu0();

	cap = xmalloc(sizeof(*cap));
	node_cap(cap, (uint32_t)gpn, gpu_mem, "NVIDIA A100-SXM4-80GB", node_mem,
		 (uint32_t)(node_cpus * MILLI));
	jobs = make_jobs(njobs, mix, nmix, seed, (uint32_t)gpn, node_mem,
			 (uint32_t)(node_cpus * MILLI));
	ours.lat = xcalloc(njobs ? njobs : 1, sizeof(uint32_t));
	base.lat = xcalloc(njobs ? njobs : 1, sizeof(uint32_t));
	ours.cap_milli = base.cap_milli = nnodes * gpn * MILLI;

	printf("mlbench sched: %" PRIu64 " nodes x %" PRIu64 " GPUs (%" PRIu64 " GPUs), %" PRIu64
	       " jobs, mix %s, policy %s, seed %" PRIu64 "%s\n", nnodes, gpn, nnodes * gpn, njobs,
	       mixtext, policy->name, seed, pin ? ", pinned to CPU 0" : "");
	printf("clock read overhead: about %" PRIu32 " ns, included in every ns figure below\n",
	       clock_overhead_ns());
	rc = 1;
	if (run_ours(jobs, njobs, (uint32_t)nnodes, cap, policy, &ours) != 0)
		goto out;
	print_run("ours (sched_place)", &ours);
	if (no_baseline) {
		rc = 0;
		goto out;
	}
	if (run_firstfit(jobs, njobs, (uint32_t)nnodes, cap, &base) != 0)
		goto out;
	print_run("baseline (first fit, linear scan)", &base);
	printf("ratios\n");
	printf("  speed ours/baseline     %.1fx (all attempts)\n",
	       ratio(per_sec(ours.attempts, ours.total_ns), per_sec(base.attempts, base.total_ns)));
	if (ours.rejected_once && base.rejected_once)
		printf("  speed ours/baseline     %.1fx (each before its first rejection)\n",
		       ratio(per_sec(ours.first_reject_job, ours.before_ns),
			     per_sec(base.first_reject_job, base.before_ns)));
	printf("  allocated at the first rejection  ours %.2f%%, baseline %.2f%% (%+.2f points)\n",
	       share_pct(ours.first_reject_milli, ours.cap_milli),
	       share_pct(base.first_reject_milli, base.cap_milli),
	       share_pct(ours.first_reject_milli, ours.cap_milli) -
	       share_pct(base.first_reject_milli, base.cap_milli));
	printf("  allocated at the end              ours %.2f%%, baseline %.2f%% (%+.2f points)\n",
	       share_pct(ours.alloc_milli, ours.cap_milli),
	       share_pct(base.alloc_milli, base.cap_milli),
	       share_pct(ours.alloc_milli, ours.cap_milli) -
	       share_pct(base.alloc_milli, base.cap_milli));
	rc = 0;
out:
	free(cap);
	free(jobs);
	free(ours.lat);
	free(base.lat);
	return rc;
}

/* ================================================================
 * CSV
 * ================================================================ */

/* One parsed file: rows of fields pointing into the file's buffer. */
struct csv {
	const char *path;
	char *text;
	char **fields; /* nrows * ncols, NULL for a missing trailing field */
	uint32_t *line; /* line number of each row */
	size_t nrows, ncols;
	int col[MAX_CSV_FIELDS]; /* wanted column -> field position, -1 = absent */
};

/* A column we want: its names in a header (first is canonical). */
struct csv_col {
	const char *names[4];
	bool required;
};

static void csv_free(struct csv *c)
{
	free(c->text);
	free(c->fields);
	free(c->line);
	memset(c, 0, sizeof(*c));
}

/* Split one line in place on ','; trims spaces around fields. */
static size_t split_line(char *p, char **f, size_t max)
{
	size_t n = 0;

	for (;;) {
		char *start = p, *end;

		while (*p && *p != ',')
			p++;
		end = p;
		while (start < end && (*start == ' ' || *start == '\t'))
			start++;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (n < max)
			f[n] = start;
		n++;
		if (!*p) {
			*end = '\0';
			break;
		}
		*end = '\0';
		p++;
	}
	return n;
}

static bool is_uint(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * Read path.  The first non-blank, non-'#' line is a header when its field in
 * column probe (a numeric column) is not a number: then columns are found by
 * name and extra columns are ignored.  Without a header the columns are
 * positional, in the order of cols.  '#' lines and blank lines are skipped.
 */
static int csv_read(const char *path, const struct csv_col *cols, size_t ncols, size_t probe,
		    struct csv *c)
{
	char *fld[MAX_CSV_FIELDS], *p, *next;
	size_t len, cap = 0, nf;
	uint32_t lineno = 0;
	bool first = true;
	int rc;

	memset(c, 0, sizeof(*c));
	c->path = path;
	c->ncols = ncols;
	rc = file_read(path, MAX_CSV_BYTES, &c->text, &len);
	if (rc != 0) {
		fprintf(stderr, "mlbench: %s: %s\n", path, err_str(rc));
		goto out;
	}
	rc = ERR_INVAL;
	for (p = c->text; p && *p; p = next) {
		char *nl = strchr(p, '\n');

		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		if (nl && nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		nf = split_line(p, fld, MAX_CSV_FIELDS);
		if (nf > MAX_CSV_FIELDS) {
			fprintf(stderr, "%s:%" PRIu32 ": more than %d fields\n", path, lineno,
				MAX_CSV_FIELDS);
			goto out;
		}
		if (first) {
			first = false;
			if (probe < nf && !is_uint(fld[probe])) {
				for (size_t k = 0; k < ncols; k++) {
					c->col[k] = -1;
					for (size_t f = 0; f < nf && c->col[k] < 0; f++)
						for (size_t a = 0; a < 4 && cols[k].names[a]; a++)
							if (strcmp(fld[f], cols[k].names[a]) == 0)
								c->col[k] = (int)f;
					if (c->col[k] < 0 && cols[k].required) {
						fprintf(stderr, "%s:%" PRIu32 ": header has no "
							"\"%s\" column\n", path, lineno,
							cols[k].names[0]);
						goto out;
					}
				}
				continue;
			}
			for (size_t k = 0; k < ncols; k++)
				c->col[k] = (int)k;
		}
		/* Each wanted column must be present (it may be empty). */
		for (size_t k = 0; k < ncols; k++) {
			if (c->col[k] >= 0 && (size_t)c->col[k] >= nf) {
				fprintf(stderr, "%s:%" PRIu32 ": %zu fields, expected at least %d "
					"(missing %s)\n", path, lineno, nf, c->col[k] + 1,
					cols[k].names[0]);
				goto out;
			}
		}
		if (c->nrows == cap) {
			cap = cap ? cap * 2 : 256;
			c->fields = xrealloc(c->fields, cap * ncols * sizeof(*c->fields));
			c->line = xrealloc(c->line, cap * sizeof(*c->line));
		}
		for (size_t k = 0; k < ncols; k++)
			c->fields[c->nrows * ncols + k] = c->col[k] >= 0 ? fld[c->col[k]] : NULL;
		c->line[c->nrows] = lineno;
		c->nrows++;
	}
	rc = 0;
out:
	if (rc != 0)
		csv_free(c);
	return rc;
}

static const char *csv_get(const struct csv *c, size_t row, size_t col)
{
	const char *f = c->fields[row * c->ncols + col];

	return f ? f : "";
}

/* A non-negative integer field; empty gives def when allow_empty. */
static int csv_uint(const struct csv *c, size_t row, size_t col, const char *what,
		    uint64_t max, bool allow_empty, uint64_t def, uint64_t *out)
{
	const char *s = csv_get(c, row, col);
	char *end;
	unsigned long long v;

	if (!*s && allow_empty) {
		*out = def;
		return 0;
	}
	errno = 0;
	v = is_uint(s) ? strtoull(s, &end, 10) : 0;
	if (!is_uint(s) || errno || v > max) {
		fprintf(stderr, "%s:%" PRIu32 ": %s: \"%s\" is not a whole number in 0..%" PRIu64
			"\n", c->path, c->line[row], what, s, max);
		return ERR_INVAL;
	}
	*out = v;
	return 0;
}

/* ================================================================
 * replay mode
 * ================================================================ */

enum { NC_NAME, NC_CPU, NC_MEM, NC_GPU, NC_MODEL, NC_COUNT };
static const struct csv_col node_cols[NC_COUNT] = {
	[NC_NAME] = {{"name", "sn", "node", NULL}, true},
	[NC_CPU] = {{"cpu_milli", NULL}, true},
	[NC_MEM] = {{"memory_mib", NULL}, true},
	[NC_GPU] = {{"gpu", "num_gpu", NULL}, true},
	[NC_MODEL] = {{"model", "gpu_model", NULL}, false},
};

enum { JC_NAME, JC_CPU, JC_MEM, JC_NGPU, JC_GMILLI, JC_SPEC, JC_CREATE, JC_DELETE, JC_COUNT };
static const struct csv_col job_cols[JC_COUNT] = {
	[JC_NAME] = {{"name", NULL}, true},
	[JC_CPU] = {{"cpu_milli", NULL}, true},
	[JC_MEM] = {{"memory_mib", NULL}, true},
	[JC_NGPU] = {{"num_gpu", NULL}, true},
	[JC_GMILLI] = {{"gpu_milli", NULL}, false},
	[JC_SPEC] = {{"gpu_spec", NULL}, false},
	[JC_CREATE] = {{"creation_time", NULL}, false},
	[JC_DELETE] = {{"deletion_time", NULL}, false},
};

/* GPU memory is not in the trace; a guess from the model name keeps the nodes
 * realistic (no trace job asks for GPU memory, so it does not change a fit). */
static uint64_t model_mem(const char *model)
{
	static const struct {
		const char *sub;
		uint64_t gib;
	} tab[] = {
		{"A100", 80}, {"H100", 80}, {"V100M16", 16}, {"V100", 32}, {"T4", 16},
		{"P100", 16}, {"A10", 24},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strstr(model, tab[i].sub))
			return tab[i].gib << 30;
	return 0;
}

int load_nodes(const char *path, struct rnode **out, uint32_t *nout)
{
	struct csv c;
	struct rnode *nodes = NULL;
	int rc;

	rc = csv_read(path, node_cols, NC_COUNT, NC_CPU, &c);
	if (rc != 0)
		return rc;
	rc = ERR_INVAL;
	if (c.nrows == 0 || c.nrows > UINT32_MAX / 2) {
		fprintf(stderr, "%s: no nodes\n", path);
		goto out;
	}
	nodes = xcalloc(c.nrows, sizeof(*nodes));
	for (size_t r = 0; r < c.nrows; r++) {
		const char *name = csv_get(&c, r, NC_NAME), *model = csv_get(&c, r, NC_MODEL);
		uint64_t cpu, mem, gpu;

		if (csv_uint(&c, r, NC_CPU, "cpu_milli", UINT32_MAX, false, 0, &cpu) ||
		    csv_uint(&c, r, NC_MEM, "memory_mib", UINT64_MAX / MIB, false, 0, &mem) ||
		    csv_uint(&c, r, NC_GPU, "gpu", RES_MAX_GPUS, false, 0, &gpu))
			goto out;
		if (!*name || strlen(name) >= SCHED_NAME_LEN || strlen(model) >= RES_MODEL_LEN) {
			fprintf(stderr, "%s:%" PRIu32 ": name must be 1..%d characters, model "
				"below %d\n", path, c.line[r], SCHED_NAME_LEN - 1, RES_MODEL_LEN);
			goto out;
		}
		for (size_t k = 0; k < r; k++) {
			if (strcmp(nodes[k].name, name) == 0) {
				fprintf(stderr, "%s:%" PRIu32 ": node %s appears twice\n", path,
					c.line[r], name);
				goto out;
			}
		}
		strlcpy_ok(nodes[r].name, name, sizeof(nodes[r].name));
		node_cap(&nodes[r].cap, (uint32_t)gpu, model_mem(model), model, mem * MIB,
			 (uint32_t)cpu);
	}
	*out = nodes;
	*nout = (uint32_t)c.nrows;
	nodes = NULL;
	rc = 0;
out:
	free(nodes);
	csv_free(&c);
	return rc;
}

/* "A|B|C" -> models; an empty spec means any model. */
static int parse_spec(const struct csv *c, size_t r, struct rjob *j)
{
	char buf[MAX_SPEC_MODELS * RES_MODEL_LEN];
	char *rest = buf, *tok;
	const char *spec = csv_get(c, r, JC_SPEC);

	j->nmodels = 0;
	if (!*spec)
		return 0;
	if (!strlcpy_ok(buf, spec, sizeof(buf)))
		goto bad;
	/* strsep, not strtok: "A||B" has an empty model and is an error. */
	while ((tok = strsep(&rest, "|")) != NULL) {
		if (j->nmodels == MAX_SPEC_MODELS || !*tok ||
		    !strlcpy_ok(j->models[j->nmodels], tok, RES_MODEL_LEN))
			goto bad;
		j->nmodels++;
	}
	if (j->nmodels > 0)
		return 0;
bad:
	fprintf(stderr, "%s:%" PRIu32 ": gpu_spec \"%s\" is not MODEL|MODEL|... (at most %d "
		"models of under %d characters)\n", c->path, c->line[r], spec, MAX_SPEC_MODELS,
		RES_MODEL_LEN);
	return ERR_INVAL;
}

/*
 * The trace's GPU columns: num_gpu > 1 asks num_gpu whole GPUs (gpu_milli is
 * then ignored); num_gpu == 1 asks gpu_milli milli-GPUs, a share when below
 * 1000 (0 or empty means the whole card); num_gpu == 0 is a CPU-only job.
 */
int load_jobs(const char *path, struct rjob **out, uint32_t *nout)
{
	struct csv c;
	struct rjob *jobs = NULL;
	int rc;

	rc = csv_read(path, job_cols, JC_COUNT, JC_CPU, &c);
	if (rc != 0)
		return rc;
	rc = ERR_INVAL;
	if (c.nrows == 0 || c.nrows > UINT32_MAX / 2) {
		fprintf(stderr, "%s: no jobs\n", path);
		goto out;
	}
	jobs = xcalloc(c.nrows, sizeof(*jobs));
	for (size_t r = 0; r < c.nrows; r++) {
		struct rjob *j = &jobs[r];
		uint64_t cpu, mem, ngpu, gmilli;

		if (!*csv_get(&c, r, JC_NAME)) {
			fprintf(stderr, "%s:%" PRIu32 ": empty name\n", path, c.line[r]);
			goto out;
		}
		if (csv_uint(&c, r, JC_CPU, "cpu_milli", UINT32_MAX, false, 0, &cpu) ||
		    csv_uint(&c, r, JC_MEM, "memory_mib", UINT64_MAX / MIB, false, 0, &mem) ||
		    csv_uint(&c, r, JC_NGPU, "num_gpu", RES_MAX_GPUS, false, 0, &ngpu) ||
		    csv_uint(&c, r, JC_GMILLI, "gpu_milli", MILLI, true, 0, &gmilli) ||
		    csv_uint(&c, r, JC_CREATE, "creation_time", UINT64_MAX - 1, true, 0,
			     &j->create) ||
		    csv_uint(&c, r, JC_DELETE, "deletion_time", UINT64_MAX - 1, true, UINT64_MAX,
			     &j->delete) ||
		    parse_spec(&c, r, j) != 0)
			goto out;
		if (j->delete < j->create) {
			fprintf(stderr, "%s:%" PRIu32 ": deletion_time %" PRIu64 " is before "
				"creation_time %" PRIu64 "\n", path, c.line[r], j->delete,
				j->create);
			goto out;
		}
		j->res.cpu_milli = (uint32_t)cpu;
		j->res.mem = mem * MIB;
		if (ngpu > 1)
			j->res.gpus_milli = (uint32_t)ngpu * MILLI;
		else if (ngpu == 1)
			j->res.gpus_milli = gmilli ? (uint32_t)gmilli : MILLI;
		j->order = (uint32_t)r;
	}
	*out = jobs;
	*nout = (uint32_t)c.nrows;
	jobs = NULL;
	rc = 0;
out:
	free(jobs);
	csv_free(&c);
	return rc;
}

int cmp_create(const void *a, const void *b)
{
	const struct rjob *x = a, *y = b;

	if (x->create != y->create)
		return x->create < y->create ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A binary min-heap of placed jobs by deletion time. */
struct heap {
	uint32_t *v;
	size_t n;
	const struct rjob *jobs;
};

static bool heap_less(const struct heap *h, size_t a, size_t b)
{
	const struct rjob *x = &h->jobs[h->v[a]], *y = &h->jobs[h->v[b]];

	return x->delete < y->delete || (x->delete == y->delete && h->v[a] < h->v[b]);
}

static void heap_swap(struct heap *h, size_t a, size_t b)
{
	uint32_t t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
}

static void heap_push(struct heap *h, uint32_t j)
{
	size_t i = h->n++;

	h->v[i] = j;
	while (i > 0 && heap_less(h, i, (i - 1) / 2)) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static uint32_t heap_pop(struct heap *h)
{
	uint32_t top = h->v[0];
	size_t i = 0;

	h->v[0] = h->v[--h->n];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && heap_less(h, l, m))
			m = l;
		if (r < h->n && heap_less(h, r, m))
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
	return top;
}

/*
 * One replay engine, three back ends: a scheduler policy (struct sched), or
 * one of two baselines on a plain array of nodes: first fit (file order)
 * and best fit (the fitting node with the least free GPU capacity after
 * the placement, a full scan).
 */
enum rkind { RK_SCHED, RK_FIRSTFIT, RK_BESTFIT };

#define MAX_RUNS 16   /* policies in one replay */
#define STEP_PCT 5    /* the inflated curve: a point per 5% of capacity arrived */
#define MAX_STEPS 200 /* up to --inflate 1000 */

struct replay {
	/* input */
	const char *name;
	enum rkind kind;
	const struct rnode *nodes;
	uint32_t nnodes;
	const struct rjob *jobs; /* in arrival order */
	uint32_t njobs;
	bool deletions;
	bool mix_trace; /* fgd & co: the mix is the whole job list, not learned */
	const struct sched_policy *policy; /* RK_SCHED */
	/* back ends */
	struct sched *s;
	struct res_node *plain;
	struct sched_slot *slots; /* per job: where it went */
	/* results */
	uint64_t cap_milli, alloc_milli, peak_milli;
	double area;              /* integral of alloc_milli over time */
	uint64_t t_first, t_last; /* creation times of the first and last job */
	uint64_t placed, failed, failed_gpu, released;
	uint64_t place_ns;
	/* Fragmentation: what was held when the first GPU job failed, and when
	 * the GPU demand that had arrived first reached the capacity. */
	bool failed_once, full_once;
	uint64_t first_fail_milli, full_milli, arrived_milli;
	/* The curve: allocated milli when arrivals first reached k * STEP_PCT %
	 * of capacity, k = 1..nsteps. */
	uint64_t step_milli[MAX_STEPS + 1];
	uint32_t nsteps;
};

static bool model_ok(const struct res_node *n, const struct rjob *j)
{
	if (j->nmodels == 0 || j->res.gpus_milli == 0)
		return true;
	if (n->ngpus == 0)
		return false;
	for (uint32_t m = 0; m < j->nmodels; m++)
		if (strstr(n->gpus[0].model, j->models[m]))
			return true;
	return false;
}

static uint32_t free_milli(const struct res_node *n)
{
	uint32_t f = 0;

	for (uint32_t g = 0; g < n->ngpus; g++)
		f += MILLI - (n->gpus[g].used_milli > MILLI ? MILLI : n->gpus[g].used_milli);
	return f;
}

/* Place job j.  Ours tries the listed models in their order (a request names
 * one model substring); the baselines take any node with any of them. */
static bool replay_place(struct replay *rp, uint32_t j)
{
	const struct rjob *job = &rp->jobs[j];
	struct sched_slot *slot = &rp->slots[j];
	uint32_t best = UINT32_MAX, best_left = UINT32_MAX;

	if (rp->kind == RK_SCHED) {
		struct sched_req req;

		memset(&req, 0, sizeof(req));
		req.job = (uint64_t)j + 1;
		req.ntasks = 1;
		req.res = job->res;
		req.policy = rp->policy;
		if (job->nmodels == 0 || job->res.gpus_milli == 0)
			return sched_place(rp->s, &req, slot) == 0;
		for (uint32_t m = 0; m < job->nmodels; m++) {
			req.gpu_model = job->models[m];
			if (sched_place(rp->s, &req, slot) == 0)
				return true;
		}
		return false;
	}
	for (uint32_t i = 0; i < rp->nnodes; i++) {
		struct res_node *n = &rp->plain[i];
		uint32_t left;

		if (!model_ok(n, job) || !res_fit(n, &job->res, slot->gpu_pos, &slot->ngpus))
			continue;
		if (rp->kind == RK_FIRSTFIT) {
			best = i;
			break;
		}
		left = free_milli(n) - (res_is_share(&job->res) ? job->res.gpus_milli
							       : res_whole_gpus(&job->res) * MILLI);
		if (left < best_left) {
			best = i;
			best_left = left;
		}
	}
	if (best == UINT32_MAX)
		return false;
	res_fit(&rp->plain[best], &job->res, slot->gpu_pos, &slot->ngpus);
	res_take(&rp->plain[best], &job->res, slot->gpu_pos, slot->ngpus);
	slot->node = best;
	return true;
}

static void replay_release(struct replay *rp, uint32_t j)
{
	const struct rjob *job = &rp->jobs[j];
	const struct sched_slot *slot = &rp->slots[j];

	if (rp->kind == RK_SCHED)
		sched_release(rp->s, &job->res, slot, 1);
	else
		res_give(&rp->plain[slot->node], &job->res, slot->gpu_pos, slot->ngpus);
	rp->alloc_milli -= job->res.gpus_milli;
	rp->released++;
}

/* Move the clock to t, adding the allocation held since the last event. */
static void advance(struct replay *rp, uint64_t *clock, uint64_t t)
{
	if (t > *clock) {
		rp->area += (double)rp->alloc_milli * (double)(t - *clock);
		*clock = t;
	}
}

/* The workload mix of the whole job list, for policies that use one. */
static void mix_from_jobs(struct replay *rp)
{
	sched_mix_config(rp->s, 0, false);
	for (uint32_t j = 0; j < rp->njobs; j++) {
		const char *m[MAX_SPEC_MODELS];

		for (uint32_t k = 0; k < rp->jobs[j].nmodels; k++)
			m[k] = rp->jobs[j].models[k];
		sched_mix_add(rp->s, &rp->jobs[j].res, m, rp->jobs[j].nmodels, 1);
	}
}

static int replay_run(struct replay *rp)
{
	struct heap h = {0};
	uint64_t clock, t0;
	int rc = 0;

	rp->slots = xcalloc(rp->njobs, sizeof(*rp->slots));
	h.v = xcalloc(rp->njobs, sizeof(*h.v));
	h.jobs = rp->jobs;
	if (rp->kind == RK_SCHED) {
		rp->s = sched_new();
		for (uint32_t i = 0; i < rp->nnodes; i++)
			sched_node_add(rp->s, rp->nodes[i].name, &rp->nodes[i].cap, NULL, 0);
		if (rp->mix_trace)
			mix_from_jobs(rp);
	} else {
		rp->plain = xmalloc((size_t)rp->nnodes * sizeof(*rp->plain));
		for (uint32_t i = 0; i < rp->nnodes; i++)
			rp->plain[i] = rp->nodes[i].cap;
	}
	for (uint32_t i = 0; i < rp->nnodes; i++)
		rp->cap_milli += (uint64_t)rp->nodes[i].cap.ngpus * MILLI;

	rp->t_first = clock = rp->jobs[0].create;
	rp->t_last = rp->jobs[rp->njobs - 1].create;
	rp->nsteps = 0;
	for (uint32_t j = 0; j < rp->njobs; j++) {
		const struct rjob *job = &rp->jobs[j];
		bool ok;

		/* Deletions due at or before this creation happen first. */
		while (h.n > 0 && rp->jobs[h.v[0]].delete <= job->create) {
			uint32_t d = heap_pop(&h);

			advance(rp, &clock, rp->jobs[d].delete);
			replay_release(rp, d);
		}
		advance(rp, &clock, job->create);
		rp->arrived_milli += job->res.gpus_milli;
		t0 = clock_ns();
		ok = replay_place(rp, j);
		rp->place_ns += clock_ns() - t0;
		if (!ok) {
			rp->failed++;
			if (job->res.gpus_milli && !rp->failed_once) {
				rp->failed_once = true;
				rp->first_fail_milli = rp->alloc_milli;
			}
			if (job->res.gpus_milli)
				rp->failed_gpu++;
		} else {
			rp->placed++;
			rp->alloc_milli += job->res.gpus_milli;
			if (rp->alloc_milli > rp->peak_milli)
				rp->peak_milli = rp->alloc_milli;
			if (rp->deletions && job->delete != UINT64_MAX)
				heap_push(&h, j);
		}
		if (!rp->full_once && rp->arrived_milli >= rp->cap_milli) {
			rp->full_once = true;
			rp->full_milli = rp->alloc_milli;
		}
		while (rp->nsteps < MAX_STEPS && rp->cap_milli &&
		       rp->arrived_milli * 100 >= (uint64_t)(rp->nsteps + 1) * STEP_PCT * rp->cap_milli)
			rp->step_milli[++rp->nsteps] = rp->alloc_milli;
	}
	/* Check the books before draining. */
	if ((rp->kind == RK_SCHED ? sched_used_milli(rp->s)
				  : plain_used_milli(rp->plain, rp->nnodes)) != rp->alloc_milli) {
		fprintf(stderr, "mlbench replay: %s: books disagree with the placements\n",
			rp->name);
		rc = 1;
	}
	free(h.v);
	return rc;
}

static void replay_free(struct replay *rp)
{
	sched_free(rp->s);
	free(rp->plain);
	free(rp->slots);
	rp->s = NULL;
	rp->plain = NULL;
	rp->slots = NULL;
}

static void print_replay(const struct replay *rp)
{
	double span = (double)(rp->t_last - rp->t_first);

	printf("%s%s\n", rp->name,
	       rp->kind == RK_FIRSTFIT  ? " (baseline: first fit, linear scan)"
	       : rp->kind == RK_BESTFIT ? " (baseline: best fit, linear scan)"
					: " (sched_place)");
	printf("  jobs placed             %" PRIu64 "\n", rp->placed);
	printf("  jobs failed             %" PRIu64 " (%" PRIu64 " of them asking GPUs)\n",
	       rp->failed, rp->failed_gpu);
	if (rp->deletions)
		printf("  jobs released           %" PRIu64 " (before the last creation)\n",
		       rp->released);
	printf("  GPU allocated at end    %.2f%%%s\n", share_pct(rp->alloc_milli, rp->cap_milli),
	       rp->deletions ? " (at the last creation)" : "");
	if (rp->failed_once)
		printf("  GPU allocated at the first failed GPU job     %.2f%%\n",
		       share_pct(rp->first_fail_milli, rp->cap_milli));
	else
		printf("  GPU allocated at the first failed GPU job     - (none failed)\n");
	if (rp->full_once && !rp->deletions)
		printf("  GPU allocated when demand arrived = capacity  %.2f%%\n",
		       share_pct(rp->full_milli, rp->cap_milli));
	if (rp->deletions) {
		printf("  GPU allocated, peak     %.2f%%\n",
		       share_pct(rp->peak_milli, rp->cap_milli));
		printf("  GPU allocated, average  %.2f%% (time-weighted, first to last "
		       "creation)\n", span > 0 && rp->cap_milli
				      ? 100.0 * rp->area / span / (double)rp->cap_milli
				      : share_pct(rp->alloc_milli, rp->cap_milli));
	}
	printf("  placement time          %.3f ms (%.0f placements/s)\n",
	       (double)rp->place_ns / 1e6, per_sec(rp->njobs, rp->place_ns));
}

/* The runs side by side: one row per measure, one column per policy. */
static void print_table(const struct replay *runs, uint32_t nruns)
{
	printf("\n%-34s", "side by side");
	for (uint32_t i = 0; i < nruns; i++)
		printf(" %9s", runs[i].name);
	printf("\n%-34s", "GPU allocated at end, %");
	for (uint32_t i = 0; i < nruns; i++)
		printf(" %9.2f", share_pct(runs[i].alloc_milli, runs[i].cap_milli));
	printf("\n%-34s", "at the first failed GPU job, %");
	for (uint32_t i = 0; i < nruns; i++) {
		if (runs[i].failed_once)
			printf(" %9.2f", share_pct(runs[i].first_fail_milli, runs[i].cap_milli));
		else
			printf(" %9s", "-");
	}
	printf("\n%-34s", "jobs failed");
	for (uint32_t i = 0; i < nruns; i++)
		printf(" %9" PRIu64, runs[i].failed);
	printf("\n%-34s", "placements/s");
	for (uint32_t i = 0; i < nruns; i++)
		printf(" %9.0f", per_sec(runs[i].njobs, runs[i].place_ns));
	printf("\n");
}

/* The inflated curve: allocated share at each STEP_PCT of arrived work. */
static int print_curve(const struct replay *runs, uint32_t nruns, const char *csv_path)
{
	uint32_t nsteps = runs[0].nsteps;
	FILE *f = NULL;

	for (uint32_t i = 1; i < nruns; i++)
		if (runs[i].nsteps < nsteps)
			nsteps = runs[i].nsteps;
	if (csv_path) {
		f = fopen(csv_path, "w");
		if (!f) {
			fprintf(stderr, "mlbench replay: %s: %s\n", csv_path, strerror(errno));
			return 1;
		}
		fprintf(f, "arrived_pct");
		for (uint32_t i = 0; i < nruns; i++)
			fprintf(f, ",%s", runs[i].name);
		fprintf(f, "\n");
	}
	printf("\nGPU allocated (%% of capacity) as the arrived GPU demand grows\n%-12s",
	       "arrived %");
	for (uint32_t i = 0; i < nruns; i++)
		printf(" %9s", runs[i].name);
	printf("\n");
	for (uint32_t k = 1; k <= nsteps; k++) {
		printf("%-12u", k * STEP_PCT);
		if (f)
			fprintf(f, "%u", k * STEP_PCT);
		for (uint32_t i = 0; i < nruns; i++) {
			double v = share_pct(runs[i].step_milli[k], runs[i].cap_milli);

			printf(" %9.2f", v);
			if (f)
				fprintf(f, ",%.3f", v);
		}
		printf("\n");
		if (f)
			fprintf(f, "\n");
	}
	if (f && fclose(f) != 0) {
		fprintf(stderr, "mlbench replay: %s: %s\n", csv_path, strerror(errno));
		return 1;
	}
	if (f)
		printf("curve written to %s\n", csv_path);
	return 0;
}

/* Parse --policy: names separated by commas; "all" is the two baselines
 * and every policy known (built in and loaded). */
static int parse_runs(const char *text, bool baseline, struct replay *runs, uint32_t *nruns)
{
	char *copy = xstrdup(text), *save = NULL, *tok;
	uint32_t n = 0;
	int rc = EXIT_BAD;

	if (strcmp(text, "all") == 0) {
		free(copy);
		copy = xstrdup("firstfit,bestfit");
		for (uint32_t i = 0; i < sched_policy_count(); i++) {
			char *c = xasprintf("%s,%s", copy, sched_policy_at(i)->name);

			free(copy);
			copy = c;
		}
	} else if (baseline && !strstr(text, "firstfit")) {
		char *c = xasprintf("%s,firstfit", copy);

		free(copy);
		copy = c;
	}
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		struct replay *rp = &runs[n];

		if (n == MAX_RUNS) {
			fprintf(stderr, "mlbench replay: --policy: more than %d policies\n", MAX_RUNS);
			goto out;
		}
		memset(rp, 0, sizeof(*rp));
		if (strcmp(tok, "firstfit") == 0) {
			rp->kind = RK_FIRSTFIT;
			rp->name = "firstfit";
		} else if (strcmp(tok, "bestfit") == 0) {
			rp->kind = RK_BESTFIT;
			rp->name = "bestfit";
		} else if ((rp->policy = sched_policy_find(tok)) != NULL) {
			rp->kind = RK_SCHED;
			rp->name = rp->policy->name;
		} else {
			fprintf(stderr, "mlbench replay: no policy \"%s\" (firstfit, bestfit, or one "
				"of:", tok);
			for (uint32_t i = 0; i < sched_policy_count(); i++)
				fprintf(stderr, " %s", sched_policy_at(i)->name);
			fprintf(stderr, ")\n");
			goto out;
		}
		n++;
	}
	*nruns = n;
	rc = 0;
out:
	free(copy);
	return rc;
}

/* The arrivals: the trace in creation order, then (inflate > 0) tasks
 * sampled from it with replacement until the GPU demand that arrived is
 * inflate % of the capacity.  Sampled tasks arrive after the trace and never
 * end. */
static struct rjob *make_arrivals(const struct rjob *jobs, uint32_t njobs, uint64_t cap_milli,
				  uint64_t inflate, uint64_t seed, uint32_t *nout)
{
	uint64_t arrived = 0, goal = cap_milli * inflate / 100, state = seed, gpu_jobs = 0;
	size_t n = njobs, cap = njobs;
	struct rjob *out = xmalloc(cap * sizeof(*out));

	memcpy(out, jobs, njobs * sizeof(*out));
	for (uint32_t j = 0; j < njobs; j++) {
		arrived += jobs[j].res.gpus_milli;
		gpu_jobs += jobs[j].res.gpus_milli > 0;
	}
	while (inflate > 0 && gpu_jobs > 0 && arrived < goal && n < UINT32_MAX / 2) {
		struct rjob *j;

		if (n == cap) {
			cap *= 2;
			out = xrealloc(out, cap * sizeof(*out));
		}
		j = &out[n];
		*j = jobs[rng_next(&state) % njobs];
		j->create = jobs[njobs - 1].create;
		j->delete = UINT64_MAX;
		j->order = (uint32_t)n;
		arrived += j->res.gpus_milli;
		n++;
	}
	*nout = (uint32_t)n;
	return out;
}

static int cmd_replay(int argc, char **argv)
{
	const char *nodes_path, *jobs_path, *pname, *csv_path, *mix, *plugdir;
	bool no_del, no_baseline, quiet;
	uint64_t inflate, seed;
	const struct opt tab[] = {
		{"nodes", OPT_STR, NULL, "nodes CSV: name,cpu_milli,memory_mib,gpu,model",
		 &nodes_path},
		{"jobs", OPT_STR, NULL, "jobs CSV: name,cpu_milli,memory_mib,num_gpu,gpu_milli"
		 "[,gpu_spec][,creation_time][,deletion_time] (other columns ignored)", &jobs_path},
		{"policy", OPT_STR, "binpack",
		 "policies, comma-separated: firstfit, bestfit, binpack, spread, fgd, a plugin's; "
		 "or all", &pname},
		{"no-deletions", OPT_BOOL, "false", "never release a job", &no_del},
		{"no-baseline", OPT_BOOL, "false", "do not add the first-fit baseline", &no_baseline},
		{"inflate", OPT_UINT, "0", "after the trace, submit tasks sampled from it until "
		 "this percentage of GPU capacity has arrived (implies --no-deletions); prints the curve",
		 &inflate},
		{"seed", OPT_UINT, "1", "seed of the sampled tasks", &seed},
		{"csv", OPT_STR, NULL, "write the curve (--inflate) to this CSV file", &csv_path},
		{"mix", OPT_STR, "trace", "workload mix for fgd: trace (every task of the job "
		 "list, as the paper does) or seen (learned from the tasks placed so far)", &mix},
		{"plugin-dir", OPT_STR, NULL, "load placement policy plugins (*.so) from here",
		 &plugdir},
		{"quiet", OPT_BOOL, "false", "only the side-by-side table and the curve", &quiet},
		{NULL, 0, NULL, NULL, NULL},
	};
	struct rnode *nodes = NULL;
	struct rjob *jobs = NULL, *arr = NULL;
	uint32_t nnodes = 0, njobs = 0, narr = 0, nruns = 0;
	uint64_t cap_milli = 0, demand = 0;
	struct replay *runs = xcalloc(MAX_RUNS, sizeof(*runs));
	char err[256];
	int nargs, rc;

	/* Hybrid clusters are their own simulation (mlbench_pools.c). */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--pools") == 0 || strncmp(argv[i], "--pools=", 8) == 0) {
			free(runs);
			return pools_replay_main(argc, argv);
		}
	rc = opt_parse(tab, argc, argv, &nargs, "mlbench replay", "--nodes FILE --jobs FILE",
		       err, sizeof(err));
	if (rc == 1) {
		free(runs);
		return 0;
	}
	if (rc != 0 || nargs != 0 || !nodes_path || !jobs_path) {
		fprintf(stderr, "mlbench replay: %s\n",
			rc     ? err
			: nargs ? "unexpected argument"
				: "--nodes and --jobs are required");
		free(runs);
		return EXIT_BAD;
	}
	rc = EXIT_BAD;
	if (strcmp(mix, "trace") != 0 && strcmp(mix, "seen") != 0) {
		fprintf(stderr, "mlbench replay: --mix is trace or seen, not \"%s\"\n", mix);
		goto out;
	}
	if (inflate > MAX_STEPS * STEP_PCT) {
		fprintf(stderr, "mlbench replay: --inflate at most %d\n", MAX_STEPS * STEP_PCT);
		goto out;
	}
	if (plugdir && sched_policy_load_dir(plugdir, err, sizeof(err)) != 0) {
		fprintf(stderr, "mlbench replay: --plugin-dir: %s\n", err);
		goto out;
	}
	if (parse_runs(pname, !no_baseline, runs, &nruns) != 0)
		goto out;
	if (load_nodes(nodes_path, &nodes, &nnodes) != 0 || load_jobs(jobs_path, &jobs, &njobs))
		goto out;
	qsort(jobs, njobs, sizeof(*jobs), cmp_create);
	for (uint32_t i = 0; i < nnodes; i++)
		cap_milli += (uint64_t)nodes[i].cap.ngpus * MILLI;
	if (inflate)
		no_del = true;
	arr = make_arrivals(jobs, njobs, cap_milli, inflate, seed, &narr);
	for (uint32_t j = 0; j < narr; j++)
		demand += arr[j].res.gpus_milli;

	printf("mlbench replay: %" PRIu32 " nodes, %" PRIu32 " jobs", nnodes, njobs);
	if (inflate)
		printf(" + %" PRIu32 " sampled (seed %" PRIu64 ") to %" PRIu64 "%% of capacity",
		       narr - njobs, seed, inflate);
	printf(", %s, mix %s\n", no_del ? "no deletions" : "with deletions", mix);
	printf("  GPU capacity            %" PRIu64 " milli-GPUs (%" PRIu64 " GPUs); GPU demand "
	       "%.2f%% of it\n", cap_milli, cap_milli / MILLI, share_pct(demand, cap_milli));
	rc = 1;
	for (uint32_t i = 0; i < nruns; i++) {
		struct replay *rp = &runs[i];

		rp->nodes = nodes;
		rp->nnodes = nnodes;
		rp->jobs = arr;
		rp->njobs = narr;
		rp->deletions = !no_del;
		rp->mix_trace = strcmp(mix, "trace") == 0;
		if (replay_run(rp) != 0)
			goto out;
		if (!quiet)
			print_replay(rp);
		/* Keep only the figures: a big trace times many policies adds up. */
		replay_free(rp);
	}
	print_table(runs, nruns);
	if (inflate && print_curve(runs, nruns, csv_path) != 0)
		goto out;
	rc = 0;
out:
	for (uint32_t i = 0; i < MAX_RUNS; i++)
		replay_free(&runs[i]);
	free(runs);
	free(nodes);
	free(jobs);
	free(arr);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mlbench sched [options]    place synthetic jobs on simulated nodes\n"
		"       mlbench replay --nodes FILE --jobs FILE [options]\n"
		"                                  replay a cluster trace\n"
		"       mlbench replay --pools FILE --nodes FILE --jobs FILE [options]\n"
		"                                  the trace on on-prem nodes plus cloud bursting\n"
		"       mlbench agents [--count N --interval 1s --tasks-per-agent N --submit N]\n"
		"                                  simulated agents against a real mlmaster\n"
		"       mlbench sched|replay|agents --help\n");
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "agents") == 0)
		return agents_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "sched") == 0)
		return cmd_sched(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "replay") == 0)
		return cmd_replay(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return EXIT_BAD;
}
