/* The embedder: features of host images of any size through torchvision's
 * evaluation transform (resize of the shorter side, center crop), with its
 * own shadow of the encoder (shared read-only weights, private activations)
 * on the caller's context, so threads with their own contexts may embed with
 * one encoder at once. */
#include <math.h>
#include <string.h>

#include "../augment/resample.h"
#include "../core/image_list.h"
#include "../model/share.h"

#define MAX_OUT_SIDE 4096

struct simclr_embedder {
    simclr_context *ctx;
    simclr_module *net; /* shadow of the encoder */
    int out_h, out_w;
    int64_t channels, dim;
    double resize, batch, normalize, mean[3], std[3];
    float *scratch; /* per worker */
    int64_t per_worker;
    int n_workers;
    simclr_tensor *x; /* [x_n, C, out_h, out_w]; grows only (a chunk uses its first images) */
    int64_t x_n;
    float *stage; /* features of a multi-batch run before they go to out; grows only */
    size_t stage_bytes;
};

simclr_status simclr_embedder_create(simclr_context *ctx, const simclr_module *encoder, int64_t out_h,
                                     int64_t out_w, simclr_embedder **out)
{
    static const char fn[] = "simclr_embedder_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (out_h < 1 || out_h > MAX_OUT_SIDE || out_w < 1 || out_w > MAX_OUT_SIDE)
        return simclr__fail(SIMCLR_E_INVALID, "%s: output size %lld x %lld out of range 1..%d", fn, (long long)out_h,
                            (long long)out_w, MAX_OUT_SIDE);
    simclr_embedder *e = simclr__calloc(ctx, 1, sizeof *e);
    if (!e) return simclr__nomem(fn, sizeof *e);
    simclr_status st = simclr__module_share(ctx, encoder, &e->net);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, e);
        return st;
    }
    e->ctx = ctx;
    e->out_h = (int)out_h, e->out_w = (int)out_w; /* in range: checked above */
    e->channels = encoder->in_dim;
    e->dim = encoder->out_dim;
    int side = e->out_h > e->out_w ? e->out_h : e->out_w;
    e->resize = rint(side / 0.875);
    e->batch = 32;
    for (int c = 0; c < 3; c++) e->mean[c] = 0, e->std[c] = 1;
    *out = e;
    return SIMCLR_OK;
}

void simclr_embedder_destroy(simclr_embedder *emb)
{
    if (!emb) return;
    simclr_module_destroy(emb->net);
    simclr_tensor_destroy(emb->x);
    simclr__free(emb->ctx, emb->scratch);
    simclr__free(emb->ctx, emb->stage);
    simclr__free(emb->ctx, emb);
}

static double *field(simclr_embedder *e, simclr_embedder_param key, double *lo, double *hi)
{
    int side = e->out_h > e->out_w ? e->out_h : e->out_w;
    switch (key) {
    case SIMCLR_EMBED_RESIZE: *lo = side, *hi = 65536; return &e->resize;
    case SIMCLR_EMBED_BATCH: *lo = 1, *hi = 4096; return &e->batch;
    case SIMCLR_EMBED_NORMALIZE: *lo = 0, *hi = 1; return &e->normalize;
    case SIMCLR_EMBED_MEAN_0: case SIMCLR_EMBED_MEAN_1: case SIMCLR_EMBED_MEAN_2:
        *lo = -100, *hi = 100;
        return &e->mean[key - SIMCLR_EMBED_MEAN_0];
    case SIMCLR_EMBED_STD_0: case SIMCLR_EMBED_STD_1: case SIMCLR_EMBED_STD_2:
        *lo = 1e-6, *hi = 1e6;
        return &e->std[key - SIMCLR_EMBED_STD_0];
    }
    return NULL;
}

simclr_status simclr_embedder_set(simclr_embedder *emb, simclr_embedder_param key, double value)
{
    static const char fn[] = "simclr_embedder_set";
    SIMCLR__CHECK_ARG(emb, fn, "emb is NULL");
    double lo, hi, *f = field(emb, key, &lo, &hi);
    if (!f) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    if (!(value >= lo && value <= hi))
        return simclr__fail(SIMCLR_E_INVALID, "%s: key %d = %g out of range [%g, %g]", fn, (int)key, value, lo, hi);
    int integral = key == SIMCLR_EMBED_RESIZE || key == SIMCLR_EMBED_BATCH || key == SIMCLR_EMBED_NORMALIZE;
    if (integral && value != floor(value))
        return simclr__fail(SIMCLR_E_INVALID, "%s: key %d = %g must be a whole number", fn, (int)key, value);
    *f = value;
    return SIMCLR_OK;
}

simclr_status simclr_embedder_get(const simclr_embedder *emb, simclr_embedder_param key, double *value)
{
    static const char fn[] = "simclr_embedder_get";
    SIMCLR__CHECK_ARG(emb, fn, "emb is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    double lo, hi, *f = field((simclr_embedder *)emb, key, &lo, &hi);
    if (!f) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    *value = *f;
    return SIMCLR_OK;
}

static void eval_axes(const simclr_embedder *e, int64_t h, int64_t w, simclr__axis *ay, simclr__axis *ax)
{
    simclr__eval_axes(h, w, (int64_t)e->resize, e->out_h, e->out_w, ay, ax);
}

typedef struct job {
    const simclr_embedder *e;
    const simclr__image *items;
    float *x;
} job;

static void transform(void *arg, int64_t begin, int64_t end, int worker)
{
    const job *jb = arg;
    const simclr_embedder *e = jb->e;
    int64_t hw = (int64_t)e->out_h * e->out_w, C = e->channels;
    float *tmp = e->scratch + (int64_t)worker * e->per_worker;
    for (int64_t i = begin; i < end; i++) {
        simclr__axis ay, ax;
        eval_axes(e, jb->items[i].h, jb->items[i].w, &ay, &ax);
        float *dst = jb->x + i * C * hw;
        simclr__resample(jb->items[i].pixels, jb->items[i].w, (int)C, 0, 0, &ay, &ax, dst, tmp);
        if ((int)e->normalize)
            for (int64_t c = 0; c < C; c++) {
                float m = (float)e->mean[c], s = (float)e->std[c];
                for (int64_t p = 0; p < hw; p++) dst[c * hw + p] = (dst[c * hw + p] - m) / s;
            }
    }
}

static simclr_status reserve(simclr_embedder *e, const char *fn, const simclr_image_list *list)
{
    int workers = simclr__pool_size(e->ctx->pool);
    int64_t need = 0;
    for (int64_t i = 0; i < list->count; i++) {
        simclr__axis ay, ax;
        eval_axes(e, list->items[i].h, list->items[i].w, &ay, &ax);
        int64_t s = simclr__resample_scratch(&ay, &ax);
        if (s > need) need = s;
    }
    need = (need + 15) / 16 * 16;
    if (need <= e->per_worker && workers <= e->n_workers) return SIMCLR_OK;
    if (need < e->per_worker) need = e->per_worker;
    size_t bytes = (size_t)need * (size_t)workers * sizeof(float);
    float *block = simclr__malloc(e->ctx, bytes);
    if (!block) return simclr__nomem(fn, bytes);
    simclr__free(e->ctx, e->scratch);
    e->scratch = block;
    e->per_worker = need;
    e->n_workers = workers;
    return SIMCLR_OK;
}

simclr_status simclr_embedder_run(simclr_embedder *emb, const simclr_image_list *images, simclr_tensor *out)
{
    static const char fn[] = "simclr_embedder_run";
    SIMCLR__CHECK_ARG(emb, fn, "emb is NULL");
    SIMCLR__CHECK_ARG(images, fn, "images is NULL");
    if (images->count < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the image list is empty", fn);
    if (images->channels != emb->channels)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the images have %d channels, the encoder takes %lld", fn,
                            images->channels, (long long)emb->channels);
    int64_t n = images->count, want[2] = {n, emb->dim};
    SIMCLR__TRY(simclr__tensor_expect(out, fn, "out", SIMCLR_F32, 2, want));
    SIMCLR__TRY(reserve(emb, fn, images));
    int64_t b = (int64_t)emb->batch < n ? (int64_t)emb->batch : n;
    if (emb->x_n < b) {
        int64_t xs[4] = {b, emb->channels, emb->out_h, emb->out_w};
        simclr_tensor *x;
        SIMCLR__TRY(simclr__tensor_f32(emb->ctx, 4, xs, &x));
        simclr_tensor_destroy(emb->x);
        emb->x = x;
        emb->x_n = b;
    }
    /* out is untouched on error. One forward writes straight into out
     * (simclr_module_forward leaves y untouched when it fails). Several go
     * through the embedder's staging buffer, copied into out once every
     * batch succeeded: a failure in batch 2 must not leave batch 1's rows
     * written. The buffer grows to the largest request and stays, like the
     * rest of the workspace (a service allocates nothing per request). */
    float *dst = simclr__f32(out);
    size_t out_bytes = (size_t)n * (size_t)emb->dim * sizeof(float);
    if (n > b) {
        if (out_bytes > emb->stage_bytes) {
            float *bigger = simclr__malloc(emb->ctx, out_bytes);
            if (!bigger) return simclr__nomem(fn, out_bytes);
            simclr__free(emb->ctx, emb->stage);
            emb->stage = bigger;
            emb->stage_bytes = out_bytes;
        }
        dst = emb->stage;
    }
    simclr_status st = SIMCLR_OK;
    for (int64_t first = 0; first < n && st == SIMCLR_OK; first += b) {
        int64_t k = n - first < b ? n - first : b;
        int64_t xs[4] = {k, emb->channels, emb->out_h, emb->out_w}, ys[2] = {k, emb->dim};
        job jb = {emb, images->items + first, simclr__f32(emb->x)};
        simclr__pool_for(emb->ctx->pool, k, 1, transform, &jb);
        simclr_tensor *xv = NULL, *yv = NULL;
        st = simclr_tensor_wrap(emb->ctx, SIMCLR_F32, 4, xs, emb->x->data, &xv);
        if (st == SIMCLR_OK) st = simclr_tensor_wrap(emb->ctx, SIMCLR_F32, 2, ys, dst + first * emb->dim, &yv);
        if (st == SIMCLR_OK) st = simclr_module_forward(emb->net, xv, SIMCLR_EVAL, yv);
        simclr_tensor_destroy(xv);
        simclr_tensor_destroy(yv);
    }
    if (st == SIMCLR_OK && dst != simclr__f32(out)) memcpy(simclr__f32(out), dst, out_bytes);
    return st;
}
