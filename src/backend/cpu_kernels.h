/* Kernels of the "cpu" backend that live outside cpu.c (which holds the
 * vtable). Internal to src/backend/: layers never include this file. */
#ifndef SIMCLR_BACKEND_CPU_KERNELS_H
#define SIMCLR_BACKEND_CPU_KERNELS_H

#include "backend.h"

/* The memory-bound loops (batch norm, im2col/col2im, elementwise) get AVX2
 * and AVX-512 copies beside the baseline x86-64 one; the loader picks one per
 * machine (an ifunc), so one binary runs everywhere and uses wide vectors
 * where they exist. Worth 5-10% of a width-16 training step over -O3 alone.
 * Off for sanitizer builds, other architectures and older compilers. The
 * kernels are compiled with -ffp-contract=off (Makefile), so every copy
 * gives the same bytes. Only on static functions: clang 14 cannot call an
 * external clone from another file. */
#if defined(__x86_64__) && defined(__linux__) && !defined(SIMCLR_NO_CLONES) && \
    ((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && __GNUC__ >= 8))
#define SIMCLR__VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define SIMCLR__VECTOR_CLONES
#endif

/* Below this many elements a parallel region costs more than it saves. */
#define SIMCLR__GRAIN 32768

/* Sum of n floats: 8 float lanes (vectorizable) folded into double every 4096. */
double simclr__cpu_sum_f32(const float *x, int64_t n);

void simclr__cpu_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc);

size_t simclr__cpu_conv2d_workspace(simclr_context *ctx, const simclr__conv_desc *d);
void simclr__cpu_conv2d_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                const float *bias, float *y, float *ws);
void simclr__cpu_conv2d_backward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                 const float *dy, float *dw, float *dbias, float *dx, int accumulate, float *ws);

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

#endif
