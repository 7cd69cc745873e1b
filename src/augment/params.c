/* Presets and the keyed, validated parameter table of the policy. */
#include <math.h>
#include <stddef.h>

#include "core/error.h"
#include "policy.h"

typedef struct key_info {
    simclr_aug_param key;
    const char *name;
    size_t offset; /* of the double in simclr__aug_params */
    double lo, hi;
    int integral;
} key_info;

#define P(field) offsetof(simclr__aug_params, field)

static const key_info keys[] = {
    {SIMCLR_AUG_CROP_P, "CROP_P", P(crop_p), 0, 1, 0},
    {SIMCLR_AUG_CROP_SCALE_MIN, "CROP_SCALE_MIN", P(scale_min), 1e-6, 1, 0},
    {SIMCLR_AUG_CROP_SCALE_MAX, "CROP_SCALE_MAX", P(scale_max), 1e-6, 1, 0},
    {SIMCLR_AUG_CROP_RATIO_MIN, "CROP_RATIO_MIN", P(ratio_min), 1e-3, 1e3, 0},
    {SIMCLR_AUG_CROP_RATIO_MAX, "CROP_RATIO_MAX", P(ratio_max), 1e-3, 1e3, 0},
    {SIMCLR_AUG_CROP_ATTEMPTS, "CROP_ATTEMPTS", P(attempts), 1, 1000, 1},
    {SIMCLR_AUG_INTERPOLATION, "INTERPOLATION", P(interpolation), 0, 1, 1},
    {SIMCLR_AUG_ANTIALIAS, "ANTIALIAS", P(antialias), 0, 1, 1},
    {SIMCLR_AUG_FLIP_P, "FLIP_P", P(flip_p), 0, 1, 0},
    {SIMCLR_AUG_JITTER_P, "JITTER_P", P(jitter_p), 0, 1, 0},
    {SIMCLR_AUG_JITTER_STRENGTH, "JITTER_STRENGTH", P(strength), 0, 2.5, 0},
    {SIMCLR_AUG_BRIGHTNESS, "BRIGHTNESS", P(brightness), 0, 100, 0},
    {SIMCLR_AUG_CONTRAST, "CONTRAST", P(contrast), 0, 100, 0},
    {SIMCLR_AUG_SATURATION, "SATURATION", P(saturation), 0, 100, 0},
    {SIMCLR_AUG_HUE, "HUE", P(hue), 0, 0.5, 0},
    {SIMCLR_AUG_GRAYSCALE_P, "GRAYSCALE_P", P(gray_p), 0, 1, 0},
    {SIMCLR_AUG_BLUR_P, "BLUR_P", P(blur_p), 0, 1, 0},
    {SIMCLR_AUG_BLUR_SIGMA_MIN, "BLUR_SIGMA_MIN", P(sigma_min), 1e-3, 100, 0},
    {SIMCLR_AUG_BLUR_SIGMA_MAX, "BLUR_SIGMA_MAX", P(sigma_max), 1e-3, 100, 0},
    {SIMCLR_AUG_BLUR_KERNEL_FRAC, "BLUR_KERNEL_FRAC", P(kernel_frac), 0, 1, 0},
    {SIMCLR_AUG_SOLARIZE_P, "SOLARIZE_P", P(solarize_p), 0, 1, 0},
    {SIMCLR_AUG_SOLARIZE_THRESHOLD, "SOLARIZE_THRESHOLD", P(solarize_threshold), 0, 1, 0},
    {SIMCLR_AUG_ERASE_P, "ERASE_P", P(erase_p), 0, 1, 0},
    {SIMCLR_AUG_ERASE_SCALE_MIN, "ERASE_SCALE_MIN", P(erase_scale_min), 0, 1, 0},
    {SIMCLR_AUG_ERASE_SCALE_MAX, "ERASE_SCALE_MAX", P(erase_scale_max), 0, 1, 0},
    {SIMCLR_AUG_ERASE_RATIO_MIN, "ERASE_RATIO_MIN", P(erase_ratio_min), 1e-3, 1e3, 0},
    {SIMCLR_AUG_ERASE_RATIO_MAX, "ERASE_RATIO_MAX", P(erase_ratio_max), 1e-3, 1e3, 0},
    {SIMCLR_AUG_ERASE_VALUE, "ERASE_VALUE", P(erase_value), -1, 1, 0},
    {SIMCLR_AUG_NORMALIZE, "NORMALIZE", P(normalize), 0, 1, 1},
    {SIMCLR_AUG_MEAN_0, "MEAN_0", P(mean[0]), -100, 100, 0},
    {SIMCLR_AUG_MEAN_1, "MEAN_1", P(mean[1]), -100, 100, 0},
    {SIMCLR_AUG_MEAN_2, "MEAN_2", P(mean[2]), -100, 100, 0},
    {SIMCLR_AUG_STD_0, "STD_0", P(std[0]), 1e-6, 1e6, 0},
    {SIMCLR_AUG_STD_1, "STD_1", P(std[1]), 1e-6, 1e6, 0},
    {SIMCLR_AUG_STD_2, "STD_2", P(std[2]), 1e-6, 1e6, 0},
};

static const key_info *find(simclr_aug_param key)
{
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (keys[i].key == key) return &keys[i];
    return NULL;
}

static double *field(simclr__aug_params *p, const key_info *k) { return (double *)((char *)p + k->offset); }

static void set_strength(simclr__aug_params *p, double s)
{
    p->strength = s;
    p->brightness = p->contrast = p->saturation = 0.8 * s;
    p->hue = 0.2 * s;
}

simclr_status simclr__aug_preset(simclr__aug_params *p, simclr_aug_preset preset)
{
    if (preset < SIMCLR_AUG_PRESET_NONE || preset > SIMCLR_AUG_PRESET_FINETUNE)
        return simclr__fail(SIMCLR_E_INVALID, "simclr_augment_create: unknown preset %d", (int)preset);
    /* The V1 recipe's values; the presets switch operations on and off. */
    *p = (simclr__aug_params){
        .crop_p = 1, .scale_min = 0.08, .scale_max = 1, .ratio_min = 3.0 / 4, .ratio_max = 4.0 / 3,
        .attempts = 10, .interpolation = 0, .flip_p = 0.5, .jitter_p = 0.8, .gray_p = 0.2,
        .blur_p = 0.5, .sigma_min = 0.1, .sigma_max = 2.0, .kernel_frac = 0.1,
        .solarize_p = 0, .solarize_threshold = 0.5,
        .erase_p = 0, .erase_scale_min = 0.02, .erase_scale_max = 0.33, .erase_ratio_min = 0.3,
        .erase_ratio_max = 3.3, .erase_value = 0,
        .normalize = 0, .mean = {0, 0, 0}, .std = {1, 1, 1},
    };
    set_strength(p, 1.0);
    switch (preset) {
    case SIMCLR_AUG_PRESET_NONE:
        p->crop_p = p->flip_p = p->jitter_p = p->gray_p = p->blur_p = 0;
        break;
    case SIMCLR_AUG_PRESET_SIMCLR_V1: break;
    case SIMCLR_AUG_PRESET_CIFAR:
        set_strength(p, 0.5);
        p->blur_p = 0;
        break;
    case SIMCLR_AUG_PRESET_GRAYSCALE:
        /* nominal s = 0.5 for brightness and contrast; nothing else of color */
        set_strength(p, 0.5);
        p->saturation = p->hue = 0;
        p->gray_p = p->blur_p = 0;
        break;
    case SIMCLR_AUG_PRESET_FINETUNE:
        /* SimCLR's fine-tuning views: random resized crop and flip only */
        p->jitter_p = p->gray_p = p->blur_p = 0;
        break;
    }
    return SIMCLR_OK;
}

/* Pairs that must stay ordered; checked on the would-be parameters. */
static simclr_status check_pairs(const simclr__aug_params *p, const char *fn)
{
    struct { double lo, hi; const char *a, *b; } pairs[] = {
        {p->scale_min, p->scale_max, "CROP_SCALE_MIN", "CROP_SCALE_MAX"},
        {p->ratio_min, p->ratio_max, "CROP_RATIO_MIN", "CROP_RATIO_MAX"},
        {p->sigma_min, p->sigma_max, "BLUR_SIGMA_MIN", "BLUR_SIGMA_MAX"},
        {p->erase_scale_min, p->erase_scale_max, "ERASE_SCALE_MIN", "ERASE_SCALE_MAX"},
        {p->erase_ratio_min, p->erase_ratio_max, "ERASE_RATIO_MIN", "ERASE_RATIO_MAX"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (pairs[i].lo > pairs[i].hi)
            return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_AUG_%s (%g) would exceed SIMCLR_AUG_%s (%g); set the other one first",
                                fn, pairs[i].a, pairs[i].lo, pairs[i].b, pairs[i].hi);
    if (p->erase_value < 0 && p->erase_value != -1)
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_AUG_ERASE_VALUE %g must be in [0, 1] or -1 (noise)", fn,
                            p->erase_value);
    return SIMCLR_OK;
}

simclr_status simclr__aug_param_set(simclr__aug_params *p, simclr_aug_param key, double value)
{
    static const char fn[] = "simclr_augment_set";
    const key_info *k = find(key);
    if (!k) return simclr__fail(SIMCLR_E_INVALID, "%s: unknown key %d", fn, (int)key);
    if (!(value >= k->lo && value <= k->hi)) /* also rejects NaN */
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_AUG_%s = %g out of range [%g, %g]", fn, k->name, value,
                            k->lo, k->hi);
    if (k->integral && value != floor(value))
        return simclr__fail(SIMCLR_E_INVALID, "%s: SIMCLR_AUG_%s = %g must be a whole number", fn, k->name, value);
    simclr__aug_params next = *p;
    if (key == SIMCLR_AUG_JITTER_STRENGTH)
        set_strength(&next, value);
    else
        *field(&next, k) = value;
    SIMCLR__TRY(check_pairs(&next, fn));
    *p = next;
    return SIMCLR_OK;
}

simclr_status simclr__aug_param_get(const simclr__aug_params *p, simclr_aug_param key, double *value)
{
    const key_info *k = find(key);
    if (!k) return simclr__fail(SIMCLR_E_INVALID, "simclr_augment_get: unknown key %d", (int)key);
    *value = *field((simclr__aug_params *)p, k);
    return SIMCLR_OK;
}

simclr_status simclr__aug_param_bounds(simclr_aug_param key, double *lo, double *hi)
{
    const key_info *k = find(key);
    if (!k) return simclr__fail(SIMCLR_E_INVALID, "simclr_augment_bounds: unknown key %d", (int)key);
    *lo = k->lo;
    *hi = k->hi;
    return SIMCLR_OK;
}
