/* The optimizer update rules, element by element, shared by the generic
 * slots (fallback.c) and the cpu backend's pooled copies (cpu/optim.c): one
 * definition of each rule, so every backend and thread count computes the
 * same float operations in the same order. The rules and their sources are
 * stated in src/optim/step.c. Internal to src/backend/. */
#ifndef SIMCLR_BACKEND_OPT_RULES_H
#define SIMCLR_BACKEND_OPT_RULES_H

#include <math.h>

#include "backend.h"

static inline void simclr__opt_rule_range(const simclr__opt_rule *r, int64_t b, int64_t e, float *restrict w,
                                          const float *restrict g, float *restrict s0, float *restrict s1)
{
    const float lr = r->lr, wd = r->wd, mu = r->mu;
    switch (r->kind) {
    case SIMCLR_OPT_SGD:
        for (int64_t i = b; i < e; i++) {
            float d = g[i] + wd * w[i];
            float buf = mu * s0[i] + d;
            s0[i] = buf;
            w[i] -= lr * (r->nesterov ? d + mu * buf : buf);
        }
        break;
    case SIMCLR_OPT_ADAMW: {
        const float b1 = r->b1, b2 = r->b2, decay = r->decay, step = r->step_size, bc2 = r->bc2_sqrt, eps = r->eps;
        for (int64_t i = b; i < e; i++) {
            float gi = g[i];
            float p = w[i] * decay;
            float m = b1 * s0[i] + (1.0f - b1) * gi;
            float v = b2 * s1[i] + (1.0f - b2) * gi * gi;
            s0[i] = m;
            s1[i] = v;
            w[i] = p - step * m / (sqrtf(v) / bc2 + eps);
        }
        break;
    }
    case SIMCLR_OPT_LARS:
        for (int64_t i = b; i < e; i++) {
            float d = g[i] + wd * w[i];
            float scaled = lr * d; /* lr already carries the trust ratio */
            float v = mu * s0[i] + scaled;
            s0[i] = v;
            w[i] -= r->nesterov ? mu * v + scaled : v;
        }
        break;
    }
}

/* sum (g + wd w)^2 into gg[0] and, when w is not NULL, sum w^2 into ww[0],
 * over [b, e) in 8 double lanes added in lane order (vectorizes without
 * reassociating: each lane keeps its own order). */
static inline void simclr__opt_sq_norms_range(int64_t b, int64_t e, const float *w, const float *g, float wd,
                                              double *ww, double *gg)
{
    double lw[8] = {0}, lg[8] = {0};
    int64_t i = b;
    if (w) {
        for (; i + 8 <= e; i += 8)
            for (int l = 0; l < 8; l++) {
                float d = g[i + l] + wd * w[i + l];
                lw[l] += (double)w[i + l] * w[i + l];
                lg[l] += (double)d * d;
            }
        for (; i < e; i++) {
            float d = g[i] + wd * w[i];
            lw[0] += (double)w[i] * w[i];
            lg[0] += (double)d * d;
        }
    } else {
        for (; i + 8 <= e; i += 8)
            for (int l = 0; l < 8; l++) lg[l] += (double)g[i + l] * g[i + l];
        for (; i < e; i++) lg[0] += (double)g[i] * g[i];
    }
    double sw = 0, sg = 0;
    for (int l = 0; l < 8; l++) sw += lw[l], sg += lg[l];
    *ww = sw;
    *gg = sg;
}

#endif
