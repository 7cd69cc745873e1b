/* GELU, the exact erf form of torch.nn.GELU() (the MLP of a ViT block). */
#include "transformer.h"

void simclr__gelu_forward(simclr_context *ctx, int64_t n, const float *x, float *y)
{
    ctx->backend->gelu_forward(ctx, n, x, y);
}

void simclr__gelu_backward(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx)
{
    ctx->backend->gelu_backward(ctx, n, x, dy, dx);
}
