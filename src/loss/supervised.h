/* Internals of the supervised losses (supervised.c) that tests reach. */
#ifndef SIMCLR_LOSS_SUPERVISED_H
#define SIMCLR_LOSS_SUPERVISED_H

#include "simclr.h"

/* The last successful forward's loss in double (the public forward rounds
 * it to float); 0 before one. For a cross-entropy or distillation loss. */
double simclr__supervised_value(const simclr_loss *loss);

/* 1 for a cross-entropy or distillation loss (the handles NT-Xent shares). */
int simclr__is_supervised(const simclr_loss *loss);

/* Grows the kept gradient to rows x classes ahead of a step, so a trainer
 * fails early (SIMCLR_E_NOMEM, SIMCLR_E_SHAPE) and the forwards of that
 * batch size allocate nothing; SIMCLR_E_INVALID for another kind. The
 * previous forward stays usable on error. */
simclr_status simclr__supervised_reserve(simclr_loss *loss, int64_t rows);

#endif
