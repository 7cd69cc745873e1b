/* SwAV's swapped prediction loss and its Sinkhorn-Knopp codes (see
 * swav_loss.h). The passes: normalize the embeddings (rows_normalize, as
 * F.normalize with eps 1e-12), scores by one GEMM, codes per view in
 * double, the log-softmax and the gradient at the scores per row in double,
 * then two GEMMs (into the embeddings' unit vectors and the prototypes) and
 * the gradient through the normalization (rows_normalize_backward). */
#include "swav_loss.h"

#include <math.h>
#include <string.h>

#include "../backend/backend.h"

int simclr__sinkhorn(int64_t b, int64_t k, const float *s, int64_t lds, double eps, int iters, double *work,
                     float *q, int64_t ldq)
{
    /* Each prototype's largest score is subtracted: a factor per prototype,
     * which the first prototype scaling below cancels exactly (iters >= 1),
     * and every prototype keeps an entry of 1 (no sum underflows to 0). */
    double *top = work + b * k;
    for (int64_t j = 0; j < k; j++) top[j] = -INFINITY;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < k; j++) top[j] = s[i * lds + j] > top[j] ? s[i * lds + j] : top[j];
    double total = 0;
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < k; j++) total += work[i * k + j] = exp(((double)s[i * lds + j] - top[j]) / eps);
    if (!(total > 0) || !isfinite(total)) return -1;
    for (int64_t x = 0; x < b * k; x++) work[x] /= total;
    for (int it = 0; it < iters; it++) {
        /* Each prototype's total to 1/k: its column of work. */
        for (int64_t j = 0; j < k; j++) {
            double r = 0;
            for (int64_t i = 0; i < b; i++) r += work[i * k + j];
            if (!(r > 0) || !isfinite(r)) return -1;
            const double f = 1.0 / (r * (double)k);
            for (int64_t i = 0; i < b; i++) work[i * k + j] *= f;
        }
        /* Each sample's total to 1/b: its row. */
        for (int64_t i = 0; i < b; i++) {
            double c = 0;
            for (int64_t j = 0; j < k; j++) c += work[i * k + j];
            if (!(c > 0) || !isfinite(c)) return -1;
            const double f = 1.0 / (c * (double)b);
            for (int64_t j = 0; j < k; j++) work[i * k + j] *= f;
        }
    }
    for (int64_t i = 0; i < b; i++)
        for (int64_t j = 0; j < k; j++) q[i * ldq + j] = (float)(work[i * k + j] * (double)b);
    return 0;
}

simclr_status simclr__swav_scratch_new(simclr_context *ctx, const char *fn, int views, int64_t b, int64_t d, int64_t k,
                                       simclr__swav_scratch *out)
{
    const int64_t rows = views * b;
    if (b < 1 || d < 1 || k < 1 || (uint64_t)rows > SIZE_MAX / sizeof(double) / (uint64_t)(d > k ? d : k))
        return simclr__fail(SIMCLR_E_SHAPE, "%s: %lld embeddings of %lld against %lld prototypes is too large", fn,
                            (long long)rows, (long long)d, (long long)k);
    simclr__swav_scratch s = {0};
    const size_t rd = (size_t)(rows * d), rk = (size_t)(rows * k), bk = (size_t)(b * k);
    s.u = simclr__malloc(ctx, rd * sizeof(float));
    s.norm = s.u ? simclr__malloc(ctx, (size_t)rows * sizeof(double)) : NULL;
    s.s = s.norm ? simclr__malloc(ctx, rk * sizeof(float)) : NULL;
    s.q = s.s ? simclr__malloc(ctx, rk * sizeof(float)) : NULL;
    s.ds = s.q ? simclr__malloc(ctx, rk * sizeof(float)) : NULL;
    s.work = s.ds ? simclr__malloc(ctx, (bk + (size_t)k) * sizeof(double)) : NULL;
    if (!s.work) {
        simclr__swav_scratch_free(ctx, &s);
        return simclr__nomem(fn, rd * sizeof(float) + (size_t)rows * sizeof(double) + 3 * rk * sizeof(float) +
                                     (bk + (size_t)k) * sizeof(double));
    }
    *out = s;
    return SIMCLR_OK;
}

void simclr__swav_scratch_free(simclr_context *ctx, simclr__swav_scratch *s)
{
    simclr__free(ctx, s->u);
    simclr__free(ctx, s->norm);
    simclr__free(ctx, s->s);
    simclr__free(ctx, s->q);
    simclr__free(ctx, s->ds);
    simclr__free(ctx, s->work);
    memset(s, 0, sizeof *s);
}

static int all_finite(const float *x, int64_t count)
{
    int bad = 0;
    for (int64_t i = 0; i < count; i++) bad |= !isfinite(x[i]);
    return !bad;
}

static int64_t argmax(const float *x, int64_t k)
{
    int64_t best = 0;
    for (int64_t j = 1; j < k; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

simclr_status simclr__swav_loss(simclr_context *ctx, const char *fn, const simclr__swav_params *p, int views,
                                int64_t b, int64_t d, int64_t k, const float *z, const float *c,
                                simclr__swav_scratch *scr, double *loss, double *accuracy, float *dz, float *dc,
                                float dc_scale)
{
    const simclr__backend *be = ctx->backend;
    const int64_t rows = views * b;
    if (!all_finite(z, rows * d)) return simclr__fail(SIMCLR_E_NUMERIC, "%s: an embedding holds a NaN or infinity", fn);
    if (!all_finite(c, k * d)) return simclr__fail(SIMCLR_E_NUMERIC, "%s: a prototype holds a NaN or infinity", fn);
    be->rows_normalize(ctx, rows, d, z, scr->u, scr->norm);
    be->gemm(ctx, 0, 1, rows, k, d, 1.0f, scr->u, d, c, d, 0.0f, scr->s, k);
    /* Codes of every view, without gradient. */
    for (int v = 0; v < views; v++)
        if (simclr__sinkhorn(b, k, scr->s + v * b * k, k, p->epsilon, p->iters, scr->work, scr->q + v * b * k, k))
            return simclr__fail(SIMCLR_E_NUMERIC,
                                "%s: Sinkhorn-Knopp broke down for view %d (a prototype or sample sum of exp(scores "
                                "/ %g) is 0 or infinite)", fn, v, p->epsilon);
    /* The swapped predictions: view t's scores predict every other view's codes. */
    const double w = 1.0 / ((double)views * (double)(views - 1)), tau = p->temperature;
    double total = 0;
    int64_t hits = 0;
    for (int t = 0; t < views; t++)
        for (int64_t i = 0; i < b; i++) {
            const float *st = scr->s + (t * b + i) * k;
            float *g = scr->ds + (t * b + i) * k;
            double top = -INFINITY, sum = 0;
            for (int64_t j = 0; j < k; j++) top = st[j] / tau > top ? st[j] / tau : top;
            for (int64_t j = 0; j < k; j++) sum += exp(st[j] / tau - top);
            const double lse = top + log(sum);
            const int64_t pick = argmax(st, k);
            for (int64_t j = 0; j < k; j++) g[j] = 0;
            for (int s = 0; s < views; s++) {
                if (s == t) continue;
                const float *qs = scr->q + (s * b + i) * k;
                double qsum = 0, row = 0;
                for (int64_t j = 0; j < k; j++) {
                    qsum += qs[j];
                    row -= qs[j] * (st[j] / tau - lse);
                }
                total += w * row;
                hits += argmax(qs, k) == pick;
                for (int64_t j = 0; j < k; j++)
                    g[j] += (float)(w / ((double)b * tau) * (exp(st[j] / tau - lse) * qsum - qs[j]));
            }
        }
    *loss = total / (double)b;
    if (accuracy) *accuracy = (double)hits / ((double)views * (double)(views - 1) * (double)b);
    if (!isfinite(*loss)) return SIMCLR_OK; /* the caller refuses it; no gradient written */
    if (dc) be->gemm(ctx, 1, 0, k, d, rows, dc_scale, scr->ds, k, scr->u, d, 1.0f, dc, d);
    be->gemm(ctx, 0, 0, rows, d, k, 1.0f, scr->ds, k, c, d, 0.0f, dz, d);
    be->rows_normalize_backward(ctx, rows, d, scr->u, scr->norm, dz);
    return SIMCLR_OK;
}
