/* Direct (im2col + sgemm) against Winograd F(2x2,3x3) and F(4x4,3x3) on the
 * 3x3 stride-1 convolutions of ResNet-18: width 16 on 28x28x1 (the
 * Fashion-MNIST demo's model) and width 64 on 32x32x3, CIFAR stem. Per layer
 * shape, forward and backward (weight + input gradient), the median time of
 * REPEATS runs and the effective throughput: direct-convolution FLOPs
 * (2 * n*oh*ow * cout * cin * 9 forward, twice that backward) / time, so the
 * columns compare directly and Winograd can exceed sgemm's peak. Also the
 * choice of SIMCLR_CONV_AUTO and its cost model's estimates, to fit the
 * model's constants (src/backend/cpu_winograd.c) on an idle machine.
 *   bench_conv [THREADS] [BATCH] [REPEATS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
/* AUTO's choice and cost model: the same logic in every ISA copy. */
#define SIMCLR__CPU_ISA portable
#include "backend/cpu/kernels.h"

#ifdef SIMCLR_OPENBLAS
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

typedef struct {
    const char *model;
    int64_t cin, cout, hw, count; /* count: how many such layers the network has */
} layer;

static const layer layers[] = {
    {"w16 28x28", 1, 16, 28, 1},   {"w16 28x28", 16, 16, 28, 4},  {"w16 28x28", 32, 32, 14, 3},
    {"w16 28x28", 64, 64, 7, 3},   {"w16 28x28", 128, 128, 4, 3}, {"w64 32x32", 3, 64, 32, 1},
    {"w64 32x32", 64, 64, 32, 4},  {"w64 32x32", 128, 128, 16, 3}, {"w64 32x32", 256, 256, 8, 3},
    {"w64 32x32", 512, 512, 4, 3},
};

/* algo: 0 direct (SIMCLR_CONV_DIRECT), 2 or 4 (that tile forced through the
 * context's internal test switch), all through the backend's vtable. */
static double run(simclr_context *ctx, const simclr__conv_desc *d, int algo, int backward, const float *x,
                  const float *w, const float *dy, float *y, float *dw, float *dx, float *ws)
{
    ctx->conv_tile = algo;
    double t0 = now();
    if (backward)
        ctx->backend->conv2d_backward(ctx, d, x, w, dy, dw, NULL, dx, 0, ws);
    else
        ctx->backend->conv2d_forward(ctx, d, x, w, NULL, y, ws);
    double t = now() - t0;
    ctx->conv_tile = 0;
    return t;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2, batch = argc > 2 ? atoi(argv[2]) : 256;
    int repeats = argc > 3 ? atoi(argv[3]) : 5;
    if (threads < 1 || batch < 1 || repeats < 1) {
        fprintf(stderr, "usage: bench_conv [THREADS] [BATCH] [REPEATS]\n");
        return 2;
    }
    simclr_context *ctx;
    if (simclr_context_create("cpu", threads, NULL, &ctx) != SIMCLR_OK) {
        fprintf(stderr, "bench_conv: %s\n", simclr_last_error());
        return 1;
    }
#ifdef SIMCLR_OPENBLAS
    printf("bench_conv: %d threads, batch %d, median of %d, ISA %s, OpenBLAS core %s\n", threads, batch, repeats,
           simclr_context_isa(ctx), openblas_get_corename());
#else
    printf("bench_conv: %d threads, batch %d, median of %d, ISA %s\n", threads, batch, repeats, simclr_context_isa(ctx));
#endif
    printf("%-10s %-16s %-4s | %-23s | %-23s | %-23s | %-6s %s\n", "model", "layer (x count)", "pass",
           "direct ms  GFLOP/s", "F(2x2) ms  GFLOP/s", "F(4x4) ms  GFLOP/s", "AUTO", "model cost direct/F2/F4");
    double total[2][3] = {{0}};
    const char *last_model = "";
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const layer *l = &layers[i];
        if (strcmp(l->model, last_model) != 0 && i > 0) {
            printf("%-10s %-16s       | %9.1f ms fwd %6.1f bwd | %9.1f ms fwd %6.1f bwd | %9.1f ms fwd %6.1f bwd |\n",
                   last_model, "total", total[0][0], total[1][0], total[0][1], total[1][1], total[0][2],
                   total[1][2]);
            memset(total, 0, sizeof total);
        }
        last_model = l->model;
        simclr__conv_desc d = {.n = batch, .cin = l->cin, .h = l->hw, .w = l->hw, .cout = l->cout, .kh = 3, .kw = 3,
                               .stride = 1, .pad = 1, .oh = l->hw, .ow = l->hw};
        int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * 9;
        float *x = malloc((size_t)nx * 4), *dx = malloc((size_t)nx * 4), *y = malloc((size_t)ny * 4);
        float *dy = malloc((size_t)ny * 4), *w = malloc((size_t)nw * 4), *dw = calloc((size_t)nw, 4);
        float *ws = malloc((ctx->backend->conv2d_workspace(ctx, &d) + 1) * 4);
        if (!x || !dx || !y || !dy || !w || !dw || !ws) {
            fprintf(stderr, "bench_conv: out of memory\n");
            return 1;
        }
        for (int64_t k = 0; k < nx; k++) x[k] = (float)((k * 7919) % 1000) / 1000.0f;
        for (int64_t k = 0; k < ny; k++) dy[k] = (float)((k * 104729) % 2001) / 1000.0f - 1.0f;
        for (int64_t k = 0; k < nw; k++) w[k] = (float)((k * 31) % 201) / 1000.0f - 0.1f;
        simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, SIMCLR_CONV_AUTO);
        int auto_pick = simclr__cpu_winograd_choose(ctx, &d);
        simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, SIMCLR_CONV_DIRECT);
        double flops = 2.0 * (double)(d.n * d.oh * d.ow) * (double)(d.cout * d.cin * 9);
        for (int pass = 0; pass < 2; pass++) {
            double ms[3];
            for (int a = 0; a < 3; a++) {
                double *t = malloc((size_t)repeats * sizeof(double));
                run(ctx, &d, 2 * a, pass, x, w, dy, y, dw, dx, ws); /* warm-up */
                for (int r = 0; r < repeats; r++) t[r] = run(ctx, &d, 2 * a, pass, x, w, dy, y, dw, dx, ws);
                qsort(t, (size_t)repeats, sizeof(double), cmp_double);
                ms[a] = 1e3 * t[repeats / 2];
                total[pass][a] += ms[a] * (double)l->count;
                free(t);
            }
            double f = flops * (pass ? 2.0 : 1.0);
            char name[32];
            snprintf(name, sizeof name, "%lld>%lld @%lld x%lld", (long long)l->cin, (long long)l->cout,
                     (long long)l->hw, (long long)l->count);
            printf("%-10s %-16s %-4s | %9.2f  %11.1f | %9.2f  %11.1f | %9.2f  %11.1f | %-6s %.3g / %.3g / %.3g\n",
                   l->model, name, pass ? "bwd" : "fwd", ms[0], f / (ms[0] * 1e6), ms[1], f / (ms[1] * 1e6), ms[2],
                   f / (ms[2] * 1e6), auto_pick == 0 ? "direct" : auto_pick == 2 ? "F2" : "F4",
                   simclr__cpu_winograd_cost(&d, 0), simclr__cpu_winograd_cost(&d, 2),
                   simclr__cpu_winograd_cost(&d, 4));
        }
        free(x), free(dx), free(y), free(dy), free(w), free(dw), free(ws);
    }
    printf("%-10s %-16s       | %9.1f ms fwd %6.1f bwd | %9.1f ms fwd %6.1f bwd | %9.1f ms fwd %6.1f bwd |\n",
           last_model, "total", total[0][0], total[1][0], total[0][1], total[1][1], total[0][2], total[1][2]);
    simclr_context_destroy(ctx);
    return 0;
}
