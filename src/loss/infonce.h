/* InfoNCE with one positive per query and a shared set of extra negatives
 * (MoCo's queue; the same shape would serve negatives gathered from other
 * processes). Internal: the MoCo trainer drives it; tests reach it directly. */
#ifndef SIMCLR_LOSS_INFONCE_H
#define SIMCLR_LOSS_INFONCE_H

#include "../core/context.h"

typedef struct simclr__infonce simclr__infonce;

simclr_status simclr__infonce_create(simclr_context *ctx, simclr__infonce **out);
void simclr__infonce_destroy(simclr__infonce *l);

/* Grows the scratch for n queries of d features against kq negatives ahead
 * of the first step (SIMCLR_E_NOMEM leaves the previous state usable). */
simclr_status simclr__infonce_reserve(simclr__infonce *l, int64_t n, int64_t d, int64_t kq);

/* q, k: [n, d] raw (normalized inside, as F.normalize); neg: [kq, d] used as
 * given (MoCo's queue holds normalized keys) and borrowed until backward.
 * Logits of row i: [u_i . k_i, u_i . neg_j ...] / temperature; loss = mean of
 * the cross-entropies with target 0. Writes the normalized keys into k_unit
 * ([n, d], may be NULL), the loss and the top-1 accuracy (positive logit >=
 * every negative; may be NULL). SIMCLR_E_NUMERIC (fn named) when q, k or neg
 * hold a NaN or infinity; SIMCLR_E_NOMEM. */
simclr_status simclr__infonce_forward(simclr__infonce *l, const char *fn, const float *q, const float *k,
                                      int64_t n, int64_t d, const float *neg, int64_t kq, double temperature,
                                      float *k_unit, double *loss, double *accuracy);

/* d(loss)/dq into dq [n, d] for the last forward (keys and negatives carry
 * no gradient). SIMCLR_E_STATE without a forward. */
simclr_status simclr__infonce_backward(simclr__infonce *l, float *dq);

#endif
