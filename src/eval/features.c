/* simclr_extract_features: the encoder in EVAL mode over a whole data set. */
#include <string.h>

#include "../augment/augment.h"
#include "../core/tensor.h"
#include "../io/dataset.h"
#include "../model/module.h"

/* pixels / 255, U8 [n, H, W, C] of the data set -> F32 [n, C, H, W]. */
static void to_nchw(const simclr_dataset *ds, int64_t first, int64_t n, int64_t h, int64_t w, int64_t c, float *x)
{
    const float s = 1.0f / 255.0f;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *src = simclr__dataset_image(ds, first + i);
        float *dst = x + i * c * h * w;
        for (int64_t p = 0; p < h * w; p++)
            for (int64_t ch = 0; ch < c; ch++) dst[ch * h * w + p] = (float)src[p * c + ch] * s;
    }
}

typedef struct batch_bufs {
    simclr_tensor *u8, *x, *y;
    int64_t *idx;
    int64_t n;
} batch_bufs;

static void free_bufs(simclr_context *ctx, batch_bufs *b)
{
    simclr_tensor_destroy(b->u8);
    simclr_tensor_destroy(b->x);
    simclr_tensor_destroy(b->y);
    simclr__free(ctx, b->idx);
    memset(b, 0, sizeof *b);
}

/* (Re)makes the per-batch tensors for a batch of n images. y borrows out's rows. */
static simclr_status make_bufs(simclr_context *ctx, batch_bufs *b, int64_t n, int64_t h, int64_t w, int64_t c,
                               int64_t oh, int64_t ow, int with_aug, int64_t d, float *y_data)
{
    simclr_status st = SIMCLR_OK;
    if (b->n != n) {
        free_bufs(ctx, b);
        int64_t xs[4] = {n, c, with_aug ? oh : h, with_aug ? ow : w}, us[4] = {n, h, w, c}, ys[2] = {n, d};
        st = simclr_tensor_create(ctx, SIMCLR_F32, 4, xs, &b->x);
        if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, ys, y_data, &b->y);
        if (st == SIMCLR_OK && with_aug) {
            st = simclr_tensor_create(ctx, SIMCLR_U8, 4, us, &b->u8);
            if (st == SIMCLR_OK) {
                b->idx = simclr__malloc(ctx, (size_t)n * sizeof *b->idx);
                if (!b->idx) st = simclr__nomem("simclr_extract_features", (size_t)n * sizeof *b->idx);
            }
        }
        if (st != SIMCLR_OK) free_bufs(ctx, b);
        else b->n = n;
    } else {
        b->y->data = y_data; /* same shape, next rows of out */
    }
    return st;
}

simclr_status simclr_extract_features(simclr_module *encoder, const simclr_dataset *ds, simclr_augment *aug,
                                      int64_t batch_size, simclr_tensor *out)
{
    static const char fn[] = "simclr_extract_features";
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(ds, fn, "data set is NULL");
    if (batch_size < 1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: batch_size %lld must be >= 1", fn, (long long)batch_size);
    int64_t count = simclr_dataset_count(ds), d = simclr_module_output_dim(encoder), h, w, c, oh = 0, ow = 0;
    int64_t dims[2] = {count, d};
    SIMCLR__TRY(simclr__tensor_expect(out, fn, "out", SIMCLR_F32, 2, dims));
    SIMCLR__TRY(simclr_dataset_shape(ds, &h, &w, &c));
    if (aug) simclr__augment_out_size(aug, &oh, &ow);
    simclr_context *ctx = encoder->ctx;
    if (batch_size > count) batch_size = count;
    /* Features go to a private buffer first and reach out only when every
     * batch succeeded: a failed call leaves out as it was. */
    size_t out_bytes = simclr_tensor_bytes(out);
    float *feats = simclr__malloc(ctx, out_bytes);
    if (!feats) return simclr__nomem(fn, out_bytes);
    batch_bufs b = {0};
    simclr_status st = SIMCLR_OK;
    simclr__progress(ctx, "extract", 0, count);
    for (int64_t first = 0; first < count && st == SIMCLR_OK; first += batch_size) {
        int64_t n = count - first < batch_size ? count - first : batch_size;
        st = make_bufs(ctx, &b, n, h, w, c, oh, ow, aug != NULL, d, feats + first * d);
        if (st != SIMCLR_OK) break;
        if (aug) {
            for (int64_t i = 0; i < n; i++) b.idx[i] = first + i;
            st = simclr_dataset_batch(ds, b.idx, n, b.u8);
            if (st == SIMCLR_OK) st = simclr_augment_apply(aug, b.u8, 0, 0, b.x);
        } else {
            to_nchw(ds, first, n, h, w, c, simclr__f32(b.x));
        }
        if (st == SIMCLR_OK) st = simclr_module_forward(encoder, b.x, SIMCLR_EVAL, b.y);
        if (st == SIMCLR_OK && simclr__progress(ctx, "extract", first + n, count) && first + n < count)
            st = simclr__cancelled(ctx, fn, "image", first + n, count);
    }
    free_bufs(ctx, &b);
    if (st == SIMCLR_OK) memcpy(out->data, feats, out_bytes);
    simclr__free(ctx, feats);
    return st;
}
