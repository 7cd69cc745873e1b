#include "module.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

simclr_status simclr__module_new(simclr_context *ctx, const simclr__module_ops *ops, const char *arch,
                                 simclr_module **out)
{
    simclr_module *m = simclr__calloc(ctx, 1, sizeof *m);
    if (!m) return simclr__nomem(ops->kind, sizeof *m);
    m->ctx = ctx;
    m->ops = ops;
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    *out = m;
    return SIMCLR_OK;
}

simclr_status simclr__module_add(simclr_module *m, const char *name, simclr_tensor *value,
                                 simclr_tensor *grad, int flags)
{
    size_t len = strlen(name) + 1;
    char *copy = simclr__malloc(m->ctx, len);
    if (m->n_params == m->cap) {
        int cap = m->cap ? m->cap * 2 : 32;
        simclr__param *p = copy ? simclr__calloc(m->ctx, (size_t)cap, sizeof *p) : NULL;
        if (!p) {
            simclr__free(m->ctx, copy);
            simclr_tensor_destroy(value);
            simclr_tensor_destroy(grad);
            return simclr__nomem(m->ops->kind, (size_t)cap * sizeof *p);
        }
        if (m->params) memcpy(p, m->params, (size_t)m->n_params * sizeof *p);
        simclr__free(m->ctx, m->params);
        m->params = p;
        m->cap = cap;
    }
    if (!copy) {
        simclr_tensor_destroy(value);
        simclr_tensor_destroy(grad);
        return simclr__nomem(m->ops->kind, len);
    }
    memcpy(copy, name, len);
    m->params[m->n_params++] = (simclr__param){copy, value, grad, flags};
    return SIMCLR_OK;
}

simclr_status simclr__module_new_param(simclr_module *m, const char *name, int ndim,
                                       const int64_t *shape, int flags, simclr_tensor **value)
{
    simclr_tensor *v = NULL, *g = NULL;
    simclr_status st = simclr__tensor_f32(m->ctx, ndim, shape, &v);
    if (st == SIMCLR_OK && !(flags & SIMCLR_PARAM_BUFFER)) st = simclr__tensor_f32(m->ctx, ndim, shape, &g);
    if (st != SIMCLR_OK) {
        simclr_tensor_destroy(v);
        return st;
    }
    SIMCLR__TRY(simclr__module_add(m, name, v, g, flags));
    if (value) *value = v;
    return SIMCLR_OK;
}

static simclr_status sink_add(void *owner, const char *name, int ndim, const int64_t *shape, int flags,
                              simclr_tensor **value, simclr_tensor **grad, uint64_t *index)
{
    simclr_module *m = owner;
    *index = (uint64_t)m->n_params;
    SIMCLR__TRY(simclr__module_new_param(m, name, ndim, shape, flags, value));
    *grad = m->params[m->n_params - 1].grad;
    return SIMCLR_OK;
}

simclr__param_sink simclr__module_sink(simclr_module *m) { return (simclr__param_sink){m, sink_add}; }

void simclr__module_finalize(simclr_module *m)
{
    /* Insertion-sort style stable partition: few hundred entries at most. */
    for (int i = 1; i < m->n_params; i++) {
        simclr__param p = m->params[i];
        int j = i;
        while (j > 0 && !(p.flags & SIMCLR_PARAM_BUFFER) && (m->params[j - 1].flags & SIMCLR_PARAM_BUFFER)) {
            m->params[j] = m->params[j - 1];
            j--;
        }
        m->params[j] = p;
    }
}

float *simclr__plan_take(simclr__planner *p, int64_t floats)
{
    size_t limit = (size_t)PTRDIFF_MAX / sizeof(float);
    if (floats < 0 || (size_t)floats > limit - 16 || ((size_t)floats + 15) / 16 * 16 > limit - p->used) {
        p->overflow = 1;
        return NULL;
    }
    size_t n = ((size_t)floats + 15) & ~(size_t)15;
    float *s = p->base ? p->base + p->used : NULL;
    p->used += n;
    return s;
}

simclr_status simclr__arena_fit(simclr_context *ctx, simclr__arena *a, size_t floats, const char *who)
{
    if (floats <= a->cap) return SIMCLR_OK;
    if (floats > (size_t)PTRDIFF_MAX / sizeof(float)) return simclr__nomem(who, (size_t)PTRDIFF_MAX);
    float *block = simclr__malloc(ctx, floats * sizeof(float));
    if (!block) return simclr__nomem(who, floats * sizeof(float));
    simclr__free(ctx, a->base);
    a->base = block;
    a->cap = floats;
    return SIMCLR_OK;
}

void simclr__arena_free(simclr_context *ctx, simclr__arena *a)
{
    simclr__free(ctx, a->base);
    a->base = NULL;
    a->cap = 0;
}

simclr__param *simclr__module_find(simclr_module *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

void simclr_module_destroy(simclr_module *m)
{
    if (!m) return;
    if (m->ops->destroy) m->ops->destroy(m);
    for (int i = 0; i < m->n_params; i++) {
        simclr__free(m->ctx, m->params[i].name);
        simclr_tensor_destroy(m->params[i].value);
        simclr_tensor_destroy(m->params[i].grad);
    }
    simclr__free(m->ctx, m->params);
    simclr__free(m->ctx, m);
}

int64_t simclr_module_output_dim(const simclr_module *m) { return m ? m->out_dim : 0; }

const char *simclr_module_arch(const simclr_module *m) { return m ? m->arch : NULL; }

int simclr_module_param_count(const simclr_module *m) { return m ? m->n_params : 0; }

int64_t simclr_module_param_scalars(const simclr_module *m)
{
    int64_t n = 0;
    for (int i = 0; m && i < m->n_params; i++)
        if (!(m->params[i].flags & SIMCLR_PARAM_BUFFER)) n += m->params[i].value->numel;
    return n;
}

simclr_status simclr_module_param(simclr_module *m, int index, const char **name, simclr_tensor **value,
                                  simclr_tensor **grad, int *flags)
{
    static const char fn[] = "simclr_module_param";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    if (index < 0 || index >= m->n_params)
        return simclr__fail(SIMCLR_E_INVALID, "%s: index %d out of range 0..%d", fn, index, m->n_params - 1);
    const simclr__param *p = &m->params[index];
    if (name) *name = p->name;
    if (value) *value = p->value;
    if (grad) *grad = p->grad;
    if (flags) *flags = p->flags;
    return SIMCLR_OK;
}

simclr_status simclr_module_zero_grad(simclr_module *m)
{
    SIMCLR__CHECK_ARG(m, "simclr_module_zero_grad", "module is NULL");
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].grad) memset(m->params[i].grad->data, 0, simclr_tensor_bytes(m->params[i].grad));
    return SIMCLR_OK;
}

simclr_status simclr_module_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    static const char fn[] = "simclr_module_forward";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(x, fn, "x is NULL");
    SIMCLR__CHECK_ARG(y, fn, "y is NULL");
    if (mode != SIMCLR_TRAIN && mode != SIMCLR_EVAL)
        return simclr__fail(SIMCLR_E_INVALID, "%s: mode %d is neither SIMCLR_TRAIN nor SIMCLR_EVAL", fn, (int)mode);
    if (x->dtype != SIMCLR_F32 || y->dtype != SIMCLR_F32)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: x and y must be F32", fn);
    return m->ops->forward(m, x, mode, y);
}

simclr_status simclr_module_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    static const char fn[] = "simclr_module_backward";
    SIMCLR__CHECK_ARG(m, fn, "module is NULL");
    SIMCLR__CHECK_ARG(dy, fn, "dy is NULL");
    if (dy->dtype != SIMCLR_F32 || (dx && dx->dtype != SIMCLR_F32))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: dy and dx must be F32", fn);
    if (!m->has_train_forward)
        return simclr__fail(SIMCLR_E_STATE, "%s: no TRAIN forward precedes this backward", fn);
    return m->ops->backward(m, dy, dx);
}
