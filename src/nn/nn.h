/* Layers with explicit forward and backward passes (no autograd). Modules
 * (src/model/) compose them and own every buffer; layers own only their
 * parameters (registered in the module under torch names) and call kernels
 * through the context's backend vtable.
 *
 * Layout: every activation inside a module is channel-major [C][N][H][W]
 * (one contiguous row of M = N*H*W values per channel) on every backend, so
 * a convolution is one product per chunk and batch-norm statistics are row
 * reductions. This refines the original design's "ref keeps NCHW" (see
 * "Layout" in docs/architecture.md): one internal layout keeps the layers
 * simple, and ref's kernels stay plain loops over it.
 * Modules convert NCHW input at their entry and write [N, D] at their exit.
 *
 * Arguments are validated by the module before any layer runs (shapes are
 * planned up front), so layer passes cannot fail and return nothing. */
#ifndef SIMCLR_NN_H
#define SIMCLR_NN_H

#include "../backend/backend.h"
#include "../core/tensor.h"

#define SIMCLR__LAYER_NAME 64

/* Where a layer registers its parameters: the module that owns them
 * (model/module.c makes one with simclr__module_sink), behind a function,
 * so that nn/ does not depend on the layer above it. add() registers a
 * zeroed tensor called name (and a zeroed gradient unless flags has
 * SIMCLR_PARAM_BUFFER); *value, *grad (NULL for a buffer) and *index (its
 * position among the owner's tensors, which seeds its initialization)
 * receive the results. The owner owns the tensors, also when add fails. */
typedef struct simclr__param_sink {
    void *owner;
    simclr_status (*add)(void *owner, const char *name, int ndim, const int64_t *shape, int flags,
                         simclr_tensor **value, simclr_tensor **grad, uint64_t *index);
} simclr__param_sink;

/* ---- conv2d: square kernel k, stride, zero padding, optional bias ---- */

typedef struct simclr__conv2d {
    char name[SIMCLR__LAYER_NAME]; /* "layer1.0.conv1" */
    int64_t cin, cout, k, stride, pad;
    simclr_tensor *w, *dw; /* [cout, cin, k, k] */
    simclr_tensor *b, *db; /* [cout] or NULL */
} simclr__conv2d;

/* Registers "<name>.weight" (and "<name>.bias") in ps, Kaiming-normal
 * (fan_out, ReLU gain) weights as torchvision's ResNet; bias zero. */
simclr_status simclr__conv2d_init(const simclr__param_sink *ps, simclr__conv2d *l, const char *name, int64_t cin,
                                  int64_t cout, int64_t k, int64_t stride, int64_t pad, int bias,
                                  uint64_t seed);

/* Geometry for an input of n images of h x w; SIMCLR_E_SHAPE naming the
 * layer when the output would be empty. */
simclr_status simclr__conv2d_desc(const simclr__conv2d *l, int64_t n, int64_t h, int64_t w,
                                  simclr__conv_desc *d);

void simclr__conv2d_forward(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                            const float *x, float *y, float *ws);
/* y = act(conv(x) * scale + shift + res) per output channel (res may be
 * NULL): a layer without bias followed by an EVAL batch norm, in one pass
 * where the backend can (conv2d_forward_affine), else in two (the slot's
 * fallback). */
void simclr__conv2d_forward_affine(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                                   const float *x, const float *scale, const float *shift, const float *res,
                                   int relu, float *y, float *ws);
/* Accumulates dW (and db); dx NULL = no input gradient (first layer),
 * accumulate = 1 adds into dx. */
void simclr__conv2d_backward(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                             const float *x, const float *dy, float *dx, int accumulate, float *ws);

/* ---- batch norm over channel rows (2d: M = N*H*W, 1d: M = N) ---- */

typedef struct simclr__batchnorm {
    char name[SIMCLR__LAYER_NAME];
    int64_t c;
    float momentum, eps; /* PyTorch conventions: 0.1, 1e-5 */
    simclr_tensor *gamma, *dgamma;
    simclr_tensor *beta, *dbeta; /* NULL when the layer has no affine bias */
    simclr_tensor *running_mean, *running_var, *num_batches_tracked;
} simclr__batchnorm;

/* Floats of per-channel scratch a layer needs between forward and backward. */
#define SIMCLR__BN_STATS(c) (8 * (c))

/* Registers weight, bias (when has_beta), running_mean, running_var,
 * num_batches_tracked (F32 holding the count: exact up to 2^24 steps). */
simclr_status simclr__batchnorm_init(const simclr__param_sink *ps, simclr__batchnorm *l, const char *name, int64_t c,
                                     int has_beta);

/* y = act(BN(x) + res) over x [c, m]; res may be NULL; y may alias x only in
 * EVAL (TRAIN keeps x for backward). TRAIN uses batch statistics (saved in
 * stats) and updates the running ones (unbiased variance, needs m >= 2). */
void simclr__batchnorm_forward(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, simclr_mode mode,
                               const float *x, const float *res, int relu, float *y, float *stats);
/* The per-channel scale and shift of the EVAL forward (running
 * statistics), written into stats; returned pointers point into stats. */
void simclr__batchnorm_eval_affine(const simclr__batchnorm *l, float *stats, const float **scale,
                                   const float **shift);
/* y again, bit for bit, from the x and stats a forward without residual
 * left (its scale and shift; valid until this layer's backward runs, which
 * reuses that scratch): lets a network drop y after its forward and rebuild
 * it for the backward pass, one elementwise pass instead of a buffer kept. */
void simclr__batchnorm_recompute(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, const float *x,
                                 int relu, float *y, const float *stats);
/* Back through a TRAIN forward: y is the forward's output (for the ReLU mask,
 * ignored when relu = 0); accumulates dgamma/dbeta; writes dx, and the
 * residual's gradient into dres unless NULL. dx may alias dy. */
void simclr__batchnorm_backward(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, const float *x,
                                const float *y, int relu, const float *dy, float *dx, float *dres,
                                float *stats);

/* ---- linear: y [out, n] = W [out, in] x [in, n] (+ b) ---- */

typedef struct simclr__linear {
    char name[SIMCLR__LAYER_NAME];
    int64_t in, out;
    simclr_tensor *w, *dw, *b, *db;
} simclr__linear;

/* torch.nn.Linear init: weight and bias uniform in +-1/sqrt(in). */
simclr_status simclr__linear_init(const simclr__param_sink *ps, simclr__linear *l, const char *name, int64_t in,
                                  int64_t out, int bias, uint64_t seed);
void simclr__linear_forward(simclr_context *ctx, const simclr__linear *l, int64_t n, const float *x, float *y);
/* scratch holds l->out floats (bias gradient); dx NULL = not wanted. */
void simclr__linear_backward(simclr_context *ctx, const simclr__linear *l, int64_t n, const float *x,
                             const float *dy, float *dx, float *scratch);

/* ---- ReLU (y may alias x; dx may alias dy) ---- */

void simclr__relu_forward(simclr_context *ctx, int64_t n, const float *x, float *y);
void simclr__relu_backward(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx);

/* ---- pooling ---- */

/* 3x3 max pool, stride 2, padding 1 (the ImageNet stem) over c*n planes. */
#define SIMCLR__MAXPOOL_K 3
#define SIMCLR__MAXPOOL_STRIDE 2
#define SIMCLR__MAXPOOL_PAD 1
int64_t simclr__maxpool_out(int64_t size);
void simclr__maxpool_forward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, const float *x,
                             float *y, int32_t *idx);
void simclr__maxpool_backward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, const float *dy,
                              const int32_t *idx, float *dx);

/* Global average: x [c][n][hw] -> y [c][n]. */
void simclr__avgpool_forward(simclr_context *ctx, int64_t c, int64_t n, int64_t hw, const float *x, float *y);
void simclr__avgpool_backward(simclr_context *ctx, int64_t c, int64_t n, int64_t hw, const float *dy, float *dx);

/* ---- layout: the module edges ---- */

/* NCHW [n][c][hw] <-> channel-major [c][n][hw]; flatten [c][n] -> [n][c] is
 * to_nchw with hw = 1, and its backward is to_cm with hw = 1. */
void simclr__layout_to_cm(simclr_context *ctx, int64_t n, int64_t c, int64_t hw, const float *x, float *y);
void simclr__layout_to_nchw(simclr_context *ctx, int64_t n, int64_t c, int64_t hw, const float *x, float *y);

/* ---- residual add (ResNet fuses it into batch norm; kept for other uses) ---- */

/* out = a + b; backward: both inputs receive dy unchanged. */
void simclr__residual_forward(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out);

#endif
