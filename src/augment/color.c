/* Color adjustments, written to do torchvision's float operations in its
 * order (a tensor op per line there, one rounding per operation here). */
#include <math.h>

#include "ops.h"

static float clamp01(float v) { return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; }

/* torchvision's _rgb2gray: each weight times its channel, summed left to right. */
static float gray_of(float r, float g, float b)
{
    float lr = 0.2989f * r, lg = 0.587f * g, lb = 0.114f * b;
    return (lr + lg) + lb;
}

void simclr__aug_brightness(float *x, int C, int64_t hw, double f)
{
    /* _blend(img, zeros, f): f * v + (1 - f) * 0, which is f * v exactly */
    float a = (float)f;
    for (int64_t i = 0; i < (int64_t)C * hw; i++) x[i] = clamp01(a * x[i]);
}

static void blend_with(float *x, int C, int64_t hw, double f, const float *other, int64_t other_stride)
{
    float a = (float)f, b = (float)(1.0 - f);
    for (int c = 0; c < C; c++) {
        float *p = x + c * hw;
        for (int64_t i = 0; i < hw; i++) p[i] = clamp01(a * p[i] + b * other[i * other_stride]);
    }
}

void simclr__aug_contrast(float *x, int C, int64_t hw, double f)
{
    double sum = 0;
    if (C == 3) {
        for (int64_t i = 0; i < hw; i++) sum += gray_of(x[i], x[hw + i], x[2 * hw + i]);
    } else {
        for (int64_t i = 0; i < hw; i++) sum += x[i];
    }
    float mean = (float)(sum / (double)hw);
    blend_with(x, C, hw, f, &mean, 0);
}

void simclr__aug_saturation(float *x, int C, int64_t hw, double f)
{
    if (C != 3) return;
    float a = (float)f, b = (float)(1.0 - f);
    for (int64_t i = 0; i < hw; i++) {
        float g = gray_of(x[i], x[hw + i], x[2 * hw + i]);
        for (int c = 0; c < 3; c++) x[c * hw + i] = clamp01(a * x[c * hw + i] + b * g);
    }
}

void simclr__aug_grayscale(float *x, int C, int64_t hw)
{
    if (C != 3) return;
    for (int64_t i = 0; i < hw; i++) {
        float g = gray_of(x[i], x[hw + i], x[2 * hw + i]);
        x[i] = x[hw + i] = x[2 * hw + i] = g;
    }
}

/* torch.remainder for floats (fmod, then shifted to the divisor's sign). */
static float remainder1(float v)
{
    float m = fmodf(v, 1.0f);
    if (m != 0 && m < 0) m += 1.0f;
    return m;
}

void simclr__aug_hue(float *x, int C, int64_t hw, double shift)
{
    if (C != 3) return;
    float dh = (float)shift;
    for (int64_t i = 0; i < hw; i++) {
        float r = x[i], g = x[hw + i], b = x[2 * hw + i];
        /* _rgb2hsv */
        float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        int eqc = maxc == minc;
        float cr = maxc - minc;
        float s = cr / (eqc ? 1.0f : maxc);
        float div = eqc ? 1.0f : cr;
        float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
        float hr = (maxc == r) ? (bc - gc) : 0.0f;
        float hg = (maxc == g && maxc != r) ? ((2.0f + rc) - bc) : 0.0f;
        float hb = (maxc != g && maxc != r) ? ((4.0f + gc) - rc) : 0.0f;
        float h = (hr + hg) + hb;
        h = fmodf(h / 6.0f + 1.0f, 1.0f);
        float v = maxc;
        /* the shift */
        h = remainder1(h + dh);
        /* _hsv2rgb */
        float fi = floorf(h * 6.0f);
        float f = h * 6.0f - fi;
        int sector = (int)fi % 6;
        float p = clamp01(v * (1.0f - s));
        float q = clamp01(v * (1.0f - s * f));
        float t = clamp01(v * (1.0f - s * (1.0f - f)));
        float ro, go, bo;
        switch (sector) {
        case 0: ro = v, go = t, bo = p; break;
        case 1: ro = q, go = v, bo = p; break;
        case 2: ro = p, go = v, bo = t; break;
        case 3: ro = p, go = q, bo = v; break;
        case 4: ro = t, go = p, bo = v; break;
        default: ro = v, go = p, bo = q; break;
        }
        x[i] = clamp01(ro);
        x[hw + i] = clamp01(go);
        x[2 * hw + i] = clamp01(bo);
    }
}
