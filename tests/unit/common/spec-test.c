/*
 * spec-test.c - job specs: the good examples parse to the right values, every
 * bad example fails with exactly its message, and JSON round-trips.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "spec.h"
#include "util.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif
#define SPECDIR SRCDIR "/tests/data/specs"

/* Parse a data file the way mlctl would, but name it by its base name so the
 * expected messages below read like the real thing. */
static int parse_data(const char *sub, const char *file, struct spec **out, char *err)
{
	char path[512];
	char *text;
	size_t len;
	int rv;

	snprintf(path, sizeof(path), "%s/%s/%s", SPECDIR, sub, file);
	rv = file_read(path, SPEC_MAX_BYTES, &text, &len);
	if (rv < 0)
		fail_msg("cannot read %s: %s", path, err_str(rv));
	rv = spec_parse_yaml(file, text, len, out, err, SPEC_ERR_LEN);
	free(text);
	return rv;
}

static struct spec *parse_good(const char *file)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL;

	if (parse_data("good", file, &s, err) != 0)
		fail_msg("%s: %s", file, err);
	assert_non_null(s);
	return s;
}

/* Parse YAML text held in the test; returns rv, message in err. */
static int parse_text(const char *text, struct spec **out, char *err)
{
	return spec_parse_yaml("t.yaml", text, strlen(text), out, err, SPEC_ERR_LEN);
}

static void expect_yaml_error(const char *text, const char *msg)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = (struct spec *)1;

	assert_int_equal(parse_text(text, &s, err), ERR_INVAL);
	assert_null(s);
	assert_string_equal(err, msg);
}

static void test_good_train(void **state)
{
	struct spec *s = parse_good("resnet50.yaml");

	assert_string_equal(s->name, "resnet50");
	assert_int_equal(s->kind, SPEC_TRAIN);
	assert_string_equal(s->image, "/var/lib/mlsched/images/pytorch");
	assert_int_equal(s->ncommand, 4);
	assert_string_equal(s->command[0], "torchrun");
	assert_string_equal(s->command[1], "train.py");
	assert_string_equal(s->command[2], "--epochs");
	assert_string_equal(s->command[3], "10");
	assert_string_equal(s->workdir, "/work");
	assert_int_equal(s->workers, 4);
	assert_int_equal(spec_ntasks(s), 4);
	assert_int_equal(s->res.gpus_milli, 2000);
	assert_int_equal(s->res.gpu_mem, 40ull << 30);
	assert_int_equal(s->res.mem, 32ull << 30);
	assert_int_equal(s->res.cpu_milli, 8000);
	assert_null(s->gpu_model);
	assert_int_equal(s->priority, 50);
	assert_int_equal(s->restart, RESTART_ON_FAILURE);
	assert_int_equal(s->restart_max, 3);
	assert_int_equal(s->nenv, 1);
	assert_string_equal(s->env[0].key, "NCCL_DEBUG");
	assert_string_equal(s->env[0].val, "INFO");
	assert_null(s->policy);
	assert_false(s->health.set);
	assert_false(s->autoscale.set);
	assert_int_equal(s->reschedule_max, 3);  /* default, every kind */
	assert_int_equal(s->rollout_deadline_ms, 0); /* serve only */
	spec_free(s);
}

static void test_good_serve(void **state)
{
	struct spec *s = parse_good("bert-serve.yaml");

	assert_string_equal(s->name, "bert-serve");
	assert_int_equal(s->kind, SPEC_SERVE);
	assert_int_equal(s->ncommand, 2);
	assert_string_equal(s->command[1], "serve.py");
	assert_int_equal(s->replicas, 3);
	assert_int_equal(s->standby, 1);
	assert_int_equal(spec_ntasks(s), 4);
	assert_int_equal(s->res.gpus_milli, 1000);
	assert_int_equal(s->res.gpu_mem, 0);
	assert_int_equal(s->res.mem, 8ull << 30);
	assert_int_equal(s->res.cpu_milli, 100);      /* default */
	assert_int_equal(s->restart, RESTART_ALWAYS); /* serve default */
	assert_int_equal(s->restart_max, 3);
	assert_int_equal(s->nenv, 0);
	assert_true(s->health.set);
	assert_string_equal(s->health.http, "http://127.0.0.1:8080/healthz");
	assert_null(s->health.exec);
	assert_int_equal(s->health.interval_ms, 500);
	assert_int_equal(s->health.timeout_ms, 300);
	assert_int_equal(s->health.failures, 2);
	assert_null(s->health.tcp);
	assert_int_equal(s->health.successes, 1); /* defaults */
	assert_int_equal(s->health.grace_ms, 0);
	assert_true(s->autoscale.set);
	assert_int_equal(s->autoscale.min, 2);
	assert_int_equal(s->autoscale.max, 8);
	assert_int_equal(s->autoscale.target_gpu_util, 70);
	assert_int_equal(s->autoscale.target_cpu_util, 0);
	assert_int_equal(s->autoscale.window_ms, 30000);
	assert_int_equal(s->autoscale.cooldown_ms, 30000);
	assert_int_equal(s->reschedule_max, 3);
	assert_int_equal(s->rollout_deadline_ms, 120000);
	spec_free(s);
}

static void test_good_serve_tcp(void **state)
{
	struct spec *s = parse_good("llm-serve.yaml");

	assert_string_equal(s->command[3], "$PORT");
	assert_true(s->health.set);
	assert_null(s->health.http);
	assert_null(s->health.exec);
	assert_string_equal(s->health.tcp, "$PORT");
	assert_int_equal(s->health.interval_ms, 2000);
	assert_int_equal(s->health.timeout_ms, 500);
	assert_int_equal(s->health.failures, 3);
	assert_int_equal(s->health.successes, 2);
	assert_int_equal(s->health.grace_ms, 60000);
	assert_int_equal(s->autoscale.target_gpu_util, 0);
	assert_int_equal(s->autoscale.target_cpu_util, 60);
	assert_int_equal(s->autoscale.window_ms, 60000);
	assert_int_equal(s->autoscale.cooldown_ms, 30000);
	assert_int_equal(s->reschedule_max, 0);
	assert_int_equal(s->rollout_deadline_ms, 300000);
	spec_free(s);
}

static void test_good_batch(void **state)
{
	struct spec *s = parse_good("embed-batch.yaml");

	assert_string_equal(s->name, "embed-batch.v2");
	assert_int_equal(s->kind, SPEC_BATCH);
	assert_string_equal(s->image, "oci:/var/lib/mlsched/oci/embed:latest");
	/* A string command runs through the shell. */
	assert_int_equal(s->ncommand, 3);
	assert_string_equal(s->command[0], "/bin/sh");
	assert_string_equal(s->command[1], "-c");
	assert_string_equal(s->command[2], "python3 embed.py --shard $TASK_INDEX");
	assert_string_equal(s->workdir, "/data");
	assert_int_equal(s->array, 100);
	assert_int_equal(s->parallelism, 10);
	assert_int_equal(spec_ntasks(s), 100);
	assert_int_equal(s->res.gpus_milli, 250);
	assert_string_equal(s->gpu_model, "A100");
	assert_int_equal(s->res.mem, 1536ull << 20);
	assert_int_equal(s->res.cpu_milli, 500);
	assert_int_equal(s->priority, -10);
	assert_int_equal(s->restart, RESTART_NEVER);
	assert_int_equal(s->nenv, 3);
	assert_string_equal(s->env[0].key, "HF_HOME");
	assert_string_equal(s->env[0].val, "/data/hf");
	assert_string_equal(s->env[1].key, "BATCH_SIZE");
	assert_string_equal(s->env[1].val, "64");
	assert_string_equal(s->env[2].key, "EMPTY");
	assert_string_equal(s->env[2].val, "");
	assert_string_equal(s->policy, "spread");
	spec_free(s);
}

static void test_good_defaults(void **state)
{
	struct spec *s = parse_good("minimal.yaml");

	assert_int_equal(s->kind, SPEC_SERVE);
	assert_string_equal(s->workdir, "/work");
	assert_int_equal(s->replicas, 1);
	assert_int_equal(s->standby, 0);
	assert_int_equal(s->res.gpus_milli, 0);
	assert_int_equal(s->res.mem, 128ull << 20);
	assert_int_equal(s->res.cpu_milli, 100);
	assert_int_equal(s->priority, 0);
	assert_int_equal(s->restart, RESTART_ALWAYS);
	assert_int_equal(s->restart_max, 3);
	assert_true(s->health.set);
	assert_null(s->health.http);
	assert_int_equal(s->health.nexec, 1);
	assert_string_equal(s->health.exec[0], "/bin/true");
	assert_int_equal(s->health.interval_ms, 1000);
	assert_int_equal(s->health.timeout_ms, 500);
	assert_int_equal(s->health.failures, 3);
	assert_false(s->autoscale.set);
	spec_free(s);

	/* Batch parallelism defaults to the array size; train restart to never;
	 * YAML null means "not given"; autoscale alone sets replicas to min. */
	assert_int_equal(parse_text("name: b\nkind: batch\nimage: /i\ncommand: [x]\narray: 7\n"
				    "policy: ~\nworkdir:\n",
				    &s, NULL),
			 0);
	assert_int_equal(s->parallelism, 7);
	assert_int_equal(s->restart, RESTART_NEVER);
	assert_null(s->policy);
	assert_string_equal(s->workdir, "/work");
	spec_free(s);
	assert_int_equal(parse_text("name: a\nkind: serve\nimage: /i\ncommand: [x]\n"
				    "autoscale: {min: 3, max: 5, target_gpu_util: 60}\n",
				    &s, NULL),
			 0);
	assert_int_equal(s->replicas, 3);
	assert_int_equal(s->autoscale.cooldown_ms, 30000);
	spec_free(s);
}

/* Every file in bad/ with the one message it must produce. */
static const struct {
	const char *file, *msg;
} bad[] = {
    {"alias.yaml", "alias.yaml:4: aliases are not allowed"},
    {"array-on-train.yaml", "array-on-train.yaml:5: array: only for kind batch"},
    {"autoscale-max-below-min.yaml",
     "autoscale-max-below-min.yaml:5: autoscale.max: must be at least min (4)"},
    {"autoscale-no-target.yaml", "autoscale-no-target.yaml:5: autoscale: needs exactly one of "
				 "target_gpu_util or target_cpu_util"},
    {"autoscale-both-targets.yaml", "autoscale-both-targets.yaml:5: autoscale: needs exactly one "
				    "of target_gpu_util or target_cpu_util"},
    {"autoscale-on-batch.yaml", "autoscale-on-batch.yaml:5: autoscale: only for kind serve"},
    {"bad-indent.yaml",
     "bad-indent.yaml:3: YAML syntax error: mapping values are not allowed in this context"},
    {"bad-kind.yaml", "bad-kind.yaml:2: kind: \"deploy\" is not train, serve or batch"},
    {"bad-name.yaml", "bad-name.yaml:1: name: \"ResNet50\" is not a valid job name "
		      "([a-z0-9][a-z0-9._-]*, not all digits, at most 63)"},
    {"digits-name.yaml", "digits-name.yaml:1: name: \"2024\" is not a valid job name "
			 "([a-z0-9][a-z0-9._-]*, not all digits, at most 63)"},
    {"bad-size.yaml", "bad-size.yaml:7: resources.memory: \"12Q\" is not a size"},
    {"command-empty.yaml", "command-empty.yaml:4: command: must not be empty"},
    {"command-mapping.yaml", "command-mapping.yaml:4: command: expected a list or a string"},
    {"command-nested.yaml", "command-nested.yaml:4: command[1]: expected a scalar"},
    {"complex-key.yaml", "complex-key.yaml:5: keys must be scalars"},
    {"cpus-not-number.yaml", "cpus-not-number.yaml:5: resources.cpus: \"lots\" is not a number"},
    {"duplicate-env.yaml", "duplicate-env.yaml:7: env.A: duplicate field"},
    {"duplicate-key.yaml", "duplicate-key.yaml:5: name: duplicate field"},
    {"empty.yaml", "empty.yaml: the spec is empty"},
    {"env-bad-name.yaml", "env-bad-name.yaml:5: env: \"1BAD\" is not a valid variable name"},
    {"env-list.yaml", "env-list.yaml:5: env: expected a mapping"},
    {"gpus-share.yaml", "gpus-share.yaml:5: resources.gpus: a share must be below 1"},
    {"gpus-too-many.yaml", "gpus-too-many.yaml:5: resources.gpus: more than 64 GPUs"},
    {"health-bad-duration.yaml", "health-bad-duration.yaml:7: health.interval: \"5\" is not a "
				 "duration"},
    {"health-bad-url.yaml", "health-bad-url.yaml:5: health.http: \"https://127.0.0.1/\" is not a "
			    "path or an http:// URL"},
    {"health-http-scheme.yaml",
     "health-http-scheme.yaml:5: health.http: \"ftp://x\" is not a path or an http:// URL"},
    {"health-both.yaml", "health-both.yaml:5: health: needs exactly one of http, tcp or exec"},
    {"health-http-tcp.yaml", "health-http-tcp.yaml:5: health: needs exactly one of http, tcp or "
			     "exec"},
    {"health-none.yaml", "health-none.yaml:5: health: needs exactly one of http, tcp or exec"},
    {"health-tcp-range.yaml",
     "health-tcp-range.yaml:5: health.tcp: \"70000\" is not a port (1..65535)"},
    {"health-tcp-bad-port.yaml", "health-tcp-bad-port.yaml:5: health.tcp: \"host:abc\": \"abc\" "
				 "is not a port (1..65535) or $PORT"},
    {"health-on-train.yaml", "health-on-train.yaml:5: health: only for kind serve"},
    {"long-name.yaml", "long-name.yaml:1: name: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		       "aaaaaaaaaaaaaaaaa\" is not a valid job name ([a-z0-9][a-z0-9._-]*, not all digits, "
		       "at most 63)"},
    {"memory-mapping.yaml", "memory-mapping.yaml:6: resources.memory: expected a scalar"},
    {"memory-zero.yaml", "memory-zero.yaml:5: resources.memory: must be at least 1"},
    {"missing-command.yaml", "missing-command.yaml: command: required"},
    {"missing-image.yaml", "missing-image.yaml: image: required"},
    {"missing-name.yaml", "missing-name.yaml: name: required"},
    {"negative-workers.yaml", "negative-workers.yaml:5: workers: must be at least 1"},
    {"parallelism-over-array.yaml",
     "parallelism-over-array.yaml:6: parallelism: must be at most array (4)"},
    {"priority-range.yaml", "priority-range.yaml:5: priority: must be at most 1000"},
    {"relative-image.yaml", "relative-image.yaml:3: image: \"images/pytorch\" must be an "
			    "absolute path or oci:PATH[:TAG]"},
    {"relative-workdir.yaml", "relative-workdir.yaml:5: workdir: \"work\" must be an absolute "
			      "path"},
    {"replicas-on-train.yaml", "replicas-on-train.yaml:5: replicas: only for kind serve"},
    {"replicas-outside-autoscale.yaml",
     "replicas-outside-autoscale.yaml:5: replicas: must be within autoscale 1..4"},
    {"reschedule-range.yaml", "reschedule-range.yaml:5: reschedule.max: must be at most 1000000"},
    {"rollout-on-train.yaml", "rollout-on-train.yaml:5: rollout: only for kind serve"},
    {"rollout-zero.yaml", "rollout-zero.yaml:5: rollout.deadline: must be at least 1"},
    {"restart-policy.yaml", "restart-policy.yaml:5: restart.policy: \"sometimes\" is not never, "
			    "on-failure or always"},
    {"restart-scalar.yaml", "restart-scalar.yaml:5: restart: expected a mapping"},
    {"serve-too-many-tasks.yaml", "serve-too-many-tasks.yaml:5: replicas: 9000 replicas + 1001 "
				  "standby is more than 10000 tasks, the limit (SPEC_MAX_TASKS)"},
    {"syntax-error.yaml",
     "syntax-error.yaml:4: YAML syntax error: did not find expected ',' or ']'"},
    {"too-many-tasks.yaml", "too-many-tasks.yaml:5: workers: 10001 tasks is more than 10000, "
			    "the limit (SPEC_MAX_TASKS)"},
    {"top-list.yaml", "top-list.yaml:1: expected a mapping at the top level"},
    {"top-scalar.yaml", "top-scalar.yaml:1: expected a mapping at the top level"},
    {"two-documents.yaml", "two-documents.yaml:5: only one YAML document is allowed"},
    {"unknown-field.yaml", "unknown-field.yaml:3: imgae: unknown field"},
    {"unknown-nested.yaml", "unknown-nested.yaml:5: resources.gpu: unknown field"},
    {"workers-not-int.yaml", "workers-not-int.yaml:5: workers: \"four\" is not an integer"},
    {"workers-on-serve.yaml", "workers-on-serve.yaml:5: workers: only for kind train"},
    {"zero-workers.yaml", "zero-workers.yaml:5: workers: must be at least 1"},
};
#define NBAD (sizeof(bad) / sizeof(bad[0]))

static void test_bad_files(void **state)
{
	for (size_t i = 0; i < NBAD; i++) {
		char err[SPEC_ERR_LEN];
		struct spec *s = (struct spec *)1;
		int rv = parse_data("bad", bad[i].file, &s, err);

		if (rv != ERR_INVAL)
			fail_msg("%s: rv %d, want ERR_INVAL", bad[i].file, rv);
		assert_null(s);
		if (strcmp(err, bad[i].msg) != 0)
			fail_msg("%s:\n  got  %s\n  want %s", bad[i].file, err, bad[i].msg);
	}
}

/* The table and the folder must not drift apart: a bad file without an
 * expected message would never be checked. */
static void test_bad_files_all_listed(void **state)
{
	DIR *d = opendir(SPECDIR "/bad");
	struct dirent *e;
	size_t n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t i;

		if (e->d_name[0] == '.')
			continue;
		for (i = 0; i < NBAD; i++)
			if (!strcmp(bad[i].file, e->d_name))
				break;
		if (i == NBAD) {
			closedir(d);
			fail_msg("bad/%s has no expected message", e->d_name);
		}
		n++;
	}
	closedir(d);
	assert_int_equal(n, NBAD);
}

static void test_parse_file(void **state)
{
	char err[SPEC_ERR_LEN], want[SPEC_ERR_LEN];
	struct spec *s = NULL;

	assert_int_equal(spec_parse_file(SPECDIR "/good/resnet50.yaml", &s, err, sizeof(err)), 0);
	assert_string_equal(s->name, "resnet50");
	spec_free(s);

	/* Messages name the path as given. */
	assert_int_equal(spec_parse_file(SPECDIR "/bad/bad-size.yaml", &s, err, sizeof(err)),
			 ERR_INVAL);
	assert_null(s);
	snprintf(want, sizeof(want), "%s",
		 SPECDIR "/bad/bad-size.yaml:7: resources.memory: \"12Q\" "
			 "is not a size");
	assert_string_equal(err, want);

	assert_int_equal(spec_parse_file(SPECDIR "/none.yaml", &s, err, sizeof(err)), ERR_NOENT);
	assert_null(s);
	assert_string_equal(err, SPECDIR "/none.yaml: cannot read: not found");

	/* A file over the limit is refused while reading, not parsed. */
	{
		char tmp[] = "/tmp/spec-test-XXXXXX";
		int fd = mkstemp(tmp);
		char *big = xmalloc(SPEC_MAX_BYTES + 1);

		assert_true(fd >= 0);
		memset(big, '#', SPEC_MAX_BYTES + 1);
		assert_int_equal(write(fd, big, SPEC_MAX_BYTES + 1), SPEC_MAX_BYTES + 1);
		close(fd);
		free(big);
		assert_int_equal(spec_parse_file(tmp, &s, err, sizeof(err)), ERR_TOOBIG);
		assert_null(s);
		snprintf(want, sizeof(want), "%s: larger than 262144 bytes, the limit (SPEC_MAX_BYTES)", tmp);
		assert_string_equal(err, want);
		unlink(tmp);
	}
}

static void test_yaml_misc(void **state)
{
	char err[SPEC_ERR_LEN], *big, *p;
	struct spec *s;
	size_t n;

	/* Limits on arguments and variables are exact. */
	big = xmalloc(SPEC_MAX_BYTES + 16);
	p = big + sprintf(big, "name: a\nkind: train\nimage: /i\ncommand: [");
	for (n = 0; n < SPEC_MAX_ARGS; n++)
		p += sprintf(p, "%sa%zu", n ? ", " : "", n);
	strcpy(p, "]\n");
	assert_int_equal(parse_text(big, &s, err), 0);
	assert_int_equal(s->ncommand, SPEC_MAX_ARGS);
	assert_string_equal(s->command[SPEC_MAX_ARGS - 1], "a255");
	spec_free(s);
	strcpy(p, ", x]\n");
	expect_yaml_error(big, "t.yaml:4: command: more than 256 arguments, the limit (SPEC_MAX_ARGS)");

	p = big + sprintf(big, "name: a\nkind: train\nimage: /i\ncommand: [x]\nenv:\n");
	for (n = 0; n < SPEC_MAX_ENV; n++)
		p += sprintf(p, "  V%zu: %zu\n", n, n);
	assert_int_equal(parse_text(big, &s, err), 0);
	assert_int_equal(s->nenv, SPEC_MAX_ENV);
	assert_string_equal(s->env[255].key, "V255");
	assert_string_equal(s->env[255].val, "255");
	spec_free(s);
	strcpy(p, "  X: y\n");
	expect_yaml_error(big, "t.yaml:6: env: more than 256 variables, the limit (SPEC_MAX_ENV)");

	/* The byte limit is checked before any parsing. */
	memset(big, '#', SPEC_MAX_BYTES + 1);
	s = (struct spec *)1;
	assert_int_equal(spec_parse_yaml("big.yaml", big, SPEC_MAX_BYTES + 1, &s, err, sizeof(err)),
			 ERR_INVAL);
	assert_null(s);
	assert_string_equal(err, "big.yaml: larger than 262144 bytes, the limit (SPEC_MAX_BYTES)");

	/* Nesting far beyond any spec is refused before the tree is built. */
	p = big + sprintf(big, "name: ");
	for (n = 0; n < 1000; n++)
		*p++ = '[';
	for (n = 0; n < 1000; n++)
		*p++ = ']';
	strcpy(p, "\n");
	expect_yaml_error(big, "t.yaml:1: nested too deeply");
	free(big);

	expect_yaml_error("name: \"a\\0b\"\nkind: train\nimage: /i\ncommand: [x]\n",
			  "t.yaml:1: name: contains a NUL byte");
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: \"\"\n",
			  "t.yaml:4: command: must not be empty");
	expect_yaml_error(
	    "name: a\nkind: train\nimage: /i\ncommand: [x]\nworkers: 99999999999999999999\n",
	    "t.yaml:5: workers: \"99999999999999999999\" is too large");
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\nworkers: 4294967296\n",
			  "t.yaml:5: workers: must be at most 4294967295");
	expect_yaml_error("name: a\nkind: train\nimage: \"oci:\"\ncommand: [x]\n",
			  "t.yaml:3: image: \"oci:\" is not oci:PATH[:TAG]: no layout PATH after "
			  "\"oci:\" (oci:PATH or oci:PATH:TAG)");
	expect_yaml_error("name: a\nkind: train\nimage: \"oci:l:t\"\ncommand: [x]\n",
			  "t.yaml:3: image: \"oci:l:t\" is not oci:PATH[:TAG]: layout PATH \"l\" is "
			  "not absolute");
	expect_yaml_error("name: a\nkind: train\nimage: \"oci:/l:\"\ncommand: [x]\n",
			  "t.yaml:3: image: \"oci:/l:\" is not oci:PATH[:TAG]: empty TAG after "
			  "\"oci:/l:\" (leave out the ':' for \"latest\")");
	expect_yaml_error("name: a\nkind: train\nimage: \"oci:/l:t:u\"\ncommand: [x]\n",
			  "t.yaml:3: image: \"oci:/l:t:u\" is not oci:PATH[:TAG]: more than one ':' "
			  "after \"oci:\" (a layout PATH may not contain ':'; the form is "
			  "oci:PATH:TAG)");
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\npolicy: \"\"\n",
			  "t.yaml:5: policy: must not be empty");
	expect_yaml_error("name: a\nkind: serve\nimage: /i\ncommand: [x]\nhealth: {failures: 2}\n",
			  "t.yaml:5: health: needs exactly one of http, tcp or exec");
	expect_yaml_error("name: a\nkind: serve\nimage: /i\ncommand: [x]\nname: b\n",
			  "t.yaml:5: name: duplicate field");
	/* A null value still counts for duplicates. */
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\npolicy:\npolicy: p\n",
			  "t.yaml:6: policy: duplicate field");
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\n\"bad\\nkey\": 1\n",
			  "t.yaml:5: \"bad?key\": unknown field");

	/* A NULL or tiny error buffer is fine. */
	s = (struct spec *)1;
	assert_int_equal(spec_parse_yaml("t.yaml", "kind: x\n", 8, &s, NULL, 0), ERR_INVAL);
	assert_null(s);
	assert_int_equal(spec_parse_yaml("t.yaml", "kind: x\n", 8, &s, err, 5), ERR_INVAL);
	assert_string_equal(err, "t.ya");
}

/* queue: a team queue's name; absent from the JSON form when not set. */
static void test_queue(void **state)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL, *back = NULL;
	cJSON *j;

	(void)state;
	assert_int_equal(parse_text("name: a\nkind: train\nimage: /i\ncommand: [x]\nqueue: research\n",
				    &s, err),
			 0);
	assert_string_equal(s->queue, "research");
	j = spec_to_json(s);
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "queue")->valuestring, "research");
	assert_int_equal(spec_from_json(j, &back, err, sizeof(err)), 0);
	assert_string_equal(back->queue, "research");
	cJSON_Delete(j);
	spec_free(back);
	spec_free(s);
	assert_int_equal(parse_text("name: a\nkind: train\nimage: /i\ncommand: [x]\n", &s, err), 0);
	assert_null(s->queue);
	j = spec_to_json(s);
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "queue"));
	cJSON_Delete(j);
	spec_free(s);
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\nqueue: Team A\n",
			  "t.yaml:5: queue: \"Team A\" is not a valid queue name");
	expect_yaml_error("name: a\nkind: train\nimage: /i\ncommand: [x]\nqueue: [a]\n",
			  "t.yaml:5: queue: expected a scalar");
}

static char *to_text(const struct spec *s)
{
	cJSON *j = spec_to_json(s);
	char *t;

	assert_non_null(j);
	t = cJSON_PrintUnformatted(j);
	assert_non_null(t);
	cJSON_Delete(j);
	return t;
}

static void test_json_roundtrip(void **state)
{
	static const char *const good[] = {"resnet50.yaml", "bert-serve.yaml", "embed-batch.yaml",
					   "minimal.yaml", "llm-serve.yaml"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char err[SPEC_ERR_LEN];
		struct spec *s = parse_good(good[i]), *s2 = NULL;
		cJSON *j = spec_to_json(s);
		char *t1, *t2;

		if (spec_from_json(j, &s2, err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i], err);
		t1 = to_text(s);
		t2 = to_text(s2);
		assert_string_equal(t1, t2);
		assert_int_equal(s2->kind, s->kind);
		assert_int_equal(spec_ntasks(s2), spec_ntasks(s));
		assert_int_equal(s2->res.mem, s->res.mem);
		assert_int_equal(s2->res.gpu_mem, s->res.gpu_mem);
		assert_int_equal(s2->reschedule_max, s->reschedule_max);
		assert_int_equal(s2->rollout_deadline_ms, s->rollout_deadline_ms);
		assert_int_equal(s2->health.successes, s->health.successes);
		assert_int_equal(s2->health.grace_ms, s->health.grace_ms);
		assert_int_equal(s2->autoscale.target_cpu_util, s->autoscale.target_cpu_util);
		assert_int_equal(s2->autoscale.window_ms, s->autoscale.window_ms);
		if (s->health.tcp)
			assert_string_equal(s2->health.tcp, s->health.tcp);
		else
			assert_null(s2->health.tcp);
		free(t1);
		free(t2);
		cJSON_Delete(j);
		spec_free(s);
		spec_free(s2);
	}
}

/* The canonical JSON of resnet50.yaml, with one field changed by edit(), must
 * fail with msg. */
static void expect_json_error(void (*edit)(cJSON *), const char *msg)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = parse_good("resnet50.yaml"), *s2 = (struct spec *)1;
	cJSON *j = spec_to_json(s);

	edit(j);
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_null(s2);
	assert_string_equal(err, msg);
	cJSON_Delete(j);
	spec_free(s);
}

static void workers_string(cJSON *j)
{
	cJSON_ReplaceItemInObject(j, "workers", cJSON_CreateString("4"));
}

static void memory_string(cJSON *j)
{
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "resources"), "memory",
				  cJSON_CreateString("8G"));
}

static void name_number(cJSON *j)
{
	cJSON_ReplaceItemInObject(j, "name", cJSON_CreateNumber(5));
}

static void workers_fraction(cJSON *j)
{
	cJSON_ReplaceItemInObject(j, "workers", cJSON_CreateNumber(2.5));
}

static void gpus_share(cJSON *j)
{
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "resources"), "gpus_milli",
				  cJSON_CreateNumber(1500));
}

static void add_replicas(cJSON *j)
{
	cJSON_AddNumberToObject(j, "replicas", 2);
}

static void add_unknown(cJSON *j)
{
	cJSON_AddStringToObject(j, "foo", "bar");
}

static void yaml_key(cJSON *j)
{
	cJSON_AddNumberToObject(cJSON_GetObjectItem(j, "resources"), "cpus", 2);
}

static void drop_image(cJSON *j)
{
	cJSON_DeleteItemFromObject(j, "image");
}

static void command_number(cJSON *j)
{
	cJSON_ReplaceItemInArray(cJSON_GetObjectItem(j, "command"), 0, cJSON_CreateNumber(1));
}

static void env_bool(cJSON *j)
{
	cJSON_AddBoolToObject(cJSON_GetObjectItem(j, "env"), "FLAG", 1);
}

static void restart_array(cJSON *j)
{
	cJSON_ReplaceItemInObject(j, "restart", cJSON_CreateArray());
}

static void priority_huge(cJSON *j)
{
	cJSON_ReplaceItemInObject(j, "priority", cJSON_CreateNumber(1e300));
}

static void test_json_errors(void **state)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = (struct spec *)1;
	cJSON *a = cJSON_CreateArray();

	expect_json_error(workers_string, "spec: workers: expected a number");
	expect_json_error(memory_string, "spec: resources.memory: expected a number");
	expect_json_error(name_number, "spec: name: expected a string");
	expect_json_error(workers_fraction, "spec: workers: 2.5 is not an integer in range");
	expect_json_error(priority_huge, "spec: priority: 1e+300 is not an integer in range");
	expect_json_error(gpus_share, "spec: resources.gpus_milli: a share must be below 1");
	expect_json_error(add_replicas, "spec: replicas: only for kind serve");
	expect_json_error(add_unknown, "spec: foo: unknown field");
	expect_json_error(yaml_key, "spec: resources.cpus: unknown field");
	expect_json_error(drop_image, "spec: image: required");
	expect_json_error(command_number, "spec: command[0]: expected a string");
	expect_json_error(env_bool, "spec: env.FLAG: expected a string");
	expect_json_error(restart_array, "spec: restart: expected an object");

	assert_int_equal(spec_from_json(a, &s, err, sizeof(err)), ERR_INVAL);
	assert_null(s);
	assert_string_equal(err, "spec: expected an object at the top level");
	cJSON_Delete(a);
}

#define SERVE_HEAD "name: a\nkind: serve\nimage: /i\ncommand: [x]\n"

/* Parse SERVE_HEAD + tail, which must succeed. */
static struct spec *parse_serve(const char *tail)
{
	char text[1024], err[SPEC_ERR_LEN];
	struct spec *s = NULL;

	snprintf(text, sizeof(text), "%s%s", SERVE_HEAD, tail);
	if (parse_text(text, &s, err) != 0)
		fail_msg("%s: %s", tail, err);
	return s;
}

static void expect_serve_error(const char *tail, const char *msg)
{
	char text[1024];

	snprintf(text, sizeof(text), "%s%s", SERVE_HEAD, tail);
	expect_yaml_error(text, msg);
}

/* spec_health_target() of the check in tail, on port. */
static void expect_target(const char *tail, uint32_t port, const char *want)
{
	struct spec *s = parse_serve(tail);
	char out[256];

	if (spec_health_target(&s->health, port, out, sizeof(out)) != 0)
		fail_msg("%s on port %u: ERR_INVAL", tail, port);
	assert_string_equal(out, want);
	spec_free(s);
}

static void expect_no_target(const char *tail, uint32_t port)
{
	struct spec *s = parse_serve(tail);
	char out[256];

	assert_int_equal(spec_health_target(&s->health, port, out, sizeof(out)), ERR_INVAL);
	assert_string_equal(out, "");
	spec_free(s);
}

static void test_health_forms(void **state)
{
	struct spec *s;

	/* An http path is probed at the task's own port. */
	s = parse_serve("health: {http: /healthz}\n");
	assert_string_equal(s->health.http, "/healthz");
	assert_null(s->health.tcp);
	assert_int_equal(s->health.successes, 1);
	assert_int_equal(s->health.grace_ms, 0);
	spec_free(s);
	s = parse_serve("health: {http: \"http://127.0.0.1:$PORT/ready\", successes: 3, "
			"grace: 90s}\n");
	assert_string_equal(s->health.http, "http://127.0.0.1:$PORT/ready");
	assert_int_equal(s->health.successes, 3);
	assert_int_equal(s->health.grace_ms, 90000);
	spec_free(s);
	/* tcp: $PORT, a number (YAML reads it as text), HOST:PORT, HOST:$PORT. */
	s = parse_serve("health: {tcp: $PORT}\n");
	assert_string_equal(s->health.tcp, "$PORT");
	spec_free(s);
	s = parse_serve("health: {tcp: 9090}\n");
	assert_string_equal(s->health.tcp, "9090");
	spec_free(s);
	s = parse_serve("health: {tcp: \"db.local:$PORT\"}\n");
	assert_string_equal(s->health.tcp, "db.local:$PORT");
	spec_free(s);
	s = parse_serve("health:\n  tcp: 10.0.0.7:6379\n");
	assert_string_equal(s->health.tcp, "10.0.0.7:6379");
	spec_free(s);
	s = parse_serve("health: {tcp: \"[::1]:65535\"}\n");
	assert_string_equal(s->health.tcp, "[::1]:65535");
	spec_free(s);

	expect_serve_error("health: {http: \"ftp://x\"}\n",
			   "t.yaml:5: health.http: \"ftp://x\" is not a path or an http:// URL");
	expect_serve_error("health: {http: healthz}\n",
			   "t.yaml:5: health.http: \"healthz\" is not a path or an http:// URL");
	expect_serve_error("health: {http: \"http:///x\"}\n",
			   "t.yaml:5: health.http: \"http:///x\" is not a path or an http:// URL");
	expect_serve_error("health: {http: \"/a b\"}\n",
			   "t.yaml:5: health.http: \"/a b\" contains spaces or control characters");
	expect_serve_error("health: {tcp: \"70000\"}\n",
			   "t.yaml:5: health.tcp: \"70000\" is not a port (1..65535)");
	expect_serve_error("health: {tcp: 0}\n", "t.yaml:5: health.tcp: \"0\" is not a port "
						 "(1..65535)");
	expect_serve_error("health: {tcp: \"host:abc\"}\n",
			   "t.yaml:5: health.tcp: \"host:abc\": \"abc\" is not a port (1..65535) "
			   "or $PORT");
	expect_serve_error(
	    "health: {tcp: \"host:\"}\n",
	    "t.yaml:5: health.tcp: \"host:\": \"\" is not a port (1..65535) or $PORT");
	expect_serve_error("health: {tcp: abc}\n",
			   "t.yaml:5: health.tcp: \"abc\" is not $PORT, a port or HOST:PORT");
	expect_serve_error("health: {tcp: \"$PORTS\"}\n",
			   "t.yaml:5: health.tcp: \"$PORTS\" is not $PORT, a port or HOST:PORT");
	expect_serve_error("health: {tcp: \":80\"}\n",
			   "t.yaml:5: health.tcp: \":80\" has no host before the colon");
	expect_serve_error(
	    "health: {tcp: \"::1:80\"}\n",
	    "t.yaml:5: health.tcp: \"::1:80\": \"::1\" is not a host name or address");
	expect_serve_error(
	    "health: {tcp: \"a b:80\"}\n",
	    "t.yaml:5: health.tcp: \"a b:80\": \"a b\" is not a host name or address");
	expect_serve_error("health: {tcp: [1]}\n", "t.yaml:5: health.tcp: expected a scalar");
	expect_serve_error("health: {tcp: $PORT, exec: [/bin/true]}\n",
			   "t.yaml:5: health: needs exactly one of http, tcp or exec");
	expect_serve_error("health: {http: /h, tcp: $PORT, exec: [/bin/true]}\n",
			   "t.yaml:5: health: needs exactly one of http, tcp or exec");
	expect_serve_error("health: {exec: [/bin/true], successes: 0}\n",
			   "t.yaml:5: health.successes: must be at least 1");
	expect_serve_error("health: {exec: [/bin/true], successes: 1000001}\n",
			   "t.yaml:5: health.successes: must be at most 1000000");
	expect_serve_error("health: {exec: [/bin/true], grace: 5}\n",
			   "t.yaml:5: health.grace: \"5\" is not a duration");
}

static void test_health_target(void **state)
{
	struct spec *s;
	char out[64];

	expect_target("health: {http: /healthz}\n", 8080, "http://127.0.0.1:8080/healthz");
	expect_target("health: {http: /}\n", 1, "http://127.0.0.1:1/");
	expect_target("health: {http: \"http://127.0.0.1:$PORT/ready?port=$PORT\"}\n", 31000,
		      "http://127.0.0.1:31000/ready?port=31000");
	/* A URL without $PORT does not need the task's port. */
	expect_target("health: {http: \"http://10.1.2.3:8500/v1/status\"}\n", 0,
		      "http://10.1.2.3:8500/v1/status");
	expect_target("health: {tcp: $PORT}\n", 8080, "127.0.0.1:8080");
	expect_target("health: {tcp: 9090}\n", 0, "127.0.0.1:9090");
	expect_target("health: {tcp: \"db.local:$PORT\"}\n", 5432, "db.local:5432");
	expect_target("health: {tcp: \"[::1]:6379\"}\n", 0, "[::1]:6379");

	/* $PORT with no port (or no real one) is an error, never ":0". */
	expect_no_target("health: {http: /healthz}\n", 0);
	expect_no_target("health: {http: \"http://h:$PORT/\"}\n", 0);
	expect_no_target("health: {tcp: $PORT}\n", 0);
	expect_no_target("health: {tcp: \"h:$PORT\"}\n", 65536);
	expect_no_target("health: {exec: [/bin/true]}\n", 8080);

	/* The result must fit, NUL included. */
	s = parse_serve("health: {tcp: $PORT}\n");
	assert_int_equal(spec_health_target(&s->health, 8080, out, 15), 0);
	assert_string_equal(out, "127.0.0.1:8080");
	assert_int_equal(spec_health_target(&s->health, 8080, out, 14), ERR_INVAL);
	assert_string_equal(out, "");
	assert_int_equal(spec_health_target(&s->health, 8080, NULL, 0), ERR_INVAL);
	spec_free(s);
	s = parse_serve("health: {http: /h}\n");
	assert_int_equal(spec_health_target(&s->health, 8080, out, 24), 0);
	assert_string_equal(out, "http://127.0.0.1:8080/h");
	assert_int_equal(spec_health_target(&s->health, 8080, out, 23), ERR_INVAL);
	spec_free(s);
	/* No check at all. */
	s = parse_serve("replicas: 1\n");
	assert_false(s->health.set);
	assert_int_equal(spec_health_target(&s->health, 8080, out, sizeof(out)), ERR_INVAL);
	spec_free(s);
}

static void test_autoscale_reschedule_rollout(void **state)
{
	static const char *const kinds[] = {
	    "name: a\nkind: train\nimage: /i\ncommand: [x]\n",
	    "name: a\nkind: serve\nimage: /i\ncommand: [x]\n",
	    "name: a\nkind: batch\nimage: /i\ncommand: [x]\n",
	};
	char text[512], err[SPEC_ERR_LEN];
	struct spec *s;

	s = parse_serve("autoscale: {min: 1, max: 3, target_cpu_util: 80, window: 10s}\n");
	assert_int_equal(s->autoscale.target_cpu_util, 80);
	assert_int_equal(s->autoscale.target_gpu_util, 0);
	assert_int_equal(s->autoscale.window_ms, 10000);
	assert_int_equal(s->autoscale.cooldown_ms, 30000);
	spec_free(s);
	s = parse_serve("autoscale: {min: 1, max: 3, target_gpu_util: 100}\n");
	assert_int_equal(s->autoscale.window_ms, 30000);
	spec_free(s);
	expect_serve_error("autoscale: {min: 1, max: 3}\n",
			   "t.yaml:5: autoscale: needs exactly one of target_gpu_util or "
			   "target_cpu_util");
	expect_serve_error(
	    "autoscale: {min: 1, max: 3, target_gpu_util: 50, target_cpu_util: 50}\n",
	    "t.yaml:5: autoscale: needs exactly one of target_gpu_util or "
	    "target_cpu_util");
	expect_serve_error("autoscale: {max: 3, target_cpu_util: 50}\n",
			   "t.yaml:5: autoscale.min: required");
	expect_serve_error("autoscale: {min: 1, max: 3, target_cpu_util: 101}\n",
			   "t.yaml:5: autoscale.target_cpu_util: must be at most 100");
	expect_serve_error("autoscale: {min: 1, max: 3, target_cpu_util: 0}\n",
			   "t.yaml:5: autoscale.target_cpu_util: must be at least 1");
	expect_serve_error("autoscale: {min: 1, max: 3, target_cpu_util: 5, window: 0s}\n",
			   "t.yaml:5: autoscale.window: must be at least 1");
	expect_serve_error("autoscale: {min: 1, max: 3, target_cpu_util: 5, window: soon}\n",
			   "t.yaml:5: autoscale.window: \"soon\" is not a duration");

	/* reschedule works on every kind: default 3, 0 turns it off. */
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(parse_text(kinds[i], &s, err), 0);
		assert_int_equal(s->reschedule_max, 3);
		spec_free(s);
		snprintf(text, sizeof(text), "%sreschedule: {max: 0}\n", kinds[i]);
		if (parse_text(text, &s, err) != 0)
			fail_msg("%s", err);
		assert_int_equal(s->reschedule_max, 0);
		spec_free(s);
		snprintf(text, sizeof(text), "%sreschedule:\n  max: 1000000\n", kinds[i]);
		assert_int_equal(parse_text(text, &s, err), 0);
		assert_int_equal(s->reschedule_max, 1000000);
		spec_free(s);
	}
	expect_serve_error("reschedule: {max: -1}\n",
			   "t.yaml:5: reschedule.max: must be at least 0");
	expect_serve_error("reschedule: 3\n", "t.yaml:5: reschedule: expected a mapping");
	expect_serve_error("reschedule: {limit: 3}\n", "t.yaml:5: reschedule.limit: unknown field");

	/* rollout: serve only, deadline 2m unless given. */
	s = parse_serve("replicas: 2\n");
	assert_int_equal(s->rollout_deadline_ms, 120000);
	spec_free(s);
	s = parse_serve("rollout: {deadline: 45s}\n");
	assert_int_equal(s->rollout_deadline_ms, 45000);
	spec_free(s);
	s = parse_serve("rollout: {}\n");
	assert_int_equal(s->rollout_deadline_ms, 120000);
	spec_free(s);
	expect_serve_error("rollout: {deadline: 5}\n",
			   "t.yaml:5: rollout.deadline: \"5\" is not a duration");
	expect_yaml_error(
	    "name: a\nkind: batch\nimage: /i\ncommand: [x]\nrollout: {deadline: 1m}\n",
	    "t.yaml:5: rollout: only for kind serve");
}

static void test_json_new_fields(void **state)
{
	char err[SPEC_ERR_LEN];
	struct spec *s = parse_good("llm-serve.yaml"), *s2 = NULL;
	cJSON *j = spec_to_json(s), *h, *a;
	char *t;

	/* The canonical keys. */
	h = cJSON_GetObjectItem(j, "health");
	a = cJSON_GetObjectItem(j, "autoscale");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(h, "http")));
	assert_string_equal(cJSON_GetObjectItem(h, "tcp")->valuestring, "$PORT");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(h, "exec")));
	assert_int_equal(cJSON_GetObjectItem(h, "successes")->valueint, 2);
	assert_int_equal(cJSON_GetObjectItem(h, "grace_ms")->valueint, 60000);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(a, "target_gpu_util")));
	assert_int_equal(cJSON_GetObjectItem(a, "target_cpu_util")->valueint, 60);
	assert_int_equal(cJSON_GetObjectItem(a, "window_ms")->valueint, 60000);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "reschedule"), "max")->valueint,
			 0);
	assert_int_equal(
	    cJSON_GetObjectItem(cJSON_GetObjectItem(j, "rollout"), "deadline_ms")->valueint,
	    300000);
	t = cJSON_PrintUnformatted(h);
	assert_string_equal(
	    t, "{\"http\":null,\"tcp\":\"$PORT\",\"exec\":null,\"interval_ms\":2000,"
	       "\"timeout_ms\":500,\"failures\":3,\"successes\":2,\"grace_ms\":60000}");
	free(t);

	/* JSON may give tcp as a number; it is kept as a string. */
	cJSON_ReplaceItemInObject(h, "tcp", cJSON_CreateNumber(8080));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), 0);
	assert_string_equal(s2->health.tcp, "8080");
	spec_free(s2);
	cJSON_ReplaceItemInObject(h, "tcp", cJSON_CreateNumber(70000));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: health.tcp: \"70000\" is not a port (1..65535)");
	cJSON_ReplaceItemInObject(h, "tcp", cJSON_CreateNumber(80.5));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: health.tcp: 80.5 is not an integer in range");
	cJSON_ReplaceItemInObject(h, "tcp", cJSON_CreateTrue());
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: health.tcp: expected a string");
	cJSON_ReplaceItemInObject(h, "tcp", cJSON_CreateString("$PORT"));
	cJSON_ReplaceItemInObject(a, "target_gpu_util", cJSON_CreateNumber(50));
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: autoscale: needs exactly one of target_gpu_util or "
				 "target_cpu_util");
	cJSON_ReplaceItemInObject(a, "target_gpu_util", cJSON_CreateNull());
	cJSON_AddNumberToObject(a, "window", 5);
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "spec: autoscale.window: unknown field");
	cJSON_DeleteItemFromObject(a, "window");

	/* A spec stored before these fields existed reads with the defaults. */
	cJSON_DeleteItemFromObject(h, "tcp");
	cJSON_ReplaceItemInObject(h, "http", cJSON_CreateString("http://127.0.0.1:8080/healthz"));
	cJSON_DeleteItemFromObject(h, "successes");
	cJSON_DeleteItemFromObject(h, "grace_ms");
	cJSON_DeleteItemFromObject(a, "target_cpu_util");
	cJSON_DeleteItemFromObject(a, "window_ms");
	cJSON_ReplaceItemInObject(a, "target_gpu_util", cJSON_CreateNumber(70));
	cJSON_DeleteItemFromObject(j, "reschedule");
	cJSON_DeleteItemFromObject(j, "rollout");
	if (spec_from_json(j, &s2, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_null(s2->health.tcp);
	assert_string_equal(s2->health.http, "http://127.0.0.1:8080/healthz");
	assert_int_equal(s2->health.successes, 1);
	assert_int_equal(s2->health.grace_ms, 0);
	assert_int_equal(s2->autoscale.target_gpu_util, 70);
	assert_int_equal(s2->autoscale.window_ms, 30000);
	assert_int_equal(s2->reschedule_max, 3);
	assert_int_equal(s2->rollout_deadline_ms, 120000);
	spec_free(s2);
	cJSON_Delete(j);
	spec_free(s);
}

/* max_cost_per_gpu_hour: a price with up to 3 decimals, kept in thousandths,
 * carried as max_cost_milli (null when not set). */
static void test_max_cost(void **state)
{
	const char *y = "name: c\nkind: batch\nimage: /img\ncommand: [\"true\"]\n"
			"max_cost_per_gpu_hour: 2.5\n";
	char err[SPEC_ERR_LEN];
	struct spec *s = NULL, *s2 = NULL;
	cJSON *j;

	if (spec_parse_yaml("c.yaml", y, strlen(y), &s, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(s->max_cost_milli, 2500);
	j = spec_to_json(s);
	assert_int_equal(cJSON_GetObjectItem(j, "max_cost_milli")->valueint, 2500);
	assert_int_equal(spec_from_json(j, &s2, err, sizeof(err)), 0);
	assert_int_equal(s2->max_cost_milli, 2500);
	spec_free(s2);
	cJSON_Delete(j);
	spec_free(s);
	y = "name: c\nkind: batch\nimage: /img\ncommand: [\"true\"]\n"
	    "max_cost_per_gpu_hour: cheap\n";
	assert_int_equal(spec_parse_yaml("c.yaml", y, strlen(y), &s, err, sizeof(err)), ERR_INVAL);
	assert_string_equal(err, "c.yaml:5: max_cost_per_gpu_hour: \"cheap\" is not a number");
	y = "name: c\nkind: batch\nimage: /img\ncommand: [\"true\"]\n";
	assert_int_equal(spec_parse_yaml("c.yaml", y, strlen(y), &s, err, sizeof(err)), 0);
	assert_int_equal(s->max_cost_milli, 0);
	j = spec_to_json(s);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "max_cost_milli")));
	cJSON_Delete(j);
	spec_free(s);
	(void)state;
}

static void test_same_except_version(void **state)
{
	struct spec *a = parse_good("bert-serve.yaml"), *b = parse_good("bert-serve.yaml"), *t;
	char why[SPEC_ERR_LEN];

	strcpy(why, "x");
	assert_true(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "");

	/* What a rollout changes. */
	free(b->image);
	b->image = xstrdup("/var/lib/mlsched/images/bert-v2");
	assert_true(spec_same_except_version(a, b, why, sizeof(why)));
	free(b->command[1]);
	b->command[1] = xstrdup("serve2.py");
	b->env = xcalloc(1, sizeof(*b->env));
	b->env[0].key = xstrdup("MODEL");
	b->env[0].val = xstrdup("v2");
	b->nenv = 1;
	assert_true(spec_same_except_version(a, b, why, sizeof(why)));
	assert_true(spec_same_except_version(b, a, NULL, 0));

	/* Anything else does not. */
	b->res.mem *= 2;
	assert_false(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "resources.memory differs: a rollout may change only image, "
				 "command and env");
	b->res.mem = a->res.mem;
	b->health.interval_ms = 250;
	assert_false(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "health.interval_ms differs: a rollout may change only image, "
				 "command and env");
	b->health.interval_ms = a->health.interval_ms;
	b->replicas = 4;
	assert_false(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "replicas differs: a rollout may change only image, command and "
				 "env");
	b->replicas = a->replicas;
	b->autoscale.set = false;
	assert_false(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "autoscale differs: a rollout may change only image, command and "
				 "env");
	b->autoscale.set = true;
	b->rollout_deadline_ms = 1000;
	assert_false(spec_same_except_version(a, b, why, sizeof(why)));
	assert_string_equal(why, "rollout.deadline_ms differs: a rollout may change only image, "
				 "command and env");
	b->rollout_deadline_ms = a->rollout_deadline_ms;
	b->reschedule_max = 0;
	assert_false(spec_same_except_version(a, b, NULL, 0));
	b->reschedule_max = a->reschedule_max;
	assert_true(spec_same_except_version(a, b, why, sizeof(why)));

	/* Another kind: the first differing key is named, and a short buffer
	 * is cut, not overrun. */
	t = parse_good("resnet50.yaml");
	assert_false(spec_same_except_version(a, t, why, sizeof(why)));
	assert_string_equal(why, "name differs: a rollout may change only image, command and env");
	free(t->name);
	t->name = xstrdup(a->name);
	assert_false(spec_same_except_version(a, t, why, sizeof(why)));
	assert_string_equal(why, "kind differs: a rollout may change only image, command and env");
	assert_false(spec_same_except_version(a, t, why, 5));
	assert_string_equal(why, "kind");
	spec_free(t);
	spec_free(a);
	spec_free(b);
}

static void test_names_and_strings(void **state)
{
	char n63[64], n64[65];
	struct spec s;

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'a', 64);
	n64[64] = '\0';
	assert_true(spec_name_ok("a"));
	assert_true(spec_name_ok("0job"));
	assert_true(spec_name_ok("bert-serve.v2_1"));
	assert_true(spec_name_ok(n63));
	assert_false(spec_name_ok(n64));
	assert_false(spec_name_ok(""));
	assert_false(spec_name_ok(NULL));
	assert_false(spec_name_ok("-job"));
	assert_false(spec_name_ok(".job"));
	assert_false(spec_name_ok("Job"));
	assert_false(spec_name_ok("job name"));
	assert_false(spec_name_ok("job/x"));

	assert_string_equal(spec_kind_str(SPEC_TRAIN), "train");
	assert_string_equal(spec_kind_str(SPEC_SERVE), "serve");
	assert_string_equal(spec_kind_str(SPEC_BATCH), "batch");
	assert_string_equal(spec_restart_str(RESTART_NEVER), "never");
	assert_string_equal(spec_restart_str(RESTART_ON_FAILURE), "on-failure");
	assert_string_equal(spec_restart_str(RESTART_ALWAYS), "always");

	memset(&s, 0, sizeof(s));
	s.kind = SPEC_SERVE;
	s.replicas = UINT32_MAX;
	s.standby = 2;
	assert_int_equal(spec_ntasks(&s), UINT32_MAX); /* saturates */
	spec_free(NULL);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_train),
		cmocka_unit_test(test_good_serve),
		cmocka_unit_test(test_good_serve_tcp),
		cmocka_unit_test(test_good_batch),
		cmocka_unit_test(test_good_defaults),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_bad_files_all_listed),
		cmocka_unit_test(test_parse_file),
		cmocka_unit_test(test_yaml_misc),
		cmocka_unit_test(test_queue),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_json_errors),
		cmocka_unit_test(test_health_forms),
		cmocka_unit_test(test_health_target),
		cmocka_unit_test(test_autoscale_reschedule_rollout),
		cmocka_unit_test(test_json_new_fields),
		cmocka_unit_test(test_same_except_version),
		cmocka_unit_test(test_max_cost),
		cmocka_unit_test(test_names_and_strings),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
