/* What other layers (the trainer) may ask of a policy. */
#ifndef SIMCLR_AUGMENT_AUGMENT_H
#define SIMCLR_AUGMENT_AUGMENT_H

#include "simclr.h"

/* The view size the policy produces. */
void simclr__augment_out_size(const simclr_augment *aug, int64_t *h, int64_t *w);

/* The context the policy was created from (the trainer checks its parts share one). */
simclr_context *simclr__augment_ctx(const simclr_augment *aug);

#endif
