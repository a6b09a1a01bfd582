/*
 * seal-test.c - key files (round trip, permissions, every way a file can be
 * corrupt), public key and join token text, and sealed frames: round trips
 * both ways, the wrong recipient, reflection, every single-byte tampering,
 * every truncation, replays, keys shared by several processes, the age
 * window, the bounded replay memory, and peer eviction.  Frames are opened
 * from exactly-sized heap copies so valgrind flags any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "seal.h"
#include "util.h"
#include "wire.h"

#define WHY_LEN 256

static char tmpdir[64];

static int setup_dir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/seal-test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown_dir(void **state)
{
	assert_int_equal(rm_rf(tmpdir), 0);
	return 0;
}

static char *tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static uint64_t test_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Write raw bytes to path with the given mode (exactly, despite umask). */
static void write_raw(const char *path, const char *data, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int count_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void assert_keys_equal(const struct seal_key *a, const struct seal_key *b)
{
	assert_memory_equal(a->pk, b->pk, sizeof(a->pk));
	assert_memory_equal(a->sk, b->sk, sizeof(a->sk));
}

/* ---- key files ---- */

static void test_key_roundtrip(void **state)
{
	char *path = tpath("k1");
	struct seal_key k, k2, got;
	char why[WHY_LEN], pk[SEAL_PK_STR_LEN], *text = NULL;
	struct stat st;
	size_t len;
	mode_t old;

	assert_int_equal(seal_key_generate(&k), 0);
	/* Even with a permissive umask the file is 0600. */
	old = umask(0);
	assert_int_equal(seal_key_save(path, &k, why, sizeof(why)), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_dir_entries(tmpdir), 1); /* no temporary left */

	assert_int_equal(file_read(path, 4096, &text, &len), 0);
	assert_int_equal(len, 103);
	assert_memory_equal(text, "mlsched-key-v1 ", 15);
	assert_int_equal(text[len - 1], '\n');
	seal_pk_str(k.pk, pk);
	assert_memory_equal(text + 15 + 44, pk, 43);
	free(text);

	memset(&got, 0, sizeof(got));
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), 0);
	assert_keys_equal(&k, &got);

	/* Saving again replaces the key. */
	assert_int_equal(seal_key_generate(&k2), 0);
	assert_memory_not_equal(k.pk, k2.pk, 32);
	assert_int_equal(seal_key_save(path, &k2, why, sizeof(why)), 0);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), 0);
	assert_keys_equal(&k2, &got);
	assert_int_equal(count_dir_entries(tmpdir), 1);
	unlink(path);
	free(path);
}

static void test_key_missing_and_bad_dir(void **state)
{
	char *path = tpath("nope");
	struct seal_key k;
	char why[WHY_LEN];

	assert_int_equal(seal_key_load(path, &k, why, sizeof(why)), ERR_NOENT);
	assert_non_null(strstr(why, "nope"));
	/* A directory is not a key file. */
	assert_int_equal(seal_key_load(tmpdir, &k, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "not a regular file"));
	/* Saving into a directory that does not exist fails cleanly. */
	free(path);
	path = tpath("no/such/dir/key");
	assert_int_equal(seal_key_generate(&k), 0);
	assert_int_equal(seal_key_save(path, &k, why, sizeof(why)), ERR_IO);
	free(path);
}

static void test_key_permissions(void **state)
{
	static const mode_t bad[] = {0644, 0640, 0604, 0660, 0601, 0610, 0666, 0700 | 0004};
	char *path = tpath("kp");
	struct seal_key k, got;
	char why[WHY_LEN], expect[WHY_LEN];

	assert_int_equal(seal_key_generate(&k), 0);
	assert_int_equal(seal_key_save(path, &k, why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(chmod(path, bad[i]), 0);
		memset(&got, 0xaa, sizeof(got));
		assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
		snprintf(expect, sizeof(expect), "%s: permissions %04o are too open; chmod 600 %s",
			 path, (unsigned)bad[i], path);
		assert_string_equal(why, expect);
		/* Nothing of the key leaks into the output on failure. */
		for (size_t j = 0; j < sizeof(got.sk); j++)
			assert_int_equal(got.sk[j], 0xaa);
	}
	/* Owner-only modes are fine. */
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), 0);
	assert_keys_equal(&k, &got);
	unlink(path);
	free(path);
}

/* Flip a base64url character to the one whose 6-bit value differs in the
 * lowest bit: for the last character of a 32-byte value those bits are
 * padding, so a lax decoder would accept it. */
static char b64_lowbit_flip(char c)
{
	static const char alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *p = strchr(alpha, c);

	assert_non_null(p);
	return alpha[(p - alpha) ^ 1];
}

static void test_key_corrupt(void **state)
{
	char *path = tpath("kc");
	struct seal_key k, other, got;
	char why[WHY_LEN], sk[SEAL_PK_STR_LEN], pk[SEAL_PK_STR_LEN], opk[SEAL_PK_STR_LEN];
	char good[200], bad[12000];
	int n;

	assert_int_equal(seal_key_generate(&k), 0);
	assert_int_equal(seal_key_generate(&other), 0);
	seal_pk_str(k.sk, sk);
	seal_pk_str(k.pk, pk);
	seal_pk_str(other.pk, opk);
	n = snprintf(good, sizeof(good), "mlsched-key-v1 %s %s\n", sk, pk);
	assert_int_equal(n, 103);

	/* The control: the hand-written good line loads. */
	write_raw(path, good, (size_t)n, 0600);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), 0);
	assert_keys_equal(&k, &got);

	const char *cases[] = {"", "mlsched-key-v1\n", "mlsched-key-v1 \n"};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_raw(path, cases[i], strlen(cases[i]), 0600);
		assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
	}

	/* Each variant is written with its strlen, except the ones with an odd
	 * byte put into a copy of the good line, which are 103 bytes. */
	char *variants[40];
	size_t lens[40] = {0};
	int nv = 0;

	variants[nv++] = xasprintf("mlsched-key-v2 %s %s\n", sk, pk);   /* wrong magic */
	variants[nv++] = xasprintf("MLSCHED-KEY-V1 %s %s\n", sk, pk);   /* case */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s", sk, pk);     /* no newline */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s\n\n", sk, pk); /* extra line */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s\r\n", sk, pk); /* CRLF */
	variants[nv++] = xasprintf("mlsched-key-v1  %s %s\n", sk, pk);  /* two spaces */
	variants[nv++] = xasprintf("mlsched-key-v1\t%s %s\n", sk, pk);  /* tab */
	variants[nv++] = xasprintf("mlsched-key-v1 %s\t%s\n", sk, pk);
	variants[nv++] = xasprintf(" mlsched-key-v1 %s %s\n", sk, pk);
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s \n", sk, pk);
	variants[nv++] = xasprintf("mlsched-key-v1 %s=%s\n", sk, pk);   /* padding */
	variants[nv++] = xasprintf("mlsched-key-v1 %.42s %s\n", sk, pk); /* short sk */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %.42s\n", sk, pk); /* short pk */
	variants[nv++] = xasprintf("mlsched-key-v1 %sA %s\n", sk, pk);   /* long sk */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s\n", pk, sk);    /* swapped */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s\n", sk, opk);   /* pk of another key */
	variants[nv++] = xasprintf("mlsched-key-v1 %s %s\nmlsched-key-v1 %s %s\n", sk, pk, sk, pk);
	/* Characters outside base64url, in the secret and in the public key. */
	for (int which = 0; which < 2; which++) {
		static const char odd[] = {'+', '/', '=', '.', ' ', '\0', (char)0xc3};

		for (size_t j = 0; j < sizeof(odd); j++) {
			char *v = xstrdup(good);

			v[15 + which * 44 + 7] = odd[j];
			lens[nv] = 103;
			variants[nv++] = v;
		}
	}
	/* Non-canonical last characters (same bytes to a lax decoder). */
	variants[nv] = xstrdup(good);
	variants[nv][15 + 42] = b64_lowbit_flip(variants[nv][15 + 42]);
	nv++;
	variants[nv] = xstrdup(good);
	variants[nv][15 + 44 + 42] = b64_lowbit_flip(variants[nv][15 + 44 + 42]);
	nv++;
	assert_true(nv <= (int)(sizeof(variants) / sizeof(variants[0])));

	for (int i = 0; i < nv; i++) {
		size_t len = lens[i] ? lens[i] : strlen(variants[i]);

		write_raw(path, variants[i], len, 0600);
		memset(&got, 0, sizeof(got));
		assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
		assert_non_null(strstr(why, path));
		free(variants[i]);
	}

	/* Mismatch gets its own message. */
	char *mm = xasprintf("mlsched-key-v1 %s %s\n", sk, opk);

	write_raw(path, mm, strlen(mm), 0600);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "does not match"));
	free(mm);

	/* A huge file is refused without reading it all into the key. */
	memset(bad, 'A', sizeof(bad));
	write_raw(path, bad, sizeof(bad), 0600);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
	/* The good line followed by garbage. */
	memcpy(bad, good, 103);
	write_raw(path, bad, 104, 0600);
	assert_int_equal(seal_key_load(path, &got, why, sizeof(why)), ERR_INVAL);
	unlink(path);
	free(path);
}

static void test_key_load_or_create(void **state)
{
	char *path = tpath("kl");
	char *badp = tpath("kbad");
	struct seal_key a, b, c;
	char why[WHY_LEN], *before = NULL, *after = NULL;
	bool created = false;
	struct stat st;
	size_t l1, l2;

	assert_int_equal(seal_key_load_or_create(path, &a, &created, why, sizeof(why)), 0);
	assert_true(created);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(seal_key_load_or_create(path, &b, &created, why, sizeof(why)), 0);
	assert_false(created);
	assert_keys_equal(&a, &b);
	assert_int_equal(seal_key_load(path, &c, why, sizeof(why)), 0);
	assert_keys_equal(&a, &c);
	assert_int_equal(count_dir_entries(tmpdir), 1);

	/* An existing bad file is reported, never replaced. */
	write_raw(badp, "garbage\n", 8, 0600);
	assert_int_equal(file_read(badp, 100, &before, &l1), 0);
	created = true;
	assert_int_equal(seal_key_load_or_create(badp, &b, &created, why, sizeof(why)), ERR_INVAL);
	assert_false(created);
	assert_int_equal(file_read(badp, 100, &after, &l2), 0);
	assert_int_equal(l1, l2);
	assert_memory_equal(before, after, l1);
	free(before);
	free(after);
	/* So is one with open permissions. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(seal_key_load_or_create(path, &b, &created, why, sizeof(why)), ERR_INVAL);
	assert_non_null(strstr(why, "too open"));
	unlink(path);
	unlink(badp);
	free(path);
	free(badp);
}

/* ---- key and token text ---- */

static void test_pk_str(void **state)
{
	struct seal_key k;
	char s[SEAL_PK_STR_LEN], t[64];
	uint8_t pk[32];

	assert_int_equal(seal_key_generate(&k), 0);
	seal_pk_str(k.pk, s);
	assert_int_equal(strlen(s), 43);
	assert_null(strpbrk(s, "+/="));
	assert_int_equal(seal_pk_parse(s, pk), 0);
	assert_memory_equal(pk, k.pk, 32);

	assert_int_equal(seal_pk_parse(NULL, pk), ERR_INVAL);
	assert_int_equal(seal_pk_parse("", pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%.42s", s);
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%sA", s);
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%s=", s);
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%s\n", s);
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%s", s);
	t[10] = '+';
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
	snprintf(t, sizeof(t), "%s", s);
	t[42] = b64_lowbit_flip(t[42]);
	assert_int_equal(seal_pk_parse(t, pk), ERR_INVAL);
}

/* Found by tests/fuzz/fuzz_seal: libsodium 1.0.18 decodes any byte from
 * 0x80 to 0xff as '_', so a key or token with such a byte where a '_' could
 * be parsed as a second spelling of the same key.  Every non-alphabet byte,
 * at every position, must be refused. */
static void test_b64_alphabet(void **state)
{
	uint8_t pk[32], gpk[32], sec[SEAL_SECRET_LEN], gsec[SEAL_SECRET_LEN];
	char s[SEAL_PK_STR_LEN], t[64], tok[SEAL_TOKEN_LEN], tt[SEAL_TOKEN_LEN];

	/* 0xff bytes end in "_" in base64url: the spelling the bug aliased. */
	memset(pk, 0xff, sizeof(pk));
	seal_pk_str(pk, s);
	assert_int_equal(s[0], '_');
	for (int c = 1; c < 256; c++) {
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			  (c >= '0' && c <= '9') || c == '-' || c == '_';

		for (size_t i = 0; i < 43; i += 7) {
			snprintf(t, sizeof(t), "%s", s);
			t[i] = (char)c;
			if (!ok)
				assert_int_equal(seal_pk_parse(t, gpk), ERR_INVAL);
		}
	}
	/* The fuzzer's input: a join token with 0x90 in place of '_'. */
	memset(sec, 0xff, sizeof(sec));
	assert_int_equal(seal_token_make(pk, sec, tok, sizeof(tok)), 0);
	assert_int_equal(seal_token_parse(tok, gpk, gsec), 0);
	for (size_t i = 6; i < strlen(tok); i++) {
		if (tok[i] != '_')
			continue;
		snprintf(tt, sizeof(tt), "%s", tok);
		tt[i] = (char)0x90;
		assert_int_equal(seal_token_parse(tt, gpk, gsec), ERR_INVAL);
	}
}

/* Fingerprints: SHA-256 of the key bytes, base64url, "SHA256:" in front
 * (the expected values computed independently with Python's hashlib). */
static void test_fingerprint(void **state)
{
	uint8_t pk[32];
	char fp[SEAL_FP_LEN];

	(void)state;
	memset(pk, 0, sizeof(pk));
	seal_fingerprint(pk, fp);
	assert_string_equal(fp, "SHA256:Zmh6rfhivXdsj8GLjp-OIAiXFIVu4jOzkCpZHQ1fKSU");
	assert_int_equal(strlen(fp), SEAL_FP_LEN - 1);
	memset(pk, 0xff, sizeof(pk));
	seal_fingerprint(pk, fp);
	assert_string_equal(fp, "SHA256:r5YTdg9yY1-9tEpaCmPDnxKvMPlQpu5clxvhiOicQFE");
}

static void test_token(void **state)
{
	uint8_t mpk[32], sec[SEAL_SECRET_LEN], gpk[32], gsec[SEAL_SECRET_LEN];
	struct seal_key k;
	char tok[SEAL_TOKEN_LEN], t[256], pks[SEAL_PK_STR_LEN];

	assert_int_equal(seal_key_generate(&k), 0);
	memcpy(mpk, k.pk, 32);
	assert_int_equal(seal_secret_generate(sec), 0);
	assert_int_equal(seal_token_make(mpk, sec, tok, sizeof(tok) - 1), ERR_TOOBIG);
	assert_int_equal(seal_token_make(mpk, sec, tok, sizeof(tok)), 0);
	assert_int_equal(strlen(tok), SEAL_TOKEN_LEN - 1);
	assert_memory_equal(tok, "mlsj1.", 6);
	seal_pk_str(mpk, pks);
	assert_memory_equal(tok + 6, pks, 43);
	assert_int_equal(tok[49], '.');

	assert_int_equal(seal_token_parse(tok, gpk, gsec), 0);
	assert_memory_equal(gpk, mpk, 32);
	assert_memory_equal(gsec, sec, SEAL_SECRET_LEN);
	assert_true(seal_secret_equal(gsec, sec));

	/* Every proper prefix, and every single position replaced by a
	 * character outside the alphabet, is refused. */
	for (size_t n = 0; n < strlen(tok); n++) {
		snprintf(t, sizeof(t), "%.*s", (int)n, tok);
		assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	}
	for (size_t i = 0; i < strlen(tok); i++) {
		snprintf(t, sizeof(t), "%s", tok);
		t[i] = '!';
		assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	}
	static const char *const wrap[][2] = {{"mlsj2.", ""},  {"MLSJ1.", ""},    {" mlsj1.", ""},
					       {"mlsj1.", "\n"}, {"mlsj1.", " "}, {"mlsj1.", "A"},
					       {"mlsj1..", ""}, {"mlsj1", ""}};
	for (size_t i = 0; i < sizeof(wrap) / sizeof(wrap[0]); i++) {
		snprintf(t, sizeof(t), "%s%s%s", wrap[i][0], tok + 6, wrap[i][1]);
		assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	}
	/* The dot moved by one, keeping the length. */
	snprintf(t, sizeof(t), "%s", tok);
	t[49] = t[48];
	t[48] = '.';
	assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	/* Non-canonical trailing bits in either half. */
	snprintf(t, sizeof(t), "%s", tok);
	t[48] = b64_lowbit_flip(t[48]);
	assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	snprintf(t, sizeof(t), "%s", tok);
	t[92] = b64_lowbit_flip(t[92]);
	assert_int_equal(seal_token_parse(t, gpk, gsec), ERR_INVAL);
	assert_int_equal(seal_token_parse(NULL, gpk, gsec), ERR_INVAL);

	/* Secrets differing in any one byte are different. */
	for (size_t i = 0; i < SEAL_SECRET_LEN; i++) {
		memcpy(gsec, sec, sizeof(sec));
		gsec[i] ^= 0x01;
		assert_false(seal_secret_equal(gsec, sec));
	}
}

/* ---- sealed frames ---- */

struct party {
	struct seal_key key;
	struct seal_ctx *ctx;
};

static void party_init(struct party *p)
{
	assert_int_equal(seal_key_generate(&p->key), 0);
	p->ctx = seal_ctx_new(&p->key);
	assert_non_null(p->ctx);
}

static void party_fini(struct party *p)
{
	seal_ctx_free(p->ctx);
	p->ctx = NULL;
}

static uint8_t *sync_frame(uint64_t seq, size_t *len)
{
	cJSON *body = cJSON_CreateObject();
	uint8_t *f = NULL;

	cJSON_AddStringToObject(body, "node", "gpu-07");
	cJSON_AddNumberToObject(body, "ack", (double)seq);
	assert_int_equal(wire_encode(WIRE_SYNC, seq, wire_sender_id("gpu-07"), body, &f, len), 0);
	cJSON_Delete(body);
	return f;
}

static uint8_t *seal_to(struct party *from, const struct party *to, const uint8_t *f, size_t len,
			size_t *slen)
{
	uint8_t *s = NULL;

	assert_int_equal(seal_frame(from->ctx, to->key.pk, f, len, &s, slen), 0);
	assert_non_null(s);
	return s;
}

/* seal_open on an exactly-sized heap copy; checks the out-pointers agree
 * with the result. */
static int open_copy(struct seal_ctx *c, const uint8_t *f, size_t len, uint8_t **plain,
		     size_t *plen, uint8_t spk[32], char *why)
{
	uint8_t *copy = xmalloc(len);
	uint8_t *pl = (uint8_t *)1;
	size_t pln = 99;
	int rv;

	if (len)
		memcpy(copy, f, len);
	why[0] = '\0';
	rv = seal_open(c, copy, len, &pl, &pln, spk, why, WHY_LEN);
	free(copy);
	if (rv != 0) {
		assert_null(pl);
		assert_int_equal(pln, 0);
		assert_true(why[0] != '\0');
	} else {
		assert_non_null(pl);
	}
	if (plain)
		*plain = pl;
	else
		free(pl);
	if (plen)
		*plen = pln;
	return rv;
}

static int open_only(struct seal_ctx *c, const uint8_t *f, size_t len, char *why)
{
	uint8_t spk[32];

	return open_copy(c, f, len, NULL, NULL, spk, why);
}

static void test_roundtrip(void **state)
{
	struct party m, a;
	uint8_t *f, *s, *pl, spk[32];
	size_t len, slen, plen;
	struct wire_hdr h;
	cJSON *body = NULL;
	const char *node;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);

	/* Agent -> master. */
	f = sync_frame(5, &len);
	assert_false(seal_is_sealed(f, len));
	s = seal_to(&a, &m, f, len, &slen);
	assert_true(seal_is_sealed(s, slen));
	assert_false(seal_is_sealed(s, WIRE_HDR_LEN - 1));
	assert_int_equal(slen, len + WIRE_HDR_LEN + SEAL_OVERHEAD);
	/* Outer header: same magic, version, type, seq, sender; flags sealed;
	 * body_len covers the rest; then the sender's public key. */
	assert_memory_equal(s, f, 8);
	assert_memory_equal(s + 8, "\0\0\0\1", 4);
	assert_int_equal(((uint32_t)s[12] << 24) | (s[13] << 16) | (s[14] << 8) | s[15],
			 slen - WIRE_HDR_LEN);
	assert_memory_equal(s + 16, f + 16, 16);
	assert_memory_equal(s + 32, a.key.pk, 32);
	/* The body is not in the clear. */
	assert_null(memmem(s, slen, "gpu-07", 6));

	assert_int_equal(open_copy(m.ctx, s, slen, &pl, &plen, spk, why), 0);
	assert_int_equal(plen, len);
	assert_memory_equal(pl, f, len);
	assert_memory_equal(spk, a.key.pk, 32);
	assert_int_equal(wire_decode(pl, plen, &h, &body, why, sizeof(why)), 0);
	assert_int_equal(h.type, WIRE_SYNC);
	assert_int_equal(h.seq, 5);
	assert_int_equal(h.sender, wire_sender_id("gpu-07"));
	assert_int_equal(wire_get_str(body, "node", 64, &node), 0);
	assert_string_equal(node, "gpu-07");
	cJSON_Delete(body);
	free(pl);
	free(s);
	free(f);

	/* Master -> agent, and many frames each way to exercise the counter. */
	for (uint64_t i = 0; i < 50; i++) {
		cJSON *ob = cJSON_CreateObject();

		cJSON_AddNumberToObject(ob, "ack", (double)i);
		cJSON_AddItemToObject(ob, "orders", cJSON_CreateArray());
		assert_int_equal(wire_encode(WIRE_ORDERS, i, 0, ob, &f, &len), 0);
		cJSON_Delete(ob);
		s = seal_to(&m, &a, f, len, &slen);
		assert_int_equal(open_copy(a.ctx, s, slen, &pl, &plen, spk, why), 0);
		assert_memory_equal(spk, m.key.pk, 32);
		assert_int_equal(wire_decode(pl, plen, &h, &body, why, sizeof(why)), 0);
		assert_int_equal(h.type, WIRE_ORDERS);
		assert_int_equal(h.seq, i);
		cJSON_Delete(body);
		free(pl);
		free(s);
		free(f);

		f = sync_frame(i, &len);
		s = seal_to(&a, &m, f, len, &slen);
		assert_int_equal(open_only(m.ctx, s, slen, why), 0);
		free(s);
		free(f);
	}

	/* A restarted master (new context, same key) refuses what was sealed
	 * before it started (its replay memory is gone), and opens what is
	 * sealed after. */
	f = sync_frame(77, &len);
	s = seal_to(&a, &m, f, len, &slen);
	seal_ctx_free(m.ctx);
	m.ctx = seal_ctx_new(&m.key);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	free(s);
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(m.ctx, s, slen, why), 0);
	free(s);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_wrong_recipient_and_reflection(void **state)
{
	struct party m, a, b;
	uint8_t *f, *s;
	size_t len, slen;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	party_init(&b);
	f = sync_frame(1, &len);

	/* Sealed for the master; agent b cannot open it. */
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(b.ctx, s, slen, why), ERR_PROTO);
	assert_non_null(strstr(why, "cannot open"));
	/* Nor can the sender itself. */
	assert_int_equal(open_only(a.ctx, s, slen, why), ERR_PROTO);
	free(s);

	/* Reflection: the master's frame to a, sent back to the master with
	 * sender_pk rewritten to a's key.  The box key is shared by the pair,
	 * so only the per-direction key derivation stops this. */
	s = seal_to(&m, &a, f, len, &slen);
	memcpy(s + WIRE_HDR_LEN, a.key.pk, 32);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	assert_non_null(strstr(why, "cannot open"));
	free(s);

	/* An all-zero (low-order) sender key is refused, and cannot be sealed to. */
	s = seal_to(&a, &m, f, len, &slen);
	memset(s + WIRE_HDR_LEN, 0, 32);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	free(s);
	{
		uint8_t zero[32] = {0}, *o = (uint8_t *)1;
		size_t olen = 1;

		assert_int_equal(seal_frame(a.ctx, zero, f, len, &o, &olen), ERR_INVAL);
		assert_null(o);
	}
	free(f);
	party_fini(&m);
	party_fini(&a);
	party_fini(&b);
}

static void test_tamper_every_byte(void **state)
{
	static const uint8_t flips[] = {0x01, 0x80, 0xff};
	struct party m, a;
	uint8_t *f, *s, *t;
	size_t len, slen;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	f = sync_frame(9, &len);
	s = seal_to(&a, &m, f, len, &slen);
	t = xmalloc(slen);
	for (size_t i = 0; i < slen; i++) {
		for (size_t j = 0; j < sizeof(flips); j++) {
			memcpy(t, s, slen);
			t[i] ^= flips[j];
			assert_int_not_equal(open_only(m.ctx, t, slen, why), 0);
		}
	}
	/* None of that disturbed the state: the untouched frame opens. */
	assert_int_equal(open_only(m.ctx, s, slen, why), 0);

	free(s);

	/* The outer header is bound to the inner one: changing its type, seq
	 * or sender leaves the box intact but is caught by the comparison
	 * (fresh frames, so the replay check does not answer first). */
	for (int k = 0; k < 3; k++) {
		static const size_t at[] = {7, 23, 31};

		s = seal_to(&a, &m, f, len, &slen);
		memcpy(t, s, slen);
		t[at[k]] ^= 0x04;
		assert_int_equal(open_only(m.ctx, t, slen, why), ERR_PROTO);
		assert_non_null(strstr(why, "does not match"));
		/* ...and the rejection did not burn the nonce. */
		assert_int_equal(open_only(m.ctx, s, slen, why), 0);
		free(s);
	}
	free(t);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_truncated(void **state)
{
	struct party m, a;
	uint8_t *f, *s;
	size_t len, slen;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	f = sync_frame(3, &len);
	s = seal_to(&a, &m, f, len, &slen);
	for (size_t n = 0; n < slen; n++)
		assert_int_not_equal(open_only(m.ctx, s, n, why), 0);
	/* Truncated with body_len fixed up to match: fails authentication
	 * (or the minimum size), never reads past the end. */
	for (size_t n = WIRE_HDR_LEN; n < slen; n++) {
		uint8_t *t = xmalloc(n);
		uint32_t bl = (uint32_t)(n - WIRE_HDR_LEN);

		memcpy(t, s, n);
		t[12] = (uint8_t)(bl >> 24);
		t[13] = (uint8_t)(bl >> 16);
		t[14] = (uint8_t)(bl >> 8);
		t[15] = (uint8_t)bl;
		assert_int_equal(open_only(m.ctx, t, n, why), ERR_PROTO);
		free(t);
	}
	assert_int_equal(open_only(m.ctx, s, slen, why), 0);
	free(s);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_not_sealed(void **state)
{
	struct party m, a;
	uint8_t *f, *s, *t;
	size_t len, slen;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	f = sync_frame(3, &len);

	/* A plaintext frame. */
	assert_int_equal(open_only(m.ctx, f, len, why), ERR_PROTO);
	assert_non_null(strstr(why, "not a sealed frame"));

	s = seal_to(&a, &m, f, len, &slen);
	t = xmalloc(slen);
	/* Other flag bits next to the sealed one. */
	memcpy(t, s, slen);
	t[11] = 0x3;
	assert_int_equal(open_only(m.ctx, t, slen, why), ERR_PROTO);
	memcpy(t, s, slen);
	t[8] = 0x80;
	assert_int_equal(open_only(m.ctx, t, slen, why), ERR_PROTO);
	/* Another version. */
	memcpy(t, s, slen);
	t[5] = 2;
	assert_int_equal(open_only(m.ctx, t, slen, why), ERR_VERSION);
	/* A body_len over the limit. */
	memcpy(t, s, slen);
	t[12] = 0x7f;
	assert_int_equal(open_only(m.ctx, t, slen, why), ERR_TOOBIG);
	free(t);

	/* A sealed header with a body too small to hold anything. */
	t = xcalloc(1, WIRE_HDR_LEN + 10);
	memcpy(t, s, WIRE_HDR_LEN);
	t[12] = t[13] = t[14] = 0;
	t[15] = 10;
	assert_int_equal(open_only(m.ctx, t, WIRE_HDR_LEN + 10, why), ERR_PROTO);
	assert_non_null(strstr(why, "too short"));
	free(t);
	free(s);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_seal_frame_input(void **state)
{
	struct party m, a;
	uint8_t *f, *s, *o = NULL, *big;
	size_t len, slen, olen = 0;

	party_init(&m);
	party_init(&a);
	f = sync_frame(3, &len);
	s = seal_to(&a, &m, f, len, &slen);

	/* Only plaintext frames can be sealed. */
	assert_int_equal(seal_frame(a.ctx, m.key.pk, s, slen, &o, &olen), ERR_INVAL);
	assert_int_equal(seal_frame(a.ctx, m.key.pk, f, WIRE_HDR_LEN - 1, &o, &olen), ERR_INVAL);
	assert_int_equal(seal_frame(a.ctx, m.key.pk, f, len - 1, &o, &olen), ERR_INVAL);
	f[0] ^= 1;
	assert_int_equal(seal_frame(a.ctx, m.key.pk, f, len, &o, &olen), ERR_INVAL);
	f[0] ^= 1;
	f[5] = 2;
	assert_int_equal(seal_frame(a.ctx, m.key.pk, f, len, &o, &olen), ERR_INVAL);
	assert_null(o);

	/* A body over WIRE_MAX_BODY. */
	big = xcalloc(1, WIRE_HDR_LEN + WIRE_MAX_BODY + 1);
	memcpy(big, s, WIRE_HDR_LEN);
	memset(big + 8, 0, 4);
	big[12] = (uint8_t)((WIRE_MAX_BODY + 1) >> 24);
	big[13] = (uint8_t)((WIRE_MAX_BODY + 1) >> 16);
	big[14] = (uint8_t)((WIRE_MAX_BODY + 1) >> 8);
	big[15] = (uint8_t)(WIRE_MAX_BODY + 1);
	assert_int_equal(seal_frame(a.ctx, m.key.pk, big, WIRE_HDR_LEN + WIRE_MAX_BODY + 1, &o,
				    &olen),
			 ERR_TOOBIG);
	assert_null(o);
	free(big);
	free(s);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_replay(void **state)
{
	struct party m, a;
	uint8_t *f, *s1, *s2;
	size_t len, l1, l2;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	f = sync_frame(3, &len);
	s1 = seal_to(&a, &m, f, len, &l1);
	s2 = seal_to(&a, &m, f, len, &l2); /* same content, next counter */

	assert_int_equal(open_only(m.ctx, s1, l1, why), 0);
	assert_int_equal(open_only(m.ctx, s1, l1, why), ERR_PROTO);
	assert_non_null(strstr(why, "replayed"));
	assert_int_equal(open_only(m.ctx, s2, l2, why), 0);
	assert_int_equal(open_only(m.ctx, s2, l2, why), ERR_PROTO);
	assert_non_null(strstr(why, "replayed"));
	free(s1);
	free(s2);

	/* Out of order is fine (a window, not "greater than the last"), and
	 * replays are still caught afterwards. */
	s1 = seal_to(&a, &m, f, len, &l1);
	s2 = seal_to(&a, &m, f, len, &l2);
	assert_int_equal(open_only(m.ctx, s2, l2, why), 0);
	assert_int_equal(open_only(m.ctx, s1, l1, why), 0);
	assert_int_equal(open_only(m.ctx, s1, l1, why), ERR_PROTO);
	assert_int_equal(open_only(m.ctx, s2, l2, why), ERR_PROTO);
	free(s1);
	free(s2);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_shared_key(void **state)
{
	struct party m, ctl1, ctl2;
	uint8_t *f, *s1, *s2, spk[32];
	size_t len, l1, l2;
	char why[WHY_LEN];
	uint64_t now = test_wall_ns();

	party_init(&m);
	seal_ctx_set_floor(m.ctx, now - 120 * 1000000000ull);
	party_init(&ctl1);
	/* A second mlctl process with the same admin key. */
	ctl2.key = ctl1.key;
	ctl2.ctx = seal_ctx_new(&ctl2.key);
	assert_non_null(ctl2.ctx);
	f = sync_frame(1, &len);

	/* ctl2 seals first, so its counter is lower; it arrives second. */
	s2 = seal_to(&ctl2, &m, f, len, &l2);
	s1 = seal_to(&ctl1, &m, f, len, &l1);
	assert_int_equal(open_copy(m.ctx, s1, l1, NULL, NULL, spk, why), 0);
	assert_memory_equal(spk, ctl1.key.pk, 32);
	assert_int_equal(open_copy(m.ctx, s2, l2, NULL, NULL, spk, why), 0);
	assert_memory_equal(spk, ctl1.key.pk, 32);
	assert_int_equal(open_only(m.ctx, s1, l1, why), ERR_PROTO);
	assert_int_equal(open_only(m.ctx, s2, l2, why), ERR_PROTO);
	free(s1);
	free(s2);

	/* Even the very same counter from the two processes is accepted:
	 * their random nonce prefixes differ. */
	seal_ctx_set_counter(ctl1.ctx, now + 1000);
	seal_ctx_set_counter(ctl2.ctx, now + 1000);
	s1 = seal_to(&ctl1, &m, f, len, &l1);
	s2 = seal_to(&ctl2, &m, f, len, &l2);
	assert_memory_equal(s1 + WIRE_HDR_LEN + 32 + 16, s2 + WIRE_HDR_LEN + 32 + 16, 8);
	assert_int_equal(open_only(m.ctx, s1, l1, why), 0);
	assert_int_equal(open_only(m.ctx, s2, l2, why), 0);
	assert_int_equal(open_only(m.ctx, s2, l2, why), ERR_PROTO);
	free(s1);
	free(s2);
	free(f);
	party_fini(&m);
	party_fini(&ctl1);
	party_fini(&ctl2);
}

static void test_age_window(void **state)
{
	struct party m, a;
	uint8_t *f, *s;
	size_t len, slen;
	char why[WHY_LEN];
	const uint64_t sec = 1000000000ull;
	uint64_t now = test_wall_ns();

	party_init(&m);
	seal_ctx_set_floor(m.ctx, now - 120 * sec); /* test the window alone */
	party_init(&a);
	f = sync_frame(1, &len);

	seal_ctx_set_counter(a.ctx, now - 61 * sec);
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	assert_non_null(strstr(why, "too old"));
	free(s);

	/* Inside the window is fine, even if older than what came before. */
	seal_ctx_set_counter(a.ctx, now - 30 * sec);
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(m.ctx, s, slen, why), 0);
	free(s);

	seal_ctx_set_counter(a.ctx, now + 61 * sec);
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	assert_non_null(strstr(why, "future"));
	free(s);
	/* The context keeps counting from there: still in the future. */
	s = seal_to(&a, &m, f, len, &slen);
	assert_int_equal(open_only(m.ctx, s, slen, why), ERR_PROTO);
	free(s);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_replay_memory_bounded(void **state)
{
	struct party m, a;
	uint8_t *f, *s[6];
	size_t len, l[6];
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	seal_ctx_set_limits(m.ctx, 0, 4);
	f = sync_frame(1, &len);
	for (int i = 0; i < 6; i++)
		s[i] = seal_to(&a, &m, f, len, &l[i]);

	for (int i = 1; i <= 4; i++)
		assert_int_equal(open_only(m.ctx, s[i], l[i], why), 0);
	/* The fifth pushes out the oldest remembered (s[1]) and raises the
	 * floor to it. */
	assert_int_equal(open_only(m.ctx, s[5], l[5], why), 0);
	/* s[0] was never seen, but is at or below the floor now. */
	assert_int_equal(open_only(m.ctx, s[0], l[0], why), ERR_PROTO);
	assert_non_null(strstr(why, "too old"));
	assert_int_equal(open_only(m.ctx, s[1], l[1], why), ERR_PROTO);
	for (int i = 2; i <= 5; i++) {
		assert_int_equal(open_only(m.ctx, s[i], l[i], why), ERR_PROTO);
		assert_non_null(strstr(why, "replayed"));
	}
	for (int i = 0; i < 6; i++)
		free(s[i]);
	free(f);
	party_fini(&m);
	party_fini(&a);
}

static void test_eviction_keeps_replay_protection(void **state)
{
	struct party m, a, b;
	uint8_t *f, *fa1, *fb1, *fa2;
	size_t len, la1, lb1, la2;
	char why[WHY_LEN];

	party_init(&m);
	party_init(&a);
	party_init(&b);
	seal_ctx_set_limits(m.ctx, 1, 0); /* room for one peer only */
	f = sync_frame(1, &len);

	fa1 = seal_to(&a, &m, f, len, &la1);
	fb1 = seal_to(&b, &m, f, len, &lb1);
	assert_int_equal(open_only(m.ctx, fa1, la1, why), 0);
	assert_int_equal(open_only(m.ctx, fb1, lb1, why), 0); /* drops a */
	/* a's replay memory is gone, but its frame is still refused. */
	assert_int_equal(open_only(m.ctx, fa1, la1, why), ERR_PROTO);
	assert_int_equal(open_only(m.ctx, fb1, lb1, why), ERR_PROTO);
	/* A new frame from a is accepted. */
	fa2 = seal_to(&a, &m, f, len, &la2);
	assert_int_equal(open_only(m.ctx, fa2, la2, why), 0);
	assert_int_equal(open_only(m.ctx, fa2, la2, why), ERR_PROTO);

	/* Sealing to many peers past the limit works (keys are recomputed). */
	for (int i = 0; i < 5; i++) {
		uint8_t *s;
		size_t sl;

		s = seal_to(&m, i % 2 ? &a : &b, f, len, &sl);
		assert_int_equal(open_only((i % 2 ? &a : &b)->ctx, s, sl, why), 0);
		free(s);
	}
	free(fa1);
	free(fb1);
	free(fa2);
	free(f);
	party_fini(&m);
	party_fini(&a);
	party_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_roundtrip),
	    cmocka_unit_test(test_key_missing_and_bad_dir),
	    cmocka_unit_test(test_key_permissions),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_key_corrupt),
	    cmocka_unit_test(test_key_load_or_create),
	    cmocka_unit_test(test_pk_str),
	    cmocka_unit_test(test_b64_alphabet),
	    cmocka_unit_test(test_token),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_wrong_recipient_and_reflection),
	    cmocka_unit_test(test_tamper_every_byte),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_not_sealed),
	    cmocka_unit_test(test_seal_frame_input),
	    cmocka_unit_test(test_replay),
	    cmocka_unit_test(test_shared_key),
	    cmocka_unit_test(test_age_window),
	    cmocka_unit_test(test_replay_memory_bounded),
	    cmocka_unit_test(test_eviction_keeps_replay_protection),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
