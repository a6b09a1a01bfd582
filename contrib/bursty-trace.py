#!/usr/bin/env python3
"""bursty-trace.py - write a synthetic job list with a day/night arrival
pattern, in the layout mlbench replay reads (name,cpu_milli,memory_mib,
num_gpu,gpu_milli,gpu_spec,creation_time,deletion_time), to stdout.

    contrib/bursty-trace.py [--days 7] [--jobs-per-hour 34] [--seed 1] > jobs.csv

Arrivals are a Poisson process whose rate follows the day: rate x
(1 + 0.8 sin), highest at 12:00 and lowest at 00:00 (0.2x to 1.8x the mean).
Each job asks 1, 2, 4 or 8 whole GPUs (60/15/15/10 %) of any model, 8 CPUs
and 32 GiB per GPU, and runs a log-normal time (median 1 h, sigma 1, at most
24 h).  The same seed gives the same file.  tests/data/bursty/jobs.csv is
the output of the defaults.
"""
import argparse
import math
import random
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--jobs-per-hour", type=float, default=34.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.days < 1 or a.jobs_per_hour <= 0:
        sys.exit("bursty-trace.py: --days must be at least 1 and --jobs-per-hour positive")
    rng = random.Random(a.seed)
    peak = a.jobs_per_hour * 1.8 / 3600.0  # per second, the highest rate
    end = a.days * 86400
    t, n = 0.0, 0
    out = sys.stdout
    out.write("name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,creation_time,"
              "deletion_time\n")
    while True:
        # Thinning: candidates at the peak rate, kept with rate(t)/peak.
        t += rng.expovariate(peak)
        if t >= end:
            break
        rate = 1 + 0.8 * math.sin(2 * math.pi * (t / 86400.0 - 0.25))
        if rng.random() * 1.8 > rate:
            continue
        u = rng.random()
        gpus = 1 if u < 0.60 else 2 if u < 0.75 else 4 if u < 0.90 else 8
        run = min(rng.lognormvariate(math.log(3600), 1.0), 86400)
        n += 1
        start = int(t)
        out.write("job-%05d,%d,%d,%d,%d,,%d,%d\n" % (n, 8000 * gpus, 32768 * gpus, gpus,
                                                    1000 if gpus == 1 else 0, start,
                                                    start + max(1, int(run))))


if __name__ == "__main__":
    main()
