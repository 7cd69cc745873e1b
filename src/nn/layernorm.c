/* Layer norm over each token's features (torch.nn.LayerNorm): the row
 * kernels of the backend, parameters under torch names. */
#include <stdio.h>

#include "transformer.h"

simclr_status simclr__layernorm_init(const simclr__param_sink *ps, simclr__layernorm *l, const char *name,
                                     int64_t d, float eps)
{
    char full[SIMCLR__LAYER_NAME + 16];
    uint64_t index;
    snprintf(l->name, sizeof l->name, "%s", name);
    l->d = d, l->eps = eps;
    snprintf(full, sizeof full, "%s.weight", name);
    SIMCLR__TRY(ps->add(ps->owner, full, 1, &d, SIMCLR_PARAM_NO_DECAY, &l->w, &l->dw, &index));
    float *w = simclr__f32(l->w);
    for (int64_t i = 0; i < d; i++) w[i] = 1.0f;
    snprintf(full, sizeof full, "%s.bias", name);
    return ps->add(ps->owner, full, 1, &d, SIMCLR_PARAM_NO_DECAY, &l->b, &l->db, &index);
}

void simclr__layernorm_forward(simclr_context *ctx, const simclr__layernorm *l, int64_t rows, const float *x,
                               float *y, float *stats)
{
    ctx->backend->layernorm_forward(ctx, rows, l->d, x, simclr__f32(l->w), simclr__f32(l->b), l->eps, y, stats,
                                    stats + rows);
}

void simclr__layernorm_backward(simclr_context *ctx, const simclr__layernorm *l, int64_t rows, const float *x,
                                const float *dy, float *dx, const float *stats)
{
    ctx->backend->layernorm_backward(ctx, rows, l->d, x, simclr__f32(l->w), stats, stats + rows, dy, dx,
                                     simclr__f32(l->dw), simclr__f32(l->db));
}
