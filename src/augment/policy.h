/* The augmentation policy: its parameters (keyed as in simclr.h), the plan of
 * one view (every random choice, drawn first), and the execution of a plan.
 * Splitting draw and execution lets the tests check the drawn statistics
 * without decoding images, and check that a view is exactly its plan. */
#ifndef SIMCLR_AUGMENT_POLICY_H
#define SIMCLR_AUGMENT_POLICY_H

#include <stdint.h>

#include "simclr.h"
#include "core/rng.h"

/* Views usable with one seed: streams SIMCLR__STREAM_AUGMENT .. + 15. */
#define SIMCLR__AUG_MAX_VIEWS 16

/* All doubles (integral keys hold whole numbers) so one keyed table serves all. */
typedef struct simclr__aug_params {
    double crop_p, scale_min, scale_max, ratio_min, ratio_max;
    double attempts, interpolation;
    double antialias; /* SIMCLR_AUG_ANTIALIAS (appended key) */
    double flip_p;
    double jitter_p, strength, brightness, contrast, saturation, hue;
    double gray_p;
    double blur_p, sigma_min, sigma_max, kernel_frac;
    double solarize_p, solarize_threshold;
    double erase_p, erase_scale_min, erase_scale_max, erase_ratio_min, erase_ratio_max, erase_value;
    double normalize;
    double mean[3], std[3];
} simclr__aug_params;

enum { SIMCLR__JIT_BRIGHTNESS = 0, SIMCLR__JIT_CONTRAST = 1, SIMCLR__JIT_SATURATION = 2, SIMCLR__JIT_HUE = 3 };

/* Everything random about one view. Neutral values (factor 1, hue 0, flags 0)
 * for what was not drawn or is disabled. */
typedef struct simclr__aug_plan {
    int64_t top, left, crop_h, crop_w; /* the box taken from the source */
    int flip;
    int jitter;                        /* color jitter applied at all */
    int order[4];                      /* SIMCLR__JIT_* in application order */
    int use[4];                        /* an adjustment whose range is empty is skipped */
    double factor[4];                  /* brightness, contrast, saturation factors; hue shift */
    int gray;
    int blur, kh, kw;
    double sigma;
    int solarize;
    int erase, ei, ej, eh, ew;
} simclr__aug_plan;

/* Fills p with a preset's values; SIMCLR_E_INVALID for an unknown preset. */
simclr_status simclr__aug_preset(simclr__aug_params *p, simclr_aug_preset preset);

/* Validated set/get by key (fn names the caller in messages). */
simclr_status simclr__aug_param_set(simclr__aug_params *p, simclr_aug_param key, double value);
simclr_status simclr__aug_param_get(const simclr__aug_params *p, simclr_aug_param key, double *value);
simclr_status simclr__aug_param_bounds(simclr_aug_param key, double *lo, double *hi);

/* torchvision's RandomResizedCrop.get_params for an H x W image. */
void simclr__aug_crop_box(const simclr__aug_params *p, int64_t H, int64_t W, simclr__rng *r,
                          int64_t *top, int64_t *left, int64_t *h, int64_t *w);

/* Draws the plan of one view of an H x W x C source for out_h x out_w. */
void simclr__aug_plan_draw(const simclr__aug_params *p, int64_t H, int64_t W, int C, int out_h,
                           int out_w, simclr__rng *r, simclr__aug_plan *plan);

/* Floats of scratch simclr__aug_execute needs for sources of height H. */
int64_t simclr__aug_scratch(int64_t H, int out_h, int out_w);

/* Floats of scratch for any view of an H x W source, antialias included. */
int64_t simclr__aug_scratch_hw(const simclr__aug_params *p, int64_t H, int64_t W, int out_h, int out_w);

/* Runs a plan: src U8 [H, W, C] -> dst F32 [C, out_h, out_w]. r continues
 * the view's sequence for the erase noise. */
void simclr__aug_execute(const simclr__aug_params *p, const simclr__aug_plan *plan, const uint8_t *src,
                         int64_t H, int64_t W, int C, int out_h, int out_w, float *dst, float *scratch,
                         simclr__rng *r);

#endif
