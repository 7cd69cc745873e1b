/* The augmentation operations, each with explicit parameters (no randomness
 * here): the policy draws the parameters, the tests and the torchvision
 * cross-check drive these functions directly.
 *
 * Images are float planes, channel-major [C, H, W] (C = 1 or 3), values in
 * [0, 1]. Every operation follows torchvision.transforms.functional on float
 * tensors (0.14), including the order of float operations where that is cheap,
 * so results agree to a few ulps; where we deviate it is said below. */
#ifndef SIMCLR_AUGMENT_OPS_H
#define SIMCLR_AUGMENT_OPS_H

#include <stdint.h>

#include "core/rng.h"

enum { SIMCLR__INTERP_BILINEAR = 0, SIMCLR__INTERP_BICUBIC = 1 };

/* Floats of scratch simclr__aug_resized_crop needs for a crop of crop_h rows
 * producing out_h x out_w. */
int64_t simclr__aug_resize_scratch(int64_t crop_h, int out_h, int out_w);

/* Crops the box (top, left, crop_h, crop_w) of the U8 HWC image `src`
 * (H x W x C, row stride W*C) and resizes it to out_h x out_w into dst
 * [C, out_h, out_w], values v/255. Same as
 * resized_crop(img.float()/255, top, left, crop_h, crop_w, [out_h, out_w],
 * interpolation, antialias=False): half-pixel centres (align_corners=False),
 * bicubic with a = -0.75 and edge-clamped taps. The box must lie inside the
 * image. Bicubic can overshoot [0, 1] (torchvision does not clamp float
 * output either); the policy clamps. tmp holds simclr__aug_resize_scratch floats. */
void simclr__aug_resized_crop(const uint8_t *src, int64_t H, int64_t W, int C, int64_t top,
                              int64_t left, int64_t crop_h, int64_t crop_w, int out_h, int out_w,
                              int interpolation, float *dst, float *tmp);

/* Mirrors every row (torchvision hflip). */
void simclr__aug_hflip(float *x, int C, int H, int W);

/* Color adjustments with torchvision's definitions, clamped to [0, 1]:
 * brightness multiplies by f; contrast blends with the mean of the grayscale
 * image (of the image itself for C = 1); saturation blends with the grayscale
 * image; hue adds `shift` (in [-0.5, 0.5]) to H in torchvision's HSV. Grayscale
 * uses torchvision's weights 0.2989, 0.587, 0.114. Saturation, hue and
 * grayscale leave a 1-channel image unchanged (as torchvision does). Factors
 * are doubles as torchvision's Python floats are; they enter the float
 * arithmetic as (float)f and (float)(1 - f), exactly as _blend computes. */
void simclr__aug_brightness(float *x, int C, int64_t hw, double f);
void simclr__aug_contrast(float *x, int C, int64_t hw, double f);
void simclr__aug_saturation(float *x, int C, int64_t hw, double f);
void simclr__aug_hue(float *x, int C, int64_t hw, double shift);
void simclr__aug_grayscale(float *x, int C, int64_t hw);

/* The blur kernel side for an image side: (int)(frac * side) made odd
 * (even values + 1), at least 3, and at most 2 * side - 1 so the reflect
 * padding stays inside the image (torchvision would refuse a larger one);
 * 1 (no blur) for side 1. */
int simclr__aug_blur_kernel(double frac, int side);

/* Floats of scratch simclr__aug_blur needs. */
int64_t simclr__aug_blur_scratch(int H, int W);

/* Gaussian blur with odd kernel sides kh (rows) and kw (columns) and one
 * sigma, reflect padding (no edge repeat), as torchvision's
 * gaussian_blur(img, [kw, kh], [sigma, sigma]); applied separably (rows, then
 * columns), which equals the 2-D kernel up to float rounding. kh <= 2H - 1,
 * kw <= 2W - 1. tmp holds simclr__aug_blur_scratch floats. */
void simclr__aug_blur(float *x, int C, int H, int W, int kh, int kw, double sigma, float *tmp);

/* v >= threshold becomes 1 - v (torchvision solarize on floats). */
void simclr__aug_solarize(float *x, int64_t n, double threshold);

/* Fills the box (i, j, h, w) of every channel with `value`, or, when value
 * < 0, with uniform noise in [0, 1) drawn from r in C-H-W order (torchvision
 * RandomErasing's value="random" draws N(0, 1) instead: we keep [0, 1]). */
void simclr__aug_erase(float *x, int C, int H, int W, int i, int j, int h, int w, double value,
                       simclr__rng *r);

/* (v - mean[c]) / std[c] per channel, in float (torchvision normalize). */
void simclr__aug_normalize(float *x, int C, int64_t hw, const float *mean, const float *std);

#endif
