/* The public augmentation object: a policy, the output size, and per-worker
 * scratch grown on demand (so a warm policy never allocates). Images are
 * spread over the context's pool; each image's view depends only on
 * (seed, view, index in the batch), never on which worker runs it. */
#include <string.h>

#include "core/context.h"
#include "core/image_list.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "augment.h"
#include "policy.h"

#define MAX_OUT_SIDE 4096
/* Keeps every size product in int64 and the crop offsets in uint32 draws. */
#define MAX_IN_SIDE (1 << 24)

struct simclr_augment {
    simclr_context *ctx;
    simclr__aug_params params;
    int out_h, out_w;
    float *scratch;             /* n_workers blocks of `per_worker` floats */
    int64_t per_worker;
    int n_workers;
};

/* simclr_augment_create_v2 and the deprecated int form: one body, each
 * naming itself in its messages. */
static simclr_status augment_create(const char *fn, simclr_context *ctx, simclr_aug_preset preset, int64_t out_h,
                                    int64_t out_w, simclr_augment **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (out_h < 1 || out_h > MAX_OUT_SIDE || out_w < 1 || out_w > MAX_OUT_SIDE)
        return simclr__fail(SIMCLR_E_INVALID, "%s: output size %lld x %lld out of range 1..%d", fn, (long long)out_h,
                            (long long)out_w, MAX_OUT_SIDE);
    simclr__aug_params params;
    SIMCLR__TRY(simclr__aug_preset(&params, preset));
    simclr_augment *aug = simclr__malloc(ctx, sizeof *aug);
    if (!aug) return simclr__nomem(fn, sizeof *aug);
    memset(aug, 0, sizeof *aug);
    aug->ctx = ctx;
    aug->params = params;
    aug->out_h = (int)out_h; /* in range: checked above */
    aug->out_w = (int)out_w;
    *out = aug;
    return SIMCLR_OK;
}

simclr_status simclr_augment_create_v2(simclr_context *ctx, simclr_aug_preset preset, int64_t out_h, int64_t out_w,
                                       simclr_augment **out)
{
    return augment_create("simclr_augment_create_v2", ctx, preset, out_h, out_w, out);
}

simclr_status simclr_augment_create(simclr_context *ctx, simclr_aug_preset preset, int out_h, int out_w,
                                    simclr_augment **out)
{
    return augment_create("simclr_augment_create", ctx, preset, out_h, out_w, out);
}

void simclr_augment_destroy(simclr_augment *aug)
{
    if (!aug) return;
    simclr__free(aug->ctx, aug->scratch);
    simclr__free(aug->ctx, aug);
}

simclr_status simclr_augment_set(simclr_augment *aug, simclr_aug_param key, double value)
{
    SIMCLR__CHECK_ARG(aug, "simclr_augment_set", "aug is NULL");
    return simclr__aug_param_set(&aug->params, key, value);
}

simclr_status simclr_augment_get(const simclr_augment *aug, simclr_aug_param key, double *value)
{
    SIMCLR__CHECK_ARG(aug, "simclr_augment_get", "aug is NULL");
    SIMCLR__CHECK_ARG(value, "simclr_augment_get", "value is NULL");
    return simclr__aug_param_get(&aug->params, key, value);
}

simclr_status simclr_augment_bounds(simclr_aug_param key, double *lo, double *hi)
{
    SIMCLR__CHECK_ARG(lo && hi, "simclr_augment_bounds", "lo or hi is NULL");
    return simclr__aug_param_bounds(key, lo, hi);
}

/* Checks the images and returns H, W, C; out tensors are checked by the caller. */
static simclr_status check_images(const char *fn, const simclr_tensor *images)
{
    SIMCLR__TRY(simclr__tensor_expect(images, fn, "images", SIMCLR_U8, 4, NULL));
    int64_t c = images->dims[3];
    if (c != 1 && c != 3)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: images have %lld channels (last dim of [N, H, W, C]), expected 1 or 3",
                            fn, (long long)c);
    if (images->dims[1] > MAX_IN_SIDE || images->dims[2] > MAX_IN_SIDE)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: images of %lld x %lld exceed the %d-pixel side limit", fn,
                            (long long)images->dims[1], (long long)images->dims[2], MAX_IN_SIDE);
    return SIMCLR_OK;
}

static simclr_status check_output(const char *fn, const char *what, const simclr_augment *aug,
                                  const simclr_tensor *images, const simclr_tensor *out)
{
    const int64_t want[4] = {images->dims[0], images->dims[3], aug->out_h, aug->out_w};
    return simclr__tensor_expect(out, fn, what, SIMCLR_F32, 4, want);
}

/* Makes sure every worker has scratch for sources up to H x W; on failure the
 * old scratch stays. */
static simclr_status reserve(simclr_augment *aug, const char *fn, int64_t H, int64_t W)
{
    int workers = simclr__pool_size(aug->ctx->pool);
    int64_t need = simclr__aug_scratch_hw(&aug->params, H, W, aug->out_h, aug->out_w);
    need = (need + 15) / 16 * 16; /* each worker's block starts 64-byte aligned */
    if (need <= aug->per_worker && workers <= aug->n_workers) return SIMCLR_OK;
    if (need < aug->per_worker) need = aug->per_worker;
    size_t bytes = (size_t)need * (size_t)workers * sizeof(float);
    float *block = simclr__malloc(aug->ctx, bytes);
    if (!block) return simclr__nomem(fn, bytes);
    simclr__free(aug->ctx, aug->scratch);
    aug->scratch = block;
    aug->per_worker = need;
    aug->n_workers = workers;
    return SIMCLR_OK;
}

typedef struct job {
    simclr_augment *aug;
    const uint8_t *src;           /* a batch tensor's pixels, or NULL: */
    const simclr_image_list *list; /* images of different sizes */
    int64_t n, H, W;
    int C;
    uint64_t seed;
    uint64_t base; /* index of images[0] in the whole batch (shards, micro-batches) */
    int views[2];
    float *outs[2];
} job;

static void run_views(void *arg, int64_t begin, int64_t end, int worker)
{
    const job *jb = arg;
    const simclr_augment *aug = jb->aug;
    int64_t view_floats = (int64_t)jb->C * aug->out_h * aug->out_w;
    float *scratch = aug->scratch + (int64_t)worker * aug->per_worker;
    for (int64_t k = begin; k < end; k++) {
        int slot = (int)(k / jb->n);
        int64_t i = k % jb->n;
        simclr__rng r;
        simclr__rng_init(&r, jb->seed, SIMCLR__STREAM_AUGMENT + (uint32_t)jb->views[slot], jb->base + (uint64_t)i);
        int64_t H = jb->H, W = jb->W;
        const uint8_t *src;
        if (jb->list) {
            H = jb->list->items[i].h, W = jb->list->items[i].w;
            src = jb->list->items[i].pixels;
        } else {
            src = jb->src + i * H * W * jb->C;
        }
        simclr__aug_plan plan;
        simclr__aug_plan_draw(&aug->params, H, W, jb->C, aug->out_h, aug->out_w, &r, &plan);
        simclr__aug_execute(&aug->params, &plan, src, H, W, jb->C, aug->out_h, aug->out_w,
                            jb->outs[slot] + i * view_floats, scratch, &r);
    }
}

static void run(simclr_augment *aug, const simclr_tensor *images, uint64_t seed, uint64_t base, int n_views,
                const int *views, simclr_tensor *const *outs)
{
    job jb = {aug, images->data, NULL, images->dims[0], images->dims[1], images->dims[2], (int)images->dims[3],
              seed, base, {views[0], views[n_views - 1]}, {simclr__f32(outs[0]), simclr__f32(outs[n_views - 1])}};
    simclr__pool_for(aug->ctx->pool, jb.n * n_views, 1, run_views, &jb);
}

simclr_status simclr_augment_apply(simclr_augment *aug, const simclr_tensor *images, uint64_t seed, int view,
                                   simclr_tensor *out)
{
    return simclr__augment_view_at(aug, images, seed, 0, view, out);
}

simclr_status simclr_augment_pair(simclr_augment *aug, const simclr_tensor *images, uint64_t seed,
                                  simclr_tensor *view0, simclr_tensor *view1)
{
    return simclr__augment_pair_at(aug, images, seed, 0, view0, view1);
}

simclr_status simclr__augment_pair_at(simclr_augment *aug, const simclr_tensor *images, uint64_t seed,
                                      uint64_t base, simclr_tensor *view0, simclr_tensor *view1)
{
    static const char fn[] = "simclr_augment_pair";
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__TRY(check_images(fn, images));
    SIMCLR__TRY(check_output(fn, "view0", aug, images, view0));
    SIMCLR__TRY(check_output(fn, "view1", aug, images, view1));
    if (view0->data == view1->data)
        return simclr__fail(SIMCLR_E_INVALID, "%s: view0 and view1 share their memory", fn);
    SIMCLR__TRY(reserve(aug, fn, images->dims[1], images->dims[2]));
    const int views[2] = {0, 1};
    simclr_tensor *const outs[2] = {view0, view1};
    run(aug, images, seed, base, 2, views, outs);
    return SIMCLR_OK;
}

simclr_status simclr__augment_view_at(simclr_augment *aug, const simclr_tensor *images, uint64_t seed,
                                      uint64_t base, int view, simclr_tensor *out)
{
    static const char fn[] = "simclr_augment_apply";
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__TRY(check_images(fn, images));
    if (view < 0 || view >= SIMCLR__AUG_MAX_VIEWS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: view %d out of range 0..%d", fn, view, SIMCLR__AUG_MAX_VIEWS - 1);
    SIMCLR__TRY(check_output(fn, "out", aug, images, out));
    SIMCLR__TRY(reserve(aug, fn, images->dims[1], images->dims[2]));
    run(aug, images, seed, base, 1, &view, &out);
    return SIMCLR_OK;
}

simclr_context *simclr__augment_ctx(const simclr_augment *aug) { return aug->ctx; }

void simclr__augment_out_size(const simclr_augment *aug, int64_t *h, int64_t *w)
{
    *h = aug->out_h;
    *w = aug->out_w;
}

/* ---- images of different sizes: each cropped from its full resolution ---- */

static simclr_status check_list(const char *fn, const simclr_augment *aug, const simclr_image_list *list,
                                simclr_tensor *const *outs, int n_outs, int64_t *max_h, int64_t *max_w)
{
    SIMCLR__CHECK_ARG(list, fn, "images is NULL");
    if (list->count < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the image list is empty", fn);
    const int64_t want[4] = {list->count, list->channels, aug->out_h, aug->out_w};
    for (int k = 0; k < n_outs; k++)
        SIMCLR__TRY(simclr__tensor_expect(outs[k], fn, k ? "view1" : n_outs == 2 ? "view0" : "out", SIMCLR_F32, 4,
                                          want));
    int64_t mh = 0, mw = 0;
    for (int64_t i = 0; i < list->count; i++) {
        if (list->items[i].h > mh) mh = list->items[i].h;
        if (list->items[i].w > mw) mw = list->items[i].w;
    }
    *max_h = mh, *max_w = mw;
    return SIMCLR_OK;
}

static void run_list(simclr_augment *aug, const simclr_image_list *list, uint64_t seed, uint64_t base, int n_views,
                     const int *views, simclr_tensor *const *outs)
{
    job jb = {aug, NULL, list, list->count, 0, 0, list->channels, seed, base, {views[0], views[n_views - 1]},
              {simclr__f32(outs[0]), simclr__f32(outs[n_views - 1])}};
    simclr__pool_for(aug->ctx->pool, jb.n * n_views, 1, run_views, &jb);
}

simclr_status simclr_augment_apply_list(simclr_augment *aug, const simclr_image_list *images, uint64_t seed,
                                        int view, simclr_tensor *out)
{
    static const char fn[] = "simclr_augment_apply_list";
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    if (view < 0 || view >= SIMCLR__AUG_MAX_VIEWS)
        return simclr__fail(SIMCLR_E_INVALID, "%s: view %d out of range 0..%d", fn, view, SIMCLR__AUG_MAX_VIEWS - 1);
    int64_t mh, mw;
    SIMCLR__TRY(check_list(fn, aug, images, &out, 1, &mh, &mw));
    SIMCLR__TRY(reserve(aug, fn, mh, mw));
    run_list(aug, images, seed, 0, 1, &view, &out);
    return SIMCLR_OK;
}

simclr_status simclr_augment_pair_list(simclr_augment *aug, const simclr_image_list *images, uint64_t seed,
                                       simclr_tensor *view0, simclr_tensor *view1)
{
    return simclr__augment_pair_list_at(aug, images, seed, 0, view0, view1);
}

simclr_status simclr__augment_pair_list_at(simclr_augment *aug, const simclr_image_list *images, uint64_t seed,
                                           uint64_t base, simclr_tensor *view0, simclr_tensor *view1)
{
    static const char fn[] = "simclr_augment_pair_list";
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    simclr_tensor *const outs[2] = {view0, view1};
    int64_t mh, mw;
    SIMCLR__TRY(check_list(fn, aug, images, outs, 2, &mh, &mw));
    if (view0->data == view1->data)
        return simclr__fail(SIMCLR_E_INVALID, "%s: view0 and view1 share their memory", fn);
    SIMCLR__TRY(reserve(aug, fn, mh, mw));
    const int views[2] = {0, 1};
    run_list(aug, images, seed, base, 2, views, outs);
    return SIMCLR_OK;
}
