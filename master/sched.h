/*
 * sched.h - the master's side of scheduling: it turns jobs and nodes into
 * the scheduler core's terms (plugins/sched/sched.h) and applies what a
 * queue pass decides.  Declarations live in master.h with the rest of the
 * master's model.
 *
 * Kinds map onto the core like this:
 *  - train: one request for all workers, placed all or nothing (a gang);
 *  - serve: one request for every replica not placed, spread by default;
 *  - batch: one request per task not placed, at most `parallelism` live.
 * Running jobs are preemption candidates as whole jobs.
 */
#ifndef MLSCHED_MASTER_SCHED_H
#define MLSCHED_MASTER_SCHED_H

#include "master.h"

#endif
