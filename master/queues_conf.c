/*
 * queues_conf.c - the queues file of mlmaster --queues (see queues.h):
 * strict parsing with libyaml, and lookups.  Needs common/ only, so that
 * unit tests and the fuzzer take it alone.
 */
#include "queues.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "err.h"
#include "spec.h"
#include "units.h"
#include "util.h"

#define QUEUES_FILE_MAX (1024 * 1024)

struct pctx {
	const char *path;
	char *why;
	size_t whylen;
	yaml_document_t *doc;
};

static int bad(const struct pctx *c, const yaml_node_t *n, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int bad(const struct pctx *c, const yaml_node_t *n, const char *field, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(c->why, c->whylen, "%s:%zu: %s%s%s", c->path, n ? n->start_mark.line + 1 : 1,
		 field ? field : "", field ? ": " : "", msg);
	return ERR_INVAL;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_queue(const struct pctx *c, yaml_node_t *n, size_t idx, struct mqueue *q)
{
	bool seen_name = false, seen_gpus = false, seen_weight = false, seen_borrow = false;
	char field[96];
	yaml_node_pair_t *p;

	snprintf(field, sizeof(field), "queues[%zu]", idx);
	if (n->type != YAML_MAPPING_NODE)
		return bad(c, n, field, "must be a mapping like {name: research, gpus: 8}");
	q->weight = 1;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(c->doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(c->doc, p->value);
		const char *k = scalar(kn), *v = scalar(vn);
		char *end;

		snprintf(field, sizeof(field), "queues[%zu].%.40s", idx, k ? k : "?");
		if (!k)
			return bad(c, kn, field, "keys must be plain words");
		if (!v)
			return bad(c, vn, field, "must be a single value");
		if (strcmp(k, "name") == 0) {
			if (seen_name)
				return bad(c, kn, field, "given twice");
			seen_name = true;
			if (!spec_name_ok(v) || strlen(v) > QUEUE_NAME_MAX)
				return bad(c, vn, field,
					   "\"%.64s\" is not a valid queue name ([a-z0-9][a-z0-9._-]*, "
					   "not all digits)",
					   v);
			strlcpy_ok(q->name, v, sizeof(q->name));
		} else if (strcmp(k, "gpus") == 0) {
			unsigned long g;
			if (seen_gpus)
				return bad(c, kn, field, "given twice");
			seen_gpus = true;
			g = strtoul(v, &end, 10);
			if (!*v || *end || *v == '-' || *v == '+' || g > QUEUE_GPUS_MAX)
				return bad(c, vn, field,
					   "\"%.64s\" is not a whole number of GPUs (0..%u)", v,
					   QUEUE_GPUS_MAX);
			q->gpus = (uint32_t)g;
		} else if (strcmp(k, "weight") == 0) {
			if (seen_weight)
				return bad(c, kn, field, "given twice");
			seen_weight = true;
			q->weight = strtod(v, &end);
			if (!*v || *end || !isfinite(q->weight) || q->weight <= 0 ||
			    q->weight > 1e6)
				return bad(c, vn, field,
					   "\"%.64s\" is not a positive number (at most 1000000)", v);
		} else if (strcmp(k, "borrow") == 0) {
			if (seen_borrow)
				return bad(c, kn, field, "given twice");
			seen_borrow = true;
			if (strcmp(v, "true") == 0)
				q->borrow = true;
			else if (strcmp(v, "false") == 0)
				q->borrow = false;
			else
				return bad(c, vn, field, "\"%.64s\" must be true or false", v);
		} else {
			return bad(c, kn, field,
				   "unknown field (a queue has name, gpus, weight and borrow)");
		}
	}
	snprintf(field, sizeof(field), "queues[%zu]", idx);
	if (!seen_name)
		return bad(c, n, field, "name: required");
	if (!seen_gpus)
		return bad(c, n, field, "gpus: required (the queue's GPU quota)");
	return 0;
}

int queues_parse(const char *path, const char *text, size_t len, struct queues **out, char *why,
		 size_t whylen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root, *list = NULL;
	yaml_node_pair_t *p;
	struct queues *qs = xcalloc(1, sizeof(*qs));
	struct pctx c = {path, why, whylen, &doc};
	bool seen_hl = false;
	int rv = ERR_INVAL;

	*out = NULL;
	qs->half_life_ms = QUEUES_DEFAULT_HALF_LIFE_MS;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(why, whylen, "%s:%zu: %s", path, parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		free(qs);
		return ERR_INVAL;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		rv = bad(&c, root, NULL, "must be a mapping with queues: [...]");
		goto out;
	}
	for (p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
		yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
		const char *k = scalar(kn);

		if (k && strcmp(k, "queues") == 0) {
			if (list) {
				rv = bad(&c, kn, "queues", "given twice");
				goto out;
			}
			list = vn;
		} else if (k && strcmp(k, "fair_share_half_life") == 0) {
			const char *v = scalar(vn);
			if (seen_hl) {
				rv = bad(&c, kn, k, "given twice");
				goto out;
			}
			seen_hl = true;
			if (!v || units_parse_duration(v, &qs->half_life_ms) != 0 ||
			    qs->half_life_ms < 1000) {
				rv = bad(&c, vn, k, "\"%.64s\" is not a duration of at least 1s "
					 "(like 30m, 1h, 7d)", v ? v : "");
				goto out;
			}
		} else {
			rv = bad(&c, kn, k ? k : "?",
				 "unknown field (the file has queues and fair_share_half_life)");
			goto out;
		}
	}
	if (!list) {
		rv = bad(&c, root, "queues", "required (a list of {name, gpus, weight, borrow})");
		goto out;
	}
	if (list->type != YAML_SEQUENCE_NODE ||
	    list->data.sequence.items.top == list->data.sequence.items.start) {
		rv = bad(&c, list, "queues", "must be a non-empty list");
		goto out;
	}
	size_t nq = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
	if (nq > SCHED_QUEUES_MAX) {
		rv = bad(&c, list, "queues", "%zu queues; at most %d", nq, SCHED_QUEUES_MAX);
		goto out;
	}
	qs->q = xcalloc(nq, sizeof(*qs->q));
	for (size_t i = 0; i < nq; i++) {
		yaml_node_t *qn = yaml_document_get_node(&doc, list->data.sequence.items.start[i]);
		if ((rv = parse_queue(&c, qn, i, &qs->q[i])) != 0)
			goto out;
		for (size_t k = 0; k < i; k++) {
			if (strcmp(qs->q[k].name, qs->q[i].name) == 0) {
				char field[64];
				snprintf(field, sizeof(field), "queues[%zu].name", i);
				rv = bad(&c, qn, field, "\"%s\" is also queues[%zu]", qs->q[i].name,
					 k);
				goto out;
			}
		}
		qs->n++;
	}
	rv = 0;
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rv != 0)
		queues_free(qs);
	else
		*out = qs;
	return rv;
}

int queues_load_file(const char *path, struct queues **out, char *why, size_t whylen)
{
	char *text;
	size_t len;
	int rv;

	*out = NULL;
	if (file_read(path, QUEUES_FILE_MAX, &text, &len) != 0) {
		snprintf(why, whylen, "%s: cannot read it (missing, unreadable or over 1 MiB)", path);
		return ERR_IO;
	}
	rv = queues_parse(path, text, len, out, why, whylen);
	free(text);
	return rv;
}

void queues_free(struct queues *qs)
{
	if (!qs)
		return;
	free(qs->q);
	free(qs);
}

uint32_t queues_find(const struct queues *qs, const char *name)
{
	for (uint32_t i = 0; qs && name && i < qs->n; i++) {
		if (strcmp(qs->q[i].name, name) == 0)
			return i + 1;
	}
	return 0;
}

void queues_names(const struct queues *qs, char *buf, size_t len)
{
	size_t at = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; qs && i < qs->n && at < len; i++) {
		snprintf(buf + at, len - at, "%s%s", i ? ", " : "", qs->q[i].name);
		at += strlen(buf + at);
	}
}

