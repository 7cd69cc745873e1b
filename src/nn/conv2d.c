/* 2-D convolution on channel-major activations; the kernels (im2col + GEMM
 * on "cpu", direct loops on "ref") sit behind the backend vtable. */
#include <math.h>
#include <stdio.h>

#include "../core/rng.h"
#include "nn.h"

simclr_status simclr__conv2d_init(const simclr__param_sink *ps, simclr__conv2d *l, const char *name, int64_t cin,
                                  int64_t cout, int64_t k, int64_t stride, int64_t pad, int bias,
                                  uint64_t seed)
{
    char full[SIMCLR__LAYER_NAME + 16];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->cin = cin, l->cout = cout, l->k = k, l->stride = stride, l->pad = pad;
    l->b = l->db = NULL;

    /* The RNG index is the parameter's position in the module, so each
     * tensor's values depend only on (seed, position). */
    uint64_t index;
    int64_t wshape[4] = {cout, cin, k, k};
    snprintf(full, sizeof full, "%s.weight", name);
    SIMCLR__TRY(ps->add(ps->owner, full, 4, wshape, 0, &l->w, &l->dw, &index));
    /* torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"). */
    double std = sqrt(2.0 / (double)(cout * k * k));
    simclr__rng r;
    simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
    float *w = simclr__f32(l->w);
    for (int64_t i = 0; i < l->w->numel; i++) w[i] = (float)(std * simclr__rng_normal(&r));

    if (bias) {
        /* Zero bias (torchvision ResNets have none; a plain conv layer would
         * use torch's uniform init, which no module here needs). */
        snprintf(full, sizeof full, "%s.bias", name);
        SIMCLR__TRY(ps->add(ps->owner, full, 1, &cout, SIMCLR_PARAM_NO_DECAY, &l->b, &l->db, &index));
    }
    return SIMCLR_OK;
}

simclr_status simclr__conv2d_desc(const simclr__conv2d *l, int64_t n, int64_t h, int64_t w,
                                  simclr__conv_desc *d)
{
    int64_t eh = h + 2 * l->pad, ew = w + 2 * l->pad;
    if (eh < l->k || ew < l->k)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "conv2d '%s': input of %lldx%lld is too small for a %lldx%lld kernel with "
                            "padding %lld (the image is too small for this network)",
                            l->name, (long long)h, (long long)w, (long long)l->k, (long long)l->k,
                            (long long)l->pad);
    *d = (simclr__conv_desc){.n = n, .cin = l->cin, .h = h, .w = w, .cout = l->cout, .kh = l->k, .kw = l->k,
                             .stride = l->stride, .pad = l->pad,
                             .oh = (eh - l->k) / l->stride + 1, .ow = (ew - l->k) / l->stride + 1};
    return SIMCLR_OK;
}

void simclr__conv2d_forward(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                            const float *x, float *y, float *ws)
{
    ctx->backend->conv2d_forward(ctx, d, x, simclr__f32(l->w), l->b ? simclr__f32(l->b) : NULL, y, ws);
}

void simclr__conv2d_forward_affine(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                                   const float *x, const float *scale, const float *shift, const float *res,
                                   int relu, float *y, float *ws)
{
    ctx->backend->conv2d_forward_affine(ctx, d, x, simclr__f32(l->w), scale, shift, res, relu, y, ws);
}

void simclr__conv2d_backward(simclr_context *ctx, const simclr__conv2d *l, const simclr__conv_desc *d,
                             const float *x, const float *dy, float *dx, int accumulate, float *ws)
{
    ctx->backend->conv2d_backward(ctx, d, x, simclr__f32(l->w), dy, simclr__f32(l->dw),
                                  l->db ? simclr__f32(l->db) : NULL, dx, accumulate, ws);
}
