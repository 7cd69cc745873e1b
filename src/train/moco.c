/* MoCo v2's public calls: creation (a trainer whose method is
 * simclr__moco_method, src/train/moco_method.c, with the key modules as two
 * more modules of the trainer), settings and accessors. The step, rollback
 * and checkpoints are the pipeline's (pipeline.c, rollback.c,
 * checkpoint.c). */
#include "moco.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../core/rng.h"
#include "../model/module.h"
#include "distributed.h"

static const char FN_CREATE[] = "simclr_moco_trainer_create";

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
    simclr_trainer probe = {.encoder = encoder, .head = head, .opt = opt};
    simclr__trainer_add_module(&probe, encoder, "encoder.", 1);
    simclr__trainer_add_module(&probe, head, "head.", 1);
    simclr__trainer_add_module(&probe, key_encoder, "key_encoder.", 0);
    simclr__trainer_add_module(&probe, key_head, "key_head.", 0);
    SIMCLR__TRY(simclr__trainer_check_coverage(&probe, fn));

    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    struct simclr__moco *mc = tr ? simclr__calloc(ctx, 1, sizeof *mc) : NULL;
    if (!mc) {
        simclr__free(ctx, tr);
        return simclr__nomem(fn, sizeof *tr + sizeof *mc);
    }
    *tr = probe;
    tr->ctx = ctx, tr->aug = aug, tr->method = &simclr__moco_method, tr->method_state = mc;
    *mc = (struct simclr__moco){.key_encoder = key_encoder, .key_head = key_head, .queue_size = queue_size,
                                .momentum = 0.999, .temperature = 0.2, .key_splits = 8};
    simclr_status st = simclr__infonce_create(ctx, &mc->loss);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(ctx, 2, (const int64_t[]){queue_size, head->out_dim}, &mc->queue);
    if (st == SIMCLR_OK) st = simclr__trainer_finish(tr, fn);
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

void simclr__moco_free(simclr_context *ctx, void *state)
{
    struct simclr__moco *mc = state;
    simclr__free(ctx, mc->last_order);
    simclr_tensor_destroy(mc->queue);
    simclr__infonce_destroy(mc->loss);
    simclr__free(ctx, mc);
}

/* ---- settings and accessors ---- */

#define CHECK_MOCO(tr, fn)                                                                            \
    do {                                                                                              \
        SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");                                                 \
        if ((tr)->method != &simclr__moco_method)                                                     \
            return simclr__fail(SIMCLR_E_INVALID, "%s: not a MoCo trainer (made by "                  \
                                                  "simclr_trainer_create, not simclr_moco_trainer_create)", \
                                fn);                                                                  \
    } while (0)

simclr_status simclr_moco_set(simclr_trainer *tr, simclr_moco_param key, double value)
{
    static const char fn[] = "simclr_moco_set";
    CHECK_MOCO(tr, fn);
    struct simclr__moco *mc = tr->method_state;
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
        if ((int)value != mc->key_splits) simclr__ext_bufs_free(tr, &tr->ext->b); /* rebuilt for the new splits */
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
    const struct simclr__moco *mc = tr->method_state;
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
    *queue = ((struct simclr__moco *)tr->method_state)->queue;
    return SIMCLR_OK;
}

simclr_status simclr_moco_key_order(const simclr_trainer *tr, int64_t *order, int64_t n)
{
    static const char fn[] = "simclr_moco_key_order";
    CHECK_MOCO(tr, fn);
    SIMCLR__CHECK_ARG(order, fn, "order is NULL");
    const struct simclr__moco *mc = tr->method_state;
    if (mc->last_n == 0) return simclr__fail(SIMCLR_E_STATE, "%s: no step has succeeded yet", fn);
    if (n != mc->last_n)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: n = %lld, the last step had %lld images", fn, (long long)n,
                            (long long)mc->last_n);
    memcpy(order, mc->last_order, (size_t)n * sizeof *order);
    return SIMCLR_OK;
}
