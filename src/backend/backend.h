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
 * oracle) and cpu.c (fast), and add it to tests/test_kernels.c. An optional
 * slot (its comment says so) also gets a generic version in fallback.c: each
 * context runs on its own copy of its backend's table with every NULL
 * optional slot filled, so the layers never test for NULL. */
#ifndef SIMCLR_BACKEND_H
#define SIMCLR_BACKEND_H

#include <stdint.h>

#include "../core/context.h"

#define SIMCLR__BACKEND_API_VERSION 2

/* Geometry of one convolution; oh = (h + 2*pad - kh) / stride + 1, same for ow. */
typedef struct simclr__conv_desc {
    int64_t n, cin, h, w;
    int64_t cout, kh, kw, stride, pad;
    int64_t oh, ow;
} simclr__conv_desc;

/* One optimizer update's constants (src/optim/step.c states the rules). */
typedef struct simclr__opt_rule {
    int kind;     /* SIMCLR_OPT_SGD, SIMCLR_OPT_ADAMW or SIMCLR_OPT_LARS */
    int nesterov; /* SGD, LARS */
    float lr;     /* SGD: the rate; LARS: the rate times the trust ratio */
    float wd, mu; /* SGD, LARS: weight decay, momentum */
    float b1, b2, eps, step_size, bc2_sqrt, decay; /* AdamW; decay = 1 - lr wd */
} simclr__opt_rule;

typedef struct simclr__backend {
    const char *name;
    int api_version;
    /* The instruction set this copy of the kernels was compiled for:
     * "portable", "avx2" or "avx512" (backend/isa.c). */
    const char *isa;

    /* Optional (fallback: nothing to do): called by simclr_context_create after
     * the context is set up, and by simclr_context_destroy before it goes.
     * The cpu backend holds OpenBLAS at one thread while any of its contexts
     * lives (backend/blas_threads.c). */
    void (*context_acquire)(simclr_context *ctx);
    void (*context_release)(simclr_context *ctx);

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

    /* ---- Layer kernels. Activations are channel-major: a tensor of C
     * channels over a batch of N images of H x W is [C][N][H][W], so every
     * channel is one contiguous row of M = N*H*W values and every (c, n) a
     * contiguous H x W plane. ---- */

    /* x [a][b][inner] -> y [b][a][inner] (NCHW <-> channel-major with inner =
     * H*W; [N, D] <-> [D, N] with inner = 1). x and y do not overlap. */
    void (*swap01)(simclr_context *ctx, int64_t a, int64_t b, int64_t inner, const float *x, float *y);

    /* Convolution of channel-major x [cin][n][h][w] with w [cout][cin][kh][kw]
     * (torch layout) into y [cout][n][oh][ow]. bias may be NULL. ws holds
     * conv2d_workspace(ctx, d) floats (may be NULL when that is 0); the size may
     * depend on the context's thread count. */
    size_t (*conv2d_workspace)(simclr_context *ctx, const struct simclr__conv_desc *d);
    void (*conv2d_forward)(simclr_context *ctx, const struct simclr__conv_desc *d, const float *x,
                           const float *w, const float *bias, float *y, float *ws);
    /* Adds the weight gradient into dw (and the bias gradient into dbias
     * unless NULL); writes (accumulate = 0) or adds (accumulate = 1) the input
     * gradient into dx unless dx is NULL. */
    void (*conv2d_backward)(simclr_context *ctx, const struct simclr__conv_desc *d, const float *x,
                            const float *w, const float *dy, float *dw, float *dbias, float *dx,
                            int accumulate, float *ws);
    /* Optional (fallback: conv2d_forward without bias, then row_affine on y):
     * y[co] = act(conv(x, w)[co] * scale[co] + shift[co] + res[co]), act =
     * ReLU when relu != 0, res may be NULL: an EVAL batch norm folded into
     * the convolution's output pass. The same bytes as the two-pass
     * fallback. y overlaps neither x nor res. */
    void (*conv2d_forward_affine)(simclr_context *ctx, const struct simclr__conv_desc *d, const float *x,
                                  const float *w, const float *scale, const float *shift, const float *res,
                                  int relu, float *y, float *ws);

    /* Per-row mean and biased variance of x [c, m], accumulated in double. */
    void (*row_moments)(simclr_context *ctx, int64_t c, int64_t m, const float *x, float *mean, float *var);
    /* y[i, j] = act(x[i, j] * scale[i] + shift[i] + res[i, j]): scale NULL = 1,
     * shift NULL = 0, res NULL = 0, act = ReLU when relu != 0. y may alias x. */
    void (*row_affine)(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *scale,
                       const float *shift, const float *res, int relu, float *y);
    /* Batch-norm backward reductions over x [c, m] with g = dy * (y > 0)
     * (y NULL: g = dy): sum_g[i] = sum_j g, sum_gx[i] = sum_j g * (x - mean[i]). */
    void (*bn_backward_reduce)(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                               const float *dy, const float *mean, float *sum_g, float *sum_gx);
    /* dx = ka[i] * g + kb[i] * (x - mean[i]) + kc[i], g as above; when dres is
     * not NULL it receives g (the gradient of a fused residual input). dx may
     * alias dy. */
    void (*bn_backward_dx)(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                           const float *dy, const float *mean, const float *ka, const float *kb,
                           const float *kc, float *dx, float *dres);
    /* dx = dy * (y > 0); dx may alias dy. */
    void (*relu_backward)(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx);

    /* Max pooling over `planes` independent h x w planes (k x k window,
     * stride, zero-less padding: padded cells never win). idx receives, per
     * output, the flat in-plane index of the chosen input. */
    void (*maxpool_forward)(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t k,
                            int64_t stride, int64_t pad, int64_t oh, int64_t ow, const float *x, float *y,
                            int32_t *idx);
    /* dx (planes x h x w, overwritten) = scatter-add of dy through idx. */
    void (*maxpool_backward)(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                             const float *dy, const int32_t *idx, float *dx);
    /* Global average: y[p] = mean of plane p (hw values) for `planes` planes. */
    void (*avgpool_forward)(simclr_context *ctx, int64_t planes, int64_t hw, const float *x, float *y);
    /* dx[p, :] = dy[p] / hw */
    void (*avgpool_backward)(simclr_context *ctx, int64_t planes, int64_t hw, const float *dy, float *dx);

    /* ---- Transformer kernels (the Vision Transformer, model/vit.c). Token
     * activations are row-major [rows, d]: one row per token. ---- */

    /* Layer norm over each row of x [rows, d]: y = (x - mean) * rstd * gamma +
     * beta, with mean and rstd = 1 / sqrt(biased variance + eps) saved per row
     * (for the backward). y may alias x. */
    void (*layernorm_forward)(simclr_context *ctx, int64_t rows, int64_t d, const float *x, const float *gamma,
                              const float *beta, float eps, float *y, float *mean, float *rstd);
    /* Back through layernorm_forward: dx (overwritten; may alias dy) and the
     * parameter gradients added into dgamma and dbeta (column sums over the
     * rows, each column summed in row order). */
    void (*layernorm_backward)(simclr_context *ctx, int64_t rows, int64_t d, const float *x, const float *gamma,
                               const float *mean, const float *rstd, const float *dy, float *dx, float *dgamma,
                               float *dbeta);
    /* y = GELU(x) = x * Phi(x), the exact erf form (torch.nn.GELU's default);
     * y may alias x. */
    void (*gelu_forward)(simclr_context *ctx, int64_t n, const float *x, float *y);
    /* dx = dy * GELU'(x); dx may alias dy. */
    void (*gelu_backward)(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx);
    /* Softmax of each row of x [rows, cols] (max-subtracted); y may alias x. */
    void (*softmax_forward)(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *y);
    /* dx = y * (dy - sum_j dy * y) per row, from the forward's output y;
     * dx may alias dy. */
    void (*softmax_backward)(simclr_context *ctx, int64_t rows, int64_t cols, const float *y, const float *dy,
                             float *dx);

    /* ---- Optimizer kernels. ---- */

    /* Optional (fallback: one thread, the same rule code): one update of n
     * parameters w in place from their gradient g and state s0 (momentum,
     * AdamW's first moment) and s1 (AdamW's second moment; NULL otherwise),
     * element by element, so any split of [0, n) gives the same bytes. */
    void (*opt_update)(simclr_context *ctx, const simclr__opt_rule *r, int64_t n, float *w, const float *g,
                       float *s0, float *s1);
    /* Optional (fallback: one thread, the same lanes): *gg = sum (g + wd w)^2
     * and, when w is not NULL, *ww = sum w^2 (else *ww = 0), squares of
     * floats accumulated in double: finite exactly when every input is (the
     * optimizer's NaN check relies on it), and the same bytes for any thread
     * count (fixed pieces, added in order). */
    void (*opt_sq_norms)(simclr_context *ctx, int64_t n, const float *w, const float *g, float wd, double *ww,
                         double *gg);

    /* ---- Contrastive-loss kernels (loss/ntxent.c, loss/infonce.c). All
     * optional (fallback: one thread, the same row code,
     * backend/contrastive_rows.h); each row is computed whole by one
     * thread, so the bytes do not depend on the thread count. ---- */

    /* y_i = x_i / max(||x_i||, 1e-12) for the rows of x [rows, d] (F.normalize),
     * norm[i] = ||x_i|| in double. */
    void (*rows_normalize)(simclr_context *ctx, int64_t rows, int64_t d, const float *x, float *y, double *norm);
    /* The gradient through rows_normalize, in place: g_i = (g_i - u_i (u_i .
     * g_i)) / norm_i, or g_i / 1e-12 where norm_i <= 1e-12 (u = its output). */
    void (*rows_normalize_backward)(simclr_context *ctx, int64_t rows, int64_t d, const float *u, const double *norm,
                                    float *g);
    /* NT-Xent over the logits s [m, m] of m = views * n rows (row i's
     * positives: the rows i mod n + v n): per row the log-sum-exp without the
     * diagonal, the loss and whether the nearest other row is a positive. */
    void (*ntxent_rows)(simclr_context *ctx, int64_t m, int64_t n, int views, const float *s, double *lse,
                        double *row_loss, int *row_hit);
    /* NT-Xent's backward in place: s becomes G = (P + P^T - 2 t) * scale
     * (symmetric, zero diagonal; P the row softmax of the logits, t the
     * targets 1/(views-1) on the positives). */
    void (*ntxent_grad)(simclr_context *ctx, int64_t m, int64_t n, int views, double scale, float *s,
                        const double *lse);
    /* InfoNCE forward rows (queries u, keys kh [n, d], negative logits s
     * [n, kq]): pos[i], lse[i]; returns how many rows rank their positive
     * first. */
    int64_t (*infonce_rows)(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double temperature,
                            const float *u, const float *kh, const float *s, double *pos, double *lse);
    /* InfoNCE backward weights: s_ij = P_ij * scale in place and dq_i =
     * (P_i0 - 1) * scale * kh_i. */
    void (*infonce_weights)(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double scale, float *s,
                            const double *pos, const double *lse, const float *kh, float *dq);
} simclr__backend;

/* The registry: the backend called `name`, in its widest copy whose
 * instruction set is at most `max_isa` (a SIMCLR__ISA_* value); NULL for an
 * unknown name. */
const simclr__backend *simclr__backend_find(const char *name, int max_isa);

/* Instruction sets, narrowest first (backend/isa.c). */
enum { SIMCLR__ISA_PORTABLE = 0, SIMCLR__ISA_AVX2 = 1, SIMCLR__ISA_AVX512 = 2, SIMCLR__ISA_COUNT = 3 };
/* The widest instruction set this machine runs and this build has. */
int simclr__isa_machine(void);
/* The value of an ISA name, or -1 for an unknown one. */
int simclr__isa_parse(const char *name);
const char *simclr__isa_name(int isa);

extern const simclr__backend simclr__backend_ref;

/* Fills every NULL optional slot of t with its generic version (fallback.c). */
void simclr__backend_fill_fallbacks(simclr__backend *t);

/* OpenBLAS at one thread while any "cpu" context lives, the host's count
 * restored after the last (backend/blas_threads.c). */
void simclr__blas_threads_acquire(void);
void simclr__blas_threads_release(void);
/* The copies of the "cpu" backend (src/backend/cpu/); NULL where not built. */
extern const simclr__backend *const simclr__backend_cpu_variants[SIMCLR__ISA_COUNT];

#endif
