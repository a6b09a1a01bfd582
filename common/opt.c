/*
 * opt.c - table-driven options (see opt.h).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "opt.h"
#include "units.h"
#include "util.h"

/* Config file text stays alive for the process: string options point into it. */
static char *file_text;

static const struct opt *lookup(const struct opt *tab, const char *name, size_t len)
{
	for (; tab->name; tab++)
		if (strlen(tab->name) == len && strncmp(tab->name, name, len) == 0)
			return tab;
	return NULL;
}

static int set(const struct opt *o, const char *val, char *err, size_t errlen)
{
	switch (o->type) {
	case OPT_STR:
		*(const char **)o->dst = val;
		return 0;
	case OPT_BOOL:
		if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0)
			*(bool *)o->dst = true;
		else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0 ||
			 strcmp(val, "no") == 0)
			*(bool *)o->dst = false;
		else
			goto bad;
		return 0;
	case OPT_DUR:
		if (units_parse_duration(val, o->dst) != 0)
			goto bad;
		return 0;
	case OPT_SIZE:
		if (units_parse_size(val, o->dst) != 0)
			goto bad;
		return 0;
	case OPT_UINT: {
		char *end;
		if (!isdigit((unsigned char)*val))
			goto bad;
		*(uint64_t *)o->dst = strtoull(val, &end, 10);
		if (*end)
			goto bad;
		return 0;
	}
	}
bad:
	snprintf(err, errlen, "--%s: \"%s\" is not a valid %s", o->name, val,
		 o->type == OPT_DUR    ? "duration (like 500ms, 3s)"
		 : o->type == OPT_SIZE ? "size (like 512M, 8G)"
		 : o->type == OPT_BOOL ? "boolean (true or false)"
				       : "number");
	return ERR_INVAL;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_file(const struct opt *tab, const char *path, char *err, size_t errlen)
{
	size_t len;
	int lineno = 0, rv;
	char *line, *rest;

	if ((rv = file_read(path, 1 << 20, &file_text, &len)) != 0) {
		snprintf(err, errlen, "%s: cannot read: %s", path, err_str(rv));
		return ERR_INVAL;
	}
	for (rest = file_text; (line = strsep(&rest, "\n"));) {
		char *hash = strchr(line, '#'), *eq, *key, *val;
		const struct opt *o;
		lineno++;
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		if (!(eq = strchr(key, '='))) {
			snprintf(err, errlen, "%s:%d: \"%s\": expected key = value", path, lineno,
				 key);
			return ERR_INVAL;
		}
		*eq = '\0';
		val = trim(eq + 1);
		key = trim(key);
		if (!(o = lookup(tab, key, strlen(key))) || strcmp(key, "config") == 0) {
			snprintf(err, errlen, "%s:%d: unknown key \"%s\"", path, lineno, key);
			return ERR_INVAL;
		}
		if (set(o, val, err, errlen) != 0) {
			char inner[256];
			snprintf(inner, sizeof(inner), "%s", err);
			snprintf(err, errlen, "%s:%d: %s", path, lineno, inner);
			return ERR_INVAL;
		}
	}
	return 0;
}

void opt_usage(FILE *f, const char *prog, const char *synopsis, const struct opt *tab)
{
	fprintf(f, "usage: %s %s\n\noptions (also \"key = value\" lines in --config FILE):\n", prog,
		synopsis);
	for (; tab->name; tab++) {
		char flag[64];
		snprintf(flag, sizeof(flag), "--%s%s", tab->name,
			 tab->type == OPT_BOOL ? "" : " VALUE");
		fprintf(f, "  %-26s %s", flag, tab->help);
		if (tab->def && tab->type != OPT_BOOL)
			fprintf(f, " (default %s)", tab->def);
		fputc('\n', f);
	}
	fprintf(f, "  %-26s %s\n  %-26s %s\n", "--config FILE", "read options from FILE", "--help",
		"show this help");
}

int opt_parse(const struct opt *tab, int argc, char **argv, int *nargs, const char *prog,
	      const char *synopsis, char *err, size_t errlen)
{
	const char *config = NULL;
	int npos = 0;

	for (const struct opt *o = tab; o->name; o++) {
		if (o->type == OPT_STR)
			*(const char **)o->dst = o->def;
		else if (o->type == OPT_BOOL)
			*(bool *)o->dst = false;
		else if (o->def && set(o, o->def, err, errlen) != 0)
			return ERR_INVAL;
		else if (!o->def)
			*(uint64_t *)o->dst = 0;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			opt_usage(stdout, prog, synopsis, tab);
			return 1;
		}
		if (strcmp(argv[i], "--config") == 0 && i + 1 >= argc) {
			snprintf(err, errlen, "--config needs a file");
			return ERR_INVAL;
		}
		if (strcmp(argv[i], "--config") == 0)
			config = argv[i + 1];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			config = argv[i] + 9;
	}
	if (config && load_file(tab, config, err, errlen) != 0)
		return ERR_INVAL;
	for (int i = 1; i < argc; i++) {
		char *a = argv[i], *eq;
		const struct opt *o;
		const char *val;
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (strcmp(a, "--") == 0) {
				while (++i < argc)
					argv[npos++] = argv[i];
				break;
			}
			argv[npos++] = a;
			continue;
		}
		eq = strchr(a, '=');
		if (strncmp(a + 2, "config", 6) == 0 && (a[8] == '\0' || a[8] == '=')) {
			if (!eq)
				i++;
			continue;
		}
		if (!(o = lookup(tab, a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2)))) {
			snprintf(err, errlen, "unknown option %s (see %s --help)", a, prog);
			return ERR_INVAL;
		}
		if (eq)
			val = eq + 1;
		else if (o->type == OPT_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "--%s needs a value", o->name);
			return ERR_INVAL;
		}
		if (set(o, val, err, errlen) != 0)
			return ERR_INVAL;
	}
	*nargs = npos;
	return 0;
}
