/*
 * sysinfo.h - what the node has and how busy it is, from /proc and cgroups.
 */
#ifndef MLSCHED_SYSINFO_H
#define MLSCHED_SYSINFO_H

#include <stdint.h>

/* Online CPUs * 1000. */
uint32_t sysinfo_cpu_milli(void);
/* MemTotal in bytes (0 if /proc/meminfo is unreadable). */
uint64_t sysinfo_mem_total(void);
/* MemTotal - MemAvailable in bytes. */
uint64_t sysinfo_mem_used(void);

/* Node CPU use between two calls.  Keep one struct per sampler. */
struct cpu_sampler {
	uint64_t busy, total; /* jiffies at the last sample */
};
/* Percent busy since the previous call, 0..100 (0 on the first call). */
double sysinfo_cpu_pct(struct cpu_sampler *s);

/*
 * Usage of one container cgroup: cumulative CPU time in ns and memory in use
 * in bytes.  path is the cgroupsPath given to runc ("/mlsched/<id>"); both
 * cgroup v1 (cpuacct, memory controllers) and v2 (unified) are read.
 * 0 or ERR_NOENT when the cgroup is gone.
 */
int cgroup_usage(const char *path, uint64_t *cpu_ns, uint64_t *mem_bytes);

#endif
