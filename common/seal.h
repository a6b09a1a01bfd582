/*
 * seal.h - long-term keys, join tokens, and sealed (encrypted and
 * authenticated) frames, built on libsodium's crypto_box (X25519 +
 * XSalsa20-Poly1305).
 *
 * Keys.  Every daemon (and every admin running mlctl) has one X25519 keypair
 * in a key file of one line, mode 0600:
 *
 *   mlsched-key-v1 <secret key, base64url no padding> <public key, same>\n
 *
 * Join token.  "mlsj1.<master public key>.<join secret>", both base64url
 * without padding: what `mlmaster init` prints and `mlagent --join` takes.
 *
 * Sealed frame.  A plaintext frame is what wire_encode() makes.  Its sealed
 * form is
 *
 *   outer header  32 bytes, as in wire.h, with flags = WIRE_FLAG_SEALED, the
 *                 same type, seq and sender as the inner frame, and body_len
 *                 covering what follows
 *   sender_pk     32 bytes: the sealer's public key
 *   nonce         24 bytes: a 16-byte random prefix chosen once per seal
 *                 context, then a big-endian u64 counter that strictly
 *                 increases per context and follows the wall clock in
 *                 nanoseconds since the epoch (so it also increases across
 *                 restarts, and the receiver can tell its age)
 *   box           crypto_box_easy_afternm(inner plaintext frame): the inner
 *                 frame plus a 16-byte MAC
 *
 * The outer header is authenticated indirectly: seal_open() requires the
 * decrypted inner header to repeat its type, seq and sender.
 *
 * Direction.  crypto_box's precomputed key is the same for both ends of a
 * pair, so a frame A sealed to B would also open at A if an attacker sent it
 * back with sender_pk rewritten to B (a reflection).  To rule that out each
 * direction uses its own key: BLAKE2b-256("mlsched-seal-v1" || K ||
 * from_pk || to_pk), where K = crypto_box_beforenm(peer, me).  The frame
 * format is unchanged by this.
 *
 * Replays.  A receiver accepts a counter only when its timestamp is within
 * SEAL_WINDOW_MS of the receiver's wall clock (either way), and remembers the
 * nonces it accepted from each sender public key within that window, so the
 * same frame is refused a second time.  Several processes may share one key
 * (parallel mlctl runs with the admin key): each has its own random prefix
 * and their counters interleave, so the receiver keeps a set of recent
 * nonces per key rather than "greater than the last one".  The clocks of
 * sender and receiver must therefore agree within the window (NTP).
 *
 * Threads.  All functions are thread-safe; a seal_ctx has its own lock, so
 * one context may be shared by threads (they then share one nonce sequence).
 * Secret keys live in ordinary memory; structures holding them are wiped
 * when freed, but a struct seal_key owned by the caller is the caller's to
 * wipe (sodium_memzero).
 *
 * Link with -lsodium.
 */
#ifndef MLSCHED_SEAL_H
#define MLSCHED_SEAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sodium.h>

#include "wire.h"

/* The flag bit that marks a sealed frame in the wire header's flags field. */
#define WIRE_FLAG_SEALED 0x1u

#define SEAL_PK_LEN crypto_box_PUBLICKEYBYTES /* 32 */
#define SEAL_SECRET_LEN 32
/* A public key (or secret) as text: 43 base64url characters plus the NUL. */
#define SEAL_PK_STR_LEN 44
/* "mlsj1." + 43 + "." + 43, plus the NUL. */
#define SEAL_TOKEN_LEN 94

/* How far (either way) a frame's counter timestamp may be from the
 * receiver's wall clock, and so how long a receiver remembers nonces. */
#define SEAL_WINDOW_MS 60000

/* Bytes a sealed body adds around the inner frame: sender_pk, nonce, MAC. */
#define SEAL_OVERHEAD (crypto_box_PUBLICKEYBYTES + crypto_box_NONCEBYTES + crypto_box_MACBYTES)
/* The largest sealed body: the largest plaintext frame plus SEAL_OVERHEAD.
 * seal_open() refuses a larger body_len with ERR_TOOBIG.  */
#define SEAL_MAX_BODY (WIRE_HDR_LEN + WIRE_MAX_BODY + SEAL_OVERHEAD)
/* The largest sealed frame on the wire; use it as the transport's receive
 * limit when sealing is on. */
#define SEAL_MAX_FRAME (WIRE_HDR_LEN + SEAL_MAX_BODY)

/* Defaults for the per-context limits (see seal_ctx_set_limits). */
#define SEAL_MAX_PEERS 65536     /* peers whose keys and replay state are kept */
#define SEAL_MAX_SEEN 4096       /* nonces remembered per sender key */

struct seal_key {
	uint8_t pk[crypto_box_PUBLICKEYBYTES];
	uint8_t sk[crypto_box_SECRETKEYBYTES];
};

/* Make a new random keypair.  0, or ERR_SYS when libsodium cannot start. */
int seal_key_generate(struct seal_key *k);

/*
 * Write k to path in the one-line format above, mode 0600, atomically: a
 * temporary file in the same directory created 0600 from the start (so the
 * secret never exists on disk with wider permissions), fsync, rename over
 * path, fsync the directory.  The directory must exist.  Returns 0 or ERR_IO
 * with a reason in why (may be NULL).
 */
int seal_key_save(const char *path, const struct seal_key *k, char *why, size_t whylen);

/*
 * Read a key file written by seal_key_save.  The file must be a regular
 * file that neither group nor others can access, and hold exactly the one
 * line above (trailing newline included, nothing else); the public key must
 * be the one the secret key gives.  Returns 0, ERR_NOENT (no such file),
 * ERR_IO (cannot read), or ERR_INVAL (too open permissions, not a regular
 * file, malformed, keys that do not match); why gets a line naming the path,
 * e.g. "path: permissions 0644 are too open; chmod 600 path".
 */
int seal_key_load(const char *path, struct seal_key *k, char *why, size_t whylen);

/*
 * Load path, or when it does not exist generate a key and save it there.
 * *created (may be NULL) says which happened.  When two processes race to
 * create the same file, one key wins and both return it (the file is put in
 * place with link(2), which never replaces an existing file).  Any error
 * other than ERR_NOENT from loading is returned as is: an existing bad file
 * is never overwritten.
 */
int seal_key_load_or_create(const char *path, struct seal_key *k, bool *created, char *why,
			    size_t whylen);

/* A public key as 43 base64url characters (no padding), NUL-terminated. */
void seal_pk_str(const uint8_t pk[32], char out[SEAL_PK_STR_LEN]);
/* Parse exactly 43 canonical base64url characters.  0 or ERR_INVAL. */
int seal_pk_parse(const char *s, uint8_t pk[32]);

/* "SHA256:" + 43 base64url characters (no padding), plus the NUL. */
#define SEAL_FP_LEN 51
/*
 * A public key's fingerprint, as people compare keys (ssh style): "SHA256:"
 * and the base64url SHA-256 of the 32 key bytes.  `mlmaster admin list` and
 * the master's refusals show it.  Always succeeds.
 */
void seal_fingerprint(const uint8_t pk[32], char out[SEAL_FP_LEN]);

/* Fill secret with random bytes (a new join secret).  0 or ERR_SYS. */
int seal_secret_generate(uint8_t secret[SEAL_SECRET_LEN]);
/* Constant-time comparison of two SEAL_SECRET_LEN-byte secrets. */
bool seal_secret_equal(const uint8_t *a, const uint8_t *b);

/*
 * Join token "mlsj1.<b64url master_pk>.<b64url secret>" into out (at least
 * SEAL_TOKEN_LEN bytes, else ERR_TOOBIG).  0 or ERR_TOOBIG.
 */
int seal_token_make(const uint8_t master_pk[32], const uint8_t secret[SEAL_SECRET_LEN], char *out,
		    size_t outlen);
/* Parse a token strictly: exact prefix and length, canonical base64url, no
 * white space (callers strip a trailing newline themselves).  0 or ERR_INVAL;
 * the outputs are untouched on error. */
int seal_token_parse(const char *tok, uint8_t master_pk[32], uint8_t secret[SEAL_SECRET_LEN]);

/*
 * A seal context: one identity (keypair), its nonce sequence, and what it
 * knows about peers: the per-direction keys derived for each peer it has
 * sealed to or opened from, and the replay state of each sender key.  At
 * most SEAL_MAX_PEERS peers are kept; beyond that one of the least recently
 * used is dropped (sampled, so O(1)).  Dropping a sender that still has
 * nonces inside the window raises a context-wide floor to its newest
 * counter: a peer (re-)entering the table afterwards must send counters
 * above it, so a dropped sender's frames cannot be replayed.  In normal use
 * (fewer active peers per window than the limit) nothing is ever dropped.
 * Per sender at most SEAL_MAX_SEEN nonces are remembered; when that fills
 * within one window the oldest is forgotten and counters at or below it are
 * refused from then on ("message too old").
 *
 * seal_ctx_new copies *me; returns NULL only when libsodium cannot start.
 * seal_ctx_free accepts NULL and wipes the keys.
 */
struct seal_ctx *seal_ctx_new(const struct seal_key *me);
void seal_ctx_free(struct seal_ctx *c);

/*
 * Seal a plaintext frame (as made by wire_encode: len >= WIRE_HDR_LEN, right
 * magic and version, flags 0, body_len == len - WIRE_HDR_LEN) for the holder
 * of peer_pk.  On success *out is a malloc'd sealed frame of *outlen bytes
 * the caller frees.  Errors: ERR_INVAL (not such a plaintext frame, or a
 * peer key that is a low-order point), ERR_TOOBIG (inner body over
 * WIRE_MAX_BODY, so the sealed body would exceed SEAL_MAX_BODY).
 */
int seal_frame(struct seal_ctx *c, const uint8_t peer_pk[32], const uint8_t *frame, size_t len,
	       uint8_t **out, size_t *outlen);

/*
 * Open a sealed frame.  Checks the outer header (magic, version, flags ==
 * WIRE_FLAG_SEALED exactly, body_len == len - WIRE_HDR_LEN, at least
 * SEAL_OVERHEAD + WIRE_HDR_LEN body bytes) without wire_decode, the counter's
 * age, decrypts and authenticates, checks that the inner header has flags 0
 * and the outer type, seq and sender, and that the nonce was not accepted
 * before from this sender key.  On success *plain is the malloc'd inner
 * plaintext frame of *plainlen bytes (the caller frees it and runs
 * wire_decode on it), sender_pk is the key that sealed it (the caller
 * decides whether that key may send this), and the nonce is remembered.
 * Errors: ERR_PROTO ("not a sealed frame", "sealed frame too short",
 * "cannot open: wrong key or tampered", "replayed message", "message too
 * old", "message from the future", "inner header does not match"...),
 * ERR_VERSION, ERR_TOOBIG; *plain is NULL and nothing is remembered.  why
 * (may be NULL) gets the reason.  Never reads beyond len.
 */
int seal_open(struct seal_ctx *c, const uint8_t *frame, size_t len, uint8_t **plain,
	      size_t *plainlen, uint8_t sender_pk[32], char *why, size_t whylen);

/* True when len >= WIRE_HDR_LEN and the header's flags have WIRE_FLAG_SEALED
 * (only a hint for dispatch: seal_open checks everything). */
bool seal_is_sealed(const uint8_t *frame, size_t len);

/*
 * For tests only.  seal_ctx_set_counter: the next frame c seals carries
 * counter v exactly (say, one older than the window); later ones continue
 * from v + 1, raised to the wall clock when that is ahead.
 * seal_ctx_set_limits: change SEAL_MAX_PEERS / SEAL_MAX_SEEN for c (0 keeps
 * the current value); call before c is used.
 */
void seal_ctx_set_counter(struct seal_ctx *c, uint64_t v);
/* For tests only: the receive floor (by default the context's creation
 * time in wall-clock ns: nothing sealed earlier is accepted). */
void seal_ctx_set_floor(struct seal_ctx *c, uint64_t v);
void seal_ctx_set_limits(struct seal_ctx *c, size_t max_peers, size_t max_seen);

#endif
