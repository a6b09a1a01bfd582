/*
 * fuzz.h - helpers shared by the libFuzzer harnesses in tests/fuzz/.
 *
 * struct fz is a cursor over the fuzzer's input, in the spirit of LLVM's
 * FuzzedDataProvider: harnesses that build structured input (a frame to
 * seal, a JSON spec) take their choices from it, a byte at a time, and every
 * read past the end yields zeros, so any input is a valid program.
 * FZ_CHECK is an invariant of the code under test: when it fails the harness
 * aborts, which libFuzzer reports as a crash with the input that caused it.
 */
#ifndef MLSCHED_FUZZ_H
#define MLSCHED_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fz {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fz_u8(struct fz *f)
{
	uint8_t v;

	if (f->n == 0)
		return 0;
	v = *f->p++;
	f->n--;
	return v;
}

static inline uint64_t fz_uint(struct fz *f, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v = v << 8 | fz_u8(f);
	return v;
}

/* A value in [0, n) (n > 0; n <= 256 takes one byte). */
static inline unsigned fz_pick(struct fz *f, unsigned n)
{
	return n <= 256 ? fz_u8(f) % n : (unsigned)(fz_uint(f, 2) % n);
}

/* Up to max bytes as a NUL-terminated string in buf (max + 1 bytes): the
 * length byte first, then the bytes (NULs kept out so C strings stay whole). */
static inline const char *fz_str(struct fz *f, char *buf, size_t max)
{
	size_t len = fz_u8(f) % (max + 1), i;

	for (i = 0; i < len && f->n; i++) {
		char c = (char)fz_u8(f);

		buf[i] = c ? c : '0';
	}
	buf[i] = '\0';
	return buf;
}

#define FZ_CHECK(cond)                                                                            \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,      \
				#cond);                                                           \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

#endif
