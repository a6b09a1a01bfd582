/*
 * spec-roles-test.c - multi-role training gangs (train, roles:): a good spec
 * resolves every role (resources inherited as a block, image and command
 * inherited, env merged), the JSON form reads back the same, and each bad
 * form fails with exactly its message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "spec.h"
#include "util.h"

#define HEAD "name: ps-job\nkind: train\nimage: /img/tf\n"

static struct spec *parse_ok(const char *text)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL;

	if (spec_parse_yaml("t.yaml", text, strlen(text), &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_non_null(s);
	return s;
}

static void expect_error(const char *text, const char *msg)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = (struct spec *)1;

	assert_int_equal(spec_parse_yaml("t.yaml", text, strlen(text), &s, err, sizeof(err)),
			 ERR_INVAL);
	assert_null(s);
	assert_string_equal(err, msg);
}

static const char *env_of(const struct spec_role *r, const char *key)
{
	for (size_t i = 0; i < r->nenv; i++)
		if (!strcmp(r->env[i].key, key))
			return r->env[i].val;
	return NULL;
}

static const char ps_job[] =
    HEAD "command: [python3, train.py]\n"
	 "resources: {cpus: 2, memory: 1G}\n"
	 "env: {A: a, B: b}\n"
	 "roles:\n"
	 "  chief:  {count: 1, resources: {gpus: 1}}\n"
	 "  worker: {count: 2, resources: {gpus: 2, gpu_model: a100}, env: {B: w}}\n"
	 "  ps:     {count: 1, resources: {cpus: 4, memory: 8G}, command: [python3, ps.py]}\n"
	 "  evaluator: {optional: true, image: /img/eval, command: \"python3 eval.py\"}\n";

static void test_good(void **state)
{
	struct spec *s = parse_ok(ps_job);
	const struct spec_role *r;
	uint32_t index;

	(void)state;
	assert_int_equal(s->nroles, 4);
	assert_int_equal(s->workers, 0);
	assert_int_equal(spec_ntasks(s), 5);
	/* chief: own resources block, defaults of a block inside it. */
	r = &s->roles[0];
	assert_string_equal(r->name, "chief");
	assert_int_equal(r->count, 1);
	assert_false(r->optional);
	assert_int_equal(r->res.gpus_milli, 1000);
	assert_int_equal(r->res.cpu_milli, 100);
	assert_int_equal(r->res.mem, 128ull << 20);
	assert_string_equal(r->image, "/img/tf");
	assert_int_equal(r->ncommand, 2);
	assert_string_equal(r->command[1], "train.py");
	assert_string_equal(env_of(r, "A"), "a");
	assert_string_equal(env_of(r, "B"), "b");
	/* worker: its env wins for B; gpu_model stays with the role. */
	r = &s->roles[1];
	assert_int_equal(r->count, 2);
	assert_int_equal(r->res.gpus_milli, 2000);
	assert_string_equal(r->gpu_model, "a100");
	assert_string_equal(env_of(r, "B"), "w");
	assert_string_equal(env_of(r, "A"), "a");
	assert_int_equal(r->nenv, 2);
	/* ps: own command. */
	r = &s->roles[2];
	assert_int_equal(r->res.cpu_milli, 4000);
	assert_int_equal(r->res.mem, 8ull << 30);
	assert_int_equal(r->res.gpus_milli, 0);
	assert_string_equal(r->command[1], "ps.py");
	/* evaluator: no resources block, so the job's as a whole. */
	r = &s->roles[3];
	assert_true(r->optional);
	assert_int_equal(r->count, 1);
	assert_int_equal(r->res.cpu_milli, 2000);
	assert_int_equal(r->res.mem, 1ull << 30);
	assert_string_equal(r->image, "/img/eval");
	assert_int_equal(r->ncommand, 3);
	assert_string_equal(r->command[0], "/bin/sh");

	/* Tasks go role after role. */
	assert_string_equal(spec_task_role(s, 0, &index)->name, "chief");
	assert_int_equal(index, 0);
	assert_string_equal(spec_task_role(s, 2, &index)->name, "worker");
	assert_int_equal(index, 1);
	assert_string_equal(spec_task_role(s, 3, &index)->name, "ps");
	assert_int_equal(index, 0);
	assert_string_equal(spec_task_role(s, 4, &index)->name, "evaluator");
	assert_null(spec_task_role(s, 5, &index));
	assert_true(spec_role_in_world(&s->roles[0]));
	assert_true(spec_role_in_world(&s->roles[1]));
	assert_false(spec_role_in_world(&s->roles[2]));
	spec_free(s);
}

/* Without a job command every role needs its own; a role may be bare. */
static void test_no_job_command(void **state)
{
	struct spec *s = parse_ok(HEAD "roles:\n"
				       "  chief: {command: [a]}\n"
				       "  worker: {count: 3, command: [b]}\n");

	(void)state;
	assert_null(s->command);
	assert_int_equal(spec_ntasks(s), 4);
	spec_free(s);
	s = parse_ok(HEAD "command: [x]\nroles:\n  worker:\n  ps: {}\n");
	assert_int_equal(spec_ntasks(s), 2);
	assert_string_equal(s->roles[0].command[0], "x");
	assert_string_equal(s->roles[1].name, "ps");
	spec_free(s);
}

static char *to_text(const struct spec *s)
{
	cJSON *j = spec_to_json(s);
	char *t = cJSON_PrintUnformatted(j);

	cJSON_Delete(j);
	return t;
}

static void test_json_roundtrip(void **state)
{
	static const char *const texts[] = {ps_job, HEAD "roles:\n  worker: {command: [b]}\n"};

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		char err[SPEC_ERR_LEN];
		struct spec *s = parse_ok(texts[i]), *s2 = NULL;
		cJSON *j = spec_to_json(s);
		char *t1, *t2;

		assert_null(cJSON_GetObjectItemCaseSensitive(j, "workers"));
		if (spec_from_json(j, &s2, err, sizeof(err)) != 0)
			fail_msg("%s", err);
		t1 = to_text(s);
		t2 = to_text(s2);
		assert_string_equal(t1, t2);
		assert_int_equal(s2->nroles, s->nroles);
		assert_int_equal(spec_ntasks(s2), spec_ntasks(s));
		free(t1);
		free(t2);
		cJSON_Delete(j);
		spec_free(s);
		spec_free(s2);
	}
}

static void test_json_errors(void **state)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = parse_ok(ps_job), *s2 = NULL;
	cJSON *j = spec_to_json(s);
	cJSON *ev = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "roles"),
						     "evaluator");

	(void)state;
	cJSON_ReplaceItemInObjectCaseSensitive(ev, "optional", cJSON_CreateString("yes"));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: roles.evaluator.optional: expected true or false");
	cJSON_ReplaceItemInObjectCaseSensitive(ev, "optional", cJSON_CreateBool(1));
	cJSON_ReplaceItemInObjectCaseSensitive(ev, "count", cJSON_CreateNumber(0));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: roles.evaluator.count: must be at least 1");
	cJSON_ReplaceItemInObjectCaseSensitive(ev, "count", cJSON_CreateNumber(1));
	cJSON_AddNumberToObject(j, "workers", 2);
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: workers: not with roles (each role has its own count)");
	cJSON_DeleteItemFromObjectCaseSensitive(j, "workers");
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), 0);
	spec_free(s2);
	cJSON_Delete(j);
	spec_free(s);
}

static void test_bad(void **state)
{
	(void)state;
	expect_error(HEAD "command: [x]\nroles:\n  worker: {count: 0}\n",
		     "t.yaml:6: roles.worker.count: must be at least 1");
	expect_error(HEAD "command: [x]\nroles:\n  worker: {cuont: 2}\n",
		     "t.yaml:6: roles.worker.cuont: unknown field (a role has count, optional, "
		     "resources, image, command and env)");
	expect_error(HEAD "command: [x]\nworkers: 2\nroles:\n  worker: {count: 2}\n",
		     "t.yaml:5: workers: not with roles (each role has its own count)");
	expect_error(HEAD "roles:\n  chief: {command: [a]}\n  ps: {count: 2}\n",
		     "t.yaml:5: roles.ps.command: required (the job has no command to inherit)");
	expect_error(HEAD "roles:\n  worker: {count: 2}\n",
		     "t.yaml:5: roles.worker.command: required (the job has no command to inherit)");
	expect_error(HEAD "workers: 2\n", "t.yaml: command: required");
	expect_error(HEAD "command: [x]\nroles:\n  Chief: {}\n",
		     "t.yaml:6: roles: \"Chief\" is not a valid role name ([a-z][a-z0-9_-]*, at "
		     "most 31)");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {}\n  ps: {}\n",
		     "t.yaml:7: roles.ps: duplicate role");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {count: 1, count: 2}\n",
		     "t.yaml:6: roles.ps.count: duplicate field");
	expect_error(HEAD "command: [x]\nroles: {}\n", "t.yaml:5: roles: must name at least one role");
	expect_error(HEAD "command: [x]\nroles: [chief, worker]\n",
		     "t.yaml:5: roles: expected a mapping of role names");
	expect_error(HEAD "command: [x]\nroles:\n  ps: 3\n", "t.yaml:6: roles.ps: expected a mapping");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {resources: {gpus: 1.5}}\n",
		     "t.yaml:6: roles.ps.resources.gpus: a share must be below 1");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {resources: {disk: 1G}}\n",
		     "t.yaml:6: roles.ps.resources.disk: unknown field");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {resources: {memory: 12Q}}\n",
		     "t.yaml:6: roles.ps.resources.memory: \"12Q\" is not a size");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {image: tf}\n",
		     "t.yaml:6: roles.ps.image: \"tf\" must be an absolute path or oci:PATH[:TAG]");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {optional: maybe}\n",
		     "t.yaml:6: roles.ps.optional: \"maybe\" is not true or false");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {optional: true}\n",
		     "t.yaml:6: roles: every role is optional: at least one must be required");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {}\n  worker: {optional: true}\n",
		     "t.yaml:7: roles.worker.optional: the worker role is part of the torch world "
		     "(RANK, WORLD_SIZE) and cannot be optional");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {env: {1X: a}}\n",
		     "t.yaml:6: roles.ps.env: \"1X\" is not a valid variable name");
	expect_error(HEAD "command: [x]\nroles:\n  ps: {command: []}\n",
		     "t.yaml:6: roles.ps.command: must not be empty");
	expect_error(HEAD "command: [x]\nroles:\n  a: {count: 6000}\n  b: {count: 6000}\n",
		     "t.yaml:6: roles: 12000 tasks is more than 10000");
	expect_error("name: s\nkind: serve\nimage: /i\ncommand: [x]\nroles:\n  ps: {}\n",
		     "t.yaml:6: roles: only for kind train");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_no_job_command),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
