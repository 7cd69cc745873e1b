/* Rollback, once for every method and setting: the snapshot of what a step
 * changes before it commits (BN running statistics of every module the step
 * runs, gradients of the trained ones) and the failure exit that puts it
 * back. Parameters, optimizer state and a method's state are written only
 * after the optimizer has accepted the gradients, so they need no copy. */
#include <string.h>

#include "trainer.h"
#include "../model/module.h"

/* Copies the gradients of the trained modules (grads = 1) or the BN running
 * statistics of every module (grads = 0) into snap (restore = 0) or back
 * (restore = 1), in tr->mods order; with snap NULL only counts. Returns the
 * float count. */
static int64_t walk(simclr_trainer *tr, int grads, float *snap, int restore)
{
    int64_t off = 0;
    for (int k = 0; k < tr->n_mods; k++) {
        if (grads && !tr->mods[k].trained) continue;
        simclr_module *m = tr->mods[k].m;
        for (int i = 0; i < m->n_params; i++) {
            simclr__param *p = &m->params[i];
            simclr_tensor *t = grads ? p->grad : (p->flags & SIMCLR_PARAM_BUFFER) ? p->value : NULL;
            if (!t) continue;
            if (snap) {
                if (restore) memcpy(t->data, snap + off, simclr_tensor_bytes(t));
                else memcpy(snap + off, t->data, simclr_tensor_bytes(t));
            }
            off += t->numel;
        }
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
