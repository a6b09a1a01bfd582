/*
 * ociref.h - "oci:PATH[:TAG]" image references: an OCI image layout (a
 * folder with oci-layout, index.json and blobs/, as `skopeo copy ...
 * oci:PATH:TAG` or `umoci init` make it) and a tag in it, "latest" when none
 * is given.  The job spec accepts them beside plain rootfs folders (see
 * spec.c); the agent resolves the tag to the manifest digest here, from the
 * layout's index.json, and unpacks that manifest once per digest
 * (agent/image.h).
 *
 * PATH must be absolute and may not contain ':' (so that the tag is what
 * follows the first ':' after "oci:", and so that umoci, which takes
 * "--image PATH:TAG", reads the same split).  TAG follows the OCI
 * distribution rule: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}.
 */
#ifndef MLSCHED_OCIREF_H
#define MLSCHED_OCIREF_H

#include <stdbool.h>
#include <stddef.h>

#define OCIREF_PREFIX "oci:"
#define OCIREF_DEFAULT_TAG "latest"
#define OCIREF_TAG_MAX 128     /* characters, NUL not included */
#define OCIREF_PATH_MAX 1024   /* characters of PATH, NUL not included */
/* "sha256:" and 64 lower-case hex digits, NUL included. */
#define OCIREF_DIGEST_LEN (7 + 64 + 1)
/* The largest index.json we read: a layout with thousands of tags. */
#define OCIREF_INDEX_MAX (4u << 20)
/* The annotation that carries a tag in index.json (image-spec). */
#define OCIREF_TAG_ANNOTATION "org.opencontainers.image.ref.name"

/* Does image start with "oci:" (then it must parse, below)? */
bool ociref_is(const char *image);

/*
 * Split image ("oci:PATH" or "oci:PATH:TAG") into path (pathlen bytes) and
 * tag (taglen bytes; "latest" when not given).  0, or ERR_INVAL with the
 * reason in why (e.g. "PATH is not absolute", "tag \"a b\" has a character
 * a tag may not hold"); ERR_TOOBIG when PATH or TAG passes its limit or the
 * given buffer.  path and tag may be NULL to only check.
 */
int ociref_parse(const char *image, char *path, size_t pathlen, char *tag, size_t taglen,
		 char *why, size_t whylen);

/*
 * The manifest digest ("sha256:" and 64 hex digits, into digest of
 * OCIREF_DIGEST_LEN bytes) that tag names in the layout at path, read from
 * path/index.json.  Errors, each with why naming the layout and the cause:
 * ERR_NOENT when the folder is missing or the tag is not in the index (why
 * lists up to a few tags it has), ERR_INVAL when the folder is not an image
 * layout or index.json is malformed or names the tag twice with different
 * digests or with a digest that is not sha256, ERR_IO when it cannot be
 * read.
 */
int ociref_resolve(const char *path, const char *tag, char *digest, char *why, size_t whylen);

#endif
