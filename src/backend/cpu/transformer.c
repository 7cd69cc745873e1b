/* Transformer kernels of the "cpu" backend on row-major token activations
 * [rows, d]: layer norm, GELU and the row softmax of attention.
 *
 * Determinism: every row (layer norm, softmax) or element (GELU) is
 * computed by one worker in a fixed order, and the layer-norm parameter
 * gradients are column sums that each worker computes for its own band of
 * columns over all rows in row order, so the bytes do not depend on how the
 * pool cuts the range (any thread count gives the same result). Row sums
 * run in 8 float lanes folded into double, as in layers.c. */
#include <math.h>

#include "kernels.h"

/* 1 / sqrt(2) and 1 / sqrt(2 pi). */
#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT2PI 0.39894228040143267794f

typedef struct {
    int64_t rows, d;
    float eps;
    const float *x, *gamma, *beta, *mean, *rstd, *dy, *y;
    float *out, *omean, *orstd, *dx, *dgamma, *dbeta;
} tf_job;

/* sum of a[i] (b NULL) or of a[i] * b[i], in 8 float lanes folded into double. */
static double lane_sum(const float *a, const float *b, int64_t n)
{
    float l[8] = {0};
    int64_t i = 0;
    if (b)
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) l[k] += a[i + k] * b[i + k];
    else
        for (; i + 8 <= n; i += 8)
            for (int k = 0; k < 8; k++) l[k] += a[i + k];
    double s = 0;
    for (int k = 0; k < 8; k++) s += l[k];
    for (; i < n; i++) s += b ? (double)(a[i] * b[i]) : (double)a[i];
    return s;
}

/* Row lengths here are feature widths (up to a few thousand), so one fold
 * per row is accurate enough; long rows are cut into 4096-value pieces. */
static double row_sum(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i += 4096) s += lane_sum(a + i, b ? b + i : NULL, n - i < 4096 ? n - i : 4096);
    return s;
}

/* ---- layer norm ---- */

static void ln_fwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * d;
        float *y = j->out + r * d;
        float mu = (float)(row_sum(x, NULL, d) / (double)d);
        /* Second pass on the centred values (accurate when |mean| >> std). */
        double q = 0;
        for (int64_t i = 0; i < d; i += 4096) {
            int64_t stop = i + 4096 < d ? i + 4096 : d;
            float l[8] = {0};
            int64_t k = i;
            for (; k + 8 <= stop; k += 8)
                for (int t = 0; t < 8; t++) l[t] += (x[k + t] - mu) * (x[k + t] - mu);
            for (int t = 0; t < 8; t++) q += l[t];
            for (; k < stop; k++) q += (double)((x[k] - mu) * (x[k] - mu));
        }
        float rs = (float)(1.0 / sqrt(q / (double)d + (double)j->eps));
        j->omean[r] = mu;
        j->orstd[r] = rs;
        for (int64_t k = 0; k < d; k++) y[k] = (x[k] - mu) * rs * j->gamma[k] + j->beta[k];
    }
}

void simclr__cpu_layernorm_forward(simclr_context *ctx, int64_t rows, int64_t d, const float *x,
                                   const float *gamma, const float *beta, float eps, float *y, float *mean,
                                   float *rstd)
{
    tf_job j = {.rows = rows, .d = d, .eps = eps, .x = x, .gamma = gamma, .beta = beta, .out = y, .omean = mean,
                .orstd = rstd};
    simclr__pool_for(ctx->pool, rows, SIMCLR__GRAIN / (d > 0 ? d : 1), ln_fwd_task, &j);
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma,
 * xhat = (x - mean) * rstd. */
static void ln_dx_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    int64_t d = j->d;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * d, *dy = j->dy + r * d;
        float *dx = j->dx + r * d;
        float mu = j->mean[r], rs = j->rstd[r];
        double sa = 0, sb = 0;
        for (int64_t i = 0; i < d; i += 4096) {
            int64_t stop = i + 4096 < d ? i + 4096 : d;
            float la[8] = {0}, lb[8] = {0};
            int64_t k = i;
            for (; k + 8 <= stop; k += 8)
                for (int t = 0; t < 8; t++) {
                    float g = dy[k + t] * j->gamma[k + t];
                    la[t] += g;
                    lb[t] += g * ((x[k + t] - mu) * rs);
                }
            for (int t = 0; t < 8; t++) sa += la[t], sb += lb[t];
            for (; k < stop; k++) {
                float g = dy[k] * j->gamma[k];
                sa += g;
                sb += (double)(g * ((x[k] - mu) * rs));
            }
        }
        float a = (float)(sa / (double)d), c = (float)(sb / (double)d);
        for (int64_t k = 0; k < d; k++) dx[k] = rs * (dy[k] * j->gamma[k] - a - ((x[k] - mu) * rs) * c);
    }
}

/* Column sums for dgamma / dbeta: the task's columns in bands of 64, rows
 * streamed in order, double accumulators. */
#define LN_BAND 64

static void ln_param_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    int64_t d = j->d;
    for (int64_t c0 = b; c0 < e; c0 += LN_BAND) {
        int64_t c1 = c0 + LN_BAND < e ? c0 + LN_BAND : e;
        double ag[LN_BAND] = {0}, ab[LN_BAND] = {0};
        for (int64_t r = 0; r < j->rows; r++) {
            const float *x = j->x + r * d, *dy = j->dy + r * d;
            float mu = j->mean[r], rs = j->rstd[r];
            for (int64_t c = c0; c < c1; c++) {
                ag[c - c0] += (double)(dy[c] * ((x[c] - mu) * rs));
                ab[c - c0] += dy[c];
            }
        }
        for (int64_t c = c0; c < c1; c++) {
            j->dgamma[c] += (float)ag[c - c0];
            j->dbeta[c] += (float)ab[c - c0];
        }
    }
}

void simclr__cpu_layernorm_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *x,
                                    const float *gamma, const float *mean, const float *rstd, const float *dy,
                                    float *dx, float *dgamma, float *dbeta)
{
    tf_job j = {.rows = rows, .d = d, .x = x, .gamma = gamma, .mean = mean, .rstd = rstd, .dy = dy, .dx = dx,
                .dgamma = dgamma, .dbeta = dbeta};
    /* Parameter gradients first: dx may alias dy. */
    simclr__pool_for(ctx->pool, d, 1, ln_param_task, &j);
    simclr__pool_for(ctx->pool, rows, SIMCLR__GRAIN / (d > 0 ? d : 1), ln_dx_task, &j);
}

/* ---- GELU (exact: x * Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2) ---- */

static void gelu_fwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        j->out[i] = 0.5f * v * (1.0f + erff(v * INV_SQRT2));
    }
}

void simclr__cpu_gelu_forward(simclr_context *ctx, int64_t n, const float *x, float *y)
{
    tf_job j = {.x = x, .out = y};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN / 8, gelu_fwd_task, &j);
}

/* GELU'(x) = Phi(x) + x * phi(x). */
static void gelu_bwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    for (int64_t i = b; i < e; i++) {
        float v = j->x[i];
        float cdf = 0.5f * (1.0f + erff(v * INV_SQRT2)), pdf = expf(-0.5f * v * v) * INV_SQRT2PI;
        j->dx[i] = j->dy[i] * (cdf + v * pdf);
    }
}

void simclr__cpu_gelu_backward(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx)
{
    tf_job j = {.x = x, .dy = dy, .dx = dx};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN / 8, gelu_bwd_task, &j);
}

/* ---- row softmax ---- */

static void softmax_fwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    int64_t n = j->d;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * n;
        float *y = j->out + r * n;
        float mx = x[0];
        for (int64_t k = 1; k < n; k++) mx = x[k] > mx ? x[k] : mx;
        for (int64_t k = 0; k < n; k++) y[k] = expf(x[k] - mx);
        float inv = (float)(1.0 / row_sum(y, NULL, n));
        for (int64_t k = 0; k < n; k++) y[k] *= inv;
    }
}

void simclr__cpu_softmax_forward(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *y)
{
    tf_job j = {.rows = rows, .d = cols, .x = x, .out = y};
    simclr__pool_for(ctx->pool, rows, SIMCLR__GRAIN / (cols > 0 ? cols : 1), softmax_fwd_task, &j);
}

static void softmax_bwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const tf_job *j = arg;
    int64_t n = j->d;
    for (int64_t r = b; r < e; r++) {
        const float *y = j->y + r * n, *dy = j->dy + r * n;
        float *dx = j->dx + r * n;
        float s = (float)row_sum(dy, y, n);
        for (int64_t k = 0; k < n; k++) dx[k] = y[k] * (dy[k] - s);
    }
}

void simclr__cpu_softmax_backward(simclr_context *ctx, int64_t rows, int64_t cols, const float *y, const float *dy,
                                  float *dx)
{
    tf_job j = {.rows = rows, .d = cols, .y = y, .dy = dy, .dx = dx};
    simclr__pool_for(ctx->pool, rows, SIMCLR__GRAIN / (cols > 0 ? cols : 1), softmax_bwd_task, &j);
}
