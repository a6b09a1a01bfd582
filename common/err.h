/*
 * err.h - error codes shared by every mlsched module.
 *
 * Functions return 0 on success or one of the negative codes below; results
 * travel through out-pointers.  err_str() gives a short English phrase for a
 * code, never NULL.
 */
#ifndef MLSCHED_ERR_H
#define MLSCHED_ERR_H

enum {
	ERR_OK = 0,
	ERR_INVAL = -1,    /* bad input: a malformed value, a missing field */
	ERR_NOMEM = -2,    /* kept for completeness: allocation failure aborts */
	ERR_IO = -3,       /* a file or socket operation failed */
	ERR_NOENT = -4,    /* no such job, task, node or key */
	ERR_PROTO = -5,    /* a message broke the wire protocol */
	ERR_TOOBIG = -6,   /* a length beyond a named limit */
	ERR_EXIST = -7,    /* already exists */
	ERR_TIMEDOUT = -8, /* no answer in time */
	ERR_NOFIT = -9,    /* resources do not fit */
	ERR_STATE = -10,   /* operation not allowed in the current state */
	ERR_SYS = -11,     /* a system call failed; errno has more */
	ERR_VERSION = -12, /* wrong protocol or plugin version */
	ERR_STORE = -13,   /* the state store failed */
	ERR_RUNC = -14,    /* runc reported a failure */
	ERR_NOTLEADER = -30, /* a follower master: the reply names the leader */
	ERR_FENCED = -15,  /* a store write lost the leader key (store_fence) */
	ERR_COMPACTED = -16, /* a store watch's start revision was compacted away */
	ERR_NOTSUP = -17,  /* the operation is not supported here (sqlite store: no leases) */
	ERR_BUSY = -18,    /* over a rate limit: retry later */
};

/* A short phrase for an error code ("invalid argument"); never NULL. */
const char *err_str(int err);

#endif
