/* The one trainer step, for every method (src/train/method.h) and every
 * setting: plain, micro-batches (gradient caching, Gao et al. 2021, "Scaling
 * Deep Contrastive Learning Batch Size under Memory Limited Setup"), ranks,
 * image lists.
 *
 * Rank r holds images r*n .. r*n+n-1 of a global batch of N = P*n,
 * processed as n/k micro-batches of k images:
 *  1. views + forward: for each micro-batch, the two views (draws keyed by
 *     the global image index), encoder + head on the method's trained views,
 *     keep only the embeddings (the activation arena holds one micro-batch);
 *     the method's key views are kept for its key path;
 *  2. keys: the method's key path on the local key views, no gradient;
 *  3. gather: embeddings and keys of every rank into the layout one process
 *     would have (row g + v*N is view v of global image g);
 *  4. loss: the method's loss over the global batch and its gradient at
 *     every embedding, the same on every rank, which keeps its own rows;
 *  5. backward: each micro-batch again (re-run when there are several: the
 *     same views, same keys; with one, step 1's activations are still there),
 *     its slice of the gradient through head and encoder; gradients add up;
 *  6. reduce: gradients summed over ranks (buckets) with the stop requests;
 *     BN replicas aligned (SIMCLR_BN_LOCAL);
 *  7. commit: the optimizer step, then the method's updates.
 * Step 1 updates BN running statistics; with several micro-batches they are
 * restored before step 2, and step 5 updates them once per micro-batch. Any
 * failure goes to the one rollback (simclr__trainer_fail_step). The
 * stoppable progress callback is polled before step 1 and before step 7;
 * with several ranks a stop rides on the shape check and on the gradient
 * sum, so that every rank stops at the same point instead of leaving the
 * others waiting in a collective. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "../core/image_list.h"
#include "../model/module.h"
#include "distributed.h"

static const char FN[] = "simclr_trainer_step";

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A step's input: a batch tensor or an image list. */
typedef struct input {
    const simclr_tensor *images;
    const simclr_image_list *list;
    int64_t dims[4]; /* n, h, w, c (h = w = 0 for a list) */
} input;

/* Every rank must bring a shard of the same shape (the batch-norm hook and
 * the gather rely on it); all ranks reach the same verdict. *stop: in, this
 * rank's progress callback asked to stop; out, some rank's did. */
static simclr_status agree_on_shapes(simclr_trainer *tr, const input *in, int64_t k, int *stop)
{
    struct simclr__trainer_ext *e = tr->ext;
    if (e->comm.size == 1) return SIMCLR_OK;
    enum { W = 6 }; /* the shape, the micro-batch, the stop */
    float mine[W] = {(float)in->dims[0], (float)in->dims[1], (float)in->dims[2], (float)in->dims[3], (float)k,
                     (float)*stop};
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

/* Rows first .. first+count-1 of t as a borrowed tensor on the stack (never
 * destroyed: a warm step allocates nothing). */
static simclr_tensor window(const simclr_tensor *t, int64_t first, int64_t count)
{
    simclr_tensor w = *t;
    const int64_t row = t->numel / t->dims[0];
    w.dims[0] = count;
    w.numel = row * count;
    w.data = (char *)t->data + (size_t)(first * row) * simclr__dtype_size(t->dtype);
    w.owned = 0;
    return w;
}

/* The two views of images j*k .. j*k+k-1 (global index base + i) into
 * view0 and view1. */
static simclr_status augment(simclr_trainer *tr, const input *in, uint64_t seed, int64_t j, int64_t k,
                             simclr_tensor *view0, simclr_tensor *view1)
{
    const uint64_t base = (uint64_t)(tr->ext->comm.rank * in->dims[0] + j * k);
    if (in->list) {
        simclr_image_list sub = *in->list; /* a borrowed window of the list */
        sub.items += j * k;
        sub.count = sub.cap = k;
        return simclr__augment_pair_list_at(tr->aug, &sub, seed, base, view0, view1);
    }
    const simclr_tensor sub = window(in->images, j * k, k); /* augmentation only reads it */
    return simclr__augment_pair_at(tr->aug, &sub, seed, base, view0, view1);
}

/* Views of micro-batch j (the trained ones into b->views, a key view into
 * its rows of b->key_views), then encoder + head in TRAIN mode into b->z. */
static simclr_status forward_micro(simclr_trainer *tr, const input *in, uint64_t seed, int64_t j)
{
    struct simclr__trainer_ext *e = tr->ext;
    simclr__ext_bufs *b = &e->b;
    const int64_t k = b->k;
    /* The second view: trained (SimCLR) or a key view, into its rows of the local batch (MoCo). */
    simclr_tensor key;
    simclr_status st;
    if (tr->method->trained_views == 1 && tr->method->key_views == 0) { /* one view (fine-tuning) */
        const simclr_tensor sub = window(in->images, j * k, k);
        st = simclr__augment_view_at(tr->aug, &sub, seed, (uint64_t)(e->comm.rank * in->dims[0] + j * k), 0,
                                     b->view[0]);
    } else {
        if (tr->method->trained_views == 1) key = window(b->key_views, j * k, k);
        st = augment(tr, in, seed, j, k, b->view[0], tr->method->trained_views == 1 ? &key : b->view[1]);
    }
    /* A module that is not trained (a frozen encoder) runs in EVAL mode, without backward. */
    if (st == SIMCLR_OK)
        st = simclr_module_forward(tr->encoder, b->views, tr->mods[0].trained ? SIMCLR_TRAIN : SIMCLR_EVAL, b->feat);
    if (st == SIMCLR_OK) st = simclr_module_forward(tr->head, b->feat, SIMCLR_TRAIN, b->z);
    if (st == SIMCLR_OK && e->comm.failed) st = simclr__comm_raise(&e->comm);
    return st;
}

/* Rows of micro-batch j between the micro-batch's [T k, P] and the local
 * [T n, P] (view v of image i at row i + v*n). to_local: z -> zl, else the
 * rank's rows of dzg -> dz. */
static void micro_rows(simclr_trainer *tr, int64_t j, int to_local)
{
    const simclr__ext_bufs *b = &tr->ext->b;
    const int64_t k = b->k, n = b->n, big_n = n * b->ranks, p = tr->head->out_dim;
    const size_t bytes = (size_t)(k * p) * sizeof(float);
    for (int v = 0; v < tr->method->trained_views; v++) {
        if (to_local) {
            memcpy(b->zl + (v * n + j * k) * p, simclr__f32(b->z) + v * k * p, bytes);
        } else {
            int64_t g = tr->ext->comm.rank * n + j * k; /* global image index */
            memcpy(simclr__f32(b->dz) + v * k * p, simclr__f32(b->dzg) + (g + v * big_n) * p, bytes);
        }
    }
}

/* Gathered blocks [rank][view][image] of `views` views into the one-process
 * layout [view][rank][image]. */
static void to_global_layout(const simclr__ext_bufs *b, int views, int64_t p, const float *gathered, float *dst)
{
    const int64_t n = b->n, big_n = n * b->ranks;
    for (int64_t r = 0; r < b->ranks; r++)
        for (int v = 0; v < views; v++)
            memcpy(dst + (r * n + v * big_n) * p, gathered + (r * views * n + v * n) * p,
                   (size_t)(n * p) * sizeof(float));
}

/* Steps 1-7 on buffers sized for the step. */
static simclr_status run(simclr_trainer *tr, const input *in, uint64_t seed, float *loss, double t0)
{
    struct simclr__trainer_ext *e = tr->ext;
    simclr__ext_bufs *b = &e->b;
    const simclr__method *m = tr->method;
    const int64_t n = b->n, p = tr->head->out_dim, micro_count = n / b->k;
    double lr, total_steps = 0;
    SIMCLR__TRY(simclr_optimizer_lr(tr->opt, &lr));
    simclr_optimizer_get(tr->opt, SIMCLR_OPT_TOTAL_STEPS, &total_steps);
    const int64_t total = (int64_t)total_steps;
    const int mine = simclr__cancel_poll(tr->ctx, "train", tr->steps, total);
    int stop = mine;
    SIMCLR__TRY(agree_on_shapes(tr, in, b->k, &stop));
    if (stop) return cancelled(tr, mine, total);

    simclr__step s = {FN, seed, e->comm.rank, e->comm.size, n, n * e->comm.size, p, b->zg, b->dzg,
                      b->key_views, b->kl, b->kg, b->method};
    simclr__trainer_snapshot(tr, SIMCLR__SNAP_ALL, 0);
    tr->ctx->bn_hook = e->bn_mode != SIMCLR_BN_LOCAL ? &e->hook : NULL;
    simclr_status st = SIMCLR_OK;
    /* 1. Views and embeddings of every micro-batch. */
    for (int64_t j = 0; j < micro_count && st == SIMCLR_OK; j++) {
        st = forward_micro(tr, in, seed, j);
        if (st == SIMCLR_OK) micro_rows(tr, j, 1);
    }
    /* Step 5 updates the running statistics; step 1 must not count. */
    if (st == SIMCLR_OK && micro_count > 1) simclr__trainer_snapshot(tr, SIMCLR__SNAP_BUFFERS, 1);
    /* 2. The method's key path. */
    if (st == SIMCLR_OK && m->keys) st = m->keys(tr, tr->method_state, &s);
    if (st == SIMCLR_OK && e->comm.failed) st = simclr__comm_raise(&e->comm);

    /* 3. The global batch. */
    const int tv = m->trained_views, kv = m->key_views;
    if (st == SIMCLR_OK) st = simclr__comm_all_gather(&e->comm, FN, b->zl, tv * n * p, b->gathered);
    if (st == SIMCLR_OK) to_global_layout(b, tv, p, b->gathered, simclr__f32(b->zg));
    if (st == SIMCLR_OK && kv) st = simclr__comm_all_gather(&e->comm, FN, b->kl, kv * n * p, b->kgathered);
    if (st == SIMCLR_OK && kv) to_global_layout(b, kv, p, b->kgathered, b->kg);

    /* 4. The loss and its gradient at every embedding (gradients zeroed
     * first: a loss may also write a trained module's gradient directly). */
    for (int i = 0; i < tr->n_mods && st == SIMCLR_OK; i++)
        if (tr->mods[i].trained) st = simclr_module_zero_grad(tr->mods[i].m);
    double value = 0, acc = 0;
    if (st == SIMCLR_OK) st = m->loss(tr, tr->method_state, &s, &value, &acc);
    if (st == SIMCLR_OK && !isfinite(value)) st = simclr__fail(SIMCLR_E_NUMERIC, "%s: the loss is %g", FN, value);

    /* 5. Back-propagate each micro-batch's slice (re-run when there are several). */
    for (int64_t j = 0; j < micro_count && st == SIMCLR_OK; j++) {
        if (micro_count > 1) st = forward_micro(tr, in, seed, j);
        if (st != SIMCLR_OK) break;
        micro_rows(tr, j, 0);
        st = simclr_module_backward(tr->head, b->dz, b->dfeat);
        /* The encoder's input gradient is never needed: skip it (the cheapest conv pass). */
        if (st == SIMCLR_OK && tr->mods[0].trained) st = simclr_module_backward(tr->encoder, b->dfeat, NULL);
        if (st == SIMCLR_OK && e->comm.failed) st = simclr__comm_raise(&e->comm);
    }
    tr->ctx->bn_hook = NULL;

    /* 6. Sum over ranks (with the stop requests), keep BN replicas aligned. */
    int mine_late = st == SIMCLR_OK && simclr__cancel_poll(tr->ctx, "train", tr->steps, total);
    float stops = (float)mine_late;
    if (st == SIMCLR_OK && e->comm.size > 1) st = simclr__trainer_allreduce_grads(tr, FN, &stops);
    if (st == SIMCLR_OK && stops != 0) st = cancelled(tr, mine_late, total);
    if (st == SIMCLR_OK && e->comm.size > 1 && e->bn_mode == SIMCLR_BN_LOCAL)
        st = simclr__trainer_broadcast_buffers(tr, FN);
    /* 7. Commit: the optimizer checks every gradient before it writes. */
    if (st == SIMCLR_OK) st = simclr_optimizer_step(tr->opt);
    if (st != SIMCLR_OK) return simclr__trainer_fail_step(tr, st);

    /* Committed: nothing below can fail. */
    if (m->commit) m->commit(tr, tr->method_state, &s);
    tr->steps++;
    tr->loss_value = value;
    tr->accuracy = acc;
    tr->lr = lr;
    tr->grad_norm = simclr__optimizer_last_grad_norm(tr->opt);
    double dt = now_seconds() - t0;
    tr->images_per_sec = dt > 0 ? (double)((tv + kv) * n) / dt : 0;
    /* The header's figure is 0 without a communicator: the single-process
     * stand-in's gather is a copy, not communication. */
    e->last_bytes = e->has_comm ? e->comm.bytes : 0;
    tr->last_micro = micro_count;
    (void)simclr__progress(tr->ctx, "train", tr->steps, total); /* the step is done: no undo */
    if (loss) *loss = (float)value;
    return SIMCLR_OK;
}

simclr_status simclr__pipeline_step(simclr_trainer *tr, const simclr_tensor *images, const simclr_image_list *list,
                                    uint64_t seed, float *loss)
{
    struct simclr__trainer_ext *e = tr->ext;
    const double t0 = now_seconds();
    input in = {images, list, {0, 0, 0, 0}};
    if (images) memcpy(in.dims, images->dims, sizeof in.dims);
    else in.dims[0] = list->count, in.dims[3] = list->channels;
    const int64_t n = in.dims[0], c = in.dims[3];
    const int64_t k = e->micro > 0 && e->micro < n ? e->micro : n;
    if (n % k != 0)
        return simclr__fail(SIMCLR_E_INVALID, "%s: a micro-batch of %lld pairs does not divide the local batch of %lld",
                            FN, (long long)k, (long long)n);
    if (tr->method->check_batch)
        SIMCLR__TRY(tr->method->check_batch(tr->method_state, FN, n, n * e->comm.size));
    simclr__comm_begin(&e->comm);
    simclr__ext_bufs prev;
    int rebuilt;
    SIMCLR__TRY(simclr__ext_bufs_ensure(tr, FN, n, c, k, &prev, &rebuilt));
    simclr_status st = run(tr, &in, seed, loss, t0);
    simclr__ext_bufs_settle(tr, &prev, rebuilt, st);
    return st;
}
