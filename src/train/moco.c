/* One MoCo v2 step: query and key views, encoder + head on the queries,
 * the momentum key modules on shuffled key sub-batches (shuffling BN on one
 * process), InfoNCE against the queue, backward, optimizer, momentum update,
 * enqueue. All-or-nothing like the SimCLR step: nothing the step owns or
 * borrows changes until the optimizer has accepted the gradients, except BN
 * running statistics (of all four modules) and the gradients, which are
 * snapshotted and restored on failure (trainer.c's simclr__trainer_fail_step).
 * The stoppable progress callback is polled before the forward passes and
 * before the optimizer commits, as in the SimCLR step. */
#include "moco.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../core/rng.h"
#include "../model/module.h"

static const char FN_CREATE[] = "simclr_moco_trainer_create";
static const char FN_STEP[] = "simclr_trainer_step (moco)";

/* Every trained tensor of m must be one of opt's; none of the key modules' may be. */
static simclr_status check_optimizer(const simclr_optimizer *opt, const simclr_module *m, int want)
{
    for (int i = 0; i < m->n_params; i++) {
        const simclr__param *p = &m->params[i];
        if (p->flags & SIMCLR_PARAM_BUFFER) continue;
        int found = 0;
        for (int s = 0; s < opt->n_slots && !found; s++) found = opt->slots[s].value == p->value;
        if (found != want)
            return simclr__fail(SIMCLR_E_INVALID, want ? "%s: the optimizer does not train '%s' of '%s'"
                                                       : "%s: the optimizer trains '%s' of the key module '%s' "
                                                         "(the key path follows by momentum, not gradients)",
                                FN_CREATE, p->name, m->arch);
    }
    return SIMCLR_OK;
}

/* MoCo's queue initialization: N(0, 1) rows, L2-normalized. */
static void init_queue(simclr_tensor *queue, uint64_t seed)
{
    const int64_t k = queue->dims[0], p = queue->dims[1];
    float *q = simclr__f32(queue);
    for (int64_t r = 0; r < k; r++) {
        simclr__rng rng;
        simclr__rng_init(&rng, seed, SIMCLR__STREAM_MOCO_QUEUE, (uint64_t)r);
        double ss = 0;
        for (int64_t j = 0; j < p; j++) {
            double v = simclr__rng_normal(&rng);
            q[r * p + j] = (float)v;
            ss += v * v;
        }
        double inv = 1.0 / (sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12);
        for (int64_t j = 0; j < p; j++) q[r * p + j] = (float)(q[r * p + j] * inv);
    }
}

static void copy_module(simclr_module *dst, const simclr_module *src)
{
    for (int i = 0; i < dst->n_params; i++)
        memcpy(dst->params[i].value->data, src->params[i].value->data, simclr_tensor_bytes(src->params[i].value));
}

simclr_status simclr_moco_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                         simclr_module *key_encoder, simclr_module *key_head, simclr_augment *aug,
                                         simclr_optimizer *opt, int64_t queue_size, uint64_t seed,
                                         simclr_trainer **out)
{
    const char *fn = FN_CREATE;
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(key_encoder, fn, "key_encoder is NULL");
    SIMCLR__CHECK_ARG(key_head, fn, "key_head is NULL");
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__CHECK_ARG(opt, fn, "opt is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    simclr_module *mods[4] = {encoder, head, key_encoder, key_head};
    for (int a = 0; a < 4; a++) {
        if (mods[a]->ctx != ctx) return simclr__fail(SIMCLR_E_INVALID, "%s: module %d belongs to another context", fn, a);
        for (int b = 0; b < a; b++)
            if (mods[a] == mods[b])
                return simclr__fail(SIMCLR_E_INVALID, "%s: encoder, head, key_encoder and key_head must be four "
                                                      "distinct modules",
                                    fn);
    }
    if (opt->ctx != ctx) return simclr__fail(SIMCLR_E_INVALID, "%s: opt belongs to another context", fn);
    if (queue_size < 1 || queue_size > ((int64_t)1 << 24))
        return simclr__fail(SIMCLR_E_INVALID, "%s: queue_size %lld outside 1..16777216", fn, (long long)queue_size);
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: head takes %lld features, encoder gives %lld", fn,
                            (long long)head->in_dim, (long long)encoder->out_dim);
    SIMCLR__TRY(simclr__module_same_layout(key_encoder, encoder, fn));
    SIMCLR__TRY(simclr__module_same_layout(key_head, head, fn));
    SIMCLR__TRY(check_optimizer(opt, encoder, 1));
    SIMCLR__TRY(check_optimizer(opt, head, 1));
    SIMCLR__TRY(check_optimizer(opt, key_encoder, 0));
    SIMCLR__TRY(check_optimizer(opt, key_head, 0));

    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    struct simclr__moco *mc = tr ? simclr__calloc(ctx, 1, sizeof *mc) : NULL;
    if (!mc) {
        simclr__free(ctx, tr);
        return simclr__nomem(fn, sizeof *tr + sizeof *mc);
    }
    *tr = (simclr_trainer){.ctx = ctx, .encoder = encoder, .head = head, .aug = aug, .opt = opt, .moco = mc};
    *mc = (struct simclr__moco){.key_encoder = key_encoder, .key_head = key_head, .queue_size = queue_size,
                                .momentum = 0.999, .temperature = 0.2, .key_splits = 8};
    simclr__augment_out_size(aug, &tr->out_h, &tr->out_w);
    simclr_status st = simclr__trainer_snapshot_alloc(tr, fn);
    if (st == SIMCLR_OK) st = simclr__infonce_create(ctx, &mc->loss);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){queue_size, head->out_dim}, &mc->queue);
    if (st != SIMCLR_OK) {
        simclr_trainer_destroy(tr); /* what was made so far */
        return st;
    }
    init_queue(mc->queue, seed);
    copy_module(key_encoder, encoder);
    copy_module(key_head, head);
    *out = tr;
    return SIMCLR_OK;
}

static void free_buffers(struct simclr__moco *mc, simclr_context *ctx)
{
    simclr_tensor *all[] = {mc->views, mc->view_q, mc->view_k, mc->kviews, mc->feat, mc->dfeat,
                            mc->z,     mc->dz,     mc->kfeat,  mc->kz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) simclr_tensor_destroy(all[i]);
    mc->views = mc->view_q = mc->view_k = mc->kviews = mc->feat = mc->dfeat = mc->z = mc->dz = mc->kfeat = mc->kz =
        NULL;
    for (int s = 0; s < SIMCLR__MOCO_MAX_SPLITS; s++) {
        simclr_tensor_destroy(mc->kin[s]);
        simclr_tensor_destroy(mc->kf[s]);
        simclr_tensor_destroy(mc->kzs[s]);
        mc->kin[s] = mc->kf[s] = mc->kzs[s] = NULL;
    }
    simclr__free(ctx, mc->ksorted);
    simclr__free(ctx, mc->kunit);
    simclr__free(ctx, mc->order);
    mc->ksorted = mc->kunit = NULL;
    mc->order = NULL;
    mc->n = mc->c = 0;
    mc->splits = 0;
}

void simclr__moco_destroy(simclr_trainer *tr)
{
    struct simclr__moco *mc = tr->moco;
    if (!mc) return;
    free_buffers(mc, tr->ctx);
    simclr__free(tr->ctx, mc->last_order);
    simclr_tensor_destroy(mc->queue);
    simclr__infonce_destroy(mc->loss);
    simclr__free(tr->ctx, mc);
    tr->moco = NULL;
}

/* Grows the record of the last key order to n entries, keeping its content
 * (a step that then fails must leave simclr_moco_key_order's answer as it was). */
static simclr_status ensure_last_order(simclr_trainer *tr, int64_t n)
{
    struct simclr__moco *mc = tr->moco;
    if (mc->last_cap >= n) return SIMCLR_OK;
    int64_t *p = simclr__malloc(tr->ctx, (size_t)n * sizeof *p);
    if (!p) return simclr__nomem(FN_STEP, (size_t)n * sizeof *p);
    if (mc->last_n) memcpy(p, mc->last_order, (size_t)mc->last_n * sizeof *p);
    simclr__free(tr->ctx, mc->last_order);
    mc->last_order = p;
    mc->last_cap = n;
    return SIMCLR_OK;
}

/* (Re)builds the step buffers for n images of c channels in `splits` key
 * sub-batches. */
static simclr_status ensure_buffers(simclr_trainer *tr, int64_t n, int64_t c, int splits)
{
    struct simclr__moco *mc = tr->moco;
    SIMCLR__TRY(ensure_last_order(tr, n));
    if (mc->n == n && mc->c == c && mc->splits == splits) return SIMCLR_OK;
    free_buffers(mc, tr->ctx);
    simclr_context *ctx = tr->ctx;
    const int64_t d = tr->encoder->out_dim, p = tr->head->out_dim, h = tr->out_h, w = tr->out_w, sub = n / splits;
    const int64_t plane = c * h * w;
    simclr_status st = simclr__tensor_f32(ctx, 4, (const int64_t[]){2 * n, c, h, w}, &mc->views);
    const int64_t half[4] = {n, c, h, w};
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, half, mc->views->data, &mc->view_q);
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, half, simclr__f32(mc->views) + n * plane, &mc->view_k);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 4, half, &mc->kviews);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, d}, &mc->feat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, d}, &mc->dfeat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, p}, &mc->z);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, p}, &mc->dz);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, d}, &mc->kfeat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){n, p}, &mc->kz);
    for (int s = 0; s < splits && st == SIMCLR_OK; s++) {
        st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, (const int64_t[]){sub, c, h, w},
                                simclr__f32(mc->kviews) + s * sub * plane, &mc->kin[s]);
        if (st == SIMCLR_OK)
            st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, (const int64_t[]){sub, d}, simclr__f32(mc->kfeat) + s * sub * d,
                                    &mc->kf[s]);
        if (st == SIMCLR_OK)
            st = simclr_tensor_wrap(ctx, SIMCLR_F32, 2, (const int64_t[]){sub, p}, simclr__f32(mc->kz) + s * sub * p,
                                    &mc->kzs[s]);
    }
    if (st == SIMCLR_OK) {
        mc->ksorted = simclr__malloc(ctx, (size_t)(n * p) * sizeof(float));
        mc->kunit = simclr__malloc(ctx, (size_t)(n * p) * sizeof(float));
        mc->order = simclr__malloc(ctx, (size_t)n * sizeof(int64_t));
        if (!mc->ksorted || !mc->kunit || !mc->order)
            st = simclr__nomem(FN_STEP, (size_t)n * (2 * (size_t)p * sizeof(float) + sizeof(int64_t)));
    }
    if (st == SIMCLR_OK) st = simclr__infonce_reserve(mc->loss, n, p, mc->queue_size);
    if (st != SIMCLR_OK) {
        free_buffers(mc, ctx);
        return st;
    }
    mc->n = n;
    mc->c = c;
    mc->splits = splits;
    return SIMCLR_OK;
}

/* The key permutation of a step: Fisher-Yates driven by the step's seed on
 * a stream of its own (identity without splitting: BN over the whole batch
 * does not depend on the order). */
static void key_order(int64_t *order, int64_t n, int splits, uint64_t seed)
{
    for (int64_t i = 0; i < n; i++) order[i] = i;
    if (splits == 1) return;
    simclr__rng rng;
    simclr__rng_init(&rng, seed, SIMCLR__STREAM_MOCO_SHUFFLE, 0);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)simclr__rng_below(&rng, (uint32_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* m_t: constant, or BYOL's cosine increase from m to 1 over momentum_steps. */
static double momentum_at(const struct simclr__moco *mc, int64_t step)
{
    if (mc->momentum_steps <= 0) return mc->momentum;
    if (step >= mc->momentum_steps) return 1.0;
    const double pi = 3.14159265358979323846;
    return 1.0 - (1.0 - mc->momentum) * (cos(pi * (double)step / (double)mc->momentum_steps) + 1.0) / 2.0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Key path: shuffled sub-batches through key_encoder + key_head, then the
 * keys back in sample order in ksorted. */
static simclr_status key_forward(simclr_trainer *tr, int64_t n, uint64_t seed)
{
    struct simclr__moco *mc = tr->moco;
    const int64_t plane = mc->c * tr->out_h * tr->out_w, p = tr->head->out_dim;
    key_order(mc->order, n, mc->splits, seed);
    const float *src = simclr__f32(mc->view_k);
    float *dst = simclr__f32(mc->kviews);
    for (int64_t j = 0; j < n; j++) memcpy(dst + j * plane, src + mc->order[j] * plane, (size_t)plane * sizeof(float));
    for (int s = 0; s < mc->splits; s++) {
        SIMCLR__TRY(simclr_module_forward(mc->key_encoder, mc->kin[s], SIMCLR_TRAIN, mc->kf[s]));
        SIMCLR__TRY(simclr_module_forward(mc->key_head, mc->kf[s], SIMCLR_TRAIN, mc->kzs[s]));
    }
    const float *kz = simclr__f32(mc->kz);
    for (int64_t j = 0; j < n; j++)
        memcpy(mc->ksorted + mc->order[j] * p, kz + j * p, (size_t)p * sizeof(float));
    return SIMCLR_OK;
}

simclr_status simclr__moco_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss)
{
    struct simclr__moco *mc = tr->moco;
    int64_t want[4] = {-1, -1, -1, tr->encoder->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(images, FN_STEP, "images", SIMCLR_U8, 4, want));
    const int64_t n = images->dims[0], c = images->dims[3], kq = mc->queue_size, p = tr->head->out_dim;
    if (kq % n != 0)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: batch %lld does not divide the queue size %lld", FN_STEP,
                            (long long)n, (long long)kq);
    if (n % mc->key_splits != 0)
        return simclr__fail(SIMCLR_E_SHAPE,
                            "%s: batch %lld is not a multiple of SIMCLR_MOCO_KEY_SPLITS = %d (the shuffled key "
                            "sub-batches)",
                            FN_STEP, (long long)n, mc->key_splits);
    double t0 = now_seconds();
    SIMCLR__TRY(ensure_buffers(tr, n, c, mc->key_splits));
    double lr, total_steps = 0;
    SIMCLR__TRY(simclr_optimizer_lr(tr->opt, &lr));
    simclr_optimizer_get(tr->opt, SIMCLR_OPT_TOTAL_STEPS, &total_steps);
    const int64_t total = (int64_t)total_steps;
    if (simclr__cancel_poll(tr->ctx, "train", tr->steps, total))
        return simclr__cancelled(tr->ctx, FN_STEP, "step", tr->steps, total);
    SIMCLR__TRY(simclr_augment_pair(tr->aug, images, seed, mc->view_q, mc->view_k));

    simclr__trainer_snapshot(tr, SIMCLR__SNAP_ALL, 0);
    double value = 0, acc = 0;
    simclr_status st = simclr_module_forward(tr->encoder, mc->view_q, SIMCLR_TRAIN, mc->feat);
    if (st == SIMCLR_OK) st = simclr_module_forward(tr->head, mc->feat, SIMCLR_TRAIN, mc->z);
    if (st == SIMCLR_OK) st = key_forward(tr, n, seed);
    if (st == SIMCLR_OK)
        st = simclr__infonce_forward(mc->loss, FN_STEP, simclr__f32(mc->z), mc->ksorted, n, p, simclr__f32(mc->queue),
                                     kq, mc->temperature, mc->kunit, &value, &acc);
    if (st == SIMCLR_OK && !isfinite(value))
        st = simclr__fail(SIMCLR_E_NUMERIC, "%s: the loss is %g", FN_STEP, value);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->encoder);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->head);
    if (st == SIMCLR_OK) st = simclr__infonce_backward(mc->loss, simclr__f32(mc->dz));
    if (st == SIMCLR_OK) st = simclr_module_backward(tr->head, mc->dz, mc->dfeat);
    if (st == SIMCLR_OK) st = simclr_module_backward(tr->encoder, mc->dfeat, NULL);
    if (st == SIMCLR_OK && simclr__cancel_poll(tr->ctx, "train", tr->steps, total))
        st = simclr__cancelled(tr->ctx, FN_STEP, "step", tr->steps, total);
    if (st == SIMCLR_OK) st = simclr_optimizer_step(tr->opt);
    if (st != SIMCLR_OK) return simclr__trainer_fail_step(tr, st);

    /* Committed: nothing below can fail. */
    const double m = momentum_at(mc, tr->steps);
    simclr__module_momentum_apply(mc->key_encoder, tr->encoder, m);
    simclr__module_momentum_apply(mc->key_head, tr->head, m);
    /* Rows pos, pos + 1, ... modulo K: a position that is not a multiple of
     * N (set by hand, or left by batches of another size) wraps around. */
    const int64_t head_rows = kq - mc->queue_pos < n ? kq - mc->queue_pos : n;
    float *queue = simclr__f32(mc->queue);
    memcpy(queue + mc->queue_pos * p, mc->kunit, (size_t)(head_rows * p) * sizeof(float));
    memcpy(queue, mc->kunit + head_rows * p, (size_t)((n - head_rows) * p) * sizeof(float));
    mc->queue_pos = (mc->queue_pos + n) % kq;
    memcpy(mc->last_order, mc->order, (size_t)n * sizeof(int64_t));
    mc->last_n = n;

    tr->steps++;
    tr->loss_value = value;
    tr->accuracy = acc;
    tr->lr = lr;
    tr->grad_norm = simclr__optimizer_last_grad_norm(tr->opt);
    double dt = now_seconds() - t0;
    tr->images_per_sec = dt > 0 ? (double)(2 * n) / dt : 0;
    (void)simclr__progress(tr->ctx, "train", tr->steps, total); /* the step is done: no undo */
    if (loss) *loss = (float)value;
    return SIMCLR_OK;
}

/* ---- settings and accessors ---- */

#define CHECK_MOCO(tr, fn)                                                                            \
    do {                                                                                              \
        SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");                                                 \
        if (!(tr)->moco)                                                                              \
            return simclr__fail(SIMCLR_E_INVALID, "%s: not a MoCo trainer (made by "                  \
                                                  "simclr_trainer_create, not simclr_moco_trainer_create)", \
                                fn);                                                                  \
    } while (0)

simclr_status simclr_moco_set(simclr_trainer *tr, simclr_moco_param key, double value)
{
    static const char fn[] = "simclr_moco_set";
    CHECK_MOCO(tr, fn);
    struct simclr__moco *mc = tr->moco;
    const int whole = value == floor(value);
    switch (key) {
    case SIMCLR_MOCO_MOMENTUM:
        if (!(value >= 0.0 && value <= 1.0))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_MOMENTUM %g outside [0, 1]", fn, value);
        mc->momentum = value;
        return SIMCLR_OK;
    case SIMCLR_MOCO_MOMENTUM_STEPS:
        if (!(value >= 0.0 && value <= 9.0e15) || !whole)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_MOMENTUM_STEPS %g is not a whole number >= 0", fn,
                                value);
        mc->momentum_steps = (int64_t)value;
        return SIMCLR_OK;
    case SIMCLR_MOCO_TEMPERATURE:
        if (!(value >= 0.001 && value <= 100.0))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_TEMPERATURE %g outside [0.001, 100]", fn, value);
        mc->temperature = value;
        return SIMCLR_OK;
    case SIMCLR_MOCO_KEY_SPLITS:
        if (!(value >= 1.0 && value <= SIMCLR__MOCO_MAX_SPLITS) || !whole)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_KEY_SPLITS %g is not a whole number in 1..%d", fn,
                                value, SIMCLR__MOCO_MAX_SPLITS);
        mc->key_splits = (int)value;
        return SIMCLR_OK;
    case SIMCLR_MOCO_QUEUE_SIZE:
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_QUEUE_SIZE is read-only (fixed at creation)", fn);
    case SIMCLR_MOCO_QUEUE_POS:
        if (!(value >= 0.0 && value < (double)mc->queue_size) || !whole)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_MOCO_QUEUE_POS %g is not a whole number in 0..%lld", fn,
                                value, (long long)(mc->queue_size - 1));
        mc->queue_pos = (int64_t)value;
        return SIMCLR_OK;
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
}

simclr_status simclr_moco_get(const simclr_trainer *tr, simclr_moco_param key, double *value)
{
    static const char fn[] = "simclr_moco_get";
    CHECK_MOCO(tr, fn);
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    const struct simclr__moco *mc = tr->moco;
    switch (key) {
    case SIMCLR_MOCO_MOMENTUM: *value = mc->momentum; return SIMCLR_OK;
    case SIMCLR_MOCO_MOMENTUM_STEPS: *value = (double)mc->momentum_steps; return SIMCLR_OK;
    case SIMCLR_MOCO_TEMPERATURE: *value = mc->temperature; return SIMCLR_OK;
    case SIMCLR_MOCO_KEY_SPLITS: *value = mc->key_splits; return SIMCLR_OK;
    case SIMCLR_MOCO_QUEUE_SIZE: *value = (double)mc->queue_size; return SIMCLR_OK;
    case SIMCLR_MOCO_QUEUE_POS: *value = (double)mc->queue_pos; return SIMCLR_OK;
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
}

simclr_status simclr_moco_queue(simclr_trainer *tr, simclr_tensor **queue)
{
    static const char fn[] = "simclr_moco_queue";
    CHECK_MOCO(tr, fn);
    SIMCLR__CHECK_ARG(queue, fn, "queue is NULL");
    *queue = tr->moco->queue;
    return SIMCLR_OK;
}

simclr_status simclr_moco_key_order(const simclr_trainer *tr, int64_t *order, int64_t n)
{
    static const char fn[] = "simclr_moco_key_order";
    CHECK_MOCO(tr, fn);
    SIMCLR__CHECK_ARG(order, fn, "order is NULL");
    const struct simclr__moco *mc = tr->moco;
    if (mc->last_n == 0) return simclr__fail(SIMCLR_E_STATE, "%s: no step has succeeded yet", fn);
    if (n != mc->last_n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n = %lld, the last step had %lld images", fn, (long long)n,
                            (long long)mc->last_n);
    memcpy(order, mc->last_order, (size_t)n * sizeof *order);
    return SIMCLR_OK;
}
