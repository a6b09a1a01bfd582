/*
 * keys.c - the master's identity and who may talk to it.
 *
 * Files in --state-dir, made by `mlmaster init`:
 *   master.key   the master's keypair (0600)
 *   master.pub   its public key, for mlctl and for people (0644)
 *   join.token   "mlsj1.<master key>.<join secret>": agents join with it (0600)
 *   admin.key    a keypair for mlctl on this machine (0600)
 *   admins       public keys allowed to use mlctl, one per line ('#' comments)
 * An agent proves it holds the join secret in its first sealed message; the
 * master then records that agent's key with its node and accepts only that
 * key for that node name (a new join with the secret replaces it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "log.h"
#include "master.h"
#include "seal.h"
#include "util.h"

static char *path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static int write_text(const char *path, const char *text, unsigned mode, char *why, size_t len)
{
	if (file_write_atomic(path, text, strlen(text)) != 0 || chmod(path, mode) != 0) {
		snprintf(why, len, "cannot write %s: %s", path, strerror(errno));
		return ERR_IO;
	}
	return 0;
}

int keys_init(const char *dir, bool print_token, char *why, size_t whylen)
{
	char *mkey = path_in(dir, "master.key"), *mpub = path_in(dir, "master.pub");
	char *tok = path_in(dir, "join.token"), *akey = path_in(dir, "admin.key");
	char *admins = path_in(dir, "admins"), *text = NULL;
	char pkstr[SEAL_PK_STR_LEN], token[SEAL_TOKEN_LEN], line[SEAL_PK_STR_LEN + 2];
	struct seal_key mk, ak;
	uint8_t secret[SEAL_SECRET_LEN];
	bool created;
	size_t len;
	int rv;

	if ((rv = mkdir_p(dir, 0700)) != 0) {
		snprintf(why, whylen, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((rv = seal_key_load_or_create(mkey, &mk, &created, why, whylen)) != 0)
		goto out;
	seal_pk_str(mk.pk, pkstr);
	snprintf(line, sizeof(line), "%s\n", pkstr);
	if ((rv = write_text(mpub, line, 0644, why, whylen)) != 0)
		goto out;
	if (file_read(tok, 4096, &text, &len) != 0) {
		seal_secret_generate(secret);
		seal_token_make(mk.pk, secret, token, sizeof(token));
		char *t = xasprintf("%s\n", token);
		rv = write_text(tok, t, 0600, why, whylen);
		free(t);
		if (rv != 0)
			goto out;
	} else {
		free(text);
	}
	text = NULL;
	if ((rv = seal_key_load_or_create(akey, &ak, &created, why, whylen)) != 0)
		goto out;
	bool have_admins = file_read(admins, 1 << 20, &text, &len) == 0;
	if (created || !have_admins) {
		char pk[SEAL_PK_STR_LEN];
		char *t;
		seal_pk_str(ak.pk, pk);
		t = xasprintf("# public keys allowed to use mlctl, one per line\n%s%s\n",
			      text ? text : "", pk);
		free(text);
		text = NULL;
		rv = write_text(admins, t, 0644, why, whylen);
		free(t);
		if (rv != 0)
			goto out;
	}
	free(text);
	text = NULL;
	if (print_token) {
		if ((rv = file_read(tok, 4096, &text, &len)) != 0) {
			snprintf(why, whylen, "cannot read %s", tok);
			goto out;
		}
		fputs(text, stdout);
	}
	rv = 0;
out:
	sodium_memzero(&mk, sizeof(mk));
	sodium_memzero(&ak, sizeof(ak));
	free(text);
	free(mkey);
	free(mpub);
	free(tok);
	free(akey);
	free(admins);
	return rv;
}

int keys_load(struct master *m, char *why, size_t whylen)
{
	char *mkey = path_in(m->cfg.state_dir, "master.key");
	char *tok = path_in(m->cfg.state_dir, "join.token");
	char *admins = path_in(m->cfg.state_dir, "admins");
	char *text = NULL, *line, *rest;
	uint8_t tok_pk[SEAL_PK_LEN];
	size_t len;
	int rv;

	if ((rv = seal_key_load(mkey, &m->key, why, whylen)) != 0) {
		if (rv == ERR_NOENT)
			snprintf(why, whylen, "%s is missing: run `mlmaster init --state-dir %s` first",
				 mkey, m->cfg.state_dir);
		goto out;
	}
	if ((rv = file_read(tok, 4096, &text, &len)) != 0) {
		snprintf(why, whylen, "cannot read %s: run `mlmaster init` first", tok);
		goto out;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (seal_token_parse(text, tok_pk, m->join_secret) != 0 ||
	    sodium_memcmp(tok_pk, m->key.pk, SEAL_PK_LEN) != 0) {
		snprintf(why, whylen, "%s does not hold a join token for master.key", tok);
		rv = ERR_INVAL;
		goto out;
	}
	free(text);
	text = NULL;
	if ((rv = file_read(admins, 1 << 20, &text, &len)) != 0) {
		snprintf(why, whylen, "cannot read %s: run `mlmaster init` first", admins);
		goto out;
	}
	m->nadmins = 0;
	for (rest = text; (line = strsep(&rest, "\n"));) {
		char *p = line + strspn(line, " \t");
		p[strcspn(p, " \t\r#")] = '\0';
		if (!*p)
			continue;
		m->admins = xrealloc(m->admins, (m->nadmins + 1) * sizeof(*m->admins));
		if (seal_pk_parse(p, m->admins[m->nadmins]) != 0) {
			snprintf(why, whylen, "%s: \"%s\" is not a public key", admins, p);
			rv = ERR_INVAL;
			goto out;
		}
		m->nadmins++;
	}
	m->seal = seal_ctx_new(&m->key);
	rv = 0;
out:
	free(text);
	free(mkey);
	free(tok);
	free(admins);
	return rv;
}

bool keys_is_admin(const struct master *m, const uint8_t *pk)
{
	for (size_t i = 0; i < m->nadmins; i++)
		if (sodium_memcmp(m->admins[i], pk, SEAL_PK_LEN) == 0)
			return true;
	return false;
}
