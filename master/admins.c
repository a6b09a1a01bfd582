/*
 * admins.c - parse and edit the admins file's text (see admins.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admins.h"
#include "err.h"
#include "util.h"

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool admins_name_ok(const char *name, char *why, size_t whylen)
{
	size_t len = strlen(name);

	if (len == 0) {
		set_why(why, whylen, "an admin name is required");
		return false;
	}
	if (len > ADMINS_NAME_MAX) {
		set_why(why, whylen, "admin name \"%.20s...\" is %zu characters long; at most %d",
			name, len, ADMINS_NAME_MAX);
		return false;
	}
	if (!name_char(name[0]) || name[0] == '.' || name[0] == '_' || name[0] == '-') {
		set_why(why, whylen, "admin name \"%s\" must start with a letter or a digit", name);
		return false;
	}
	for (size_t i = 0; i < len; i++)
		if (!name_char(name[i])) {
			set_why(why, whylen,
				"admin name \"%s\": character '%c' is not allowed (letters, digits, "
				"'.', '_' and '-' are)",
				name, name[i] >= ' ' && name[i] < 127 ? name[i] : '?');
			return false;
		}
	return true;
}

/* Split one line (modified in place) into its words before any '#'.  At
 * most 3 are returned, so a third means "too many". */
static size_t words(char *line, char *w[3])
{
	size_t n = 0;
	char *p = line;

	p[strcspn(p, "#\r")] = '\0';
	while (n < 3) {
		p += strspn(p, " \t");
		if (!*p)
			break;
		w[n++] = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
	}
	return n;
}

/* Parse one line into a (when it has an entry, *has).  0 or ERR_INVAL. */
static int parse_line(char *line, unsigned no, struct admin *a, bool *has, char *why,
		      size_t whylen)
{
	char *w[3], nwhy[160];
	size_t n = words(line, w);

	*has = false;
	if (n == 0)
		return 0;
	if (n == 3) {
		set_why(why, whylen, "line %u: \"%s\" after the name: one key and one name a line",
			no, w[2]);
		return ERR_INVAL;
	}
	if (seal_pk_parse(w[0], a->pk) != 0) {
		set_why(why, whylen, "line %u: \"%.50s\" is not a public key (43 base64url characters)",
			no, w[0]);
		return ERR_INVAL;
	}
	a->name[0] = '\0';
	if (n == 2) {
		if (!admins_name_ok(w[1], nwhy, sizeof(nwhy))) {
			set_why(why, whylen, "line %u: %s", no, nwhy);
			return ERR_INVAL;
		}
		strlcpy_ok(a->name, w[1], sizeof(a->name));
	}
	a->line = no;
	*has = true;
	return 0;
}

int admins_parse(const char *text, struct admin **out, size_t *n, char *why, size_t whylen)
{
	char *copy = xstrdup(text), *rest = copy, *line;
	struct admin *a = NULL, e;
	size_t cnt = 0, cap = 0;
	unsigned no = 0;
	bool has;
	int rv;

	*out = NULL;
	*n = 0;
	while ((line = strsep(&rest, "\n"))) {
		no++;
		if ((rv = parse_line(line, no, &e, &has, why, whylen)) != 0)
			goto fail;
		if (!has)
			continue;
		if (cnt == ADMINS_MAX) {
			set_why(why, whylen, "line %u: more than %d admin keys", no, ADMINS_MAX);
			rv = ERR_TOOBIG;
			goto fail;
		}
		if (cnt == cap) {
			cap = cap ? cap * 2 : 8;
			a = xrealloc(a, cap * sizeof(*a));
		}
		a[cnt++] = e;
	}
	free(copy);
	*out = a;
	*n = cnt;
	return 0;
fail:
	free(copy);
	free(a);
	return rv;
}

long admins_find(const struct admin *a, size_t n, const char *who)
{
	char pk[SEAL_PK_STR_LEN], fp[SEAL_FP_LEN];

	for (size_t i = 0; i < n; i++) {
		if (a[i].name[0] && strcmp(a[i].name, who) == 0)
			return (long)i;
		seal_pk_str(a[i].pk, pk);
		seal_fingerprint(a[i].pk, fp);
		if (strcmp(pk, who) == 0 || strcmp(fp, who) == 0)
			return (long)i;
	}
	return -1;
}

char *admins_append(const char *text, const uint8_t pk[SEAL_PK_LEN], const char *name)
{
	char pks[SEAL_PK_STR_LEN];
	size_t len = strlen(text);

	seal_pk_str(pk, pks);
	return xasprintf("%s%s%s %s\n", text, len && text[len - 1] != '\n' ? "\n" : "", pks, name);
}

int admins_drop(const char *text, const uint8_t pk[SEAL_PK_LEN], char **out, size_t *removed,
		char *why, size_t whylen)
{
	size_t len = strlen(text), used = 0;
	char *buf = xmalloc(len + 1);
	const char *p = text;
	unsigned no = 0;
	int rv;

	*out = NULL;
	*removed = 0;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
		char *line = xstrndup(p, nl ? l - 1 : l);
		struct admin e;
		bool has;

		no++;
		rv = parse_line(line, no, &e, &has, why, whylen);
		free(line);
		if (rv != 0) {
			free(buf);
			return rv;
		}
		if (has && memcmp(e.pk, pk, SEAL_PK_LEN) == 0) {
			(*removed)++;
		} else {
			memcpy(buf + used, p, l);
			used += l;
		}
		p += l;
	}
	buf[used] = '\0';
	*out = buf;
	return 0;
}
