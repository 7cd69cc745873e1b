/* Separable antialiased resampling (see resample.h). The weights follow
 * PyTorch's _upsample_bilinear2d_aa: for output i the centre is
 * scale * (i + 0.5), the support is max(scale, 1), taps run over
 * [int(centre - support + 0.5), int(centre + support + 0.5)) clipped to the
 * input, each weighted by the triangle at (j - centre + 0.5) / max(scale, 1),
 * and normalized to sum 1. Upsampling reduces to half-pixel bilinear with
 * clamped edges. Computed in double: results agree with PyTorch's float
 * kernel to about 1e-6. */
#include <math.h>

#include "resample.h"

static int64_t taps_max(const simclr__axis *a)
{
    double scale = (double)a->n_in / (double)a->n_resized;
    double support = scale >= 1 ? scale : 1.0;
    return (int64_t)ceil(support) * 2 + 1;
}

int64_t simclr__resample_scratch(const simclr__axis *ay, const simclr__axis *ax)
{
    /* row pass result (every input row of the window), then for both axes
     * taps weights and a (start, count) pair per output */
    return ay->n_in * ax->n_out + taps_max(ay) * ay->n_out + taps_max(ax) * ax->n_out + 2 * (ay->n_out + ax->n_out) +
           16;
}

static double triangle(double x)
{
    x = fabs(x);
    return x < 1 ? 1 - x : 0;
}

/* Fills weights (stride taps) and (start, count) pairs for one axis. */
static void axis_weights(const simclr__axis *a, int64_t taps, float *w, int32_t *span)
{
    double scale = (double)a->n_in / (double)a->n_resized;
    double support = scale >= 1 ? scale : 1.0, inv = scale >= 1 ? 1 / scale : 1.0;
    for (int i = 0; i < a->n_out; i++) {
        double centre = scale * ((double)(a->first + i) + 0.5);
        int64_t lo = (int64_t)(centre - support + 0.5), hi = (int64_t)(centre + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > a->n_in) hi = a->n_in;
        if (hi <= lo) { /* cannot happen for first + i < n_resized; keep the nearest pixel */
            lo = lo >= a->n_in ? a->n_in - 1 : lo;
            hi = lo + 1;
        }
        if (hi - lo > taps) hi = lo + taps;
        double total = 0;
        for (int64_t j = lo; j < hi; j++) total += triangle(((double)j - centre + 0.5) * inv);
        for (int64_t j = lo; j < hi; j++) {
            double v = triangle(((double)j - centre + 0.5) * inv);
            w[(int64_t)i * taps + (j - lo)] = (float)(total > 0 ? v / total : 1.0 / (double)(hi - lo));
        }
        span[2 * i] = (int32_t)lo;
        span[2 * i + 1] = (int32_t)(hi - lo);
    }
}

void simclr__resample(const uint8_t *src, int64_t W, int C, int64_t top, int64_t left, const simclr__axis *ay,
                      const simclr__axis *ax, float *dst, float *tmp)
{
    int64_t ty = taps_max(ay), tx = taps_max(ax);
    int oh = ay->n_out, ow = ax->n_out;
    float *rows = tmp;
    float *wy = rows + ay->n_in * ow;
    float *wx = wy + ty * oh;
    int32_t *sy = (int32_t *)(wx + tx * ow);
    int32_t *sx = sy + 2 * oh;
    axis_weights(ay, ty, wy, sy);
    axis_weights(ax, tx, wx, sx);
    /* only the input rows some output reads */
    int64_t r0 = sy[0], r1 = (int64_t)sy[2 * (oh - 1)] + sy[2 * (oh - 1) + 1];
    for (int c = 0; c < C; c++) {
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *line = src + ((top + r) * W + left) * C + c;
            float *o = rows + r * ow;
            for (int x = 0; x < ow; x++) {
                const float *w = wx + (int64_t)x * tx;
                const uint8_t *p = line + (int64_t)sx[2 * x] * C;
                float acc = 0;
                for (int32_t k = 0; k < sx[2 * x + 1]; k++) acc += w[k] * (float)p[(int64_t)k * C];
                o[x] = acc;
            }
        }
        float *plane = dst + (int64_t)c * oh * ow;
        for (int y = 0; y < oh; y++) {
            float *o = plane + (int64_t)y * ow;
            const float *w = wy + (int64_t)y * ty;
            const float *base = rows + (int64_t)sy[2 * y] * ow;
            for (int x = 0; x < ow; x++) o[x] = 0;
            for (int32_t k = 0; k < sy[2 * y + 1]; k++) {
                const float *rr = base + (int64_t)k * ow;
                float wk = w[k];
                for (int x = 0; x < ow; x++) o[x] += wk * rr[x];
            }
            for (int x = 0; x < ow; x++) {
                float v = o[x] / 255.0f;
                o[x] = v < 0 ? 0 : v > 1 ? 1 : v;
            }
        }
    }
}

void simclr__eval_axes(int64_t h, int64_t w, int64_t resize, int out_h, int out_w, simclr__axis *ay,
                       simclr__axis *ax)
{
    int64_t nh, nw;
    if (h <= w) nh = resize, nw = (int64_t)((double)resize * (double)w / (double)h);
    else nw = resize, nh = (int64_t)((double)resize * (double)h / (double)w);
    if (nh < out_h) nh = out_h;
    if (nw < out_w) nw = out_w;
    *ay = (simclr__axis){h, nh, (int64_t)rint((double)(nh - out_h) / 2.0), out_h};
    *ax = (simclr__axis){w, nw, (int64_t)rint((double)(nw - out_w) / 2.0), out_w};
}
