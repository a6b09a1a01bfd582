/*
 * ctl.h - what mlctl's verb files share (mlctl.c): the request helper,
 * exits with a message, and JSON accessors for printing replies.
 */
#ifndef MLSCHED_CTL_H
#define MLSCHED_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

extern bool json_out; /* -o json */

/* Print "mlctl: ..." and exit with code (1 refused, 2 usage, 3 no master). */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* Send a request (takes body) and return the OK body (caller deletes); an
 * error reply is printed and exits 1. */
cJSON *call(uint16_t type, cJSON *body);
void print_json(const cJSON *o);
/* A string ("" when missing) or a number (0) member of o. */
const char *str(const cJSON *o, const char *k);
double num(const cJSON *o, const char *k);
void fmt_size(uint64_t b, char *buf, size_t len);
/* How long ago a wall-clock ms time was: "3s", "2m". */
void fmt_age(uint64_t wall, char *buf, size_t len);
/* --help or -h among the verb's arguments: print usage, exit 0. */
void verb_help(int argc, char **argv, const char *usage);
/* The job's status object (caller deletes). */
cJSON *get_job(const char *ref);

/* serve.c: verbs for serve jobs. */
int cmd_endpoints(int argc, char **argv);
int cmd_scale(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_history(int argc, char **argv);
/* top.c */
int cmd_top(int argc, char **argv);
/* pools.c */
int cmd_pools(int argc, char **argv);
/* nodes.c: mlctl nodes remove (argv[0] is "remove"). */
int cmd_nodes_remove(int argc, char **argv);
/* queues.c */
int cmd_queues(int argc, char **argv);
/* The serve part of `mlctl status`: roles, health, promotions, scaling. */
void serve_status(const cJSON *job);

#endif
