/* What every benchmark program here needs: a monotonic clock and a
 * comparison for qsort to take medians. Header-only (each bench_*.c is its
 * own program). */
#ifndef SIMCLR_BENCH_UTIL_H
#define SIMCLR_BENCH_UTIL_H

#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort order for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
