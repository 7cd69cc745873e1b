/* The MoCo v2 trainer's state, shared by its step (moco.c) and its
 * checkpoint code (moco_checkpoint.c). A MoCo trainer is a simclr_trainer
 * whose `moco` member is set; trainer.c and checkpoint.c hand such trainers
 * to the functions below. */
#ifndef SIMCLR_TRAIN_MOCO_H
#define SIMCLR_TRAIN_MOCO_H

#include "trainer.h"
#include "../loss/infonce.h"

#define SIMCLR__MOCO_MAX_SPLITS 256

struct simclr__moco {
    simclr_module *key_encoder, *key_head; /* borrowed */
    simclr__infonce *loss;
    simclr_tensor *queue; /* [K, P], owned */
    int64_t queue_size, queue_pos;

    /* Settings (simclr_moco_set). */
    double momentum, temperature;
    int64_t momentum_steps;
    int key_splits;

    /* Step buffers, sized for (n, c, splits) and rebuilt only when those change. */
    int64_t n, c;
    int splits;
    simclr_tensor *views;         /* [2n, c, h, w]: queries then keys */
    simclr_tensor *view_q, *view_k;
    simclr_tensor *kviews;        /* [n, c, h, w]: keys in the shuffled order */
    simclr_tensor *feat, *dfeat;  /* [n, D] */
    simclr_tensor *z, *dz;        /* [n, P] */
    simclr_tensor *kfeat, *kz;    /* [n, D], [n, P]: shuffled order */
    simclr_tensor *kin[SIMCLR__MOCO_MAX_SPLITS], *kf[SIMCLR__MOCO_MAX_SPLITS], *kzs[SIMCLR__MOCO_MAX_SPLITS];
    float *ksorted, *kunit;       /* [n, P]: keys in sample order, raw and normalized */
    int64_t *order;               /* [n]: this step's key permutation */
    int64_t *last_order;          /* the last successful step's, kept across rebuilds */
    int64_t last_n, last_cap;     /* its N (0 before any step) and capacity */
};

simclr_status simclr__moco_step(simclr_trainer *tr, const simclr_tensor *images, uint64_t seed, float *loss);
void simclr__moco_destroy(simclr_trainer *tr);
simclr_status simclr__moco_save(const simclr_trainer *tr, const char *path);
simclr_status simclr__moco_load(simclr_trainer *tr, const char *path);

#endif
