/*
 * bounds.h - limits at the edge that are not the spec's or the wire's own,
 * and the per-peer request rate table the master checks every request
 * against.
 *
 * Every fixed limit of mlsched is a named constant checked where input
 * arrives, and every refusal names the limit and its value (docs/limits.md
 * lists them all).  The spec's are in spec.h (SPEC_MAX_*), the message size
 * in wire.h (WIRE_MAX_BODY); node labels are here because both the agent
 * (--labels) and the master (what an agent reports) check them.
 *
 * The rate table: a token bucket per peer, `rate` tokens a second up to
 * `burst`, one token per request.  Peers are found by a key of up to
 * BOUNDS_KEY_LEN bytes (a sealing public key, a remote address, a pipe id)
 * in a fixed table of `slots` entries, open addressing over a window of
 * BOUNDS_PROBE slots from the key's hash: a lookup costs at most that many
 * comparisons and the table never grows.  When the window is full, the entry
 * seen least recently in it is evicted, so memory is bounded whatever the
 * number of peers; an evicted peer starts again with a full bucket, which is
 * the most leniency the bound costs.  Not thread-safe: the master's one
 * thread owns it.
 */
#ifndef MLSCHED_BOUNDS_H
#define MLSCHED_BOUNDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

/* What the scheduler keeps of a node's labels (SCHED_MAX_LABELS, and
 * SCHED_LABEL_LEN less the NUL, plugins/sched/sched.h; master/sched.c
 * asserts they agree): a label past these could not be matched. */
#define BOUNDS_LABELS_MAX 16	  /* labels per node */
#define BOUNDS_LABEL_KEY_MAX 63	  /* bytes of a label's key */
#define BOUNDS_LABEL_VALUE_MAX 63 /* bytes of a label's value */

#define BOUNDS_KEY_LEN 32 /* bytes of a rate table key (longer keys are cut) */
#define BOUNDS_PROBE 8	  /* slots a key may sit in from its hash */

/*
 * Check a node's labels (a JSON object of string values) against the
 * BOUNDS_LABEL* limits.  0, or ERR_TOOBIG / ERR_INVAL with why naming the
 * limit and its value, e.g. "70 labels, over the limit of 64 per node".
 * NULL is no labels.
 */
int bounds_labels_check(const cJSON *labels, char *why, size_t whylen);

struct bounds_rate;

/*
 * A rate table of slots entries (rounded up to a power of two, at least
 * BOUNDS_PROBE) letting rate requests a second through per key, up to burst
 * at once (burst 0 means rate).  rate 0 makes a table that lets everything
 * through.  Never NULL (allocation failure aborts); bounds_rate_free it.
 */
struct bounds_rate *bounds_rate_new(uint32_t rate, uint32_t burst, size_t slots);
void bounds_rate_free(struct bounds_rate *r); /* NULL is fine */

/*
 * Take one token from key's bucket at monotonic time now_ms.  True: the
 * request may go on; false: over the rate, refuse it.  A key not in the table
 * starts with a full bucket (evicting the least recently seen entry of its
 * window when the window is full).
 */
bool bounds_rate_take(struct bounds_rate *r, const void *key, size_t keylen, uint64_t now_ms);

/* The table's rate and how many entries it holds now (tests, metrics). */
uint32_t bounds_rate_rate(const struct bounds_rate *r);
size_t bounds_rate_count(const struct bounds_rate *r);

#endif
