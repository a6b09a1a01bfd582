/*
 * explain.c - reasons for people: why a request does not fit now, or would
 * not fit even on an empty cluster ("needs 8 GPUs on one node; best node
 * has 6 free").  Owns sched_explain() and, for the queue pass,
 * sched_explain_full().  Walks every node: for status pages and for jobs
 * that wait, never for the placement hot path.
 */
#include "sched_int.h"
#include "units.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void fmt_size(uint64_t bytes, char *buf, size_t len)
{
	units_format_size(bytes, buf, len);
}

static void fmt_milli(uint32_t milli, char *buf, size_t len)
{
	units_format_milli(milli, buf, len);
}

/* ---- explaining ---- */

/* "4 GPUs", "0.25 GPU", "2 CPUs, 8G memory" */
static void shape_str(const struct res *r, char *buf, size_t len)
{
	char a[32];

	if (r->gpus_milli) {
		fmt_milli(r->gpus_milli, a, sizeof(a));
		snprintf(buf, len, "%s GPU%s", a, r->gpus_milli > MILLI ? "s" : "");
	} else if (r->cpu_milli) {
		fmt_milli(r->cpu_milli, a, sizeof(a));
		snprintf(buf, len, "%s CPU%s", a, r->cpu_milli > MILLI ? "s" : "");
	} else {
		fmt_size(r->mem, a, sizeof(a));
		snprintf(buf, len, "%s memory", a);
	}
}

struct expl {
	uint32_t nsched, ncons, nmodel, ncost, nfree; /* the funnel */
	uint32_t cheapest; /* the lowest cost among nodes past the model test */
	uint32_t over;     /* nodes left out by max_cost_milli */
	uint32_t cons_pass[SCHED_MAX_CONS];
	uint64_t cap_resv, cap_all;
	uint32_t best_gpus, best_share, best_cpu;
	uint64_t best_mem;
	uint64_t resv_by;
};

static void explain_walk(const struct sched *s, const struct sched_req *req, bool empty,
			 struct expl *e)
{
	uint32_t limit = req->ntasks ? req->ntasks : 1;

	memset(e, 0, sizeof(*e));
	for (uint32_t id = 0; id < s->nslots; id++) {
		const struct sched_node *n = s->nodes[id];
		bool all = true;
		uint32_t c, ng;

		if (!n || !n->schedulable)
			continue;
		e->nsched++;
		for (uint32_t k = 0; k < req->ncons && k < SCHED_MAX_CONS; k++) {
			if (cons_ok(n, &req->cons[k]))
				e->cons_pass[k]++;
			else
				all = false;
		}
		if (!all || !labels_ok(n, req))
			continue;
		e->ncons++;
		if (!model_ok(n, req))
			continue;
		if (e->nmodel++ == 0 || n->cost_milli < e->cheapest)
			e->cheapest = n->cost_milli;
		if (req->max_cost_milli && n->cost_milli > req->max_cost_milli) {
			e->over++;
			continue;
		}
		e->ncost++;

		ng = node_ngpus(n);
		{
			uint32_t whole = 0, share = 0;
			uint64_t mf = empty ? n->res.mem_total
					    : (n->res.mem_used < n->res.mem_total
						       ? n->res.mem_total - n->res.mem_used
						       : 0);
			uint32_t cf = empty ? n->res.cpu_total
					    : (n->res.cpu_used < n->res.cpu_total
						       ? n->res.cpu_total - n->res.cpu_used
						       : 0);

			for (uint32_t i = 0; i < ng; i++) {
				const struct res_gpu *g = &n->res.gpus[i];
				uint32_t used = empty ? 0 : g->used_milli;

				if (req->res.gpu_mem && g->mem < req->res.gpu_mem)
					continue;
				if (used == 0)
					whole++;
				if (MILLI - (used > MILLI ? MILLI : used) > share)
					share = MILLI - (used > MILLI ? MILLI : used);
			}
			if (whole > e->best_gpus)
				e->best_gpus = whole;
			if (share > e->best_share)
				e->best_share = share;
			if (mf > e->best_mem)
				e->best_mem = mf;
			if (cf > e->best_cpu)
				e->best_cpu = cf;
		}
		c = sched_node_cap(n, &req->res, empty, limit);
		e->cap_all += c;
		if (!empty && n->reserved_for && n->reserved_for != req->job) {
			if (!e->resv_by)
				e->resv_by = n->reserved_for;
			continue;
		}
		e->nfree++;
		e->cap_resv += c;
	}
}

/* The resource part of a reason, from a walk's maxima: which dimension no
 * single node has, or that a gang is too big for what is free. */
static void explain_res(const struct sched_req *req, const struct expl *e, bool empty,
			uint64_t cap, char *buf, size_t len)
{
	const struct res *r = &req->res;
	const char *best = empty ? "largest node has" : "best node has";
	const char *fr = empty ? "" : " free";
	char a[32], b[32], sh[64];
	uint32_t g = res_whole_gpus(r);

	if (cap > 0) {
		shape_str(r, sh, sizeof(sh));
		snprintf(buf, len, "needs %" PRIu32 " tasks of %s at once; only %" PRIu64 " fit%s",
			 req->ntasks, sh, cap, empty ? " on the whole cluster" : " now");
		return;
	}
	if (g > 0 && e->best_gpus < g) {
		if (r->gpu_mem) {
			fmt_size(r->gpu_mem, a, sizeof(a));
			snprintf(buf, len, "needs %" PRIu32 " GPUs with %s each on one node; %s %" PRIu32
				 "%s", g, a, best, e->best_gpus, fr);
		} else {
			snprintf(buf, len, "needs %" PRIu32 " GPU%s on one node; %s %" PRIu32 "%s", g,
				 g > 1 ? "s" : "", best, e->best_gpus, fr);
		}
		return;
	}
	if (res_is_share(r) && e->best_share < r->gpus_milli) {
		fmt_milli(r->gpus_milli, a, sizeof(a));
		fmt_milli(e->best_share, b, sizeof(b));
		snprintf(buf, len, "needs %s of a GPU%s; best GPU has %s%s", a,
			 r->gpu_mem ? " with enough memory" : "", b, fr);
		return;
	}
	if (r->mem > e->best_mem) {
		fmt_size(r->mem, a, sizeof(a));
		fmt_size(e->best_mem, b, sizeof(b));
		snprintf(buf, len, "needs %s memory on one node; %s %s%s", a, best, b, fr);
		return;
	}
	if (r->cpu_milli > e->best_cpu) {
		fmt_milli(r->cpu_milli, a, sizeof(a));
		fmt_milli(e->best_cpu, b, sizeof(b));
		snprintf(buf, len, "needs %s CPUs on one node; %s %s%s", a, best, b, fr);
		return;
	}
	fmt_milli(r->gpus_milli, a, sizeof(a));
	fmt_size(r->mem, b, sizeof(b));
	fmt_milli(r->cpu_milli, sh, sizeof(sh));
	snprintf(buf, len, "no node has %s GPUs, %s memory and %s CPUs%s at once", a, b, sh,
		 empty ? "" : " free");
}

static void explain_one(const struct sched *s, const struct sched_req *req, bool empty,
			bool respect, char *buf, size_t len);

/* A full reason (sched_int.h).  A gang of parts: the first role that does
 * not fit alone, by name, or that they fit only one by one. */
void sched_explain_full(const struct sched *s, const struct sched_req *req, bool empty,
			bool respect, char *buf, size_t len)
{
	struct sched_req sub;
	char one[SCHED_REASON_LEN];

	if (req->nparts == 0) {
		explain_one(s, req, empty, respect, buf, len);
		return;
	}
	for (uint32_t i = 0; i < req->nparts; i++) {
		struct expl e;

		sched_req_part(req, i, &sub);
		if (res_check(&sub.res, NULL, 0) == 0) {
			explain_walk(s, &sub, empty, &e);
			if ((respect && !empty ? e.cap_resv : e.cap_all) >= sub.ntasks)
				continue; /* this role fits alone */
		}
		explain_one(s, &sub, empty, respect, one, sizeof(one));
		snprintf(buf, len, "role %s: %s", req->parts[i].name ? req->parts[i].name : "?",
			 one);
		return;
	}
	if (empty)
		snprintf(buf, len, "its %" PRIu32 " roles fit one by one but not all %" PRIu32
			 " tasks at once", req->nparts, req->ntasks);
	else
		snprintf(buf, len, "its %" PRIu32 " roles each fit now, but not all %" PRIu32
			 " tasks at once", req->nparts, req->ntasks);
}

static void explain_one(const struct sched *s, const struct sched_req *req, bool empty,
			bool respect, char *buf, size_t len)
{
	struct expl e;
	char why[128], c[256];

	if (res_check(&req->res, why, sizeof(why)) != 0) {
		snprintf(buf, len, "invalid request: %s", why);
		return;
	}
	explain_walk(s, req, empty, &e);
	if (e.nsched == 0) {
		snprintf(buf, len, "no schedulable node");
		return;
	}
	if (e.ncons == 0) {
		for (uint32_t k = 0; k < req->ncons && k < SCHED_MAX_CONS; k++) {
			if (e.cons_pass[k] == 0) {
				sched_cons_format(&req->cons[k], c, sizeof(c));
				snprintf(buf, len, "no node matches %s", c);
				return;
			}
		}
		snprintf(buf, len, "no node matches all of");
		for (uint32_t k = 0; k < req->ncons; k++) {
			size_t at = strlen(buf);

			sched_cons_format(&req->cons[k], c, sizeof(c));
			snprintf(buf + at, len - at, "%s %s", k ? "," : "", c);
		}
		return;
	}
	if (e.nmodel == 0) {
		snprintf(buf, len, "no node has GPU model %s", req->gpu_model);
		return;
	}
	if (e.ncost == 0) {
		char a[32], b[32];

		fmt_milli(req->max_cost_milli, a, sizeof(a));
		fmt_milli(e.cheapest, b, sizeof(b));
		snprintf(buf, len,
			 "no node within max_cost_per_gpu_hour %s: the cheapest that matches costs %s",
			 a, b);
		return;
	}
	if (!empty && (respect ? e.cap_resv : e.cap_all) >= req->ntasks) {
		snprintf(buf, len, "fits now");
		return;
	}
	if (respect && !empty && e.cap_all >= req->ntasks) {
		snprintf(buf, len, "waiting behind job %" PRIu64 "'s reservation", e.resv_by);
		return;
	}
	if (respect && !empty && e.nfree == 0) {
		snprintf(buf, len, "reserved for job %" PRIu64, e.resv_by);
		return;
	}
	explain_res(req, &e, empty, respect ? e.cap_resv : e.cap_all, buf, len);
	if (e.over) {
		size_t at = strlen(buf);
		char a[32];

		fmt_milli(req->max_cost_milli, a, sizeof(a));
		snprintf(buf + at, len - at, " (%" PRIu32 " node%s above max_cost_per_gpu_hour %s)",
			 e.over, e.over == 1 ? "" : "s", a);
	}
}

void sched_explain(const struct sched *s, const struct sched_req *req, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	sched_explain_full(s, req, false, true, buf, len);
}
