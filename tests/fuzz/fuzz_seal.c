/*
 * fuzz_seal.c - libFuzzer harness for the sealed-frame opener (common/seal.c).
 *
 * Random bytes almost never get past a MAC, so besides raw frames the
 * harness seals frames itself with fixed key pairs and lets the input choose
 * what goes in them, their counters (inside, at the edge of and outside the
 * replay window), what is flipped or cut afterwards, and which are sent
 * again.  The first input byte picks a mode:
 *
 *   0  raw: the rest is a frame given to seal_open as is; it must not open.
 *   1  one frame: type, seq, sender, counter offset and body from the input,
 *      sealed by the agent key for the master key, then mutated.  An
 *      unmutated frame within the window must open to exactly the plaintext
 *      and the sender's key; a frame with any byte changed must not open; an
 *      opened frame must not open a second time (replay) nor at another key,
 *      and reflected back to its sealer (sender_pk rewritten) must not open.
 *   2  a stream: up to 64 steps against one receiver with small limits (3
 *      peers, 4 nonces), each a new frame from one of 5 sender keys with a
 *      chosen counter, or a frame sent before: exercises peer eviction, the
 *      floors and the nonce sets.  No frame may ever open twice.
 *   3  text: seal_token_parse and seal_pk_parse; what parses must print back
 *      to the same text.
 *
 * Contexts are made afresh for every input, so a crash reproduces from its
 * input alone.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "fuzz.h"
#include "seal.h"
#include "util.h"
#include "wire.h"

#define NKEYS 6 /* 0: master (receiver), 1..5: senders */
#define STREAM_STEPS 64
#define STREAM_KEEP 8
#define MAX_BODY 4096

static struct seal_key keys[NKEYS];
static struct seal_key stranger;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t seed[crypto_box_SEEDBYTES];

	if (sodium_init() < 0)
		abort();
	for (int i = 0; i < NKEYS; i++) {
		memset(seed, 'k' + i, sizeof(seed));
		crypto_box_seed_keypair(keys[i].pk, keys[i].sk, seed);
	}
	memset(seed, 'x', sizeof(seed));
	crypto_box_seed_keypair(stranger.pk, stranger.sk, seed);
	return 0;
}

static uint64_t wall_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A plaintext frame as wire_encode lays it out, body bytes as given. */
static uint8_t *plain_frame(uint16_t type, uint64_t seq, uint64_t sender, const uint8_t *body,
			    size_t n, size_t *len)
{
	uint8_t *f = xmalloc(WIRE_HDR_LEN + n);

	put_be32(f, WIRE_MAGIC);
	put_be16(f + 4, WIRE_VERSION);
	put_be16(f + 6, type);
	put_be32(f + 8, 0);
	put_be32(f + 12, (uint32_t)n);
	put_be64(f + 16, seq);
	put_be64(f + 24, sender);
	if (n)
		memcpy(f + WIRE_HDR_LEN, body, n);
	*len = WIRE_HDR_LEN + n;
	return f;
}

/* The counter for the next seal: now plus a signed offset in seconds and
 * milliseconds, so the window's edges (60 s either way) are reachable. */
static void pin_counter(struct seal_ctx *c, struct fz *f, int64_t *off_ms)
{
	int8_t s = (int8_t)fz_u8(f);
	uint16_t ms = (uint16_t)(fz_uint(f, 2) % 1000);

	*off_ms = (int64_t)s * 1000 + (s < 0 ? -(int64_t)ms : (int64_t)ms);
	seal_ctx_set_counter(c, (uint64_t)((int64_t)wall_now_ns() + *off_ms * 1000000));
}

/* seal_open on an exact-sized heap copy, checking the contract on failure. */
static int open_copy(struct seal_ctx *c, const uint8_t *frame, size_t len, uint8_t **plain,
		     size_t *plainlen, uint8_t pk[32])
{
	uint8_t *copy = xmalloc(len ? len : 1);
	char why[256] = "";
	int rv;

	if (len)
		memcpy(copy, frame, len);
	rv = seal_open(c, copy, len, plain, plainlen, pk, why, sizeof(why));
	free(copy);
	if (rv != 0) {
		FZ_CHECK(*plain == NULL && *plainlen == 0);
		FZ_CHECK(rv == ERR_PROTO || rv == ERR_VERSION || rv == ERR_TOOBIG);
		FZ_CHECK(why[0] != '\0');
	} else {
		FZ_CHECK(*plain && *plainlen >= WIRE_HDR_LEN);
	}
	return rv;
}

static void mode_raw(struct fz *f)
{
	struct seal_ctx *c = seal_ctx_new(&keys[0]);
	uint8_t *plain = NULL, pk[32];
	size_t plainlen = 0;

	/* Without a key nothing can be forged. */
	FZ_CHECK(open_copy(c, f->p, f->n, &plain, &plainlen, pk) != 0);
	(void)seal_is_sealed(f->p, f->n);
	seal_ctx_free(c);
}

static void mode_one(struct fz *f)
{
	struct seal_ctx *tx = seal_ctx_new(&keys[1]), *rx = seal_ctx_new(&keys[0]);
	struct seal_ctx *other = seal_ctx_new(&stranger);
	uint16_t type = (uint16_t)fz_uint(f, 2);
	uint64_t seq = fz_uint(f, 8), sender = fz_uint(f, 8);
	uint8_t *inner, *sealed = NULL, *plain = NULL, *orig, pk[32];
	size_t inlen, slen = 0, plainlen = 0, bodylen, origlen;
	unsigned nmut = fz_u8(f) % 4;
	int64_t off_ms;
	bool changed = false;
	int rv;

	/* A receiver that has run for a while: its start-up floor (nothing
	 * sealed before it existed) would refuse every negative offset. */
	seal_ctx_set_floor(rx, 0);
	pin_counter(tx, f, &off_ms);
	bodylen = fz_u8(f) * 16 + fz_u8(f) % 16;
	if (bodylen > f->n)
		bodylen = f->n;
	inner = plain_frame(type, seq, sender, f->p, bodylen, &inlen);
	f->p += bodylen;
	f->n -= bodylen;
	rv = seal_frame(tx, keys[0].pk, inner, inlen, &sealed, &slen);
	FZ_CHECK(rv == 0);
	FZ_CHECK(slen == inlen + WIRE_HDR_LEN + SEAL_OVERHEAD && seal_is_sealed(sealed, slen));
	orig = xmalloc(slen);
	memcpy(orig, sealed, slen);
	origlen = slen;

	for (unsigned i = 0; i < nmut; i++) {
		size_t pos = (size_t)fz_uint(f, 2) % slen;
		uint8_t x = fz_u8(f);

		sealed[pos] ^= x;
	}
	/* Cut or extend by a few bytes (body_len no longer matches). */
	switch (fz_u8(f) % 8) {
	case 0:
		slen -= 1 + fz_u8(f) % (slen < 64 ? slen : 64);
		break;
	case 1:
		sealed = xrealloc(sealed, slen + 16);
		memset(sealed + slen, 0, 16);
		slen += 1 + fz_u8(f) % 16;
		break;
	default:
		break;
	}
	changed = slen != origlen || memcmp(sealed, orig, slen) != 0;

	rv = open_copy(rx, sealed, slen, &plain, &plainlen, pk);
	if (changed)
		FZ_CHECK(rv != 0);
	else if (off_ms > -59000 && off_ms < 59000)
		FZ_CHECK(rv == 0);
	if (rv == 0) {
		struct wire_hdr h;
		cJSON *body = NULL;
		uint8_t *again = NULL;
		size_t againlen = 0;

		FZ_CHECK(plainlen == inlen && memcmp(plain, inner, inlen) == 0);
		FZ_CHECK(memcmp(pk, keys[1].pk, 32) == 0);
		/* The same frame again is a replay. */
		FZ_CHECK(open_copy(rx, sealed, slen, &again, &againlen, pk) != 0);
		/* Another key cannot open it. */
		FZ_CHECK(open_copy(other, sealed, slen, &again, &againlen, pk) != 0);
		/* Nor can its sealer, told it came from the receiver. */
		memcpy(sealed + WIRE_HDR_LEN, keys[0].pk, 32);
		FZ_CHECK(open_copy(tx, sealed, slen, &again, &againlen, pk) != 0);
		/* What opened goes on to the plaintext decoder. */
		if (wire_decode(plain, plainlen, &h, &body, NULL, 0) == 0)
			FZ_CHECK(h.type == type && h.seq == seq && h.sender == sender);
		cJSON_Delete(body);
	}
	free(plain);
	free(sealed);
	free(orig);
	free(inner);
	seal_ctx_free(other);
	seal_ctx_free(rx);
	seal_ctx_free(tx);
}

static void mode_stream(struct fz *f)
{
	struct seal_ctx *rx = seal_ctx_new(&keys[0]), *tx[NKEYS] = {NULL};
	struct {
		uint8_t *frame;
		size_t len;
		bool opened;
	} kept[STREAM_KEEP] = {{NULL, 0, false}};
	uint8_t body[] = "{}";
	size_t next = 0;

	seal_ctx_set_limits(rx, 3, 4);
	seal_ctx_set_floor(rx, 0);
	for (int step = 0; step < STREAM_STEPS && f->n > 0; step++) {
		uint8_t op = fz_u8(f), *plain = NULL, pk[32];
		size_t plainlen = 0;
		int rv;

		if (op & 0x80 && kept[op % STREAM_KEEP].frame) {
			/* Send an earlier frame again. */
			size_t k = op % STREAM_KEEP;

			rv = open_copy(rx, kept[k].frame, kept[k].len, &plain, &plainlen, pk);
			if (kept[k].opened)
				FZ_CHECK(rv != 0);
			kept[k].opened |= rv == 0;
		} else {
			int who = 1 + op % (NKEYS - 1);
			uint8_t *inner, *sealed = NULL;
			size_t inlen, slen = 0;
			int64_t off_ms;

			if (!tx[who])
				tx[who] = seal_ctx_new(&keys[who]);
			if (op & 0x40)
				pin_counter(tx[who], f, &off_ms);
			inner = plain_frame(WIRE_SYNC, (uint64_t)step, (uint64_t)who, body, 2,
					    &inlen);
			FZ_CHECK(seal_frame(tx[who], keys[0].pk, inner, inlen, &sealed, &slen) ==
				 0);
			free(inner);
			rv = open_copy(rx, sealed, slen, &plain, &plainlen, pk);
			if (rv == 0)
				FZ_CHECK(memcmp(pk, keys[who].pk, 32) == 0);
			free(kept[next].frame);
			kept[next].frame = sealed;
			kept[next].len = slen;
			kept[next].opened = rv == 0;
			next = (next + 1) % STREAM_KEEP;
		}
		free(plain);
	}
	for (int i = 0; i < STREAM_KEEP; i++)
		free(kept[i].frame);
	for (int i = 0; i < NKEYS; i++)
		seal_ctx_free(tx[i]);
	seal_ctx_free(rx);
}

static void mode_text(struct fz *f)
{
	char *s = xmalloc(f->n + 1), back[SEAL_TOKEN_LEN];
	uint8_t pk[32], secret[SEAL_SECRET_LEN];

	memcpy(s, f->p, f->n);
	s[f->n] = '\0';
	if (seal_token_parse(s, pk, secret) == 0) {
		FZ_CHECK(seal_token_make(pk, secret, back, sizeof(back)) == 0);
		FZ_CHECK(strcmp(back, s) == 0);
	}
	if (seal_pk_parse(s, pk) == 0) {
		seal_pk_str(pk, back);
		FZ_CHECK(strcmp(back, s) == 0);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};

	switch (fz_u8(&f) % 4) {
	case 0:
		mode_raw(&f);
		break;
	case 1:
		mode_one(&f);
		break;
	case 2:
		mode_stream(&f);
		break;
	case 3:
		mode_text(&f);
		break;
	}
	return 0;
}
