/*
 * fuzz_spec_yaml.c - libFuzzer harness for the YAML job spec parser
 * (spec_parse_yaml in common/spec.c).
 *
 * The input is a spec file's text.  An accepted spec must pass
 * spec_check.h's checks (its JSON form reads back to itself, and so on); a
 * refused one must say why in a line that fits the buffer, including a
 * buffer too small for the whole message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec_check.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SPEC_ERR_LEN], small[12];
	struct spec *s = NULL;
	char *text;
	int rv;

	/* An exact-sized copy, not NUL-terminated: the parser is given a
	 * length, and ASan sees a read past it. */
	text = xmalloc(size ? size : 1);
	if (size)
		memcpy(text, data, size);
	rv = spec_parse_yaml("fuzz.yaml", text, size, &s, err, sizeof(err));
	if (rv != 0) {
		FZ_CHECK(s == NULL);
		check_spec_err(rv, err, sizeof(err));
		rv = spec_parse_yaml("fuzz.yaml", text, size, &s, small, sizeof(small));
		FZ_CHECK(rv != 0 && s == NULL);
		check_spec_err(rv, small, sizeof(small));
	} else {
		FZ_CHECK(s != NULL);
		check_spec(s);
		spec_free(s);
	}
	free(text);
	return 0;
}
