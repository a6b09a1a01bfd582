/*
 * err.c - phrases for the error codes of err.h.
 */
#include "err.h"

const char *err_str(int err)
{
	switch (err) {
	case ERR_OK:
		return "success";
	case ERR_INVAL:
		return "invalid argument";
	case ERR_NOMEM:
		return "out of memory";
	case ERR_IO:
		return "input/output error";
	case ERR_NOENT:
		return "not found";
	case ERR_PROTO:
		return "protocol error";
	case ERR_TOOBIG:
		return "too big";
	case ERR_EXIST:
		return "already exists";
	case ERR_TIMEDOUT:
		return "timed out";
	case ERR_NOFIT:
		return "resources do not fit";
	case ERR_STATE:
		return "not allowed in the current state";
	case ERR_SYS:
		return "system call failed";
	case ERR_VERSION:
		return "version mismatch";
	case ERR_STORE:
		return "state store failure";
	case ERR_RUNC:
		return "runc failure";
	case ERR_NOTLEADER:
		return "not the leader";
	case ERR_FENCED:
		return "fenced: another master holds the leader key";
	case ERR_COMPACTED:
		return "revision compacted";
	case ERR_NOTSUP:
		return "not supported";
	case ERR_BUSY:
		return "over a rate limit";
	}
	return "unknown error";
}
