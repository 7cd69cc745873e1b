/* Momentum (exponential moving average) update of one module from another of
 * the same architecture: MoCo's key encoder, BYOL's target network, a
 * Polyak-averaged copy for evaluation. Parameters and BN running statistics
 * are averaged; num_batches_tracked is a count, not an estimate, so the
 * target keeps its own. */
#include <math.h>
#include <string.h>

#include "module.h"

static int is_count(const char *name)
{
    static const char suffix[] = "num_batches_tracked";
    size_t n = strlen(name), k = sizeof suffix - 1;
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

/* Checks that two modules hold the same named tensors with the same shapes. */
simclr_status simclr__module_same_layout(const simclr_module *a, const simclr_module *b, const char *fn)
{
    if (strcmp(a->arch, b->arch) != 0 || a->n_params != b->n_params)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: architectures differ ('%s' and '%s')", fn, a->arch, b->arch);
    for (int i = 0; i < a->n_params; i++) {
        const simclr__param *p = &a->params[i], *q = &b->params[i];
        int same = strcmp(p->name, q->name) == 0 && p->value->ndim == q->value->ndim &&
                   p->value->dtype == q->value->dtype && p->flags == q->flags;
        for (int d = 0; same && d < p->value->ndim; d++) same = p->value->dims[d] == q->value->dims[d];
        if (!same)
            return simclr__fail(SIMCLR_E_SHAPE, "%s: tensor %d differs ('%s' and '%s') between '%s' and '%s'", fn,
                                i, p->name, q->name, a->arch, b->arch);
    }
    return SIMCLR_OK;
}

void simclr__module_momentum_apply(simclr_module *target, const simclr_module *source, double m)
{
    const double w = 1.0 - m;
    for (int i = 0; i < target->n_params; i++) {
        simclr__param *t = &target->params[i];
        const simclr__param *s = &source->params[i];
        if ((t->flags & SIMCLR_PARAM_BUFFER) && is_count(t->name)) continue;
        float *td = simclr__f32(t->value);
        const float *sd = simclr__f32(s->value);
        for (int64_t k = 0; k < t->value->numel; k++) td[k] = (float)(m * (double)td[k] + w * (double)sd[k]);
    }
}

simclr_status simclr_module_momentum_update(simclr_module *target, const simclr_module *source, double momentum)
{
    static const char fn[] = "simclr_module_momentum_update";
    SIMCLR__CHECK_ARG(target, fn, "target is NULL");
    SIMCLR__CHECK_ARG(source, fn, "source is NULL");
    if (target == source) return simclr__fail(SIMCLR_E_INVALID, "%s: target and source are the same module", fn);
    if (target->ctx != source->ctx)
        return simclr__fail(SIMCLR_E_INVALID, "%s: target and source belong to two contexts", fn);
    if (!(momentum >= 0.0 && momentum <= 1.0))
        return simclr__fail(SIMCLR_E_INVALID, "%s: momentum %g outside [0, 1]", fn, momentum);
    SIMCLR__TRY(simclr__module_same_layout(target, source, fn));
    simclr__module_momentum_apply(target, source, momentum);
    return SIMCLR_OK;
}
