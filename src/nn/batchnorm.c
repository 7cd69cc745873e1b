/* Batch normalization over channel rows [C, M] (BatchNorm2d with M = N*H*W,
 * BatchNorm1d with M = N), PyTorch conventions: momentum 0.1, eps 1e-5,
 * biased batch variance for normalizing, unbiased for the running estimate,
 * num_batches_tracked counted. Fuses the residual add and ReLU that follow
 * it in a ResNet block, so the forward is one statistics pass and one
 * elementwise pass, and the backward one reduction pass and one dx pass. */
#include <math.h>
#include <stdio.h>

#include "nn.h"

/* Layout of the per-channel scratch (SIMCLR__BN_STATS floats). */
enum { S_MEAN, S_INVSTD, S_VAR, S_SCALE, S_SHIFT, S_A, S_B, S_C };

simclr_status simclr__batchnorm_init(const simclr__param_sink *ps, simclr__batchnorm *l, const char *name, int64_t c,
                                     int has_beta)
{
    char full[SIMCLR__LAYER_NAME + 32];
    snprintf(l->name, sizeof l->name, "%s", name);
    l->c = c;
    l->momentum = 0.1f;
    l->eps = 1e-5f;
    l->beta = l->dbeta = NULL;
    int64_t one = 1;

    snprintf(full, sizeof full, "%s.weight", name);
    uint64_t index;
    SIMCLR__TRY(ps->add(ps->owner, full, 1, &c, SIMCLR_PARAM_NO_DECAY, &l->gamma, &l->dgamma, &index));
    float *g = simclr__f32(l->gamma);
    for (int64_t i = 0; i < c; i++) g[i] = 1.0f;
    if (has_beta) {
        snprintf(full, sizeof full, "%s.bias", name);
        SIMCLR__TRY(ps->add(ps->owner, full, 1, &c, SIMCLR_PARAM_NO_DECAY, &l->beta, &l->dbeta, &index));
    }
    snprintf(full, sizeof full, "%s.running_mean", name);
    simclr_tensor *no_grad;
    SIMCLR__TRY(ps->add(ps->owner, full, 1, &c, SIMCLR_PARAM_BUFFER, &l->running_mean, &no_grad, &index));
    snprintf(full, sizeof full, "%s.running_var", name);
    SIMCLR__TRY(ps->add(ps->owner, full, 1, &c, SIMCLR_PARAM_BUFFER, &l->running_var, &no_grad, &index));
    float *rv = simclr__f32(l->running_var);
    for (int64_t i = 0; i < c; i++) rv[i] = 1.0f;
    snprintf(full, sizeof full, "%s.num_batches_tracked", name);
    SIMCLR__TRY(ps->add(ps->owner, full, 1, &one, SIMCLR_PARAM_BUFFER, &l->num_batches_tracked, &no_grad, &index));
    return SIMCLR_OK;
}

void simclr__batchnorm_forward(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, simclr_mode mode,
                               const float *x, const float *res, int relu, float *y, float *stats)
{
    int64_t c = l->c;
    float *mean = stats + S_MEAN * c, *invstd = stats + S_INVSTD * c, *var = stats + S_VAR * c;
    float *scale = stats + S_SCALE * c, *shift = stats + S_SHIFT * c;
    const float *gamma = simclr__f32(l->gamma), *beta = l->beta ? simclr__f32(l->beta) : NULL;
    float *rm = simclr__f32(l->running_mean), *rv = simclr__f32(l->running_var);

    if (mode == SIMCLR_TRAIN) {
        ctx->backend->row_moments(ctx, c, m, x, mean, var);
        /* Hook (core/context.h): synchronized or frozen statistics. */
        int64_t count = m;
        int update = ctx->bn_hook ? ctx->bn_hook->forward(ctx->bn_hook->user, c, &count, mean, var, rm, rv) : 1;
        /* Unbiased running variance as torch; m >= 2 is checked by the module. */
        double unbias = (double)count / (double)(count - 1);
        for (int64_t i = 0; i < c; i++) {
            invstd[i] = (float)(1.0 / sqrt((double)var[i] + l->eps));
            if (!update) continue;
            rm[i] = (1.0f - l->momentum) * rm[i] + l->momentum * mean[i];
            rv[i] = (1.0f - l->momentum) * rv[i] + l->momentum * (float)(var[i] * unbias);
        }
        if (update) simclr__f32(l->num_batches_tracked)[0] += 1.0f;
    } else {
        for (int64_t i = 0; i < c; i++) {
            mean[i] = rm[i];
            invstd[i] = (float)(1.0 / sqrt((double)rv[i] + l->eps));
        }
    }
    for (int64_t i = 0; i < c; i++) {
        scale[i] = gamma[i] * invstd[i];
        shift[i] = (beta ? beta[i] : 0.0f) - mean[i] * scale[i];
    }
    ctx->backend->row_affine(ctx, c, m, x, scale, shift, res, relu, y);
}

void simclr__batchnorm_recompute(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, const float *x,
                                 int relu, float *y, const float *stats)
{
    ctx->backend->row_affine(ctx, l->c, m, x, stats + S_SCALE * l->c, stats + S_SHIFT * l->c, NULL, relu, y);
}

/* With g the gradient after the ReLU mask and xhat = (x - mean) * invstd:
 *   dgamma = sum g * xhat,  dbeta = sum g,
 *   dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)),
 * written as ka * g + kb * (x - mean) + kc per channel. */
void simclr__batchnorm_backward(simclr_context *ctx, const simclr__batchnorm *l, int64_t m, const float *x,
                                const float *y, int relu, const float *dy, float *dx, float *dres,
                                float *stats)
{
    int64_t c = l->c;
    const float *mean = stats + S_MEAN * c, *invstd = stats + S_INVSTD * c;
    float *sum_g = stats + S_SCALE * c, *sum_gx = stats + S_SHIFT * c;
    float *ka = stats + S_A * c, *kb = stats + S_B * c, *kc = stats + S_C * c;
    const float *gamma = simclr__f32(l->gamma);
    float *dgamma = simclr__f32(l->dgamma), *dbeta = l->dbeta ? simclr__f32(l->dbeta) : NULL;
    const float *mask = relu ? y : NULL;

    ctx->backend->bn_backward_reduce(ctx, c, m, x, mask, dy, mean, sum_g, sum_gx);
    for (int64_t i = 0; i < c; i++) {
        dgamma[i] += (float)((double)sum_gx[i] * invstd[i]);
        if (dbeta) dbeta[i] += sum_g[i];
    }
    /* Hook (core/context.h): the sums dx needs, over all replicas or none. */
    int64_t count = m;
    if (ctx->bn_hook) ctx->bn_hook->backward(ctx->bn_hook->user, c, &count, sum_g, sum_gx);
    for (int64_t i = 0; i < c; i++) {
        double is = invstd[i], gs = gamma[i] * is;
        ka[i] = (float)gs;
        kb[i] = (float)(-gs * is * is * sum_gx[i] / (double)count);
        kc[i] = (float)(-gs * sum_g[i] / (double)count);
    }
    ctx->backend->bn_backward_dx(ctx, c, m, x, mask, dy, mean, ka, kb, kc, dx, dres);
}
