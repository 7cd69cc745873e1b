/* Crop + resize with PyTorch's interpolate semantics (antialias off,
 * align_corners=False). The separable form (rows first, then columns) does the
 * same float operations in the same order as PyTorch's CPU kernel
 * (w_y0 * (w_x0 * a + w_x1 * b) + ...), so results agree to rounding. */
#include <math.h>

#include "ops.h"

#define TAPS_MAX 4

/* The float table of v / 255, exactly what img.float() / 255 gives. */
static float u8_to_unit(uint8_t v) { return (float)v / 255.0f; }

int64_t simclr__aug_resize_scratch(int64_t crop_h, int out_h, int out_w)
{
    /* the row pass result, then weights and indices for both axes */
    return crop_h * out_w + 2 * TAPS_MAX * ((int64_t)out_h + out_w);
}

/* Source position of output pixel d: PyTorch computes scale in float, then
 * scale * (d + 0.5) - 0.5 in double (the 0.5 literals promote), stored as float. */
static float source_index(float scale, int d) { return (float)((double)scale * (d + 0.5) - 0.5); }

static float cubic_near(float x, float a) { return ((a + 2) * x - (a + 3)) * x * x + 1; }
static float cubic_far(float x, float a) { return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a; }

static int64_t clamp_index(int64_t i, int64_t n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* Fills taps weights and source indices (relative to the crop) for each of
 * n_out output positions over n_in inputs; returns the tap count. */
static int axis_weights(int64_t n_in, int n_out, int interpolation, float *w, int32_t *idx)
{
    float scale = (float)n_in / (float)n_out;
    if (interpolation == SIMCLR__INTERP_BICUBIC) {
        const float a = -0.75f;
        for (int d = 0; d < n_out; d++) {
            float real = source_index(scale, d);
            int64_t i0 = (int64_t)floorf(real);
            float t = real - (float)i0;
            w[4 * d + 0] = cubic_far(t + 1.0f, a);
            w[4 * d + 1] = cubic_near(t, a);
            w[4 * d + 2] = cubic_near(1.0f - t, a);
            w[4 * d + 3] = cubic_far((1.0f - t) + 1.0f, a);
            for (int j = 0; j < 4; j++) idx[4 * d + j] = (int32_t)clamp_index(i0 - 1 + j, n_in);
        }
        return 4;
    }
    for (int d = 0; d < n_out; d++) {
        float real = source_index(scale, d);
        if (real < 0) real = 0;
        int64_t i0 = (int64_t)floorf(real);
        if (i0 > n_in - 1) i0 = n_in - 1;
        float lambda = real - (float)i0;
        lambda = lambda < 0 ? 0 : lambda > 1 ? 1 : lambda;
        w[2 * d + 0] = 1.0f - lambda;
        w[2 * d + 1] = lambda;
        idx[2 * d + 0] = (int32_t)i0;
        idx[2 * d + 1] = (int32_t)(i0 + (i0 < n_in - 1 ? 1 : 0));
    }
    return 2;
}

void simclr__aug_resized_crop(const uint8_t *src, int64_t H, int64_t W, int C, int64_t top,
                              int64_t left, int64_t crop_h, int64_t crop_w, int out_h, int out_w,
                              int interpolation, float *dst, float *tmp)
{
    (void)H;
    float *rows = tmp;
    float *wx = rows + crop_h * out_w;
    float *wy = wx + TAPS_MAX * out_w;
    int32_t *ix = (int32_t *)(wy + TAPS_MAX * out_h);
    int32_t *iy = ix + TAPS_MAX * out_w;
    int taps = axis_weights(crop_w, out_w, interpolation, wx, ix);
    axis_weights(crop_h, out_h, interpolation, wy, iy);

    float lut[256];
    for (int v = 0; v < 256; v++) lut[v] = u8_to_unit((uint8_t)v);

    for (int c = 0; c < C; c++) {
        for (int64_t r = 0; r < crop_h; r++) {
            const uint8_t *line = src + ((top + r) * W + left) * C + c;
            float *o = rows + r * out_w;
            if (taps == 2) {
                for (int x = 0; x < out_w; x++)
                    o[x] = wx[2 * x] * lut[line[(int64_t)ix[2 * x] * C]] +
                           wx[2 * x + 1] * lut[line[(int64_t)ix[2 * x + 1] * C]];
            } else {
                for (int x = 0; x < out_w; x++) {
                    const float *w = wx + 4 * x;
                    const int32_t *i = ix + 4 * x;
                    o[x] = w[0] * lut[line[(int64_t)i[0] * C]] + w[1] * lut[line[(int64_t)i[1] * C]] +
                           w[2] * lut[line[(int64_t)i[2] * C]] + w[3] * lut[line[(int64_t)i[3] * C]];
                }
            }
        }
        float *plane = dst + (int64_t)c * out_h * out_w;
        for (int y = 0; y < out_h; y++) {
            float *o = plane + (int64_t)y * out_w;
            if (taps == 2) {
                const float *r0 = rows + (int64_t)iy[2 * y] * out_w, *r1 = rows + (int64_t)iy[2 * y + 1] * out_w;
                float w0 = wy[2 * y], w1 = wy[2 * y + 1];
                for (int x = 0; x < out_w; x++) o[x] = w0 * r0[x] + w1 * r1[x];
            } else {
                const float *w = wy + 4 * y;
                const float *r0 = rows + (int64_t)iy[4 * y] * out_w, *r1 = rows + (int64_t)iy[4 * y + 1] * out_w;
                const float *r2 = rows + (int64_t)iy[4 * y + 2] * out_w, *r3 = rows + (int64_t)iy[4 * y + 3] * out_w;
                for (int x = 0; x < out_w; x++) o[x] = w[0] * r0[x] + w[1] * r1[x] + w[2] * r2[x] + w[3] * r3[x];
            }
        }
    }
}
