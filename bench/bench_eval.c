/* Embedding extraction: EVAL forward of a ResNet-18 encoder (CIFAR stem),
 * the work of simclr_extract_features and of a service embedding images.
 *
 *   bench_eval THREADS ITERS BATCH WIDTH SIZE CHANNELS
 *
 * Prints images/s (median over ITERS after a warm-up pass that sizes the
 * arena), the peak resident memory of the process, the instruction-set copy
 * the context runs and OpenBLAS's kernel set. BATCH 1 measures the latency
 * of one image (reported as images/s; 1000/x is milliseconds). */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include "simclr.h"

#ifdef SIMCLR_OPENBLAS
char *openblas_get_corename(void);
#endif

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) != SIMCLR_OK) {                                                                 \
            fprintf(stderr, "bench_eval: %s failed: %s\n", #expr, simclr_last_error());            \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench_eval THREADS ITERS BATCH WIDTH SIZE CHANNELS\n");
        return 2;
    }
    int threads = atoi(argv[1]), iters = atoi(argv[2]), batch = atoi(argv[3]);
    int width = atoi(argv[4]), size = atoi(argv[5]), channels = atoi(argv[6]);
    if (threads < 1 || iters < 1 || batch < 1 || width < 1 || size < 1 || channels < 1) {
        fprintf(stderr, "bench_eval: every argument must be >= 1\n");
        return 2;
    }
    simclr_context *ctx;
    simclr_module *m;
    TRY(simclr_context_create("cpu", threads, NULL, &ctx));
    TRY(simclr_resnet_create_v2(ctx, 18, width, channels, SIMCLR_STEM_CIFAR, 1, &m));
    int64_t xs[4] = {batch, channels, size, size}, ys[2] = {batch, simclr_module_output_dim(m)};
    simclr_tensor *x, *y;
    TRY(simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &x));
    TRY(simclr_tensor_create(ctx, SIMCLR_F32, 2, ys, &y));
    float *xd = simclr_tensor_data(x);
    for (int64_t i = 0; i < simclr_tensor_numel(x); i++) xd[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;

    /* Small batches repeat the pass until it takes long enough to time. */
    int reps = batch >= 32 ? 1 : 32 / batch;
    double *t = malloc((size_t)iters * sizeof *t);
    for (int it = -1; it < iters; it++) {
        double t0 = bench_now();
        for (int r = 0; r < reps; r++) TRY(simclr_module_forward(m, x, SIMCLR_EVAL, y));
        if (it >= 0) t[it] = (bench_now() - t0) / reps;
    }
    qsort(t, (size_t)iters, sizeof *t, bench_cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *core = "unknown";
#ifdef SIMCLR_OPENBLAS
    core = openblas_get_corename();
#endif
    printf("%.2f\n# maxrss_mb=%.0f isa=%s blas=openblas:%s\n", batch / t[iters / 2], (double)ru.ru_maxrss / 1024.0,
           simclr_context_isa(ctx), core);
    free(t);
    simclr_tensor_destroy(x), simclr_tensor_destroy(y);
    simclr_module_destroy(m);
    simclr_context_destroy(ctx);
    return 0;
}
