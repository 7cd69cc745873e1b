/* Drawing the plan of a view and running it. Draws happen in a fixed order
 * and every operation's values are drawn whether or not it fires, so turning
 * one operation's probability up or down does not reshuffle the others. */
#include <math.h>

#include "ops.h"
#include "policy.h"
#include "resample.h"

/* Python's round(): half to even, which rint does in the default rounding mode. */
static int64_t round_half_even(double v) { return (int64_t)rint(v); }

static int bernoulli(simclr__rng *r, double p) { return simclr__rng_uniform_d(r) < p; }

void simclr__aug_crop_box(const simclr__aug_params *p, int64_t H, int64_t W, simclr__rng *r,
                          int64_t *top, int64_t *left, int64_t *h, int64_t *w)
{
    double area = (double)H * (double)W;
    double log_lo = log(p->ratio_min), log_hi = log(p->ratio_max);
    for (int attempt = 0; attempt < (int)p->attempts; attempt++) {
        double target = area * simclr__rng_range(r, p->scale_min, p->scale_max);
        double aspect = exp(simclr__rng_range(r, log_lo, log_hi));
        int64_t cw = round_half_even(sqrt(target * aspect));
        int64_t ch = round_half_even(sqrt(target / aspect));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *top = simclr__rng_below(r, (uint32_t)(H - ch + 1));
            *left = simclr__rng_below(r, (uint32_t)(W - cw + 1));
            *h = ch, *w = cw;
            return;
        }
    }
    /* torchvision's fallback: the central crop of the nearest allowed aspect */
    double in_ratio = (double)W / (double)H;
    int64_t cw = W, ch = H;
    if (in_ratio < p->ratio_min)
        ch = round_half_even((double)W / p->ratio_min);
    else if (in_ratio > p->ratio_max)
        cw = round_half_even((double)H * p->ratio_max);
    /* extreme ratios can round a side to 0 or past the image */
    ch = ch < 1 ? 1 : ch > H ? H : ch;
    cw = cw < 1 ? 1 : cw > W ? W : cw;
    *top = (H - ch) / 2;
    *left = (W - cw) / 2;
    *h = ch, *w = cw;
}

/* torchvision's RandomErasing.get_params on the out_h x out_w view; no box
 * (erase = 0) when ten attempts fail, as torchvision returns the image. */
static void erase_box(const simclr__aug_params *p, int oh, int ow, simclr__rng *r, simclr__aug_plan *plan)
{
    double area = (double)oh * ow;
    double log_lo = log(p->erase_ratio_min), log_hi = log(p->erase_ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * simclr__rng_range(r, p->erase_scale_min, p->erase_scale_max);
        double aspect = exp(simclr__rng_range(r, log_lo, log_hi));
        int64_t h = round_half_even(sqrt(target * aspect));
        int64_t w = round_half_even(sqrt(target / aspect));
        if (!(h < oh && w < ow)) continue;
        plan->ei = (int)simclr__rng_below(r, (uint32_t)(oh - h + 1));
        plan->ej = (int)simclr__rng_below(r, (uint32_t)(ow - w + 1));
        plan->eh = (int)h, plan->ew = (int)w;
        return;
    }
    plan->erase = 0;
}

void simclr__aug_plan_draw(const simclr__aug_params *p, int64_t H, int64_t W, int C, int out_h,
                           int out_w, simclr__rng *r, simclr__aug_plan *plan)
{
    *plan = (simclr__aug_plan){0};

    if (bernoulli(r, p->crop_p)) {
        simclr__aug_crop_box(p, H, W, r, &plan->top, &plan->left, &plan->crop_h, &plan->crop_w);
    } else {
        plan->crop_h = H, plan->crop_w = W;
    }

    plan->flip = bernoulli(r, p->flip_p);

    /* ColorJitter: a random order of the four, each factor drawn from its range */
    plan->jitter = bernoulli(r, p->jitter_p);
    for (int i = 0; i < 4; i++) plan->order[i] = i;
    for (int i = 3; i > 0; i--) {
        int j = (int)simclr__rng_below(r, (uint32_t)(i + 1));
        int t = plan->order[i];
        plan->order[i] = plan->order[j];
        plan->order[j] = t;
    }
    const double spread[3] = {p->brightness, p->contrast, p->saturation};
    for (int k = 0; k < 3; k++) {
        double lo = 1 - spread[k] > 0 ? 1 - spread[k] : 0;
        plan->factor[k] = simclr__rng_range(r, lo, 1 + spread[k]);
        plan->use[k] = spread[k] > 0;
    }
    plan->factor[SIMCLR__JIT_HUE] = simclr__rng_range(r, -p->hue, p->hue);
    plan->use[SIMCLR__JIT_HUE] = p->hue > 0;
    if (C != 3) plan->use[SIMCLR__JIT_SATURATION] = plan->use[SIMCLR__JIT_HUE] = 0;
    if (!plan->jitter)
        for (int k = 0; k < 4; k++) plan->use[k] = 0;

    plan->gray = bernoulli(r, p->gray_p) && C == 3;

    plan->blur = bernoulli(r, p->blur_p);
    plan->sigma = simclr__rng_range(r, p->sigma_min, p->sigma_max);
    plan->kh = simclr__aug_blur_kernel(p->kernel_frac, out_h);
    plan->kw = simclr__aug_blur_kernel(p->kernel_frac, out_w);
    if (plan->kh == 1 && plan->kw == 1) plan->blur = 0;

    plan->solarize = bernoulli(r, p->solarize_p);

    plan->erase = bernoulli(r, p->erase_p);
    if (plan->erase) erase_box(p, out_h, out_w, r, plan);
}

static void clamp01(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) x[i] = x[i] < 0 ? 0 : x[i] > 1 ? 1 : x[i];
}

int64_t simclr__aug_scratch(int64_t H, int out_h, int out_w)
{
    int64_t a = simclr__aug_resize_scratch(H, out_h, out_w), b = simclr__aug_blur_scratch(out_h, out_w);
    return a > b ? a : b;
}

int64_t simclr__aug_scratch_hw(const simclr__aug_params *p, int64_t H, int64_t W, int out_h, int out_w)
{
    int64_t s = simclr__aug_scratch(H, out_h, out_w);
    if ((int)p->antialias) {
        simclr__axis ay = {H, out_h, 0, out_h}, ax = {W, out_w, 0, out_w};
        int64_t a = simclr__resample_scratch(&ay, &ax);
        if (a > s) s = a;
    }
    return s;
}

void simclr__aug_execute(const simclr__aug_params *p, const simclr__aug_plan *plan, const uint8_t *src,
                         int64_t H, int64_t W, int C, int out_h, int out_w, float *dst, float *scratch,
                         simclr__rng *r)
{
    int64_t hw = (int64_t)out_h * out_w;
    if ((int)p->antialias) {
        simclr__axis ay = {plan->crop_h, out_h, 0, out_h}, ax = {plan->crop_w, out_w, 0, out_w};
        simclr__resample(src, W, C, plan->top, plan->left, &ay, &ax, dst, scratch);
    } else {
        simclr__aug_resized_crop(src, H, W, C, plan->top, plan->left, plan->crop_h, plan->crop_w, out_h, out_w,
                                 (int)p->interpolation, dst, scratch);
    }
    /* the cubic lobes overshoot, and weights summing to 1 +- an ulp can too */
    clamp01(dst, C * hw);
    if (plan->flip) simclr__aug_hflip(dst, C, out_h, out_w);
    for (int i = 0; i < 4; i++) {
        int k = plan->order[i];
        if (!plan->use[k]) continue;
        switch (k) {
        case SIMCLR__JIT_BRIGHTNESS: simclr__aug_brightness(dst, C, hw, plan->factor[k]); break;
        case SIMCLR__JIT_CONTRAST: simclr__aug_contrast(dst, C, hw, plan->factor[k]); break;
        case SIMCLR__JIT_SATURATION: simclr__aug_saturation(dst, C, hw, plan->factor[k]); break;
        default: simclr__aug_hue(dst, C, hw, plan->factor[k]); break;
        }
    }
    if (plan->gray) simclr__aug_grayscale(dst, C, hw);
    if (plan->blur) {
        simclr__aug_blur(dst, C, out_h, out_w, plan->kh, plan->kw, plan->sigma, scratch);
        clamp01(dst, C * hw);
    }
    if (plan->solarize) simclr__aug_solarize(dst, C * hw, p->solarize_threshold);
    if (plan->erase)
        simclr__aug_erase(dst, C, out_h, out_w, plan->ei, plan->ej, plan->eh, plan->ew, p->erase_value, r);
    if ((int)p->normalize) {
        float mean[3], std[3];
        for (int c = 0; c < 3; c++) mean[c] = (float)p->mean[c], std[c] = (float)p->std[c];
        simclr__aug_normalize(dst, C, hw, mean, std);
    }
}
