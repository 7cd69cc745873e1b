/* The "cpu" backend: cblas for matrix products, the context's thread pool
 * for everything, products included.
 *
 * One level of threading: Debian's OpenBLAS is the pthread build and does
 * not notice an outer parallel region, and its idle workers spin for a while
 * after every call, stealing the core our pool needs for the elementwise
 * pass that follows (measured: a Fashion-MNIST training step 35% slower on 2
 * cores). So BLAS runs single-threaded (backend/blas_threads.c) and the pool splits each large
 * product into blocks of output columns (or rows), one single-threaded
 * cblas_sgemm per block. */
#include <cblas.h>
#include <string.h>

#include "kernels.h"

static void cpu_acquire(simclr_context *ctx)
{
    (void)ctx;
    simclr__blas_threads_acquire();
}

static void cpu_release(simclr_context *ctx)
{
    (void)ctx;
    simclr__blas_threads_release();
}

typedef struct {
    int ta, tb;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    int64_t lda, ldb, ldc;
    float *c;
    int split_n;   /* blocks of columns of C (else of rows) */
    int64_t width; /* columns (rows) per block */
} gemm_job;

/* Blocks are whole multiples of 16 columns/rows so every block starts on a
 * 64-byte boundary when the matrix does. */
#define GEMM_ALIGN 16
/* A product is cut into about this many blocks, whatever the thread count:
 * OpenBLAS's result for an element depends on the shape of the call that
 * computes it (its edge kernels accumulate in another order), so the block
 * boundaries must be a function of the product's shape alone for the
 * result to be the same bytes at any number of threads. 8 blocks keep up
 * to 8 workers busy. */
#define GEMM_PIECES 8

static void gemm_block(void *arg, int64_t b, int64_t e, int w)
{
    const gemm_job *j = arg;
    (void)w;
    for (int64_t blk = b; blk < e; blk++) {
        int64_t lo = blk * j->width, hi = lo + j->width;
        if (j->split_n) {
            if (hi > j->n) hi = j->n;
            const float *bb = j->tb ? j->b + lo * j->ldb : j->b + lo;
            cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                        (int)j->m, (int)(hi - lo), (int)j->k, j->alpha, j->a, (int)j->lda, bb, (int)j->ldb, j->beta,
                        j->c + lo, (int)j->ldc);
        } else {
            if (hi > j->m) hi = j->m;
            const float *aa = j->ta ? j->a + lo : j->a + lo * j->lda;
            cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
                        (int)(hi - lo), (int)j->n, (int)j->k, j->alpha, aa, (int)j->lda, j->b, (int)j->ldb, j->beta,
                        j->c + lo * j->ldc, (int)j->ldc);
        }
    }
}

static int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

/* The job and its block count for C = op(A) op(B); see GEMM_PIECES. */
static int64_t gemm_plan(gemm_job *j)
{
    int64_t span = j->split_n ? j->n : j->m, other = j->split_n ? j->m : j->n;
    /* About a million multiply-adds per block amortizes waking a worker. */
    int64_t least = round_up((1 << 20) / (other * j->k > 0 ? other * j->k : 1) + 1, GEMM_ALIGN);
    int64_t width = round_up((span + GEMM_PIECES - 1) / GEMM_PIECES, GEMM_ALIGN);
    j->width = width > least ? width : least;
    return (span + j->width - 1) / j->width;
}

static int gemm_k0(int64_t m, int64_t n, int64_t k, float beta, float *c, int64_t ldc)
{
    if (k != 0) return 0;
    /* BLAS leaves C alone when k = 0 only for beta = 1; make beta = 0 NaN-safe. */
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return 1;
}

/* beta = 0: BLAS does not read C ("C need not be set on input", and
 * OpenBLAS zeroes it), so no NaN in a fresh buffer leaks through. */
void simclr__cpu_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc)
{
    if (gemm_k0(m, n, k, beta, c, ldc)) return;
    gemm_job j = {ta, tb, m, n, k, alpha, beta, a, b, lda, ldb, ldc, c, n >= m, 0};
    simclr__pool_for(ctx->pool, gemm_plan(&j), 1, gemm_block, &j);
}

void simclr__cpu_gemm_serial(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (gemm_k0(m, n, k, beta, c, ldc)) return;
    gemm_job j = {ta, tb, m, n, k, alpha, beta, a, b, lda, ldb, ldc, c, n >= m, 0};
    gemm_block(&j, 0, gemm_plan(&j), 0);
}


typedef struct {
    int64_t n;
    float alpha;
    const float *x, *y;
    float *out;
    double partial[SIMCLR__CPU_PIECES_MAX]; /* one slot per piece (reduce) */
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

double simclr__cpu_sum_f32(const float *x, int64_t n)
{
    float lane[8] = {0};
    int64_t i = 0;
    double total = 0;
    while (i < n) {
        int64_t stop = i + 4096 < n ? i + 4096 : n;
        for (; i + 8 <= stop; i += 8)
            for (int l = 0; l < 8; l++) lane[l] += x[i + l];
        for (; i < stop; i++) lane[0] += x[i];
        for (int l = 0; l < 8; l++) {
            total += lane[l];
            lane[l] = 0;
        }
    }
    return total;
}

/* Reductions: the range is cut into pieces whose bounds depend on n alone
 * (at most 256 of them, whole multiples of 4096 elements), each piece's sum
 * lands in its own slot, and the slots are added in order: the same bytes
 * for any thread count. Tasks take ranges of pieces. */
#define REDUCE_PIECES SIMCLR__CPU_PIECES_MAX

int64_t simclr__cpu_piece_width(int64_t n)
{
    int64_t w = (n + REDUCE_PIECES - 1) / REDUCE_PIECES;
    w = (w + 4095) / 4096 * 4096;
    return w > SIMCLR__GRAIN ? w : SIMCLR__GRAIN;
}

typedef struct {
    int64_t n;
    simclr__cpu_piece_fn fn;
    void *arg;
} pieces_job;

static void pieces_task(void *arg, int64_t b, int64_t e, int w)
{
    const pieces_job *j = arg;
    (void)w;
    for (int64_t p = b; p < e; p++) {
        int64_t lo, hi;
        simclr__cpu_piece(j->n, p, &lo, &hi);
        j->fn(j->arg, p, lo, hi);
    }
}

void simclr__cpu_for_pieces(simclr_context *ctx, int64_t n, simclr__cpu_piece_fn fn, void *arg)
{
    pieces_job j = {n, fn, arg};
    simclr__pool_for(ctx->pool, simclr__cpu_pieces(n), 1, pieces_task, &j);
}

static void sum_piece(void *arg, int64_t p, int64_t lo, int64_t hi)
{
    ew_job *j = arg;
    j->partial[p] = simclr__cpu_sum_f32(j->x + lo, hi - lo);
}

static double dot_range(const float *x, const float *y, int64_t b, int64_t e)
{
    float lane[8] = {0};
    int64_t i = b;
    double total = 0;
    while (i < e) {
        int64_t stop = i + 4096 < e ? i + 4096 : e;
        for (; i + 8 <= stop; i += 8)
            for (int l = 0; l < 8; l++) lane[l] += x[i + l] * y[i + l];
        for (; i < stop; i++) lane[0] += x[i] * y[i];
        for (int l = 0; l < 8; l++) {
            total += lane[l];
            lane[l] = 0;
        }
    }
    return total;
}

static void dot_piece(void *arg, int64_t p, int64_t lo, int64_t hi)
{
    ew_job *j = arg;
    j->partial[p] = dot_range(j->x, j->y, lo, hi);
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

static double reduce(simclr_context *ctx, int64_t n, const float *x, const float *y, simclr__cpu_piece_fn fn)
{
    ew_job j = {.n = n, .x = x, .y = y};
    simclr__cpu_for_pieces(ctx, n, fn, &j);
    double s = 0;
    for (int64_t p = 0; p < simclr__cpu_pieces(n); p++) s += j.partial[p];
    return s;
}

static double cpu_sum(simclr_context *ctx, int64_t n, const float *x) { return reduce(ctx, n, x, NULL, sum_piece); }

static double cpu_dot(simclr_context *ctx, int64_t n, const float *x, const float *y)
{
    return reduce(ctx, n, x, y, dot_piece);
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
    for (int64_t r = b; r < e; r++) j->out[r] = (float)simclr__cpu_sum_f32(j->x + r * j->cols, j->cols);
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
    .isa = SIMCLR__CPU_STR(SIMCLR__CPU_ISA),
    .context_acquire = cpu_acquire,
    .context_release = cpu_release,
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
    .conv2d_forward_affine = simclr__cpu_conv2d_forward_affine,
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
    .layernorm_forward = simclr__cpu_layernorm_forward,
    .layernorm_backward = simclr__cpu_layernorm_backward,
    .gelu_forward = simclr__cpu_gelu_forward,
    .gelu_backward = simclr__cpu_gelu_backward,
    .softmax_forward = simclr__cpu_softmax_forward,
    .softmax_backward = simclr__cpu_softmax_backward,
    .opt_update = simclr__cpu_opt_update,
    .opt_sq_norms = simclr__cpu_opt_sq_norms,
    .rows_normalize = simclr__cpu_rows_normalize,
    .rows_normalize_backward = simclr__cpu_rows_normalize_backward,
    .ntxent_rows = simclr__cpu_ntxent_rows,
    .ntxent_grad = simclr__cpu_ntxent_grad,
    .infonce_rows = simclr__cpu_infonce_rows,
    .infonce_weights = simclr__cpu_infonce_weights,
};
