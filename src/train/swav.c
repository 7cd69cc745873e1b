/* SwAV's public calls: the prototypes module (a bias-free linear layer
 * whose rows are the prototypes), creation of a trainer whose method is
 * simclr__swav_method (src/train/method_swav.c) with the prototypes as a
 * third trained module, settings. The step, rollback and checkpoints are
 * the pipeline's (pipeline.c, rollback.c, checkpoint.c). */
#include "swav.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../backend/backend.h"
#include "../core/rng.h"
#include "../model/module.h"
#include "distributed.h"

/* ---- the prototypes module: y [N, K] = x [N, P] W^T, W = "weight" [K, P] ---- */

typedef struct protos {
    float *x; /* the last TRAIN forward's input [n, P] */
    int64_t n, cap;
} protos;

static simclr_status protos_forward(simclr_module *m, const simclr_tensor *x, simclr_mode mode, simclr_tensor *y)
{
    protos *pr = m->impl;
    const int64_t p = m->in_dim, k = m->out_dim;
    char buf[64];
    if (x->ndim != 2 || x->dims[1] != p || x->dims[0] < 1)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: input must be [N, %lld], got %s", m->arch, (long long)p,
                            simclr__shape_str(x, buf, sizeof buf));
    const int64_t n = x->dims[0];
    if (y->ndim != 2 || y->dims[0] != n || y->dims[1] != k)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: output must be [%lld, %lld], got %s", m->arch, (long long)n,
                            (long long)k, simclr__shape_str(y, buf, sizeof buf));
    m->has_train_forward = 0; /* until this forward succeeds */
    if (mode == SIMCLR_TRAIN && n > pr->cap) {
        float *keep = simclr__malloc(m->ctx, (size_t)(n * p) * sizeof(float));
        if (!keep) return simclr__nomem(m->arch, (size_t)(n * p) * sizeof(float));
        simclr__free(m->ctx, pr->x);
        pr->x = keep, pr->cap = n;
    }
    const float *w = simclr__f32(m->params[0].value);
    m->ctx->backend->gemm(m->ctx, 0, 1, n, k, p, 1.0f, simclr__f32(x), p, w, p, 0.0f, simclr__f32(y), k);
    if (mode == SIMCLR_TRAIN) {
        memcpy(pr->x, simclr__f32(x), (size_t)(n * p) * sizeof(float));
        pr->n = n;
    }
    m->has_train_forward = mode == SIMCLR_TRAIN;
    return SIMCLR_OK;
}

static simclr_status protos_backward(simclr_module *m, const simclr_tensor *dy, simclr_tensor *dx)
{
    protos *pr = m->impl;
    const int64_t p = m->in_dim, k = m->out_dim, n = pr->n;
    char buf[64];
    if (dy->ndim != 2 || dy->dims[0] != n || dy->dims[1] != k)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: dy must be [%lld, %lld], got %s", m->arch, (long long)n, (long long)k,
                            simclr__shape_str(dy, buf, sizeof buf));
    if (dx && (dx->ndim != 2 || dx->dims[0] != n || dx->dims[1] != p))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: dx must be [%lld, %lld], got %s", m->arch, (long long)n, (long long)p,
                            simclr__shape_str(dx, buf, sizeof buf));
    const simclr__backend *be = m->ctx->backend;
    const float *w = simclr__f32(m->params[0].value);
    be->gemm(m->ctx, 1, 0, k, p, n, 1.0f, simclr__f32(dy), k, pr->x, p, 1.0f, simclr__f32(m->params[0].grad), p);
    if (dx) be->gemm(m->ctx, 0, 0, n, p, k, 1.0f, simclr__f32(dy), k, w, p, 0.0f, simclr__f32(dx), p);
    return SIMCLR_OK;
}

static void protos_destroy(simclr_module *m)
{
    protos *pr = m->impl;
    if (!pr) return;
    simclr__free(m->ctx, pr->x);
    simclr__free(m->ctx, pr);
}

static const simclr__module_ops protos_ops = {"swav_prototypes", protos_forward, protos_backward, protos_destroy};

int simclr__is_swav_prototypes(const simclr_module *m) { return m->ops == &protos_ops; }

void simclr__swav_normalize_rows(float *w, int64_t k, int64_t d)
{
    for (int64_t r = 0; r < k; r++) {
        double ss = 0;
        for (int64_t j = 0; j < d; j++) ss += (double)w[r * d + j] * w[r * d + j];
        const double norm = sqrt(ss);
        const double inv = 1.0 / (norm > 1e-12 ? norm : 1e-12); /* F.normalize */
        for (int64_t j = 0; j < d; j++) w[r * d + j] = (float)(w[r * d + j] * inv);
    }
}

simclr_status simclr_swav_prototypes_create(simclr_context *ctx, int64_t dim, int64_t k, uint64_t seed,
                                            simclr_module **out)
{
    static const char fn[] = "simclr_swav_prototypes_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (dim < 1 || dim > (1 << 20))
        return simclr__fail(SIMCLR_E_INVALID, "%s: dim %lld outside 1..1048576", fn, (long long)dim);
    if (k < 1 || k > (1 << 20))
        return simclr__fail(SIMCLR_E_INVALID, "%s: k %lld outside 1..1048576", fn, (long long)k);
    char arch[128];
    snprintf(arch, sizeof arch, "swav_prototypes dim=%lld k=%lld", (long long)dim, (long long)k);
    simclr_module *m;
    SIMCLR__TRY(simclr__module_new(ctx, &protos_ops, arch, &m));
    m->impl = simclr__calloc(ctx, 1, sizeof(protos));
    if (!m->impl) {
        simclr_module_destroy(m);
        return simclr__nomem(fn, sizeof(protos));
    }
    m->in_dim = dim, m->out_dim = k;
    simclr_tensor *w;
    simclr_status st = simclr__module_new_param(m, "weight", 2, (const int64_t[]){k, dim}, 0, &w);
    if (st != SIMCLR_OK) {
        simclr_module_destroy(m);
        return st;
    }
    simclr__module_finalize(m);
    /* torch.nn.Linear(dim, k, bias=False)'s uniform +-1/sqrt(dim), then unit rows. */
    simclr__rng r;
    simclr__rng_init(&r, seed, SIMCLR__STREAM_INIT, 0);
    const double bound = 1.0 / sqrt((double)dim);
    float *wd = simclr__f32(w);
    for (int64_t i = 0; i < w->numel; i++) wd[i] = (float)simclr__rng_range(&r, -bound, bound);
    simclr__swav_normalize_rows(wd, k, dim);
    *out = m;
    return SIMCLR_OK;
}

/* ---- the trainer ---- */

simclr_tensor *simclr__swav_weight(const struct simclr__swav *sw, simclr_tensor **grad)
{
    if (grad) *grad = sw->prototypes->params[0].grad;
    return sw->prototypes->params[0].value;
}

void simclr__swav_free(simclr_context *ctx, void *state) { simclr__free(ctx, state); }

simclr_status simclr_swav_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                         simclr_module *prototypes, simclr_augment *aug, simclr_optimizer *opt,
                                         simclr_trainer **out)
{
    static const char fn[] = "simclr_swav_trainer_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(prototypes, fn, "prototypes is NULL");
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__CHECK_ARG(opt, fn, "opt is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    simclr_module *mods[3] = {encoder, head, prototypes};
    for (int a = 0; a < 3; a++) {
        if (mods[a]->ctx != ctx) return simclr__fail(SIMCLR_E_INVALID, "%s: module %d belongs to another context", fn, a);
        for (int b = 0; b < a; b++)
            if (mods[a] == mods[b])
                return simclr__fail(SIMCLR_E_INVALID, "%s: encoder, head and prototypes must be three distinct modules",
                                    fn);
    }
    if (simclr__augment_ctx(aug) != ctx || opt->ctx != ctx)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s was made from another context", fn,
                            opt->ctx != ctx ? "the optimizer" : "the augmentation policy");
    if (!simclr__is_swav_prototypes(prototypes))
        return simclr__fail(SIMCLR_E_INVALID, "%s: prototypes is a %s module, not one of simclr_swav_prototypes_create",
                            fn, prototypes->ops->kind);
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: head takes %lld features, encoder gives %lld", fn,
                            (long long)head->in_dim, (long long)encoder->out_dim);
    if (prototypes->in_dim != head->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the prototypes have %lld dimensions, the head gives %lld", fn,
                            (long long)prototypes->in_dim, (long long)head->out_dim);
    simclr_trainer probe = {.encoder = encoder, .head = head, .opt = opt};
    simclr__trainer_add_module(&probe, encoder, "encoder.", 1);
    simclr__trainer_add_module(&probe, head, "head.", 1);
    simclr__trainer_add_module(&probe, prototypes, "prototypes.", 1);
    SIMCLR__TRY(simclr__trainer_check_coverage(&probe, fn));

    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    struct simclr__swav *sw = tr ? simclr__calloc(ctx, 1, sizeof *sw) : NULL;
    if (!sw) {
        simclr__free(ctx, tr);
        return simclr__nomem(fn, sizeof *tr + sizeof *sw);
    }
    *tr = probe;
    tr->ctx = ctx, tr->aug = aug, tr->method = &simclr__swav_method, tr->method_state = sw;
    *sw = (struct simclr__swav){.prototypes = prototypes, .k = prototypes->out_dim, .temperature = 0.1,
                                .epsilon = 0.05, .iters = 3, .freeze_steps = 313};
    simclr_status st = simclr__trainer_finish(tr, fn);
    if (st != SIMCLR_OK) {
        simclr_trainer_destroy(tr); /* what was made so far */
        return st;
    }
    simclr_tensor *w = simclr__swav_weight(sw, NULL);
    simclr__swav_normalize_rows(simclr__f32(w), w->dims[0], w->dims[1]);
    *out = tr;
    return SIMCLR_OK;
}

/* ---- settings ---- */

#define CHECK_SWAV(tr, fn)                                                                                  \
    do {                                                                                                    \
        SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");                                                       \
        if ((tr)->method != &simclr__swav_method)                                                           \
            return simclr__fail(SIMCLR_E_INVALID, "%s: not a SwAV trainer (a %s trainer, not made by "      \
                                                  "simclr_swav_trainer_create)",                            \
                                fn, (tr)->method->name);                                                    \
    } while (0)

simclr_status simclr_swav_set(simclr_trainer *tr, simclr_swav_param key, double value)
{
    static const char fn[] = "simclr_swav_set";
    CHECK_SWAV(tr, fn);
    struct simclr__swav *sw = tr->method_state;
    const int whole = value == floor(value);
    switch (key) {
    case SIMCLR_SWAV_TEMPERATURE:
        if (!(value >= 0.001 && value <= 100.0))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_SWAV_TEMPERATURE %g outside [0.001, 100]", fn, value);
        sw->temperature = value;
        return SIMCLR_OK;
    case SIMCLR_SWAV_EPSILON:
        if (!(value >= 0.01 && value <= 100.0))
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_SWAV_EPSILON %g outside [0.01, 100]", fn, value);
        sw->epsilon = value;
        return SIMCLR_OK;
    case SIMCLR_SWAV_SINKHORN_ITERATIONS:
        if (!(value >= 1.0 && value <= 1000.0) || !whole)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_SWAV_SINKHORN_ITERATIONS %g is not a whole number in 1..1000",
                                fn, value);
        sw->iters = (int)value;
        return SIMCLR_OK;
    case SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS:
        if (!(value >= 0.0 && value <= 9.0e15) || !whole)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS %g is not a whole number >= 0",
                                fn, value);
        sw->freeze_steps = (int64_t)value;
        return SIMCLR_OK;
    case SIMCLR_SWAV_PROTOTYPES:
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_SWAV_PROTOTYPES is read-only (the prototypes module's K)",
                            fn);
    case SIMCLR_SWAV_QUEUE_LENGTH:
        if (value == 0) return SIMCLR_OK;
        return simclr__fail(SIMCLR_E_UNSUPPORTED,
                            "%s: SIMCLR_SWAV_QUEUE_LENGTH %g: the feature queue of small batches is not implemented "
                            "yet (only 0, no queue)", fn, value);
    case SIMCLR_SWAV_CODE_VIEWS:
        if (value == 2) return SIMCLR_OK;
        return simclr__fail(SIMCLR_E_UNSUPPORTED,
                            "%s: SIMCLR_SWAV_CODE_VIEWS %g: codes come from both views of the pair (multi-crop with "
                            "views that give no codes is not implemented yet: only 2)", fn, value);
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
}

simclr_status simclr_swav_get(const simclr_trainer *tr, simclr_swav_param key, double *value)
{
    static const char fn[] = "simclr_swav_get";
    CHECK_SWAV(tr, fn);
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    const struct simclr__swav *sw = tr->method_state;
    switch (key) {
    case SIMCLR_SWAV_TEMPERATURE: *value = sw->temperature; return SIMCLR_OK;
    case SIMCLR_SWAV_EPSILON: *value = sw->epsilon; return SIMCLR_OK;
    case SIMCLR_SWAV_SINKHORN_ITERATIONS: *value = sw->iters; return SIMCLR_OK;
    case SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS: *value = (double)sw->freeze_steps; return SIMCLR_OK;
    case SIMCLR_SWAV_PROTOTYPES: *value = (double)sw->k; return SIMCLR_OK;
    case SIMCLR_SWAV_QUEUE_LENGTH: *value = 0; return SIMCLR_OK;
    case SIMCLR_SWAV_CODE_VIEWS: *value = 2; return SIMCLR_OK;
    }
    return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
}
