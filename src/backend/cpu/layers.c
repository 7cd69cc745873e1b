/* Elementwise and reduction kernels of the "cpu" backend on channel-major
 * activations [C, M]: batch-norm statistics are contiguous row reductions;
 * scale/shift + residual + ReLU is one fused pass; the batch-norm backward is
 * one reduction pass and one dx pass. Everything runs on the context's pool
 * in static chunks (never calls BLAS). Sums run in 8 float lanes folded into
 * double every few thousand terms: vectorizable and accurate. */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define FOLD 2048

/* 8 float lanes, written out: gcc did not vectorize the lane loops of the
 * two reductions below (they ran in scalar adds, 10% of a width-16 step).
 * Lane l still sums the terms i = l mod 8 of each FOLD span, and the lanes
 * fold into double in lane order, exactly as the scalar loops did, in every
 * ISA copy (on the portable one, as two 4-lane halves). */
typedef float v8 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float)), may_alias));
typedef int32_t v8i __attribute__((vector_size(8 * sizeof(int32_t))));

/* A macro, not a function: a vector return value would change the portable copy's ABI. */
#define load8(p) (*(const v8 *)(p))

/* Row spans of a flat [rows, m] index range [b, e): flat splits stay
 * load-balanced even with few long rows. */
typedef struct row_job row_job;
typedef void (*span_fn)(const row_job *j, int64_t row, int64_t j0, int64_t j1);

static void for_row_spans(const row_job *j, int64_t b, int64_t e, int64_t m, span_fn fn)
{
    for (int64_t i = b; i < e;) {
        int64_t row = i / m, j0 = i % m, j1 = m < j0 + (e - i) ? m : j0 + (e - i);
        fn(j, row, j0, j1);
        i += j1 - j0;
    }
}

/* ---- layout ---- */

typedef struct {
    int64_t a, b, inner;
    const float *x;
    float *y;
} swap_job;

static void swap_task(void *arg, int64_t bg, int64_t en, int w)
{
    (void)w;
    const swap_job *j = arg;
    if (j->inner == 1) {
        /* Small 2-D transpose (features): rows of y in [bg, en). */
        for (int64_t jj = bg; jj < en; jj++)
            for (int64_t i = 0; i < j->a; i++) j->y[jj * j->a + i] = j->x[i * j->b + jj];
        return;
    }
    for (int64_t t = bg; t < en; t++) {
        int64_t i = t / j->b, jj = t % j->b;
        memcpy(j->y + (jj * j->a + i) * j->inner, j->x + t * j->inner, (size_t)j->inner * sizeof(float));
    }
}

void simclr__cpu_swap01(simclr_context *ctx, int64_t a, int64_t b, int64_t inner, const float *x, float *y)
{
    swap_job j = {a, b, inner, x, y};
    int64_t n = inner == 1 ? b : a * b, per = inner == 1 ? a : inner;
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN / (per > 0 ? per : 1), swap_task, &j);
}

/* ---- batch-norm statistics ---- */

struct row_job {
    int64_t c, m;
    const float *x, *y, *dy, *mean, *scale, *shift, *res, *ka, *kb, *kc;
    float *out0, *out1, *out, *dx, *dres;
    int relu;
};

/* Sums of (x - x0) and (x - x0)^2 with x0 the row's first value: the shift
 * keeps the one-pass variance accurate when |mean| >> std. */
static void moments_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const row_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        const float *row = j->x + r * j->m;
        float x0 = row[0];
        double s = 0, q = 0;
        for (int64_t i = 0; i < j->m;) {
            int64_t stop = i + FOLD < j->m ? i + FOLD : j->m;
            v8 ls = {0}, lq = {0};
            for (; i + 8 <= stop; i += 8) {
                v8 v = load8(row + i) - x0;
                ls += v;
                lq += v * v;
            }
            for (; i < stop; i++) {
                float v = row[i] - x0;
                ls[0] += v;
                lq[0] += v * v;
            }
            for (int l = 0; l < 8; l++) s += ls[l], q += lq[l];
        }
        double mu = s / (double)j->m, var = q / (double)j->m - mu * mu;
        j->out0[r] = (float)(x0 + mu);
        j->out1[r] = (float)(var > 0 ? var : 0);
    }
}

void simclr__cpu_row_moments(simclr_context *ctx, int64_t c, int64_t m, const float *x, float *mean, float *var)
{
    row_job j = {.c = c, .m = m, .x = x, .out0 = mean, .out1 = var};
    simclr__pool_for(ctx->pool, c, SIMCLR__GRAIN / (m > 0 ? m : 1), moments_task, &j);
}

/* ---- fused scale/shift + residual + ReLU ---- */

static void affine_span(const row_job *j, int64_t r, int64_t j0, int64_t j1)
{
    float s = j->scale ? j->scale[r] : 1.0f, t = j->shift ? j->shift[r] : 0.0f;
    const float *x = j->x + r * j->m;
    float *y = j->out + r * j->m;
    const float *res = j->res ? j->res + r * j->m : NULL;
    if (res && j->relu)
        for (int64_t i = j0; i < j1; i++) {
            float v = x[i] * s + t + res[i];
            y[i] = v > 0.0f ? v : 0.0f;
        }
    else if (res)
        for (int64_t i = j0; i < j1; i++) y[i] = x[i] * s + t + res[i];
    else if (j->relu)
        for (int64_t i = j0; i < j1; i++) {
            float v = x[i] * s + t;
            y[i] = v > 0.0f ? v : 0.0f;
        }
    else
        for (int64_t i = j0; i < j1; i++) y[i] = x[i] * s + t;
}

static void affine_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const row_job *j = arg;
    for_row_spans(j, b, e, j->m, affine_span);
}

void simclr__cpu_row_affine(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *scale,
                            const float *shift, const float *res, int relu, float *y)
{
    row_job j = {.c = c, .m = m, .x = x, .scale = scale, .shift = shift, .res = res, .relu = relu, .out = y};
    simclr__pool_for(ctx->pool, c * m, SIMCLR__GRAIN, affine_task, &j);
}

/* ---- batch-norm backward ---- */

static void bn_reduce_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const row_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->m, *dy = j->dy + r * j->m, *y = j->y ? j->y + r * j->m : NULL;
        float mu = j->mean[r];
        double s = 0, sx = 0;
        for (int64_t i = 0; i < j->m;) {
            int64_t stop = i + FOLD < j->m ? i + FOLD : j->m;
            v8 ls = {0}, lx = {0}, zero = {0};
            if (y)
                for (; i + 8 <= stop; i += 8) {
                    /* g = dy where y > 0, else +0 (as the scalar select). */
                    v8 g = (v8)((v8i)load8(dy + i) & (load8(y + i) > zero));
                    ls += g;
                    lx += g * (load8(x + i) - mu);
                }
            else
                for (; i + 8 <= stop; i += 8) {
                    v8 g = load8(dy + i);
                    ls += g;
                    lx += g * (load8(x + i) - mu);
                }
            for (; i < stop; i++) {
                float g = (y && !(y[i] > 0.0f)) ? 0.0f : dy[i];
                ls[0] += g;
                lx[0] += g * (x[i] - mu);
            }
            for (int l = 0; l < 8; l++) s += ls[l], sx += lx[l];
        }
        j->out0[r] = (float)s;
        j->out1[r] = (float)sx;
    }
}

void simclr__cpu_bn_backward_reduce(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                                    const float *dy, const float *mean, float *sum_g, float *sum_gx)
{
    row_job j = {.c = c, .m = m, .x = x, .y = y, .dy = dy, .mean = mean, .out0 = sum_g, .out1 = sum_gx};
    simclr__pool_for(ctx->pool, c, SIMCLR__GRAIN / (m > 0 ? m : 1), bn_reduce_task, &j);
}

static void bn_dx_span(const row_job *j, int64_t r, int64_t j0, int64_t j1)
{
    const float *x = j->x + r * j->m, *dy = j->dy + r * j->m, *y = j->y ? j->y + r * j->m : NULL;
    float *dx = j->dx + r * j->m, *dres = j->dres ? j->dres + r * j->m : NULL;
    float a = j->ka[r], kb = j->kb[r], mu = j->mean[r], c0 = j->kc[r];
    if (y && dres)
        for (int64_t i = j0; i < j1; i++) {
            float g = y[i] > 0.0f ? dy[i] : 0.0f;
            dres[i] = g;
            dx[i] = a * g + kb * (x[i] - mu) + c0;
        }
    else if (y)
        for (int64_t i = j0; i < j1; i++) {
            float g = y[i] > 0.0f ? dy[i] : 0.0f;
            dx[i] = a * g + kb * (x[i] - mu) + c0;
        }
    else if (dres)
        for (int64_t i = j0; i < j1; i++) {
            float g = dy[i];
            dres[i] = g;
            dx[i] = a * g + kb * (x[i] - mu) + c0;
        }
    else
        for (int64_t i = j0; i < j1; i++) dx[i] = a * dy[i] + kb * (x[i] - mu) + c0;
}

static void bn_dx_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const row_job *j = arg;
    for_row_spans(j, b, e, j->m, bn_dx_span);
}

void simclr__cpu_bn_backward_dx(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                                const float *dy, const float *mean, const float *ka, const float *kb,
                                const float *kc, float *dx, float *dres)
{
    row_job j = {.c = c, .m = m, .x = x, .y = y, .dy = dy, .mean = mean, .ka = ka, .kb = kb, .kc = kc,
                 .dx = dx, .dres = dres};
    simclr__pool_for(ctx->pool, c * m, SIMCLR__GRAIN, bn_dx_task, &j);
}

static void relu_bwd_task(void *arg, int64_t b, int64_t e, int w)
{
    (void)w;
    const row_job *j = arg;
    for (int64_t i = b; i < e; i++) j->dx[i] = j->y[i] > 0.0f ? j->dy[i] : 0.0f;
}

void simclr__cpu_relu_backward(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx)
{
    row_job j = {.y = y, .dy = dy, .dx = dx};
    simclr__pool_for(ctx->pool, n, SIMCLR__GRAIN, relu_bwd_task, &j);
}

/* ---- pooling ---- */

typedef struct {
    int64_t h, w, k, stride, pad, oh, ow, hw;
    const float *x, *dy;
    float *y, *dx;
    int32_t *idx;
    const int32_t *cidx;
} pool_job;

static void maxpool_fwd_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const pool_job *j = arg;
    for (int64_t p = b; p < e; p++) {
        const float *x = j->x + p * j->h * j->w;
        float *y = j->y + p * j->oh * j->ow;
        int32_t *idx = j->idx + p * j->oh * j->ow;
        for (int64_t oy = 0; oy < j->oh; oy++) {
            int64_t y0 = oy * j->stride - j->pad, y1 = y0 + j->k;
            if (y0 < 0) y0 = 0;
            if (y1 > j->h) y1 = j->h;
            for (int64_t ox = 0; ox < j->ow; ox++) {
                int64_t x0 = ox * j->stride - j->pad, x1 = x0 + j->k;
                if (x0 < 0) x0 = 0;
                if (x1 > j->w) x1 = j->w;
                int64_t best = y0 * j->w + x0;
                float bv = x[best];
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) {
                        float v = x[iy * j->w + ix];
                        /* First maximum wins; a NaN wins and stays (propagates like torch). */
                        if (v > bv || (v != v && bv == bv)) bv = v, best = iy * j->w + ix;
                    }
                y[oy * j->ow + ox] = bv;
                idx[oy * j->ow + ox] = (int32_t)best;
            }
        }
    }
}

void simclr__cpu_maxpool_forward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t k,
                                 int64_t stride, int64_t pad, int64_t oh, int64_t ow, const float *x, float *y,
                                 int32_t *idx)
{
    pool_job j = {.h = h, .w = w, .k = k, .stride = stride, .pad = pad, .oh = oh, .ow = ow, .x = x, .y = y, .idx = idx};
    simclr__pool_for(ctx->pool, planes, SIMCLR__GRAIN / (h * w), maxpool_fwd_task, &j);
}

static void maxpool_bwd_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const pool_job *j = arg;
    for (int64_t p = b; p < e; p++) {
        float *dx = j->dx + p * j->h * j->w;
        const float *dy = j->dy + p * j->oh * j->ow;
        const int32_t *idx = j->cidx + p * j->oh * j->ow;
        memset(dx, 0, (size_t)(j->h * j->w) * sizeof(float));
        for (int64_t o = 0; o < j->oh * j->ow; o++) dx[idx[o]] += dy[o];
    }
}

void simclr__cpu_maxpool_backward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t oh,
                                  int64_t ow, const float *dy, const int32_t *idx, float *dx)
{
    pool_job j = {.h = h, .w = w, .oh = oh, .ow = ow, .dy = dy, .cidx = idx, .dx = dx};
    simclr__pool_for(ctx->pool, planes, SIMCLR__GRAIN / (h * w), maxpool_bwd_task, &j);
}

static void avg_fwd_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const pool_job *j = arg;
    for (int64_t p = b; p < e; p++) {
        const float *x = j->x + p * j->hw;
        double s = 0;
        for (int64_t i = 0; i < j->hw; i++) s += x[i];
        j->y[p] = (float)(s / (double)j->hw);
    }
}

void simclr__cpu_avgpool_forward(simclr_context *ctx, int64_t planes, int64_t hw, const float *x, float *y)
{
    pool_job j = {.hw = hw, .x = x, .y = y};
    simclr__pool_for(ctx->pool, planes, SIMCLR__GRAIN / hw, avg_fwd_task, &j);
}

static void avg_bwd_task(void *arg, int64_t b, int64_t e, int wk)
{
    (void)wk;
    const pool_job *j = arg;
    float inv = 1.0f / (float)j->hw;
    for (int64_t p = b; p < e; p++) {
        float v = j->dy[p] * inv;
        for (int64_t i = 0; i < j->hw; i++) j->dx[p * j->hw + i] = v;
    }
}

void simclr__cpu_avgpool_backward(simclr_context *ctx, int64_t planes, int64_t hw, const float *dy, float *dx)
{
    pool_job j = {.hw = hw, .dy = dy, .dx = dx};
    simclr__pool_for(ctx->pool, planes, SIMCLR__GRAIN / hw, avg_bwd_task, &j);
}
