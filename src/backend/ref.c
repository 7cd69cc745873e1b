/* The "ref" backend: the plainest correct loops, one thread, double
 * accumulation where it is cheap. It is the oracle every fast kernel is
 * tested against, so clarity beats speed here. */
#include <math.h>

#include "backend.h"

static void ref_gemm(simclr_context *ctx, int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                     const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                     int64_t ldc)
{
    (void)ctx;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++) {
                float av = ta ? a[p * lda + i] : a[i * lda + p];
                float bv = tb ? b[j * ldb + p] : b[p * ldb + j];
                acc += (double)av * bv;
            }
            float old = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            c[i * ldc + j] = (float)(alpha * acc) + old;
        }
}

static void ref_axpy(simclr_context *ctx, int64_t n, float alpha, const float *x, float *y)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

static void ref_scale(simclr_context *ctx, int64_t n, float alpha, float *x)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) x[i] *= alpha;
}

static void ref_add(simclr_context *ctx, int64_t n, const float *a, const float *b, float *out)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static double ref_sum(simclr_context *ctx, int64_t n, const float *x)
{
    (void)ctx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

static double ref_dot(simclr_context *ctx, int64_t n, const float *x, const float *y)
{
    (void)ctx;
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

static void ref_sum_rows(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    (void)ctx;
    for (int64_t j = 0; j < cols; j++) {
        double s = 0;
        for (int64_t i = 0; i < rows; i++) s += x[i * cols + j];
        out[j] = (float)s;
    }
}

static void ref_sum_cols(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *out)
{
    (void)ctx;
    for (int64_t i = 0; i < rows; i++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += x[i * cols + j];
        out[i] = (float)s;
    }
}

/* ---- Layer kernels: the definitions, written as directly as possible. ---- */

static void ref_swap01(simclr_context *ctx, int64_t a, int64_t b, int64_t inner, const float *x, float *y)
{
    (void)ctx;
    for (int64_t i = 0; i < a; i++)
        for (int64_t j = 0; j < b; j++)
            for (int64_t k = 0; k < inner; k++) y[(j * a + i) * inner + k] = x[(i * b + j) * inner + k];
}

static size_t ref_conv2d_workspace(simclr_context *ctx, const simclr__conv_desc *d)
{
    (void)ctx, (void)d;
    return 0;
}

/* Input cell (c, n, ih, iw) feeding output (n, oy, ox) through tap (ky, kx),
 * or -1 when the tap falls in the zero padding. */
static int64_t ref_conv_src(const simclr__conv_desc *d, int64_t c, int64_t n, int64_t oy, int64_t ox,
                            int64_t ky, int64_t kx)
{
    int64_t ih = oy * d->stride - d->pad + ky, iw = ox * d->stride - d->pad + kx;
    if (ih < 0 || ih >= d->h || iw < 0 || iw >= d->w) return -1;
    return ((c * d->n + n) * d->h + ih) * d->w + iw;
}

static void ref_conv2d_forward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                               const float *bias, float *y, float *ws)
{
    (void)ctx, (void)ws;
    for (int64_t co = 0; co < d->cout; co++)
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t oy = 0; oy < d->oh; oy++)
                for (int64_t ox = 0; ox < d->ow; ox++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int64_t ci = 0; ci < d->cin; ci++)
                        for (int64_t ky = 0; ky < d->kh; ky++)
                            for (int64_t kx = 0; kx < d->kw; kx++) {
                                int64_t s = ref_conv_src(d, ci, n, oy, ox, ky, kx);
                                if (s >= 0) acc += (double)x[s] * w[((co * d->cin + ci) * d->kh + ky) * d->kw + kx];
                            }
                    y[((co * d->n + n) * d->oh + oy) * d->ow + ox] = (float)acc;
                }
}

static void ref_conv2d_backward(simclr_context *ctx, const simclr__conv_desc *d, const float *x, const float *w,
                                const float *dy, float *dw, float *dbias, float *dx, int accumulate, float *ws)
{
    (void)ctx, (void)ws;
    int64_t plane = d->oh * d->ow;
    if (dbias)
        for (int64_t co = 0; co < d->cout; co++) {
            double s = 0;
            for (int64_t i = 0; i < d->n * plane; i++) s += dy[co * d->n * plane + i];
            dbias[co] += (float)s;
        }
    /* Weight gradient: one tap at a time, summed over every output it touched. */
    for (int64_t co = 0; co < d->cout; co++)
        for (int64_t ci = 0; ci < d->cin; ci++)
            for (int64_t ky = 0; ky < d->kh; ky++)
                for (int64_t kx = 0; kx < d->kw; kx++) {
                    double acc = 0;
                    for (int64_t n = 0; n < d->n; n++)
                        for (int64_t oy = 0; oy < d->oh; oy++)
                            for (int64_t ox = 0; ox < d->ow; ox++) {
                                int64_t s = ref_conv_src(d, ci, n, oy, ox, ky, kx);
                                if (s >= 0) acc += (double)x[s] * dy[((co * d->n + n) * d->oh + oy) * d->ow + ox];
                            }
                    dw[((co * d->cin + ci) * d->kh + ky) * d->kw + kx] += (float)acc;
                }
    if (!dx) return;
    if (!accumulate)
        for (int64_t i = 0; i < d->cin * d->n * d->h * d->w; i++) dx[i] = 0;
    for (int64_t co = 0; co < d->cout; co++)
        for (int64_t n = 0; n < d->n; n++)
            for (int64_t oy = 0; oy < d->oh; oy++)
                for (int64_t ox = 0; ox < d->ow; ox++) {
                    float g = dy[((co * d->n + n) * d->oh + oy) * d->ow + ox];
                    for (int64_t ci = 0; ci < d->cin; ci++)
                        for (int64_t ky = 0; ky < d->kh; ky++)
                            for (int64_t kx = 0; kx < d->kw; kx++) {
                                int64_t s = ref_conv_src(d, ci, n, oy, ox, ky, kx);
                                if (s >= 0) dx[s] += g * w[((co * d->cin + ci) * d->kh + ky) * d->kw + kx];
                            }
                }
}

/* Two passes in double: the mean, then the mean squared deviation. */
static void ref_row_moments(simclr_context *ctx, int64_t c, int64_t m, const float *x, float *mean, float *var)
{
    (void)ctx;
    for (int64_t i = 0; i < c; i++) {
        const float *row = x + i * m;
        double s = 0, q = 0;
        for (int64_t j = 0; j < m; j++) s += row[j];
        double mu = s / (double)m;
        for (int64_t j = 0; j < m; j++) q += (row[j] - mu) * (row[j] - mu);
        mean[i] = (float)mu;
        var[i] = (float)(q / (double)m);
    }
}

static void ref_row_affine(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *scale,
                           const float *shift, const float *res, int relu, float *y)
{
    (void)ctx;
    for (int64_t i = 0; i < c; i++)
        for (int64_t j = 0; j < m; j++) {
            float v = x[i * m + j] * (scale ? scale[i] : 1.0f) + (shift ? shift[i] : 0.0f);
            if (res) v += res[i * m + j];
            y[i * m + j] = relu && !(v > 0.0f) ? 0.0f : v;
        }
}

static void ref_bn_backward_reduce(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                                   const float *dy, const float *mean, float *sum_g, float *sum_gx)
{
    (void)ctx;
    for (int64_t i = 0; i < c; i++) {
        double s = 0, sx = 0;
        for (int64_t j = 0; j < m; j++) {
            double g = (y && !(y[i * m + j] > 0.0f)) ? 0.0 : dy[i * m + j];
            s += g;
            sx += g * ((double)x[i * m + j] - mean[i]);
        }
        sum_g[i] = (float)s;
        sum_gx[i] = (float)sx;
    }
}

static void ref_bn_backward_dx(simclr_context *ctx, int64_t c, int64_t m, const float *x, const float *y,
                               const float *dy, const float *mean, const float *ka, const float *kb,
                               const float *kc, float *dx, float *dres)
{
    (void)ctx;
    for (int64_t i = 0; i < c; i++)
        for (int64_t j = 0; j < m; j++) {
            float g = (y && !(y[i * m + j] > 0.0f)) ? 0.0f : dy[i * m + j];
            if (dres) dres[i * m + j] = g;
            dx[i * m + j] = ka[i] * g + kb[i] * (x[i * m + j] - mean[i]) + kc[i];
        }
}

static void ref_relu_backward(simclr_context *ctx, int64_t n, const float *y, const float *dy, float *dx)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void ref_maxpool_forward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t k,
                                int64_t stride, int64_t pad, int64_t oh, int64_t ow, const float *x, float *y,
                                int32_t *idx)
{
    (void)ctx;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                int64_t best = -1;
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                        if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
                        /* First maximum wins; a NaN wins and stays (propagates like torch). */
                        float v = x[p * h * w + iy * w + ix];
                        if (best < 0 || v > x[p * h * w + best] || (v != v && x[p * h * w + best] == x[p * h * w + best]))
                            best = iy * w + ix;
                    }
                y[(p * oh + oy) * ow + ox] = x[p * h * w + best];
                idx[(p * oh + oy) * ow + ox] = (int32_t)best;
            }
}

static void ref_maxpool_backward(simclr_context *ctx, int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow,
                                 const float *dy, const int32_t *idx, float *dx)
{
    (void)ctx;
    for (int64_t i = 0; i < planes * h * w; i++) dx[i] = 0;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t o = 0; o < oh * ow; o++) dx[p * h * w + idx[p * oh * ow + o]] += dy[p * oh * ow + o];
}

static void ref_avgpool_forward(simclr_context *ctx, int64_t planes, int64_t hw, const float *x, float *y)
{
    (void)ctx;
    for (int64_t p = 0; p < planes; p++) {
        double s = 0;
        for (int64_t i = 0; i < hw; i++) s += x[p * hw + i];
        y[p] = (float)(s / (double)hw);
    }
}

static void ref_avgpool_backward(simclr_context *ctx, int64_t planes, int64_t hw, const float *dy, float *dx)
{
    (void)ctx;
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < hw; i++) dx[p * hw + i] = dy[p] / (float)hw;
}

/* ---- Transformer kernels ---- */

static void ref_layernorm_forward(simclr_context *ctx, int64_t rows, int64_t d, const float *x, const float *gamma,
                                  const float *beta, float eps, float *y, float *mean, float *rstd)
{
    (void)ctx;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        double s = 0, q = 0;
        for (int64_t j = 0; j < d; j++) s += xr[j];
        double mu = s / (double)d;
        for (int64_t j = 0; j < d; j++) q += (xr[j] - mu) * (xr[j] - mu);
        double rs = 1.0 / sqrt(q / (double)d + eps);
        mean[r] = (float)mu;
        rstd[r] = (float)rs;
        for (int64_t j = 0; j < d; j++) y[r * d + j] = (float)((xr[j] - mu) * rs * gamma[j] + beta[j]);
    }
}

/* With xhat = (x - mean) * rstd and g = dy * gamma:
 * dx = rstd * (g - mean_j(g) - xhat * mean_j(g * xhat)). */
static void ref_layernorm_backward(simclr_context *ctx, int64_t rows, int64_t d, const float *x, const float *gamma,
                                   const float *mean, const float *rstd, const float *dy, float *dx, float *dgamma,
                                   float *dbeta)
{
    (void)ctx;
    for (int64_t j = 0; j < d; j++) {
        double sg = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            double xhat = ((double)x[r * d + j] - mean[r]) * rstd[r];
            sg += dy[r * d + j] * xhat;
            sb += dy[r * d + j];
        }
        dgamma[j] += (float)sg;
        dbeta[j] += (float)sb;
    }
    for (int64_t r = 0; r < rows; r++) {
        double a = 0, b = 0;
        for (int64_t j = 0; j < d; j++) {
            double g = (double)dy[r * d + j] * gamma[j], xhat = ((double)x[r * d + j] - mean[r]) * rstd[r];
            a += g;
            b += g * xhat;
        }
        a /= (double)d, b /= (double)d;
        for (int64_t j = 0; j < d; j++) {
            double g = (double)dy[r * d + j] * gamma[j], xhat = ((double)x[r * d + j] - mean[r]) * rstd[r];
            dx[r * d + j] = (float)(rstd[r] * (g - a - xhat * b));
        }
    }
}

static void ref_gelu_forward(simclr_context *ctx, int64_t n, const float *x, float *y)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] / sqrt(2.0))));
}

/* GELU'(x) = Phi(x) + x * phi(x). */
static void ref_gelu_backward(simclr_context *ctx, int64_t n, const float *x, const float *dy, float *dx)
{
    (void)ctx;
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], cdf = 0.5 * (1.0 + erf(v / sqrt(2.0)));
        double pdf = exp(-0.5 * v * v) * 0.39894228040143267794; /* 1 / sqrt(2 pi) */
        dx[i] = (float)(dy[i] * (cdf + v * pdf));
    }
}

static void ref_softmax_forward(simclr_context *ctx, int64_t rows, int64_t cols, const float *x, float *y)
{
    (void)ctx;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mx = xr[0], s = 0;
        for (int64_t j = 1; j < cols; j++) mx = xr[j] > mx ? xr[j] : mx;
        for (int64_t j = 0; j < cols; j++) s += exp(xr[j] - mx);
        for (int64_t j = 0; j < cols; j++) y[r * cols + j] = (float)(exp(xr[j] - mx) / s);
    }
}

static void ref_softmax_backward(simclr_context *ctx, int64_t rows, int64_t cols, const float *y, const float *dy,
                                 float *dx)
{
    (void)ctx;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < cols; j++) s += (double)dy[r * cols + j] * y[r * cols + j];
        for (int64_t j = 0; j < cols; j++) dx[r * cols + j] = (float)(y[r * cols + j] * (dy[r * cols + j] - s));
    }
}

const simclr__backend simclr__backend_ref = {
    .name = "ref",
    .api_version = SIMCLR__BACKEND_API_VERSION,
    .isa = "portable", /* plain loops, compiled for the baseline */
    .gemm = ref_gemm,
    .axpy = ref_axpy,
    .scale = ref_scale,
    .add = ref_add,
    .sum = ref_sum,
    .dot = ref_dot,
    .sum_rows = ref_sum_rows,
    .sum_cols = ref_sum_cols,
    .swap01 = ref_swap01,
    .conv2d_workspace = ref_conv2d_workspace,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward = ref_conv2d_backward,
    .row_moments = ref_row_moments,
    .row_affine = ref_row_affine,
    .bn_backward_reduce = ref_bn_backward_reduce,
    .bn_backward_dx = ref_bn_backward_dx,
    .relu_backward = ref_relu_backward,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .avgpool_forward = ref_avgpool_forward,
    .avgpool_backward = ref_avgpool_backward,
    .layernorm_forward = ref_layernorm_forward,
    .layernorm_backward = ref_layernorm_backward,
    .gelu_forward = ref_gelu_forward,
    .gelu_backward = ref_gelu_backward,
    .softmax_forward = ref_softmax_forward,
    .softmax_backward = ref_softmax_backward,
};
