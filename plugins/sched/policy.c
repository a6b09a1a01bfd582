/*
 * policy.c - the placement policy registry: the built-ins (binpack,
 * spread, fgd), policies a program registers, and policies loaded from a
 * folder of shared objects with dlopen and a version check.  Owns
 * sched_policy_*.  Process-wide and not thread-safe: set up at start-up.
 */
#include "sched.h"
#include "err.h"
#include "util.h"

#include <dirent.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_POLICIES 32 /* registered policies, built-ins included */

struct preg {
	const struct sched_policy *p;
	void *dl; /* NULL for built-ins and registered ones */
};

static struct preg policies[MAX_POLICIES];
static uint32_t npolicies;

static const struct sched_policy *const builtins[] = {&sched_binpack, &sched_spread, &sched_fgd};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static const struct sched_policy *builtin_find(const char *name)
{
	for (size_t i = 0; i < NBUILTINS; i++) {
		if (strcmp(name, builtins[i]->name) == 0)
			return builtins[i];
	}
	return NULL;
}

uint32_t sched_policy_count(void)
{
	return (uint32_t)NBUILTINS + npolicies;
}

const struct sched_policy *sched_policy_at(uint32_t i)
{
	if (i < NBUILTINS)
		return builtins[i];
	i -= (uint32_t)NBUILTINS;
	return i < npolicies ? policies[i].p : NULL;
}

const struct sched_policy *sched_policy_find(const char *name)
{
	const struct sched_policy *p;

	if (!name)
		return NULL;
	if ((p = builtin_find(name)) != NULL)
		return p;
	for (uint32_t i = 0; i < npolicies; i++) {
		if (strcmp(policies[i].p->name, name) == 0)
			return policies[i].p;
	}
	return NULL;
}

static int policy_add(const struct sched_policy *p, void *dl, const char *what, char *why,
		      size_t whylen)
{
	const char *err = NULL;
	int rc = ERR_INVAL;

	if (!p) {
		err = "no policy";
	} else if (p->version != SCHED_POLICY_VERSION) {
		rc = ERR_VERSION;
		if (why && whylen)
			snprintf(why, whylen, "%s: policy version %" PRIu32 ", expected %d", what,
				 p->version, SCHED_POLICY_VERSION);
		return rc;
	} else if (!p->name || !p->name[0] || !p->pick) {
		err = "policy without a name or a pick function";
	} else if (sched_policy_find(p->name)) {
		rc = ERR_EXIST;
		if (why && whylen)
			snprintf(why, whylen, "%s: policy \"%s\" is already registered", what,
				 p->name);
		return rc;
	} else if (npolicies == MAX_POLICIES) {
		rc = ERR_TOOBIG;
		err = "too many policies";
	}
	if (err) {
		if (why && whylen)
			snprintf(why, whylen, "%s: %s", what, err);
		return rc;
	}
	policies[npolicies].p = p;
	policies[npolicies].dl = dl;
	npolicies++;
	return 0;
}

int sched_policy_register(const struct sched_policy *p, char *why, size_t whylen)
{
	return policy_add(p, NULL, p && p->name ? p->name : "policy", why, whylen);
}

void sched_policy_reset(void)
{
	while (npolicies > 0) {
		npolicies--;
		if (policies[npolicies].dl)
			dlclose(policies[npolicies].dl);
		policies[npolicies].p = NULL;
		policies[npolicies].dl = NULL;
	}
}

static int so_filter(const struct dirent *d)
{
	size_t l = strlen(d->d_name);

	return l > 3 && strcmp(d->d_name + l - 3, ".so") == 0;
}

int sched_policy_load_dir(const char *dir, char *why, size_t whylen)
{
	struct dirent **ents = NULL;
	int n, rc = 0;

	n = scandir(dir, &ents, so_filter, alphasort);
	if (n < 0) {
		if (why && whylen)
			snprintf(why, whylen, "%s: cannot read the folder", dir);
		return ERR_IO;
	}
	/* Load them all, sorted by name; report the first failure. */
	for (int i = 0; i < n; i++) {
		char *path = xasprintf("%s/%s", dir, ents[i]->d_name);
		const struct sched_policy *p;
		void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		int r = 0;
		char w[SCHED_REASON_LEN];

		if (!dl) {
			const char *e = dlerror();

			r = ERR_IO;
			snprintf(w, sizeof(w), "%s: %s", path, e ? e : "dlopen failed");
		} else if (!(p = dlsym(dl, "sched_policy_plugin"))) {
			r = ERR_INVAL;
			snprintf(w, sizeof(w), "%s: no symbol sched_policy_plugin", path);
		} else {
			r = policy_add(p, dl, path, w, sizeof(w));
		}
		if (r != 0) {
			if (dl)
				dlclose(dl);
			if (rc == 0) {
				rc = r;
				if (why && whylen)
					snprintf(why, whylen, "%s", w);
			}
		}
		free(path);
		free(ents[i]);
	}
	free(ents);
	return rc;
}
