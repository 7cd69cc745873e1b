/* The "cpu" backend: cblas for matrix products, the context's thread pool
 * for elementwise passes and reductions.
 *
 * One level of threading: Debian's OpenBLAS is the pthread build and does
 * not notice an outer parallel region, so BLAS is never called from inside a
 * pool task; BLAS threads the big products itself, with the context's thread
 * count. */
#include <cblas.h>
#include <string.h>

#include "cpu_kernels.h"

#ifdef SIMCLR_OPENBLAS
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
#endif

void simclr__cpu_blas_threads(simclr_context *ctx)
{
#ifdef SIMCLR_OPENBLAS
    if (openblas_get_num_threads() != ctx->n_threads) openblas_set_num_threads(ctx->n_threads);
#else
    (void)ctx;
#endif
}

void simclr__cpu_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc)
{
    if (k == 0) {
        /* BLAS leaves C alone when k = 0 only for beta = 1; make beta = 0 NaN-safe. */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    if (beta == 0.0f)
        for (int64_t i = 0; i < m; i++) memset(c + i * ldc, 0, (size_t)n * sizeof(float));
    simclr__cpu_blas_threads(ctx);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

typedef struct {
    int64_t n;
    float alpha;
    const float *x, *y;
    float *out;
    double partial[256];
} ew_job;

static void axpy_task(void *arg, int64_t b, int64_t e, int w)
{
    ew_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) j->out[i] += j->alpha * j->x[i];
}

static void scale_task(void *arg, int64_t b, int64_t e, int w)
{
    ew_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) j->out[i] *= j->alpha;
}

static void add_task(void *arg, int64_t b, int64_t e, int w)
{
    ew_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) j->out[i] = j->x[i] + j->y[i];
}

/* Float accumulators in 8 lanes (vectorizable), folded into double per chunk. */
static void sum_task(void *arg, int64_t b, int64_t e, int w)
{
    ew_job *j = arg;
    float lane[8] = {0};
    int64_t i = b;
    double total = 0;
    while (i < e) {
        int64_t stop = i + 4096 < e ? i + 4096 : e;
        for (; i + 8 <= stop; i += 8)
            for (int l = 0; l < 8; l++) lane[l] += j->x[i + l];
        for (; i < stop; i++) lane[0] += j->x[i];
        for (int l = 0; l < 8; l++) {
            total += lane[l];
            lane[l] = 0;
        }
    }
    j->partial[w] = total;
}

static void dot_task(void *arg, int64_t b, int64_t e, int w)
{
    ew_job *j = arg;
    float lane[8] = {0};
    int64_t i = b;
    double total = 0;
    while (i < e) {
        int64_t stop = i + 4096 < e ? i + 4096 : e;
        for (; i + 8 <= stop; i += 8)
            for (int l = 0; l < 8; l++) lane[l] += j->x[i + l] * j->y[i + l];
        for (; i < stop; i++) lane[0] += j->x[i] * j->y[i];
        for (int l = 0; l < 8; l++) {
            total += lane[l];
            lane[l] = 0;
        }
    }
    j->partial[w] = total;
}

static void cpu_axpy(simclr_context *ctx, int64_t n, float alpha, const float *x, float *y)
{
    ew_job j = {.n = n, .alpha = alpha, .x = x, .out = y};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, axpy_task, &j);
}

static void cpu_scale(simclr_context *ctx, int64_t n, float alpha, float *x)
{
    ew_job j = {.n = n, .alpha = alpha, .out = x};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, scale_task, &j);
}

static void cpu_add(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out)
{
    ew_job j = {.n = n, .x = a, .y = b, .out = out};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, add_task, &j);
}

static double reduce(simclr_context *ctx, int64_t n, const float *x, const float *y, simclr__task_fn fn)
{
    ew_job j = {.n = n, .x = x, .y = y};
    memset(j.partial, 0, sizeof j.partial);
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, fn, &j);
    double s = 0;
    for (int w = 0; w < simclr__pool_size(ctx->pool); w++) s += j.partial[w];
    return s;
}

static double cpu_sum(simclr_context *ctx, int64_t n, const float *x) { return reduce(ctx, n, x, NULL, sum_task); }

static double cpu_dot(simclr_context *ctx, int64_t n, const float *x, const float *y)
{
    return reduce(ctx, n, x, y, dot_task);
}

typedef struct {
    int64_t rows, cols;
    const float *x;
    float *out;
} rows_job;

/* Column sums: each task owns a band of columns and streams the rows. */
static void sum_rows_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    (void)w;
    for (int64_t c = b; c < e; c++) j->out[c] = 0;
    for (int64_t r = 0; r < j->rows; r++) {
        const float *row = j->x + r * j->cols;
        for (int64_t c = b; c < e; c++) j->out[c] += row[c];
    }
}

static void sum_cols_task(void *arg, int64_t b, int64_t e, int w)
{
    rows_job *j = arg;
    ew_job sub = {.x = NULL};
    for (int64_t r = b; r < e; r++) {
        sub.x = j->x + r * j->cols;
        sum_task(&sub, 0, j->cols, 0);
        j->out[r] = (float)sub.partial[0];
    }
    (void)w;
}

static void cpu_sum_rows(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    rows_job j = {rows, cols, x, out};
    int64_t grain = SIMCLR__GRAIN / (rows > 0 ? rows : 1);
    simclr__pool_for(ctx->pool, cols, grain, sum_rows_task, &j);
}

static void cpu_sum_cols(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    rows_job j = {rows, cols, x, out};
    int64_t grain = SIMCLR__GRAIN / (cols > 0 ? cols : 1);
    simclr__pool_for(ctx->pool, rows, grain, sum_cols_task, &j);
}

const simclr__backend simclr__backend_cpu = {
    .name = "cpu",
    .api_version = SIMCLR__BACKEND_API_VERSION,
    .gemm = simclr__cpu_gemm,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .add = cpu_add,
    .sum = cpu_sum,
    .dot = cpu_dot,
    .sum_rows = cpu_sum_rows,
    .sum_cols = cpu_sum_cols,
    .swap01 = simclr__cpu_swap01,
    .conv2d_workspace = simclr__cpu_conv2d_workspace,
    .conv2d_forward = simclr__cpu_conv2d_forward,
    .conv2d_backward = simclr__cpu_conv2d_backward,
    .row_moments = simclr__cpu_row_moments,
    .row_affine = simclr__cpu_row_affine,
    .bn_backward_reduce = simclr__cpu_bn_backward_reduce,
    .bn_backward_dx = simclr__cpu_bn_backward_dx,
    .relu_backward = simclr__cpu_relu_backward,
    .maxpool_forward = simclr__cpu_maxpool_forward,
    .maxpool_backward = simclr__cpu_maxpool_backward,
    .avgpool_forward = simclr__cpu_avgpool_forward,
    .avgpool_backward = simclr__cpu_avgpool_backward,
};
