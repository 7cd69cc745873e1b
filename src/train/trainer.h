/* The trainer's internals, shared by the pipeline, the methods, rollback,
 * checkpoints and the distributed settings. */
#ifndef SIMCLR_TRAIN_TRAINER_H
#define SIMCLR_TRAIN_TRAINER_H

#include "../core/context.h"
#include "../core/tensor.h"
#include "../augment/augment.h"
#include "../loss/loss.h"
#include "../optim/optimizer.h"
#include "method.h"

/* A module the trainer steps, with its checkpoint prefix; `trained`: the
 * optimizer updates it from gradients (else it only runs forward, e.g.
 * MoCo's key path, and its gradients are never touched). */
typedef struct simclr__tmodule {
    simclr_module *m;
    const char *prefix;
    int trained;
} simclr__tmodule;

#define SIMCLR__TRAINER_MAX_MODULES 6

struct simclr_trainer {
    simclr_context *ctx;
    simclr_module *encoder, *head; /* borrowed: mods[0] and mods[1] */
    simclr_augment *aug;
    simclr_loss *loss; /* NT-Xent for SimCLR (borrowed); NULL for other methods */
    simclr_optimizer *opt;
    int64_t out_h, out_w;

    /* Every module a step runs: encoder, head, then the method's (MoCo:
     * key_encoder, key_head). Rollback, checkpoints and the collectives walk
     * this list, in this order. */
    simclr__tmodule mods[SIMCLR__TRAINER_MAX_MODULES];
    int n_mods;

    const simclr__method *method;
    void *method_state; /* owned; method->destroy frees it */

    /* BN running statistics of every module and the gradients of the trained
     * ones before the step, restored when it fails: a failed step changes
     * nothing. */
    float *snapshot;
    int64_t snapshot_len;
    float *grad_snapshot;
    int64_t grad_snapshot_len;

    /* Settings, communicator and step buffers (distributed.h), made at creation. */
    struct simclr__trainer_ext *ext;

    /* Statistics of the last successful step. */
    int64_t steps, last_micro;
    double loss_value, accuracy, lr, grad_norm, images_per_sec;
};

/* Appends a module to tr->mods (creation only; the caller checked room). */
void simclr__trainer_add_module(simclr_trainer *tr, simclr_module *m, const char *prefix, int trained);

/* Completes a trainer whose pieces, method and modules are set: the
 * settings state and the snapshots. On failure the caller destroys tr
 * (simclr_trainer_destroy frees what was made). */
simclr_status simclr__trainer_finish(simclr_trainer *tr, const char *fn);

/* The optimizer must update exactly the trained modules' parameters and
 * none of the others'. */
simclr_status simclr__trainer_check_coverage(const simclr_trainer *tr, const char *fn);

/* SIMCLR_E_UNSUPPORTED with the method's reason when it cannot combine
 * with `with` (SIMCLR__WITH_*). */
simclr_status simclr__trainer_refuse(const simclr_trainer *tr, const char *fn, unsigned with);

/* ---- rollback (src/train/rollback.c) ---- */

/* Allocates the two snapshots for tr->mods. */
simclr_status simclr__trainer_snapshot_alloc(simclr_trainer *tr, const char *fn);

/* What simclr__trainer_snapshot copies. */
enum { SIMCLR__SNAP_BUFFERS = 1, SIMCLR__SNAP_GRADS = 2, SIMCLR__SNAP_ALL = 3 };
/* Copies the BN running statistics and/or the gradients into the snapshots
 * (restore = 0) or back (restore = 1). */
void simclr__trainer_snapshot(simclr_trainer *tr, int what, int restore);

/* The one failure exit of a step after its snapshot: removes the BN hook,
 * restores BN statistics and gradients (parameters, optimizer state and the
 * method's state are untouched until the optimizer accepts the gradients,
 * the last thing that can fail), logs the rollback and returns st. */
simclr_status simclr__trainer_fail_step(simclr_trainer *tr, simclr_status st);

/* ---- the pipeline (src/train/pipeline.c) ---- */

/* The step from a checked batch tensor or (images NULL) a checked image list. */
simclr_status simclr__pipeline_step(simclr_trainer *tr, const simclr_tensor *images, const simclr_image_list *list,
                                    uint64_t seed, float *loss);

/* The checks every trainer constructor makes of its borrowed pieces (NULLs,
 * encoder != head, one context, head input = encoder output), naming fn. */
simclr_status simclr__trainer_check_pieces(const char *fn, simclr_context *ctx, const simclr_module *encoder,
                                           const simclr_module *head, const simclr_augment *aug,
                                           const simclr_loss *loss, const simclr_optimizer *opt,
                                           simclr_trainer **out);

#endif
