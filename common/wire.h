/*
 * wire.h - the mlsched wire protocol: a fixed binary header plus a JSON body.
 *
 * Frame (all integers big-endian), WIRE_HDR_LEN = 32 bytes:
 *
 *   0  u32 magic     "MLSC" (0x4d4c5343)
 *   4  u16 version   WIRE_VERSION
 *   6  u16 type      enum wire_type
 *   8  u32 flags     must be 0 in version 1
 *  12  u32 body_len  bytes after the header; <= WIRE_MAX_BODY
 *  16  u64 seq       sender's sequence number
 *  24  u64 sender    sender id (wire_sender_id() of a node name, 0 for mlctl)
 *  32  body          a UTF-8 JSON object
 *
 * wire_decode() checks every header field, that the frame length equals
 * WIRE_HDR_LEN + body_len, that the body is a JSON object, and that the
 * fields the type requires are present with the right JSON type (see the
 * table in wire.c).  Callers then read fields through the wire_get_*()
 * accessors, which check ranges and lengths.  Nothing here touches nng, so
 * the codec is testable on plain buffers.
 */
#ifndef MLSCHED_WIRE_H
#define MLSCHED_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <cjson/cJSON.h>

#define WIRE_MAGIC 0x4d4c5343u
#define WIRE_VERSION 1
#define WIRE_HDR_LEN 32
#define WIRE_MAX_BODY (8u * 1024 * 1024)
#define WIRE_MAX_STR 4096 /* default limit for wire_get_str */

enum wire_type {
	/* mlctl -> master requests */
	WIRE_SUBMIT = 1, /* {spec: {...}}                    -> {id, name}        */
	WIRE_LIST = 2,   /* {all?: bool}                     -> {jobs: [...]}     */
	WIRE_STATUS = 3, /* {job: "name or id"}              -> {job: {...}}      */
	WIRE_CANCEL = 4, /* {job}                            -> {id, state}       */
	WIRE_NODES = 5,  /* {}                               -> {nodes: [...]}    */
	WIRE_LOGS = 6,   /* {job, task: n, offset: n, max: n} -> {data(base64), offset, eof, done} */
	WIRE_DRAIN = 7,  /* {node, evict?: bool}             -> {node, state}     */
	WIRE_UNCORDON = 8, /* {node}                         -> {node, state}     */
	WIRE_ENDPOINTS = 9, /* {job}                         -> {job, version, endpoints: ["host:port"]} */
	WIRE_SCALE = 10,   /* {job, replicas, standby?}       -> {job, replicas, standby} */
	WIRE_ROLLOUT = 11, /* {job, image?, command?, env?}   -> {job, version}    */
	WIRE_ROLLBACK = 12, /* {job, to?}                    -> {job, version}    */
	WIRE_HISTORY = 13, /* {job}                          -> {job, version, versions, history} */
	WIRE_TOP = 14,     /* {jobs?: n}                     -> {nodes: [...], jobs: [...]} (utilization) */
	WIRE_POOLS = 20,   /* {pool?: name}                  -> {pools: [...]} or {pool: {...}} */
	/* master -> mlctl replies */
	WIRE_OK = 16,    /* body depends on the request */
	WIRE_ERROR = 17, /* {code: int, message: "..."} */
	/* more mlctl -> master requests (1..14 and 20 above; 15 and 18 unused) */
	WIRE_QUEUES = 19,  /* {}                             -> {configured, half_life_ms, queues: [...]} */
	/* agent <-> master */
	WIRE_SYNC = 32,   /* agent -> master: {node, capacity, util, ack, events[], tasks[]} */
	WIRE_ORDERS = 33, /* master -> agent: {ack, orders[]} */
	/* mlctl -> master, key management (40+) */
	WIRE_NODE_REMOVE = 40, /* {node} -> {node, state: "removed", tasks_moved, already} */
};

struct wire_hdr {
	uint16_t version;
	uint16_t type;
	uint32_t flags;
	uint32_t body_len;
	uint64_t seq;
	uint64_t sender;
};

/* True for the types listed above. */
bool wire_type_known(uint16_t type);
const char *wire_type_str(uint16_t type); /* "submit", ... or "unknown" */

/* 64-bit FNV-1a of a node name, never 0. */
uint64_t wire_sender_id(const char *name);

/*
 * Encode a frame.  body may be NULL (an empty object is sent).  On success
 * *out is a malloc'd buffer of *outlen bytes that the caller frees.  Returns
 * ERR_TOOBIG when the body exceeds WIRE_MAX_BODY, ERR_INVAL for an unknown
 * type.
 */
int wire_encode(uint16_t type, uint64_t seq, uint64_t sender, const cJSON *body, uint8_t **out,
		size_t *outlen);

/*
 * Decode and validate a frame.  On success fills *h and sets *body to a new
 * cJSON object the caller deletes.  Errors: ERR_PROTO (bad magic, flags,
 * length mismatch, not JSON, not an object, a required field missing or of
 * the wrong type), ERR_VERSION, ERR_TOOBIG.  why (may be NULL) gets a short
 * reason for the log.  Never reads beyond len.
 */
int wire_decode(const uint8_t *buf, size_t len, struct wire_hdr *h, cJSON **body, char *why,
		size_t whylen);

/*
 * Field accessors for decoded bodies.  Each returns 0 and sets *out, or
 * ERR_NOENT when the key is absent (and out is untouched), or ERR_PROTO when
 * the value has the wrong type or is out of range.  Strings must be at most
 * maxlen bytes and contain no NUL; integers must be whole numbers within
 * [min, max] (JSON numbers are doubles: values beyond 2^53 are refused).
 */
int wire_get_str(const cJSON *obj, const char *key, size_t maxlen, const char **out);
int wire_get_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *out);
int wire_get_u64(const cJSON *obj, const char *key, uint64_t max, uint64_t *out);
int wire_get_bool(const cJSON *obj, const char *key, bool *out);
/* Arrays and objects: *out points into obj (not a copy). */
int wire_get_array(const cJSON *obj, const char *key, size_t maxitems, const cJSON **out);
int wire_get_object(const cJSON *obj, const char *key, const cJSON **out);

/* Orders and events are numbered ("seq") and acknowledged cumulatively:
 * remove from array every item whose seq is <= ack. */
void wire_drop_acked(cJSON *array, uint64_t ack);

/* Build an error reply body: {code, message}. */
cJSON *wire_error_body(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
