/*
 * pools.c - the pools' stored records, lookups and their JSON (see pools.h).
 * The file is read in pools_file.c; decisions and hooks are burst.c's.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "pools.h"
#include "units.h"
#include "util.h"
#include "wire.h"

static void pnode_push(struct pool *p, const struct pnode *pn);

/* ---- lookups ---- */

struct pool *pools_of_node(const struct master *m, const struct node *n)
{
	const cJSON *l;

	if (!m->pools || !n->labels)
		return NULL;
	l = cJSON_GetObjectItemCaseSensitive(n->labels, "pool");
	if (!cJSON_IsString(l))
		return NULL;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (strcmp(m->pools->v[i].name, l->valuestring) == 0)
			return &m->pools->v[i];
	return NULL;
}

uint32_t pools_node_cost(const struct master *m, const struct node *n)
{
	const struct pool *p = pools_of_node(m, n);

	return p ? p->cost_milli : 0;
}

struct pnode *pools_pnode(const struct master *m, const char *name, struct pool **pool)
{
	if (!m->pools)
		return NULL;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++)
			if (strcmp(p->nodes[k].name, name) == 0) {
				if (pool)
					*pool = p;
				return &p->nodes[k];
			}
	}
	return NULL;
}

struct pnode *pools_pnode_add(struct pool *p, const char *name)
{
	struct pnode pn;

	memset(&pn, 0, sizeof(pn));
	strlcpy_ok(pn.name, name, sizeof(pn.name));
	pn.since = wall_ms();
	pnode_push(p, &pn);
	p->dirty = true;
	return &p->nodes[p->nnodes - 1];
}

void pools_pnode_del(struct pool *p, struct pnode *pn)
{
	size_t i = (size_t)(pn - p->nodes);

	if (i >= p->nnodes)
		return;
	memmove(&p->nodes[i], &p->nodes[i + 1], (p->nnodes - i - 1) * sizeof(*p->nodes));
	p->nnodes--;
	p->dirty = true;
}

struct hookrun *pools_hist_add(struct pool *p)
{
	if (p->nhist == POOL_HISTORY) {
		memmove(&p->hist[0], &p->hist[1], (POOL_HISTORY - 1) * sizeof(p->hist[0]));
		p->nhist--;
	}
	memset(&p->hist[p->nhist], 0, sizeof(p->hist[0]));
	return &p->hist[p->nhist++];
}

/* ---- records ---- */

static const char *const pnode_states[] = {"booting", "ready", "releasing"};

static cJSON *hook_json(const struct hookrun *h)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "node", h->node);
	cJSON_AddStringToObject(o, "action", h->release ? "release" : "provision");
	cJSON_AddStringToObject(o, "reason", h->reason);
	cJSON_AddNumberToObject(o, "started", (double)h->started);
	cJSON_AddNumberToObject(o, "finished", (double)h->finished);
	cJSON_AddNumberToObject(o, "exit_code", h->exit_code);
	cJSON_AddNumberToObject(o, "signal", h->signal);
	cJSON_AddStringToObject(o, "stderr", h->tail);
	return o;
}

/* The stored part of a pool (also shown by mlctl pools). */
static cJSON *pool_state_json(const struct pool *p)
{
	cJSON *o = cJSON_CreateObject(), *a;

	cJSON_AddNumberToObject(o, "next_seq", p->next_seq);
	cJSON_AddNumberToObject(o, "failures", p->failures);
	cJSON_AddNumberToObject(o, "backoff_until", (double)p->backoff_until);
	cJSON_AddNumberToObject(o, "provisioned", p->provisioned);
	cJSON_AddNumberToObject(o, "released", p->released);
	cJSON_AddNumberToObject(o, "failed", p->failed);
	cJSON_AddStringToObject(o, "last_provision", p->last_provision);
	cJSON_AddNumberToObject(o, "last_provision_at", (double)p->last_provision_at);
	cJSON_AddStringToObject(o, "last_release", p->last_release);
	cJSON_AddNumberToObject(o, "last_release_at", (double)p->last_release_at);
	a = cJSON_AddArrayToObject(o, "provisioned_nodes");
	for (uint32_t i = 0; i < p->nnodes; i++) {
		const struct pnode *pn = &p->nodes[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", pn->name);
		cJSON_AddStringToObject(e, "state", pnode_states[pn->state]);
		cJSON_AddNumberToObject(e, "since", (double)pn->since);
		cJSON_AddStringToObject(e, "reason", pn->reason);
		cJSON_AddItemToArray(a, e);
	}
	a = cJSON_AddArrayToObject(o, "hooks");
	for (uint32_t i = 0; i < p->nhist; i++)
		cJSON_AddItemToArray(a, hook_json(&p->hist[i]));
	return o;
}

bool pools_dirty(const struct master *m)
{
	if (!m->pools)
		return false;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (m->pools->v[i].dirty)
			return true;
	return false;
}

int pools_store(struct master *m)
{
	char key[STORE_KEY_MAX];
	int rv;

	if (!m->pools)
		return 0;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		if (!p->dirty)
			continue;
		cJSON *o = pool_state_json(p);
		char *s = cJSON_PrintUnformatted(o);
		snprintf(key, sizeof(key), "pools/%s", p->name);
		rv = store_put(m->store, key, s, strlen(s));
		free(s);
		cJSON_Delete(o);
		if (rv != 0)
			return rv;
		p->dirty = false;
	}
	return 0;
}

static void get_text(const cJSON *o, const char *k, char *buf, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	buf[0] = '\0';
	if (cJSON_IsString(v))
		strlcpy_ok(buf, v->valuestring, len);
}

static uint64_t get_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	/* The range keeps the cast defined (UBSan's float-cast-overflow). */
	return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 9e15
		       ? (uint64_t)v->valuedouble
		       : 0;
}

static int get_int(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) && v->valuedouble >= -1e6 && v->valuedouble <= 1e6
		       ? (int)v->valuedouble
		       : -1;
}

static void pnode_push(struct pool *p, const struct pnode *pn)
{
	if (p->nnodes == p->cap_nodes) {
		p->cap_nodes = p->cap_nodes ? p->cap_nodes * 2 : 8;
		p->nodes = xrealloc(p->nodes, p->cap_nodes * sizeof(*p->nodes));
	}
	p->nodes[p->nnodes++] = *pn;
}

/* Hooks this process runs, kept across a reload (the master goes back to
 * the committed state after a failed write, or a new HA term loads): their
 * pids are still ours to reap. */
struct running {
	char name[POOL_NAME_MAX + 1];
	pid_t pid;
	uint64_t deadline;
};

static int load_pool(const char *key, const void *val, size_t len, void *arg)
{
	struct master *m = arg;
	const char *name = key + strlen("pools/");
	struct pool *p = NULL;
	cJSON *o, *a, *e;

	(void)len;
	for (uint32_t i = 0; i < m->pools->n; i++)
		if (strcmp(m->pools->v[i].name, name) == 0)
			p = &m->pools->v[i];
	if (!(o = cJSON_Parse(val))) {
		log_error("store: record %s is not JSON: skipped", key);
		return 0;
	}
	if (!p) {
		a = cJSON_GetObjectItemCaseSensitive(o, "provisioned_nodes");
		if (cJSON_GetArraySize(a) > 0)
			log_warn("pool %s is no longer in %s but provisioned %d node(s) that are "
				 "still recorded: release them by hand (its record is kept)",
				 name, m->pools->path, cJSON_GetArraySize(a));
		cJSON_Delete(o);
		return 0;
	}
	p->next_seq = (uint32_t)get_num(o, "next_seq");
	if (p->next_seq == 0)
		p->next_seq = 1;
	p->failures = (uint32_t)get_num(o, "failures");
	p->backoff_until = get_num(o, "backoff_until");
	p->provisioned = (uint32_t)get_num(o, "provisioned");
	p->released = (uint32_t)get_num(o, "released");
	p->failed = (uint32_t)get_num(o, "failed");
	get_text(o, "last_provision", p->last_provision, sizeof(p->last_provision));
	p->last_provision_at = get_num(o, "last_provision_at");
	get_text(o, "last_release", p->last_release, sizeof(p->last_release));
	p->last_release_at = get_num(o, "last_release_at");
	p->nnodes = 0;
	a = cJSON_GetObjectItemCaseSensitive(o, "provisioned_nodes");
	cJSON_ArrayForEach(e, a)
	{
		struct pnode pn;
		char st[16];

		memset(&pn, 0, sizeof(pn));
		get_text(e, "name", pn.name, sizeof(pn.name));
		get_text(e, "state", st, sizeof(st));
		get_text(e, "reason", pn.reason, sizeof(pn.reason));
		pn.since = get_num(e, "since");
		if (!pn.name[0])
			continue;
		if (strcmp(st, "ready") == 0)
			pn.state = PNODE_READY;
		else if (strcmp(st, "releasing") == 0)
			pn.state = PNODE_RELEASING;
		else
			pn.state = PNODE_BOOTING;
		/* A release that may not have finished runs again, unless
		 * this process still runs its hook. */
		pn.hook_due = pn.state == PNODE_RELEASING;
		for (size_t r = 0; r < m->pools->loading_nrun; r++) {
			struct running *run = m->pools->loading_run;
			if (strcmp(run[r].name, pn.name) == 0) {
				pn.hook_pid = run[r].pid;
				pn.retry_at = run[r].deadline;
				pn.hook_due = false;
			}
		}
		pnode_push(p, &pn);
	}
	p->nhist = 0;
	a = cJSON_GetObjectItemCaseSensitive(o, "hooks");
	cJSON_ArrayForEach(e, a)
	{
		struct hookrun *h = pools_hist_add(p);
		char act[16];

		get_text(e, "node", h->node, sizeof(h->node));
		get_text(e, "action", act, sizeof(act));
		h->release = strcmp(act, "release") == 0;
		get_text(e, "reason", h->reason, sizeof(h->reason));
		get_text(e, "stderr", h->tail, sizeof(h->tail));
		h->started = get_num(e, "started");
		h->finished = get_num(e, "finished");
		h->exit_code = get_int(e, "exit_code");
		h->signal = (int)get_num(e, "signal");
		bool ours = false;
		for (uint32_t k = 0; k < p->nnodes; k++)
			ours |= p->nodes[k].hook_pid && strcmp(p->nodes[k].name, h->node) == 0;
		if (!h->finished && !ours) {
			/* Its master died while it ran: nobody reaped it. */
			h->finished = wall_ms();
			h->exit_code = -1;
			strlcpy_ok(h->tail, "outcome unknown: the master restarted while it ran",
				   sizeof(h->tail));
			p->dirty = true;
		}
	}
	cJSON_Delete(o);
	return 0;
}

int pools_load(struct master *m)
{
	struct running *run = NULL;
	size_t nrun = 0;
	int rv;

	if (!m->pools)
		return 0;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		for (uint32_t k = 0; k < p->nnodes; k++) {
			if (!p->nodes[k].hook_pid)
				continue;
			run = xrealloc(run, (nrun + 1) * sizeof(*run));
			strlcpy_ok(run[nrun].name, p->nodes[k].name, sizeof(run[nrun].name));
			run[nrun].pid = p->nodes[k].hook_pid;
			run[nrun++].deadline = p->nodes[k].retry_at;
		}
		p->nnodes = 0;
		p->nhist = 0;
	}
	m->pools->loading_run = run;
	m->pools->loading_nrun = nrun;
	rv = store_list(m->store, "pools/", load_pool, m);
	m->pools->loading_run = NULL;
	m->pools->loading_nrun = 0;
	free(run);
	if (rv != 0)
		return rv;
	for (uint32_t i = 0; i < m->pools->n; i++) {
		struct pool *p = &m->pools->v[i];
		uint32_t nb = 0, nr = 0, nx = 0;
		for (uint32_t k = 0; k < p->nnodes; k++) {
			nb += p->nodes[k].state == PNODE_BOOTING;
			nr += p->nodes[k].state == PNODE_READY;
			nx += p->nodes[k].state == PNODE_RELEASING;
		}
		if (p->nnodes)
			log_info("pool=%s: %u booting, %u ready and %u releasing node(s) from the "
				 "store",
				 p->name, nb, nr, nx);
	}
	return 0;
}

/* ---- mlctl pools ---- */

static double milli(uint32_t v)
{
	return v / 1000.0;
}

static cJSON *pool_json(struct master *m, struct pool *p)
{
	cJSON *o = cJSON_CreateObject(), *l, *nodes, *st = pool_state_json(p), *it;
	uint32_t ready = 0, lost = 0, booting = 0, releasing = 0;
	uint64_t used_milli = 0, total_milli = 0, billed_gpus = 0;

	cJSON_AddStringToObject(o, "name", p->name);
	l = cJSON_AddObjectToObject(o, "labels");
	for (uint32_t i = 1; i < p->nlabels; i++)
		cJSON_AddStringToObject(l, p->labels[i].key, p->labels[i].val);
	cJSON_AddNumberToObject(o, "cost_per_gpu_hour", milli(p->cost_milli));
	cJSON_AddBoolToObject(o, "provisioned", p->provision != NULL);
	if (p->provision) {
		char mem[32];
		cJSON *t = cJSON_AddObjectToObject(o, "template");
		units_format_size(p->tmpl.mem_total, mem, sizeof(mem));
		cJSON_AddStringToObject(t, "gpus", p->tmpl_gpus);
		cJSON_AddNumberToObject(t, "cpus", milli(p->tmpl.cpu_total));
		cJSON_AddStringToObject(t, "memory", mem);
		cJSON_AddNumberToObject(o, "min", p->min);
		cJSON_AddNumberToObject(o, "max", p->max);
		cJSON_AddNumberToObject(o, "boot_timeout_ms", (double)p->boot_timeout_ms);
		cJSON_AddNumberToObject(o, "idle_ms", (double)p->idle_ms);
		cJSON_AddStringToObject(o, "provision", p->provision);
		cJSON_AddStringToObject(o, "release", p->release);
	}
	nodes = cJSON_AddArrayToObject(o, "nodes");
	for (size_t i = 0; i < m->nnodes; i++) {
		struct node *n = m->nodes[i];
		struct pnode *pn;
		cJSON *e;
		const char *state;

		if (pools_of_node(m, n) != p)
			continue;
		pn = pools_pnode(m, n->name, NULL);
		if (pn && pn->state == PNODE_RELEASING)
			state = "releasing";
		else if (pn && pn->state == PNODE_BOOTING)
			state = "booting";
		else if (n->state == NODE_READY)
			state = n->drained ? "drained" : "ready";
		else if (pn)
			state = "lost";
		else
			continue; /* gone (released earlier, or an on-prem node that left) */
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", n->name);
		cJSON_AddStringToObject(e, "state", state);
		cJSON_AddBoolToObject(e, "provisioned", pn != NULL);
		cJSON_AddNumberToObject(e, "gpus", n->cap.ngpus);
		cJSON_AddNumberToObject(e, "tasks", n->ntasks);
		cJSON_AddItemToArray(nodes, e);
		if (strcmp(state, "ready") == 0) {
			ready++;
			for (uint32_t g = 0; n->sn && g < n->sn->res.ngpus; g++) {
				used_milli += n->sn->res.gpus[g].used_milli;
				total_milli += 1000;
			}
		} else if (strcmp(state, "lost") == 0) {
			lost++;
		}
		if (strcmp(state, "lost") != 0)
			billed_gpus += n->cap.ngpus;
		if (strcmp(state, "booting") == 0)
			booting++;
		if (strcmp(state, "releasing") == 0)
			releasing++;
	}
	/* Provisioned nodes whose agent has not spoken yet. */
	for (uint32_t k = 0; k < p->nnodes; k++) {
		struct pnode *pn = &p->nodes[k];
		struct node *n = node_find(m, pn->name);
		cJSON *e;

		if (n && pools_of_node(m, n) == p)
			continue;
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "name", pn->name);
		cJSON_AddStringToObject(e, "state", pnode_states[pn->state]);
		cJSON_AddBoolToObject(e, "provisioned", true);
		cJSON_AddNumberToObject(e, "gpus", p->tmpl.ngpus);
		cJSON_AddNumberToObject(e, "tasks", 0);
		cJSON_AddItemToArray(nodes, e);
		billed_gpus += p->tmpl.ngpus;
		if (pn->state == PNODE_BOOTING)
			booting++;
		else if (pn->state == PNODE_RELEASING)
			releasing++;
	}
	cJSON_AddNumberToObject(o, "ready", ready);
	cJSON_AddNumberToObject(o, "booting", booting);
	cJSON_AddNumberToObject(o, "releasing", releasing);
	cJSON_AddNumberToObject(o, "lost", lost);
	cJSON_AddNumberToObject(o, "gpus_used", used_milli / 1000.0);
	cJSON_AddNumberToObject(o, "gpus_free", (total_milli - used_milli) / 1000.0);
	cJSON_AddNumberToObject(o, "cost_per_hour", (double)billed_gpus * milli(p->cost_milli));
	cJSON_ArrayForEach(it, st)
	{
		if (strcmp(it->string, "next_seq") == 0)
			continue;
		cJSON_AddItemToObject(o, it->string, cJSON_Duplicate(it, 1));
	}
	cJSON_Delete(st);
	return o;
}

cJSON *pools_to_json(struct master *m, const char *name)
{
	cJSON *a;

	if (!m->pools)
		return cJSON_CreateArray();
	if (name) {
		for (uint32_t i = 0; i < m->pools->n; i++)
			if (strcmp(m->pools->v[i].name, name) == 0)
				return pool_json(m, &m->pools->v[i]);
		return NULL;
	}
	a = cJSON_CreateArray();
	for (uint32_t i = 0; i < m->pools->n; i++)
		cJSON_AddItemToArray(a, pool_json(m, &m->pools->v[i]));
	return a;
}
