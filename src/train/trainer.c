/* One SimCLR step: two views, encoder + head on the 2N views, NT-Xent,
 * backward, optimizer. All-or-nothing: any failure (a non-finite loss or
 * gradient, an allocation) leaves parameters, gradients, BN statistics,
 * optimizer state and the step counters exactly as they were. */
#include "trainer.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include "../model/module.h"
#include "moco.h"
#include "distributed.h"

static const char FN_STEP[] = "simclr_trainer_step";

/* Copies the gradients of encoder and head (grads = 1) or the BN running
 * statistics of every module the step runs in TRAIN mode (grads = 0: MoCo's
 * key modules too) into snap (restore = 0) or back (restore = 1), in a fixed
 * order; with snap NULL only counts. Returns the float count. */
static int64_t walk(simclr_trainer *tr, int grads, float *snap, int restore)
{
    simclr_module *mods[4] = {tr->encoder, tr->head, NULL, NULL};
    int n_mods = 2;
    if (tr->moco && !grads) mods[n_mods++] = tr->moco->key_encoder, mods[n_mods++] = tr->moco->key_head;
    int64_t off = 0;
    for (int k = 0; k < n_mods; k++)
        for (int i = 0; i < mods[k]->n_params; i++) {
            simclr__param *p = &mods[k]->params[i];
            simclr_tensor *t = grads ? p->grad : (p->flags & SIMCLR_PARAM_BUFFER) ? p->value : NULL;
            if (!t) continue;
            if (snap) {
                if (restore) memcpy(t->data, snap + off, simclr_tensor_bytes(t));
                else memcpy(snap + off, t->data, simclr_tensor_bytes(t));
            }
            off += t->numel;
        }
    return off;
}

simclr_status simclr__trainer_snapshot_alloc(simclr_trainer *tr, const char *fn)
{
    tr->snapshot_len = walk(tr, 0, NULL, 0);
    tr->grad_snapshot_len = walk(tr, 1, NULL, 0);
    tr->snapshot = simclr__calloc(tr->ctx, (size_t)(tr->snapshot_len ? tr->snapshot_len : 1), sizeof(float));
    tr->grad_snapshot =
        simclr__malloc(tr->ctx, (size_t)(tr->grad_snapshot_len ? tr->grad_snapshot_len : 1) * sizeof(float));
    if (tr->snapshot && tr->grad_snapshot) return SIMCLR_OK;
    simclr__free(tr->ctx, tr->snapshot);
    simclr__free(tr->ctx, tr->grad_snapshot);
    tr->snapshot = tr->grad_snapshot = NULL;
    return simclr__nomem(fn, (size_t)(tr->snapshot_len + tr->grad_snapshot_len) * sizeof(float));
}

void simclr__trainer_snapshot(simclr_trainer *tr, int what, int restore)
{
    if (what & SIMCLR__SNAP_BUFFERS) walk(tr, 0, tr->snapshot, restore);
    if (what & SIMCLR__SNAP_GRADS) walk(tr, 1, tr->grad_snapshot, restore);
}

/* The optimizer must update exactly the trained parameters of encoder and
 * head: a head-only optimizer would leave the encoder untrained without a
 * word, and one over a third module would step it on stale gradients. */
static simclr_status check_coverage(const char *fn, const simclr_module *encoder, const simclr_module *head,
                                    const simclr_optimizer *opt)
{
    const simclr_module *mods[2] = {encoder, head};
    static const char *const names[2] = {"encoder", "head"};
    int trained = 0;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < mods[k]->n_params; i++) {
            const simclr__param *p = &mods[k]->params[i];
            if (p->flags & SIMCLR_PARAM_BUFFER) continue;
            trained++;
            int found = 0;
            for (int q = 0; q < opt->n_slots && !found; q++) found = opt->slots[q].value == p->value;
            if (!found)
                return simclr__fail(SIMCLR_E_INVALID,
                                    "%s: the optimizer does not cover %s parameter '%s' (create it over both "
                                    "encoder and head)", fn, names[k], p->name);
        }
    if (opt->n_slots != trained)
        return simclr__fail(SIMCLR_E_INVALID,
                            "%s: the optimizer trains %d tensors, encoder and head have %d (it covers another module)",
                            fn, opt->n_slots, trained);
    return SIMCLR_OK;
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
    if (simclr__loss_n_views(loss) != 2)
        return simclr__fail(SIMCLR_E_INVALID, "%s: the loss is built for %d views, the trainer makes 2", fn,
                            simclr__loss_n_views(loss));
    SIMCLR__TRY(check_coverage(fn, encoder, head, opt));
    simclr_trainer *tr = simclr__calloc(ctx, 1, sizeof *tr);
    if (!tr) return simclr__nomem(fn, sizeof *tr);
    *tr = (simclr_trainer){.ctx = ctx, .encoder = encoder, .head = head, .aug = aug, .loss = loss, .opt = opt};
    simclr__augment_out_size(aug, &tr->out_h, &tr->out_w);
    simclr_status st = simclr__trainer_snapshot_alloc(tr, fn);
    if (st != SIMCLR_OK) {
        simclr__free(ctx, tr);
        return st;
    }
    *out = tr;
    return SIMCLR_OK;
}

/* The step buffers as one set, so a new set is built aside and swapped in
 * only when complete: a failed rebuild keeps the old set. */
typedef struct step_bufs {
    simclr_tensor *views, *view0, *view1, *feat, *dfeat, *z, *dz;
} step_bufs;

static void free_set(step_bufs *b)
{
    simclr_tensor *all[] = {b->views, b->view0, b->view1, b->feat, b->dfeat, b->z, b->dz};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) simclr_tensor_destroy(all[i]);
    memset(b, 0, sizeof *b);
}

static void free_buffers(simclr_trainer *tr)
{
    step_bufs b = {tr->views, tr->view0, tr->view1, tr->feat, tr->dfeat, tr->z, tr->dz};
    free_set(&b);
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
    simclr__free(tr->ctx, tr->grad_snapshot);
    simclr__free(tr->ctx, tr);
}

/* (Re)builds the step buffers for a batch of n images of c channels. */
static simclr_status ensure_buffers(simclr_trainer *tr, int64_t n, int64_t c)
{
    if (tr->n == n && tr->c == c) return SIMCLR_OK;
    int64_t d = tr->encoder->out_dim, p = tr->head->out_dim;
    int64_t vshape[4] = {2 * n, c, tr->out_h, tr->out_w}, hshape[4] = {n, c, tr->out_h, tr->out_w};
    int64_t fshape[2] = {2 * n, d}, zshape[2] = {2 * n, p};
    step_bufs b = {0};
    simclr_status st = simclr__tensor_f32(tr->ctx, 4, vshape, &b.views);
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, b.views->data, &b.view0);
    if (st == SIMCLR_OK)
        st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, simclr__f32(b.views) + b.views->numel / 2, &b.view1);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &b.feat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &b.dfeat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &b.z);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &b.dz);
    if (st != SIMCLR_OK) {
        free_set(&b);
        return st;
    }
    free_buffers(tr);
    tr->views = b.views, tr->view0 = b.view0, tr->view1 = b.view1;
    tr->feat = b.feat, tr->dfeat = b.dfeat, tr->z = b.z, tr->dz = b.dz;
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

simclr_status simclr__trainer_fail_step(simclr_trainer *tr, simclr_status st)
{
    tr->ctx->bn_hook = NULL;
    simclr__trainer_snapshot(tr, SIMCLR__SNAP_ALL, 1);
    /* A recovered condition: the host's log hears of it even when it only
     * checks the status now and then. */
    if (st != SIMCLR_E_CANCELLED)
        simclr__log(tr->ctx, SIMCLR_LOG_WARN, "simclr_trainer_step: step %lld rolled back (%s): %s",
                    (long long)tr->steps + 1, simclr_status_string(st), simclr_last_error());
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

    double lr, total_steps = 0;
    SIMCLR__TRY(simclr_optimizer_lr(tr->opt, &lr));
    simclr_optimizer_get(tr->opt, SIMCLR_OPT_TOTAL_STEPS, &total_steps);
    if (simclr__cancel_poll(tr->ctx, "train", tr->steps, (int64_t)total_steps))
        return simclr__cancelled(tr->ctx, FN_STEP, "step", tr->steps, (int64_t)total_steps);
    if (images) SIMCLR__TRY(simclr_augment_pair(tr->aug, images, seed, tr->view0, tr->view1));
    else SIMCLR__TRY(simclr_augment_pair_list(tr->aug, list, seed, tr->view0, tr->view1));

    simclr__trainer_snapshot(tr, SIMCLR__SNAP_ALL, 0);
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
    if (st == SIMCLR_OK && simclr__cancel_poll(tr->ctx, "train", tr->steps, (int64_t)total_steps))
        st = simclr__cancelled(tr->ctx, FN_STEP, "step", tr->steps, (int64_t)total_steps);
    if (st == SIMCLR_OK) st = simclr_optimizer_step(tr->opt);
    if (st != SIMCLR_OK) return simclr__trainer_fail_step(tr, st);

    tr->steps++;
    tr->loss_value = value;
    tr->accuracy = acc;
    tr->lr = lr;
    tr->grad_norm = simclr__optimizer_last_grad_norm(tr->opt);
    double dt = now_seconds() - t0;
    tr->images_per_sec = dt > 0 ? (double)(2 * n) / dt : 0;
    (void)simclr__progress(tr->ctx, "train", tr->steps, (int64_t)total_steps); /* the step is done: no undo */
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
