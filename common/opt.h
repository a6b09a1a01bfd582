/*
 * opt.h - daemon options from one table: defaults, then a config file, then
 * command-line flags; --help is generated from the same table.
 *
 * A config file holds "key = value" lines (keys are the long flag names
 * without "--"), '#' starts a comment.  Flags are "--name value" or
 * "--name=value"; booleans are "--name" alone (or "--name=true|false").
 */
#ifndef MLSCHED_OPT_H
#define MLSCHED_OPT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum opt_type {
	OPT_STR,  /* const char * (points into argv, the file buffer or def) */
	OPT_BOOL, /* bool */
	OPT_DUR,  /* uint64_t milliseconds, "500ms" */
	OPT_SIZE, /* uint64_t bytes, "8G" */
	OPT_UINT, /* uint64_t */
};

struct opt {
	const char *name;
	enum opt_type type;
	const char *def; /* NULL: no default (strings stay NULL) */
	const char *help;
	void *dst;
};

/*
 * Fill every dst from defaults, the file named by a "--config PATH" flag if
 * any, then the flags.  Positional arguments are moved to the front of argv
 * in order; *nargs gets their count.  Returns 0; 1 when --help was asked
 * (usage already printed to stdout); ERR_INVAL with a message in err for a
 * bad flag, a bad value or an unreadable config file.
 */
int opt_parse(const struct opt *tab, int argc, char **argv, int *nargs, const char *prog,
	      const char *synopsis, char *err, size_t errlen);
void opt_usage(FILE *f, const char *prog, const char *synopsis, const struct opt *tab);

#endif
