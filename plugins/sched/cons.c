/*
 * cons.c - label constraints as text: sched_cons_parse() reads "zone=a",
 * "pool!=cloud" or "gpu in (a100, h100)", sched_cons_format() writes the
 * canonical form back.  Matching a constraint against a node is fitting
 * (cons_ok() in sched_int.h).
 */
#include "sched.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

static bool tok_char(char c)
{
	return c && !strchr(" \t\n\r,()=!", c);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Copy one token at *pp into out; 0, or a reason. */
static const char *take_tok(const char **pp, char *out, const char *what)
{
	const char *p = skip_ws(*pp), *q = p;

	while (tok_char(*q))
		q++;
	if (q == p)
		return what;
	if ((size_t)(q - p) >= SCHED_LABEL_LEN)
		return "name or value longer than 63 characters";
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	*pp = q;
	return NULL;
}

int sched_cons_parse(const char *text, struct sched_cons *c, char *why, size_t whylen)
{
	const char *p = text ? text : "", *err = NULL;

	memset(c, 0, sizeof(*c));
	if ((err = take_tok(&p, c->key, "missing label name")) != NULL)
		goto out;
	p = skip_ws(p);
	if (p[0] == '!' && p[1] == '=') {
		c->op = SCHED_NE;
		p += 2;
	} else if (p[0] == '=') {
		c->op = SCHED_EQ;
		p += p[1] == '=' ? 2 : 1;
	} else if (p[0] == 'i' && p[1] == 'n' && (p[2] == '(' || p[2] == ' ' || p[2] == '\t')) {
		c->op = SCHED_IN;
		p = skip_ws(p + 2);
		if (*p != '(') {
			err = "expected ( after in";
			goto out;
		}
		p++;
		for (;;) {
			if (c->nvals == SCHED_MAX_IN) {
				err = "too many values in (...) (at most 8)";
				goto out;
			}
			if ((err = take_tok(&p, c->vals[c->nvals], "missing value in (...)")) != NULL)
				goto out;
			c->nvals++;
			p = skip_ws(p);
			if (*p == ')')
				break;
			if (*p != ',') {
				err = "expected , or ) in (...)";
				goto out;
			}
			p++;
		}
		p++;
		goto end;
	} else {
		err = "expected =, != or in after the label name";
		goto out;
	}
	if ((err = take_tok(&p, c->vals[0], "missing value")) != NULL)
		goto out;
	c->nvals = 1;
end:
	if (*skip_ws(p) != '\0')
		err = "unexpected text after the constraint";
out:
	if (err) {
		if (why && whylen)
			snprintf(why, whylen, "constraint \"%s\": %s", text ? text : "", err);
		memset(c, 0, sizeof(*c));
		return ERR_INVAL;
	}
	return 0;
}

void sched_cons_format(const struct sched_cons *c, char *buf, size_t len)
{
	size_t at;

	if (!buf || len == 0)
		return;
	switch (c->op) {
	case SCHED_EQ:
	case SCHED_NE:
		snprintf(buf, len, "%s%s%s", c->key, c->op == SCHED_EQ ? "=" : "!=", c->vals[0]);
		return;
	case SCHED_IN:
		snprintf(buf, len, "%s in (", c->key);
		for (uint32_t i = 0; i < c->nvals && i < SCHED_MAX_IN; i++) {
			at = strlen(buf);
			snprintf(buf + at, len - at, "%s%s", i ? "," : "", c->vals[i]);
		}
		at = strlen(buf);
		snprintf(buf + at, len - at, ")");
		return;
	}
	buf[0] = '\0';
}
