/*
 * burst.c - what pools do each turn (see pools.h): follow provisioned nodes
 * (joined, late, lost, idle), run and reap the hooks, and decide bursts.
 *
 * THE BURST DECISION.  Every scan (a few per second at most) collects the
 * jobs that have waited with unplaced tasks for burst_after.  It builds a
 * simulated cluster in a scratch scheduler core: every schedulable node as it
 * is now (free resources, labels, cost), plus a template node for every
 * provisioned node still booting.  The waiting jobs are placed there in queue
 * order (priority, then age) with their own policy, constraints and cost cap;
 * what places is already covered by capacity that exists or is coming, so
 * one need is never provisioned for twice.  For the rest, each cloud pool
 * with room under max (and not backing off after failures) gets template
 * nodes added one at a time, the rest retried after each; the pool's answer
 * is how many jobs it lets run and the fewest nodes that does it.  The pool
 * that runs the most jobs wins, then the cheaper, then the one needing fewer
 * nodes.  A job that runs on no pool's template (a constraint no pool meets,
 * a cost cap below every pool, a gang larger than max nodes) never bursts.
 * Cost: O(nodes + waiting jobs x max) per scan, in a scratch core freed at
 * once; never on the placement path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "pools.h"
#include "units.h"
#include "proc.h"
#include "util.h"

extern char **environ;

struct pending_seen {
	uint64_t job;
	uint64_t since; /* monotonic ms */
};

/* ---- hooks ---- */

static char *err_path(const struct master *m, const struct pnode *pn, bool release)
{
	return xasprintf("%s/hooks/%s-%s.err", m->cfg.state_dir, pn->name,
			 release ? "release" : "provision");
}

/* The join token agents need, "" with --insecure. */
static char *join_token(const struct master *m)
{
	char *path, *t = NULL;
	size_t len;

	if (m->cfg.insecure)
		return xstrdup("");
	path = xasprintf("%s/join.token", m->cfg.state_dir);
	if (file_read(path, 4096, &t, &len) != 0) {
		log_warn("pools: cannot read %s: hooks get no MLSCHED_JOIN_TOKEN", path);
		t = xstrdup("");
	}
	t[strcspn(t, "\r\n")] = '\0';
	free(path);
	return t;
}

/* environ without our variables, plus ours. */
static char **hook_env(const struct master *m, const struct pool *p, const struct pnode *pn,
		       bool release, char *tok)
{
	size_t n = 0, k = 0;
	char **env, labels[1024] = "", cpus[32], mem[32];

	for (char **e = environ; *e; e++)
		n++;
	env = xcalloc(n + 16, sizeof(*env));
	for (char **e = environ; *e; e++)
		if (strncmp(*e, "MLSCHED_POOL=", 13) && strncmp(*e, "MLSCHED_NODE=", 13) &&
		    strncmp(*e, "MLSCHED_JOIN_TOKEN=", 19) && strncmp(*e, "MLSCHED_MASTER=", 15) &&
		    strncmp(*e, "MLSCHED_GPUS=", 13) && strncmp(*e, "MLSCHED_LABELS=", 15) &&
		    strncmp(*e, "MLSCHED_CPUS=", 13) && strncmp(*e, "MLSCHED_MEMORY=", 15) &&
		    strncmp(*e, "MLSCHED_ACTION=", 15) && strncmp(*e, "MLSCHED_REASON=", 15))
			env[k++] = xstrdup(*e);
	for (uint32_t i = 0; i < p->nlabels; i++) {
		size_t at = strlen(labels);
		snprintf(labels + at, sizeof(labels) - at, "%s%s=%s", i ? "," : "", p->labels[i].key,
			 p->labels[i].val);
	}
	units_format_milli(p->tmpl.cpu_total, cpus, sizeof(cpus));
	units_format_size(p->tmpl.mem_total, mem, sizeof(mem));
	env[k++] = xasprintf("MLSCHED_ACTION=%s", release ? "release" : "provision");
	env[k++] = xasprintf("MLSCHED_POOL=%s", p->name);
	env[k++] = xasprintf("MLSCHED_NODE=%s", pn->name);
	env[k++] = xasprintf("MLSCHED_REASON=%s", pn->reason);
	env[k++] = xasprintf("MLSCHED_MASTER=%s", m->cfg.advertise_agents);
	env[k++] = xasprintf("MLSCHED_JOIN_TOKEN=%s", tok);
	env[k++] = xasprintf("MLSCHED_GPUS=%s", p->tmpl_gpus);
	env[k++] = xasprintf("MLSCHED_CPUS=%s", cpus);
	env[k++] = xasprintf("MLSCHED_MEMORY=%s", mem);
	env[k++] = xasprintf("MLSCHED_LABELS=%s", labels);
	env[k] = NULL;
	return env;
}

/* The last POOL_TAIL - 1 bytes of a file, trailing newlines dropped. */
static void read_tail(const char *path, char *out, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t r;

	out[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)(len - 1))
		lseek(fd, size - (off_t)(len - 1), SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	r = read(fd, out, len - 1);
	close(fd);
	if (r < 0)
		r = 0;
	out[r] = '\0';
	while (r > 0 && (out[r - 1] == '\n' || out[r - 1] == '\r'))
		out[--r] = '\0';
	for (ssize_t i = 0; i < r; i++)
		if (out[i] == '\0')
			out[i] = ' ';
}

/* The history entry of pn's running hook. */
static struct hookrun *running_entry(struct pool *p, const struct pnode *pn, bool release)
{
	for (uint32_t i = p->nhist; i-- > 0;)
		if (!p->hist[i].finished && p->hist[i].release == release &&
		    strcmp(p->hist[i].node, pn->name) == 0)
			return &p->hist[i];
	return NULL;
}

static uint64_t backoff_ms(const struct master *m, uint32_t failures)
{
	uint64_t b = m->pools->burst_after_ms;

	for (uint32_t i = 1; i < failures && b < POOL_BACKOFF_MAX_MS; i++)
		b *= 2;
	return b < POOL_BACKOFF_MAX_MS ? b : POOL_BACKOFF_MAX_MS;
}

static void release_node(struct master *m, struct pool *p, struct pnode *pn, bool failure,
			 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Move pn to releasing (its hook runs after the commit); a failure makes
 * the pool back off. */
static void release_node(struct master *m, struct pool *p, struct pnode *pn, bool failure,
			 const char *fmt, ...)
{
	struct node *n = node_find(m, pn->name);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pn->reason, sizeof(pn->reason), fmt, ap);
	va_end(ap);
	pn->state = PNODE_RELEASING;
	pn->since = wall_ms();
	pn->hook_due = true;
	pn->retry_at = 0;
	strlcpy_ok(p->last_release, pn->reason, sizeof(p->last_release));
	p->last_release_at = pn->since;
	if (failure) {
		p->failures++;
		p->failed++;
		p->backoff_until = wall_ms() + backoff_ms(m, p->failures);
		log_warn("pool=%s node=%s provision failed (%u in a row, next try in %" PRIu64
			 " ms): %s",
			 p->name, pn->name, p->failures, backoff_ms(m, p->failures), pn->reason);
	}
	log_info("pool=%s node=%s releasing: %s", p->name, pn->name, pn->reason);
	p->dirty = true;
	/* No new work on it (kept in its record, so a restart keeps it). */
	if (n && !n->drained) {
		n->drained = true;
		n->dirty = true;
		sched_node_state(m, n);
	}
}

static void spawn_hook(struct master *m, struct pool *p, struct pnode *pn)
{
	bool release = pn->state == PNODE_RELEASING;
	const char *prog = release ? p->release : p->provision;
	char *argv[] = {(char *)prog, NULL};
	char *dir = xasprintf("%s/hooks", m->cfg.state_dir), *ep = err_path(m, pn, release);
	char *tok = join_token(m), **env = hook_env(m, p, pn, release, tok);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct hookrun *h;
	pid_t pid = 0;
	int e;

	pn->hook_due = false;
	h = pools_hist_add(p);
	strlcpy_ok(h->node, pn->name, sizeof(h->node));
	h->release = release;
	strlcpy_ok(h->reason, pn->reason, sizeof(h->reason));
	h->started = wall_ms();
	p->dirty = true;
	mkdir_p(dir, 0700);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	/* A clean signal state, and a process group of its own, so that a
	 * hook past its time is killed with what it started. */
	if ((e = proc_spawnattr(&attr, true)) == 0)
		e = posix_spawn(&pid, prog, &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		h->finished = wall_ms();
		h->exit_code = -1;
		snprintf(h->tail, sizeof(h->tail), "cannot run %s: %s", prog, strerror(e));
		log_error("pool=%s node=%s %s hook: %s", p->name, pn->name,
			  release ? "release" : "provision", h->tail);
		if (release)
			pn->retry_at = now_ms() + backoff_ms(m, 1);
		else
			release_node(m, p, pn, true, "provision hook did not start: %s", h->tail);
	} else {
		pn->hook_pid = pid;
		pn->retry_at = now_ms() + p->boot_timeout_ms; /* the hook's deadline */
		log_info("pool=%s node=%s %s hook started (pid %d): %s", p->name, pn->name,
			 release ? "release" : "provision", (int)pid, pn->reason);
	}
	for (char **x = env; *x; x++)
		free(*x);
	free(env);
	free(tok);
	free(ep);
	free(dir);
}

/* pn's hook ended with status st. */
static void hook_done(struct master *m, struct pool *p, uint32_t idx, int st)
{
	struct pnode *pn = &p->nodes[idx];
	bool release = pn->state == PNODE_RELEASING;
	struct hookrun *h = running_entry(p, pn, release);
	struct hookrun tmp;
	char *ep = err_path(m, pn, release);

	if (!h) {
		memset(&tmp, 0, sizeof(tmp));
		h = &tmp;
	}
	pn->hook_pid = 0;
	pn->retry_at = 0;
	h->finished = wall_ms();
	h->exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	h->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	read_tail(ep, h->tail, sizeof(h->tail));
	free(ep);
	p->dirty = true;
	if (h->exit_code == 0)
		log_info("pool=%s node=%s %s hook exited 0", p->name, pn->name,
			 release ? "release" : "provision");
	else
		log_warn("pool=%s node=%s %s hook %s %d: %s", p->name, pn->name,
			 release ? "release" : "provision",
			 h->signal ? "killed by signal" : "exited",
			 h->signal ? h->signal : h->exit_code, h->tail[0] ? h->tail : "(no stderr)");
	if (release) {
		if (h->exit_code == 0) {
			p->released++;
			pools_pnode_del(p, pn);
		} else {
			pn->retry_at = now_ms() + backoff_ms(m, 1);
		}
		return;
	}
	if (h->exit_code != 0 && pn->state == PNODE_BOOTING) {
		const char *last = strrchr(h->tail, '\n');
		release_node(m, p, pn, true, "provision hook %s %d: %.160s",
			     h->signal ? "killed by signal" : "exited",
			     h->signal ? h->signal : h->exit_code, last ? last + 1 : h->tail);
	}
}

static void reap(struct master *m, struct pool *p)
{
	uint64_t now = now_ms();

	for (uint32_t i = 0; i < p->nnodes; i++) {
		struct pnode *pn = &p->nodes[i];
		int st;
		pid_t r;

		if (!pn->hook_pid)
			continue;
		r = waitpid(pn->hook_pid, &st, WNOHANG);
		if (r == pn->hook_pid) {
			uint32_t before = p->nnodes;
			hook_done(m, p, i, st);
			if (p->nnodes < before)
				i--; /* its record went */
		} else if (r < 0 && errno == ECHILD) {
			pn->hook_pid = 0;
		} else if (pn->retry_at && now >= pn->retry_at) {
			log_warn("pool=%s node=%s hook still running after %" PRIu64
				 " ms: killing it",
				 p->name, pn->name, p->boot_timeout_ms);
			kill(-pn->hook_pid, SIGKILL);
			pn->retry_at = 0;
		}
	}
}

/* ---- following nodes ---- */

static uint32_t active_nodes(const struct pool *p)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->nnodes; i++)
		n += p->nodes[i].state != PNODE_RELEASING;
	return n;
}

static void follow(struct master *m, struct pool *p)
{
	uint64_t now = now_ms(), wall = wall_ms();
	char d[32];

	for (uint32_t i = 0; i < p->nnodes; i++) {
		struct pnode *pn = &p->nodes[i];
		struct node *n = node_find(m, pn->name);
		bool up = n && n->state == NODE_READY && n->confirmed;

		switch (pn->state) {
		case PNODE_BOOTING:
			if (up && pools_of_node(m, n) == p) {
				pn->state = PNODE_READY;
				pn->since = wall;
				pn->idle_since = pn->lost_since = 0;
				p->failures = 0;
				p->backoff_until = 0;
				p->dirty = true;
				log_info("pool=%s node=%s joined", p->name, pn->name);
			} else if (up) {
				release_node(m, p, pn, true,
					     "joined without the label pool=%s (check the provision "
					     "hook's MLSCHED_LABELS)",
					     p->name);
			} else if (wall >= pn->since + p->boot_timeout_ms && !pn->hook_due) {
				units_format_duration(p->boot_timeout_ms, d, sizeof(d));
				release_node(m, p, pn, true, "did not join within boot_timeout %s",
					     d);
			}
			break;
		case PNODE_READY:
			if (!up) {
				if (!pn->lost_since)
					pn->lost_since = now;
				pn->idle_since = 0;
				if (now - pn->lost_since >= p->boot_timeout_ms) {
					units_format_duration(now - pn->lost_since, d, sizeof(d));
					release_node(m, p, pn, false, "lost for %s", d);
				}
				break;
			}
			pn->lost_since = 0;
			if (n->ntasks > 0) {
				pn->idle_since = 0;
				break;
			}
			if (!pn->idle_since)
				pn->idle_since = now;
			if (now - pn->idle_since >= p->idle_ms && active_nodes(p) > p->min) {
				units_format_duration(p->idle_ms, d, sizeof(d));
				release_node(m, p, pn, false, "idle for %s", d);
			}
			break;
		case PNODE_RELEASING:
			/* Keep it drained (an agent restart may come back). */
			if (n && !n->drained) {
				n->drained = true;
				n->dirty = true;
				sched_node_state(m, n);
			}
			if (!pn->hook_pid && !pn->hook_due && pn->retry_at && now >= pn->retry_at)
				pn->hook_due = true;
			break;
		}
	}
}

/* ---- the burst decision ---- */

struct need {
	struct job *j;
	struct sched_req req;
	struct sched_cons cons[SCHED_MAX_CONS];
	/* A multi-role gang (roles:): its required roles, one part each;
	 * req.parts points here once the array stops moving (need_parts). */
	struct sched_part parts[SPEC_MAX_ROLES];
	bool placed; /* by what exists or is booting */
};

static bool live_task(enum task_state st)
{
	return st == TASK_ASSIGNED || st == TASK_STARTING || st == TASK_RUNNING;
}

static int seen_cmp(const void *a, const void *b)
{
	const struct pending_seen *x = a, *y = b;

	return x->job < y->job ? -1 : x->job > y->job;
}

static int need_cmp(const void *a, const void *b)
{
	const struct need *x = a, *y = b;

	if (x->req.priority != y->req.priority)
		return x->req.priority > y->req.priority ? -1 : 1;
	return x->j->id < y->j->id ? -1 : x->j->id > y->j->id;
}

static void need_init(struct master *m, struct need *nd, struct job *j, uint32_t ntasks)
{
	const struct spec *s = j->spec;
	char why[128];

	memset(nd, 0, sizeof(*nd));
	nd->j = j;
	nd->req.job = j->id;
	nd->req.priority = s->priority;
	nd->req.ntasks = ntasks;
	nd->req.res = s->res;
	nd->req.gpu_model = s->gpu_model;
	nd->req.policy = sched_job_policy(m, s);
	nd->req.max_cost_milli = s->max_cost_milli;
	for (size_t i = 0; i < s->nconstraints && nd->req.ncons < SCHED_MAX_CONS; i++)
		if (sched_cons_parse(s->constraints[i], &nd->cons[nd->req.ncons], why,
				     sizeof(why)) == 0)
			nd->req.ncons++;
	nd->req.cons = nd->cons;
	/* A role job's gang: its required roles (optional ones never burst). */
	nd->req.ntasks = s->roles ? 0 : ntasks;
	for (size_t r = 0; r < s->nroles; r++) {
		const struct spec_role *ro = &s->roles[r];
		if (ro->optional)
			continue;
		nd->parts[nd->req.nparts++] = (struct sched_part){ro->name, ro->count, ro->res,
								   ro->gpu_model};
		nd->req.ntasks += ro->count;
	}
}

/* Point each need's request at its parts, after the array last moved. */
static void need_parts(struct need *needs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		needs[i].req.parts = needs[i].req.nparts ? needs[i].parts : NULL;
}

/* The jobs that have waited for capacity for burst_after, in queue order;
 * also renews the pending-since table.  Caller frees. */
static struct need *collect_needs(struct master *m, size_t *count)
{
	struct pools *ps = m->pools;
	struct pending_seen *seen = xcalloc(m->nlive + 1, sizeof(*seen));
	struct need *needs = NULL;
	size_t ns = 0, nn = 0, cap = 0;
	uint64_t now = now_ms();

	for (size_t i = 0; i < m->nlive; i++) {
		struct job *j = m->live[i];
		uint32_t none = 0, nlive = 0;
		struct pending_seen key = {.job = j->id}, *old;

		if (j->cancel || j->preempted_by || j->victims)
			continue;
		for (uint32_t k = 0; k < j->ntasks; k++) {
			none += j->tasks[k].state == TASK_NONE;
			nlive += live_task(j->tasks[k].state);
		}
		if (none == 0 || (j->spec->kind == SPEC_TRAIN && nlive > 0))
			continue;
		old = ps->seen ? bsearch(&key, ps->seen, ps->nseen, sizeof(key), seen_cmp) : NULL;
		seen[ns].job = j->id;
		seen[ns].since = old ? old->since : now;
		if (now - seen[ns++].since < ps->burst_after_ms)
			continue;
		/* Batch tasks place one by one, up to parallelism. */
		uint32_t reqs = 1, per = none;
		if (j->spec->kind == SPEC_BATCH) {
			uint32_t room = j->spec->parallelism > nlive ? j->spec->parallelism - nlive : 0;
			reqs = none < room ? none : room;
			per = 1;
		}
		for (uint32_t r = 0; r < reqs; r++) {
			if (nn == cap) {
				cap = cap ? cap * 2 : 16;
				needs = xrealloc(needs, cap * sizeof(*needs));
			}
			need_init(m, &needs[nn++], j, per);
		}
	}
	qsort(seen, ns, sizeof(*seen), seen_cmp);
	free(ps->seen);
	ps->seen = seen;
	ps->nseen = ns;
	if (nn)
		qsort(needs, nn, sizeof(*needs), need_cmp);
	need_parts(needs, nn);
	*count = nn;
	return needs;
}

static void add_template(struct sched *sim, const struct pool *p, const char *name)
{
	struct sched_node *sn = sched_node_add(sim, name, &p->tmpl, p->labels, p->nlabels);

	sched_node_cost(sim, sn, p->cost_milli);
}

/* What exists now plus what is booting. */
static struct sched *sim_base(struct master *m)
{
	struct sched *sim = sched_new();

	sched_mix_config(sim, 0, false);
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		struct sched_node *sn;
		if (!n->sn || !n->sn->schedulable)
			continue;
		sn = sched_node_add(sim, n->name, &n->sn->res, n->sn->labels, n->sn->nlabels);
		sched_node_cost(sim, sn, n->sn->cost_milli);
	}
	for (uint32_t i = 0; i < m->pools->n; i++) {
		const struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++) {
			const struct node *n = node_find(m, p->nodes[k].name);
			if (p->nodes[k].state != PNODE_BOOTING || (n && n->sn && n->sn->schedulable))
				continue;
			add_template(sim, p, p->nodes[k].name);
		}
	}
	return sim;
}

/* Place every need not placed yet (done[i] false) on sim; returns how many
 * newly placed (done[] updated). */
static uint32_t sim_place(struct sched *sim, struct need *needs, size_t nn, bool *done,
			  struct sched_slot *slots)
{
	uint32_t placed = 0;

	for (size_t i = 0; i < nn; i++) {
		if (done[i])
			continue;
		if (sched_place(sim, &needs[i].req, slots) == 0) {
			done[i] = true;
			placed++;
		}
	}
	return placed;
}

/* Nodes of p that count against max: its records, and members that joined
 * by themselves and are up. */
static uint32_t held_nodes(const struct master *m, const struct pool *p)
{
	uint32_t n = p->nnodes;

	for (size_t i = 0; i < m->nnodes; i++) {
		const struct node *nd = m->nodes[i];
		if (nd->state == NODE_READY && pools_of_node(m, nd) == p &&
		    !pools_pnode(m, nd->name, NULL))
			n++;
	}
	return n;
}

static void provision(struct master *m, struct pool *p, uint32_t count, const char *reason)
{
	for (uint32_t i = 0; i < count; i++) {
		char name[NODE_NAME_MAX + 1];
		struct pnode *pn;

		do
			snprintf(name, sizeof(name), "%.40s-%u", p->name, p->next_seq++);
		while (node_find(m, name) || pools_pnode(m, name, NULL));
		pn = pools_pnode_add(p, name);
		pn->state = PNODE_BOOTING;
		pn->hook_due = true;
		strlcpy_ok(pn->reason, reason, sizeof(pn->reason));
		p->provisioned++;
		strlcpy_ok(p->last_provision, reason, sizeof(p->last_provision));
		p->last_provision_at = pn->since;
		log_info("pool=%s node=%s provisioning: %s", p->name, name, reason);
	}
	p->dirty = true;
}

static bool backing_off(const struct pool *p)
{
	return p->backoff_until && wall_ms() < p->backoff_until;
}

static void burst_scan(struct master *m)
{
	struct pools *ps = m->pools;
	size_t nn, maxt = 1, waiting = 0;
	struct need *needs = collect_needs(m, &nn);
	struct sched *sim;
	struct sched_slot *slots;
	bool *base_done, *done;
	struct pool *best = NULL;
	uint32_t best_count = 0, best_k = 0;
	uint64_t best_cost = 0;
	char d[32], reason[POOL_REASON_MAX];

	/* Pools below their minimum come first. */
	for (uint32_t i = 0; i < ps->n; i++) {
		struct pool *p = &ps->v[i];
		uint32_t held;
		if (!p->provision || backing_off(p) || (held = held_nodes(m, p)) >= p->min)
			continue;
		snprintf(reason, sizeof(reason), "pool minimum (min: %u, has %u)", p->min, held);
		provision(m, p, p->min - held, reason);
	}
	if (nn == 0) {
		free(needs);
		return;
	}
	for (size_t i = 0; i < nn; i++)
		if (needs[i].req.ntasks > maxt)
			maxt = needs[i].req.ntasks;
	slots = xcalloc(maxt, sizeof(*slots));
	base_done = xcalloc(nn, sizeof(*base_done));
	done = xcalloc(nn, sizeof(*done));
	sim = sim_base(m);
	sim_place(sim, needs, nn, base_done, slots);
	sched_free(sim);
	for (size_t i = 0; i < nn; i++)
		waiting += !base_done[i];
	for (uint32_t i = 0; waiting && i < ps->n; i++) {
		struct pool *p = &ps->v[i];
		uint32_t held, room, count = 0, k_at = 0;
		uint64_t cost;

		if (!p->provision || backing_off(p) || (held = held_nodes(m, p)) >= p->max)
			continue;
		room = p->max - held;
		memcpy(done, base_done, nn * sizeof(*done));
		sim = sim_base(m);
		/* The base placements again (deterministic), then template
		 * nodes one by one. */
		sim_place(sim, needs, nn, done, slots);
		for (uint32_t k = 1; k <= room && count < waiting; k++) {
			char name[NODE_NAME_MAX + 1];
			uint32_t got;
			snprintf(name, sizeof(name), "%.40s-new-%u", p->name, k);
			add_template(sim, p, name);
			if ((got = sim_place(sim, needs, nn, done, slots)) > 0) {
				count += got;
				k_at = k;
			}
		}
		sched_free(sim);
		cost = (uint64_t)k_at * p->tmpl.ngpus * p->cost_milli;
		if (count > best_count ||
		    (count == best_count && count > 0 &&
		     (cost < best_cost || (cost == best_cost && k_at < best_k)))) {
			best = p;
			best_count = count;
			best_k = k_at;
			best_cost = cost;
		}
	}
	if (best) {
		struct job *first = NULL;
		for (size_t i = 0; i < nn && !first; i++)
			if (!base_done[i])
				first = needs[i].j;
		units_format_duration(ps->burst_after_ms, d, sizeof(d));
		snprintf(reason, sizeof(reason),
			 "%u of %zu task group(s) pending for capacity over %s would run (first: "
			 "job=%" PRIu64 " name=%s)",
			 best_count, waiting, d, first->id, first->spec->name);
		provision(m, best, best_k, reason);
		ps->last_burst[0] = '\0';
	} else if (waiting) {
		snprintf(reason, sizeof(reason),
			 "%zu waiting task group(s) fit no pool that may grow now (constraints, "
			 "cost caps, max or back-off)",
			 waiting);
		if (strcmp(reason, ps->last_burst) != 0) {
			log_info("pools: %s", reason);
			strlcpy_ok(ps->last_burst, reason, sizeof(ps->last_burst));
		}
	}
	free(done);
	free(base_done);
	free(slots);
	free(needs);
}

void pools_tick(struct master *m)
{
	struct pools *ps = m->pools;
	bool cloud = false;
	uint64_t now = now_ms(), period;

	if (!ps)
		return;
	for (uint32_t i = 0; i < ps->n; i++) {
		struct pool *p = &ps->v[i];
		if (!p->provision)
			continue;
		cloud = true;
		reap(m, p);
		follow(m, p);
	}
	if (!cloud || now < ps->next_scan)
		return;
	period = ps->burst_after_ms / 4;
	period = period < 200 ? 200 : period > 1000 ? 1000 : period;
	ps->next_scan = now + period;
	burst_scan(m);
}

void pools_committed(struct master *m)
{
	if (!m->pools)
		return;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++)
			if (p->nodes[k].hook_due && !p->nodes[k].hook_pid)
				spawn_hook(m, p, &p->nodes[k]);
	}
}
