/*
 * bounds.c - node label limits and the per-peer rate table (see bounds.h).
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "bounds.h"
#include "util.h"

int bounds_labels_check(const cJSON *labels, char *why, size_t whylen)
{
	const cJSON *l;
	int n;

	if (!labels)
		return 0;
	if (!cJSON_IsObject(labels)) {
		set_why(why, whylen, "labels: expected an object of key=value");
		return ERR_INVAL;
	}
	n = cJSON_GetArraySize(labels);
	if (n > BOUNDS_LABELS_MAX) {
		set_why(why, whylen, "labels: %d labels, over the limit of %d per node", n,
			BOUNDS_LABELS_MAX);
		return ERR_TOOBIG;
	}
	cJSON_ArrayForEach(l, labels)
	{
		const char *k = l->string ? l->string : "";
		if (!*k) {
			set_why(why, whylen, "labels: a label has an empty key");
			return ERR_INVAL;
		}
		if (strlen(k) > BOUNDS_LABEL_KEY_MAX) {
			set_why(why, whylen,
				"labels: key \"%.20s...\" is %zu bytes, over the limit of %d", k,
				strlen(k), BOUNDS_LABEL_KEY_MAX);
			return ERR_TOOBIG;
		}
		if (!cJSON_IsString(l)) {
			set_why(why, whylen, "labels: %s: the value must be a string", k);
			return ERR_INVAL;
		}
		if (strlen(l->valuestring) > BOUNDS_LABEL_VALUE_MAX) {
			set_why(why, whylen,
				"labels: %s: the value is %zu bytes, over the limit of %d", k,
				strlen(l->valuestring), BOUNDS_LABEL_VALUE_MAX);
			return ERR_TOOBIG;
		}
	}
	return 0;
}

/* Credit is kept in thousandths of a token: `rate` tokens a second is
 * exactly `rate` thousandths a millisecond, so refills are integer. */
#define MILLI 1000u

struct slot {
	bool used;
	uint8_t keylen;
	uint8_t key[BOUNDS_KEY_LEN];
	uint64_t credit; /* thousandths of a token */
	uint64_t at;	 /* monotonic ms of the last refill */
};

struct bounds_rate {
	uint32_t rate, burst;
	size_t mask, count;
	struct slot *slots;
};

struct bounds_rate *bounds_rate_new(uint32_t rate, uint32_t burst, size_t slots)
{
	struct bounds_rate *r = xcalloc(1, sizeof(*r));
	size_t n = BOUNDS_PROBE;

	while (n < slots)
		n *= 2;
	r->rate = rate;
	r->burst = burst ? burst : rate;
	r->mask = n - 1;
	r->slots = xcalloc(n, sizeof(*r->slots));
	return r;
}

void bounds_rate_free(struct bounds_rate *r)
{
	if (!r)
		return;
	free(r->slots);
	free(r);
}

static uint64_t key_hash(const uint8_t *k, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= k[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

bool bounds_rate_take(struct bounds_rate *r, const void *key, size_t keylen, uint64_t now_ms)
{
	const uint8_t *k = key;
	struct slot *s = NULL, *victim = NULL;
	uint64_t full;
	size_t h;

	if (!r->rate)
		return true;
	if (keylen > BOUNDS_KEY_LEN)
		keylen = BOUNDS_KEY_LEN;
	full = (uint64_t)r->burst * MILLI;
	h = (size_t)key_hash(k, keylen);
	for (size_t i = 0; i < BOUNDS_PROBE; i++) {
		struct slot *c = &r->slots[(h + i) & r->mask];
		if (c->used && c->keylen == keylen && memcmp(c->key, k, keylen) == 0) {
			s = c;
			break;
		}
		/* Where a new key goes: a free slot, else the entry of the
		 * window seen least recently. */
		if (!victim || (victim->used && (!c->used || c->at < victim->at)))
			victim = c;
	}
	if (!s) {
		s = victim;
		if (!s->used)
			r->count++;
		s->used = true;
		s->keylen = (uint8_t)keylen;
		memcpy(s->key, k, keylen);
		s->credit = full;
		s->at = now_ms;
	}
	if (now_ms > s->at) {
		uint64_t add = (now_ms - s->at) * r->rate;
		/* A long-idle peer: do not overflow, just fill up. */
		s->credit =
		    now_ms - s->at > full || add > full - s->credit ? full : s->credit + add;
		s->at = now_ms;
	}
	if (s->credit < MILLI)
		return false;
	s->credit -= MILLI;
	return true;
}

uint32_t bounds_rate_rate(const struct bounds_rate *r)
{
	return r->rate;
}

size_t bounds_rate_count(const struct bounds_rate *r)
{
	return r->count;
}
