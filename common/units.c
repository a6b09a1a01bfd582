/*
 * units.c - parse and format byte sizes, durations and milli-quantities.
 *
 * Every parser works on exact integers (no floating point), so "1.5G" is
 * exactly 1610612736 and a value that is not a whole number of the base unit
 * ("1.5" bytes, "1.0005s") is rejected rather than rounded.
 */
#include "units.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/* More fractional digits than this cannot matter for any unit we have and
 * would overflow the arithmetic below. */
#define MAX_FRAC_DIGITS 18

/*
 * A decimal number "123" or "1.25" at *sp: the integer part, the fraction
 * digits as an integer and 10^(number of fraction digits).  Trailing zeros of
 * the fraction are dropped.  Requires a digit before any '.', and one after.
 * Advances *sp past the number.  0 or ERR_INVAL (also on overflow).
 */
static int parse_decimal(const char **sp, uint64_t *ip, uint64_t *frac, uint64_t *scale)
{
	const char *s = *sp;
	uint64_t i = 0, f = 0, sc = 1;
	int nfrac = 0, pending_zeros = 0;

	if (*s < '0' || *s > '9')
		return ERR_INVAL;
	while (*s >= '0' && *s <= '9') {
		if (__builtin_mul_overflow(i, 10, &i) || __builtin_add_overflow(i, *s - '0', &i))
			return ERR_INVAL;
		s++;
	}
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return ERR_INVAL;
		for (; *s >= '0' && *s <= '9'; s++) {
			/* Hold zeros back until a non-zero digit shows they are
			 * not trailing. */
			if (*s == '0') {
				pending_zeros++;
				continue;
			}
			for (; pending_zeros >= 0; pending_zeros--) {
				if (++nfrac > MAX_FRAC_DIGITS)
					return ERR_INVAL;
				f = f * 10;
				sc = sc * 10;
			}
			pending_zeros = 0;
			f += (uint64_t)(*s - '0');
		}
	}
	*ip = i;
	*frac = f;
	*scale = sc;
	*sp = s;
	return 0;
}

/* (i + frac/scale) * mult as an exact integer; ERR_INVAL when not whole or
 * beyond uint64. */
static int scale_exact(uint64_t i, uint64_t frac, uint64_t scale, uint64_t mult, uint64_t *out)
{
	unsigned __int128 fm = (unsigned __int128)frac * mult;
	uint64_t whole, part;

	if (fm % scale != 0)
		return ERR_INVAL;
	part = (uint64_t)(fm / scale); /* < mult, so it fits */
	if (__builtin_mul_overflow(i, mult, &whole) || __builtin_add_overflow(whole, part, &whole))
		return ERR_INVAL;
	*out = whole;
	return 0;
}

static const char size_letters[] = "KMGTP";

/* Multiplier for a size suffix: "", "B", or K/M/G/T/P (any case) followed
 * by nothing, "i", "iB" or "B".  0 when the suffix is unknown. */
static uint64_t size_suffix(const char *s)
{
	const char *l;
	uint64_t mult = 1;

	if (*s == '\0')
		return 1;
	if ((*s == 'B' || *s == 'b') && s[1] == '\0')
		return 1;
	l = strchr(size_letters, *s >= 'a' && *s <= 'z' ? *s - 'a' + 'A' : *s);
	if (!l || *l == '\0')
		return 0;
	for (const char *p = size_letters; p <= l; p++)
		mult <<= 10;
	s++;
	if (*s == 'i' || *s == 'I')
		s++;
	if (*s == 'B' || *s == 'b')
		s++;
	return *s == '\0' ? mult : 0;
}

int units_parse_size(const char *s, uint64_t *bytes)
{
	uint64_t i, frac, scale, mult;

	if (!s || parse_decimal(&s, &i, &frac, &scale) < 0)
		return ERR_INVAL;
	mult = size_suffix(s);
	if (mult == 0)
		return ERR_INVAL;
	return scale_exact(i, frac, scale, mult, bytes);
}

/* Duration units, largest first: a compound duration must list them in this
 * order and each at most once ("1h30m", never "30m1h" or "1s1s"). */
static const struct {
	const char *name;
	uint64_t ms;
} dur_units[] = {
	{"h", 3600000},
	{"m", 60000},
	{"s", 1000},
	{"ms", 1},
};
#define NDUR (sizeof(dur_units) / sizeof(dur_units[0]))

/* Index into dur_units of the unit at *sp; advances *sp.  -1 if none. */
static int dur_unit(const char **sp)
{
	const char *s = *sp;

	if (s[0] == 'm' && s[1] == 's') {
		*sp = s + 2;
		return 3;
	}
	switch (s[0]) {
	case 'h':
		*sp = s + 1;
		return 0;
	case 'm':
		*sp = s + 1;
		return 1;
	case 's':
		*sp = s + 1;
		return 2;
	}
	return -1;
}

int units_parse_duration(const char *s, uint64_t *ms)
{
	uint64_t total = 0;
	int next = 0; /* smallest dur_units index still allowed */

	if (!s || *s == '\0')
		return ERR_INVAL;
	while (*s) {
		uint64_t i, frac, scale, v;
		int u;

		if (parse_decimal(&s, &i, &frac, &scale) < 0)
			return ERR_INVAL;
		u = dur_unit(&s);
		if (u < next)
			return ERR_INVAL;
		next = u + 1;
		if (scale_exact(i, frac, scale, dur_units[u].ms, &v) < 0 ||
		    __builtin_add_overflow(total, v, &total))
			return ERR_INVAL;
	}
	*ms = total;
	return 0;
}

int units_parse_milli(const char *s, uint32_t *milli)
{
	uint64_t v = 0;
	int nfrac = 0;

	if (!s || *s < '0' || *s > '9')
		return ERR_INVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return ERR_INVAL;
	}
	if (*s == 'm' && s[1] == '\0') {
		*milli = (uint32_t)v;
		return 0;
	}
	if (*s == '.') {
		s++;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (++nfrac > 3)
				return ERR_INVAL;
			v = v * 10 + (uint64_t)(*s - '0');
		}
		if (nfrac == 0)
			return ERR_INVAL;
	}
	if (*s != '\0')
		return ERR_INVAL;
	for (; nfrac < 3; nfrac++)
		v *= 10;
	if (v > UINT32_MAX)
		return ERR_INVAL;
	*milli = (uint32_t)v;
	return 0;
}

void units_format_size(uint64_t bytes, char *buf, size_t len)
{
	int k = 0;

	/* The largest unit that divides exactly: an integer is always exact
	 * and reads back to the same number. */
	while (bytes != 0 && k < (int)sizeof(size_letters) - 1 && bytes % 1024 == 0) {
		bytes /= 1024;
		k++;
	}
	if (k == 0)
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%llu%c", (unsigned long long)bytes, size_letters[k - 1]);
}

/* "1", "1.5", "0.25": milli-units as a decimal without trailing zeros. */
static int fmt_thousandths(uint64_t v, char *buf, size_t len)
{
	unsigned f = (unsigned)(v % 1000);
	int w = 3;

	if (f == 0)
		return snprintf(buf, len, "%llu", (unsigned long long)(v / 1000));
	while (f % 10 == 0) {
		f /= 10;
		w--;
	}
	return snprintf(buf, len, "%llu.%0*u", (unsigned long long)(v / 1000), w, f);
}

void units_format_duration(uint64_t ms, char *buf, size_t len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, rest = ms % 60000;
	size_t off = 0;
	int n;

	if (!buf || len == 0)
		return;
	buf[0] = '\0';
	if (ms < 1000) {
		snprintf(buf, len, "%llums", (unsigned long long)ms);
		return;
	}
	if (h) {
		n = snprintf(buf, len, "%lluh", (unsigned long long)h);
		off = n > 0 ? (size_t)n : 0;
	}
	if (m && off < len) {
		n = snprintf(buf + off, len - off, "%llum", (unsigned long long)m);
		off += n > 0 ? (size_t)n : 0;
	}
	if (rest && off < len) {
		n = fmt_thousandths(rest, buf + off, len - off);
		off += n > 0 ? (size_t)n : 0;
		if (off < len)
			snprintf(buf + off, len - off, "s");
	}
}

void units_format_milli(uint32_t milli, char *buf, size_t len)
{
	if (!buf || len == 0)
		return;
	fmt_thousandths(milli, buf, len);
}
