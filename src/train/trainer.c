/* One SimCLR step: two views, encoder + head on the 2N views, NT-Xent,
 * backward, optimizer. All-or-nothing: a non-finite loss or gradient leaves
 * parameters, BN statistics and optimizer state exactly as they were. */
#include "trainer.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../model/module.h"
#include "moco.h"
#include "distributed.h"

static const char FN_STEP[] = "simclr_trainer_step";

/* Applies fn to every BN running-statistics buffer of both modules, in a
 * fixed order, with its offset in the snapshot. */
static int64_t walk_buffers(simclr_trainer *tr, float *snap, int restore)
{
    simclr_module *mods[2] = {tr->encoder, tr->head};
    int64_t off = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < mods[k]->n_params; i++) {
            simclr__param *p = &mods[k]->params[i];
            if (!(p->flags & SIMCLR_PARAM_BUFFER)) continue;
            size_t bytes = simclr_tensor_bytes(p->value);
            if (snap) {
                if (restore) memcpy(p->value->data, snap + off, bytes);
                else memcpy(snap + off, p->value->data, bytes);
            }
            off += p->value->numel;
        }
    return off;
}

simclr_status simclr_trainer_create(simclr_context *ctx, simclr_module *encoder, simclr_module *head,
                                    simclr_augment *aug, simclr_loss *loss, simclr_optimizer *opt,
                                    simclr_trainer **out)
{
    static const char fn[] = "simclr_trainer_create";
    SIMCLR__CHECK_ARG(ctx, fn, "ctx is NULL");
    SIMCLR__CHECK_ARG(encoder, fn, "encoder is NULL");
    SIMCLR__CHECK_ARG(head, fn, "head is NULL");
    SIMCLR__CHECK_ARG(aug, fn, "aug is NULL");
    SIMCLR__CHECK_ARG(loss, fn, "loss is NULL");
    SIMCLR__CHECK_ARG(opt, fn, "opt is NULL");
    SIMCLR__CHECK_ARG(out, fn, "out is NULL");
    if (head->in_dim != encoder->out_dim)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: head takes %lld features, encoder gives %lld", fn,
                            (long long)head->in_dim, (long long)encoder->out_dim);
    if (simclr__loss_n_views(loss) != 2)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is built for %d views, the trainer makes 2", fn,
                            simclr__loss_n_views(loss));
    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    if (!tr) return simclr__nomem(fn, sizeof *tr);
    *tr = (simclr_trainer){.ctx = ctx, .encoder = encoder, .head = head, .aug = aug, .loss = loss, .opt = opt};
    simclr__augment_out_size(aug, &tr->out_h, &tr->out_w);
    tr->snapshot_len = walk_buffers(tr, NULL, 0);
    tr->snapshot = simclr__calloc(ctx, (size_t)(tr->snapshot_len ? tr->snapshot_len : 1), sizeof(float));
    if (!tr->snapshot) {
        simclr__free(ctx, tr);
        return simclr__nomem(fn, (size_t)tr->snapshot_len * sizeof(float));
    }
    *out = tr;
    return SIMCLR_OK;
}

static void free_buffers(simclr_trainer *tr)
{
    simclr_tensor *all[] = {tr->views, tr->view0, tr->view1, tr->feat, tr->dfeat, tr->z, tr->dz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) simclr_tensor_destroy(all[i]);
    tr->views = tr->view0 = tr->view1 = tr->feat = tr->dfeat = tr->z = tr->dz = NULL;
    tr->n = tr->c = 0;
}

void simclr_trainer_destroy(simclr_trainer *tr)
{
    if (!tr) return;
    simclr__moco_destroy(tr); /* MoCo's own state (a no-op for SimCLR) */
    simclr__trainer_ext_free(tr);
    free_buffers(tr);
    simclr__free(tr->ctx, tr->snapshot);
    simclr__free(tr->ctx, tr);
}

/* (Re)builds the step buffers for a batch of n images of c channels. */
static simclr_status ensure_buffers(simclr_trainer *tr, int64_t n, int64_t c)
{
    if (tr->n == n && tr->c == c) return SIMCLR_OK;
    free_buffers(tr);
    int64_t d = tr->encoder->out_dim, p = tr->head->out_dim;
    int64_t vshape[4] = {2 * n, c, tr->out_h, tr->out_w}, hshape[4] = {n, c, tr->out_h, tr->out_w};
    int64_t fshape[2] = {2 * n, d}, zshape[2] = {2 * n, p};
    simclr_status st = simclr__tensor_f32(tr->ctx, 4, vshape, &tr->views);
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, tr->views->data, &tr->view0);
    if (st == SIMCLR_OK)
        st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, simclr__f32(tr->views) + tr->views->numel / 2,
                                &tr->view1);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &tr->feat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &tr->dfeat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &tr->z);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &tr->dz);
    if (st != SIMCLR_OK) {
        free_buffers(tr);
        return st;
    }
    tr->n = n;
    tr->c = c;
    return SIMCLR_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Undo what a failed step did to BN statistics and gradients (parameters and
 * optimizer state are untouched until the optimizer accepts the gradients). */
static simclr_status fail_step(simclr_trainer *tr, simclr_status st)
{
    walk_buffers(tr, tr->snapshot, 1);
    simclr_module_zero_grad(tr->encoder);
    simclr_module_zero_grad(tr->head);
    return st;
}

simclr_status simclr_trainer_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss)
{
    SIMCLR__CHECK_ARG(tr, FN_STEP, "trainer is NULL");
    if (tr->moco) return simclr__moco_step(tr, images, seed, loss);
    int64_t want[4] = {-1, -1, -1, tr->encoder->in_dim};
    SIMCLR__TRY(simclr__tensor_expect(images, FN_STEP, "images", SIMCLR_U8, 4, want));
    /* A communicator or micro-batches: the step of src/train/gradcache.c. */
    if (simclr__trainer_ext_active(tr)) return simclr__trainer_step_ext(tr, images, seed, loss);
    return simclr__trainer_step_from(tr, images, NULL, seed, loss);
}

/* The step from a batch tensor or (images NULL) an image list, both checked. */
simclr_status simclr__trainer_step_from(simclr_trainer *tr, const simclr_tensor *images,
                                        const simclr_image_list *list, uint64_t seed, float *loss)
{
    double t0 = now_seconds();
    int64_t n = images ? images->dims[0] : simclr_image_list_count(list);
    int64_t c = images ? images->dims[3] : simclr_image_list_channels(list);
    SIMCLR__TRY(ensure_buffers(tr, n, c));

    double lr;
    SIMCLR__TRY(simclr_optimizer_lr(tr->opt, &lr));
    if (images) SIMCLR__TRY(simclr_augment_pair(tr->aug, images, seed, tr->view0, tr->view1));
    else SIMCLR__TRY(simclr_augment_pair_list(tr->aug, list, seed, tr->view0, tr->view1));

    walk_buffers(tr, tr->snapshot, 0);
    float value = 0, acc = 0;
    simclr_status st = simclr_module_forward(tr->encoder, tr->views, SIMCLR_TRAIN, tr->feat);
    if (st == SIMCLR_OK) st = simclr_module_forward(tr->head, tr->feat, SIMCLR_TRAIN, tr->z);
    if (st == SIMCLR_OK) st = simclr_loss_forward(tr->loss, tr->z, &value, &acc);
    if (st == SIMCLR_OK && !isfinite(value))
        st = simclr__fail(SIMCLR_E_NUMERIC, "%s: the loss is %g", FN_STEP, (double)value);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->encoder);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->head);
    if (st == SIMCLR_OK) st = simclr_loss_backward(tr->loss, tr->dz);
    if (st == SIMCLR_OK) st = simclr_module_backward(tr->head, tr->dz, tr->dfeat);
    /* The encoder's input gradient is never needed: skip it (the cheapest conv pass). */
    if (st == SIMCLR_OK) st = simclr_module_backward(tr->encoder, tr->dfeat, NULL);
    if (st == SIMCLR_OK) st = simclr_optimizer_step(tr->opt);
    if (st != SIMCLR_OK) return fail_step(tr, st);

    tr->steps++;
    tr->loss_value = value;
    tr->accuracy = acc;
    tr->lr = lr;
    tr->grad_norm = simclr__optimizer_last_grad_norm(tr->opt);
    double dt = now_seconds() - t0;
    tr->images_per_sec = dt > 0 ? (double)(2 * n) / dt : 0;
    double total = 0;
    simclr_optimizer_get(tr->opt, SIMCLR_OPT_TOTAL_STEPS, &total);
    simclr__progress(tr->ctx, "train", tr->steps, (int64_t)total);
    if (loss) *loss = value;
    return SIMCLR_OK;
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
    case SIMCLR_STAT_COMM_BYTES:
    case SIMCLR_STAT_MICRO_BATCHES: return simclr__trainer_ext_stat(tr, key, value);
    default: return simclr__fail(SIMCLR_E_INVALID, "%s: unknown statistic %d", fn, (int)key);
    }
    return SIMCLR_OK;
}
