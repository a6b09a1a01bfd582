/*
 * store_etcd.c - the state store in etcd, through its v3 JSON gateway.
 *
 * REQUESTS.  Every op is one HTTP POST of a JSON body to /v3/kv/..., /v3/lease/...
 * on one reused libcurl easy handle (so the TCP connection stays open between
 * calls); keys and values travel base64-encoded, int64s as JSON strings.  Each
 * store key is stored under the URI's prefix ("/mlsched/" + "jobs/1"), and
 * list and watch strip it back.  A request may take ETCD_CONNECT_MS to
 * connect and ETCD_REQUEST_MS in all, per endpoint.  The header revision of
 * each answer is kept for store_revision().
 *
 * FAILOVER.  The URI lists one or more endpoints; requests go to the current
 * one.  On a connection error, a timeout, or etcd's "unavailable" (a member
 * without a leader), the request is sent again to the next endpoint, round
 * robin, each failover logged, until every endpoint has been tried once; then
 * the op fails with ERR_STORE ("no etcd endpoint answered").  The endpoint
 * that answered stays current.  A put retried after a timeout may have been
 * applied already: puts and deletes are idempotent, and store.h says what
 * that means for a campaign.
 *
 * TRANSACTIONS.  store_begin() starts a buffer; puts and deletes go into it,
 * sorted by key with the last write per key winning (etcd refuses a txn that
 * names a key twice), and get and list read through it.  store_commit() sends
 * the buffer as ONE /v3/kv/txn, so it applies atomically, and durably (etcd
 * commits through its fsync'd raft log) when it returns 0.  A commit over
 * etcd's --max-txn-ops or --max-request-bytes fails with ERR_TOOBIG and a log
 * line naming the flag; it is never split.
 *
 * FENCING.  store_fence(key, val) adds the compare value(prefix+key) == val
 * to every later transaction, and sends single puts and deletes as a
 * one-operation transaction with the same compare.  When the compare fails,
 * etcd applies nothing and the op returns ERR_FENCED: a master that lost the
 * leader key cannot overwrite the new leader's state, even with a request that
 * was delayed in the network.
 *
 * WATCH.  store_watch_start() opens a streaming POST /v3/watch on its own easy
 * handle inside a curl multi handle; store_watch_poll() drives it with
 * curl_multi_perform (never blocking) and appends what arrived to a buffer.
 * The gateway writes one JSON object per watch message followed by a newline,
 * and a message can be split across reads (a 10 MB value surely is), so the
 * buffer is cut at newlines only: each whole line is parsed and its events
 * handed to the callback; the incomplete tail waits for the next poll.  The
 * stream ends only by a failure: then poll returns ERR_STORE (ERR_COMPACTED
 * when etcd canceled the watch because its start revision was compacted) and
 * the caller starts it again.  A watch that could not connect moves the
 * current endpoint on, so that restart tries the next one.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "err.h"
#include "log.h"
#include "util.h"
#include "store/store.h"

#define ETCD_CONNECT_MS 500	    /* connect timeout per endpoint */
#define ETCD_REQUEST_MS 2000	    /* whole request timeout per endpoint */
#define ETCD_PAGE 1000		    /* keys per range request of a list */
#define ETCD_MAX_ENDPOINTS 16	    /* endpoints in one URI */
#define ETCD_HOST_MAX 256	    /* one "host:port" */
#define ETCD_PREFIX_MAX 256	    /* the key prefix */
#define ETCD_ANSWER_MAX (64u << 20) /* one response body, one watch message */
#define ETCD_DEFAULT_PREFIX "/mlsched/"
#define ETCD_GRPC_UNAVAILABLE 14

struct buf {
	char *p;
	size_t len, cap;
};

/* A buffered write of a transaction: key is the full key (with prefix). */
struct op {
	char *key;
	char *val;
	size_t len;
	bool del;
};

enum watch_state { WATCH_NONE, WATCH_RUNNING, WATCH_BROKEN, WATCH_COMPACTED };

struct etcd_store {
	struct store base; /* first: store.h hands this out as a struct store */
	char *ep[ETCD_MAX_ENDPOINTS];
	int nep, cur;
	char *prefix; /* ends with '/' */
	size_t plen;
	CURL *curl;
	struct curl_slist *hdrs;
	struct buf answer;
	char errbuf[CURL_ERROR_SIZE];
	int64_t rev; /* header revision of the last answer */

	bool in_txn;
	struct op *ops; /* sorted by key */
	size_t nops, capops;

	char *fence_key; /* full key, NULL: no fence */
	char *fence_val;
	size_t fence_len;

	CURLM *multi;
	CURL *wcurl;
	struct buf wbuf;
	size_t wscan; /* bytes of wbuf known to hold no newline */
	enum watch_state wstate;
	int wep; /* endpoint the watch went to */
	int64_t wfrom;
	bool wpolling;
	char werrbuf[CURL_ERROR_SIZE];
};

static struct etcd_store *to_etcd(struct store *st)
{
	return (struct etcd_store *)st;
}

/* ---- small helpers ---- */

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with padding; the caller frees the result. */
static char *b64enc(const void *data, size_t n)
{
	const unsigned char *p = data;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = b64chars[(v >> 6) & 63];
		*o++ = b64chars[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);

		*o++ = b64chars[v >> 18];
		*o++ = b64chars[(v >> 12) & 63];
		*o++ = i + 1 < n ? b64chars[(v >> 6) & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

static int b64val(char c)
{
	const char *at = c ? strchr(b64chars, c) : NULL;

	return at ? (int)(at - b64chars) : -1;
}

/* Decode base64 (NULL decodes as empty) into a malloc'd, NUL-terminated
 * buffer.  0 or ERR_PROTO. */
static int b64dec(const char *s, char **out, size_t *len)
{
	size_t n = s ? strlen(s) : 0, k = 0;
	char *buf = xmalloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		int v;

		if (s[i] == '=')
			break;
		if ((v = b64val(s[i])) < 0) {
			free(buf);
			return ERR_PROTO;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[k++] = (char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	buf[k] = '\0';
	*out = buf;
	*len = k;
	return 0;
}

/* An int64 field: the gateway writes them as strings; absent is 0. */
static int64_t jint(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsString(v))
		return strtoll(v->valuestring, NULL, 10);
	if (cJSON_IsNumber(v))
		return (int64_t)v->valuedouble;
	return 0;
}

static const char *jstr(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void add_b64(cJSON *o, const char *name, const void *p, size_t n)
{
	char *e = b64enc(p, n);

	cJSON_AddStringToObject(o, name, e);
	free(e);
}

static void add_i64(cJSON *o, const char *name, int64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRId64, v);
	cJSON_AddStringToObject(o, name, num);
}

/* Print and free a request body. */
static char *print_free(cJSON *j)
{
	char *s = cJSON_PrintUnformatted(j);

	if (!s) {
		fprintf(stderr, "store: out of memory printing an etcd request\n");
		abort();
	}
	cJSON_Delete(j);
	return s;
}

static char *full_key(const struct etcd_store *s, const char *key)
{
	return xasprintf("%s%s", s->prefix, key);
}

/*
 * The end of the range holding every key that starts with full (n bytes):
 * drop trailing 0xff bytes and add one to the last byte.  When none is left
 * the range has no end: etcd spells that "\0" (every key >= the start).
 * Returns a malloc'd buffer and its length in *len.
 */
static char *range_end(const char *full, size_t n, size_t *len)
{
	char *end = xmalloc(n + 1);

	memcpy(end, full, n);
	while (n > 0 && (unsigned char)end[n - 1] == 0xff)
		n--;
	if (n == 0) {
		end[0] = '\0';
		*len = 1;
		return end;
	}
	end[n - 1] = (char)((unsigned char)end[n - 1] + 1);
	*len = n;
	return end;
}

/* ---- requests ---- */

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (b->len + size * n > ETCD_ANSWER_MAX)
		return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
	buf_add(b, ptr, size * n);
	return size * n;
}

static bool is_failover(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
	       rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_GOT_NOTHING ||
	       rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR;
}

/* Map an error answer to an err.h code, and log it with etcd's message and
 * what to do about it. */
static int answer_error(struct etcd_store *s, const char *ep, const char *path, long http,
			const cJSON *j)
{
	const char *msg = NULL, *hint = "";
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	int rv = ERR_STORE;

	if (cJSON_IsObject(err)) /* a stream's error */
		msg = jstr(err, "message");
	if (!msg)
		msg = jstr(j, "message");
	if (!msg)
		msg = jstr(j, "error");
	if (!msg || !*msg)
		msg = s->answer.len ? s->answer.p : "no message";
	if (strstr(msg, "too many operations in txn request")) {
		rv = ERR_TOOBIG;
		hint = ": start etcd with a larger --max-txn-ops (mlsched needs --max-txn-ops "
		       "10000); a commit is never split";
	} else if (strstr(msg, "request is too large") ||
		   strstr(msg, "received message larger than max")) {
		rv = ERR_TOOBIG;
		hint = ": start etcd with a larger --max-request-bytes (mlsched needs "
		       "--max-request-bytes 10485760)";
	} else if (strstr(msg, "lease not found")) {
		rv = ERR_NOENT;
	} else if (strstr(msg, "compacted")) {
		rv = ERR_COMPACTED;
	}
	if (rv == ERR_NOENT)
		log_warn("store: etcd %s%s: %s", ep, path, msg);
	else
		log_error("store: etcd %s%s failed (HTTP %ld): %.300s%s", ep, path, http, msg,
			  hint);
	return rv;
}

/*
 * POST body to path on the current endpoint, failing over as the top of this
 * file says.  On success *out is the parsed answer (the first JSON object of
 * it), which the caller frees with cJSON_Delete.
 */
static int call(struct etcd_store *s, const char *path, const char *body, cJSON **out)
{
	char last[1024] = ""; /* "ep: why; ep: why" of every endpoint tried */
	size_t used = 0;

	*out = NULL;
	for (int tries = 0; tries < s->nep; tries++) {
		const char *ep = s->ep[s->cur];
		char url[ETCD_HOST_MAX + 64];
		const char *why;
		cJSON *j = NULL, *err;
		long http = 0;
		CURLcode rc;

		snprintf(url, sizeof(url), "http://%s%s", ep, path);
		s->answer.len = 0;
		s->errbuf[0] = '\0';
		curl_easy_setopt(s->curl, CURLOPT_URL, url);
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		rc = curl_easy_perform(s->curl);
		why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc);
		if (rc == CURLE_OK) {
			curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &http);
			j = cJSON_ParseWithLengthOpts(s->answer.p ? s->answer.p : "", s->answer.len,
						      NULL, false);
			if (!j) {
				log_error("store: etcd %s%s: unreadable answer (HTTP %ld): %.200s",
					  ep, path, http, s->answer.len ? s->answer.p : "(empty)");
				return ERR_STORE;
			}
			err = cJSON_GetObjectItemCaseSensitive(j, "error");
			if (http == 200 && !cJSON_IsObject(err) &&
			    !(cJSON_IsString(err) && *err->valuestring)) {
				const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "header");

				if (h && jint(h, "revision") > 0)
					s->rev = jint(h, "revision");
				*out = j;
				return 0;
			}
			if (jint(j, "code") != ETCD_GRPC_UNAVAILABLE) {
				int rv = answer_error(s, ep, path, http, j);

				cJSON_Delete(j);
				return rv;
			}
			why = jstr(j, "message") ? jstr(j, "message") : "unavailable";
		} else if (!is_failover(rc)) {
			log_error("store: etcd %s%s failed: %s", ep, path, why);
			return ERR_STORE;
		}
		if (used < sizeof(last))
			used += (size_t)snprintf(last + used, sizeof(last) - used, "%s%s: %s",
						 used ? "; " : "", ep, why);
		if (tries + 1 < s->nep)
			log_warn("store: etcd %s unreachable (%s): trying %s", ep, why,
				 s->ep[(s->cur + 1) % s->nep]);
		cJSON_Delete(j);
		s->cur = (s->cur + 1) % s->nep;
	}
	log_error("store: no etcd endpoint answered: %s", last);
	return ERR_STORE;
}

/* call() that builds the body from j (and frees j). */
static int call_json(struct etcd_store *s, const char *path, cJSON *j, cJSON **out)
{
	char *body = print_free(j);
	int rv = call(s, path, body, out);

	free(body);
	return rv;
}

/* ---- open and close ---- */

static void etcd_watch_stop(struct store *st);

static void etcd_close(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	if (!s)
		return;
	if (s->in_txn)
		log_warn("store: closing the etcd store %s%s inside a transaction; it is rolled "
			 "back",
			 s->nep ? s->ep[0] : "", s->prefix ? s->prefix : "");
	etcd_watch_stop(st);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	for (size_t i = 0; i < s->nops; i++) {
		free(s->ops[i].key);
		free(s->ops[i].val);
	}
	free(s->ops);
	if (s->curl)
		curl_easy_cleanup(s->curl);
	curl_slist_free_all(s->hdrs);
	for (int i = 0; i < s->nep; i++)
		free(s->ep[i]);
	free(s->answer.p);
	free(s->wbuf.p);
	free(s->prefix);
	free(s->fence_key);
	free(s->fence_val);
	free(s);
}

/* "HOST:PORT" with a port of 1..65535. */
static bool endpoint_ok(const char *ep)
{
	const char *colon = strrchr(ep, ':');
	char *end;
	long port;

	if (!colon || colon == ep || strlen(ep) >= ETCD_HOST_MAX)
		return false;
	port = strtol(colon + 1, &end, 10);
	return colon[1] && *end == '\0' && port > 0 && port < 65536 && isdigit(colon[1]);
}

static int parse_uri(struct etcd_store *s, const char *arg)
{
	const char *p = arg + 2, *slash;
	char *hosts, *save;

	if (strncmp(arg, "//", 2) != 0) {
		log_error("store: etcd store \"etcd:%s\": write etcd://HOST:PORT[,HOST:PORT...]"
			  "[/PREFIX/]",
			  arg);
		return ERR_INVAL;
	}
	slash = strchr(p, '/');
	hosts = slash ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
	save = hosts;
	for (char *h = strsep(&save, ","); h; h = strsep(&save, ",")) {
		if (!endpoint_ok(h) || s->nep == ETCD_MAX_ENDPOINTS) {
			log_error("store: etcd store \"etcd:%s\": %s%s", arg,
				  s->nep == ETCD_MAX_ENDPOINTS ? "too many endpoints: " : "",
				  s->nep == ETCD_MAX_ENDPOINTS ? "16 at most"
							       : "each endpoint is HOST:PORT");
			free(hosts);
			return ERR_INVAL;
		}
		s->ep[s->nep++] = xstrdup(h);
	}
	free(hosts);
	if (s->nep == 0) {
		log_error("store: etcd store \"etcd:%s\" names no endpoint", arg);
		return ERR_INVAL;
	}
	if (!slash || !slash[1])
		s->prefix = xstrdup(slash ? "/" : ETCD_DEFAULT_PREFIX);
	else if (slash[strlen(slash) - 1] == '/')
		s->prefix = xstrdup(slash);
	else
		s->prefix = xasprintf("%s/", slash);
	s->plen = strlen(s->prefix);
	if (s->plen >= ETCD_PREFIX_MAX) {
		log_error("store: etcd key prefix of %zu bytes; %d at most", s->plen,
			  ETCD_PREFIX_MAX - 1);
		return ERR_INVAL;
	}
	return 0;
}

static int etcd_open(const char *arg, struct store **out)
{
	struct etcd_store *s = xcalloc(1, sizeof(*s));
	cJSON *j = NULL, *ans = NULL;
	int rv;

	*out = NULL;
	s->base.ops = &store_etcd_ops;
	if ((rv = parse_uri(s, arg)) != 0)
		goto out;
	/* Thread-safe and reference-counted in the curl we need (7.84+). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(s->curl = curl_easy_init())) {
		log_error("store: cannot initialise libcurl");
		rv = ERR_STORE;
		goto out;
	}
	s->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	/* Without this curl waits up to a second for "100 Continue" before
	 * sending a large body. */
	s->hdrs = curl_slist_append(s->hdrs, "Expect:");
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)ETCD_CONNECT_MS);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)ETCD_REQUEST_MS);
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &s->answer);
	curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http");
#endif
	/* Ask for the prefix key itself: proves an endpoint answers, and
	 * gives the first revision. */
	j = cJSON_CreateObject();
	add_b64(j, "key", s->prefix, s->plen);
	cJSON_AddBoolToObject(j, "count_only", true);
	if ((rv = call_json(s, "/v3/kv/range", j, &ans)) != 0)
		goto out;
	log_debug(LOG_SUB_STORE,
		  "store: opened etcd %s (%d endpoints, prefix %s, revision %" PRId64 ")",
		  s->ep[s->cur], s->nep, s->prefix, s->rev);
	*out = &s->base;
	s = NULL;
out:
	cJSON_Delete(ans);
	etcd_close(s ? &s->base : NULL);
	return rv;
}

/* ---- the transaction buffer ---- */

/* Index of key in ops, or where it would go; *found says which. */
static size_t op_find(const struct etcd_store *s, const char *key, bool *found)
{
	size_t lo = 0, hi = s->nops;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->ops[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Buffer a put (val) or a delete (del); full is taken over. */
static void op_add(struct etcd_store *s, char *full, const void *val, size_t len, bool del)
{
	bool found;
	size_t i = op_find(s, full, &found);
	struct op *o;

	if (found) {
		o = &s->ops[i];
		free(full);
		free(o->val);
	} else {
		if (s->nops == s->capops) {
			s->capops = s->capops ? s->capops * 2 : 64;
			s->ops = xrealloc(s->ops, s->capops * sizeof(*s->ops));
		}
		memmove(&s->ops[i + 1], &s->ops[i], (s->nops - i) * sizeof(*s->ops));
		s->nops++;
		o = &s->ops[i];
		o->key = full;
	}
	o->del = del;
	o->len = del ? 0 : len;
	o->val = xmalloc(o->len + 1);
	if (o->len)
		memcpy(o->val, val, o->len);
	o->val[o->len] = '\0';
}

static void ops_clear(struct etcd_store *s)
{
	for (size_t i = 0; i < s->nops; i++) {
		free(s->ops[i].key);
		free(s->ops[i].val);
	}
	s->nops = 0;
	s->in_txn = false;
}

static cJSON *op_json(const char *full, const void *val, size_t len, bool del)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *r = cJSON_AddObjectToObject(o, del ? "request_delete_range" : "request_put");

	add_b64(r, "key", full, strlen(full));
	if (!del)
		add_b64(r, "value", val, len);
	return o;
}

/*
 * Send success as one txn, guarded by the fence when there is one.
 * ERR_FENCED when the fence's compare failed; what names the op in logs.
 */
static int txn(struct etcd_store *s, cJSON *success, size_t nops, const char *what)
{
	cJSON *j = cJSON_CreateObject(), *ans = NULL;
	int rv;

	if (s->fence_key) {
		cJSON *cmp = cJSON_AddArrayToObject(j, "compare");
		cJSON *c = cJSON_CreateObject();

		add_b64(c, "key", s->fence_key, strlen(s->fence_key));
		cJSON_AddStringToObject(c, "target", "VALUE");
		cJSON_AddStringToObject(c, "result", "EQUAL");
		add_b64(c, "value", s->fence_val, s->fence_len);
		cJSON_AddItemToArray(cmp, c);
	}
	cJSON_AddItemToObject(j, "success", success);
	if ((rv = call_json(s, "/v3/kv/txn", j, &ans)) != 0) {
		if (rv == ERR_TOOBIG)
			log_error("store: etcd %s of %zu operations refused as too big", what,
				  nops);
		return rv;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "succeeded"))) {
		log_error("store: etcd %s of %zu operations not applied: fenced: the leader key %s "
			  "no longer holds this master's id",
			  what, nops, s->fence_key ? s->fence_key : "(none)");
		rv = ERR_FENCED;
	}
	cJSON_Delete(ans);
	return rv;
}

/* One put or delete now, outside a transaction. */
static int write_one(struct etcd_store *s, const char *key, const void *val, size_t len, bool del)
{
	char *full = full_key(s, key);
	cJSON *j, *ans = NULL;
	int rv;

	if (s->fence_key) {
		cJSON *ops = cJSON_CreateArray();

		cJSON_AddItemToArray(ops, op_json(full, val, len, del));
		rv = txn(s, ops, 1, del ? "delete" : "put");
	} else {
		j = cJSON_CreateObject();
		add_b64(j, "key", full, strlen(full));
		if (!del)
			add_b64(j, "value", val, len);
		rv = call_json(s, del ? "/v3/kv/deleterange" : "/v3/kv/put", j, &ans);
		cJSON_Delete(ans);
	}
	free(full);
	return rv;
}

/* ---- the basic ops ---- */

static int etcd_begin(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	if (s->in_txn) {
		log_error("store: begin inside a transaction (etcd prefix %s)", s->prefix);
		return ERR_STATE;
	}
	s->in_txn = true;
	return 0;
}

/* Whatever happens, the caller ends up outside a transaction; on failure
 * nothing was applied (etcd applies a txn whole or not at all). */
static int etcd_commit(struct store *st)
{
	struct etcd_store *s = to_etcd(st);
	cJSON *success;
	int rv;

	if (!s->in_txn) {
		log_error("store: commit without a transaction (etcd prefix %s)", s->prefix);
		return ERR_STATE;
	}
	/* Nothing to write: only a fenced commit has something to check. */
	if (s->nops == 0 && !s->fence_key) {
		s->in_txn = false;
		return 0;
	}
	success = cJSON_CreateArray();
	for (size_t i = 0; i < s->nops; i++)
		cJSON_AddItemToArray(
		    success, op_json(s->ops[i].key, s->ops[i].val, s->ops[i].len, s->ops[i].del));
	rv = txn(s, success, s->nops, "commit");
	ops_clear(s);
	return rv;
}

static int etcd_rollback(struct store *st)
{
	ops_clear(to_etcd(st));
	return 0;
}

static int etcd_put(struct store *st, const char *key, const void *val, size_t len)
{
	struct etcd_store *s = to_etcd(st);

	if (s->in_txn) {
		op_add(s, full_key(s, key), val, len, false);
		return 0;
	}
	return write_one(s, key, val, len, false);
}

static int etcd_del(struct store *st, const char *key)
{
	struct etcd_store *s = to_etcd(st);

	if (s->in_txn) {
		op_add(s, full_key(s, key), NULL, 0, true);
		return 0;
	}
	return write_one(s, key, NULL, 0, true);
}

/* The value of the first kv of a range answer, decoded; ERR_NOENT if none. */
static int first_value(const cJSON *range, char **val, size_t *len)
{
	const cJSON *kvs = cJSON_GetObjectItemCaseSensitive(range, "kvs");
	const cJSON *kv = cJSON_IsArray(kvs) ? cJSON_GetArrayItem(kvs, 0) : NULL;

	if (!kv)
		return ERR_NOENT;
	return b64dec(jstr(kv, "value"), val, len);
}

static int etcd_get(struct store *st, const char *key, void **val, size_t *len)
{
	struct etcd_store *s = to_etcd(st);
	char *full = full_key(s, key), *v = NULL;
	cJSON *j, *ans = NULL;
	size_t n = 0;
	bool found = false;
	int rv;

	if (s->in_txn) {
		size_t i = op_find(s, full, &found);

		if (found) {
			rv = s->ops[i].del ? ERR_NOENT : 0;
			if (rv == 0) {
				n = s->ops[i].len;
				v = xmalloc(n + 1);
				memcpy(v, s->ops[i].val, n + 1);
			}
			goto out;
		}
	}
	j = cJSON_CreateObject();
	add_b64(j, "key", full, strlen(full));
	if ((rv = call_json(s, "/v3/kv/range", j, &ans)) != 0)
		goto out;
	if ((rv = first_value(ans, &v, &n)) == ERR_PROTO)
		log_error("store: etcd answered a value of key %s that is not base64", full);
out:
	if (rv == 0) {
		*val = v;
		*len = n;
	}
	cJSON_Delete(ans);
	free(full);
	return rv;
}

/*
 * List in pages of ETCD_PAGE keys, all read at the revision of the first
 * page (one snapshot), merged with the transaction's buffered writes under
 * the prefix; those are copied first, since the callback may write more.
 */
static int etcd_list(struct store *st, const char *prefix, store_list_cb cb, void *arg)
{
	struct etcd_store *s = to_etcd(st);
	char *full = full_key(s, prefix), *end, *cursor;
	size_t flen = strlen(full), elen, clen, npend = 0, ip = 0;
	struct op *pend = NULL;
	int64_t snap = 0;
	bool more = true;
	int rv = 0;

	end = range_end(full, flen, &elen);
	cursor = xstrdup(full);
	clen = flen;
	if (s->in_txn) {
		bool found;
		size_t i = op_find(s, full, &found);

		pend = xcalloc(s->nops - i + 1, sizeof(*pend));
		for (; i < s->nops && strncmp(s->ops[i].key, full, flen) == 0; i++) {
			pend[npend] = s->ops[i];
			pend[npend].key = xstrdup(s->ops[i].key);
			pend[npend].val = xmalloc(s->ops[i].len + 1);
			memcpy(pend[npend].val, s->ops[i].val, s->ops[i].len + 1);
			npend++;
		}
	}
	while (more && rv == 0) {
		cJSON *j = cJSON_CreateObject(), *ans = NULL, *kv;
		const cJSON *kvs;

		add_b64(j, "key", cursor, clen);
		add_b64(j, "range_end", end, elen);
		add_i64(j, "limit", ETCD_PAGE);
		if (snap)
			add_i64(j, "revision", snap);
		if ((rv = call_json(s, "/v3/kv/range", j, &ans)) != 0)
			break;
		if (!snap)
			snap = s->rev;
		more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "more"));
		kvs = cJSON_GetObjectItemCaseSensitive(ans, "kvs");
		cJSON_ArrayForEach(kv, kvs)
		{
			char *k = NULL, *v = NULL;
			size_t klen = 0, vlen = 0;
			int c = 1;

			if (b64dec(jstr(kv, "key"), &k, &klen) != 0 ||
			    b64dec(jstr(kv, "value"), &v, &vlen) != 0 || klen < flen) {
				log_error("store: etcd list of %s: malformed key or value", full);
				rv = ERR_PROTO;
			}
			/* Buffered writes that sort before this key, or replace it. */
			while (rv == 0 && ip < npend && (c = strcmp(pend[ip].key, k)) <= 0) {
				if (!pend[ip].del)
					rv = cb(pend[ip].key + s->plen, pend[ip].val, pend[ip].len,
						arg);
				ip++;
				if (c == 0)
					break;
			}
			if (rv == 0 && c != 0)
				rv = cb(k + s->plen, v, vlen, arg);
			free(cursor);
			cursor = k;
			clen = klen + 1; /* the last key + "\0": the next page starts after it */
			free(v);
			if (rv != 0)
				break;
		}
		cJSON_Delete(ans);
	}
	for (; rv == 0 && ip < npend; ip++)
		if (!pend[ip].del)
			rv = cb(pend[ip].key + s->plen, pend[ip].val, pend[ip].len, arg);
	if (snap)
		s->rev = snap;
	for (size_t i = 0; i < npend; i++) {
		free(pend[i].key);
		free(pend[i].val);
	}
	free(pend);
	free(cursor);
	free(end);
	free(full);
	return rv;
}

/* ---- fencing, leases, campaign, revision ---- */

static int etcd_fence(struct store *st, const char *key, const void *val, size_t len)
{
	struct etcd_store *s = to_etcd(st);

	if (s->in_txn) {
		log_error("store: fence set inside a transaction (etcd prefix %s)", s->prefix);
		return ERR_STATE;
	}
	free(s->fence_key);
	free(s->fence_val);
	s->fence_key = s->fence_val = NULL;
	s->fence_len = 0;
	if (!key)
		return 0;
	s->fence_key = full_key(s, key);
	s->fence_val = xmalloc(len + 1);
	if (len)
		memcpy(s->fence_val, val, len);
	s->fence_len = len;
	return 0;
}

static int etcd_lease_grant(struct store *st, int64_t ttl_ms, int64_t *id)
{
	struct etcd_store *s = to_etcd(st);
	cJSON *j = cJSON_CreateObject(), *ans = NULL;
	int rv;

	add_i64(j, "TTL", (ttl_ms + 999) / 1000);
	if ((rv = call_json(s, "/v3/lease/grant", j, &ans)) != 0)
		return rv;
	*id = jint(ans, "ID");
	if (*id == 0) {
		log_error("store: etcd lease grant answered no lease id");
		rv = ERR_STORE;
	}
	cJSON_Delete(ans);
	return rv;
}

static int etcd_lease_keepalive(struct store *st, int64_t id, int64_t *ttl_ms_left)
{
	struct etcd_store *s = to_etcd(st);
	cJSON *j = cJSON_CreateObject(), *ans = NULL;
	const cJSON *res;
	int64_t ttl;
	int rv;

	add_i64(j, "ID", id);
	if ((rv = call_json(s, "/v3/lease/keepalive", j, &ans)) != 0)
		return rv;
	res = cJSON_GetObjectItemCaseSensitive(ans, "result");
	ttl = jint(res, "TTL");
	if (!res || ttl <= 0) {
		log_warn("store: etcd lease %" PRId64 " is gone (expired or revoked)", id);
		rv = ERR_NOENT;
	} else {
		*ttl_ms_left = ttl * 1000;
	}
	cJSON_Delete(ans);
	return rv;
}

static int etcd_lease_revoke(struct store *st, int64_t id)
{
	struct etcd_store *s = to_etcd(st);
	cJSON *j = cJSON_CreateObject(), *ans = NULL;
	int rv;

	add_i64(j, "ID", id);
	rv = call_json(s, "/v3/lease/revoke", j, &ans);
	cJSON_Delete(ans);
	return rv;
}

static int etcd_put_if_absent(struct store *st, const char *key, const void *val, size_t len,
			      int64_t lease_id, bool *won, char **holder, size_t *holder_len)
{
	struct etcd_store *s = to_etcd(st);
	char *full = full_key(s, key), *v = NULL;
	cJSON *j, *arr, *c, *o, *r, *ans = NULL;
	const cJSON *resp;
	size_t n = 0;
	int rv;

	if (s->in_txn) {
		log_error("store: put_if_absent of %s inside a transaction", key);
		free(full);
		return ERR_STATE;
	}
	j = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(j, "compare");
	c = cJSON_CreateObject();
	add_b64(c, "key", full, strlen(full));
	cJSON_AddStringToObject(c, "target", "CREATE");
	cJSON_AddStringToObject(c, "result", "EQUAL");
	add_i64(c, "create_revision", 0);
	cJSON_AddItemToArray(arr, c);
	arr = cJSON_AddArrayToObject(j, "success");
	o = op_json(full, val, len, false);
	if (lease_id)
		add_i64(cJSON_GetObjectItemCaseSensitive(o, "request_put"), "lease", lease_id);
	cJSON_AddItemToArray(arr, o);
	arr = cJSON_AddArrayToObject(j, "failure");
	o = cJSON_CreateObject();
	r = cJSON_AddObjectToObject(o, "request_range");
	add_b64(r, "key", full, strlen(full));
	cJSON_AddItemToArray(arr, o);
	if ((rv = call_json(s, "/v3/kv/txn", j, &ans)) != 0)
		goto out;
	*won = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ans, "succeeded"));
	if (*won) {
		n = len;
		v = xmalloc(n + 1);
		if (n)
			memcpy(v, val, n);
		v[n] = '\0';
	} else {
		resp = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ans, "responses"), 0);
		resp = cJSON_GetObjectItemCaseSensitive(resp, "response_range");
		if ((rv = first_value(resp, &v, &n)) != 0) {
			/* The compare said it exists, in the same revision. */
			log_error("store: etcd campaign for %s: lost, but the holder's value is "
				  "missing or malformed",
				  full);
			rv = ERR_STORE;
			goto out;
		}
	}
	if (holder) {
		*holder = v;
		*holder_len = n;
		v = NULL;
	}
out:
	free(v);
	cJSON_Delete(ans);
	free(full);
	return rv;
}

static int etcd_revision(struct store *st, int64_t *rev)
{
	*rev = to_etcd(st)->rev;
	return 0;
}

/* ---- watch ---- */

static void etcd_watch_stop(struct store *st)
{
	struct etcd_store *s = to_etcd(st);

	if (s->wcurl) {
		curl_multi_remove_handle(s->multi, s->wcurl);
		curl_easy_cleanup(s->wcurl);
		s->wcurl = NULL;
	}
	s->wbuf.len = 0;
	s->wscan = 0;
	s->wstate = WATCH_NONE;
}

static int etcd_watch_start(struct store *st, const char *prefix, int64_t from_rev)
{
	struct etcd_store *s = to_etcd(st);
	char *full = full_key(s, prefix), *end, *body, url[ETCD_HOST_MAX + 64];
	size_t elen;
	cJSON *j, *c;

	if (s->wpolling) {
		log_error("store: etcd watch started from inside its own callback");
		free(full);
		return ERR_STATE;
	}
	etcd_watch_stop(st);
	end = range_end(full, strlen(full), &elen);
	j = cJSON_CreateObject();
	c = cJSON_AddObjectToObject(j, "create_request");
	add_b64(c, "key", full, strlen(full));
	add_b64(c, "range_end", end, elen);
	if (from_rev > 0)
		add_i64(c, "start_revision", from_rev);
	body = print_free(j);
	if (!s->multi && !(s->multi = curl_multi_init())) {
		log_error("store: cannot create a curl multi handle for the etcd watch");
		free(body);
		free(end);
		free(full);
		return ERR_STORE;
	}
	s->wcurl = curl_easy_init();
	if (!s->wcurl) {
		log_error("store: cannot create a curl handle for the etcd watch");
		free(body);
		free(end);
		free(full);
		return ERR_STORE;
	}
	s->wep = s->cur;
	s->wfrom = from_rev;
	snprintf(url, sizeof(url), "http://%s/v3/watch", s->ep[s->wep]);
	curl_easy_setopt(s->wcurl, CURLOPT_URL, url);
	curl_easy_setopt(s->wcurl, CURLOPT_COPYPOSTFIELDS, body);
	curl_easy_setopt(s->wcurl, CURLOPT_HTTPHEADER, s->hdrs);
	curl_easy_setopt(s->wcurl, CURLOPT_CONNECTTIMEOUT_MS, (long)ETCD_CONNECT_MS);
	curl_easy_setopt(s->wcurl, CURLOPT_NOSIGNAL, 1L);
	/* The stream is quiet when nothing changes: keepalives find a dead
	 * peer that a closed connection would not announce. */
	curl_easy_setopt(s->wcurl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(s->wcurl, CURLOPT_TCP_KEEPIDLE, 5L);
	curl_easy_setopt(s->wcurl, CURLOPT_TCP_KEEPINTVL, 2L);
	curl_easy_setopt(s->wcurl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->wcurl, CURLOPT_WRITEDATA, &s->wbuf);
	curl_easy_setopt(s->wcurl, CURLOPT_ERRORBUFFER, s->werrbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(s->wcurl, CURLOPT_PROTOCOLS_STR, "http");
#endif
	s->werrbuf[0] = '\0';
	curl_multi_add_handle(s->multi, s->wcurl);
	s->wstate = WATCH_RUNNING;
	log_debug(LOG_SUB_STORE, "store: etcd watch of %s from revision %" PRId64 " on %s", full,
		  from_rev, s->ep[s->wep]);
	free(body);
	free(end);
	free(full);
	return 0;
}

/* One watch message (a NUL-terminated line): events to cb, or the end of
 * the watch.  0, or the error the watch now ends with. */
static int etcd_watch_message(struct etcd_store *s, const char *line, store_watch_cb cb, void *arg)
{
	cJSON *j = cJSON_Parse(line), *ev;
	const cJSON *res, *evs;
	int rv = 0;

	if (!j) {
		log_error("store: etcd watch on %s: unreadable message: %.200s", s->ep[s->wep],
			  line);
		return ERR_STORE;
	}
	res = cJSON_GetObjectItemCaseSensitive(j, "result");
	if (!cJSON_IsObject(res)) {
		/* An error instead of a result: {"error": {...}} or, before the
		 * stream starts, {"error": "...", "message": "...", "code": n}. */
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
		const char *msg = cJSON_IsObject(e) ? jstr(e, "message") : jstr(j, "message");

		log_error("store: etcd watch on %s failed: %.300s", s->ep[s->wep],
			  msg ? msg : line);
		rv = msg && strstr(msg, "compacted") ? ERR_COMPACTED : ERR_STORE;
		goto out;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "canceled"))) {
		int64_t compact = jint(res, "compact_revision");
		const char *why = jstr(res, "cancel_reason");

		if (compact > 0) {
			log_error("store: etcd watch from revision %" PRId64
				  ": etcd compacted its history up to revision %" PRId64
				  "; list everything again",
				  s->wfrom, compact);
			rv = ERR_COMPACTED;
		} else {
			log_error("store: etcd canceled the watch: %s",
				  why ? why : "no reason given");
			rv = ERR_STORE;
		}
		goto out;
	}
	evs = cJSON_GetObjectItemCaseSensitive(res, "events");
	cJSON_ArrayForEach(ev, evs)
	{
		const cJSON *kv = cJSON_GetObjectItemCaseSensitive(ev, "kv");
		const char *type = jstr(ev, "type");
		bool del = type && strcmp(type, "DELETE") == 0;
		char *k = NULL, *v = NULL;
		size_t klen = 0, vlen = 0;

		if (b64dec(jstr(kv, "key"), &k, &klen) != 0 ||
		    b64dec(del ? NULL : jstr(kv, "value"), &v, &vlen) != 0) {
			log_error("store: etcd watch: an event with a malformed key or value");
			free(k);
			rv = ERR_STORE;
			goto out;
		}
		if (klen > s->plen && strncmp(k, s->prefix, s->plen) == 0)
			cb(del ? STORE_WATCH_DEL : STORE_WATCH_PUT, k + s->plen, del ? NULL : v,
			   vlen, jint(kv, "mod_revision"), arg);
		free(k);
		free(v);
	}
out:
	cJSON_Delete(j);
	return rv;
}

/* Hand every whole line of the buffer to watch_message; with flush, the
 * tail without a newline too (the stream ended). */
static int etcd_watch_drain(struct etcd_store *s, store_watch_cb cb, void *arg, bool flush)
{
	size_t start = 0;
	int rv = 0;

	while (rv == 0 && start < s->wbuf.len) {
		char *nl = memchr(s->wbuf.p + s->wscan, '\n', s->wbuf.len - s->wscan);

		if (!nl && !flush) {
			s->wscan = s->wbuf.len;
			break;
		}
		if (nl)
			*nl = '\0';
		if (s->wbuf.p[start] != '\0')
			rv = etcd_watch_message(s, s->wbuf.p + start, cb, arg);
		start = nl ? (size_t)(nl - s->wbuf.p) + 1 : s->wbuf.len;
		s->wscan = start;
	}
	if (start && s->wbuf.p)
		memmove(s->wbuf.p, s->wbuf.p + start, s->wbuf.len - start);
	s->wbuf.len -= start;
	s->wscan -= start;
	if (s->wbuf.p)
		s->wbuf.p[s->wbuf.len] = '\0';
	return rv;
}

static int etcd_watch_poll(struct store *st, store_watch_cb cb, void *arg)
{
	struct etcd_store *s = to_etcd(st);
	int running = 0, left = 0, rv;
	CURLMsg *msg;

	if (s->wpolling)
		return ERR_STATE;
	switch (s->wstate) {
	case WATCH_NONE:
		log_error("store: etcd watch polled before store_watch_start");
		return ERR_STATE;
	case WATCH_BROKEN:
		return ERR_STORE;
	case WATCH_COMPACTED:
		return ERR_COMPACTED;
	case WATCH_RUNNING:
		break;
	}
	s->wpolling = true;
	curl_multi_perform(s->multi, &running);
	rv = etcd_watch_drain(s, cb, arg, false);
	while (rv == 0 && (msg = curl_multi_info_read(s->multi, &left))) {
		const char *ep = s->ep[s->wep];
		const char *why;
		long http = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if ((rv = etcd_watch_drain(s, cb, arg, true)) != 0)
			break;
		why = s->werrbuf[0] ? s->werrbuf : curl_easy_strerror(msg->data.result);
		curl_easy_getinfo(s->wcurl, CURLINFO_RESPONSE_CODE, &http);
		if (is_failover(msg->data.result)) {
			if (s->cur == s->wep && s->nep > 1) {
				s->cur = (s->cur + 1) % s->nep;
				log_warn("store: etcd %s unreachable (%s): the watch restarts on "
					 "%s",
					 ep, why, s->ep[s->cur]);
			} else {
				log_error("store: etcd watch on %s broke: %s", ep, why);
			}
		} else {
			log_error("store: etcd watch on %s ended (HTTP %ld): %s", ep, http,
				  msg->data.result == CURLE_OK ? "the server closed the stream"
				  : msg->data.result == CURLE_WRITE_ERROR ? "a message over 64 MiB"
									  : why);
		}
		rv = ERR_STORE;
	}
	if (rv != 0)
		s->wstate = rv == ERR_COMPACTED ? WATCH_COMPACTED : WATCH_BROKEN;
	s->wpolling = false;
	return rv;
}

const struct store_ops store_etcd_ops = {
    .name = "etcd",
    .open = etcd_open,
    .close = etcd_close,
    .begin = etcd_begin,
    .commit = etcd_commit,
    .rollback = etcd_rollback,
    .put = etcd_put,
    .get = etcd_get,
    .del = etcd_del,
    .list = etcd_list,
    .fence = etcd_fence,
    .lease_grant = etcd_lease_grant,
    .lease_keepalive = etcd_lease_keepalive,
    .lease_revoke = etcd_lease_revoke,
    .put_if_absent = etcd_put_if_absent,
    .revision = etcd_revision,
    .watch_start = etcd_watch_start,
    .watch_poll = etcd_watch_poll,
    .watch_stop = etcd_watch_stop,
};
