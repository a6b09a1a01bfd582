/*
 * units.h - byte sizes, durations and milli-quantities as users write them.
 *
 * Sizes are binary: "512" bytes, "64K"/"64Ki"/"64KiB" = 65536, "8M", "8G",
 * "1.5G", "2T".  Lower-case suffixes are accepted too.  Durations need a
 * unit: "500ms", "2s", "1.5s", "1m", "2h", "1m30s".  Milli-quantities (GPU and
 * CPU counts) are "2" -> 2000, "0.25" -> 250, "500m" -> 500.
 * All parsers reject empty strings, signs, trailing garbage and overflow.
 */
#ifndef MLSCHED_UNITS_H
#define MLSCHED_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* 0 or ERR_INVAL. */
int units_parse_size(const char *s, uint64_t *bytes);
int units_parse_duration(const char *s, uint64_t *ms);
/* At most three decimals ("0.0005" is ERR_INVAL); result must fit uint32. */
int units_parse_milli(const char *s, uint32_t *milli);

/* Shortest exact form where possible: 8589934592 -> "8G", 1536M -> "1536M",
 * 1000 -> "1000".  Writes into buf (>= 24 bytes). */
void units_format_size(uint64_t bytes, char *buf, size_t len);
/* 1500 -> "1.5s", 250 -> "250ms", 90000 -> "1m30s". */
void units_format_duration(uint64_t ms, char *buf, size_t len);
/* 2000 -> "2", 250 -> "0.25". */
void units_format_milli(uint32_t milli, char *buf, size_t len);

#endif
