/* What other layers (the trainer) may ask of a policy. */
#ifndef SIMCLR_AUGMENT_AUGMENT_H
#define SIMCLR_AUGMENT_AUGMENT_H

#include "simclr.h"

/* The view size the policy produces. */
void simclr__augment_out_size(const simclr_augment *aug, int64_t *h, int64_t *w);

/* simclr_augment_pair for images that are pairs base .. base+N-1 of a larger
 * batch: draws are keyed by base + i, so a shard or a micro-batch gets
 * exactly the views the whole batch would (base 0 = simclr_augment_pair). */
simclr_status simclr__augment_pair_at(simclr_augment *aug, const simclr_tensor *images, uint64_t seed,
                                      uint64_t base, simclr_tensor *view0, simclr_tensor *view1);
/* simclr_augment_apply of one view for images that are base .. base+N-1 of
 * a larger batch (draws keyed by base + i, as simclr__augment_pair_at). */
simclr_status simclr__augment_view_at(simclr_augment *aug, const simclr_tensor *images, uint64_t seed,
                                      uint64_t base, int view, simclr_tensor *out);
/* simclr_augment_pair_list likewise: images[i] is pair base + i. */
simclr_status simclr__augment_pair_list_at(simclr_augment *aug, const simclr_image_list *images, uint64_t seed,
                                           uint64_t base, simclr_tensor *view0, simclr_tensor *view1);
/* The context the policy was created from (the trainer checks its parts share one). */
simclr_context *simclr__augment_ctx(const simclr_augment *aug);

#endif
