/* The linear classification head: torchvision's classifier Linear(in, K)
 * with a bias, named "fc" (fc.weight [K, in], fc.bias [K]), so an encoder
 * and this head export together into torchvision's ResNet with its fc.
 * Features run channel-major [D, N] inside, as in the MLP head, through
 * the same nn/linear layer. */
#include <stdio.h>

#include "../nn/nn.h"
#include "linear_head.h"

typedef struct lhead {
    simclr__linear lin;
    int64_t n; /* batch the arena is planned for */
    int planned;
    float *arena;
    float *x_cm, *a, *g, *gx, *scratch;
} lhead;

static void lhead_destroy(simclr_module *m)
{
    lhead *h = m->impl;
    if (!h) return;
    simclr__free(m->ctx, h->arena);
    simclr__free(m->ctx, h);
}

static simclr_status lhead_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
static simclr_status lhead_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);

static const simclr__module_ops lhead_ops = {"linear_head", lhead_forward, lhead_backward, lhead_destroy};

int simclr__is_linear_head(const simclr_module *m) { return m && m->ops == &lhead_ops; }

simclr_status simclr_linear_head_create(simclr_context *ctx, int64_t in_dim, int n_classes, uint64_t seed,
                                        simclr_module **out)
{
    static const char fn[] = "simclr_linear_head_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    const int64_t max_dim = (int64_t)1 << 20;
    if (in_dim < 1 || in_dim > max_dim)
        return simclr__fail(SIMCLR_E_INVALID, "%s: in_dim %lld out of range 1..%lld", fn, (long long)in_dim,
                            (long long)max_dim);
    if (n_classes < 2 || n_classes > max_dim)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_classes %d out of range 2..%lld", fn, n_classes,
                            (long long)max_dim);
    char arch[128];
    snprintf(arch, sizeof arch, "linear_head in=%lld out=%d", (long long)in_dim, n_classes);
    simclr_module *m;
    SIMCLR__TRY(simclr__module_new(ctx, &lhead_ops, arch, &m));
    lhead *h = simclr__calloc(ctx, 1, sizeof *h);
    if (!h) {
        simclr_module_destroy(m);
        return simclr__nomem(fn, sizeof *h);
    }
    m->impl = h;
    m->in_dim = in_dim;
    m->out_dim = n_classes;
    simclr__param_sink ps = simclr__module_sink(m);
    simclr_status st = simclr__linear_init(&ps, &h->lin, "fc", in_dim, n_classes, 1, seed);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(m);
        return st;
    }
    simclr__module_finalize(m);
    *out = m;
    return SIMCLR_OK;
}

/* Arena for batch n: the input and the output channel-major, their
 * gradients, and the bias-gradient scratch. */
static size_t plan(simclr_module *m, lhead *h, int64_t n, float *base)
{
    simclr__planner p = {.base = base};
    h->x_cm = simclr__plan_take(&p, m->in_dim * n);
    h->a = simclr__plan_take(&p, m->out_dim * n);
    h->g = simclr__plan_take(&p, m->out_dim * n);
    h->gx = simclr__plan_take(&p, m->in_dim * n);
    h->scratch = simclr__plan_take(&p, m->out_dim);
    return p.overflow ? 0 : p.used;
}

static simclr_status lhead_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    lhead *h = m->impl;
    simclr_context *ctx = m->ctx;
    char buf[64];
    if (x->ndim != 2 || x->dims[1] != m->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: fc: input must be [N, %lld], got %s", m->arch, (long long)m->in_dim,
                            simclr__shape_str(x, buf, sizeof buf));
    int64_t n = x->dims[0];
    SIMCLR__TRY(simclr__tensor_expect(y, m->arch, "y", SIMCLR_F32, 2, (const int64_t[]){n, m->out_dim}));
    if (!h->planned || h->n != n) {
        /* dims are <= 2^20, so n <= 2^40 keeps every product in range. */
        size_t floats = n <= ((int64_t)1 << 40) ? plan(m, h, n, NULL) : 0;
        float *arena = floats ? simclr__malloc(ctx, floats * sizeof(float)) : NULL;
        if (!arena) {
            if (h->planned) plan(m, h, h->n, h->arena); /* the counting pass cleared the slices */
            if (!floats)
                return simclr__fail(SIMCLR_E_SHAPE, "%s: activations for a batch of %lld do not fit in memory",
                                    m->arch, (long long)n);
            return simclr__nomem(m->arch, floats * sizeof(float));
        }
        simclr__free(ctx, h->arena);
        h->arena = arena;
        h->n = n;
        h->planned = 1;
        plan(m, h, n, arena);
        m->has_train_forward = 0;
    }
    simclr__layout_to_cm(ctx, n, m->in_dim, 1, simclr__f32(x), h->x_cm);
    simclr__linear_forward(ctx, &h->lin, n, h->x_cm, h->a);
    simclr__layout_to_nchw(ctx, n, m->out_dim, 1, h->a, simclr__f32(y));
    m->has_train_forward = mode == SIMCLR_TRAIN;
    return SIMCLR_OK;
}

static simclr_status lhead_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    lhead *h = m->impl;
    simclr_context *ctx = m->ctx;
    int64_t n = h->n;
    SIMCLR__TRY(simclr__tensor_expect(dy, m->arch, "dy (the shape of the last TRAIN forward's output)", SIMCLR_F32, 2,
                                      (const int64_t[]){n, m->out_dim}));
    if (dx)
        SIMCLR__TRY(simclr__tensor_expect(dx, m->arch, "dx (the shape of the last TRAIN forward's input)", SIMCLR_F32,
                                          2, (const int64_t[]){n, m->in_dim}));
    simclr__layout_to_cm(ctx, n, m->out_dim, 1, simclr__f32(dy), h->g);
    simclr__linear_backward(ctx, &h->lin, n, h->x_cm, h->g, dx ? h->gx : NULL, h->scratch);
    if (dx) simclr__layout_to_nchw(ctx, n, m->in_dim, 1, h->gx, simclr__f32(dx));
    return SIMCLR_OK;
}

simclr_status simclr__linear_head_params(const simclr_module *m, const float **w, const float **b)
{
    if (!simclr__is_linear_head(m)) return SIMCLR_E_INVALID;
    const lhead *h = m->impl;
    *w = simclr__f32(h->lin.w);
    *b = simclr__f32(h->lin.b);
    return SIMCLR_OK;
}
