/* The linear classification head (linear_head.c), as other layers see it. */
#ifndef SIMCLR_MODEL_LINEAR_HEAD_H
#define SIMCLR_MODEL_LINEAR_HEAD_H

#include "module.h"

/* 1 when m was made by simclr_linear_head_create (0 for NULL). */
int simclr__is_linear_head(const simclr_module *m);

/* The head's weight [K, in] and bias [K], read in place (the classifier
 * reads them at every run); SIMCLR_E_INVALID (no message) for another kind. */
simclr_status simclr__linear_head_params(const simclr_module *m, const float **w, const float **b);

#endif
