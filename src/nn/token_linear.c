/* Fully connected layer on row-major tokens [rows, in] -> [rows, out]
 * (torch.nn.Linear applied to the last dimension): one product over all
 * tokens; the bias is a rank-1 update (ones x bias), so forward and backward
 * use only the gemm and column-sum kernels. */
#include <math.h>
#include <stdio.h>

#include "../core/rng.h"
#include "transformer.h"

simclr_status simclr__tlinear_init(const simclr__param_sink *ps, simclr__tlinear *l, const char *wname,
                                   const char *bname, int64_t in, int64_t out, simclr__tlinear_init_kind kind,
                                   uint64_t seed)
{
    snprintf(l->name, sizeof l->name, "%s", wname);
    l->in = in, l->out = out;
    uint64_t index;
    simclr__rng r;
    int64_t wshape[2] = {out, in};
    SIMCLR__TRY(ps->add(ps->owner, wname, 2, wshape, 0, &l->w, &l->dw, &index));
    /* torch.nn.Linear: kaiming_uniform_(a = sqrt(5)) = +-1/sqrt(fan_in);
     * xavier_uniform_: +-sqrt(6 / (fan_in + fan_out)). */
    double bound = kind == SIMCLR__TLINEAR_TORCH ? 1.0 / sqrt((double)in) : sqrt(6.0 / (double)(in + out));
    simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
    float *w = simclr__f32(l->w);
    for (int64_t i = 0; i < l->w->numel; i++) w[i] = (float)simclr__rng_range(&r, -bound, bound);
    SIMCLR__TRY(ps->add(ps->owner, bname, 1, &out, SIMCLR_PARAM_NO_DECAY, &l->b, &l->db, &index));
    if (kind == SIMCLR__TLINEAR_XAVIER_TINY) {
        simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
        float *b = simclr__f32(l->b);
        for (int64_t i = 0; i < out; i++) b[i] = (float)(1e-6 * simclr__rng_normal(&r));
    }
    return SIMCLR_OK;
}

void simclr__tlinear_forward(simclr_context *ctx, const simclr__tlinear *l, int64_t rows, const float *x,
                             const float *ones, float *y)
{
    const simclr__backend *be = ctx->backend;
    be->gemm(ctx, 0, 1, rows, l->out, l->in, 1.0f, x, l->in, simclr__f32(l->w), l->in, 0.0f, y, l->out);
    be->gemm(ctx, 0, 0, rows, l->out, 1, 1.0f, ones, 1, simclr__f32(l->b), l->out, 1.0f, y, l->out);
}

void simclr__tlinear_backward(simclr_context *ctx, const simclr__tlinear *l, int64_t rows, const float *x,
                              const float *dy, float *dx, int accumulate, float *scratch)
{
    const simclr__backend *be = ctx->backend;
    be->gemm(ctx, 1, 0, l->out, l->in, rows, 1.0f, dy, l->out, x, l->in, 1.0f, simclr__f32(l->dw), l->in);
    be->sum_rows(ctx, rows, l->out, dy, scratch);
    be->axpy(ctx, l->out, 1.0f, scratch, simclr__f32(l->db));
    if (dx)
        be->gemm(ctx, 0, 0, rows, l->in, l->out, 1.0f, dy, l->out, simclr__f32(l->w), l->in,
                 accumulate ? 1.0f : 0.0f, dx, l->in);
}
