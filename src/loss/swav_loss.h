/* SwAV's loss (Caron et al. 2020, "Unsupervised Learning of Visual Features
 * by Contrasting Cluster Assignments", Algorithm 1 and the Sinkhorn-Knopp
 * function of its appendix): codes from Sinkhorn-Knopp on the prototype
 * scores of each view, the swapped prediction of each view's code from the
 * other views' scores. Internal: the SwAV trainer drives it
 * (src/train/method_swav.c); tests reach it directly. */
#ifndef SIMCLR_LOSS_SWAV_LOSS_H
#define SIMCLR_LOSS_SWAV_LOSS_H

#include "../core/context.h"

/* Sinkhorn-Knopp on exp(s / eps) for b samples against k prototypes (s
 * [b, k], row stride lds): the matrix is scaled to total 1, then `iters`
 * times its prototype sums are made 1/k and its sample sums 1/b; the codes
 * q = b times the result (each sample's row sums to 1). iters >= 1.
 * Computed in double in work [b * k + k] (each prototype's largest score is
 * subtracted first, which the first prototype scaling cancels); written as
 * float into q [b, k] (stride ldq).
 * Returns 0, or -1 when a prototype or sample sum is not a positive finite
 * number (q then unspecified). */
int simclr__sinkhorn(int64_t b, int64_t k, const float *s, int64_t lds, double eps, int iters, double *work,
                     float *q, int64_t ldq);

/* The scratch of simclr__swav_loss for v views of b samples, width d, k
 * prototypes. */
typedef struct simclr__swav_scratch {
    float *u;     /* [v b, d] normalized embeddings */
    double *norm; /* [v b] their norms */
    float *s;     /* [v b, k] scores u C^T */
    float *q;     /* [v b, k] codes */
    float *ds;    /* [v b, k] the gradient at the scores */
    double *work; /* [b k + k] Sinkhorn */
} simclr__swav_scratch;

/* Allocates the scratch (SIMCLR_E_NOMEM naming fn, nothing kept). */
simclr_status simclr__swav_scratch_new(simclr_context *ctx, const char *fn, int views, int64_t b, int64_t d, int64_t k,
                                       simclr__swav_scratch *out);
void simclr__swav_scratch_free(simclr_context *ctx, simclr__swav_scratch *s);

/* The settings of one evaluation. */
typedef struct simclr__swav_params {
    double temperature, epsilon;
    int iters;
} simclr__swav_params;

/* z [v b, d] (row i + t b: view t of sample i), prototypes c [k, d] (used
 * as given). Every view gives codes (Sinkhorn over its b samples, no
 * gradient) and is predicted from the others:
 *   loss = 1/v sum_s 1/(v-1) sum_{t != s} 1/b sum_i -sum_j q_s[i,j] log softmax(s_t[i] / T)_j.
 * Writes the loss, the accuracy (the fraction of (s, t, i) whose most
 * probable prototype under view t is the largest code of view s), the
 * gradient at z into dz [v b, d] and adds dc_scale times the gradient at c
 * into dc [k, d] (dc NULL: not wanted). SIMCLR_E_NUMERIC (fn named) for a
 * non-finite z or c or a Sinkhorn that breaks down (nothing written to dz
 * or dc then). */
simclr_status simclr__swav_loss(simclr_context *ctx, const char *fn, const simclr__swav_params *p, int views,
                                int64_t b, int64_t d, int64_t k, const float *z, const float *c,
                                simclr__swav_scratch *scr, double *loss, double *accuracy, float *dz, float *dc,
                                float dc_scale);

#endif
