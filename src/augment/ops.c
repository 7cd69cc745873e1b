/* Geometric and per-pixel operations other than resize and color. */
#include <math.h>
#include <string.h>

#include "ops.h"

void simclr__aug_hflip(float *x, int C, int H, int W)
{
    for (int64_t r = 0; r < (int64_t)C * H; r++) {
        float *row = x + r * W;
        for (int a = 0, b = W - 1; a < b; a++, b--) {
            float t = row[a];
            row[a] = row[b];
            row[b] = t;
        }
    }
}

int simclr__aug_blur_kernel(double frac, int side)
{
    if (side <= 1) return 1;
    int k = (int)(frac * side);
    if (k % 2 == 0) k++;
    if (k < 3) k = 3;
    if (k > 2 * side - 1) k = 2 * side - 1;
    return k;
}

int64_t simclr__aug_blur_scratch(int H, int W)
{
    /* the row-pass plane, one padded row (pad <= W - 1), both kernels */
    return (int64_t)H * W + 3 * (int64_t)W + 2 * (int64_t)H + 2 * (int64_t)W;
}

/* torchvision's _get_gaussian_kernel1d in float: linspace(-half, half, k) is
 * integral for odd k; exp(-0.5 * (x / sigma)^2), normalized by its sum. */
static void gaussian_kernel(int k, float sigma, float *w)
{
    float sum = 0;
    for (int i = 0; i < k; i++) {
        float t = (float)(i - (k - 1) / 2) / sigma;
        w[i] = expf(-0.5f * (t * t));
        sum += w[i];
    }
    for (int i = 0; i < k; i++) w[i] /= sum;
}

/* Reflect without repeating the edge; |i| < n guaranteed by the kernel limit. */
static int reflect(int i, int n) { return i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i; }

void simclr__aug_blur(float *x, int C, int H, int W, int kh, int kw, double sigma, float *tmp)
{
    float *plane = tmp;
    float *line = plane + (int64_t)H * W;
    float *ky = line + 3 * (int64_t)W;
    float *kx = ky + 2 * (int64_t)H;
    int ph = kh / 2, pw = kw / 2;
    gaussian_kernel(kh, (float)sigma, ky);
    gaussian_kernel(kw, (float)sigma, kx);
    for (int c = 0; c < C; c++) {
        float *img = x + (int64_t)c * H * W;
        for (int y = 0; y < H; y++) {
            const float *row = img + (int64_t)y * W;
            for (int i = -pw; i < W + pw; i++) line[i + pw] = row[reflect(i, W)];
            float *o = plane + (int64_t)y * W;
            /* taps outer, pixels inner: the same sums per pixel, in vector lanes */
            for (int xx = 0; xx < W; xx++) o[xx] = kx[0] * line[xx];
            for (int j = 1; j < kw; j++) {
                float w = kx[j];
                for (int xx = 0; xx < W; xx++) o[xx] += w * line[xx + j];
            }
        }
        for (int y = 0; y < H; y++) {
            float *o = img + (int64_t)y * W;
            const float *src0 = plane + (int64_t)reflect(y - ph, H) * W;
            for (int xx = 0; xx < W; xx++) o[xx] = ky[0] * src0[xx];
            for (int i = 1; i < kh; i++) {
                const float *src = plane + (int64_t)reflect(y + i - ph, H) * W;
                float w = ky[i];
                for (int xx = 0; xx < W; xx++) o[xx] += w * src[xx];
            }
        }
    }
}

void simclr__aug_solarize(float *x, int64_t n, double threshold)
{
    float t = (float)threshold;
    for (int64_t i = 0; i < n; i++)
        if (x[i] >= t) x[i] = 1.0f - x[i];
}

void simclr__aug_erase(float *x, int C, int H, int W, int i, int j, int h, int w, double value,
                       simclr__rng *r)
{
    float v = (float)value;
    for (int c = 0; c < C; c++)
        for (int y = i; y < i + h; y++) {
            float *row = x + ((int64_t)c * H + y) * W + j;
            for (int xx = 0; xx < w; xx++) row[xx] = value < 0 ? simclr__rng_uniform(r) : v;
        }
}

void simclr__aug_normalize(float *x, int C, int64_t hw, const float *mean, const float *std)
{
    for (int c = 0; c < C; c++) {
        float m = mean[c], s = std[c];
        float *p = x + c * hw;
        for (int64_t i = 0; i < hw; i++) p[i] = (p[i] - m) / s;
    }
}
