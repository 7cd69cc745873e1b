/* The loss object inside the library: what the trainer may ask of it beyond
 * the public forward/backward. */
#ifndef SIMCLR_LOSS_LOSS_H
#define SIMCLR_LOSS_LOSS_H

#include "../core/context.h"
#include "../core/tensor.h"

/* Views per sample the loss was created for (the trainer needs 2). */
int simclr__loss_n_views(const simclr_loss *loss);
double simclr__loss_temperature(const simclr_loss *loss);
/* The context the loss was created from. */
simclr_context *simclr__loss_ctx(const simclr_loss *loss);

/* Grows the scratch buffers for z of `rows` x `dim` ahead of the first step,
 * so a trainer can fail early (SIMCLR_E_NOMEM) and stay allocation-free after. */
simclr_status simclr__loss_reserve(simclr_loss *loss, int64_t rows, int64_t dim);

#endif
