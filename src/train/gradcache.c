/* The trainer step with a communicator and/or micro-batches (gradient
 * caching, Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size
 * under Memory Limited Setup").
 *
 * Rank r holds pairs r*n .. r*n+n-1 of a global batch of N = P*n pairs,
 * processed as n/k micro-batches of k pairs:
 *  1. For each micro-batch: augment (draws keyed by the global pair index),
 *     encoder + head forward, keep only the embeddings z. The activation
 *     arena holds one micro-batch and is overwritten by the next.
 *  2. All-gather z from every rank into the global [2N, P] in the layout one
 *     process would have (row g + v*N is view v of global pair g); NT-Xent
 *     forward and backward on it, the same on every rank: dz of the global
 *     loss for every row, of which this rank keeps its own.
 *  3. For each micro-batch again (with more than one): augment again (the
 *     same views, same keys), forward with activations, head and encoder
 *     backward of its slice of dz; parameter gradients accumulate. With a
 *     single micro-batch step 1's activations are still there: no re-run.
 *  4. Sum the gradients over ranks (buckets), optimizer step, the same on
 *     every rank.
 * Step 1 updates BN running statistics; they are restored before step 3,
 * which updates them once per micro-batch. Any failure restores them and the
 * caller's gradients (simclr__trainer_fail_step), leaving parameters and
 * optimizer state untouched. The stoppable progress callback is polled
 * before step 1 and before the optimizer commits, as in the plain step; with
 * several ranks a stop rides on the shape check and on the gradient sum, so
 * that every rank stops at the same point instead of leaving the others
 * waiting in a collective. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../model/module.h"
#include "distributed.h"

static const char FN[] = "simclr_trainer_step";

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The widest batch norm of either module (channels of its running_mean). */
static int64_t widest_bn(const simclr_trainer *tr)
{
    const simclr_module *mods[2] = {tr->encoder, tr->head};
    int64_t c = 1;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < mods[k]->n_params; i++) {
            const simclr__param *p = &mods[k]->params[i];
            size_t len = strlen(p->name);
            if (len >= 13 && strcmp(p->name + len - 13, ".running_mean") == 0 && p->value->numel > c)
                c = p->value->numel;
        }
    return c;
}

/* A set of step buffers and the shape it serves. */
typedef struct buffer_set {
    simclr__ext_bufs b;
    int64_t n, c, k, ranks, bn_cap;
} buffer_set;

/* Exchanges the trainer's set with *s. */
static void swap_sets(struct simclr__trainer_ext *e, buffer_set *s)
{
    buffer_set cur = {e->b, e->n, e->c, e->k, e->ranks, e->bn_cap};
    e->b = s->b, e->n = s->n, e->c = s->c, e->k = s->k, e->ranks = s->ranks, e->bn_cap = s->bn_cap;
    *s = cur;
}

/* (Re)builds the step buffers for n pairs of c channels in micro-batches of
 * k. The new set is built aside; when complete it replaces the trainer's,
 * whose old set goes to *prev (*rebuilt = 1) for the caller to free after a
 * successful step or to put back after a failed one: a failed step holds no
 * more memory than before. */
static simclr_status ensure_buffers(simclr_trainer *tr, int64_t n, int64_t c, int64_t k, buffer_set *prev,
                                    int *rebuilt)
{
    struct simclr__trainer_ext *e = tr->ext;
    const int64_t ranks = e->comm.size;
    *rebuilt = 0;
    if (e->b.views && e->n == n && e->c == c && e->k == k && e->ranks == ranks) return SIMCLR_OK;
    const int64_t d = tr->encoder->out_dim, p = tr->head->out_dim, bn = widest_bn(tr);
    int64_t vshape[4] = {2 * k, c, tr->out_h, tr->out_w}, hshape[4] = {k, c, tr->out_h, tr->out_w};
    int64_t fshape[2] = {2 * k, d}, zshape[2] = {2 * k, p}, gshape[2] = {2 * n * ranks, p};
    simclr__ext_bufs b = {0};
    simclr_status st = simclr__tensor_f32(tr->ctx, 4, vshape, &b.views);
    if (st == SIMCLR_OK) st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, b.views->data, &b.view0);
    if (st == SIMCLR_OK)
        st = simclr_tensor_wrap(tr->ctx, SIMCLR_F32, 4, hshape, simclr__f32(b.views) + b.views->numel / 2, &b.view1);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &b.feat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, fshape, &b.dfeat);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &b.z);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, zshape, &b.dz);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, gshape, &b.zg);
    if (st == SIMCLR_OK) st = simclr__tensor_f32(tr->ctx, 2, gshape, &b.dzg);
    size_t zl = (size_t)(2 * n * p), bnf = (size_t)(2 * bn);
    if (st == SIMCLR_OK && !(b.zl = simclr__malloc(tr->ctx, zl * sizeof(float)))) st = simclr__nomem(FN, zl * 4);
    if (st == SIMCLR_OK && !(b.gathered = simclr__malloc(tr->ctx, zl * (size_t)ranks * sizeof(float))))
        st = simclr__nomem(FN, zl * (size_t)ranks * 4);
    if (st == SIMCLR_OK && !(b.bn_send = simclr__malloc(tr->ctx, bnf * sizeof(float)))) st = simclr__nomem(FN, bnf * 4);
    if (st == SIMCLR_OK && !(b.bn_recv = simclr__malloc(tr->ctx, bnf * (size_t)ranks * sizeof(float))))
        st = simclr__nomem(FN, bnf * (size_t)ranks * 4);
    /* Grow the loss's scratch now, so the step fails before any mutation. */
    if (st == SIMCLR_OK) st = simclr__loss_reserve(tr->loss, 2 * n * ranks, p);
    if (st != SIMCLR_OK) {
        simclr__ext_bufs_free(tr->ctx, &b);
        return st;
    }
    *prev = (buffer_set){b, n, c, k, ranks, bn};
    swap_sets(e, prev);
    *rebuilt = 1;
    return SIMCLR_OK;
}

/* Every rank must bring a shard of the same shape (the batch-norm hook and
 * the gather rely on it); all ranks reach the same verdict. *stop: in, this
 * rank's progress callback asked to stop; out, some rank's did. */
static simclr_status agree_on_shapes(simclr_trainer *tr, const simclr_tensor *images, int64_t k, int *stop)
{
    struct simclr__trainer_ext *e = tr->ext;
    if (e->comm.size == 1) return SIMCLR_OK;
    enum { W = 6 }; /* the shape, the micro-batch, the stop */
    float mine[W] = {(float)images->dims[0], (float)images->dims[1], (float)images->dims[2], (float)images->dims[3],
                     (float)k, (float)*stop};
    size_t bytes = (size_t)e->comm.size * sizeof mine;
    float *all = simclr__malloc(tr->ctx, bytes);
    if (!all) return simclr__nomem(FN, bytes);
    simclr_status st = simclr__comm_all_gather(&e->comm, FN, mine, W, all);
    for (int r = 0; r < e->comm.size && st == SIMCLR_OK; r++) {
        const float *o = all + W * r;
        if (o[5] != 0) *stop = 1;
        if (memcmp(o, all, (W - 1) * sizeof(float)) != 0)
            st = simclr__fail(SIMCLR_E_SHAPE,
                              "%s: rank %d has a shard of %g images of %gx%gx%g (micro-batch %g), rank 0 of %g "
                              "images of %gx%gx%g (micro-batch %g): every rank needs the same",
                              FN, r, (double)o[0], (double)o[1], (double)o[2], (double)o[3], (double)o[4],
                              (double)all[0], (double)all[1], (double)all[2], (double)all[3], (double)all[4]);
    }
    simclr__free(tr->ctx, all);
    return st;
}

/* SIMCLR_E_CANCELLED for a stop this rank's callback asked for (mine) or
 * another rank's. */
static simclr_status cancelled(simclr_trainer *tr, int mine, int64_t total)
{
    if (mine) return simclr__cancelled(tr->ctx, FN, "step", tr->steps, total);
    return simclr__fail(SIMCLR_E_CANCELLED, "%s: cancelled by another rank's progress callback at step %lld of %lld",
                        FN, (long long)tr->steps, (long long)total);
}

/* Augments micro-batch j and runs encoder + head in TRAIN mode into e->b.z. */
static simclr_status forward_micro(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, int64_t j)
{
    struct simclr__trainer_ext *e = tr->ext;
    const int64_t k = e->k, image_bytes = images->dims[1] * images->dims[2] * images->dims[3];
    int64_t shape[4] = {k, images->dims[1], images->dims[2], images->dims[3]};
    simclr_tensor *sub = NULL;
    /* A borrowed view of rows j*k .. j*k+k-1; augmentation only reads it. */
    SIMCLR__TRY(simclr_tensor_wrap(tr->ctx, SIMCLR_U8, 4, shape, (uint8_t *)images->data + j * k * image_bytes, &sub));
    uint64_t base = (uint64_t)(e->comm.rank * e->n + j * k);
    simclr_status st = simclr__augment_pair_at(tr->aug, sub, seed, base, e->b.view0, e->b.view1);
    simclr_tensor_destroy(sub);
    if (st == SIMCLR_OK) st = simclr_module_forward(tr->encoder, e->b.views, SIMCLR_TRAIN, e->b.feat);
    if (st == SIMCLR_OK) st = simclr_module_forward(tr->head, e->b.feat, SIMCLR_TRAIN, e->b.z);
    if (st == SIMCLR_OK && e->comm.failed) st = simclr__comm_raise(&e->comm);
    return st;
}

/* Rows of micro-batch j between the micro-batch's [2k, P] and the local
 * [2n, P] (view v of pair i at row i + v*n). to_local: z -> zl, else the
 * rank's rows of dzg -> dz. */
static void micro_rows(struct simclr__trainer_ext *e, int64_t j, int64_t p, int to_local)
{
    const int64_t k = e->k, n = e->n, big_n = n * e->comm.size;
    for (int v = 0; v < 2; v++) {
        size_t bytes = (size_t)(k * p) * sizeof(float);
        if (to_local) {
            memcpy(e->b.zl + (v * n + j * k) * p, simclr__f32(e->b.z) + v * k * p, bytes);
        } else {
            int64_t g = e->comm.rank * n + j * k; /* global pair index */
            memcpy(simclr__f32(e->b.dz) + v * k * p, simclr__f32(e->b.dzg) + (g + v * big_n) * p, bytes);
        }
    }
}

/* The gathered blocks [rank][view][pair] into the one-process layout. */
static void to_global_layout(struct simclr__trainer_ext *e, int64_t p)
{
    const int64_t n = e->n, big_n = n * e->comm.size;
    float *zg = simclr__f32(e->b.zg);
    for (int r = 0; r < e->comm.size; r++)
        for (int v = 0; v < 2; v++)
            memcpy(zg + (r * n + v * big_n) * p, e->b.gathered + (r * 2 * n + v * n) * p,
                   (size_t)(n * p) * sizeof(float));
}

/* The step on buffers sized for it (micro-batches of k pairs). */
static simclr_status run_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss,
                              int64_t k, double t0)
{
    struct simclr__trainer_ext *e = tr->ext;
    const int64_t n = images->dims[0], p = tr->head->out_dim, micro_count = n / k;
    double lr, total_steps = 0;
    SIMCLR__TRY(simclr_optimizer_lr(tr->opt, &lr));
    simclr_optimizer_get(tr->opt, SIMCLR_OPT_TOTAL_STEPS, &total_steps);
    const int64_t total = (int64_t)total_steps;
    const int mine = simclr__cancel_poll(tr->ctx, "train", tr->steps, total);
    int stop = mine;
    SIMCLR__TRY(agree_on_shapes(tr, images, k, &stop));
    if (stop) return cancelled(tr, mine, total);

    simclr__trainer_snapshot(tr, SIMCLR__SNAP_ALL, 0);
    tr->ctx->bn_hook = e->bn_mode != SIMCLR_BN_LOCAL ? &e->hook : NULL;
    simclr_status st = SIMCLR_OK;
    /* 1. Embeddings of every micro-batch. */
    for (int64_t j = 0; j < micro_count && st == SIMCLR_OK; j++) {
        st = forward_micro(tr, images, seed, j);
        if (st == SIMCLR_OK) micro_rows(e, j, p, 1);
    }
    /* Step 3 updates the running statistics; step 1 must not count. */
    if (st == SIMCLR_OK && micro_count > 1) simclr__trainer_snapshot(tr, SIMCLR__SNAP_BUFFERS, 1);

    /* 2. The global batch, its loss and the gradient at every embedding. */
    if (st == SIMCLR_OK) st = simclr__comm_all_gather(&e->comm, FN, e->b.zl, 2 * n * p, e->b.gathered);
    float value = 0, acc = 0;
    if (st == SIMCLR_OK) {
        to_global_layout(e, p);
        st = simclr_loss_forward(tr->loss, e->b.zg, &value, &acc);
    }
    if (st == SIMCLR_OK && !isfinite(value)) st = simclr__fail(SIMCLR_E_NUMERIC, "%s: the loss is %g", FN, (double)value);
    if (st == SIMCLR_OK) st = simclr_loss_backward(tr->loss, e->b.dzg);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->encoder);
    if (st == SIMCLR_OK) st = simclr_module_zero_grad(tr->head);

    /* 3. Back-propagate each micro-batch's slice (re-run when there are several). */
    for (int64_t j = 0; j < micro_count && st == SIMCLR_OK; j++) {
        if (micro_count > 1) st = forward_micro(tr, images, seed, j);
        if (st != SIMCLR_OK) break;
        micro_rows(e, j, p, 0);
        st = simclr_module_backward(tr->head, e->b.dz, e->b.dfeat);
        if (st == SIMCLR_OK) st = simclr_module_backward(tr->encoder, e->b.dfeat, NULL);
        if (st == SIMCLR_OK && e->comm.failed) st = simclr__comm_raise(&e->comm);
    }
    tr->ctx->bn_hook = NULL;

    /* 4. Sum over ranks (with the stop requests), keep BN replicas aligned, update. */
    int mine_late = st == SIMCLR_OK && simclr__cancel_poll(tr->ctx, "train", tr->steps, total);
    float stops = (float)mine_late;
    if (st == SIMCLR_OK && e->comm.size > 1) st = simclr__trainer_allreduce_grads(tr, FN, &stops);
    if (st == SIMCLR_OK && stops != 0) st = cancelled(tr, mine_late, total);
    if (st == SIMCLR_OK && e->comm.size > 1 && e->bn_mode == SIMCLR_BN_LOCAL)
        st = simclr__trainer_broadcast_buffers(tr, FN);
    if (st == SIMCLR_OK) st = simclr_optimizer_step(tr->opt);
    if (st != SIMCLR_OK) return simclr__trainer_fail_step(tr, st);

    tr->steps++;
    tr->loss_value = value;
    tr->accuracy = acc;
    tr->lr = lr;
    tr->grad_norm = simclr__optimizer_last_grad_norm(tr->opt);
    double dt = now_seconds() - t0;
    tr->images_per_sec = dt > 0 ? (double)(2 * n) / dt : 0;
    /* The header's figure is 0 without a communicator: the single-process
     * stand-in's gather is a copy, not communication. */
    e->last_bytes = e->has_comm ? e->comm.bytes : 0;
    e->last_micro = micro_count;
    (void)simclr__progress(tr->ctx, "train", tr->steps, total); /* the step is done: no undo */
    if (loss) *loss = value;
    return SIMCLR_OK;
}

simclr_status simclr__trainer_step_ext(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss)
{
    struct simclr__trainer_ext *e = tr->ext;
    const double t0 = now_seconds();
    const int64_t n = images->dims[0], c = images->dims[3];
    const int64_t k = e->micro > 0 && e->micro < n ? e->micro : n;
    if (n % k != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a micro-batch of %lld pairs does not divide the local batch of %lld",
                            FN, (long long)k, (long long)n);
    simclr__comm_begin(&e->comm);
    buffer_set prev;
    int rebuilt;
    SIMCLR__TRY(ensure_buffers(tr, n, c, k, &prev, &rebuilt));
    simclr_status st = run_step(tr, images, seed, loss, k, t0);
    if (rebuilt) {
        if (st != SIMCLR_OK) swap_sets(e, &prev); /* the set (and memory) of before */
        simclr__ext_bufs_free(tr->ctx, &prev.b);
    }
    return st;
}
