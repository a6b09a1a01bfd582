/*
 * admins.h - the admins file: who may use mlctl with this master.
 *
 * STATE_DIR/admins lists one admin key per line:
 *
 *   <public key, 43 base64url characters> [NAME] [# comment]
 *
 * Blank lines and lines starting with '#' are comments.  NAME is what
 * `mlmaster admin add NAME` gave the key (1 to ADMINS_NAME_MAX of
 * [A-Za-z0-9._-], starting with a letter or digit); lines written by hand or
 * by older versions may have none.  The file holds only public keys, so it
 * may be world-readable; the secret halves live in the key files.
 *
 * These are pure functions on the file's text (no I/O), so that the master,
 * `mlmaster admin` and the unit tests share one parser.
 */
#ifndef MLSCHED_ADMINS_H
#define MLSCHED_ADMINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seal.h"

#define ADMINS_NAME_MAX 63
#define ADMINS_MAX 4096      /* entries in one file */
#define ADMINS_FILE_MAX (1 << 20)

struct admin {
	uint8_t pk[SEAL_PK_LEN];
	char name[ADMINS_NAME_MAX + 1]; /* "" = unnamed */
	unsigned line;                  /* 1-based, in the text parsed */
};

/* Is name a valid admin name?  false with the reason in why (may be NULL). */
bool admins_name_ok(const char *name, char *why, size_t whylen);

/*
 * Parse the admins file's text (NUL-terminated).  On success *out is a
 * malloc'd array of *n entries in file order (the caller frees it; *out is
 * NULL when *n is 0).  Errors: ERR_INVAL with "line N: ..." in why (not a
 * public key, a bad name, extra words), ERR_TOOBIG beyond ADMINS_MAX entries;
 * *out is then NULL.
 */
int admins_parse(const char *text, struct admin **out, size_t *n, char *why, size_t whylen);

/* Index of the first entry whose name, public key text or fingerprint is
 * who, or -1. */
long admins_find(const struct admin *a, size_t n, const char *who);

/*
 * The text with one line "<pk> NAME\n" appended (a newline is added first
 * when text does not end in one).  Returns a malloc'd string the caller
 * frees.  Does not check for duplicates (admins_find does).
 */
char *admins_append(const char *text, const uint8_t pk[SEAL_PK_LEN], const char *name);

/*
 * The text without the lines that list pk (every one: a key listed twice
 * under two names must not stay an admin through the other line).  Comments
 * and other lines are kept as they are.  *out is malloc'd (caller frees),
 * *removed counts the lines dropped.  0, or ERR_INVAL when text does not
 * parse (why says where).
 */
int admins_drop(const char *text, const uint8_t pk[SEAL_PK_LEN], char **out, size_t *removed,
		char *why, size_t whylen);

#endif
