/*
 * keys.c - the master's identity and who may talk to it.
 *
 * Files in --state-dir, made by `mlmaster init`:
 *   master.key   the master's keypair (0600)
 *   master.pub   its public key, for mlctl and for people (0644)
 *   join.token   "mlsj1.<master key>.<join secret>": agents join with it (0600)
 *   admin.key    a keypair for mlctl on this machine (0600), listed as "admin"
 *   admins       public keys allowed to use mlctl, one per line (admins.h)
 *   admin-keys/NAME/  admin.key and master.pub of `mlmaster admin add NAME`
 * An agent proves it holds the join secret in its first sealed message; the
 * master then records that agent's key with its node and accepts only that
 * key for that node name (a new join with the secret replaces it).
 *
 * Changes while the master runs.  `mlmaster token --rotate` and `mlmaster
 * admin add|revoke` only rewrite files (atomically, by rename), so they work
 * whether a master runs or not.  A running master notices: before it judges
 * a join attempt or an mlctl request it compares join.token and admins with
 * what it loaded (inode, size, mtime, ctime; a stat each, no read) and
 * reloads a file that changed.  So a rotated-away token is refused from the
 * very next join, and a revoked admin key from its very next request.  A
 * file that no longer loads (removed, malformed, join.token readable by
 * others) fails closed: joins, or mlctl requests, are refused with the
 * reason until it is fixed; agents already joined are not affected.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admins.h"
#include "err.h"
#include "log.h"
#include "master.h"
#include "seal.h"
#include "util.h"

/* Enough of a stat to tell a file that was replaced or rewritten. */
struct file_id {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
};

struct keys_files {
	char *tok_path, *adm_path;
	struct file_id tok, adm;
	char tok_err[256]; /* "" = join_secret is the file's */
	char adm_err[256]; /* "" = admins are the file's */
};

static char *path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static int write_text(const char *path, const char *text, unsigned mode, char *why, size_t len)
{
	if (file_write_atomic_mode(path, text, strlen(text), mode) != 0) {
		snprintf(why, len, "cannot write %s: %s", path, strerror(errno));
		return ERR_IO;
	}
	return 0;
}

/* A new join secret and its token in dir/join.token; token gets it. */
int keys_token_new(const char *dir, const struct seal_key *mk, char token[SEAL_TOKEN_LEN],
			   char *why, size_t whylen)
{
	uint8_t secret[SEAL_SECRET_LEN];
	char *path = path_in(dir, "join.token"), *t;
	int rv;

	if ((rv = seal_secret_generate(secret)) != 0) {
		snprintf(why, whylen, "libsodium cannot make random bytes");
		goto out;
	}
	seal_token_make(mk->pk, secret, token, SEAL_TOKEN_LEN);
	t = xasprintf("%s\n", token);
	rv = write_text(path, t, 0600, why, whylen);
	sodium_memzero(t, strlen(t));
	free(t);
out:
	sodium_memzero(secret, sizeof(secret));
	free(path);
	return rv;
}

int keys_init(const char *dir, bool print_token, char *why, size_t whylen)
{
	char *mkey = path_in(dir, "master.key"), *mpub = path_in(dir, "master.pub");
	char *tok = path_in(dir, "join.token"), *akey = path_in(dir, "admin.key");
	char *admins = path_in(dir, "admins"), *text = NULL;
	char pkstr[SEAL_PK_STR_LEN], token[SEAL_TOKEN_LEN], line[SEAL_PK_STR_LEN + 2];
	struct seal_key mk, ak;
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
		if ((rv = keys_token_new(dir, &mk, token, why, whylen)) != 0)
			goto out;
	} else {
		free(text);
	}
	text = NULL;
	if ((rv = seal_key_load_or_create(akey, &ak, &created, why, whylen)) != 0)
		goto out;
	bool have_admins = file_read(admins, ADMINS_FILE_MAX, &text, &len) == 0;
	if (created || !have_admins) {
		char *t = admins_append(text ? text
					     : "# public keys allowed to use mlctl, one per line, "
					       "with a name\n",
					ak.pk, "admin");
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

static void file_id_of(const char *path, struct file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) != 0)
		return;
	id->exists = true;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	id->ctime = st.st_ctim;
}

static bool file_id_same(const struct file_id *a, const struct file_id *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Read the join token at path into m->join_secret.  The file is a secret:
 * refused when group or others may read it. */
static int load_token(struct master *m, const char *path, char *why, size_t whylen)
{
	uint8_t tok_pk[SEAL_PK_LEN], secret[SEAL_SECRET_LEN];
	struct stat st;
	char *text = NULL;
	size_t len;
	int rv;

	if (stat(path, &st) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return errno == ENOENT ? ERR_NOENT : ERR_IO;
	}
	if (st.st_mode & 077) {
		snprintf(why, whylen, "%s: permissions %04o are too open for a secret; chmod 600 %s",
			 path, (unsigned)(st.st_mode & 07777), path);
		return ERR_INVAL;
	}
	if ((rv = file_read(path, 4096, &text, &len)) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return rv;
	}
	text[strcspn(text, "\r\n")] = '\0';
	if (seal_token_parse(text, tok_pk, secret) != 0 ||
	    sodium_memcmp(tok_pk, m->key.pk, SEAL_PK_LEN) != 0) {
		snprintf(why, whylen, "%s does not hold a join token for master.key", path);
		rv = ERR_INVAL;
		goto out;
	}
	memcpy(m->join_secret, secret, SEAL_SECRET_LEN);
	rv = 0;
out:
	sodium_memzero(secret, sizeof(secret));
	sodium_memzero(text, len);
	free(text);
	return rv;
}

/* Read the admins file at path into m->admins. */
static int load_admins(struct master *m, const char *path, char *why, size_t whylen)
{
	struct admin *a = NULL;
	char *text = NULL, pwhy[200];
	size_t len, n;
	int rv;

	if ((rv = file_read(path, ADMINS_FILE_MAX, &text, &len)) != 0) {
		snprintf(why, whylen, "cannot read %s: %s", path,
			 rv == ERR_NOENT || errno == ENOENT ? "no such file" : strerror(errno));
		return rv;
	}
	if ((rv = admins_parse(text, &a, &n, pwhy, sizeof(pwhy))) != 0) {
		snprintf(why, whylen, "%s: %s", path, pwhy);
		goto out;
	}
	m->admins = xrealloc(m->admins, (n ? n : 1) * sizeof(*m->admins));
	for (size_t i = 0; i < n; i++)
		memcpy(m->admins[i], a[i].pk, SEAL_PK_LEN);
	m->nadmins = n;
out:
	free(a);
	free(text);
	return rv;
}

int keys_load(struct master *m, char *why, size_t whylen)
{
	char *mkey = path_in(m->cfg.state_dir, "master.key");
	struct keys_files *kf = xcalloc(1, sizeof(*kf));
	int rv;

	kf->tok_path = path_in(m->cfg.state_dir, "join.token");
	kf->adm_path = path_in(m->cfg.state_dir, "admins");
	if ((rv = seal_key_load(mkey, &m->key, why, whylen)) != 0) {
		if (rv == ERR_NOENT)
			snprintf(why, whylen, "%s is missing: run `mlmaster init --state-dir %s` first",
				 mkey, m->cfg.state_dir);
		goto out;
	}
	/* The identities first, then the loads: a file replaced between the
	 * two is loaded again at the next check rather than missed. */
	file_id_of(kf->tok_path, &kf->tok);
	file_id_of(kf->adm_path, &kf->adm);
	if ((rv = load_token(m, kf->tok_path, why, whylen)) != 0) {
		if (rv == ERR_NOENT)
			snprintf(why, whylen, "cannot read %s: run `mlmaster init` first",
				 kf->tok_path);
		goto out;
	}
	if ((rv = load_admins(m, kf->adm_path, why, whylen)) != 0) {
		if (rv == ERR_NOENT)
			snprintf(why, whylen, "cannot read %s: run `mlmaster init` first",
				 kf->adm_path);
		goto out;
	}
	m->seal = seal_ctx_new(&m->key);
	m->keyfiles = kf;
	kf = NULL;
	rv = 0;
out:
	if (kf) {
		free(kf->tok_path);
		free(kf->adm_path);
		free(kf);
	}
	free(mkey);
	return rv;
}

void keys_refresh(struct master *m, unsigned which)
{
	struct keys_files *kf = m->keyfiles;
	struct file_id id;
	char why[256];

	if (!kf)
		return;
	if (which & KEYS_TOKEN) {
		file_id_of(kf->tok_path, &id);
		if (!file_id_same(&id, &kf->tok)) {
			kf->tok = id;
			if (load_token(m, kf->tok_path, why, sizeof(why)) == 0) {
				kf->tok_err[0] = '\0';
				log_info("join token reloaded from %s: only this token admits new "
					 "agents",
					 kf->tok_path);
			} else {
				/* Fail closed: the old secret must not keep working. */
				sodium_memzero(m->join_secret, sizeof(m->join_secret));
				strlcpy_ok(kf->tok_err, why, sizeof(kf->tok_err));
				log_error("join token not reloaded, new agents are refused until it "
					  "is fixed: %s",
					  why);
			}
		}
	}
	if (which & KEYS_ADMINS) {
		file_id_of(kf->adm_path, &id);
		if (!file_id_same(&id, &kf->adm)) {
			kf->adm = id;
			if (load_admins(m, kf->adm_path, why, sizeof(why)) == 0) {
				kf->adm_err[0] = '\0';
				log_info("admin keys reloaded from %s: %zu keys", kf->adm_path,
					 m->nadmins);
			} else {
				m->nadmins = 0;
				strlcpy_ok(kf->adm_err, why, sizeof(kf->adm_err));
				log_error("admin keys not reloaded, mlctl is refused until the file "
					  "is fixed: %s",
					  why);
			}
		}
	}
}

void keys_free(struct master *m)
{
	if (!m->keyfiles)
		return;
	free(m->keyfiles->tok_path);
	free(m->keyfiles->adm_path);
	free(m->keyfiles);
	m->keyfiles = NULL;
	sodium_memzero(m->join_secret, sizeof(m->join_secret));
}

bool keys_join_ok(const struct master *m, const char *token, char *why, size_t whylen)
{
	uint8_t pk[SEAL_PK_LEN], secret[SEAL_SECRET_LEN];
	bool ok;

	if (m->keyfiles && m->keyfiles->tok_err[0]) {
		snprintf(why, whylen, "not joined: the master cannot use its join token (%s)",
			 m->keyfiles->tok_err);
		return false;
	}
	if (!token) {
		snprintf(why, whylen, "not joined: start mlagent with --join and the token from "
				      "`mlmaster token`");
		return false;
	}
	ok = seal_token_parse(token, pk, secret) == 0 &&
	     sodium_memcmp(pk, m->key.pk, SEAL_PK_LEN) == 0 &&
	     seal_secret_equal(secret, m->join_secret);
	sodium_memzero(secret, sizeof(secret));
	if (!ok)
		snprintf(why, whylen, "not joined: the join token is not this master's current "
				      "one (was it rotated?); start mlagent with --join and the token "
				      "from `mlmaster token`");
	return ok;
}

const char *keys_admins_error(const struct master *m)
{
	return m->keyfiles && m->keyfiles->adm_err[0] ? m->keyfiles->adm_err : NULL;
}

bool keys_is_admin(const struct master *m, const uint8_t *pk)
{
	for (size_t i = 0; i < m->nadmins; i++)
		if (sodium_memcmp(m->admins[i], pk, SEAL_PK_LEN) == 0)
			return true;
	return false;
}
