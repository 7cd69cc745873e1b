/* Every convolution of ResNet-18 (CIFAR stem) for the two benchmark models:
 * width 16 on 28x28x1 (the Fashion-MNIST demo's) and width 64 on 32x32x3.
 * Per layer shape, forward and backward (weight + input gradient), on every
 * path that applies: im2col + sgemm, the sliding-window kernel (stride 1),
 * Winograd F(2x2,3x3) and F(4x4,3x3) (3x3 stride 1), and the path
 * SIMCLR_CONV_AUTO takes. Each figure is the median time of REPEATS runs and
 * the effective throughput: direct-convolution FLOPs (2 * n*oh*ow * cout *
 * cin * k*k forward, twice that backward) / time, so the columns compare
 * directly and Winograd can exceed sgemm's peak. The AUTO column summed over
 * the network is the convolution part of a training step's profile; the
 * rules that pick the path (src/backend/cpu/winograd.c, sliding.c) are
 * fitted from these columns on an idle machine.
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
    int64_t cin, cout, hw, k, stride, count; /* count: how many such layers the network has */
} layer;

static const layer layers[] = {
    {"w16 28x28", 1, 16, 28, 3, 1, 1},    {"w16 28x28", 16, 16, 28, 3, 1, 4},   {"w16 28x28", 16, 32, 28, 3, 2, 1},
    {"w16 28x28", 16, 32, 28, 1, 2, 1},   {"w16 28x28", 32, 32, 14, 3, 1, 3},   {"w16 28x28", 32, 64, 14, 3, 2, 1},
    {"w16 28x28", 32, 64, 14, 1, 2, 1},   {"w16 28x28", 64, 64, 7, 3, 1, 3},    {"w16 28x28", 64, 128, 7, 3, 2, 1},
    {"w16 28x28", 64, 128, 7, 1, 2, 1},   {"w16 28x28", 128, 128, 4, 3, 1, 3}, {"w64 32x32", 3, 64, 32, 3, 1, 1},
    {"w64 32x32", 64, 64, 32, 3, 1, 4},   {"w64 32x32", 64, 128, 32, 3, 2, 1}, {"w64 32x32", 64, 128, 32, 1, 2, 1},
    {"w64 32x32", 128, 128, 16, 3, 1, 3}, {"w64 32x32", 128, 256, 16, 3, 2, 1}, {"w64 32x32", 128, 256, 16, 1, 2, 1},
    {"w64 32x32", 256, 256, 8, 3, 1, 3},  {"w64 32x32", 256, 512, 8, 3, 2, 1},  {"w64 32x32", 256, 512, 8, 1, 2, 1},
    {"w64 32x32", 512, 512, 4, 3, 1, 3},
};

/* The paths, forced through the context's internal test switches. */
enum { IM2COL, SLIDING, F2, F4, AUTO, N_PATHS };
static const char *const path_names[N_PATHS] = {"im2col", "sliding", "F(2x2)", "F(4x4)", "AUTO"};

static int applies(const simclr__conv_desc *d, int path)
{
    if (path == SLIDING) return simclr__cpu_sliding_eligible(d);
    if (path == F2 || path == F4) return simclr__cpu_winograd_eligible(d);
    return 1;
}

static void force(simclr_context *ctx, int path)
{
    ctx->conv_tile = path == F2 ? 2 : path == F4 ? 4 : 0;
    ctx->conv_exact = path == IM2COL ? 1 : path == SLIDING ? 2 : 0;
    simclr_context_set(ctx, SIMCLR_CTX_CONV_ALGO, path == AUTO ? SIMCLR_CONV_AUTO : SIMCLR_CONV_DIRECT);
}

/* What AUTO runs for the forward pass and the input gradient. */
static const char *auto_name(simclr_context *ctx, const simclr__conv_desc *d, int input_grad)
{
    force(ctx, AUTO);
    int tile = simclr__cpu_winograd_choose(ctx, d);
    if (tile) return tile == 2 ? "F2" : "F4";
    if (simclr__cpu_sliding_choose(ctx, d, input_grad)) return "sliding";
    return "im2col";
}

static double run(simclr_context *ctx, const simclr__conv_desc *d, int path, int backward, const float *x,
                  const float *w, const float *dy, float *y, float *dw, float *dx, float *ws)
{
    force(ctx, path);
    double t0 = now();
    if (backward)
        ctx->backend->conv2d_backward(ctx, d, x, w, dy, dw, NULL, dx, 0, ws);
    else
        ctx->backend->conv2d_forward(ctx, d, x, w, NULL, y, ws);
    return now() - t0;
}

static void print_total(const char *model, double total[2][N_PATHS])
{
    printf("%-10s %-22s      ", model, "total (AUTO: profile)");
    for (int p = 0; p < N_PATHS; p++) printf("| %7.1f/%-7.1f ms ", total[0][p], total[1][p]);
    printf("| fwd/bwd\n");
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
    printf("%-10s %-22s %-4s", "model", "layer (x count)", "pass");
    for (int p = 0; p < N_PATHS; p++) printf(" | %-7s ms GFLOP/s", path_names[p]);
    printf(" | AUTO runs\n");
    double total[2][N_PATHS] = {{0}};
    const char *last_model = "";
    for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++) {
        const layer *l = &layers[i];
        if (strcmp(l->model, last_model) != 0 && i > 0) {
            print_total(last_model, total);
            memset(total, 0, sizeof total);
        }
        last_model = l->model;
        int64_t pad = l->k / 2, o = (l->hw + 2 * pad - l->k) / l->stride + 1;
        simclr__conv_desc d = {.n = batch, .cin = l->cin, .h = l->hw, .w = l->hw, .cout = l->cout, .kh = l->k,
                               .kw = l->k, .stride = l->stride, .pad = pad, .oh = o, .ow = o};
        int64_t nx = d.cin * d.n * d.h * d.w, ny = d.cout * d.n * d.oh * d.ow, nw = d.cout * d.cin * d.kh * d.kw;
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
        double flops = 2.0 * (double)(d.n * d.oh * d.ow) * (double)(d.cout * d.cin * d.kh * d.kw);
        for (int pass = 0; pass < 2; pass++) {
            char name[40];
            snprintf(name, sizeof name, "%lld>%lld k%lld s%lld @%lld x%lld", (long long)l->cin, (long long)l->cout,
                     (long long)l->k, (long long)l->stride, (long long)l->hw, (long long)l->count);
            printf("%-10s %-22s %-4s", l->model, name, pass ? "bwd" : "fwd");
            for (int p = 0; p < N_PATHS; p++) {
                if (!applies(&d, p)) {
                    printf(" | %18s", "-");
                    continue;
                }
                double *t = malloc((size_t)repeats * sizeof(double));
                run(ctx, &d, p, pass, x, w, dy, y, dw, dx, ws); /* warm-up */
                for (int r = 0; r < repeats; r++) t[r] = run(ctx, &d, p, pass, x, w, dy, y, dw, dx, ws);
                qsort(t, (size_t)repeats, sizeof(double), cmp_double);
                double ms = 1e3 * t[repeats / 2], f = flops * (pass ? 2.0 : 1.0);
                total[pass][p] += ms * (double)l->count;
                printf(" | %7.2f %10.1f", ms, f / (ms * 1e6));
                free(t);
            }
            printf(" | %s\n", pass ? auto_name(ctx, &d, 1) : auto_name(ctx, &d, 0));
        }
        free(x), free(dx), free(y), free(dy), free(w), free(dw), free(ws);
    }
    print_total(last_model, total);
    simclr_context_destroy(ctx);
    return 0;
}
