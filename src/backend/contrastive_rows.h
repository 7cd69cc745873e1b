/* The row-wise work of the contrastive losses (loss/ntxent.c,
 * loss/infonce.c), one row at a time, shared by the generic slots
 * (fallback.c, one thread) and the cpu backend's pooled copies
 * (cpu/contrastive.c): one definition of each, so every backend and thread
 * count computes the same operations in the same order. Each function
 * writes only its own row(s), so rows may run on any thread.
 * Internal to src/backend/. */
#ifndef SIMCLR_BACKEND_CONTRASTIVE_ROWS_H
#define SIMCLR_BACKEND_CONTRASTIVE_ROWS_H

#include <math.h>

#include "backend.h"

/* F.normalize's clamp: rows shorter than this are divided by it instead. */
#define SIMCLR__NORM_EPS 1e-12

static inline void simclr__row_normalize(int64_t d, const float *x, float *y, double *norm)
{
    double ss = 0;
    for (int64_t k = 0; k < d; k++) ss += (double)x[k] * x[k];
    double nrm = sqrt(ss);
    *norm = nrm;
    double inv = 1.0 / (nrm > SIMCLR__NORM_EPS ? nrm : SIMCLR__NORM_EPS);
    for (int64_t k = 0; k < d; k++) y[k] = (float)(x[k] * inv);
}

static inline void simclr__row_normalize_backward(int64_t d, const float *u, double norm, float *g)
{
    if (norm > SIMCLR__NORM_EPS) {
        double dot = 0;
        for (int64_t k = 0; k < d; k++) dot += (double)u[k] * g[k];
        double inv = 1.0 / norm;
        for (int64_t k = 0; k < d; k++) g[k] = (float)((g[k] - u[k] * dot) * inv);
    } else {
        for (int64_t k = 0; k < d; k++) g[k] = (float)(g[k] / SIMCLR__NORM_EPS);
    }
}

/* NT-Xent row i of the logits s [m, m] (m = views * n): log-sum-exp without
 * the diagonal, the row's loss (lse minus the positives' mean logit) and
 * whether the most similar other row is a positive. */
static inline void simclr__ntxent_row(int64_t m, int64_t n, int views, const float *s, int64_t i, double *lse,
                                      double *row_loss, int *row_hit)
{
    const float *si = s + i * m;
    int64_t best = -1;
    float mx = -INFINITY;
    for (int64_t c = 0; c < m; c++)
        if (c != i && (best < 0 || si[c] > mx)) {
            mx = si[c];
            best = c;
        }
    double sum = 0;
    for (int64_t c = 0; c < m; c++)
        if (c != i) sum += exp((double)si[c] - mx);
    double l = mx + log(sum);
    double pos = 0;
    for (int v = 0; v < views; v++) {
        int64_t c = i % n + (int64_t)v * n;
        if (c != i) pos += si[c];
    }
    lse[i] = l;
    row_loss[i] = l - pos / (views - 1);
    row_hit[i] = best % n == i % n;
}

/* NT-Xent's gradient pairs (i, c > i) of row i: G_ic = G_ci = (P_ic + P_ci
 * - 2 t_ic) * scale over the logits in s, in place (the pairs belong to row
 * i alone). */
static inline void simclr__ntxent_grad_row(int64_t m, int64_t n, int views, double scale, float *s,
                                           const double *lse, int64_t i)
{
    const double t_pos = 2.0 / (views - 1);
    s[i * m + i] = 0.0f;
    for (int64_t c = i + 1; c < m; c++) {
        double g = exp((double)s[i * m + c] - lse[i]) + exp((double)s[c * m + i] - lse[c]);
        if (c % n == i % n) g -= t_pos;
        s[i * m + c] = s[c * m + i] = (float)(g * scale);
    }
}

/* InfoNCE row i: positive logit u_i . kh_i / T, log-sum-exp over [positive,
 * the negatives' logits s_i.]; returns 1 when the positive is the largest. */
static inline int simclr__infonce_row(int64_t d, int64_t kq, double temperature, const float *u, const float *kh,
                                      const float *s, int64_t i, double *pos, double *lse)
{
    double p = 0;
    for (int64_t k = 0; k < d; k++) p += (double)u[i * d + k] * kh[i * d + k];
    p /= temperature;
    const float *si = s + i * kq;
    double mx = p, mneg = -INFINITY;
    for (int64_t c = 0; c < kq; c++)
        if (si[c] > mneg) mneg = si[c];
    if (mneg > mx) mx = mneg;
    double sum = exp(p - mx);
    for (int64_t c = 0; c < kq; c++) sum += exp((double)si[c] - mx);
    pos[i] = p;
    lse[i] = mx + log(sum);
    return p >= mneg;
}

/* InfoNCE's backward weights of row i: the negatives' logits become
 * P_ij * scale in place, and dq_i = (P_i0 - 1) * scale * kh_i. */
static inline void simclr__infonce_weights_row(int64_t d, int64_t kq, double scale, float *s, const double *pos,
                                               const double *lse, const float *kh, float *dq, int64_t i)
{
    float *si = s + i * kq;
    for (int64_t c = 0; c < kq; c++) si[c] = (float)(exp((double)si[c] - lse[i]) * scale);
    double gp = (exp(pos[i] - lse[i]) - 1.0) * scale;
    for (int64_t k = 0; k < d; k++) dq[i * d + k] = (float)(gp * kh[i * d + k]);
}

#endif
