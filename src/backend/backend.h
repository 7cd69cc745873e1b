/* The kernel vtable. Layers above call kernels only through a context's
 * backend, never a backend's file directly, so a new backend (SIMD, GPU)
 * replaces kernels without touching the layers.
 *
 * Conventions for every kernel:
 *  - arguments are already validated by the caller (shapes, sizes, NULLs);
 *    kernels cannot fail, so they return nothing;
 *  - matrices are row-major; leading dimensions are in elements;
 *  - a slot may be NULL only where its comment says so; the caller then uses
 *    the generic fallback named there.
 *
 * Adding a kernel: add the slot here, implement it in ref.c (plain loops, the
 * oracle) and cpu.c (fast), and add it to tests/test_kernels.c. */
#ifndef SIMCLR_BACKEND_H
#define SIMCLR_BACKEND_H

#include <stdint.h>

#include "../core/context.h"

#define SIMCLR__BACKEND_API_VERSION 1

typedef struct simclr__backend {
    const char *name;
    int api_version;

    /* C[m, n] = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T.
     * op(A) is m x k, op(B) is k x n. beta = 0 ignores C's old content (NaN-safe). */
    void (*gemm)(simclr_context *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                 float *c, int64_t ldc);

    /* y += alpha * x */
    void (*axpy)(simclr_context *ctx, int64_t n, float alpha, const float *x, float *y);
    /* x *= alpha */
    void (*scale)(simclr_context *ctx, int64_t n, float alpha, float *x);
    /* out = a + b (out may alias a or b) */
    void (*add)(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out);

    /* Reductions, accumulated in double. */
    double (*sum)(simclr_context *ctx, int64_t n, const float *x);
    double (*dot)(simclr_context *ctx, int64_t n, const float *x, const float *y);
    /* out[j] = sum over i of x[i, j] for x [rows, cols] (column sums, e.g. a bias gradient). */
    void (*sum_rows)(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out);
    /* out[i] = sum over j of x[i, j] (row sums, e.g. per-channel sums in [C, N*H*W]). */
    void (*sum_cols)(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out);
} simclr__backend;

/* The registry: NULL for an unknown name. */
const simclr__backend *simclr__backend_find(const char *name);

extern const simclr__backend simclr__backend_ref;
extern const simclr__backend simclr__backend_cpu;

/* Sets the BLAS thread count to the context's before a BLAS call (OpenBLAS builds). */
void simclr__cpu_blas_threads(simclr_context *ctx);

#endif
