/* Kernels of the "cpu" backend that live outside cpu.c (which holds the
 * vtable). Internal to src/backend/: layers never include this file. */
#ifndef SIMCLR_BACKEND_CPU_KERNELS_H
#define SIMCLR_BACKEND_CPU_KERNELS_H

#include "../backend.h"

/* One build per instruction set. Every file of src/backend/cpu/ is
 * compiled once for each ISA the Makefile knows (portable x86-64 or the
 * host architecture, AVX2+FMA, AVX-512), each copy with its own -m flags and
 * SIMCLR__CPU_ISA set to its name; the macros below give every external
 * symbol of the copy that name as a suffix (simclr__cpu_gemm_avx2), so the
 * copies link side by side. The context picks one at creation from the
 * machine's CPU and the SIMCLR_ISA environment variable (backend/isa.c,
 * backend/context_create.c), so
 * tests can force the narrower paths a wider machine would never run.
 *
 * The kernels are plain loops written for the vectorizer and compiled with
 * -ffp-contract=off (no fused multiply-add contraction): every copy computes
 * the same operations in the same order, only wider. */
#ifndef SIMCLR__CPU_ISA
#error "src/backend/cpu/ is compiled by the Makefile with -DSIMCLR__CPU_ISA=portable|avx2|avx512"
/* ---- Sliding-window convolution (sliding.c) for stride-1 and stride-2
 * layers (kernel up to 7x7, pad <= k - 1, not 1x1), exact like the im2col
 * path; the input gradient of stride 1 only. ---- */

/* 1 when d is a convolution the sliding kernel runs (forward, weight gradient). */
int simclr__cpu_sliding_eligible(const simclr__conv_desc *d);
/* 1 when the context runs d's forward pass (backward = 0) or both its
 * gradients (backward = 1) with the sliding kernel: ctx->conv_exact forces
 * it (2) or im2col (1); by default the few-channel layers where it measured
 * faster (the rule is in sliding.c). Callers ask only where Winograd was not
 * chosen. */
int simclr__cpu_sliding_choose(const simclr_context *ctx, const simclr__conv_desc *d, int backward);
/* Workspace floats for either pass of d (0 when not eligible); grows with the
 * context's thread count. */
size_t simclr__cpu_sliding_workspace(simclr_context *ctx, const simclr__conv_desc *d);
/* y = conv(x, w) + bias (bias may be NULL). */
void simclr__cpu_sliding_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *bias, float *y, float *ws);
/* y = act(conv(x, w) * scale + shift + res) (the backend's
 * conv2d_forward_affine; res may be NULL). */
void simclr__cpu_sliding_forward_affine(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                        const float *w, const float *scale, const float *shift, const float *res,
                                        int relu, float *y, float *ws);
/* dw += the weight gradient of d (no bias gradient: the caller's). Bytes
 * identical for any thread count and ISA copy. */
void simclr__cpu_sliding_weight_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                     const float *dy, float *dw, float *ws);
/* dx = (accumulate: +=) the input gradient of d (stride 1) from dy. */
void simclr__cpu_sliding_input_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *w,
                                    const float *dy, float *dx, int accumulate, float *ws);

#endif
#define SIMCLR__CPU_CAT_(a, b) a##_##b
#define SIMCLR__CPU_CAT(a, b) SIMCLR__CPU_CAT_(a, b)
#define SIMCLR__CPU_SYM(name) SIMCLR__CPU_CAT(name, SIMCLR__CPU_ISA)
#define SIMCLR__CPU_STR_(x) #x
#define SIMCLR__CPU_STR(x) SIMCLR__CPU_STR_(x)

#define simclr__backend_cpu SIMCLR__CPU_SYM(simclr__backend_cpu)
#define simclr__cpu_sum_f32 SIMCLR__CPU_SYM(simclr__cpu_sum_f32)
#define simclr__cpu_gemm SIMCLR__CPU_SYM(simclr__cpu_gemm)
#define simclr__cpu_gemm_serial SIMCLR__CPU_SYM(simclr__cpu_gemm_serial)
#define simclr__cpu_conv2d_workspace SIMCLR__CPU_SYM(simclr__cpu_conv2d_workspace)
#define simclr__cpu_conv2d_forward SIMCLR__CPU_SYM(simclr__cpu_conv2d_forward)
#define simclr__cpu_conv2d_backward SIMCLR__CPU_SYM(simclr__cpu_conv2d_backward)
#define simclr__cpu_swap01 SIMCLR__CPU_SYM(simclr__cpu_swap01)
#define simclr__cpu_row_moments SIMCLR__CPU_SYM(simclr__cpu_row_moments)
#define simclr__cpu_row_affine SIMCLR__CPU_SYM(simclr__cpu_row_affine)
#define simclr__cpu_bn_backward_reduce SIMCLR__CPU_SYM(simclr__cpu_bn_backward_reduce)
#define simclr__cpu_bn_backward_dx SIMCLR__CPU_SYM(simclr__cpu_bn_backward_dx)
#define simclr__cpu_relu_backward SIMCLR__CPU_SYM(simclr__cpu_relu_backward)
#define simclr__cpu_maxpool_forward SIMCLR__CPU_SYM(simclr__cpu_maxpool_forward)
#define simclr__cpu_maxpool_backward SIMCLR__CPU_SYM(simclr__cpu_maxpool_backward)
#define simclr__cpu_avgpool_forward SIMCLR__CPU_SYM(simclr__cpu_avgpool_forward)
#define simclr__cpu_avgpool_backward SIMCLR__CPU_SYM(simclr__cpu_avgpool_backward)
#define simclr__cpu_winograd_eligible SIMCLR__CPU_SYM(simclr__cpu_winograd_eligible)
#define simclr__cpu_winograd_choose SIMCLR__CPU_SYM(simclr__cpu_winograd_choose)
#define simclr__cpu_winograd_workspace SIMCLR__CPU_SYM(simclr__cpu_winograd_workspace)
#define simclr__cpu_winograd_cost SIMCLR__CPU_SYM(simclr__cpu_winograd_cost)
#define simclr__cpu_winograd_forward SIMCLR__CPU_SYM(simclr__cpu_winograd_forward)
#define simclr__cpu_winograd_backward SIMCLR__CPU_SYM(simclr__cpu_winograd_backward)
#define simclr__cpu_sliding_eligible SIMCLR__CPU_SYM(simclr__cpu_sliding_eligible)
#define simclr__cpu_sliding_choose SIMCLR__CPU_SYM(simclr__cpu_sliding_choose)
#define simclr__cpu_sliding_workspace SIMCLR__CPU_SYM(simclr__cpu_sliding_workspace)
#define simclr__cpu_sliding_forward SIMCLR__CPU_SYM(simclr__cpu_sliding_forward)
#define simclr__cpu_sliding_forward_affine SIMCLR__CPU_SYM(simclr__cpu_sliding_forward_affine)
#define simclr__cpu_conv2d_forward_affine SIMCLR__CPU_SYM(simclr__cpu_conv2d_forward_affine)
#define simclr__cpu_sliding_input_grad SIMCLR__CPU_SYM(simclr__cpu_sliding_input_grad)
#define simclr__cpu_sliding_weight_grad SIMCLR__CPU_SYM(simclr__cpu_sliding_weight_grad)
#define simclr__cpu_piece_width SIMCLR__CPU_SYM(simclr__cpu_piece_width)
#define simclr__cpu_for_pieces SIMCLR__CPU_SYM(simclr__cpu_for_pieces)
#define simclr__cpu_opt_update SIMCLR__CPU_SYM(simclr__cpu_opt_update)
#define simclr__cpu_opt_sq_norms SIMCLR__CPU_SYM(simclr__cpu_opt_sq_norms)
#define simclr__cpu_rows_normalize SIMCLR__CPU_SYM(simclr__cpu_rows_normalize)
#define simclr__cpu_rows_normalize_backward SIMCLR__CPU_SYM(simclr__cpu_rows_normalize_backward)
#define simclr__cpu_ntxent_rows SIMCLR__CPU_SYM(simclr__cpu_ntxent_rows)
#define simclr__cpu_ntxent_grad SIMCLR__CPU_SYM(simclr__cpu_ntxent_grad)
#define simclr__cpu_infonce_rows SIMCLR__CPU_SYM(simclr__cpu_infonce_rows)
#define simclr__cpu_infonce_weights SIMCLR__CPU_SYM(simclr__cpu_infonce_weights)

/* This copy's vtable (defined in cpu.c). */
extern const simclr__backend simclr__backend_cpu;

/* Below this many elements a parallel region costs more than it saves. */
#define SIMCLR__GRAIN 32768

/* Sum of n floats: 8 float lanes (vectorizable) folded into double every 4096. */
double simclr__cpu_sum_f32(const float *x, int64_t n);

void simclr__cpu_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc);
/* The same product in the calling thread, cut into the same blocks as
 * simclr__cpu_gemm (so it gives the same bytes): for code already running
 * inside a pool task. */
void simclr__cpu_gemm_serial(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                             int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

size_t simclr__cpu_conv2d_workspace(simclr_context *ctx, const simclr__conv_desc *d);
void simclr__cpu_conv2d_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                const float *bias, float *y, float *ws);
void simclr__cpu_conv2d_backward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *dy, float *dw, float *dbias, float *dx, int accumulate, float *ws);
void simclr__cpu_conv2d_forward_affine(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                       const float *w, const float *scale, const float *shift, const float *res,
                                       int relu, float *y, float *ws);

void simclr__cpu_swap01(simclr_context *ctx, int64_t a, int64_t b, int64_t inner, const float *x, float *y);
void simclr__cpu_row_moments(simclr_context *ctx, int64_t c, int64_t m, const float *x, float *mean, float *var);
void simclr__cpu_row_affine(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *scale,
                            const float *shift, const float *res, int relu, float *y);
void simclr__cpu_bn_backward_reduce(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                                    const float *dy, const float *mean, float *sum_g, float *sum_gx);
void simclr__cpu_bn_backward_dx(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                                const float *dy, const float *mean, const float *ka, const float *kb,
                                const float *kc, float *dx, float *dres);
void simclr__cpu_relu_backward(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx);
void simclr__cpu_maxpool_forward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t k,
                                 int64_t stride, int64_t pad, int64_t oh, int64_t ow, const float *x, float *y,
                                 int32_t *idx);
void simclr__cpu_maxpool_backward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                  int64_t ow, const float *dy, const int32_t *idx, float *dx);
void simclr__cpu_avgpool_forward(simclr_context *ctx, int64_t planes, int64_t hw, const float *x, float *y);
void simclr__cpu_avgpool_backward(simclr_context *ctx, int64_t planes, int64_t hw, const float *dy, float *dx);

/* ---- Winograd convolution (winograd.c) for 3x3 stride-1 layers with
 * pad 0..2. m is the output tile: 2 for F(2x2,3x3), 4 for F(4x4,3x3). ---- */

/* 1 when d is a 3x3 stride-1 convolution with pad 0..2 (Winograd applies). */
int simclr__cpu_winograd_eligible(const simclr__conv_desc *d);
/* The tile the context's SIMCLR_CTX_CONV_ALGO setting picks for d: 0 (the
 * direct im2col path), 2 or 4 (ctx->conv_tile, when 2 or 4, forces that
 * tile wherever Winograd applies). */
int simclr__cpu_winograd_choose(const simclr_context *ctx, const simclr__conv_desc *d);
/* Workspace floats the Winograd passes with tile m need (0 when d is not
 * eligible or m is not 2 or 4); independent of the thread count. */
size_t simclr__cpu_winograd_workspace(const simclr__conv_desc *d, int m);
/* AUTO's cost estimate of tile m (0: the direct path) for d, in units of one
 * multiply-add at sgemm peak (the model is in winograd.c). */
double simclr__cpu_winograd_cost(const simclr__conv_desc *d, int m);
/* y = conv(x, w) (no bias). Bytes are identical for any thread count. */
void simclr__cpu_winograd_forward(simclr_context *ctx, const simclr__conv_desc *d, int m, const float *x,
                                  const float *w, float *y, float *ws);
/* dw += the weight gradient; dx = (accumulate: +=) the input gradient unless
 * dx is NULL. No bias gradient (the caller's). */
void simclr__cpu_winograd_backward(simclr_context *ctx, const simclr__conv_desc *d, int m, const float *x,
                                   const float *w, const float *dy, float *dw, float *dx, int accumulate, float *ws);

/* ---- Sliding-window convolution (sliding.c) for stride-1 and stride-2
 * layers (kernel up to 7x7, pad <= k - 1, not 1x1), exact like the im2col
 * path; the input gradient of stride 1 only. ---- */

/* 1 when d is a convolution the sliding kernel runs (forward, weight gradient). */
int simclr__cpu_sliding_eligible(const simclr__conv_desc *d);
/* 1 when the context runs d's forward pass (backward = 0) or both its
 * gradients (backward = 1) with the sliding kernel: ctx->conv_exact forces
 * it (2) or im2col (1); by default the few-channel layers where it measured
 * faster (the rule is in sliding.c). Callers ask only where Winograd was not
 * chosen. */
int simclr__cpu_sliding_choose(const simclr_context *ctx, const simclr__conv_desc *d, int backward);
/* Workspace floats for either pass of d (0 when not eligible); grows with the
 * context's thread count. */
size_t simclr__cpu_sliding_workspace(simclr_context *ctx, const simclr__conv_desc *d);
/* y = conv(x, w) + bias (bias may be NULL). */
void simclr__cpu_sliding_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *bias, float *y, float *ws);
/* y = act(conv(x, w) * scale + shift + res) (the backend's
 * conv2d_forward_affine; res may be NULL). */
void simclr__cpu_sliding_forward_affine(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                        const float *w, const float *scale, const float *shift, const float *res,
                                        int relu, float *y, float *ws);
/* dw += the weight gradient of d (no bias gradient: the caller's). Bytes
 * identical for any thread count and ISA copy. */
void simclr__cpu_sliding_weight_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *x,
                                     const float *dy, float *dw, float *ws);
/* dx = (accumulate: +=) the input gradient of d (stride 1) from dy. */
void simclr__cpu_sliding_input_grad(simclr_context *ctx, const simclr__conv_desc *d, const float *w,
                                    const float *dy, float *dx, int accumulate, float *ws);

/* ---- Transformer kernels (transformer.c): layer norm, GELU, row softmax
 * on row-major [rows, d]; same bytes for any thread count. ---- */
#define simclr__cpu_layernorm_forward SIMCLR__CPU_SYM(simclr__cpu_layernorm_forward)
#define simclr__cpu_layernorm_backward SIMCLR__CPU_SYM(simclr__cpu_layernorm_backward)
#define simclr__cpu_gelu_forward SIMCLR__CPU_SYM(simclr__cpu_gelu_forward)
#define simclr__cpu_gelu_backward SIMCLR__CPU_SYM(simclr__cpu_gelu_backward)
#define simclr__cpu_softmax_forward SIMCLR__CPU_SYM(simclr__cpu_softmax_forward)
#define simclr__cpu_softmax_backward SIMCLR__CPU_SYM(simclr__cpu_softmax_backward)
void simclr__cpu_layernorm_forward(simclr_context *ctx, int64_t rows, int64_t d, const float *x,
                                   const float *gamma, const float *beta, float eps, float *y, float *mean,
                                   float *rstd);
void simclr__cpu_layernorm_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *x,
                                    const float *gamma, const float *mean, const float *rstd, const float *dy,
                                    float *dx, float *dgamma, float *dbeta);
void simclr__cpu_gelu_forward(simclr_context *ctx, int64_t n, const float *x, float *y);
void simclr__cpu_gelu_backward(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx);
void simclr__cpu_softmax_forward(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *y);
void simclr__cpu_softmax_backward(simclr_context *ctx, int64_t rows, int64_t cols, const float *y, const float *dy,
                                  float *dx);

/* ---- Reductions (cpu.c) ---- */

/* The width of the pieces a reduction over n elements is cut into: a
 * function of n alone (at most 256 pieces, whole multiples of 4096
 * elements), so the pieces' sums, added in order, are the same bytes at any
 * thread count. */
int64_t simclr__cpu_piece_width(int64_t n);
#define SIMCLR__CPU_PIECES_MAX 256
/* How many pieces n elements make, and the bounds [*lo, *hi) of piece p. */
static inline int64_t simclr__cpu_pieces(int64_t n)
{
    int64_t w = simclr__cpu_piece_width(n);
    return (n + w - 1) / w;
}
static inline void simclr__cpu_piece(int64_t n, int64_t p, int64_t *lo, int64_t *hi)
{
    int64_t w = simclr__cpu_piece_width(n);
    *lo = p * w;
    *hi = *lo + w < n ? *lo + w : n;
}
/* Runs fn(arg, p, lo, hi) for every piece p of n elements on the pool
 * (pieces are what a reduction stores its partial sums by). */
typedef void (*simclr__cpu_piece_fn)(void *arg, int64_t p, int64_t lo, int64_t hi);
void simclr__cpu_for_pieces(simclr_context *ctx, int64_t n, simclr__cpu_piece_fn fn, void *arg);

/* ---- Optimizer updates (optim.c): the backend's opt_update and
 * opt_sq_norms on the pool. ---- */
void simclr__cpu_opt_update(simclr_context *ctx, const simclr__opt_rule *r, int64_t n, float *w, const float *g,
                            float *s0, float *s1);
void simclr__cpu_opt_sq_norms(simclr_context *ctx, int64_t n, const float *w, const float *g, float wd, double *ww,
                              double *gg);

/* ---- Contrastive-loss kernels (contrastive.c): the backend's slots of the
 * same names on the pool. ---- */
void simclr__cpu_rows_normalize(simclr_context *ctx, int64_t rows, int64_t d, const float *x, float *y,
                                double *norm);
void simclr__cpu_rows_normalize_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *u,
                                         const double *norm, float *g);
void simclr__cpu_ntxent_rows(simclr_context *ctx, int64_t m, int64_t n, int views, const float *s, double *lse,
                             double *row_loss, int *row_hit);
void simclr__cpu_ntxent_grad(simclr_context *ctx, int64_t m, int64_t n, int views, double scale, float *s,
                             const double *lse);
int64_t simclr__cpu_infonce_rows(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double temperature,
                                 const float *u, const float *kh, const float *s, double *pos, double *lse);
void simclr__cpu_infonce_weights(simclr_context *ctx, int64_t n, int64_t d, int64_t kq, double scale, float *s,
                                 const double *pos, const double *lse, const float *kh, float *dq);

#endif
