/*
 * keyscmd.c - the key commands of mlmaster: init, token [--rotate], admin
 * add|list|revoke.  They only read and write files in --state-dir (see
 * keys.c for the files and how a running master notices changes), so they
 * work whether a master runs or not.  Commands that change a file hold
 * STATE_DIR/keys.lock, so two of them cannot lose each other's change; the
 * master itself never writes these files.
 */
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
#include "master.h"
#include "seal.h"
#include "util.h"

#define WHY 512

/* Hold dir/keys.lock until the process exits (-1 with why on failure). */
static int lock_keys(const char *dir, char *why, size_t whylen)
{
	char *path = xasprintf("%s/keys.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		snprintf(why, whylen, "cannot open %s: %s (run mlmaster init first?)", path,
			 strerror(errno));
	else if (flock(fd, LOCK_EX) != 0) {
		snprintf(why, whylen, "cannot lock %s: %s", path, strerror(errno));
		close(fd);
		fd = -1;
	}
	free(path);
	return fd;
}

static int cmd_token(const char *dir, bool rotate)
{
	char *mkey = xasprintf("%s/master.key", dir), *tok = xasprintf("%s/join.token", dir);
	char why[WHY], token[SEAL_TOKEN_LEN], *text = NULL;
	struct seal_key mk;
	size_t len;
	int rv = 1;

	if (!rotate) {
		if (file_read(tok, 4096, &text, &len) != 0) {
			fprintf(stderr, "mlmaster token: cannot read %s: run mlmaster init\n", tok);
			goto out;
		}
		fputs(text, stdout);
		rv = 0;
		goto out;
	}
	if (lock_keys(dir, why, sizeof(why)) < 0 ||
	    seal_key_load(mkey, &mk, why, sizeof(why)) != 0 ||
	    keys_token_new(dir, &mk, token, why, sizeof(why)) != 0) {
		fprintf(stderr, "mlmaster token --rotate: %s\n", why);
		goto out;
	}
	printf("%s\n", token);
	fprintf(stderr,
		"mlmaster: new join token in %s; the old one no longer admits new agents "
		"(joined agents keep working; a running master uses the new token from its "
		"next join)\n",
		tok);
	rv = 0;
out:
	sodium_memzero(&mk, sizeof(mk));
	sodium_memzero(token, sizeof(token));
	free(text);
	free(mkey);
	free(tok);
	return rv;
}

/* The admins file's text and entries (the caller frees both). */
static int read_admins(const char *path, char **text, struct admin **a, size_t *n, char *why,
		       size_t whylen)
{
	char pwhy[256];
	size_t len;

	*text = NULL;
	*a = NULL;
	if (file_read(path, ADMINS_FILE_MAX, text, &len) != 0) {
		snprintf(why, whylen, "cannot read %s: run mlmaster init first", path);
		return ERR_IO;
	}
	if (admins_parse(*text, a, n, pwhy, sizeof(pwhy)) != 0) {
		snprintf(why, whylen, "%s: %s", path, pwhy);
		free(*text);
		*text = NULL;
		return ERR_INVAL;
	}
	return 0;
}

static int cmd_admin_add(const char *dir, const char *name)
{
	char *adm = xasprintf("%s/admins", dir), *kdir = xasprintf("%s/admin-keys/%s", dir, name);
	char *kpath = xasprintf("%s/admin.key", kdir), *pub = xasprintf("%s/master.pub", dir);
	char *kpub = xasprintf("%s/master.pub", kdir), *text = NULL, *next = NULL, *ptext = NULL;
	char why[WHY], fp[SEAL_FP_LEN];
	struct admin *a = NULL;
	struct seal_key k;
	size_t n, len;
	int rv = 1;

	memset(&k, 0, sizeof(k));
	if (!admins_name_ok(name, why, sizeof(why)) || lock_keys(dir, why, sizeof(why)) < 0 ||
	    read_admins(adm, &text, &a, &n, why, sizeof(why)) != 0)
		goto fail;
	if (admins_find(a, n, name) >= 0) {
		snprintf(why, sizeof(why),
			 "an admin named \"%s\" exists already (mlmaster admin list; revoke it "
			 "first to replace its key)",
			 name);
		goto fail;
	}
	if (file_read(pub, 4096, &ptext, &len) != 0) {
		snprintf(why, sizeof(why), "cannot read %s: run mlmaster init first", pub);
		goto fail;
	}
	if (access(kpath, F_OK) == 0) {
		snprintf(why, sizeof(why), "%s exists but is not in %s: remove it first", kpath,
			 adm);
		goto fail;
	}
	/* The key file and the master's public key in one folder: what the
	 * admin copies to the machine mlctl runs on. */
	if (mkdir_p(kdir, 0700) != 0) {
		snprintf(why, sizeof(why), "cannot create %s: %s", kdir, strerror(errno));
		goto fail;
	}
	if (seal_key_generate(&k) != 0) {
		snprintf(why, sizeof(why), "libsodium cannot make a key");
		goto fail;
	}
	if (seal_key_save(kpath, &k, why, sizeof(why)) != 0)
		goto fail;
	if (file_write_atomic(kpub, ptext, len) != 0) {
		snprintf(why, sizeof(why), "cannot write %s: %s", kpub, strerror(errno));
		goto fail;
	}
	/* Listed last: a key is an admin only once its file exists. */
	next = admins_append(text, k.pk, name);
	if (file_write_atomic(adm, next, strlen(next)) != 0 || chmod(adm, 0644) != 0) {
		snprintf(why, sizeof(why), "cannot write %s: %s", adm, strerror(errno));
		unlink(kpath);
		goto fail;
	}
	seal_fingerprint(k.pk, fp);
	printf("%s\n", kpath);
	fprintf(stderr,
		"mlmaster: admin \"%s\" (%s) added; its key is %s (0600): copy that folder to "
		"the admin's machine and run mlctl --key %s/admin.key (or set MLSCHED_KEY)\n",
		name, fp, kpath, kdir);
	rv = 0;
	goto out;
fail:
	fprintf(stderr, "mlmaster admin add: %s\n", why);
out:
	sodium_memzero(&k, sizeof(k));
	free(a);
	free(text);
	free(next);
	free(ptext);
	free(adm);
	free(kdir);
	free(kpath);
	free(pub);
	free(kpub);
	return rv;
}

static int cmd_admin_list(const char *dir)
{
	char *adm = xasprintf("%s/admins", dir), *text = NULL, why[WHY];
	char fp[SEAL_FP_LEN];
	struct admin *a = NULL;
	size_t n;
	int rv = 1;

	if (read_admins(adm, &text, &a, &n, why, sizeof(why)) != 0) {
		fprintf(stderr, "mlmaster admin list: %s\n", why);
		goto out;
	}
	printf("%-20s %s\n", "NAME", "FINGERPRINT");
	for (size_t i = 0; i < n; i++) {
		seal_fingerprint(a[i].pk, fp);
		printf("%-20s %s\n", a[i].name[0] ? a[i].name : "-", fp);
	}
	rv = 0;
out:
	free(a);
	free(text);
	free(adm);
	return rv;
}

/* Remove path when it is a key file holding pk (the secret half of a
 * revoked admin key on this machine).  True when removed. */
static bool remove_key_file(const char *path, const uint8_t pk[SEAL_PK_LEN])
{
	struct seal_key k;
	char why[WHY];
	bool match;

	if (seal_key_load(path, &k, why, sizeof(why)) != 0)
		return false;
	match = sodium_memcmp(k.pk, pk, SEAL_PK_LEN) == 0;
	sodium_memzero(&k, sizeof(k));
	return match && unlink(path) == 0;
}

static int cmd_admin_revoke(const char *dir, const char *who)
{
	char *adm = xasprintf("%s/admins", dir), *text = NULL, *next = NULL, why[WHY];
	char fp[SEAL_FP_LEN], name[ADMINS_NAME_MAX + 1], *p;
	struct admin *a = NULL;
	size_t n, dropped;
	long i;
	int rv = 1;

	if (lock_keys(dir, why, sizeof(why)) < 0 ||
	    read_admins(adm, &text, &a, &n, why, sizeof(why)) != 0)
		goto fail;
	if ((i = admins_find(a, n, who)) < 0) {
		snprintf(why, sizeof(why),
			 "no admin \"%s\" in %s (mlmaster admin list shows the names and "
			 "fingerprints)",
			 who, adm);
		goto fail;
	}
	if (admins_drop(text, a[i].pk, &next, &dropped, why, sizeof(why)) != 0)
		goto fail;
	if (file_write_atomic(adm, next, strlen(next)) != 0 || chmod(adm, 0644) != 0) {
		snprintf(why, sizeof(why), "cannot write %s: %s", adm, strerror(errno));
		goto fail;
	}
	seal_fingerprint(a[i].pk, fp);
	strlcpy_ok(name, a[i].name[0] ? a[i].name : "-", sizeof(name));
	fprintf(stderr, "mlmaster: admin %s (%s) revoked: %zu line%s removed from %s\n", name, fp,
		dropped, dropped == 1 ? "" : "s", adm);
	/* Its secret half, where this machine holds it, is of no use now. */
	if (a[i].name[0]) {
		p = xasprintf("%s/admin-keys/%s/admin.key", dir, a[i].name);
		if (remove_key_file(p, a[i].pk)) {
			char *pub = xasprintf("%s/admin-keys/%s/master.pub", dir, a[i].name);
			unlink(pub);
			free(pub);
			*strrchr(p, '/') = '\0';
			rmdir(p);
			fprintf(stderr, "mlmaster: removed its key folder %s\n", p);
		}
		free(p);
	}
	p = xasprintf("%s/admin.key", dir);
	if (remove_key_file(p, a[i].pk))
		fprintf(stderr, "mlmaster: removed its key file %s\n", p);
	free(p);
	n -= dropped;
	if (n == 0)
		fprintf(stderr, "mlmaster: no admin key is left: mlctl is refused until `mlmaster "
				"admin add NAME`\n");
	rv = 0;
	goto out;
fail:
	fprintf(stderr, "mlmaster admin revoke: %s\n", why);
out:
	free(a);
	free(text);
	free(next);
	free(adm);
	return rv;
}

bool keys_is_command(const char *verb)
{
	return strcmp(verb, "init") == 0 || strcmp(verb, "token") == 0 ||
	       strcmp(verb, "admin") == 0;
}

int keys_command(const char *dir, int nargs, char **argv, bool rotate)
{
	char why[WHY];
	const char *verb = argv[0];

	if (sodium_init() < 0) {
		fprintf(stderr, "mlmaster: libsodium failed to initialise\n");
		return 1;
	}
	if (rotate && strcmp(verb, "token") != 0) {
		fprintf(stderr, "mlmaster %s: --rotate goes with `mlmaster token` only\n", verb);
		return 2;
	}
	if (strcmp(verb, "init") == 0 || strcmp(verb, "token") == 0) {
		if (nargs != 1) {
			fprintf(stderr, "mlmaster %s: unexpected argument \"%s\"\n", verb, argv[1]);
			return 2;
		}
		if (strcmp(verb, "token") == 0)
			return cmd_token(dir, rotate);
		if (keys_init(dir, true, why, sizeof(why)) != 0) {
			fprintf(stderr, "mlmaster init: %s\n", why);
			return 1;
		}
		fprintf(stderr,
			"mlmaster: keys in %s; start agents with --join followed by the token "
			"above; mlctl uses %s/admin.key (or MLSCHED_KEY)\n",
			dir, dir);
		return 0;
	}
	/* admin */
	if (nargs == 2 && strcmp(argv[1], "list") == 0)
		return cmd_admin_list(dir);
	if (nargs == 3 && strcmp(argv[1], "add") == 0)
		return cmd_admin_add(dir, argv[2]);
	if (nargs == 3 && strcmp(argv[1], "revoke") == 0)
		return cmd_admin_revoke(dir, argv[2]);
	fprintf(stderr, "mlmaster admin: expected `add NAME`, `list` or `revoke NAME` (with "
			"--state-dir DIR)\n");
	return 2;
}
