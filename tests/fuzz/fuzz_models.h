/* The models the checkpoint harnesses load into, and the seed generator
 * saves from: the same constructors on both sides, so seeds load. They are
 * small on purpose: the parsers under test do not depend on the model's
 * size, while every tensor costs a zlib stream per execution (a ResNet-18
 * has 62 of them and ran at a tenth of the speed). The v2 head has batch
 * norm buffers, num_batches_tracked included (the I64 path of safetensors). */
#ifndef SIMCLR_FUZZ_MODELS_H
#define SIMCLR_FUZZ_MODELS_H

#include <stdlib.h>

#include "fuzz_util.h"

static inline simclr_status fuzz_encoder(simclr_context *ctx, simclr_module **out)
{
    return simclr_mlp_head_create(ctx, 6, 5, 4, 2, 1, 3, out);
}

typedef struct fuzz_trainer {
    simclr_context *ctx;
    simclr_module *enc, *head;
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;
    simclr_trainer *tr;
} fuzz_trainer;

static inline void fuzz_trainer_make(fuzz_trainer *t)
{
    t->ctx = fuzz_context();
    if (fuzz_encoder(t->ctx, &t->enc) != SIMCLR_OK ||
        simclr_mlp_head_create(t->ctx, 4, 4, 3, 2, 0, 4, &t->head) != SIMCLR_OK ||
        simclr_augment_create(t->ctx, SIMCLR_AUG_PRESET_GRAYSCALE, 8, 8, &t->aug) != SIMCLR_OK ||
        simclr_ntxent_create(t->ctx, 0.5, 2, &t->loss) != SIMCLR_OK)
        abort();
    simclr_module *mods[2] = {t->enc, t->head};
    if (simclr_optimizer_create(t->ctx, SIMCLR_OPT_LARS, mods, 2, &t->opt) != SIMCLR_OK ||
        simclr_trainer_create(t->ctx, t->enc, t->head, t->aug, t->loss, t->opt, &t->tr) != SIMCLR_OK)
        abort();
}

/* FNV-1a over every tensor of the module (values and gradients). */
static inline uint64_t fuzz_module_hash(simclr_module *m)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < simclr_module_param_count(m); i++) {
        simclr_tensor *v, *g;
        if (simclr_module_param(m, i, NULL, &v, &g, NULL) != SIMCLR_OK) abort();
        simclr_tensor *both[2] = {v, g};
        for (int k = 0; k < 2; k++) {
            if (!both[k]) continue;
            const unsigned char *p = simclr_tensor_data(both[k]);
            for (size_t b = 0; b < simclr_tensor_bytes(both[k]); b++) h = (h ^ p[b]) * 1099511628211ull;
        }
    }
    return h;
}

/* The module harnesses' whole input step: `data` goes through a file into
 * `load` (a loader into the process's small encoder, made at the first
 * input); whatever the status, it must be one a loader may return, and a
 * failure must leave the module's bytes as they were. */
static inline void fuzz_load_into_module(simclr_status (*load)(simclr_module *, const char *), const char *tag,
                                         const uint8_t *data, size_t size)
{
    static simclr_module *m;
    if (!m) FUZZ_OK(fuzz_encoder(fuzz_context(), &m));
    const char *path = fuzz_path(tag);
    fuzz_write(path, data, size);
    uint64_t before = fuzz_module_hash(m);
    simclr_status st = load(m, path);
    fuzz_expect_load_status(st);
    if (st != SIMCLR_OK && fuzz_module_hash(m) != before) {
        fprintf(stderr, "a failed %s load changed the module: %s\n", tag, simclr_last_error());
        abort();
    }
}

#endif
