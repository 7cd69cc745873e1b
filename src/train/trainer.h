/* The trainer's internals, shared with its checkpoint code. */
#ifndef SIMCLR_TRAIN_TRAINER_H
#define SIMCLR_TRAIN_TRAINER_H

#include "../core/context.h"
#include "../core/tensor.h"
#include "../augment/augment.h"
#include "../loss/loss.h"
#include "../optim/optimizer.h"

struct simclr_trainer {
    simclr_context *ctx;
    simclr_module *encoder, *head; /* borrowed */
    simclr_augment *aug;
    simclr_loss *loss;
    simclr_optimizer *opt;

    /* Step buffers, sized for (n, c) and rebuilt only when those change. */
    int64_t n, c, out_h, out_w;
    simclr_tensor *views;         /* [2n, c, h, w]: view 0 rows then view 1 rows */
    simclr_tensor *view0, *view1; /* wraps of the two halves of views */
    simclr_tensor *feat, *dfeat;  /* encoder output and its gradient [2n, D] */
    simclr_tensor *z, *dz;        /* head output and its gradient [2n, P] */

    /* BN running statistics of every module a step runs in TRAIN mode
     * (encoder, head and MoCo's key modules) before the step, restored when
     * it fails. */
    float *snapshot;
    int64_t snapshot_len;
    /* The caller's gradients before the step (the step zeroes and refills
     * them), restored when it fails: a failed step changes nothing. */
    float *grad_snapshot;
    int64_t grad_snapshot_len;

    /* Distributed training / gradient caching state (src/train/distributed.h);
     * NULL until simclr_trainer_set or simclr_trainer_set_comm is called. */
    struct simclr__trainer_ext *ext;

    /* Statistics of the last successful step. */
    int64_t steps;
    double loss_value, accuracy, lr, grad_norm, images_per_sec;

    /* MoCo v2 (moco.h): non-NULL for a trainer made by
     * simclr_moco_trainer_create, whose steps, saves and loads go there. */
    struct simclr__moco *moco;
};

/* Allocates the two snapshots above for the trainer's modules (tr->moco
 * already set for a MoCo trainer). */
simclr_status simclr__trainer_snapshot_alloc(simclr_trainer *tr, const char *fn);

/* What simclr__trainer_snapshot copies. */
enum { SIMCLR__SNAP_BUFFERS = 1, SIMCLR__SNAP_GRADS = 2, SIMCLR__SNAP_ALL = 3 };
/* Copies the BN running statistics and/or the gradients into the snapshots
 * (restore = 0) or back (restore = 1). */
void simclr__trainer_snapshot(simclr_trainer *tr, int what, int restore);

/* Every step engine's failure exit after its snapshot: removes the BN hook,
 * restores BN statistics and gradients (parameters and optimizer state are
 * untouched until the optimizer accepts the gradients, the last thing that
 * can fail), logs the rollback and returns st. */
simclr_status simclr__trainer_fail_step(simclr_trainer *tr, simclr_status st);

/* The step behind simclr_trainer_step and simclr_trainer_step_list: from a
 * checked batch tensor, or (images NULL) a checked image list. */
simclr_status simclr__trainer_step_from(simclr_trainer *tr, const simclr_tensor *images,
                                        const simclr_image_list *list, uint64_t seed, float *loss);

#endif
