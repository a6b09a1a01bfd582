/*
 * mix.c - the workload mix (sched.h, THE WORKLOAD MIX): a decaying table of
 * the task shapes this cluster is asked to run, the constraints they carry
 * and which nodes satisfy them.  Owns sched_mix_*; fgd scores
 * fragmentation against it, binpack and fgd read sched_mix_reserved().
 */
#include "sched_int.h"
#include "util.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#define MIX_RESCALE 1e100 /* rescale the weights before inc overflows */

void sched_mix_config(struct sched *s, double halflife, bool learn)
{
	s->mix_grow = halflife > 0 ? exp2(1.0 / halflife) : 1.0;
	s->mix_learn = learn;
	if (s->mix_inc <= 0)
		s->mix_inc = 1.0;
}

void sched_mix_clear(struct sched *s)
{
	s->nmix = 0;
	s->mix_sum = 0;
	s->mix_inc = 1.0;
}

uint32_t sched_mix_len(const struct sched *s)
{
	return s->nmix;
}

const struct sched_shape *sched_mix_at(struct sched *s, uint32_t i)
{
	struct mix_shape *m;

	if (i >= s->nmix)
		return NULL;
	m = &s->mix[i];
	m->pub.share = s->mix_sum > 0 ? m->w / s->mix_sum : 0;
	m->pub.cpu_milli = m->w > 0 ? (uint32_t)(m->cpu_w / m->w + 0.5) : 0;
	m->pub.mem = m->w > 0 ? (uint64_t)(m->mem_w / m->w + 0.5) : 0;
	return &m->pub;
}

/* The bit of constraint (model, gpu_mem), added if new; 0 when the table
 * is full. */
static uint32_t cons_bit(struct sched *s, const char *model, uint64_t gpu_mem)
{
	for (uint32_t i = 0; i < s->nmcons; i++) {
		if (s->mcons[i].gpu_mem == gpu_mem && strcasecmp(s->mcons[i].model, model) == 0)
			return 1u << i;
	}
	if (s->nmcons == SCHED_MIX_CONS)
		return 0;
	strlcpy_ok(s->mcons[s->nmcons].model, model, sizeof(s->mcons[s->nmcons].model));
	s->mcons[s->nmcons].gpu_mem = gpu_mem;
	s->mix_gen++;
	return 1u << s->nmcons++;
}

static uint32_t bit_len(uint32_t v)
{
	return v ? 32u - (uint32_t)__builtin_clz(v) : 0;
}

void sched_mix_add(struct sched *s, const struct res *r, const char *const *models,
		   uint32_t nmodels, double weight)
{
	uint32_t mask = 0, cls = bit_len(r->cpu_milli / MILLI), k;
	struct mix_shape *m = NULL;
	double w;

	if (!(weight > 0) || res_check(r, NULL, 0) != 0)
		return;
	if (r->gpus_milli > 0) {
		for (uint32_t i = 0; i < nmodels; i++) {
			if (models[i] && models[i][0])
				mask |= cons_bit(s, models[i], r->gpu_mem);
		}
		if (mask == 0 && r->gpu_mem)
			mask = cons_bit(s, "", r->gpu_mem);
	}
	for (k = 0; k < s->nmix; k++) {
		m = &s->mix[k];
		if (m->pub.gpus_milli == r->gpus_milli && m->pub.cons == mask && m->cpu_class == cls)
			break;
	}
	if (k == s->nmix) {
		if (s->nmix < SCHED_MIX_MAX) {
			k = s->nmix++;
		} else {
			/* The lightest shape makes room; its weight leaves the sum. */
			k = 0;
			for (uint32_t i = 1; i < s->nmix; i++) {
				if (s->mix[i].w < s->mix[k].w)
					k = i;
			}
			s->mix_sum -= s->mix[k].w;
		}
		m = &s->mix[k];
		memset(m, 0, sizeof(*m));
		m->pub.gpus_milli = r->gpus_milli;
		m->pub.cons = mask;
		m->cpu_class = cls;
	}
	w = weight * s->mix_inc;
	m->w += w;
	m->cpu_w += w * r->cpu_milli;
	m->mem_w += w * (double)r->mem;
	s->mix_sum += w;
	s->mix_inc *= s->mix_grow;
	if (s->mix_inc > MIX_RESCALE) {
		for (uint32_t i = 0; i < s->nmix; i++) {
			s->mix[i].w /= s->mix_inc;
			s->mix[i].cpu_w /= s->mix_inc;
			s->mix[i].mem_w /= s->mix_inc;
		}
		s->mix_sum /= s->mix_inc;
		s->mix_inc = 1.0;
	}
}

uint32_t sched_mix_node_mask(struct sched *s, struct sched_node *n)
{
	if (n->mix_gen == s->mix_gen)
		return n->mix_mask;
	n->mix_mask = 0;
	for (uint32_t i = 0; i < s->nmcons; i++) {
		const struct mix_cons *c = &s->mcons[i];
		bool ok = node_ngpus(n) > 0;

		if (ok && c->model[0])
			ok = node_has_model(n, c->model);
		for (uint32_t g = 0; ok && c->gpu_mem && g < node_ngpus(n); g++)
			ok = n->res.gpus[g].mem >= c->gpu_mem;
		if (ok)
			n->mix_mask |= 1u << i;
	}
	n->mix_gen = s->mix_gen;
	return n->mix_mask;
}

double sched_mix_reserved(struct sched *s, struct sched_node *n)
{
	uint32_t mask;
	double w = 0;

	if (s->nmcons == 0 || s->mix_sum <= 0)
		return 0;
	mask = sched_mix_node_mask(s, n);
	if (mask == 0)
		return 0;
	for (uint32_t i = 0; i < s->nmix; i++) {
		if (s->mix[i].pub.cons & mask)
			w += s->mix[i].w;
	}
	return w / s->mix_sum;
}

/* Feed the mix with req's tasks, if it learns by itself. */
void sched_mix_learn(struct sched *s, const struct sched_req *req)
{
	const char *m = req->gpu_model;

	for (uint32_t i = 0; s->mix_learn && i < req->nparts; i++) {
		m = req->parts[i].gpu_model;
		if (req->parts[i].ntasks > 0)
			sched_mix_add(s, &req->parts[i].res, &m, m && m[0] ? 1 : 0,
				      req->parts[i].ntasks);
	}
	if (s->mix_learn && req->nparts == 0 && req->ntasks > 0)
		sched_mix_add(s, &req->res, &m, m && m[0] ? 1 : 0, req->ntasks);
}
