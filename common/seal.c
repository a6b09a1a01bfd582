/*
 * seal.c - key files, join tokens and sealed frames (see seal.h for the
 * formats and the security argument).
 *
 * seal_open() is where bytes from the network meet secret keys, so it
 * assumes the worst: the outer header is checked field by field before any
 * crypto, the counter's age before the (costlier) decryption, and replay
 * state is only changed once a frame has authenticated, so an attacker
 * without a key can neither grow the peer table nor poison a sender's nonce
 * set.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "seal.h"
#include "util.h"

#define B64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define B64_32_LEN (SEAL_PK_STR_LEN - 1) /* 43 characters for 32 bytes */

#define KEY_MAGIC "mlsched-key-v1"
#define KEY_MAGIC_LEN (sizeof(KEY_MAGIC) - 1)
/* "mlsched-key-v1 <43> <43>\n" */
#define KEY_LINE_LEN (KEY_MAGIC_LEN + 1 + B64_32_LEN + 1 + B64_32_LEN + 1)

#define TOKEN_PREFIX "mlsj1."
#define TOKEN_PREFIX_LEN (sizeof(TOKEN_PREFIX) - 1)

#define SEAL_LABEL "mlsched-seal-v1"
#define NONCE_PREFIX_LEN 16
#define WINDOW_NS ((uint64_t)SEAL_WINDOW_MS * 1000000ull)
/* Peers looked at when one must be dropped; the least recently used of them
 * goes.  A handful approximates LRU well without scanning the table. */
#define EVICT_SAMPLES 8

_Static_assert(SEAL_PK_STR_LEN == sodium_base64_ENCODED_LEN(32, B64_VARIANT),
	       "SEAL_PK_STR_LEN must fit 32 bytes of base64url");
_Static_assert(SEAL_FP_LEN == 7 + SEAL_PK_STR_LEN && crypto_hash_sha256_BYTES == 32,
	       "SEAL_FP_LEN must fit SHA256: and 32 bytes of base64url");
_Static_assert(SEAL_TOKEN_LEN == TOKEN_PREFIX_LEN + B64_32_LEN + 1 + B64_32_LEN + 1,
	       "SEAL_TOKEN_LEN must fit a token");
_Static_assert(crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32 &&
		   crypto_box_BEFORENMBYTES == 32 && crypto_box_NONCEBYTES == 24,
	       "seal.h assumes crypto_box is X25519-XSalsa20-Poly1305");

/* One accepted nonce: the counter, and the first 8 bytes of the sender
 * context's random prefix, so two processes sharing a key whose counters
 * happen to coincide are not taken for a replay of each other. */
struct seen {
	uint64_t ctr;
	uint64_t tag;
};

struct peer {
	uint8_t pk[32];
	uint8_t tx[32]; /* key for frames we seal to this peer */
	uint8_t rx[32]; /* key for frames this peer sealed to us */
	uint64_t used;  /* c->tick at last use, for eviction */
	uint64_t floor; /* counters <= floor are refused */
	struct seen *seen; /* ascending by (ctr, tag) */
	size_t nseen, cap;
};

struct seal_ctx {
	pthread_mutex_t mu;
	struct seal_key me;
	uint8_t prefix[NONCE_PREFIX_LEN];
	uint64_t counter; /* the last counter used */
	bool pinned;      /* test hook: use counter itself next */
	struct peer **peers; /* ascending by pk */
	size_t npeers, cap;
	size_t max_peers, max_seen;
	uint64_t gfloor; /* floor for peers entering the table */
	uint64_t tick;
};

/* sodium_init is idempotent and thread-safe; every entry point that needs
 * randomness or keys calls it rather than relying on start-up order. */
static bool sodium_ready(void)
{
	return sodium_init() >= 0;
}

/* Counters are wall-clock nanoseconds so that a receiver can judge their age
 * and a restarted sender continues above its old counters. */
static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool b64url_char(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '_';
}

/* Exactly 43 canonical base64url characters to 32 bytes; libsodium already
 * refuses non-zero trailing bits, so each key has one spelling.  The
 * alphabet is checked here first: libsodium 1.0.18 decodes every byte from
 * 0x80 to 0xff as '_' (63), which would give each key many spellings (found
 * by tests/fuzz/fuzz_seal). */
static int b64_decode32(const char *s, size_t n, uint8_t out[32])
{
	uint8_t tmp[32];
	size_t binlen = 0;
	const char *end = NULL;
	int rv = ERR_INVAL;

	if (n != B64_32_LEN)
		return ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if (!b64url_char(s[i]))
			return ERR_INVAL;
	if (sodium_base642bin(tmp, sizeof(tmp), s, n, NULL, &binlen, &end, B64_VARIANT) != 0)
		goto out;
	if (binlen != sizeof(tmp) || end != s + n)
		goto out;
	memcpy(out, tmp, sizeof(tmp));
	rv = 0;
out:
	sodium_memzero(tmp, sizeof(tmp));
	return rv;
}

static void b64_encode32(const uint8_t in[32], char out[SEAL_PK_STR_LEN])
{
	sodium_bin2base64(out, SEAL_PK_STR_LEN, in, 32, B64_VARIANT);
}

/* ---- keys ---- */

int seal_key_generate(struct seal_key *k)
{
	if (!sodium_ready())
		return ERR_SYS;
	crypto_box_keypair(k->pk, k->sk);
	return 0;
}

/* A rename or link is only durable once the directory holding it is. */
/*
 * Write the key line to a new temporary file next to path and return its
 * name in *tmpp.  mkostemp creates it 0600 (the umask can only narrow that)
 * and the fchmod makes it exactly 0600 before a byte of the secret is
 * written.
 */
static int write_key_tmp(const char *path, const struct seal_key *k, char **tmpp, char *why,
			 size_t whylen)
{
	char line[KEY_LINE_LEN + 1];
	char sk[SEAL_PK_STR_LEN], pk[SEAL_PK_STR_LEN];
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	int fd, rv = ERR_IO;

	*tmpp = NULL;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		set_why(why, whylen, "%s: cannot create a temporary file: %s", path,
			strerror(errno));
		goto out;
	}
	b64_encode32(k->sk, sk);
	b64_encode32(k->pk, pk);
	snprintf(line, sizeof(line), "%s %s %s\n", KEY_MAGIC, sk, pk);
	if (fchmod(fd, 0600) < 0 || write_all(fd, line, KEY_LINE_LEN) < 0 || fsync(fd) < 0) {
		set_why(why, whylen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		goto out;
	}
	if (close(fd) < 0) {
		set_why(why, whylen, "%s: cannot write %s: %s", path, tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	*tmpp = tmp;
	tmp = NULL;
	rv = 0;
out:
	sodium_memzero(line, sizeof(line));
	sodium_memzero(sk, sizeof(sk));
	free(tmp);
	return rv;
}

int seal_key_save(const char *path, const struct seal_key *k, char *why, size_t whylen)
{
	char *tmp = NULL;
	int rv;

	if ((rv = write_key_tmp(path, k, &tmp, why, whylen)) != 0)
		return rv;
	rv = ERR_IO;
	if (rename(tmp, path) < 0) {
		set_why(why, whylen, "%s: cannot rename %s into place: %s", path, tmp,
			strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (fsync_parent(path) < 0) {
		set_why(why, whylen, "%s: cannot sync its directory: %s", path, strerror(errno));
		goto out;
	}
	rv = 0;
out:
	free(tmp);
	return rv;
}

/*
 * Like seal_key_save but never replaces an existing file: link(2) fails with
 * EEXIST when another process got there first (ERR_EXIST).  Filesystems
 * without hard links fall back to rename, which is only racy, not unsafe.
 */
static int key_create(const char *path, const struct seal_key *k, char *why, size_t whylen)
{
	char *tmp = NULL;
	bool tmp_gone = false;
	int rv, e;

	if ((rv = write_key_tmp(path, k, &tmp, why, whylen)) != 0)
		return rv;
	rv = ERR_IO;
	if (link(tmp, path) < 0) {
		e = errno;
		if (e == EEXIST) {
			rv = ERR_EXIST;
			goto out;
		}
		if (e != EPERM && e != EOPNOTSUPP && e != ENOSYS && e != EMLINK) {
			set_why(why, whylen, "%s: cannot create: %s", path, strerror(e));
			goto out;
		}
		if (rename(tmp, path) < 0) {
			set_why(why, whylen, "%s: cannot create: %s", path, strerror(errno));
			goto out;
		}
		tmp_gone = true;
	}
	if (fsync_parent(path) < 0) {
		set_why(why, whylen, "%s: cannot sync its directory: %s", path, strerror(errno));
		goto out;
	}
	rv = 0;
out:
	/* After link(2) tmp is a second name for path: drop it. */
	if (!tmp_gone)
		unlink(tmp);
	free(tmp);
	return rv;
}

/* Read at most max bytes; more than that means "not a key file". */
static int read_small(int fd, char *buf, size_t max, size_t *len)
{
	size_t used = 0;

	for (;;) {
		ssize_t n = read(fd, buf + used, max + 1 - used);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return ERR_IO;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max)
			return ERR_TOOBIG;
	}
	*len = used;
	return 0;
}

int seal_key_load(const char *path, struct seal_key *k, char *why, size_t whylen)
{
	char buf[KEY_LINE_LEN + 1];
	const char *sk_s = buf + KEY_MAGIC_LEN + 1;
	const char *pk_s = sk_s + B64_32_LEN + 1;
	struct seal_key tmp;
	uint8_t derived[32];
	struct stat st;
	size_t n = 0;
	int fd, rv;

	/* O_NONBLOCK so a FIFO planted at path cannot hang us before fstat. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;

		set_why(why, whylen, "%s: %s", path, strerror(e));
		return e == ENOENT ? ERR_NOENT : ERR_IO;
	}
	rv = ERR_IO;
	if (fstat(fd, &st) < 0) {
		set_why(why, whylen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rv = ERR_INVAL;
	if (!S_ISREG(st.st_mode)) {
		set_why(why, whylen, "%s: not a regular file", path);
		goto out;
	}
	/* Checked on the open descriptor, so the file cannot be swapped
	 * between the check and the read. */
	if (st.st_mode & 077) {
		set_why(why, whylen, "%s: permissions %04o are too open; chmod 600 %s", path,
			(unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	rv = read_small(fd, buf, KEY_LINE_LEN, &n);
	if (rv == ERR_IO) {
		set_why(why, whylen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rv = ERR_INVAL;
	if (n != KEY_LINE_LEN || memcmp(buf, KEY_MAGIC " ", KEY_MAGIC_LEN + 1) != 0 ||
	    sk_s[B64_32_LEN] != ' ' || pk_s[B64_32_LEN] != '\n') {
		set_why(why, whylen, "%s: not a %s key file", path, KEY_MAGIC);
		goto out;
	}
	if (b64_decode32(sk_s, B64_32_LEN, tmp.sk) != 0) {
		set_why(why, whylen, "%s: malformed secret key", path);
		goto out;
	}
	if (b64_decode32(pk_s, B64_32_LEN, tmp.pk) != 0) {
		set_why(why, whylen, "%s: malformed public key", path);
		goto out;
	}
	if (crypto_scalarmult_base(derived, tmp.sk) != 0 || memcmp(derived, tmp.pk, 32) != 0) {
		set_why(why, whylen, "%s: public key does not match the secret key", path);
		goto out;
	}
	*k = tmp;
	rv = 0;
out:
	sodium_memzero(buf, sizeof(buf));
	sodium_memzero(&tmp, sizeof(tmp));
	close(fd);
	return rv;
}

int seal_key_load_or_create(const char *path, struct seal_key *k, bool *created, char *why,
			    size_t whylen)
{
	struct seal_key nk;
	int rv;

	if (created)
		*created = false;
	if (!sodium_ready()) {
		set_why(why, whylen, "libsodium failed to start");
		return ERR_SYS;
	}
	rv = seal_key_load(path, k, why, whylen);
	if (rv != ERR_NOENT)
		return rv;
	if ((rv = seal_key_generate(&nk)) != 0)
		goto out;
	rv = key_create(path, &nk, why, whylen);
	if (rv == ERR_EXIST) {
		/* Someone else created it between our load and link: theirs
		 * is the key now. */
		rv = seal_key_load(path, k, why, whylen);
		goto out;
	}
	if (rv != 0)
		goto out;
	*k = nk;
	if (created)
		*created = true;
out:
	sodium_memzero(&nk, sizeof(nk));
	return rv;
}

void seal_pk_str(const uint8_t pk[32], char out[SEAL_PK_STR_LEN])
{
	b64_encode32(pk, out);
}

int seal_pk_parse(const char *s, uint8_t pk[32])
{
	if (!s)
		return ERR_INVAL;
	return b64_decode32(s, strnlen(s, B64_32_LEN + 1), pk);
}

void seal_fingerprint(const uint8_t pk[32], char out[SEAL_FP_LEN])
{
	uint8_t h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, pk, 32);
	memcpy(out, "SHA256:", 7);
	b64_encode32(h, out + 7);
}

/* ---- join tokens ---- */

int seal_secret_generate(uint8_t secret[SEAL_SECRET_LEN])
{
	if (!sodium_ready())
		return ERR_SYS;
	randombytes_buf(secret, SEAL_SECRET_LEN);
	return 0;
}

bool seal_secret_equal(const uint8_t *a, const uint8_t *b)
{
	return sodium_memcmp(a, b, SEAL_SECRET_LEN) == 0;
}

int seal_token_make(const uint8_t master_pk[32], const uint8_t secret[SEAL_SECRET_LEN], char *out,
		    size_t outlen)
{
	char pk[SEAL_PK_STR_LEN], sec[SEAL_PK_STR_LEN];

	if (!out || outlen < SEAL_TOKEN_LEN)
		return ERR_TOOBIG;
	b64_encode32(master_pk, pk);
	b64_encode32(secret, sec);
	snprintf(out, outlen, "%s%s.%s", TOKEN_PREFIX, pk, sec);
	sodium_memzero(sec, sizeof(sec));
	return 0;
}

int seal_token_parse(const char *tok, uint8_t master_pk[32], uint8_t secret[SEAL_SECRET_LEN])
{
	const char *pk_s, *sec_s;
	uint8_t pk[32], sec[SEAL_SECRET_LEN];
	int rv = ERR_INVAL;

	if (!tok || strnlen(tok, SEAL_TOKEN_LEN) != SEAL_TOKEN_LEN - 1)
		return ERR_INVAL;
	pk_s = tok + TOKEN_PREFIX_LEN;
	sec_s = pk_s + B64_32_LEN + 1;
	/* '.' is not in the base64url alphabet, so the split is unambiguous
	 * and b64_decode32 rejects a misplaced one. */
	if (memcmp(tok, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0 || pk_s[B64_32_LEN] != '.')
		goto out;
	if (b64_decode32(pk_s, B64_32_LEN, pk) != 0 || b64_decode32(sec_s, B64_32_LEN, sec) != 0)
		goto out;
	memcpy(master_pk, pk, sizeof(pk));
	memcpy(secret, sec, sizeof(sec));
	rv = 0;
out:
	sodium_memzero(sec, sizeof(sec));
	return rv;
}

/* ---- seal contexts ---- */

struct seal_ctx *seal_ctx_new(const struct seal_key *me)
{
	struct seal_ctx *c;

	if (!sodium_ready())
		return NULL;
	c = xcalloc(1, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->me = *me;
	randombytes_buf(c->prefix, sizeof(c->prefix));
	c->counter = wall_ns();
	/* Nothing sealed before this context existed is accepted: replay
	 * memory lives in RAM, so without this floor a frame captured in the
	 * minute before a restart would be taken again after it. */
	c->gfloor = c->counter;
	c->max_peers = SEAL_MAX_PEERS;
	c->max_seen = SEAL_MAX_SEEN;
	return c;
}

static void peer_free(struct peer *p)
{
	if (!p)
		return;
	free(p->seen);
	sodium_memzero(p, sizeof(*p));
	free(p);
}

void seal_ctx_free(struct seal_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->npeers; i++)
		peer_free(c->peers[i]);
	free(c->peers);
	pthread_mutex_destroy(&c->mu);
	sodium_memzero(c, sizeof(*c));
	free(c);
}

void seal_ctx_set_floor(struct seal_ctx *c, uint64_t v)
{
	pthread_mutex_lock(&c->mu);
	c->gfloor = v;
	pthread_mutex_unlock(&c->mu);
}

void seal_ctx_set_counter(struct seal_ctx *c, uint64_t v)
{
	pthread_mutex_lock(&c->mu);
	c->counter = v;
	c->pinned = true;
	pthread_mutex_unlock(&c->mu);
}

void seal_ctx_set_limits(struct seal_ctx *c, size_t max_peers, size_t max_seen)
{
	pthread_mutex_lock(&c->mu);
	if (max_peers)
		c->max_peers = max_peers;
	if (max_seen)
		c->max_seen = max_seen;
	pthread_mutex_unlock(&c->mu);
}

/* One direction's key: BLAKE2b-256(label || K || from || to). */
static void derive_key(uint8_t out[32], const uint8_t k[32], const uint8_t from[32],
		       const uint8_t to[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)SEAL_LABEL, sizeof(SEAL_LABEL) - 1);
	crypto_generichash_update(&st, k, 32);
	crypto_generichash_update(&st, from, 32);
	crypto_generichash_update(&st, to, 32);
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof(st));
}

/* Both direction keys for peer_pk; ERR_INVAL for a low-order point (the
 * shared secret would be all zeros and known to anyone). */
static int peer_keys(const struct seal_ctx *c, const uint8_t peer_pk[32], uint8_t tx[32],
		     uint8_t rx[32])
{
	uint8_t k[crypto_box_BEFORENMBYTES];

	if (crypto_box_beforenm(k, peer_pk, c->me.sk) != 0)
		return ERR_INVAL;
	derive_key(tx, k, c->me.pk, peer_pk);
	derive_key(rx, k, peer_pk, c->me.pk);
	sodium_memzero(k, sizeof(k));
	return 0;
}

/* Binary search by pk: the peer, or NULL with *pos where it would go. */
static struct peer *peer_find(struct seal_ctx *c, const uint8_t pk[32], size_t *pos)
{
	size_t lo = 0, hi = c->npeers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = memcmp(c->peers[mid]->pk, pk, 32);

		if (cmp == 0) {
			*pos = mid;
			c->peers[mid]->used = ++c->tick;
			return c->peers[mid];
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return NULL;
}

static uint64_t peer_newest(const struct peer *p)
{
	return p->nseen ? p->seen[p->nseen - 1].ctr : 0;
}

/* Drop one of the least recently used peers.  Its replay memory goes with
 * it, so the context-wide floor rises to what it had seen: whoever enters
 * the table later starts above that (see seal.h). */
static void peer_evict(struct seal_ctx *c)
{
	size_t victim = randombytes_uniform((uint32_t)c->npeers);
	struct peer *p;

	for (int i = 1; i < EVICT_SAMPLES && (size_t)i < c->npeers; i++) {
		size_t j = randombytes_uniform((uint32_t)c->npeers);

		if (c->peers[j]->used < c->peers[victim]->used)
			victim = j;
	}
	p = c->peers[victim];
	if (p->floor > c->gfloor)
		c->gfloor = p->floor;
	if (peer_newest(p) > c->gfloor)
		c->gfloor = peer_newest(p);
	peer_free(p);
	memmove(&c->peers[victim], &c->peers[victim + 1],
		(c->npeers - victim - 1) * sizeof(c->peers[0]));
	c->npeers--;
}

static struct peer *peer_add(struct seal_ctx *c, const uint8_t pk[32], const uint8_t tx[32],
			     const uint8_t rx[32])
{
	struct peer *p;
	size_t pos;

	while (c->npeers >= c->max_peers)
		peer_evict(c);
	/* Eviction shifted the array: find the slot afresh. */
	peer_find(c, pk, &pos);
	if (c->npeers == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->peers = xrealloc(c->peers, c->cap * sizeof(c->peers[0]));
	}
	p = xcalloc(1, sizeof(*p));
	memcpy(p->pk, pk, 32);
	memcpy(p->tx, tx, 32);
	memcpy(p->rx, rx, 32);
	p->used = ++c->tick;
	p->floor = c->gfloor;
	memmove(&c->peers[pos + 1], &c->peers[pos], (c->npeers - pos) * sizeof(c->peers[0]));
	c->peers[pos] = p;
	c->npeers++;
	return p;
}

static int seen_cmp(const struct seen *a, uint64_t ctr, uint64_t tag)
{
	if (a->ctr != ctr)
		return a->ctr < ctr ? -1 : 1;
	if (a->tag != tag)
		return a->tag < tag ? -1 : 1;
	return 0;
}

/* Where (ctr, tag) is or would go in p->seen; *found says which. */
static size_t seen_pos(const struct peer *p, uint64_t ctr, uint64_t tag, bool *found)
{
	size_t lo = 0, hi = p->nseen;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = seen_cmp(&p->seen[mid], ctr, tag);

		if (cmp == 0) {
			*found = true;
			return mid;
		}
		if (cmp < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Forget the first n nonces, remembering that nothing at or below them may
 * come again. */
static void seen_drop_front(struct peer *p, size_t n)
{
	if (n == 0)
		return;
	if (p->seen[n - 1].ctr > p->floor)
		p->floor = p->seen[n - 1].ctr;
	memmove(p->seen, p->seen + n, (p->nseen - n) * sizeof(p->seen[0]));
	p->nseen -= n;
}

/* Read-only: would (ctr, tag) be accepted from p? */
static int replay_check(const struct peer *p, uint64_t ctr, uint64_t tag, char *why,
			size_t whylen)
{
	bool found;

	if (ctr <= p->floor) {
		set_why(why, whylen, "message too old");
		return ERR_PROTO;
	}
	seen_pos(p, ctr, tag, &found);
	if (found) {
		set_why(why, whylen, "replayed message");
		return ERR_PROTO;
	}
	return 0;
}

/* Remember (ctr, tag) from p, pruning what the window no longer needs. */
static int replay_record(struct seal_ctx *c, struct peer *p, uint64_t ctr, uint64_t tag,
			 uint64_t now, char *why, size_t whylen)
{
	size_t old = 0, pos;
	bool found;
	int rv;

	if (now > WINDOW_NS)
		while (old < p->nseen && p->seen[old].ctr < now - WINDOW_NS)
			old++;
	seen_drop_front(p, old);
	if ((rv = replay_check(p, ctr, tag, why, whylen)) != 0)
		return rv;
	pos = seen_pos(p, ctr, tag, &found);
	if (p->nseen >= c->max_seen) {
		/* Full within one window: the newcomer would be the oldest,
		 * so it is the one that cannot be remembered. */
		if (pos == 0) {
			set_why(why, whylen, "message too old");
			return ERR_PROTO;
		}
		seen_drop_front(p, p->nseen - c->max_seen + 1);
		if (ctr <= p->floor) {
			set_why(why, whylen, "message too old");
			return ERR_PROTO;
		}
		pos = seen_pos(p, ctr, tag, &found);
	}
	if (p->nseen == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 16;
		if (p->cap > c->max_seen)
			p->cap = c->max_seen;
		p->seen = xrealloc(p->seen, p->cap * sizeof(p->seen[0]));
	}
	memmove(&p->seen[pos + 1], &p->seen[pos], (p->nseen - pos) * sizeof(p->seen[0]));
	p->seen[pos].ctr = ctr;
	p->seen[pos].tag = tag;
	p->nseen++;
	return 0;
}

/* Is this a plaintext frame as wire_encode makes it?  0, ERR_INVAL or
 * ERR_TOOBIG. */
static int check_plain(const uint8_t *f, size_t len)
{
	if (!f || len < WIRE_HDR_LEN)
		return ERR_INVAL;
	if (get_be32(f) != WIRE_MAGIC || get_be16(f + 4) != WIRE_VERSION || get_be32(f + 8) != 0)
		return ERR_INVAL;
	if (len - WIRE_HDR_LEN > WIRE_MAX_BODY)
		return ERR_TOOBIG;
	if (get_be32(f + 12) != len - WIRE_HDR_LEN)
		return ERR_INVAL;
	return 0;
}

int seal_frame(struct seal_ctx *c, const uint8_t peer_pk[32], const uint8_t *frame, size_t len,
	       uint8_t **out, size_t *outlen)
{
	uint8_t tx[32], rx[32], nonce[crypto_box_NONCEBYTES];
	struct peer *p;
	uint64_t ctr;
	size_t pos, body_len;
	uint8_t *buf, *b;
	int rv;

	*out = NULL;
	*outlen = 0;
	if ((rv = check_plain(frame, len)) != 0)
		return rv;

	pthread_mutex_lock(&c->mu);
	p = peer_find(c, peer_pk, &pos);
	if (!p) {
		if ((rv = peer_keys(c, peer_pk, tx, rx)) != 0) {
			pthread_mutex_unlock(&c->mu);
			goto out;
		}
		p = peer_add(c, peer_pk, tx, rx);
	}
	memcpy(tx, p->tx, sizeof(tx));
	if (c->pinned) {
		ctr = c->counter;
		c->pinned = false;
	} else {
		/* Follow the wall clock so receivers can judge the age, but
		 * never repeat or go back, even when the clock does. */
		ctr = wall_ns();
		if (ctr <= c->counter)
			ctr = c->counter + 1;
		c->counter = ctr;
	}
	pthread_mutex_unlock(&c->mu);

	memcpy(nonce, c->prefix, NONCE_PREFIX_LEN);
	put_be64(nonce + NONCE_PREFIX_LEN, ctr);
	body_len = SEAL_OVERHEAD + len;
	buf = xmalloc(WIRE_HDR_LEN + body_len);
	put_be32(buf, WIRE_MAGIC);
	put_be16(buf + 4, WIRE_VERSION);
	memcpy(buf + 6, frame + 6, 2); /* type */
	put_be32(buf + 8, WIRE_FLAG_SEALED);
	put_be32(buf + 12, (uint32_t)body_len);
	memcpy(buf + 16, frame + 16, 16); /* seq, sender */
	b = buf + WIRE_HDR_LEN;
	memcpy(b, c->me.pk, 32);
	memcpy(b + 32, nonce, sizeof(nonce));
	crypto_box_easy_afternm(b + 32 + sizeof(nonce), frame, len, nonce, tx);
	*out = buf;
	*outlen = WIRE_HDR_LEN + body_len;
	rv = 0;
out:
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(rx, sizeof(rx));
	return rv;
}

/* The outer header of a sealed frame, checked without wire_decode (which
 * refuses non-zero flags). */
static int check_outer(const uint8_t *f, size_t len, char *why, size_t whylen)
{
	uint32_t flags, body_len;

	if (len < WIRE_HDR_LEN) {
		set_why(why, whylen, "frame too short (%zu bytes)", len);
		return ERR_PROTO;
	}
	if (get_be32(f) != WIRE_MAGIC) {
		set_why(why, whylen, "bad magic 0x%08x", get_be32(f));
		return ERR_PROTO;
	}
	if (get_be16(f + 4) != WIRE_VERSION) {
		set_why(why, whylen, "unsupported version %u", get_be16(f + 4));
		return ERR_VERSION;
	}
	flags = get_be32(f + 8);
	if (flags != WIRE_FLAG_SEALED) {
		set_why(why, whylen, "not a sealed frame (flags 0x%x)", flags);
		return ERR_PROTO;
	}
	body_len = get_be32(f + 12);
	if (body_len > SEAL_MAX_BODY) {
		set_why(why, whylen, "sealed body of %u bytes is over the limit of %u bytes "
			"(SEAL_MAX_BODY)", body_len, (unsigned)SEAL_MAX_BODY);
		return ERR_TOOBIG;
	}
	if (body_len != len - WIRE_HDR_LEN) {
		set_why(why, whylen, "length mismatch: header says %u, frame has %zu", body_len,
			len - WIRE_HDR_LEN);
		return ERR_PROTO;
	}
	if (body_len < SEAL_OVERHEAD + WIRE_HDR_LEN) {
		set_why(why, whylen, "sealed frame too short (%u body bytes)", body_len);
		return ERR_PROTO;
	}
	return 0;
}

int seal_open(struct seal_ctx *c, const uint8_t *frame, size_t len, uint8_t **plain,
	      size_t *plainlen, uint8_t sender_pk[32], char *why, size_t whylen)
{
	const uint8_t *spk, *nonce, *box;
	uint8_t tx[32], rx[32];
	uint8_t *pt = NULL;
	struct peer *p;
	uint64_t ctr, tag, now;
	size_t boxlen, ptlen = 0, pos;
	int rv;

	*plain = NULL;
	*plainlen = 0;
	if (!frame)
		len = 0;
	if ((rv = check_outer(frame, len, why, whylen)) != 0)
		return rv;
	spk = frame + WIRE_HDR_LEN;
	nonce = spk + 32;
	box = nonce + crypto_box_NONCEBYTES;
	boxlen = len - WIRE_HDR_LEN - 32 - crypto_box_NONCEBYTES;
	tag = get_be64(nonce);
	ctr = get_be64(nonce + NONCE_PREFIX_LEN);

	/* Age first: it is cheap and needs no key. */
	now = wall_ns();
	if (ctr > now + WINDOW_NS) {
		set_why(why, whylen, "message from the future (clocks more than %d s apart?)",
			SEAL_WINDOW_MS / 1000);
		return ERR_PROTO;
	}
	if (now > WINDOW_NS && ctr < now - WINDOW_NS) {
		set_why(why, whylen, "message too old");
		return ERR_PROTO;
	}

	/* The lock is held to the end so the replay check and the record of
	 * this nonce are one step. */
	pthread_mutex_lock(&c->mu);
	p = peer_find(c, spk, &pos);
	if (p) {
		if ((rv = replay_check(p, ctr, tag, why, whylen)) != 0)
			goto out;
		memcpy(rx, p->rx, sizeof(rx));
	} else if (peer_keys(c, spk, tx, rx) != 0) {
		set_why(why, whylen, "cannot open: bad sender key");
		rv = ERR_PROTO;
		goto out;
	}
	ptlen = boxlen - crypto_box_MACBYTES;
	pt = xmalloc(ptlen);
	if (crypto_box_open_easy_afternm(pt, box, boxlen, nonce, rx) != 0) {
		set_why(why, whylen, "cannot open: wrong key or tampered");
		rv = ERR_PROTO;
		goto out;
	}
	/* The outer header travels in the clear; the inner one is
	 * authenticated, so they must agree. */
	rv = ERR_PROTO;
	if (get_be32(pt) != WIRE_MAGIC || get_be32(pt + 8) != 0) {
		set_why(why, whylen, "inner frame is not a plaintext frame");
		goto out;
	}
	if (memcmp(pt + 6, frame + 6, 2) != 0 || memcmp(pt + 16, frame + 16, 16) != 0) {
		set_why(why, whylen, "inner header does not match the outer one");
		goto out;
	}
	if (!p)
		p = peer_add(c, spk, tx, rx);
	if ((rv = replay_record(c, p, ctr, tag, now, why, whylen)) != 0)
		goto out;
	memcpy(sender_pk, spk, 32);
	*plain = pt;
	*plainlen = ptlen;
	pt = NULL;
	rv = 0;
out:
	pthread_mutex_unlock(&c->mu);
	if (pt) {
		sodium_memzero(pt, ptlen);
		free(pt);
	}
	sodium_memzero(tx, sizeof(tx));
	sodium_memzero(rx, sizeof(rx));
	return rv;
}

bool seal_is_sealed(const uint8_t *frame, size_t len)
{
	return frame && len >= WIRE_HDR_LEN && (get_be32(frame + 8) & WIRE_FLAG_SEALED);
}
