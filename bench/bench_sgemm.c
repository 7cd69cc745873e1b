/* OpenBLAS sgemm's own throughput at 1 and 2 threads: the ceiling the
 * convolution figures are read against, and the thread scaling the
 * library's 1 -> 2 thread speedup is compared with (bench_step.sh).
 *
 *   bench_sgemm [SIZE] [REPEATS]     (square SIZE x SIZE products)
 *
 * Prints one line per thread count: GFLOP/s, the median of REPEATS. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef SIMCLR_OPENBLAS
void openblas_set_num_threads(int);
char *openblas_get_corename(void);
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1536, repeats = argc > 2 ? atoi(argv[2]) : 7;
    if (n < 16 || repeats < 1) {
        fprintf(stderr, "usage: bench_sgemm [SIZE >= 16] [REPEATS >= 1]\n");
        return 2;
    }
    float *a = malloc((size_t)n * (size_t)n * sizeof(float)), *b = malloc((size_t)n * (size_t)n * sizeof(float));
    float *c = malloc((size_t)n * (size_t)n * sizeof(float));
    double *t = malloc((size_t)repeats * sizeof(double));
    if (!a || !b || !c || !t) {
        fprintf(stderr, "bench_sgemm: out of memory\n");
        return 1;
    }
    for (long i = 0; i < (long)n * n; i++) a[i] = (float)(i % 17) * 0.01f, b[i] = (float)(i % 13) * 0.01f;
#ifdef SIMCLR_OPENBLAS
    printf("# openblas core: %s\n", openblas_get_corename());
#endif
    for (int threads = 1; threads <= 2; threads++) {
#ifdef SIMCLR_OPENBLAS
        openblas_set_num_threads(threads);
#else
        if (threads > 1) break; /* another CBLAS: its own threading, not set here */
#endif
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int r = 0; r < repeats; r++) {
            double t0 = now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            t[r] = now() - t0;
        }
        qsort(t, (size_t)repeats, sizeof(double), cmp_double);
        printf("sgemm %dx%dx%d threads %d: %.1f GFLOP/s\n", n, n, n, threads,
               2.0 * n * (double)n * n / t[repeats / 2] / 1e9);
    }
    free(a), free(b), free(c), free(t);
    return 0;
}
