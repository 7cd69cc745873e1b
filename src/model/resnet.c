/* ResNet encoders (torchvision layout and names, no fc): basic blocks for
 * depth 18/34, bottlenecks with the stride on the 3x3 conv (v1.5) for
 * 50/101/152; CIFAR stem (3x3 s1, no max pool) or ImageNet stem (7x7 s2,
 * BN, ReLU, 3x3 s2 max pool); global average pooling to [N, D].
 *
 * Every convolution is followed by a batch norm, so the network is a list
 * of "units" (conv + BN [+ residual] [+ ReLU]). All activations live in one
 * arena planned for a batch shape (n, h, w): the plan walks the network once
 * to validate every layer's geometry and to hand out slices, so a forward
 * either fails before touching anything or runs to the end. The arena keeps
 * the largest size planned so far: a new shape whose plan fits is planned
 * again in place (a service with varying batch sizes allocates once). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../nn/nn.h"
#include "module.h"

typedef struct unit {
    simclr__conv2d conv;
    simclr__batchnorm bn;
    int relu;
    simclr__conv_desc d; /* geometry under the current plan */
    float *a;            /* conv output [cout, n*oh*ow] */
    float *y;            /* BN (+ residual) (+ ReLU) output */
    int y_shared;        /* training plan: y lives in a buffer shared with other units
                            (rebuilt from a for the backward pass, or not needed there) */
    float *stats;        /* SIMCLR__BN_STATS(cout) */
} unit;

typedef struct block {
    unit u[3];
    int n_units; /* 2 basic, 3 bottleneck */
    int has_down;
    unit down; /* 1x1 strided conv + BN on the shortcut */
    const float *in;
} block;

typedef struct resnet {
    int depth, bottleneck;
    simclr_stem stem;
    unit stem_unit;
    block *blocks;
    int n_blocks;
    /* The plan, valid when planned = 1. A training plan (train_plan = 1)
     * keeps every unit's conv and BN outputs and four gradient buffers for
     * the backward pass; an inference plan, made when the first forward at a
     * shape is EVAL, cycles four activation buffers and reserves nothing for
     * gradients. */
    int planned, train_plan;
    int64_t n, h, w;
    int64_t pool_h, pool_w; /* max-pool input (stem output) size */
    simclr__arena arena;
    float *x_cm;            /* input, channel-major */
    float *pool_y;          /* ImageNet stem: max-pool output */
    int32_t *pool_idx;
    int64_t feat_hw;        /* last block's spatial size */
    float *feat;            /* pooled features [D, n] */
    /* Gradient buffers, each of the largest activation. In a training plan
     * they also hold what only the forward pass needs, so that per unit
     * only conv outputs and block outputs are kept: a block's inner units
     * write their outputs into grad[0], one after another, and downsample
     * outputs go to grad[1] (their backward needs only the block input).
     * The backward pass rebuilds each inner output from its conv output
     * where it needs it (block_backward). */
    float *grad[4];
    float *ws;              /* convolution workspace */
    int64_t min_bn_m;       /* fewest values per channel any BN sees */
    const char *min_bn_name;
} resnet;

/* ---- creation ---- */

static simclr_status unit_init(simclr_module *m, unit *u, const char *conv_name, const char *bn_name,
                               int64_t cin, int64_t cout, int64_t k, int64_t stride, int relu, uint64_t seed)
{
    u->relu = relu;
    simclr__param_sink ps = simclr__module_sink(m);
    SIMCLR__TRY(simclr__conv2d_init(&ps, &u->conv, conv_name, cin, cout, k, stride, k / 2, 0, seed));
    return simclr__batchnorm_init(&ps, &u->bn, bn_name, cout, 1);
}

static simclr_status block_init(simclr_module *m, block *b, const char *prefix, int bottleneck, int64_t cin,
                                int64_t planes, int64_t stride, uint64_t seed)
{
    char cn[SIMCLR__LAYER_NAME], bn[SIMCLR__LAYER_NAME];
    int64_t expansion = bottleneck ? 4 : 1, cout = planes * expansion;
    b->n_units = bottleneck ? 3 : 2;
    /* Basic: 3x3 (stride), 3x3. Bottleneck: 1x1, 3x3 (stride), 1x1 (x4). */
    const int64_t ks[3] = {bottleneck ? 1 : 3, 3, 1};
    const int64_t strides[3] = {bottleneck ? 1 : stride, bottleneck ? stride : 1, 1};
    int64_t c = cin;
    for (int i = 0; i < b->n_units; i++) {
        int64_t co = i == b->n_units - 1 ? cout : planes;
        snprintf(cn, sizeof cn, "%s.conv%d", prefix, i + 1);
        snprintf(bn, sizeof bn, "%s.bn%d", prefix, i + 1);
        SIMCLR__TRY(unit_init(m, &b->u[i], cn, bn, c, co, ks[i], strides[i], 1, seed));
        c = co;
    }
    b->has_down = stride != 1 || cin != cout;
    if (b->has_down) {
        snprintf(cn, sizeof cn, "%s.downsample.0", prefix);
        snprintf(bn, sizeof bn, "%s.downsample.1", prefix);
        SIMCLR__TRY(unit_init(m, &b->down, cn, bn, cin, cout, 1, stride, 0, seed));
    }
    return SIMCLR_OK;
}

static void resnet_destroy(simclr_module *m)
{
    resnet *r = m->impl;
    if (!r) return;
    simclr__arena_free(m->ctx, &r->arena);
    simclr__free(m->ctx, r->blocks);
    simclr__free(m->ctx, r);
}

static simclr_status resnet_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
static simclr_status resnet_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);

static const simclr__module_ops resnet_ops = {"resnet", resnet_forward, resnet_backward, resnet_destroy};

static simclr_status build(simclr_module *m, resnet *r, int width, int in_channels, uint64_t seed)
{
    static const int layers18[4] = {2, 2, 2, 2}, layers34[4] = {3, 4, 6, 3}, layers101[4] = {3, 4, 23, 3},
                     layers152[4] = {3, 8, 36, 3};
    const int *layers = r->depth == 18 ? layers18
                        : r->depth == 34 || r->depth == 50 ? layers34
                        : r->depth == 101                  ? layers101
                                                           : layers152;
    r->n_blocks = layers[0] + layers[1] + layers[2] + layers[3];
    r->blocks = simclr__calloc(m->ctx, (size_t)r->n_blocks, sizeof *r->blocks);
    if (!r->blocks) return simclr__nomem("simclr_resnet_create", (size_t)r->n_blocks * sizeof *r->blocks);

    int imagenet = r->stem == SIMCLR_STEM_IMAGENET;
    SIMCLR__TRY(unit_init(m, &r->stem_unit, "conv1", "bn1", in_channels, width, imagenet ? 7 : 3, imagenet ? 2 : 1,
                          1, seed));
    int64_t c = width;
    int bi = 0;
    for (int stage = 0; stage < 4; stage++)
        for (int i = 0; i < layers[stage]; i++) {
            char prefix[32];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, i);
            int64_t planes = (int64_t)width << stage, stride = (stage > 0 && i == 0) ? 2 : 1;
            SIMCLR__TRY(block_init(m, &r->blocks[bi], prefix, r->bottleneck, c, planes, stride, seed));
            c = planes * (r->bottleneck ? 4 : 1);
            bi++;
        }
    m->out_dim = c;
    return SIMCLR_OK;
}

/* simclr_resnet_create_v2 and the deprecated int form: one body, each
 * naming itself in its messages. */
static simclr_status resnet_create(const char *fn, simclr_context *ctx, int depth, int64_t width64,
                                   int64_t in_channels64, simclr_stem stem, uint64_t seed, simclr_module **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (depth != 18 && depth != 34 && depth != 50 && depth != 101 && depth != 152)
        return simclr__fail(SIMCLR_E_INVALID, "%s: depth %d is not one of 18, 34, 50, 101, 152", fn, depth);
    if (width64 < 1 || width64 > 1024)
        return simclr__fail(SIMCLR_E_INVALID, "%s: width %lld out of range 1..1024", fn, (long long)width64);
    if (in_channels64 < 1 || in_channels64 > 64)
        return simclr__fail(SIMCLR_E_INVALID, "%s: in_channels %lld out of range 1..64", fn,
                            (long long)in_channels64);
    if (stem != SIMCLR_STEM_CIFAR && stem != SIMCLR_STEM_IMAGENET)
        return simclr__fail(SIMCLR_E_INVALID, "%s: stem %d is neither SIMCLR_STEM_CIFAR nor SIMCLR_STEM_IMAGENET",
                            fn, (int)stem);
    int width = (int)width64, in_channels = (int)in_channels64; /* in range: checked above */

    char arch[128];
    snprintf(arch, sizeof arch, "resnet%d width=%d in=%d stem=%s", depth, width, in_channels,
             stem == SIMCLR_STEM_CIFAR ? "cifar" : "imagenet");
    simclr_module *m;
    SIMCLR__TRY(simclr__module_new(ctx, &resnet_ops, arch, &m));
    resnet *r = simclr__calloc(ctx, 1, sizeof *r);
    if (!r) {
        simclr_module_destroy(m);
        return simclr__nomem(fn, sizeof *r);
    }
    m->impl = r;
    m->in_dim = in_channels;
    r->depth = depth;
    r->bottleneck = depth >= 50;
    r->stem = stem;
    simclr_status st = build(m, r, width, in_channels, seed);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(m);
        return st;
    }
    simclr__module_finalize(m);
    *out = m;
    return SIMCLR_OK;
}

simclr_status simclr_resnet_create_v2(simclr_context *ctx, int depth, int64_t width, int64_t in_channels,
                                      simclr_stem stem, uint64_t seed, simclr_module **out)
{
    return resnet_create("simclr_resnet_create_v2", ctx, depth, width, in_channels, stem, seed, out);
}

simclr_status simclr_resnet_create(simclr_context *ctx, int depth, int width, int in_channels, simclr_stem stem,
                                   uint64_t seed, simclr_module **out)
{
    return resnet_create("simclr_resnet_create", ctx, depth, width, in_channels, stem, seed, out);
}

/* ---- planning: geometry, validation, arena slices ---- */

typedef struct planner {
    simclr__planner arena;
    size_t max_act, max_ws;
} planner;

static float *take(planner *p, int64_t floats) { return simclr__plan_take(&p->arena, floats); }

static void note_act(planner *p, int64_t floats)
{
    if ((size_t)floats > p->max_act) p->max_act = (size_t)floats;
}

/* shared: the inference plan's buffer for this unit's output (conv output
 * and batch norm in place), or NULL for a training plan's own conv output
 * (and own y unless the unit's y_shared, set by the caller). */
static simclr_status plan_unit(simclr_context *ctx, resnet *r, planner *p, unit *u, int64_t h, int64_t w,
                               float *shared)
{
    SIMCLR__TRY(simclr__conv2d_desc(&u->conv, r->n, h, w, &u->d));
    int64_t m = r->n * u->d.oh * u->d.ow;
    if (m > INT64_MAX / 4 / u->conv.cout) {
        p->arena.overflow = 1;
        return SIMCLR_OK;
    }
    int64_t size = u->conv.cout * m;
    if (m < r->min_bn_m) r->min_bn_m = m, r->min_bn_name = u->bn.name;
    if (shared) {
        u->a = u->y = shared;
    } else {
        u->a = take(p, size);
        u->y = u->y_shared ? NULL : take(p, size); /* set once the shared buffers exist */
    }
    u->stats = take(p, SIMCLR__BN_STATS(u->conv.cout));
    note_act(p, size);
    size_t ws = ctx->backend->conv2d_workspace(ctx, &u->d);
    if (ws > p->max_ws) p->max_ws = ws;
    return SIMCLR_OK;
}

/* buf: NULL for a training plan; else the inference plan's four activation
 * buffers (each of the largest activation), cycled so that a block's input
 * and shortcut stay intact until its last unit adds them. */
static simclr_status plan_walk(simclr_module *m, resnet *r, planner *p, float *const *buf)
{
    simclr_context *ctx = m->ctx;
    r->min_bn_m = INT64_MAX;
    r->x_cm = take(p, m->in_dim * r->n * r->h * r->w);
    note_act(p, m->in_dim * r->n * r->h * r->w);
    unit *s = &r->stem_unit;
    SIMCLR__TRY(plan_unit(ctx, r, p, s, r->h, r->w, buf ? buf[0] : NULL));
    int64_t c = s->conv.cout, h = s->d.oh, w = s->d.ow;
    const float *cur = s->y;
    int cur_i = 0; /* which of buf holds cur */
    r->pool_h = h, r->pool_w = w;
    if (r->stem == SIMCLR_STEM_IMAGENET) {
        h = simclr__maxpool_out(h), w = simclr__maxpool_out(w);
        r->pool_y = buf ? buf[1] : take(p, c * r->n * h * w);
        r->pool_idx = (int32_t *)take(p, c * r->n * h * w);
        cur = r->pool_y, cur_i = 1;
    }
    for (int i = 0; i < r->n_blocks; i++) {
        block *b = &r->blocks[i];
        b->in = cur;
        /* The three buffers other than the block's input. */
        float *f[3] = {NULL, NULL, NULL};
        if (buf)
            for (int k = 0, n = 0; k < 4; k++)
                if (k != cur_i) f[n++] = buf[k];
        int64_t bh = h, bw = w;
        /* Units 0, 1 into f0, f1; a bottleneck's unit 2 back into f0 (free
         * once unit 1 has read it); the shortcut into f2. */
        for (int k = 0; k < b->n_units; k++) {
            b->u[k].y_shared = !buf && k < b->n_units - 1;
            SIMCLR__TRY(plan_unit(ctx, r, p, &b->u[k], h, w, buf ? f[k == 1 ? 1 : 0] : NULL));
            h = b->u[k].d.oh, w = b->u[k].d.ow;
        }
        b->down.y_shared = !buf;
        if (b->has_down) SIMCLR__TRY(plan_unit(ctx, r, p, &b->down, bh, bw, buf ? f[2] : NULL));
        cur = b->u[b->n_units - 1].y;
        if (buf)
            for (int k = 0; k < 4; k++)
                if (buf[k] == cur) cur_i = k;
    }
    r->feat_hw = h * w;
    r->feat = take(p, m->out_dim * r->n);
    if (!buf) {
        for (int i = 0; i < 4; i++) r->grad[i] = take(p, (int64_t)p->max_act);
        for (int i = 0; i < r->n_blocks; i++) {
            block *b = &r->blocks[i];
            for (int k = 0; k < b->n_units - 1; k++) b->u[k].y = r->grad[0];
            b->down.y = r->grad[1];
        }
    } else {
        for (int i = 0; i < 4; i++) r->grad[i] = NULL;
    }
    r->ws = take(p, (int64_t)p->max_ws);
    if (p->arena.overflow)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: activations for a batch of %lld x %lldx%lld do not fit in memory",
                            m->arch, (long long)r->n, (long long)r->h, (long long)r->w);
    return SIMCLR_OK;
}

static simclr_status plan(simclr_module *m, resnet *r, planner *p, int train)
{
    if (train) return plan_walk(m, r, p, NULL);
    /* The largest activation and workspace, from a training walk that only
     * counts; then four buffers of that size, and the walk that uses them. */
    planner probe = {0};
    SIMCLR__TRY(plan_walk(m, r, &probe, NULL));
    float *buf[4];
    for (int i = 0; i < 4; i++) buf[i] = take(p, (int64_t)probe.max_act);
    p->max_act = probe.max_act, p->max_ws = probe.max_ws;
    if (p->arena.overflow)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: activations for a batch of %lld x %lldx%lld do not fit in memory",
                            m->arch, (long long)r->n, (long long)r->h, (long long)r->w);
    if (!p->arena.base)
        for (int i = 0; i < 4; i++) buf[i] = (float *)(uintptr_t)(16 * (i + 1)); /* distinct, never dereferenced */
    return plan_walk(m, r, p, buf);
}

static simclr_status check_mode(const simclr_module *m, const resnet *r, simclr_mode mode)
{
    if (mode == SIMCLR_TRAIN && r->min_bn_m < 2)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: batch norm '%s' would see one value per channel (batch %lld, input %lldx%lld "
                            "reduced to 1x1): training needs a larger batch or image",
                            m->arch, r->min_bn_name, (long long)r->n, (long long)r->h, (long long)r->w);
    return SIMCLR_OK;
}

/* Makes the plan fit batch shape (n, h, w) and checks that `mode` can run
 * on it: a training plan for TRAIN; for EVAL the plan at hand if it fits
 * the shape, else an inference plan. A new plan goes into the arena at hand
 * when it fits, else into a larger one (simclr__arena_fit). On failure the
 * module (its plan and arena) is unchanged. */
static simclr_status ensure_plan(simclr_module *m, resnet *r, int64_t n, int64_t h, int64_t w, simclr_mode mode)
{
    int want_train = mode == SIMCLR_TRAIN;
    if (r->planned && r->n == n && r->h == h && r->w == w && (r->train_plan || !want_train))
        return check_mode(m, r, mode);
    resnet saved = *r;
    r->n = n, r->h = h, r->w = w;
    planner count = {0};
    simclr_status st = plan(m, r, &count, want_train);
    if (st == SIMCLR_OK) st = check_mode(m, r, mode);
    if (st == SIMCLR_OK) st = simclr__arena_fit(m->ctx, &r->arena, count.arena.used, m->arch);
    if (st != SIMCLR_OK) {
        /* plan() rewrote the geometry and slices: put the old ones back. */
        *r = saved;
        if (r->planned) {
            planner again = {.arena = {.base = r->arena.base}};
            plan(m, r, &again, r->train_plan);
        }
        return st;
    }
    planner fill = {.arena = {.base = r->arena.base}};
    plan(m, r, &fill, want_train);
    r->planned = 1;
    r->train_plan = want_train;
    m->has_train_forward = 0;
    return SIMCLR_OK;
}

/* ---- forward ---- */

/* Where a unit's output goes in `mode`. EVAL on a training plan must not
 * write a y_shared unit's output to its y: a bottleneck's first two units
 * share one y buffer (grad[0]), so the second unit's fused convolution
 * would read its input from the buffer it writes (the backend's
 * conv2d_forward_affine requires y to overlap neither x nor res). Such a
 * unit's own conv-output slice `a` takes the EVAL output instead; an EVAL
 * forward clears has_train_forward, so nothing needs `a` afterwards. A
 * unit that is not y_shared (the stem, a block's last unit, every unit of
 * an inference plan) writes y, so block inputs stay where the plan put
 * them. */
static float *unit_out(const unit *u, simclr_mode mode) { return mode == SIMCLR_EVAL && u->y_shared ? u->a : u->y; }

/* Returns where the output went (unit_out). */
static const float *unit_forward(simclr_context *ctx, resnet *r, unit *u, const float *x, const float *res,
                                 simclr_mode mode)
{
    float *y = unit_out(u, mode);
    if (mode == SIMCLR_EVAL) {
        /* The batch norm's fixed scale and shift folded into the conv's
         * output pass (no bias in a ResNet conv). */
        const float *scale, *shift;
        simclr__batchnorm_eval_affine(&u->bn, u->stats, &scale, &shift);
        simclr__conv2d_forward_affine(ctx, &u->conv, &u->d, x, scale, shift, res, u->relu, y, r->ws);
        return y;
    }
    simclr__conv2d_forward(ctx, &u->conv, &u->d, x, u->a, r->ws);
    simclr__batchnorm_forward(ctx, &u->bn, r->n * u->d.oh * u->d.ow, mode, u->a, res, u->relu, y, u->stats);
    return y;
}

static simclr_status resnet_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    resnet *r = m->impl;
    simclr_context *ctx = m->ctx;
    char buf[64];
    if (x->ndim != 4)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: input must be [N, C, H, W], got %s", m->arch,
                            simclr__shape_str(x, buf, sizeof buf));
    if (x->dims[1] != m->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: conv1: input has %lld channels, layer expects %lld", m->arch,
                            (long long)x->dims[1], (long long)m->in_dim);
    int64_t n = x->dims[0], h = x->dims[2], w = x->dims[3];
    int64_t want[2] = {n, m->out_dim};
    SIMCLR__TRY(simclr__tensor_expect(y, m->arch, "y", SIMCLR_F32, 2, want));
    SIMCLR__TRY(ensure_plan(m, r, n, h, w, mode));

    simclr__layout_to_cm(ctx, n, m->in_dim, h * w, simclr__f32(x), r->x_cm);
    unit *s = &r->stem_unit;
    const float *cur = unit_forward(ctx, r, s, r->x_cm, NULL, mode);
    if (r->stem == SIMCLR_STEM_IMAGENET) {
        simclr__maxpool_forward(ctx, s->conv.cout * n, r->pool_h, r->pool_w, cur, r->pool_y, r->pool_idx);
        cur = r->pool_y;
    }
    for (int i = 0; i < r->n_blocks; i++) {
        block *b = &r->blocks[i];
        const float *in = cur, *res = in;
        if (b->has_down) res = unit_forward(ctx, r, &b->down, in, NULL, mode);
        for (int k = 0; k < b->n_units; k++)
            cur = unit_forward(ctx, r, &b->u[k], cur, k == b->n_units - 1 ? res : NULL, mode);
    }
    simclr__avgpool_forward(ctx, m->out_dim, n, r->feat_hw, cur, r->feat);
    simclr__layout_to_nchw(ctx, n, m->out_dim, 1, r->feat, simclr__f32(y));
    m->has_train_forward = mode == SIMCLR_TRAIN;
    return SIMCLR_OK;
}

/* ---- backward ---- */

/* y: the unit's output as the forward left it, or rebuilt (the ReLU mask). */
static void unit_bn_backward(simclr_context *ctx, resnet *r, unit *u, const float *y, const float *dy, float *dx,
                             float *dres)
{
    simclr__batchnorm_backward(ctx, &u->bn, r->n * u->d.oh * u->d.ow, u->a, y, u->relu, dy, dx, dres, u->stats);
}

/* Back through one block. g[0] holds d(block output) on entry; on return
 * g[0] holds d(block input) and g[1..3] are free. */
static void block_backward(simclr_context *ctx, resnet *r, block *b, float **g)
{
    float *dout = g[0], *dres = g[1], *cur = g[2], *other = g[3], *t;
    unit *last = &b->u[b->n_units - 1];
    unit_bn_backward(ctx, r, last, last->y, dout, cur, dres);
    /* dout is free from here until the first conv's input gradient: the
     * inner units' outputs, dropped after the forward, are rebuilt there
     * (bit for bit) as the conv input and ReLU mask they were. */
    float *rebuilt = dout;
    for (int k = b->n_units - 1; k >= 1; k--) {
        unit *in = &b->u[k - 1];
        simclr__batchnorm_recompute(ctx, &in->bn, r->n * in->d.oh * in->d.ow, in->a, in->relu, rebuilt, in->stats);
        simclr__conv2d_backward(ctx, &b->u[k].conv, &b->u[k].d, rebuilt, cur, other, 0, r->ws);
        unit_bn_backward(ctx, r, in, rebuilt, other, cur, NULL);
    }
    /* cur = d(first conv's output). */
    if (b->has_down) {
        simclr__conv2d_backward(ctx, &b->u[0].conv, &b->u[0].d, b->in, cur, dout, 0, r->ws);
        unit_bn_backward(ctx, r, &b->down, NULL, dres, other, NULL); /* no ReLU: no mask */
        simclr__conv2d_backward(ctx, &b->down.conv, &b->down.d, b->in, other, dout, 1, r->ws);
        /* Result in dout = g[0] already. */
    } else {
        /* Identity shortcut: the input gradient is dres + conv1's dx. */
        simclr__conv2d_backward(ctx, &b->u[0].conv, &b->u[0].d, b->in, cur, dres, 1, r->ws);
        t = g[0], g[0] = g[1], g[1] = t;
    }
}

static simclr_status resnet_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    resnet *r = m->impl;
    simclr_context *ctx = m->ctx;
    int64_t want_dy[2] = {r->n, m->out_dim}, want_dx[4] = {r->n, m->in_dim, r->h, r->w};
    SIMCLR__TRY(simclr__tensor_expect(dy, m->arch, "dy (the shape of the last TRAIN forward's output)", SIMCLR_F32,
                                      2, want_dy));
    if (dx)
        SIMCLR__TRY(simclr__tensor_expect(dx, m->arch, "dx (the shape of the last TRAIN forward's input)",
                                          SIMCLR_F32, 4, want_dx));
    float *g[4] = {r->grad[0], r->grad[1], r->grad[2], r->grad[3]}, *t;
    simclr__layout_to_cm(ctx, r->n, m->out_dim, 1, simclr__f32(dy), g[1]);
    simclr__avgpool_backward(ctx, m->out_dim, r->n, r->feat_hw, g[1], g[0]);
    for (int i = r->n_blocks - 1; i >= 0; i--) block_backward(ctx, r, &r->blocks[i], g);

    unit *s = &r->stem_unit;
    if (r->stem == SIMCLR_STEM_IMAGENET) {
        simclr__maxpool_backward(ctx, s->conv.cout * r->n, r->pool_h, r->pool_w, g[0], r->pool_idx, g[1]);
        t = g[0], g[0] = g[1], g[1] = t;
    }
    unit_bn_backward(ctx, r, s, s->y, g[0], g[1], NULL);
    /* The input gradient of the first conv is skipped unless asked for. */
    simclr__conv2d_backward(ctx, &s->conv, &s->d, r->x_cm, g[1], dx ? g[2] : NULL, 0, r->ws);
    if (dx) simclr__layout_to_nchw(ctx, r->n, m->in_dim, r->h * r->w, g[2], simclr__f32(dx));
    return SIMCLR_OK;
}
