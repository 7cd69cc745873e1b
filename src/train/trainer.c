/* The trainer object: creation (SimCLR's here, MoCo's in moco.c, both
 * through simclr__trainer_finish), destruction, the two public step entry
 * points into the one pipeline (pipeline.c) and the statistics. All-or-
 * nothing: any failed step leaves parameters, gradients, BN statistics,
 * optimizer state, the method's state and the step counters as they were. */
#include "trainer.h"

#include <string.h>

#include "../core/image_list.h"
#include "../model/module.h"
#include "distributed.h"

static const char FN_STEP[] = "simclr_trainer_step";

void simclr__trainer_add_module(simclr_trainer *tr, simclr_module *m, const char *prefix, int trained)
{
    tr->mods[tr->n_mods++] = (simclr__tmodule){m, prefix, trained};
}

simclr_status simclr__trainer_check_coverage(const simclr_trainer *tr, const char *fn)
{
    const simclr_optimizer *opt = tr->opt;
    int trained = 0;
    for (int k = 0; k < tr->n_mods; k++) {
        const simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params; i++) {
            const simclr__param *p = &m->params[i];
            if (p->flags & SIMCLR_PARAM_BUFFER) continue;
            int found = 0;
            for (int q = 0; q < opt->n_slots && !found; q++) found = opt->slots[q].value == p->value;
            trained += tr->mods[k].trained;
            if (found == tr->mods[k].trained) continue;
            /* The trainer's name for the module: its prefix without the dot. */
            int len = (int)strlen(tr->mods[k].prefix) - 1;
            if (tr->mods[k].trained)
                return simclr__fail(SIMCLR_E_INVALID,
                                    "%s: the optimizer does not cover %.*s parameter '%s' (create it over the "
                                    "trained modules)", fn, len, tr->mods[k].prefix, p->name);
            return simclr__fail(SIMCLR_E_INVALID,
                                "%s: the optimizer trains '%s' of the key module %.*s (the key path follows by "
                                "momentum, not gradients)", fn, p->name, len, tr->mods[k].prefix);
        }
    }
    if (opt->n_slots != trained)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the optimizer trains %d tensors, the trained modules have %d (it "
                                              "covers another module)", fn, opt->n_slots, trained);
    return SIMCLR_OK;
}

simclr_status simclr__trainer_refuse(const simclr_trainer *tr, const char *fn, unsigned with)
{
    const char *why = tr->method->refuse ? tr->method->refuse(tr->method_state, with) : NULL;
    if (!why) return SIMCLR_OK;
    return simclr__fail(SIMCLR_E_UNSUPPORTED, "%s: a %s trainer %s", fn, tr->method->name, why);
}

simclr_status simclr__trainer_finish(simclr_trainer *tr, const char *fn)
{
    simclr__augment_out_size(tr->aug, &tr->out_h, &tr->out_w);
    SIMCLR__TRY(simclr__trainer_ext_new(tr, fn));
    return simclr__trainer_snapshot_alloc(tr, fn);
}

/* The checks every trainer constructor makes of its borrowed pieces: none
 * NULL, encoder and head distinct, all of ctx, head fed by the encoder. */
simclr_status simclr__trainer_check_pieces(const char *fn, simclr_context *ctx, const simclr_module *encoder,
                                           const simclr_module *head, const simclr_augment *aug,
                                           const simclr_loss *loss, const simclr_optimizer *opt,
                                           simclr_trainer **out)
{
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(opt, fn, "opt is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (encoder == head) return simclr__fail(SIMCLR_E_INVALID, "%s: encoder and head are the same module", fn);
    if (encoder->ctx != ctx || head->ctx != ctx || simclr__augment_ctx(aug) != ctx || simclr__loss_ctx(loss) != ctx ||
        opt->ctx != ctx)
        return simclr__fail(SIMCLR_E_INVALID, "%s: %s was made from another context", fn,
                            encoder->ctx != ctx ? "the encoder" : head->ctx != ctx ? "the head"
                            : simclr__augment_ctx(aug) != ctx ? "the augmentation policy"
                            : simclr__loss_ctx(loss) != ctx ? "the loss" : "the optimizer");
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: head takes %lld features, encoder gives %lld", fn,
                            (long long)head->in_dim, (long long)encoder->out_dim);
    return SIMCLR_OK;
}

simclr_status simclr_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                    simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt,
                                    simclr_trainer **out)
{
    static const char fn[] = "simclr_trainer_create";
    SIMCLR__TRY(simclr__trainer_check_pieces(fn, ctx, encoder, head, aug, loss, opt, out));
    if (simclr__loss_n_views(loss) != 2)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is built for %d views, the trainer makes 2", fn,
                            simclr__loss_n_views(loss));
    simclr_trainer probe = {.encoder = encoder, .head = head, .opt = opt};
    simclr__trainer_add_module(&probe, encoder, "encoder.", 1);
    simclr__trainer_add_module(&probe, head, "head.", 1);
    SIMCLR__TRY(simclr__trainer_check_coverage(&probe, fn));
    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    if (!tr) return simclr__nomem(fn, sizeof *tr);
    *tr = probe;
    tr->ctx = ctx, tr->aug = aug, tr->loss = loss, tr->method = &simclr__simclr_method;
    simclr_status st = simclr__trainer_finish(tr, fn);
    if (st != SIMCLR_OK) {
        simclr_trainer_destroy(tr);
        return st;
    }
    *out = tr;
    return SIMCLR_OK;
}

void simclr_trainer_destroy(simclr_trainer *tr)
{
    if (!tr) return;
    simclr__trainer_ext_free(tr); /* the step buffers, the method's scratch among them */
    if (tr->method_state && tr->method->destroy) tr->method->destroy(tr->ctx, tr->method_state);
    simclr__free(tr->ctx, tr->snapshot);
    simclr__free(tr->ctx, tr->grad_snapshot);
    simclr__free(tr->ctx, tr);
}

simclr_status simclr_trainer_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss)
{
    SIMCLR__CHECK_ARG(tr, FN_STEP, "trainer is NULL");
    int64_t want[4] = {-1, -1, -1, tr->encoder->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(images, FN_STEP, "images", SIMCLR_U8, 4, want));
    return simclr__pipeline_step(tr, images, NULL, seed, loss);
}

simclr_status simclr_trainer_step_list(simclr_trainer *tr, const simclr_image_list *images, uint64_t seed,
                                       float *loss)
{
    static const char fn[] = "simclr_trainer_step_list";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(images, fn, "images is NULL");
    if (images->count < 1) return simclr__fail(SIMCLR_E_INVALID, "%s: the image list is empty", fn);
    if (images->channels != tr->encoder->in_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: the images have %d channels, the encoder takes %lld", fn,
                            images->channels, (long long)tr->encoder->in_dim);
    SIMCLR__TRY(simclr__trainer_refuse(tr, fn, SIMCLR__WITH_LIST | simclr__trainer_ext_with(tr)));
    return simclr__pipeline_step(tr, NULL, images, seed, loss);
}

simclr_status simclr_trainer_stat(const simclr_trainer *tr, simclr_stat key, double *value)
{
    static const char fn[] = "simclr_trainer_stat";
    SIMCLR__CHECK_ARG(tr, fn, "trainer is NULL");
    SIMCLR__CHECK_ARG(value, fn, "value is NULL");
    switch (key) {
    case SIMCLR_STAT_LOSS: *value = tr->loss_value; break;
    case SIMCLR_STAT_ACCURACY: *value = tr->accuracy; break;
    case SIMCLR_STAT_LR: *value = tr->lr; break;
    case SIMCLR_STAT_GRAD_NORM: *value = tr->grad_norm; break;
    case SIMCLR_STAT_IMAGES_PER_SEC: *value = tr->images_per_sec; break;
    case SIMCLR_STAT_STEP: *value = (double)tr->steps; break;
    case SIMCLR_STAT_COMM_BYTES: *value = (double)tr->ext->last_bytes; break;
    case SIMCLR_STAT_MICRO_BATCHES: *value = tr->last_micro ? (double)tr->last_micro : (tr->steps ? 1.0 : 0.0); break;
    default: return simclr__fail(SIMCLR_E_INVALID, "%s: unknown statistic %d", fn, (int)key);
    }
    return SIMCLR_OK;
}
