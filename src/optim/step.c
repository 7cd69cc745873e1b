/* The update rules, element by element in float like torch.optim (scalars in
 * double). This file turns the optimizer's settings into each tensor's
 * constants; the element loops run in the backend (opt_update, opt_sq_norms:
 * backend/opt_rules.h), so a backend owns where and how wide they run. Norms
 * are squares of floats summed in double, the same bytes at any thread count.
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
#include "../backend/backend.h"

simclr_status simclr__optimizer_grad_norm(const simclr_optimizer *opt, double *norm)
{
    const simclr__backend *be = opt->ctx->backend;
    double total = 0;
    for (int i = 0; i < opt->n_slots; i++) {
        const simclr_tensor *g = opt->slots[i].grad;
        double unused, ss;
        be->opt_sq_norms(opt->ctx, g->numel, NULL, simclr__f32(g), 0.0f, &unused, &ss);
        /* A double sum of squared floats cannot overflow at any tensor size
         * that fits memory, so it is finite exactly when every element is. */
        if (!isfinite(ss))
            return simclr__fail(SIMCLR_E_NUMERIC,
                                "simclr_optimizer_step: the gradient of '%s' holds a NaN or infinity; "
                                "nothing was updated", opt->slots[i].name);
        total += ss;
    }
    *norm = sqrt(total);
    return SIMCLR_OK;
}

void simclr__opt_update_slot(const simclr_optimizer *opt, simclr__opt_slot *slot, double lr)
{
    const simclr__backend *be = opt->ctx->backend;
    const int64_t n = slot->value->numel;
    const int excluded = opt->exclude_no_decay && slot->no_decay;
    const double wd = excluded ? 0.0 : opt->weight_decay;
    float *w = simclr__f32(slot->value), *s0 = simclr__f32(slot->state[0]);
    float *s1 = slot->state[1] ? simclr__f32(slot->state[1]) : NULL;
    const float *g = simclr__f32(slot->grad);
    simclr__opt_rule r = {.kind = opt->kind, .nesterov = opt->nesterov, .lr = (float)lr, .wd = (float)wd,
                          .mu = (float)opt->momentum};
    switch (opt->kind) {
    case SIMCLR_OPT_SGD: break;
    case SIMCLR_OPT_ADAMW: {
        double t = (double)opt->step + 1.0;
        double bc1 = 1.0 - pow(opt->beta1, t), bc2 = 1.0 - pow(opt->beta2, t);
        r.decay = (float)(1.0 - lr * wd);
        r.b1 = (float)opt->beta1;
        r.b2 = (float)opt->beta2;
        r.eps = (float)opt->eps;
        r.step_size = (float)(lr / bc1);
        r.bc2_sqrt = (float)sqrt(bc2);
        break;
    }
    case SIMCLR_OPT_LARS: {
        double ratio = 1.0;
        if (!excluded) {
            double ww, gg;
            be->opt_sq_norms(opt->ctx, n, w, g, (float)wd, &ww, &gg);
            if (ww > 0 && gg > 0) ratio = opt->eta * sqrt(ww) / sqrt(gg);
        }
        r.lr = (float)(lr * ratio);
        break;
    }
    }
    be->opt_update(opt->ctx, &r, n, w, g, s0, s1);
}
