/* MLP projection heads, as a torch.nn.Sequential named "layers":
 *
 *   batch_norm = 0 (SimCLR v1): Linear(bias) - ReLU - ... - Linear(bias)
 *     layer i is layers.{2i}: layers.0.weight, layers.0.bias, layers.2.weight, ...
 *   batch_norm = 1 (SimCLR v2): Linear(no bias) - BatchNorm1d - ReLU - ... -
 *     Linear(no bias) - BatchNorm1d(weight, no bias)
 *     layer i is layers.{3i} (Linear) and layers.{3i+1} (BatchNorm1d):
 *     layers.0.weight, layers.1.weight, layers.1.bias, layers.1.running_mean, ...
 *     The last BatchNorm1d has a weight but no affine bias (the official
 *     code's center=False), so it has no "bias" entry: in torch it is a
 *     BatchNorm1d whose bias is frozen at zero.
 *
 * Features run channel-major [D, N] inside, like the ResNet's activations,
 * so BatchNorm1d is the same row kernel as BatchNorm2d. */
#include <stdio.h>

#include "../nn/nn.h"
#include "module.h"

typedef struct hlayer {
    simclr__linear lin;
    simclr__batchnorm bn;
    int relu;
    float *a;     /* linear output [out, n] */
    float *y;     /* after BN / ReLU (= a without BN) */
    float *stats; /* BN scratch */
} hlayer;

typedef struct head {
    int n_layers, batch_norm;
    hlayer *layers;
    int planned;
    int64_t n;
    simclr__arena arena;
    float *x_cm, *grad[2], *scratch;
} head;

static void head_destroy(simclr_module *m)
{
    head *h = m->impl;
    if (!h) return;
    simclr__arena_free(m->ctx, &h->arena);
    simclr__free(m->ctx, h->layers);
    simclr__free(m->ctx, h);
}

static simclr_status head_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
static simclr_status head_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);

static const simclr__module_ops head_ops = {"mlp_head", head_forward, head_backward, head_destroy};

static simclr_status build(simclr_module *m, head *h, int in_dim, int hidden_dim, int out_dim, uint64_t seed)
{
    char name[SIMCLR__LAYER_NAME];
    int64_t in = in_dim;
    for (int i = 0; i < h->n_layers; i++) {
        hlayer *l = &h->layers[i];
        int last = i == h->n_layers - 1;
        int64_t out = last ? out_dim : hidden_dim;
        int base = h->batch_norm ? 3 * i : 2 * i;
        l->relu = !last;
        snprintf(name, sizeof name, "layers.%d", base);
        simclr__param_sink ps = simclr__module_sink(m);
        SIMCLR__TRY(simclr__linear_init(&ps, &l->lin, name, in, out, !h->batch_norm, seed));
        if (h->batch_norm) {
            snprintf(name, sizeof name, "layers.%d", base + 1);
            SIMCLR__TRY(simclr__batchnorm_init(&ps, &l->bn, name, out, !last));
        }
        in = out;
    }
    m->out_dim = out_dim;
    return SIMCLR_OK;
}

/* simclr_mlp_head_create_v2 and the deprecated int form: one body, each
 * naming itself in its messages. */
static simclr_status mlp_head_create(const char *fn, simclr_context *ctx, int64_t in_dim64, int64_t hidden_dim64,
                                     int64_t out_dim64, int n_layers, int batch_norm, uint64_t seed,
                                     simclr_module **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    const int max_dim = 1 << 20;
    if (in_dim64 < 1 || in_dim64 > max_dim || out_dim64 < 1 || out_dim64 > max_dim)
        return simclr__fail(SIMCLR_E_INVALID, "%s: in_dim %lld and out_dim %lld must be in 1..%d", fn,
                            (long long)in_dim64, (long long)out_dim64, max_dim);
    if (n_layers < 1 || n_layers > 16)
        return simclr__fail(SIMCLR_E_INVALID, "%s: n_layers %d out of range 1..16", fn, n_layers);
    if (n_layers > 1 && (hidden_dim64 < 1 || hidden_dim64 > max_dim))
        return simclr__fail(SIMCLR_E_INVALID, "%s: hidden_dim %lld out of range 1..%d", fn, (long long)hidden_dim64,
                            max_dim);
    if (batch_norm != 0 && batch_norm != 1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: batch_norm must be 0 or 1, got %d", fn, batch_norm);
    /* in range: checked above (hidden_dim is unused, and then not checked, with one layer) */
    int in_dim = (int)in_dim64, out_dim = (int)out_dim64, hidden_dim = n_layers > 1 ? (int)hidden_dim64 : 0;

    char arch[128];
    snprintf(arch, sizeof arch, "mlp_head in=%d hidden=%d out=%d layers=%d bn=%d", in_dim,
             n_layers > 1 ? hidden_dim : 0, out_dim, n_layers, batch_norm);
    simclr_module *m;
    SIMCLR__TRY(simclr__module_new(ctx, &head_ops, arch, &m));
    head *h = simclr__calloc(ctx, 1, sizeof *h);
    hlayer *layers = h ? simclr__calloc(ctx, (size_t)n_layers, sizeof *layers) : NULL;
    if (!layers) {
        simclr__free(ctx, h);
        simclr_module_destroy(m);
        return simclr__nomem(fn, (size_t)n_layers * sizeof *layers);
    }
    m->impl = h;
    m->in_dim = in_dim;
    h->layers = layers;
    h->n_layers = n_layers;
    h->batch_norm = batch_norm;
    simclr_status st = build(m, h, in_dim, hidden_dim, out_dim, seed);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(m);
        return st;
    }
    simclr__module_finalize(m);
    *out = m;
    return SIMCLR_OK;
}

simclr_status simclr_mlp_head_create_v2(simclr_context *ctx, int64_t in_dim, int64_t hidden_dim, int64_t out_dim,
                                        int n_layers, int batch_norm, uint64_t seed, simclr_module **out)
{
    return mlp_head_create("simclr_mlp_head_create_v2", ctx, in_dim, hidden_dim, out_dim, n_layers, batch_norm, seed,
                           out);
}

simclr_status simclr_mlp_head_create(simclr_context *ctx, int in_dim, int hidden_dim, int out_dim, int n_layers,
                                     int batch_norm, uint64_t seed, simclr_module **out)
{
    return mlp_head_create("simclr_mlp_head_create", ctx, in_dim, hidden_dim, out_dim, n_layers, batch_norm, seed,
                           out);
}

/* Arena for batch n: input, per layer a, y (y = a without BN) and BN
 * scratch, two gradient buffers of the widest layer, bias-gradient scratch.
 * The arena keeps the largest size planned so far (simclr__arena_fit): a
 * smaller batch is planned again in place. */
static size_t plan(simclr_module *m, head *h, int64_t n, float *base)
{
    simclr__planner p = {.base = base};
    int64_t widest = m->in_dim;
    h->x_cm = simclr__plan_take(&p, m->in_dim * n);
    for (int i = 0; i < h->n_layers; i++) {
        hlayer *l = &h->layers[i];
        int64_t out = l->lin.out;
        if (out > widest) widest = out;
        l->a = simclr__plan_take(&p, out * n);
        l->y = h->batch_norm ? simclr__plan_take(&p, out * n) : l->a;
        l->stats = h->batch_norm ? simclr__plan_take(&p, SIMCLR__BN_STATS(out)) : NULL;
    }
    h->grad[0] = simclr__plan_take(&p, widest * n);
    h->grad[1] = simclr__plan_take(&p, widest * n);
    h->scratch = simclr__plan_take(&p, widest);
    return p.overflow ? 0 : p.used;
}

static simclr_status head_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    head *h = m->impl;
    simclr_context *ctx = m->ctx;
    char buf[64];
    if (x->ndim != 2 || x->dims[1] != m->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: layers.0: input must be [N, %lld], got %s", m->arch,
                            (long long)m->in_dim, simclr__shape_str(x, buf, sizeof buf));
    int64_t n = x->dims[0];
    int64_t want[2] = {n, m->out_dim};
    SIMCLR__TRY(simclr__tensor_expect(y, m->arch, "y", SIMCLR_F32, 2, want));
    if (mode == SIMCLR_TRAIN && h->batch_norm && n < 2)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: batch norm '%s' needs more than one value per channel in training (batch %lld)",
                            m->arch, h->layers[0].bn.name, (long long)n);
    if (!h->planned || h->n != n) {
        /* dims are <= 2^20, so n <= 2^40 keeps every product in range. */
        size_t floats = n <= ((int64_t)1 << 40) ? plan(m, h, n, NULL) : 0;
        simclr_status st = floats ? simclr__arena_fit(ctx, &h->arena, floats, m->arch)
                                  : simclr__fail(SIMCLR_E_SHAPE,
                                                 "%s: activations for a batch of %lld do not fit in memory", m->arch,
                                                 (long long)n);
        if (st != SIMCLR_OK) {
            if (h->planned) plan(m, h, h->n, h->arena.base); /* the counting pass cleared the slices */
            return st;
        }
        h->n = n;
        h->planned = 1;
        plan(m, h, n, h->arena.base);
        m->has_train_forward = 0;
    }

    simclr__layout_to_cm(ctx, n, m->in_dim, 1, simclr__f32(x), h->x_cm);
    const float *cur = h->x_cm;
    for (int i = 0; i < h->n_layers; i++) {
        hlayer *l = &h->layers[i];
        simclr__linear_forward(ctx, &l->lin, n, cur, l->a);
        if (h->batch_norm)
            simclr__batchnorm_forward(ctx, &l->bn, n, mode, l->a, NULL, l->relu, l->y, l->stats);
        else if (l->relu)
            simclr__relu_forward(ctx, l->lin.out * n, l->a, l->y);
        cur = l->y;
    }
    simclr__layout_to_nchw(ctx, n, m->out_dim, 1, cur, simclr__f32(y));
    m->has_train_forward = mode == SIMCLR_TRAIN;
    return SIMCLR_OK;
}

static simclr_status head_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    head *h = m->impl;
    simclr_context *ctx = m->ctx;
    int64_t n = h->n, want_dy[2] = {n, m->out_dim}, want_dx[2] = {n, m->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(dy, m->arch, "dy (the shape of the last TRAIN forward's output)", SIMCLR_F32,
                                      2, want_dy));
    if (dx)
        SIMCLR__TRY(simclr__tensor_expect(dx, m->arch, "dx (the shape of the last TRAIN forward's input)",
                                          SIMCLR_F32, 2, want_dx));
    float *cur = h->grad[0], *other = h->grad[1], *t;
    simclr__layout_to_cm(ctx, n, m->out_dim, 1, simclr__f32(dy), cur);
    for (int i = h->n_layers - 1; i >= 0; i--) {
        hlayer *l = &h->layers[i];
        int64_t out = l->lin.out;
        if (h->batch_norm)
            simclr__batchnorm_backward(ctx, &l->bn, n, l->a, l->y, l->relu, cur, cur, NULL, l->stats);
        else if (l->relu)
            simclr__relu_backward(ctx, out * n, l->y, cur, cur);
        const float *in = i > 0 ? h->layers[i - 1].y : h->x_cm;
        simclr__linear_backward(ctx, &l->lin, n, in, cur, (i > 0 || dx) ? other : NULL, h->scratch);
        t = cur, cur = other, other = t;
    }
    if (dx) simclr__layout_to_nchw(ctx, n, m->in_dim, 1, cur, simclr__f32(dx));
    return SIMCLR_OK;
}
