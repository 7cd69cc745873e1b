/* MoCo v2 as a method of the pipeline (src/train/method.h): view 0 is the
 * query (trained), view 1 the key; the key path runs the momentum modules
 * on shuffled sub-batches of the local key views (shuffling BN emulated on
 * each rank: the cross-rank shuffle of the paper is omitted, see
 * docs/distributed.md); the loss is InfoNCE of the global queries against
 * their keys and the queue; after commit the key modules follow by momentum
 * and the global batch's normalized keys enter the queue.
 *
 * It combines with everything the pipeline offers: the key path carries no
 * gradient, so gradient caching over the query path is exact (keys are
 * computed once per step, over the whole local batch, as without
 * micro-batches); on ranks every rank gathers every rank's keys, computes
 * the same loss and pushes the same keys, so the queues stay identical. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/rng.h"
#include "../model/module.h"
#include "moco.h"

static const char FN_STEP[] = "simclr_trainer_step (moco)";

/* The scratch of one shape: n local images of c channels, N global. */
typedef struct moco_bufs {
    int64_t n, c;
    int splits;
    simclr_tensor *kviews;     /* [n, c, h, w]: key views in the shuffled order */
    simclr_tensor *kfeat, *kz; /* [n, D], [n, P]: shuffled order */
    simclr_tensor *kin[SIMCLR__MOCO_MAX_SPLITS], *kf[SIMCLR__MOCO_MAX_SPLITS], *kzs[SIMCLR__MOCO_MAX_SPLITS];
    float *kunit;              /* [N, P]: the global batch's normalized keys */
    int64_t *order;            /* [n]: this step's key permutation */
} moco_bufs;

static void bufs_free(simclr_context *ctx, void *p)
{
    moco_bufs *b = p;
    simclr_tensor_destroy(b->kviews);
    simclr_tensor_destroy(b->kfeat);
    simclr_tensor_destroy(b->kz);
    for (int s = 0; s < SIMCLR__MOCO_MAX_SPLITS; s++) {
        simclr_tensor_destroy(b->kin[s]);
        simclr_tensor_destroy(b->kf[s]);
        simclr_tensor_destroy(b->kzs[s]);
    }
    simclr__free(ctx, b->kunit);
    simclr__free(ctx, b->order);
    simclr__free(ctx, b);
}

/* Grows the record of the last key order to n entries, keeping its content
 * (a step that then fails must leave simclr_moco_key_order's answer as it was). */
static simclr_status ensure_last_order(simclr_context *ctx, struct simclr__moco *mc, int64_t n)
{
    if (mc->last_cap >= n) return SIMCLR_OK;
    int64_t *p = simclr__malloc(ctx, (size_t)n * sizeof *p);
    if (!p) return simclr__nomem(FN_STEP, (size_t)n * sizeof *p);
    if (mc->last_n) memcpy(p, mc->last_order, (size_t)mc->last_n * sizeof *p);
    simclr__free(ctx, mc->last_order);
    mc->last_order = p;
    mc->last_cap = n;
    return SIMCLR_OK;
}

static simclr_status build(simclr_trainer *tr, struct simclr__moco *mc, moco_bufs *b, int64_t n, int64_t n_global,
                           int64_t c)
{
    simclr_context *ctx = tr->ctx;
    const int splits = mc->key_splits;
    const int64_t d = tr->encoder->out_dim, p = tr->head->out_dim, h = tr->out_h, w = tr->out_w, sub = n / splits;
    const int64_t plane = c * h * w;
    b->n = n, b->c = c, b->splits = splits;
    SIMCLR__TRY(ensure_last_order(ctx, mc, n));
    SIMCLR__TRY(simclr__tensor_f32(ctx, 4, (const int64_t[]){n, c, h, w}, &b->kviews));
    SIMCLR__TRY(simclr__tensor_f32(ctx, 2, (const int64_t[]){n, d}, &b->kfeat));
    SIMCLR__TRY(simclr__tensor_f32(ctx, 2, (const int64_t[]){n, p}, &b->kz));
    for (int s = 0; s < splits; s++) {
        SIMCLR__TRY(simclr_tensor_wrap(ctx, SIMCLR_F32, 4, (const int64_t[]){sub, c, h, w},
                                       simclr__f32(b->kviews) + s * sub * plane, &b->kin[s]));
        SIMCLR__TRY(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, (const int64_t[]){sub, d}, simclr__f32(b->kfeat) + s * sub * d,
                                       &b->kf[s]));
        SIMCLR__TRY(simclr_tensor_wrap(ctx, SIMCLR_F32, 2, (const int64_t[]){sub, p}, simclr__f32(b->kz) + s * sub * p,
                                       &b->kzs[s]));
    }
    b->kunit = simclr__malloc(ctx, (size_t)(n_global * p) * sizeof(float));
    b->order = simclr__malloc(ctx, (size_t)n * sizeof(int64_t));
    if (!b->kunit || !b->order)
        return simclr__nomem(FN_STEP, (size_t)(n_global * p) * sizeof(float) + (size_t)n * sizeof(int64_t));
    return simclr__infonce_reserve(mc->loss, n_global, p, mc->queue_size);
}

static simclr_status bufs_new(simclr_trainer *tr, void *state, int64_t n, int64_t n_global, int64_t c, void **out)
{
    moco_bufs *b = simclr__calloc(tr->ctx, 1, sizeof *b);
    if (!b) return simclr__nomem(FN_STEP, sizeof *b);
    simclr_status st = build(tr, state, b, n, n_global, c);
    if (st != SIMCLR_OK) {
        bufs_free(tr->ctx, b);
        return st;
    }
    *out = b;
    return SIMCLR_OK;
}

static simclr_status check_batch(const void *state, const char *fn, int64_t n, int64_t n_global)
{
    (void)fn;
    const struct simclr__moco *mc = state;
    if (mc->queue_size % n_global != 0)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: batch %lld does not divide the queue size %lld", FN_STEP,
                            (long long)n_global, (long long)mc->queue_size);
    if (n % mc->key_splits != 0)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: batch %lld is not a multiple of SIMCLR_MOCO_KEY_SPLITS = %d (the shuffled key "
                            "sub-batches)",
                            FN_STEP, (long long)n, mc->key_splits);
    return SIMCLR_OK;
}

/* The key permutation of a step: Fisher-Yates driven by the step's seed on
 * a stream of its own, one draw sequence per rank (identity without
 * splitting: BN over the whole batch does not depend on the order). */
static void key_order(int64_t *order, int64_t n, int splits, uint64_t seed, int rank)
{
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (splits == 1) return;
    simclr__rng rng;
    simclr__rng_init(&rng, seed, SIMCLR__STREAM_MOCO_SHUFFLE, (uint64_t)rank);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)simclr__rng_below(&rng, (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Key path: shuffled sub-batches through key_encoder + key_head, then the
 * keys back in sample order in s->keys_local. */
static simclr_status keys(simclr_trainer *tr, void *state, simclr__step *s)
{
    struct simclr__moco *mc = state;
    moco_bufs *b = s->bufs;
    const int64_t n = s->n, plane = b->c * tr->out_h * tr->out_w, p = s->p;
    key_order(b->order, n, b->splits, s->seed, s->rank);
    const float *src = simclr__f32(s->key_views);
    float *dst = simclr__f32(b->kviews);
    for (int64_t j = 0; j < n; j++) memcpy(dst + j * plane, src + b->order[j] * plane, (size_t)plane * sizeof(float));
    for (int i = 0; i < b->splits; i++) {
        SIMCLR__TRY(simclr_module_forward(mc->key_encoder, b->kin[i], SIMCLR_TRAIN, b->kf[i]));
        SIMCLR__TRY(simclr_module_forward(mc->key_head, b->kf[i], SIMCLR_TRAIN, b->kzs[i]));
    }
    const float *kz = simclr__f32(b->kz);
    for (int64_t j = 0; j < n; j++) memcpy(s->keys_local + b->order[j] * p, kz + j * p, (size_t)p * sizeof(float));
    return SIMCLR_OK;
}

static simclr_status loss(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy)
{
    (void)tr;
    struct simclr__moco *mc = state;
    moco_bufs *b = s->bufs;
    SIMCLR__TRY(simclr__infonce_forward(mc->loss, FN_STEP, simclr__f32(s->z), s->keys, s->n_global, s->p,
                                        simclr__f32(mc->queue), mc->queue_size, mc->temperature, b->kunit, value,
                                        accuracy));
    if (!isfinite(*value)) return SIMCLR_OK; /* the pipeline refuses it */
    return simclr__infonce_backward(mc->loss, simclr__f32(s->dz));
}

/* m_t: constant, or BYOL's cosine increase from m to 1 over momentum_steps. */
static double momentum_at(const struct simclr__moco *mc, int64_t step)
{
    if (mc->momentum_steps <= 0) return mc->momentum;
    if (step >= mc->momentum_steps) return 1.0;
    const double pi = 3.14159265358979323846;
    return 1.0 - (1.0 - mc->momentum) * (cos(pi * (double)step / (double)mc->momentum_steps) + 1.0) / 2.0;
}

static void commit(simclr_trainer *tr, void *state, const simclr__step *s)
{
    struct simclr__moco *mc = state;
    const moco_bufs *b = s->bufs;
    const double m = momentum_at(mc, tr->steps);
    simclr__module_momentum_apply(mc->key_encoder, tr->encoder, m);
    simclr__module_momentum_apply(mc->key_head, tr->head, m);
    /* Rows pos, pos + 1, ... modulo K: a position that is not a multiple of
     * N (set by hand, or left by batches of another size) wraps around. */
    const int64_t n = s->n_global, kq = mc->queue_size, p = s->p;
    const int64_t head_rows = kq - mc->queue_pos < n ? kq - mc->queue_pos : n;
    float *queue = simclr__f32(mc->queue);
    memcpy(queue + mc->queue_pos * p, b->kunit, (size_t)(head_rows * p) * sizeof(float));
    memcpy(queue, b->kunit + head_rows * p, (size_t)((n - head_rows) * p) * sizeof(float));
    mc->queue_pos = (mc->queue_pos + n) % kq;
    memcpy(mc->last_order, b->order, (size_t)s->n * sizeof(int64_t));
    mc->last_n = s->n;
}

static void arch(const simclr_trainer *tr, const void *state, char *buf, size_t size)
{
    const struct simclr__moco *mc = state;
    snprintf(buf, size, "; queue: %lld x %lld", (long long)mc->queue_size, (long long)tr->head->out_dim);
}

static int tensors(void *state, const char **names, simclr_tensor **out)
{
    struct simclr__moco *mc = state;
    names[0] = "queue";
    out[0] = mc->queue;
    return 1;
}

static int counters(void *state, const char **names, int64_t **values, int64_t *limits, const char **what)
{
    struct simclr__moco *mc = state;
    names[0] = "queue_pos";
    values[0] = &mc->queue_pos;
    limits[0] = mc->queue_size;
    what[0] = "queue position";
    return 1;
}

const simclr__method simclr__moco_method = {
    .version = SIMCLR__METHOD_VERSION,
    .name = "moco",
    .trained_views = 1,
    .key_views = 1,
    .refuse = NULL, /* combines with micro-batches, ranks, every BN mode and image lists */
    .destroy = simclr__moco_free,
    .check_batch = check_batch,
    .bufs_new = bufs_new,
    .bufs_free = bufs_free,
    .keys = keys,
    .loss = loss,
    .commit = commit,
    .section = "moco.",
    .arch = arch,
    .tensors = tensors,
    .counters = counters,
};
