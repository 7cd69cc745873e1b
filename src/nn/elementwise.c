/* The parameter-free layers: ReLU, max and global-average pooling, the
 * layout changes at module edges (which double as flatten), residual add. */
#include "nn.h"

void simclr__relu_forward(simclr_context *ctx, int64_t n, const float *x, float *y)
{
    ctx->backend->row_affine(ctx, 1, n, x, NULL, NULL, NULL, 1, y);
}

void simclr__relu_backward(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx)
{
    ctx->backend->relu_backward(ctx, n, y, dy, dx);
}

int64_t simclr__maxpool_out(int64_t size)
{
    return (size + 2 * SIMCLR__MAXPOOL_PAD - SIMCLR__MAXPOOL_K) / SIMCLR__MAXPOOL_STRIDE + 1;
}

void simclr__maxpool_forward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, const float *x,
                             float *y, int32_t *idx)
{
    ctx->backend->maxpool_forward(ctx, planes, h, w, SIMCLR__MAXPOOL_K, SIMCLR__MAXPOOL_STRIDE,
                                  SIMCLR__MAXPOOL_PAD, simclr__maxpool_out(h), simclr__maxpool_out(w), x, y,
                                  idx);
}

void simclr__maxpool_backward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, const float *dy,
                              const int32_t *idx, float *dx)
{
    ctx->backend->maxpool_backward(ctx, planes, h, w, simclr__maxpool_out(h), simclr__maxpool_out(w), dy, idx,
                                   dx);
}

void simclr__avgpool_forward(simclr_context *ctx, int64_t c, int64_t n, int64_t hw, const float *x, float *y)
{
    ctx->backend->avgpool_forward(ctx, c * n, hw, x, y);
}

void simclr__avgpool_backward(simclr_context *ctx, int64_t c, int64_t n, int64_t hw, const float *dy, float *dx)
{
    ctx->backend->avgpool_backward(ctx, c * n, hw, dy, dx);
}

void simclr__layout_to_cm(simclr_context *ctx, int64_t n, int64_t c, int64_t hw, const float *x, float *y)
{
    ctx->backend->swap01(ctx, n, c, hw, x, y);
}

void simclr__layout_to_nchw(simclr_context *ctx, int64_t n, int64_t c, int64_t hw, const float *x, float *y)
{
    ctx->backend->swap01(ctx, c, n, hw, x, y);
}

void simclr__residual_forward(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out)
{
    ctx->backend->add(ctx, n, a, b, out);
}
