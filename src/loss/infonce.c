/* InfoNCE against extra negatives (MoCo v2's loss).
 *
 * Forward: u = q / max(||q||, eps), kh = k / max(||k||, eps) row-wise;
 * positive logit p_i = u_i . kh_i / T; negative logits L = u neg^T / T by one
 * GEMM ([n, kq]); loss = mean_i (lse_i - p_i), lse_i over [p_i, L_i.].
 *
 * Backward (queries only: MoCo detaches the keys, and the queue is data):
 * with P the row softmax over [p_i, L_i.], dlogit = (P - e_0) / n, so
 *   du_i = ((P_i0 - 1) kh_i + sum_j P_ij neg_j) / (n T)
 * (one more GEMM), then dq_i = (du_i - u_i (u_i . du_i)) / ||q_i||, or
 * du_i / eps where the clamp is active.
 *
 * This file owns the buffers and the order of the passes; the passes run in
 * the backend (rows_normalize, gemm, infonce_rows, infonce_weights,
 * rows_normalize_backward). */
#include "infonce.h"

#include <math.h>
#include <string.h>

#include "../backend/backend.h"

struct simclr__infonce {
    simclr_context *ctx;
    float *u;      /* [n, d] normalized queries */
    float *kh;     /* [n, d] normalized keys */
    float *s;      /* [n, kq] negative logits, then their softmax weights */
    double *qnorm; /* [n] */
    double *pos;   /* [n] positive logits */
    double *lse;   /* [n] */
    size_t nd_cap, s_cap, n_cap;
    int64_t n, d, kq;
    double temperature;
    const float *neg; /* borrowed from the last forward */
    int has_forward;
};

simclr_status simclr__infonce_create(simclr_context *ctx, simclr__infonce **out)
{
    simclr__infonce *l = simclr__calloc(ctx, 1, sizeof *l);
    if (!l) return simclr__nomem("infonce", sizeof *l);
    l->ctx = ctx;
    *out = l;
    return SIMCLR_OK;
}

void simclr__infonce_destroy(simclr__infonce *l)
{
    if (!l) return;
    simclr__free(l->ctx, l->u);
    simclr__free(l->ctx, l->kh);
    simclr__free(l->ctx, l->s);
    simclr__free(l->ctx, l->qnorm);
    simclr__free(l->ctx, l->pos);
    simclr__free(l->ctx, l->lse);
    simclr__free(l->ctx, l);
}

/* Every growing buffer is allocated before any old one is released. */
simclr_status simclr__infonce_reserve(simclr__infonce *l, int64_t n, int64_t d, int64_t kq)
{
    static const char fn[] = "infonce";
    if (n < 1 || d < 1 || kq < 1 || (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)d ||
        (uint64_t)n > SIZE_MAX / sizeof(float) / (uint64_t)kq)
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld x %lld against %lld negatives is too large", fn, (long long)n,
                            (long long)d, (long long)kq);
    size_t nd = (size_t)n * (size_t)d, ns = (size_t)n * (size_t)kq, nn = (size_t)n;
    float *u = NULL, *kh = NULL, *s = NULL;
    double *qn = NULL, *pos = NULL, *lse = NULL;
    int grow_nd = nd > l->nd_cap, grow_s = ns > l->s_cap, grow_n = nn > l->n_cap;
    int ok = 1;
    if (grow_nd) {
        u = simclr__malloc(l->ctx, nd * sizeof *u);
        kh = u ? simclr__malloc(l->ctx, nd * sizeof *kh) : NULL;
        ok = kh != NULL;
    }
    if (ok && grow_s) ok = (s = simclr__malloc(l->ctx, ns * sizeof *s)) != NULL;
    if (ok && grow_n) {
        qn = simclr__malloc(l->ctx, nn * sizeof *qn);
        pos = qn ? simclr__malloc(l->ctx, nn * sizeof *pos) : NULL;
        lse = pos ? simclr__malloc(l->ctx, nn * sizeof *lse) : NULL;
        ok = lse != NULL;
    }
    if (!ok) {
        simclr__free(l->ctx, u);
        simclr__free(l->ctx, kh);
        simclr__free(l->ctx, s);
        simclr__free(l->ctx, qn);
        simclr__free(l->ctx, pos);
        return simclr__nomem(fn, (2 * nd + ns) * sizeof(float) + 3 * nn * sizeof(double));
    }
    if (grow_nd || grow_s || grow_n) l->has_forward = 0;
    if (grow_nd) {
        simclr__free(l->ctx, l->u);
        simclr__free(l->ctx, l->kh);
        l->u = u;
        l->kh = kh;
        l->nd_cap = nd;
    }
    if (grow_s) {
        simclr__free(l->ctx, l->s);
        l->s = s;
        l->s_cap = ns;
    }
    if (grow_n) {
        simclr__free(l->ctx, l->qnorm);
        simclr__free(l->ctx, l->pos);
        simclr__free(l->ctx, l->lse);
        l->qnorm = qn;
        l->pos = pos;
        l->lse = lse;
        l->n_cap = nn;
    }
    return SIMCLR_OK;
}

static int all_finite(const float *x, int64_t count)
{
    int bad = 0;
    for (int64_t i = 0; i < count; i++) bad |= !isfinite(x[i]);
    return !bad;
}

static void negative_logits(simclr__infonce *l)
{
    l->ctx->backend->gemm(l->ctx, 0, 1, l->n, l->kq, l->d, (float)(1.0 / l->temperature), l->u, l->d, l->neg,
                          l->d, 0.0f, l->s, l->kq);
}

simclr_status simclr__infonce_forward(simclr__infonce *l, const char *fn, const float *q, const float *k,
                                      int64_t n, int64_t d, const float *neg, int64_t kq, double temperature,
                                      float *k_unit, double *loss, double *accuracy)
{
    if (!all_finite(q, n * d)) return simclr__fail(SIMCLR_E_NUMERIC, "%s: a query holds a NaN or infinity", fn);
    if (!all_finite(k, n * d)) return simclr__fail(SIMCLR_E_NUMERIC, "%s: a key holds a NaN or infinity", fn);
    if (!all_finite(neg, kq * d))
        return simclr__fail(SIMCLR_E_NUMERIC, "%s: a queued negative holds a NaN or infinity", fn);
    SIMCLR__TRY(simclr__infonce_reserve(l, n, d, kq));
    l->n = n;
    l->d = d;
    l->kq = kq;
    l->neg = neg;
    l->temperature = temperature;
    const simclr__backend *be = l->ctx->backend;
    be->rows_normalize(l->ctx, n, d, q, l->u, l->qnorm);
    be->rows_normalize(l->ctx, n, d, k, l->kh, l->pos); /* the key norms are not kept: pos is scratch here */
    negative_logits(l);
    int64_t hits = be->infonce_rows(l->ctx, n, d, kq, temperature, l->u, l->kh, l->s, l->pos, l->lse);
    double total = 0;
    for (int64_t i = 0; i < n; i++) total += l->lse[i] - l->pos[i];
    l->has_forward = 1;
    if (k_unit) memcpy(k_unit, l->kh, (size_t)(n * d) * sizeof *k_unit);
    *loss = total / (double)n;
    if (accuracy) *accuracy = (double)hits / (double)n;
    return SIMCLR_OK;
}

simclr_status simclr__infonce_backward(simclr__infonce *l, float *dq)
{
    if (!l->has_forward) return simclr__fail(SIMCLR_E_STATE, "infonce: no forward precedes this backward");
    const simclr__backend *be = l->ctx->backend;
    be->infonce_weights(l->ctx, l->n, l->d, l->kq, 1.0 / ((double)l->n * l->temperature), l->s, l->pos, l->lse, l->kh,
                        dq);
    be->gemm(l->ctx, 0, 0, l->n, l->d, l->kq, 1.0f, l->s, l->kq, l->neg, l->d, 1.0f, dq, l->d);
    be->rows_normalize_backward(l->ctx, l->n, l->d, l->u, l->qnorm, dq);
    /* s now holds weights, not logits: a second backward recomputes them. */
    negative_logits(l);
    return SIMCLR_OK;
}
