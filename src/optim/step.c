/* The update rules, element by element in float like torch.optim (scalars in
 * double), split over the context's pool in contiguous chunks; norms are
 * accumulated in double per worker and summed in worker order, so results do
 * not depend on scheduling.
 *
 * SGD (torch.optim.SGD, dampening 0): d = g + wd w; b = mu b + d (b starts at
 *   0, so the first step gives b = d as torch's clone does);
 *   w -= lr (nesterov ? d + mu b : b).
 * AdamW (torch.optim.AdamW): w *= 1 - lr wd; m = b1 m + (1-b1) g;
 *   v = b2 v + (1-b2) g^2; with t = STEP + 1,
 *   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * LARS (official SimCLR tf2/lars_optimizer.py, classic momentum):
 *   g' = g + wd w; ratio = eta ||w|| / ||g'|| (1 when either norm is 0);
 *   v = mu v + lr ratio g'; w -= nesterov ? mu v + lr ratio g' : v.
 * With SIMCLR_OPT_EXCLUDE_NO_DECAY, NO_DECAY tensors get wd = 0 and (LARS)
 * ratio 1. */
#include <math.h>

#include "optimizer.h"

#define GRAIN 16384
#define MAX_WORKERS 256

typedef struct {
    float *w, *g, *s0, *s1;
    float wd, lr, mu, b1, b2, eps, step_size, bc2_sqrt, c1, c2;
    int nesterov;
    double partial[MAX_WORKERS][2];
    unsigned char bad[MAX_WORKERS];
} upd_job;

static void sumsq_task(void *arg, int64_t b, int64_t e, int w)
{
    upd_job *j = arg;
    double ss = 0;
    for (int64_t i = b; i < e; i++) ss += (double)j->g[i] * j->g[i];
    j->partial[w][0] += ss;
    if (!isfinite(ss)) j->bad[w] = 1;
}

simclr_status simclr__optimizer_grad_norm(const simclr_optimizer *opt, double *norm)
{
    double total = 0;
    for (int i = 0; i < opt->n_slots; i++) {
        const simclr_tensor *g = opt->slots[i].grad;
        upd_job j = {.g = simclr__f32(g)};
        simclr__pool_for(opt->ctx->pool, g->numel, GRAIN, sumsq_task, &j);
        /* A double sum of squared floats cannot overflow at any tensor size
         * that fits memory, so it is finite exactly when every element is. */
        double ss = 0;
        int bad = 0;
        for (int w = 0; w < MAX_WORKERS; w++) {
            ss += j.partial[w][0];
            bad |= j.bad[w];
        }
        if (bad || !isfinite(ss))
            return simclr__fail(SIMCLR_E_NUMERIC,
                                "simclr_optimizer_step: the gradient of '%s' holds a NaN or infinity; "
                                "nothing was updated", opt->slots[i].name);
        total += ss;
    }
    *norm = sqrt(total);
    return SIMCLR_OK;
}

static void sgd_task(void *arg, int64_t b, int64_t e, int w)
{
    upd_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) {
        float d = j->g[i] + j->wd * j->w[i];
        float buf = j->mu * j->s0[i] + d;
        j->s0[i] = buf;
        j->w[i] -= j->lr * (j->nesterov ? d + j->mu * buf : buf);
    }
}

static void adamw_task(void *arg, int64_t b, int64_t e, int w)
{
    upd_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) {
        float g = j->g[i];
        float p = j->w[i] * j->c1; /* c1 = 1 - lr wd */
        float m = j->b1 * j->s0[i] + (1.0f - j->b1) * g;
        float v = j->b2 * j->s1[i] + (1.0f - j->b2) * g * g;
        j->s0[i] = m;
        j->s1[i] = v;
        j->w[i] = p - j->step_size * m / (sqrtf(v) / j->bc2_sqrt + j->eps);
    }
}

/* ||w||^2 and ||g + wd w||^2 for the LARS trust ratio. */
static void lars_norms_task(void *arg, int64_t b, int64_t e, int w)
{
    upd_job *j = arg;
    double ww = 0, gg = 0;
    for (int64_t i = b; i < e; i++) {
        float d = j->g[i] + j->wd * j->w[i];
        ww += (double)j->w[i] * j->w[i];
        gg += (double)d * d;
    }
    j->partial[w][0] += ww;
    j->partial[w][1] += gg;
}

static void lars_task(void *arg, int64_t b, int64_t e, int w)
{
    upd_job *j = arg;
    (void)w;
    for (int64_t i = b; i < e; i++) {
        float d = j->g[i] + j->wd * j->w[i];
        float scaled = j->lr * d; /* lr already carries the trust ratio */
        float v = j->mu * j->s0[i] + scaled;
        j->s0[i] = v;
        j->w[i] -= j->nesterov ? j->mu * v + scaled : v;
    }
}

void simclr__opt_update_slot(const simclr_optimizer *opt, simclr__opt_slot *slot, double lr)
{
    simclr__pool *pool = opt->ctx->pool;
    const int64_t n = slot->value->numel;
    const int excluded = opt->exclude_no_decay && slot->no_decay;
    const double wd = excluded ? 0.0 : opt->weight_decay;
    upd_job j = {.w = simclr__f32(slot->value), .g = simclr__f32(slot->grad), .s0 = simclr__f32(slot->state[0]),
                 .s1 = slot->state[1] ? simclr__f32(slot->state[1]) : NULL, .wd = (float)wd,
                 .mu = (float)opt->momentum, .nesterov = opt->nesterov};
    switch (opt->kind) {
    case SIMCLR_OPT_SGD:
        j.lr = (float)lr;
        simclr__pool_for(pool, n, GRAIN, sgd_task, &j);
        break;
    case SIMCLR_OPT_ADAMW: {
        double t = (double)opt->step + 1.0;
        double bc1 = 1.0 - pow(opt->beta1, t), bc2 = 1.0 - pow(opt->beta2, t);
        j.c1 = (float)(1.0 - lr * wd);
        j.b1 = (float)opt->beta1;
        j.b2 = (float)opt->beta2;
        j.eps = (float)opt->eps;
        j.step_size = (float)(lr / bc1);
        j.bc2_sqrt = (float)sqrt(bc2);
        simclr__pool_for(pool, n, GRAIN, adamw_task, &j);
        break;
    }
    case SIMCLR_OPT_LARS: {
        double ratio = 1.0;
        if (!excluded) {
            simclr__pool_for(pool, n, GRAIN, lars_norms_task, &j);
            double ww = 0, gg = 0;
            for (int w = 0; w < MAX_WORKERS; w++) {
                ww += j.partial[w][0];
                gg += j.partial[w][1];
            }
            if (ww > 0 && gg > 0) ratio = opt->eta * sqrt(ww) / sqrt(gg);
        }
        j.lr = (float)(lr * ratio);
        simclr__pool_for(pool, n, GRAIN, lars_task, &j);
        break;
    }
    }
}
