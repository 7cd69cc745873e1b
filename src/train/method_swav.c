/* SwAV as a method of the pipeline (src/train/method.h): both views are
 * trained; the loss (src/loss/swav_loss.c) takes the global embeddings and
 * the prototypes, computes the codes of every view by Sinkhorn-Knopp over
 * the global batch (without gradient) and the swapped prediction loss; its
 * gradient goes to the embeddings (through the normalization) and, after
 * the first SIMCLR_SWAV_FREEZE_PROTOTYPES_STEPS steps, into the prototypes'
 * gradient; after commit the prototypes are L2-normalized again.
 *
 * On ranks every rank gathers every rank's embeddings (the pipeline), so
 * the Sinkhorn sums over the global batch, which the official code gets
 * from all_reduce, are plain sums here: every rank computes the same codes
 * and the same loss. The pipeline then sums the prototypes' gradient over
 * ranks with the others, so each rank writes 1/ranks of it. The loss is a
 * function of the embeddings and the prototypes only, so gradient caching
 * (micro-batches) is exact; BN modes and image lists change nothing here:
 * SwAV combines with everything the pipeline offers. */
#include <stdio.h>

#include "../model/module.h"
#include "swav.h"

static const char FN_STEP[] = "simclr_trainer_step (swav)";

static simclr_status bufs_new(simclr_trainer *tr, void *state, int64_t n, int64_t n_global, int64_t c, void **out)
{
    (void)n, (void)c;
    const struct simclr__swav *sw = state;
    simclr__swav_scratch *s = simclr__calloc(tr->ctx, 1, sizeof *s);
    if (!s) return simclr__nomem(FN_STEP, sizeof *s);
    simclr_status st = simclr__swav_scratch_new(tr->ctx, FN_STEP, 2, n_global, tr->head->out_dim, sw->k, s);
    if (st != SIMCLR_OK) {
        simclr__free(tr->ctx, s);
        return st;
    }
    *out = s;
    return SIMCLR_OK;
}

static void bufs_free(simclr_context *ctx, void *p)
{
    simclr__swav_scratch_free(ctx, p);
    simclr__free(ctx, p);
}

static simclr_status loss(simclr_trainer *tr, void *state, simclr__step *s, double *value, double *accuracy)
{
    const struct simclr__swav *sw = state;
    simclr_tensor *grad;
    const simclr_tensor *w = simclr__swav_weight(sw, &grad);
    const simclr__swav_params p = {sw->temperature, sw->epsilon, sw->iters};
    /* Frozen prototypes: their gradient stays zero (the pipeline zeroed it). */
    float *dc = tr->steps < sw->freeze_steps ? NULL : simclr__f32(grad);
    return simclr__swav_loss(tr->ctx, FN_STEP, &p, 2, s->n_global, s->p, sw->k, simclr__f32(s->z), simclr__f32(w),
                             s->bufs, value, accuracy, simclr__f32(s->dz), dc, (float)(1.0 / s->ranks));
}

static void commit(simclr_trainer *tr, void *state, const simclr__step *s)
{
    (void)tr, (void)s;
    const struct simclr__swav *sw = state;
    simclr_tensor *w = simclr__swav_weight(sw, NULL);
    simclr__swav_normalize_rows(simclr__f32(w), w->dims[0], w->dims[1]);
}

static void arch(const simclr_trainer *tr, const void *state, char *buf, size_t size)
{
    const struct simclr__swav *sw = state;
    snprintf(buf, size, "; prototypes: %lld x %lld", (long long)sw->k, (long long)tr->head->out_dim);
}

const simclr__method simclr__swav_method = {
    .version = SIMCLR__METHOD_VERSION,
    .name = "swav",
    .trained_views = 2,
    .key_views = 0,
    .refuse = NULL, /* combines with micro-batches, ranks, every BN mode and image lists */
    .destroy = simclr__swav_free,
    .bufs_new = bufs_new,
    .bufs_free = bufs_free,
    .loss = loss,
    .commit = commit,
    .arch = arch, /* the prototypes are the trainer's module "prototypes.": saved with the modules */
};
