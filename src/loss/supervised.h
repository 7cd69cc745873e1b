/* Internals of the supervised losses (supervised.c) that tests reach. */
#ifndef SIMCLR_LOSS_SUPERVISED_H
#define SIMCLR_LOSS_SUPERVISED_H

#include "simclr.h"

/* The last successful forward's loss in double (the public forward rounds
 * it to float); 0 before one. For a cross-entropy or distillation loss. */
double simclr__supervised_value(const simclr_loss *loss);

#endif
