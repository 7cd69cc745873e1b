/* SwAV's state, shared by its public calls and creation (swav.c) and its
 * method table (method_swav.c). A SwAV trainer is a simclr_trainer whose
 * method is simclr__swav_method, whose method_state is this struct and
 * whose third module (mods[2], prefix "prototypes.", trained) is the
 * prototypes module the host made with simclr_swav_prototypes_create. */
#ifndef SIMCLR_TRAIN_SWAV_H
#define SIMCLR_TRAIN_SWAV_H

#include "trainer.h"
#include "../loss/swav_loss.h"

struct simclr__swav {
    simclr_module *prototypes; /* borrowed: the trainer's mods[2]; its "weight" [K, P] */
    int64_t k;
    /* Settings (simclr_swav_set). */
    double temperature, epsilon;
    int iters;
    int64_t freeze_steps;
};

/* Frees the state (the method's destroy). */
void simclr__swav_free(simclr_context *ctx, void *state);

/* The prototypes' weight [K, P] and gradient. */
simclr_tensor *simclr__swav_weight(const struct simclr__swav *sw, simclr_tensor **grad);

/* Scales every row of w [k, d] to unit L2 norm (a zero row stays zero). */
void simclr__swav_normalize_rows(float *w, int64_t k, int64_t d);

/* Is m a module made by simclr_swav_prototypes_create? */
int simclr__is_swav_prototypes(const simclr_module *m);

#endif
