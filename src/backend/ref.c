/* The "ref" backend: the plainest correct loops, one thread, double
 * accumulation where it is cheap. It is the oracle every fast kernel is
 * tested against, so clarity beats speed here. */
#include "backend.h"

static void ref_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc)
{
    (void)ctx;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++) {
                float av = ta ? a[p * lda + i] : a[i * lda + p];
                float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * bv;
            }
            float old = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            c[i * ldc + j] = (float)(alpha * acc) + old;
        }
}

static void ref_axpy(simclr_context *ctx, int64_t n, float alpha, const float *x, float *y)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void ref_scale(simclr_context *ctx, int64_t n, float alpha, float *x)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) x[i] *= alpha;
}

static void ref_add(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static double ref_sum(simclr_context *ctx, int64_t n, const float *x)
{
    (void)ctx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static double ref_dot(simclr_context *ctx, int64_t n, const float *x, const float *y)
{
    (void)ctx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

static void ref_sum_rows(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    (void)ctx;
    for (int64_t j = 0; j < cols; j++) {
        double s = 0;
        for (int64_t i = 0; i < rows; i++) s += x[i * cols + j];
        out[j] = (float)s;
    }
}

static void ref_sum_cols(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    (void)ctx;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += x[i * cols + j];
        out[i] = (float)s;
    }
}

const simclr__backend simclr__backend_ref = {
    .name = "ref",
    .api_version = SIMCLR__BACKEND_API_VERSION,
    .gemm = ref_gemm,
    .axpy = ref_axpy,
    .scale = ref_scale,
    .add = ref_add,
    .sum = ref_sum,
    .dot = ref_dot,
    .sum_rows = ref_sum_rows,
    .sum_cols = ref_sum_cols,
};
