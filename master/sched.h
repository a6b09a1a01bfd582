/*
 * sched.h - placement.  The walking skeleton places with first fit: each
 * pending job, highest priority first then oldest, gets all its tasks placed
 * on ready nodes whose free resources fit, or none of them (a gang is never
 * partly placed).  A job that cannot be placed keeps a reason that says
 * what is missing.  The scheduler proper (indexes, policies, preemption)
 * replaces this behind sched_run().
 */
#ifndef MLSCHED_SCHED_H
#define MLSCHED_SCHED_H

#include "master.h"

#endif
