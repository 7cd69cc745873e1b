/* Transformer layers (the Vision Transformer, model/vit.c). Unlike the
 * channel-major ResNet layers of nn.h, token activations are row-major
 * [N, T, D]: rows = N*T tokens of D features each, so a projection is one
 * product over all tokens and layer norm is a row kernel.
 *
 * As in nn.h, layers own only their parameters (registered under torch
 * names through a param sink); buffers come from the module's arena and
 * passes cannot fail. */
#ifndef SIMCLR_NN_TRANSFORMER_H
#define SIMCLR_NN_TRANSFORMER_H

#include "nn.h"

/* ---- layer norm over the last dimension (torch.nn.LayerNorm(d, eps)) ---- */

typedef struct simclr__layernorm {
    char name[SIMCLR__LAYER_NAME]; /* "encoder.layers.encoder_layer_0.ln_1" */
    int64_t d;
    float eps;
    simclr_tensor *w, *dw, *b, *db; /* [d]: weight 1, bias 0, both NO_DECAY */
} simclr__layernorm;

/* Floats of per-row statistics a layer norm keeps between forward and backward. */
#define SIMCLR__LN_STATS(rows) (2 * (rows))

simclr_status simclr__layernorm_init(const simclr__param_sink *ps, simclr__layernorm *l, const char *name,
                                     int64_t d, float eps);
/* y = LN(x) over x [rows, d]; stats (SIMCLR__LN_STATS(rows)) saves mean and
 * 1/std per row. y may alias x when no backward follows. */
void simclr__layernorm_forward(simclr_context *ctx, const simclr__layernorm *l, int64_t rows, const float *x,
                               float *y, float *stats);
/* Accumulates dweight/dbias; writes dx (may alias dy). */
void simclr__layernorm_backward(simclr_context *ctx, const simclr__layernorm *l, int64_t rows, const float *x,
                                const float *dy, float *dx, const float *stats);

/* ---- token linear: y [rows, out] = x [rows, in] W^T + b (W [out, in], torch) ---- */

typedef enum simclr__tlinear_init_kind {
    SIMCLR__TLINEAR_TORCH = 0,       /* torch.nn.Linear: W uniform +-1/sqrt(in); bias 0 (MHA's out_proj) */
    SIMCLR__TLINEAR_XAVIER = 1,      /* W Xavier uniform, bias 0 (MHA's in_proj) */
    SIMCLR__TLINEAR_XAVIER_TINY = 2  /* W Xavier uniform, bias normal std 1e-6 (torchvision's MLPBlock) */
} simclr__tlinear_init_kind;

typedef struct simclr__tlinear {
    char name[SIMCLR__LAYER_NAME];
    int64_t in, out;
    simclr_tensor *w, *dw, *b, *db;
} simclr__tlinear;

/* Registers wname [out, in] and bname [out] (NO_DECAY). */
simclr_status simclr__tlinear_init(const simclr__param_sink *ps, simclr__tlinear *l, const char *wname,
                                   const char *bname, int64_t in, int64_t out, simclr__tlinear_init_kind kind,
                                   uint64_t seed);
/* ones holds `rows` floats equal to 1 (the bias is a rank-1 product update). */
void simclr__tlinear_forward(simclr_context *ctx, const simclr__tlinear *l, int64_t rows, const float *x,
                             const float *ones, float *y);
/* Accumulates dW and db (scratch: l->out floats); dx NULL = not wanted,
 * else written (accumulate = 0) or added to (accumulate = 1). */
void simclr__tlinear_backward(simclr_context *ctx, const simclr__tlinear *l, int64_t rows, const float *x,
                              const float *dy, float *dx, int accumulate, float *scratch);

/* ---- GELU (exact erf form); y may alias x, dx may alias dy ---- */

void simclr__gelu_forward(simclr_context *ctx, int64_t n, const float *x, float *y);
void simclr__gelu_backward(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx);

/* ---- multi-head self-attention core (torch.nn.MultiheadAttention without
 * the projections): qkv [n, t, 3d] holds q | k | v per token, head h uses
 * features h*dh .. (h+1)*dh - 1 of each (dh = d / heads);
 * o [n, t, d] = concat over heads of softmax(q k^T / sqrt(dh)) v.
 *
 * The t x t probabilities are never stored: each (image, head) block is
 * computed in a per-worker workspace, in forward and again in backward, so
 * the arena holds O(n t d) for attention, not O(n heads t^2). Work is split
 * over (image, head) pairs on the context's pool; every pair runs the same
 * operations whatever the thread count (same bytes). ---- */

/* Workspace floats the attention passes need on ctx (depends on its thread count). */
int64_t simclr__attention_workspace(const simclr_context *ctx, int64_t t);
void simclr__attention_forward(simclr_context *ctx, int64_t n, int64_t t, int64_t d, int64_t heads,
                               const float *qkv, float *o, float *ws);
/* dqkv [n, t, 3d] written from do_ [n, t, d] and the forward's qkv. */
void simclr__attention_backward(simclr_context *ctx, int64_t n, int64_t t, int64_t d, int64_t heads,
                                const float *qkv, const float *do_, float *dqkv, float *ws);

#endif
