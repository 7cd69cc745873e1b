/* Vision Transformer encoder (torchvision's VisionTransformer without its
 * heads): patch embedding by a strided convolution, class token or mean
 * pooling, learned position embedding, pre-norm encoder blocks
 *   x1 = x + out_proj(attention(in_proj(ln_1(x))))
 *   x2 = x1 + mlp.3(GELU(mlp.0(ln_2(x1))))
 * and a final LayerNorm (encoder.ln). No dropout (torchvision's default 0).
 *
 * Layout: the convolution runs channel-major like the ResNet ([C][N][H][W]
 * in, [D][N][P] out); its output is turned once into row-major tokens
 * [N, T, D] (T = P patches, plus the class token first), the layout of every
 * layer after it (nn/transformer.h).
 *
 * Memory: one arena, planned at the first forward for a batch size
 * (validate, count, grow the arena if the plan does not fit, hand out
 * slices; on failure the previous plan stays). The arena keeps the largest
 * size planned so far, so varying batch sizes allocate once. A training plan keeps each block's inputs to its products and
 * norms for the backward and four gradient buffers; an inference plan (EVAL
 * first at that size) one set of block activations for all blocks. Both
 * hold the attention workspace (two t x t blocks per pool worker; the
 * attention probabilities are recomputed in the backward, never stored per
 * image and head) and the convolution's. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/rng.h"
#include "../nn/transformer.h"
#include "module.h"

#define VIT_LN_EPS 1e-6f

typedef struct vblock {
    simclr__layernorm ln1, ln2;
    simclr__tlinear in_proj, out_proj, fc1, fc2;
    const float *in;           /* block input [R, D] (tokens or the previous block's x2) */
    float *ln1_y, *ln1_st;     /* ln_1 output and statistics */
    float *qkv, *attn;         /* in_proj output [R, 3D]; attention output [R, D] */
    float *x1, *ln2_y, *ln2_st;
    float *h1, *g;             /* mlp.0 output and its GELU [R, M] */
    float *x2;                 /* block output [R, D] */
} vblock;

typedef struct vit {
    int64_t image, patch, grid, np, t, d, depth, heads, mlp;
    simclr_vit_pool pool;
    simclr__conv2d conv;
    simclr_tensor *cls, *dcls; /* [1, 1, D] or NULL (mean pooling) */
    simclr_tensor *pos, *dpos; /* [1, T, D] */
    vblock *blocks;
    simclr__layernorm ln;
    /* plan for batch n (valid when planned) */
    int planned, train_plan;
    int64_t n;
    simclr__conv_desc cd;
    simclr__arena arena;
    float *x_cm, *conv_y, *tmp, *tokens, *ln_y, *ln_st, *ones, *scratch;
    float *g[4]; /* gradient buffers: G [R, D], A [max(R*max(3D, M), N*C*H*W)], B, C [R, D] */
    float *attn_ws, *conv_ws;
} vit;

/* ---- creation ---- */

static void vit_destroy(simclr_module *m)
{
    vit *v = m->impl;
    if (!v) return;
    simclr__arena_free(m->ctx, &v->arena);
    simclr__free(m->ctx, v->blocks);
    simclr__free(m->ctx, v);
}

static simclr_status vit_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y);
static simclr_status vit_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx);

static const simclr__module_ops vit_ops = {"vit", vit_forward, vit_backward, vit_destroy};

static simclr_status block_init(simclr_module *m, vblock *b, int i, int64_t d, int64_t mlp, uint64_t seed)
{
    char p[SIMCLR__LAYER_NAME], w[SIMCLR__LAYER_NAME + 32], bn[SIMCLR__LAYER_NAME + 32];
    simclr__param_sink ps = simclr__module_sink(m);
    snprintf(p, sizeof p, "encoder.layers.encoder_layer_%d", i);
    snprintf(w, sizeof w, "%s.ln_1", p);
    SIMCLR__TRY(simclr__layernorm_init(&ps, &b->ln1, w, d, VIT_LN_EPS));
    snprintf(w, sizeof w, "%s.self_attention.in_proj_weight", p);
    snprintf(bn, sizeof bn, "%s.self_attention.in_proj_bias", p);
    SIMCLR__TRY(simclr__tlinear_init(&ps, &b->in_proj, w, bn, d, 3 * d, SIMCLR__TLINEAR_XAVIER, seed));
    snprintf(w, sizeof w, "%s.self_attention.out_proj.weight", p);
    snprintf(bn, sizeof bn, "%s.self_attention.out_proj.bias", p);
    SIMCLR__TRY(simclr__tlinear_init(&ps, &b->out_proj, w, bn, d, d, SIMCLR__TLINEAR_TORCH, seed));
    snprintf(w, sizeof w, "%s.ln_2", p);
    SIMCLR__TRY(simclr__layernorm_init(&ps, &b->ln2, w, d, VIT_LN_EPS));
    snprintf(w, sizeof w, "%s.mlp.0.weight", p);
    snprintf(bn, sizeof bn, "%s.mlp.0.bias", p);
    SIMCLR__TRY(simclr__tlinear_init(&ps, &b->fc1, w, bn, d, mlp, SIMCLR__TLINEAR_XAVIER_TINY, seed));
    snprintf(w, sizeof w, "%s.mlp.3.weight", p);
    snprintf(bn, sizeof bn, "%s.mlp.3.bias", p);
    return simclr__tlinear_init(&ps, &b->fc2, w, bn, mlp, d, SIMCLR__TLINEAR_XAVIER_TINY, seed);
}

/* Parameters in torchvision's state_dict order. */
static simclr_status build(simclr_module *m, vit *v, int64_t in_channels, uint64_t seed)
{
    simclr__param_sink ps = simclr__module_sink(m);
    uint64_t index;
    simclr__rng r;
    int64_t d = v->d;
    if (v->pool == SIMCLR_VIT_POOL_CLS) {
        int64_t shape[3] = {1, 1, d};
        SIMCLR__TRY(ps.add(ps.owner, "class_token", 3, shape, SIMCLR_PARAM_NO_DECAY, &v->cls, &v->dcls, &index));
    }
    SIMCLR__TRY(simclr__conv2d_init(&ps, &v->conv, "conv_proj", in_channels, d, v->patch, v->patch, 0, 1, seed));
    /* torchvision: trunc_normal_(std = sqrt(1 / fan_in)), cut at +-2 (absolute, as torch's defaults). */
    {
        uint64_t windex = (uint64_t)m->n_params - 2; /* conv_proj.weight, then conv_proj.bias */
        double std = sqrt(1.0 / (double)(in_channels * v->patch * v->patch));
        simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, windex);
        float *w = simclr__f32(v->conv.w);
        for (int64_t i = 0; i < v->conv.w->numel; i++) {
            double s;
            do s = std * simclr__rng_normal(&r);
            while (s < -2.0 || s > 2.0);
            w[i] = (float)s;
        }
    }
    int64_t pshape[3] = {1, v->t, d};
    SIMCLR__TRY(ps.add(ps.owner, "encoder.pos_embedding", 3, pshape, SIMCLR_PARAM_NO_DECAY, &v->pos, &v->dpos,
                       &index));
    simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, index);
    float *pos = simclr__f32(v->pos);
    for (int64_t i = 0; i < v->t * d; i++) pos[i] = (float)(0.02 * simclr__rng_normal(&r));
    for (int64_t i = 0; i < v->depth; i++) SIMCLR__TRY(block_init(m, &v->blocks[i], (int)i, d, v->mlp, seed));
    SIMCLR__TRY(simclr__layernorm_init(&ps, &v->ln, "encoder.ln", d, VIT_LN_EPS));
    m->out_dim = d;
    return SIMCLR_OK;
}

simclr_status simclr_vit_create(simclr_context *ctx, int64_t image_size, int64_t patch_size, int64_t in_channels,
                                int64_t hidden_dim, int depth, int heads, int64_t mlp_dim, simclr_vit_pool pool,
                                uint64_t seed, simclr_module **out)
{
    static const char fn[] = "simclr_vit_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    /* Sizes are int64_t (the header's convention); each is range-checked
     * before a (int) cast in a message or below. */
    if (image_size < 1 || image_size > 4096)
        return simclr__fail(SIMCLR_E_INVALID, "%s: image_size %lld out of range 1..4096", fn, (long long)image_size);
    if (patch_size < 1 || patch_size > image_size)
        return simclr__fail(SIMCLR_E_INVALID, "%s: patch_size %lld out of range 1..image_size (%d)", fn,
                            (long long)patch_size, (int)image_size);
    if (image_size % patch_size != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: image_size %d is not a multiple of patch_size %d", fn,
                            (int)image_size, (int)patch_size);
    if (in_channels < 1 || in_channels > 64)
        return simclr__fail(SIMCLR_E_INVALID, "%s: in_channels %lld out of range 1..64", fn, (long long)in_channels);
    if (hidden_dim < 1 || hidden_dim > 65536)
        return simclr__fail(SIMCLR_E_INVALID, "%s: hidden_dim %lld out of range 1..65536", fn, (long long)hidden_dim);
    if (heads < 1 || heads > hidden_dim)
        return simclr__fail(SIMCLR_E_INVALID, "%s: heads %d out of range 1..hidden_dim (%d)", fn, (int)heads,
                            (int)hidden_dim);
    if (hidden_dim % heads != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: hidden_dim %d is not a multiple of heads %d", fn,
                            (int)hidden_dim, (int)heads);
    if (depth < 1 || depth > 256)
        return simclr__fail(SIMCLR_E_INVALID, "%s: depth %d out of range 1..256", fn, (int)depth);
    if (mlp_dim < 1 || mlp_dim > 262144)
        return simclr__fail(SIMCLR_E_INVALID, "%s: mlp_dim %lld out of range 1..262144", fn, (long long)mlp_dim);
    if (pool != SIMCLR_VIT_POOL_CLS && pool != SIMCLR_VIT_POOL_MEAN)
        return simclr__fail(SIMCLR_E_INVALID,
                            "%s: pool %d is neither SIMCLR_VIT_POOL_CLS nor SIMCLR_VIT_POOL_MEAN", fn, (int)pool);
    int64_t grid = image_size / patch_size, t = grid * grid + (pool == SIMCLR_VIT_POOL_CLS);
    if (t > 65536)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %lld tokens (image_size %d / patch_size %d, squared) exceed 65536",
                            fn, (long long)t, (int)image_size, (int)patch_size);

    char arch[128];
    snprintf(arch, sizeof arch, "vit image=%d patch=%d in=%d d=%d depth=%d heads=%d mlp=%d pool=%s", (int)image_size,
             (int)patch_size, (int)in_channels, (int)hidden_dim, (int)depth, (int)heads, (int)mlp_dim,
             pool == SIMCLR_VIT_POOL_CLS ? "cls" : "mean");
    simclr_module *m;
    SIMCLR__TRY(simclr__module_new(ctx, &vit_ops, arch, &m));
    vit *v = simclr__calloc(ctx, 1, sizeof *v);
    vblock *blocks = v ? simclr__calloc(ctx, (size_t)depth, sizeof *blocks) : NULL;
    if (!blocks) {
        simclr__free(ctx, v);
        simclr_module_destroy(m);
        return simclr__nomem(fn, (size_t)depth * sizeof *blocks);
    }
    m->impl = v;
    m->in_dim = in_channels;
    v->blocks = blocks;
    v->image = image_size, v->patch = patch_size, v->grid = grid, v->np = grid * grid, v->t = t;
    v->d = hidden_dim, v->depth = depth, v->heads = heads, v->mlp = mlp_dim, v->pool = pool;
    simclr_status st = build(m, v, in_channels, seed);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(m);
        return st;
    }
    simclr__module_finalize(m);
    *out = m;
    return SIMCLR_OK;
}

simclr_status simclr_vit_create_preset(simclr_context *ctx, simclr_vit_preset preset, int64_t in_channels,
                                       uint64_t seed, simclr_module **out)
{
    static const char fn[] = "simclr_vit_create_preset";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    /* image, patch, hidden, depth, heads, mlp */
    static const int32_t p[4][6] = {
        {224, 16, 192, 12, 3, 768}, {224, 16, 384, 12, 6, 1536}, {32, 4, 192, 12, 3, 768}, {32, 4, 384, 12, 6, 1536}};
    if (preset < SIMCLR_VIT_TINY_16 || preset > SIMCLR_VIT_SMALL_CIFAR)
        return simclr__fail(SIMCLR_E_INVALID, "%s: unknown preset %d (SIMCLR_VIT_TINY_16 .. SIMCLR_VIT_SMALL_CIFAR)",
                            fn, (int)preset);
    if (in_channels < 1 || in_channels > 64)
        return simclr__fail(SIMCLR_E_INVALID, "%s: in_channels %lld out of range 1..64", fn, (long long)in_channels);
    const int32_t *c = p[preset - 1];
    return simclr_vit_create(ctx, c[0], c[1], in_channels, c[2], c[3], c[4], c[5], SIMCLR_VIT_POOL_CLS, seed, out);
}

/* ---- planning ---- */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Hands out the arena's slices for batch n (base NULL: only counts). A
 * training plan keeps every block's activations and the gradient buffers;
 * an inference plan (the first forward at this batch size was EVAL) gives
 * all blocks one set of scratch activations, alternates the block outputs
 * between two buffers, applies GELU in place and reserves no gradients. */
static size_t plan(simclr_module *m, vit *v, int64_t n, float *base, int train)
{
    simclr__planner p = {.base = base};
    int64_t rows = n * v->t, d = v->d, c = m->in_dim, hw = v->image * v->image;
    v->x_cm = simclr__plan_take(&p, c * n * hw);
    v->conv_y = simclr__plan_take(&p, d * n * v->np);
    v->tmp = simclr__plan_take(&p, d * n * v->np);
    v->tokens = simclr__plan_take(&p, rows * d);
    vblock shared = {0};
    float *out[2] = {NULL, NULL};
    if (!train) {
        shared.ln1_y = simclr__plan_take(&p, rows * d);
        shared.ln1_st = simclr__plan_take(&p, SIMCLR__LN_STATS(rows));
        shared.qkv = simclr__plan_take(&p, rows * 3 * d);
        shared.attn = simclr__plan_take(&p, rows * d);
        shared.x1 = simclr__plan_take(&p, rows * d);
        shared.ln2_y = simclr__plan_take(&p, rows * d);
        shared.ln2_st = simclr__plan_take(&p, SIMCLR__LN_STATS(rows));
        shared.h1 = shared.g = simclr__plan_take(&p, rows * v->mlp);
        out[0] = simclr__plan_take(&p, rows * d);
        out[1] = simclr__plan_take(&p, rows * d);
    }
    for (int64_t i = 0; i < v->depth; i++) {
        vblock *b = &v->blocks[i];
        const float *in = i ? v->blocks[i - 1].x2 : v->tokens;
        if (!train) {
            /* Keep the layers, point every activation at the shared set. */
            b->ln1_y = shared.ln1_y, b->ln1_st = shared.ln1_st, b->qkv = shared.qkv, b->attn = shared.attn;
            b->x1 = shared.x1, b->ln2_y = shared.ln2_y, b->ln2_st = shared.ln2_st, b->h1 = shared.h1;
            b->g = shared.g, b->x2 = out[i % 2], b->in = in;
            continue;
        }
        b->in = in;
        b->ln1_y = simclr__plan_take(&p, rows * d);
        b->ln1_st = simclr__plan_take(&p, SIMCLR__LN_STATS(rows));
        b->qkv = simclr__plan_take(&p, rows * 3 * d);
        b->attn = simclr__plan_take(&p, rows * d);
        b->x1 = simclr__plan_take(&p, rows * d);
        b->ln2_y = simclr__plan_take(&p, rows * d);
        b->ln2_st = simclr__plan_take(&p, SIMCLR__LN_STATS(rows));
        b->h1 = simclr__plan_take(&p, rows * v->mlp);
        b->g = simclr__plan_take(&p, rows * v->mlp);
        b->x2 = simclr__plan_take(&p, rows * d);
    }
    v->ln_y = simclr__plan_take(&p, rows * d);
    v->ln_st = simclr__plan_take(&p, SIMCLR__LN_STATS(rows));
    v->ones = simclr__plan_take(&p, rows);
    v->scratch = simclr__plan_take(&p, max64(3 * d, v->mlp));
    for (int i = 0; i < 4; i++) v->g[i] = NULL;
    if (train) {
        v->g[0] = simclr__plan_take(&p, rows * d);
        v->g[1] = simclr__plan_take(&p, max64(rows * max64(3 * d, v->mlp), c * n * hw));
        v->g[2] = simclr__plan_take(&p, rows * d);
        v->g[3] = simclr__plan_take(&p, rows * d);
    }
    v->attn_ws = simclr__plan_take(&p, simclr__attention_workspace(m->ctx, v->t));
    v->conv_ws = simclr__plan_take(&p, (int64_t)m->ctx->backend->conv2d_workspace(m->ctx, &v->cd));
    return p.overflow ? 0 : p.used;
}

/* Makes the plan fit a batch of n for `mode` (a training plan for TRAIN;
 * for EVAL the plan at hand when its batch size fits, else an inference
 * plan), in the arena at hand when it fits (simclr__arena_fit); on failure
 * the module is unchanged. */
static simclr_status ensure_plan(simclr_module *m, vit *v, int64_t n, simclr_mode mode)
{
    int train = mode == SIMCLR_TRAIN;
    if (v->planned && v->n == n && (v->train_plan || !train)) return SIMCLR_OK;
    /* Every count is below 2^40 * (the largest per-image size), which keeps
     * the planner's products in range. */
    int64_t per_image = v->t * max64(max64(3 * v->d, v->mlp), v->d) + m->in_dim * v->image * v->image;
    simclr__conv_desc cd, saved_cd = v->cd;
    SIMCLR__TRY(simclr__conv2d_desc(&v->conv, n, v->image, v->image, &cd));
    v->cd = cd;
    size_t floats = n <= ((int64_t)1 << 40) / per_image ? plan(m, v, n, NULL, train) : 0;
    simclr_status st = floats ? simclr__arena_fit(m->ctx, &v->arena, floats, m->arch)
                              : simclr__fail(SIMCLR_E_SHAPE, "%s: activations for a batch of %lld do not fit in memory",
                                             m->arch, (long long)n);
    if (st != SIMCLR_OK) {
        v->cd = saved_cd;
        if (v->planned) plan(m, v, v->n, v->arena.base, v->train_plan); /* the counting pass cleared the slices */
        return st;
    }
    v->n = n;
    v->planned = 1;
    v->train_plan = train;
    plan(m, v, n, v->arena.base, train);
    for (int64_t i = 0; i < n * v->t; i++) v->ones[i] = 1.0f;
    m->has_train_forward = 0;
    return SIMCLR_OK;
}

/* ---- forward ---- */

static void block_forward(simclr_context *ctx, const vit *v, vblock *b, int64_t rows)
{
    const simclr__backend *be = ctx->backend;
    int64_t d = v->d;
    simclr__layernorm_forward(ctx, &b->ln1, rows, b->in, b->ln1_y, b->ln1_st);
    simclr__tlinear_forward(ctx, &b->in_proj, rows, b->ln1_y, v->ones, b->qkv);
    simclr__attention_forward(ctx, v->n, v->t, d, v->heads, b->qkv, b->attn, v->attn_ws);
    simclr__tlinear_forward(ctx, &b->out_proj, rows, b->attn, v->ones, b->x1);
    be->add(ctx, rows * d, b->x1, b->in, b->x1);
    simclr__layernorm_forward(ctx, &b->ln2, rows, b->x1, b->ln2_y, b->ln2_st);
    simclr__tlinear_forward(ctx, &b->fc1, rows, b->ln2_y, v->ones, b->h1);
    simclr__gelu_forward(ctx, rows * v->mlp, b->h1, b->g);
    simclr__tlinear_forward(ctx, &b->fc2, rows, b->g, v->ones, b->x2);
    be->add(ctx, rows * d, b->x2, b->x1, b->x2);
}

static simclr_status vit_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    vit *v = m->impl;
    simclr_context *ctx = m->ctx;
    const simclr__backend *be = ctx->backend;
    char buf[64];
    if (x->ndim != 4)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: input must be [N, C, H, W], got %s", m->arch,
                            simclr__shape_str(x, buf, sizeof buf));
    if (x->dims[1] != m->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: conv_proj: input has %lld channels, layer expects %lld", m->arch,
                            (long long)x->dims[1], (long long)m->in_dim);
    if (x->dims[2] != v->image || x->dims[3] != v->image)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: encoder.pos_embedding: input must be %lldx%lld (the position embedding's size), "
                            "got %lldx%lld",
                            m->arch, (long long)v->image, (long long)v->image, (long long)x->dims[2],
                            (long long)x->dims[3]);
    int64_t n = x->dims[0], d = v->d, t = v->t, np = v->np;
    int64_t want[2] = {n, d};
    SIMCLR__TRY(simclr__tensor_expect(y, m->arch, "y", SIMCLR_F32, 2, want));
    /* No dropout, no batch statistics: TRAIN and EVAL compute the same
     * values; EVAL may run on the smaller inference plan. */
    SIMCLR__TRY(ensure_plan(m, v, n, mode));

    int64_t rows = n * t, first = v->cls ? 1 : 0;
    simclr__layout_to_cm(ctx, n, m->in_dim, v->image * v->image, simclr__f32(x), v->x_cm);
    simclr__conv2d_forward(ctx, &v->conv, &v->cd, v->x_cm, v->conv_y, v->conv_ws);
    /* [D][N][P] -> [N][D][P] -> per image [P][D], after the class token. */
    be->swap01(ctx, d, n, np, v->conv_y, v->tmp);
    for (int64_t i = 0; i < n; i++) {
        float *tok = v->tokens + i * t * d;
        be->swap01(ctx, d, np, 1, v->tmp + i * d * np, tok + first * d);
        if (v->cls) memcpy(tok, simclr__f32(v->cls), (size_t)d * sizeof(float));
        be->axpy(ctx, t * d, 1.0f, simclr__f32(v->pos), tok);
    }
    for (int64_t i = 0; i < v->depth; i++) block_forward(ctx, v, &v->blocks[i], rows);
    const float *last = v->blocks[v->depth - 1].x2;
    simclr__layernorm_forward(ctx, &v->ln, rows, last, v->ln_y, v->ln_st);
    float *out = simclr__f32(y);
    for (int64_t i = 0; i < n; i++) {
        if (v->cls)
            memcpy(out + i * d, v->ln_y + i * t * d, (size_t)d * sizeof(float));
        else
            be->sum_rows(ctx, t, d, v->ln_y + i * t * d, out + i * d);
    }
    if (!v->cls) be->scale(ctx, n * d, 1.0f / (float)t, out);
    m->has_train_forward = mode == SIMCLR_TRAIN;
    return SIMCLR_OK;
}

/* ---- backward ---- */

/* G holds d(block output) on entry and d(block input) on return. */
static void block_backward(simclr_context *ctx, const vit *v, vblock *b, int64_t rows)
{
    const simclr__backend *be = ctx->backend;
    int64_t d = v->d;
    float *G = v->g[0], *A = v->g[1], *B = v->g[2];
    simclr__tlinear_backward(ctx, &b->fc2, rows, b->g, G, A, 0, v->scratch);
    simclr__gelu_backward(ctx, rows * v->mlp, b->h1, A, A);
    simclr__tlinear_backward(ctx, &b->fc1, rows, b->ln2_y, A, B, 0, v->scratch);
    simclr__layernorm_backward(ctx, &b->ln2, rows, b->x1, B, B, b->ln2_st);
    be->add(ctx, rows * d, G, B, G); /* d x1 */
    simclr__tlinear_backward(ctx, &b->out_proj, rows, b->attn, G, B, 0, v->scratch);
    simclr__attention_backward(ctx, v->n, v->t, d, v->heads, b->qkv, B, A, v->attn_ws);
    simclr__tlinear_backward(ctx, &b->in_proj, rows, b->ln1_y, A, B, 0, v->scratch);
    simclr__layernorm_backward(ctx, &b->ln1, rows, b->in, B, B, b->ln1_st);
    be->add(ctx, rows * d, G, B, G); /* d input */
}

static simclr_status vit_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    vit *v = m->impl;
    simclr_context *ctx = m->ctx;
    const simclr__backend *be = ctx->backend;
    int64_t n = v->n, d = v->d, t = v->t, np = v->np, rows = n * t, first = v->cls ? 1 : 0;
    int64_t want_dy[2] = {n, d}, want_dx[4] = {n, m->in_dim, v->image, v->image};
    SIMCLR__TRY(simclr__tensor_expect(dy, m->arch, "dy (the shape of the last TRAIN forward's output)", SIMCLR_F32,
                                      2, want_dy));
    if (dx)
        SIMCLR__TRY(simclr__tensor_expect(dx, m->arch, "dx (the shape of the last TRAIN forward's input)",
                                          SIMCLR_F32, 4, want_dx));
    float *G = v->g[0], *A = v->g[1], *B = v->g[2];
    const float *gy = simclr__f32(dy);
    /* Pooling: the class token's row gets dy; mean pooling spreads dy / T
     * over every token (a rank-1 product with the ones vector). */
    if (v->cls) {
        memset(G, 0, (size_t)(rows * d) * sizeof(float));
        for (int64_t i = 0; i < n; i++) memcpy(G + i * t * d, gy + i * d, (size_t)d * sizeof(float));
    } else {
        for (int64_t i = 0; i < n; i++)
            be->gemm(ctx, 0, 0, t, d, 1, 1.0f / (float)t, v->ones, 1, gy + i * d, d, 0.0f, G + i * t * d, d);
    }
    simclr__layernorm_backward(ctx, &v->ln, rows, v->blocks[v->depth - 1].x2, G, G, v->ln_st);
    for (int64_t i = v->depth - 1; i >= 0; i--) block_backward(ctx, v, &v->blocks[i], rows);
    /* Embedding: position embedding and class token sum over images; the
     * patch tokens go back to [D][N][P] for the convolution. */
    for (int64_t i = 0; i < n; i++) {
        const float *gt = G + i * t * d;
        be->axpy(ctx, t * d, 1.0f, gt, simclr__f32(v->dpos));
        if (v->cls) be->axpy(ctx, d, 1.0f, gt, simclr__f32(v->dcls));
        be->swap01(ctx, np, d, 1, gt + first * d, v->tmp + i * d * np);
    }
    be->swap01(ctx, n, d, np, v->tmp, B);
    simclr__conv2d_backward(ctx, &v->conv, &v->cd, v->x_cm, B, dx ? A : NULL, 0, v->conv_ws);
    if (dx) simclr__layout_to_nchw(ctx, n, m->in_dim, v->image * v->image, A, simclr__f32(dx));
    return SIMCLR_OK;
}
