/*
 * ociref.c - parsing "oci:PATH[:TAG]" and resolving TAG through the
 * layout's index.json (ociref.h).
 */
#include "ociref.h"
#include "err.h"
#include "util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

bool ociref_is(const char *image)
{
	return image && strncmp(image, OCIREF_PREFIX, strlen(OCIREF_PREFIX)) == 0;
}

static bool tag_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '_')
		return true;
	return !first && (c == '.' || c == '-');
}

int ociref_parse(const char *image, char *path, size_t pathlen, char *tag, size_t taglen,
		 char *why, size_t whylen)
{
	const char *p, *colon, *t;
	size_t plen, tlen;

	if (why && whylen)
		why[0] = '\0';
	if (!ociref_is(image)) {
		set_why(why, whylen, "does not start with \"oci:\"");
		return ERR_INVAL;
	}
	p = image + strlen(OCIREF_PREFIX);
	colon = strchr(p, ':');
	plen = colon ? (size_t)(colon - p) : strlen(p);
	t = colon ? colon + 1 : OCIREF_DEFAULT_TAG;
	tlen = strlen(t);
	if (plen == 0) {
		set_why(why, whylen, "no layout PATH after \"oci:\" (oci:PATH or oci:PATH:TAG)");
		return ERR_INVAL;
	}
	/* Before any message quotes the PATH: one line, no control bytes. */
	for (size_t i = 0; i < plen; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			set_why(why, whylen, "layout PATH holds a control character");
			return ERR_INVAL;
		}
	if (p[0] != '/') {
		set_why(why, whylen, "layout PATH \"%.*s\" is not absolute", (int)(plen > 200 ? 200 : plen),
			p);
		return ERR_INVAL;
	}
	if (plen > OCIREF_PATH_MAX) {
		set_why(why, whylen, "layout PATH is %zu characters long, over the limit of %d",
			plen, OCIREF_PATH_MAX);
		return ERR_TOOBIG;
	}
	if (colon && tlen == 0) {
		set_why(why, whylen, "empty TAG after \"oci:%.*s:\" (leave out the ':' for \"%s\")",
			(int)(plen > 200 ? 200 : plen), p, OCIREF_DEFAULT_TAG);
		return ERR_INVAL;
	}
	if (strchr(t, ':')) {
		set_why(why, whylen,
			"more than one ':' after \"oci:\" (a layout PATH may not contain ':'; "
			"the form is oci:PATH:TAG)");
		return ERR_INVAL;
	}
	if (tlen > OCIREF_TAG_MAX) {
		set_why(why, whylen, "tag is %zu characters long, over the limit of %d", tlen,
			OCIREF_TAG_MAX);
		return ERR_TOOBIG;
	}
	for (size_t i = 0; i < tlen; i++)
		if (!tag_char(t[i], i == 0)) {
			/* Quoted only when all of it is printable: a message
			 * is one clean line. */
			size_t k = 0;
			while (k < tlen && (unsigned char)t[k] >= 0x20 && (unsigned char)t[k] < 0x7f)
				k++;
			if (k < tlen)
				set_why(why, whylen,
					"tag holds byte 0x%02x at position %zu: not a valid tag "
					"([A-Za-z0-9_][A-Za-z0-9._-]*)",
					(unsigned char)t[k], k);
			else
				set_why(why, whylen,
					"tag \"%.*s\" is not a valid tag ([A-Za-z0-9_][A-Za-z0-9._-]*; "
					"a '/' there means a PATH with ':', which is not allowed)",
					(int)(tlen > 130 ? 130 : tlen), t);
			return ERR_INVAL;
		}
	if ((path && plen >= pathlen) || (tag && tlen >= taglen)) {
		set_why(why, whylen, "reference too long for its buffer");
		return ERR_TOOBIG;
	}
	if (path) {
		memcpy(path, p, plen);
		path[plen] = '\0';
	}
	if (tag) {
		memcpy(tag, t, tlen);
		tag[tlen] = '\0';
	}
	return 0;
}

static bool digest_ok(const char *d)
{
	if (strncmp(d, "sha256:", 7) != 0 || strlen(d) != OCIREF_DIGEST_LEN - 1)
		return false;
	for (const char *c = d + 7; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

/* Append ", \"TAG\"" to a short list of the tags the index holds. */
static void list_tag(char *list, size_t len, size_t *n, const char *tag)
{
	size_t l = strlen(list);

	if (++*n > 5) {
		if (*n == 6 && l + 6 < len)
			snprintf(list + l, len - l, ", ...");
		return;
	}
	snprintf(list + l, len - l, "%s\"%.40s\"", l ? ", " : "", tag);
}

int ociref_resolve(const char *path, const char *tag, char *digest, char *why, size_t whylen)
{
	char *ipath = NULL, *text = NULL, tags[256] = "";
	const cJSON *mans, *m;
	cJSON *idx = NULL;
	struct stat st;
	size_t ntags = 0;
	int rv;

	if (why && whylen)
		why[0] = '\0';
	digest[0] = '\0';
	if (stat(path, &st) != 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			set_why(why, whylen, "OCI layout %s: no such folder", path);
			return ERR_NOENT;
		}
		set_why(why, whylen, "OCI layout %s: %s", path, strerror(errno));
		return ERR_IO;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_why(why, whylen, "OCI layout %s is not a folder", path);
		return ERR_INVAL;
	}
	ipath = xasprintf("%s/index.json", path);
	rv = file_read(ipath, OCIREF_INDEX_MAX, &text, NULL);
	if (rv == ERR_NOENT) {
		set_why(why, whylen, "%s is not an OCI image layout: it has no index.json", path);
		rv = ERR_INVAL;
		goto out;
	}
	if (rv == ERR_TOOBIG) {
		set_why(why, whylen, "OCI layout %s: index.json is over %u bytes", path,
			OCIREF_INDEX_MAX);
		rv = ERR_INVAL;
		goto out;
	}
	if (rv != 0) {
		set_why(why, whylen, "OCI layout %s: cannot read index.json: %s", path,
			strerror(errno));
		rv = ERR_IO;
		goto out;
	}
	idx = cJSON_Parse(text);
	mans = cJSON_GetObjectItemCaseSensitive(idx, "manifests");
	if (!cJSON_IsObject(idx) || (mans && !cJSON_IsArray(mans))) {
		set_why(why, whylen, "OCI layout %s: index.json is not an image index", path);
		rv = ERR_INVAL;
		goto out;
	}
	cJSON_ArrayForEach(m, mans)
	{
		const cJSON *ann = cJSON_GetObjectItemCaseSensitive(m, "annotations");
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(ann, OCIREF_TAG_ANNOTATION);
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "digest");

		if (!cJSON_IsString(name))
			continue;
		if (strcmp(name->valuestring, tag) != 0) {
			list_tag(tags, sizeof(tags), &ntags, name->valuestring);
			continue;
		}
		if (!cJSON_IsString(d) || !digest_ok(d->valuestring)) {
			set_why(why, whylen,
				"OCI layout %s: tag \"%s\" has no sha256 digest in index.json",
				path, tag);
			rv = ERR_INVAL;
			goto out;
		}
		if (digest[0] && strcmp(digest, d->valuestring) != 0) {
			set_why(why, whylen,
				"OCI layout %s: tag \"%s\" names two manifests in index.json (%.19s... "
				"and %.19s...)",
				path, tag, digest, d->valuestring);
			rv = ERR_INVAL;
			goto out;
		}
		snprintf(digest, OCIREF_DIGEST_LEN, "%s", d->valuestring);
	}
	if (!digest[0]) {
		set_why(why, whylen, "OCI layout %s has no tag \"%s\" (%s%s)", path, tag,
			ntags ? "it has " : "it has no tags", tags);
		rv = ERR_NOENT;
		goto out;
	}
	rv = 0;
out:
	cJSON_Delete(idx);
	free(text);
	free(ipath);
	return rv;
}
