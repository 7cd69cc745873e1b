/* MoCo v2's state, shared by its public calls and creation (moco.c) and its
 * method table (moco_method.c). A MoCo trainer is a simclr_trainer whose
 * method is simclr__moco_method and whose method_state is this struct. */
#ifndef SIMCLR_TRAIN_MOCO_H
#define SIMCLR_TRAIN_MOCO_H

#include "trainer.h"
#include "../loss/infonce.h"

#define SIMCLR__MOCO_MAX_SPLITS 256

struct simclr__moco {
    simclr_module *key_encoder, *key_head; /* borrowed: the trainer's mods[2] and mods[3] */
    simclr__infonce *loss;
    simclr_tensor *queue; /* [K, P], owned */
    int64_t queue_size, queue_pos;

    /* Settings (simclr_moco_set). */
    double momentum, temperature;
    int64_t momentum_steps;
    int key_splits;

    /* The last successful step's key permutation (of its local batch). */
    int64_t *last_order;
    int64_t last_n, last_cap; /* its n (0 before any step) and capacity */
};

/* Frees the state (the method's destroy). */
void simclr__moco_free(simclr_context *ctx, void *state);

#endif
