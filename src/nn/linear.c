/* Fully connected layer on channel-major features [in, n] -> [out, n], so
 * batch norm and ReLU after it use the same row kernels as in the ResNet. */
#include <math.h>
#include <stdio.h>

#include "../core/rng.h"
#include "nn.h"

simclr_status simclr__linear_init(const simclr__param_sink *ps, simclr__linear *l, const char *name, int64_t in,
                                  int64_t out, int bias, uint64_t seed)
{
    char full[SIMCLR__LAYER_NAME + 16];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->in = in, l->out = out;
    l->b = l->db = NULL;
    /* torch.nn.Linear: kaiming_uniform_(a = sqrt(5)) gives +-1/sqrt(fan_in),
     * and the bias uses the same bound. */
    float bound = (float)(1.0 / sqrt((double)in));
    simclr__rng r;

    int64_t wshape[2] = {out, in};
    uint64_t index;
    snprintf(full, sizeof full, "%s.weight", name);
    SIMCLR__TRY(ps->add(ps->owner, full, 2, wshape, 0, &l->w, &l->dw, &index));
    simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
    float *w = simclr__f32(l->w);
    for (int64_t i = 0; i < l->w->numel; i++) w[i] = (float)simclr__rng_range(&r, -bound, bound);
    if (bias) {
        snprintf(full, sizeof full, "%s.bias", name);
        SIMCLR__TRY(ps->add(ps->owner, full, 1, &out, SIMCLR_PARAM_NO_DECAY, &l->b, &l->db, &index));
        simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
        float *b = simclr__f32(l->b);
        for (int64_t i = 0; i < out; i++) b[i] = (float)simclr__rng_range(&r, -bound, bound);
    }
    return SIMCLR_OK;
}

void simclr__linear_forward(simclr_context *ctx, const simclr__linear *l, int64_t n, const float *x, float *y)
{
    ctx->backend->gemm(ctx, 0, 0, l->out, n, l->in, 1.0f, simclr__f32(l->w), l->in, x, n, 0.0f, y, n);
    if (l->b) ctx->backend->row_affine(ctx, l->out, n, y, NULL, simclr__f32(l->b), NULL, 0, y);
}

void simclr__linear_backward(simclr_context *ctx, const simclr__linear *l, int64_t n, const float *x,
                             const float *dy, float *dx, float *scratch)
{
    const simclr__backend *be = ctx->backend;
    be->gemm(ctx, 0, 1, l->out, l->in, n, 1.0f, dy, n, x, n, 1.0f, simclr__f32(l->dw), l->in);
    if (l->db) {
        be->sum_cols(ctx, l->out, n, dy, scratch);
        be->axpy(ctx, l->out, 1.0f, scratch, simclr__f32(l->db));
    }
    if (dx) be->gemm(ctx, 1, 0, l->in, n, l->out, 1.0f, simclr__f32(l->w), l->in, dy, n, 0.0f, dx, n);
}
