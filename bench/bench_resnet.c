/* Training throughput of a ResNet encoder (forward TRAIN + backward, no
 * input gradient), as in one SimCLR step's encoder pass.
 *
 *   bench_resnet [batch] [threads] [iters] [width] [size] [depth]
 *   defaults:    256     2         5       64      32     18     (CIFAR stem)
 *
 * Prints one line: images/s (median over iters, after a warm-up step), peak
 * resident memory of this process, and OpenBLAS's kernel set. */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "simclr.h"

#ifdef SIMCLR_OPENBLAS
char *openblas_get_corename(void);
#endif

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) != SIMCLR_OK) {                                                                 \
            fprintf(stderr, "bench_resnet: %s failed: %s\n", #expr, simclr_last_error());          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    int batch = argc > 1 ? atoi(argv[1]) : 256, threads = argc > 2 ? atoi(argv[2]) : 2;
    int iters = argc > 3 ? atoi(argv[3]) : 5, width = argc > 4 ? atoi(argv[4]) : 64;
    int size = argc > 5 ? atoi(argv[5]) : 32, depth = argc > 6 ? atoi(argv[6]) : 18;
    if (batch < 1 || threads < 1 || iters < 1 || width < 1 || size < 1) {
        fprintf(stderr, "usage: bench_resnet [batch] [threads] [iters] [width] [size] [depth]\n");
        return 2;
    }
    simclr_context *ctx;
    simclr_module *m;
    TRY(simclr_context_create("cpu", threads, NULL, &ctx));
    TRY(simclr_resnet_create_v2(ctx, depth, width, 3, SIMCLR_STEM_CIFAR, 1, &m));
    int64_t xs[4] = {batch, 3, size, size}, ys[2] = {batch, simclr_module_output_dim(m)};
    simclr_tensor *x, *y, *dy;
    TRY(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &x));
    TRY(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y));
    TRY(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &dy));
    float *xd = simclr_tensor_data(x), *dyd = simclr_tensor_data(dy);
    for (int64_t i = 0; i < simclr_tensor_numel(x); i++) xd[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (int64_t i = 0; i < simclr_tensor_numel(dy); i++) dyd[i] = (float)((i * 40503u) % 200) / 100.0f - 1.0f;

    double *t = malloc((size_t)iters * sizeof *t);
    for (int it = -1; it < iters; it++) { /* iteration -1 warms up (sizes the arena) */
        double t0 = bench_now();
        TRY(simclr_module_zero_grad(m));
        TRY(simclr_module_forward(m, x, SIMCLR_TRAIN, y));
        TRY(simclr_module_backward(m, dy, NULL));
        if (it >= 0) t[it] = bench_now() - t0;
    }
    qsort(t, (size_t)iters, sizeof *t, bench_cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *core = "unknown";
#ifdef SIMCLR_OPENBLAS
    core = openblas_get_corename();
#endif
    printf("images_per_sec=%.2f maxrss_mb=%.0f blas=openblas:%s\n", batch / t[iters / 2],
           (double)ru.ru_maxrss / 1024.0, core);
    free(t);
    simclr_tensor_destroy(x), simclr_tensor_destroy(y), simclr_tensor_destroy(dy);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
    return 0;
}
