/*
 * sysinfo.c - node capacity and utilization from /proc and sysconf, and
 * per-container usage from cgroups (v1 or v2).
 */
#include "sysinfo.h"
#include "err.h"
#include "util.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROC_FILE_MAX (1u << 20)
#define CGROUP_ROOT "/sys/fs/cgroup"

uint32_t sysinfo_cpu_milli(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if ((unsigned long)n > UINT32_MAX / 1000)
		return UINT32_MAX / 1000 * 1000;
	return (uint32_t)n * 1000;
}

/* The value of "<key>: N kB" in /proc/meminfo, in bytes; false if missing. */
static bool meminfo_get(const char *text, const char *key, uint64_t *bytes)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
			char *end;
			unsigned long long v = strtoull(p + klen + 1, &end, 10);

			if (end == p + klen + 1)
				return false;
			*bytes = (uint64_t)v * 1024;
			return true;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return false;
}

static int meminfo(uint64_t *total, uint64_t *avail)
{
	char *text = NULL;
	int rv;

	if ((rv = file_read("/proc/meminfo", PROC_FILE_MAX, &text, NULL)) != 0)
		return rv;
	rv = meminfo_get(text, "MemTotal", total) && meminfo_get(text, "MemAvailable", avail)
		     ? 0
		     : ERR_IO;
	free(text);
	return rv;
}

uint64_t sysinfo_mem_total(void)
{
	uint64_t total, avail;

	return meminfo(&total, &avail) == 0 ? total : 0;
}

uint64_t sysinfo_mem_used(void)
{
	uint64_t total, avail;

	if (meminfo(&total, &avail) != 0 || avail > total)
		return 0;
	return total - avail;
}

/* Busy and total jiffies of the "cpu" line of /proc/stat. */
static int proc_stat(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = {0};
	char *text = NULL;
	int rv, n;

	if ((rv = file_read("/proc/stat", PROC_FILE_MAX, &text, NULL)) != 0)
		return rv;
	/* user nice system idle iowait irq softirq steal; guest time is
	 * already counted in user and nice. */
	n = sscanf(text, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	free(text);
	if (n < 4)
		return ERR_IO;
	*total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
	*busy = *total - v[3] - v[4];
	return 0;
}

double sysinfo_cpu_pct(struct cpu_sampler *s)
{
	uint64_t busy, total, db, dt;
	bool first = s->total == 0;
	double pct;

	if (proc_stat(&busy, &total) != 0)
		return 0;
	db = busy - s->busy;
	dt = total - s->total;
	/* Counters only grow; a drop means a bad read, so start over. */
	if (busy < s->busy || total < s->total)
		first = true;
	s->busy = busy;
	s->total = total;
	if (first || dt == 0)
		return 0;
	pct = 100.0 * (double)db / (double)dt;
	return pct > 100 ? 100 : pct;
}

/* A single unsigned number file (memory.current, cpuacct.usage...). */
static int read_u64(const char *path, uint64_t *v)
{
	char *text = NULL, *end;
	int rv;

	if ((rv = file_read(path, 4096, &text, NULL)) != 0)
		return rv;
	*v = strtoull(text, &end, 10);
	rv = end == text ? ERR_IO : 0;
	free(text);
	return rv;
}

/* "usage_usec N" from a v2 cpu.stat, in ns. */
static int read_usage_usec(const char *path, uint64_t *ns)
{
	char *text = NULL, *p;
	int rv;

	if ((rv = file_read(path, 64 * 1024, &text, NULL)) != 0)
		return rv;
	rv = ERR_IO;
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "usage_usec ", 11) == 0) {
			*ns = strtoull(p + 11, NULL, 10) * 1000;
			rv = 0;
			break;
		}
	}
	free(text);
	return rv;
}

static bool cgroup_v2(void)
{
	return access(CGROUP_ROOT "/cgroup.controllers", F_OK) == 0;
}

int cgroup_usage(const char *path, uint64_t *cpu_ns, uint64_t *mem_bytes)
{
	char *cpu_file = NULL, *mem_file = NULL;
	int rv;

	/* The path comes from our own config, but never let it climb out of
	 * the cgroup file system. */
	if (!path || path[0] != '/' || strstr(path, "/../") ||
	    (strlen(path) >= 3 && strcmp(path + strlen(path) - 3, "/..") == 0))
		return ERR_INVAL;
	if (cgroup_v2()) {
		cpu_file = xasprintf(CGROUP_ROOT "%s/cpu.stat", path);
		mem_file = xasprintf(CGROUP_ROOT "%s/memory.current", path);
		rv = read_usage_usec(cpu_file, cpu_ns);
	} else {
		cpu_file = xasprintf(CGROUP_ROOT "/cpuacct%s/cpuacct.usage", path);
		mem_file = xasprintf(CGROUP_ROOT "/memory%s/memory.usage_in_bytes", path);
		rv = read_u64(cpu_file, cpu_ns);
	}
	if (rv != 0)
		goto out;
	rv = read_u64(mem_file, mem_bytes);
out:
	free(cpu_file);
	free(mem_file);
	return rv;
}
