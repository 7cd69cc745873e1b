/* Applies one augmentation op with explicit parameters, for the torchvision
 * cross-check (tests/python/test_torch_augment.py).
 *
 *   tool_augment OP C H W [params...] < input > output
 *
 * resized_crop reads U8 [H, W, C] and takes: top left crop_h crop_w out_h out_w
 * interpolation(0 bilinear, 1 bicubic); it writes F32 [C, out_h, out_w].
 * Every other op reads and writes F32 [C, H, W]: hflip | brightness f |
 * contrast f | saturation f | hue shift | grayscale | blur kh kw sigma |
 * solarize threshold | erase i j h w value | normalize m0 m1 m2 s0 s1 s2.
 * Raw native-endian data on stdin/stdout.
 *
 * policy reads U8 [H, W, C] and takes: preset out_h out_w seed view
 * [key value]...; it draws the plan of that view exactly as
 * simclr_augment_apply does, prints it as one text line (%.17g numbers:
 * top left crop_h crop_w flip jitter order[4] use[4] factor[4] gray blur kh kw
 * sigma solarize threshold erase ei ej eh ew interpolation) and then writes
 * the F32 [C, out_h, out_w] view. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/ops.h"
#include "augment/policy.h"

static int read_all(void *buf, size_t bytes)
{
    return fread(buf, 1, bytes, stdin) == bytes ? 0 : -1;
}

static double arg(int argc, char **argv, int i)
{
    if (i >= argc) {
        fprintf(stderr, "tool_augment: missing parameter %d\n", i);
        exit(2);
    }
    return atof(argv[i]);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: tool_augment OP C H W [params...] < input > output\n");
        return 2;
    }
    const char *op = argv[1];
    int C = atoi(argv[2]), H = atoi(argv[3]), W = atoi(argv[4]);
    if ((C != 1 && C != 3) || H < 1 || W < 1) {
        fprintf(stderr, "tool_augment: bad C H W\n");
        return 2;
    }
    int64_t hw = (int64_t)H * W;
    float *out = NULL;
    size_t out_n = 0;

    if (strcmp(op, "policy") == 0) {
        simclr__aug_params p;
        int oh = (int)arg(argc, argv, 6), ow = (int)arg(argc, argv, 7);
        if (simclr__aug_preset(&p, (simclr_aug_preset)(int)arg(argc, argv, 5)) != SIMCLR_OK || oh < 1 || ow < 1) {
            fprintf(stderr, "tool_augment: bad preset or size\n");
            return 2;
        }
        uint64_t seed = strtoull(argc > 8 ? argv[8] : "0", NULL, 10);
        int view = (int)arg(argc, argv, 9);
        for (int i = 10; i + 1 < argc; i += 2)
            if (simclr__aug_param_set(&p, (simclr_aug_param)atoi(argv[i]), atof(argv[i + 1])) != SIMCLR_OK) {
                fprintf(stderr, "tool_augment: bad key %s\n", argv[i]);
                return 2;
            }
        uint8_t *src = malloc((size_t)hw * C);
        out_n = (size_t)C * oh * ow;
        out = malloc(out_n * sizeof *out);
        float *tmp = malloc((size_t)simclr__aug_scratch(H, oh, ow) * sizeof(float));
        if (!src || !out || !tmp || read_all(src, (size_t)hw * C)) {
            fprintf(stderr, "tool_augment: short input\n");
            return 1;
        }
        simclr__rng r;
        simclr__rng_init(&r, seed, SIMCLR__STREAM_AUGMENT + (uint32_t)view, 0);
        simclr__aug_plan pl;
        simclr__aug_plan_draw(&p, H, W, C, oh, ow, &r, &pl);
        simclr__aug_execute(&p, &pl, src, H, W, C, oh, ow, out, tmp, &r);
        printf("%lld %lld %lld %lld %d %d", (long long)pl.top, (long long)pl.left, (long long)pl.crop_h,
               (long long)pl.crop_w, pl.flip, pl.jitter);
        for (int k = 0; k < 4; k++) printf(" %d", pl.order[k]);
        for (int k = 0; k < 4; k++) printf(" %d", pl.use[k]);
        for (int k = 0; k < 4; k++) printf(" %.17g", pl.factor[k]);
        printf(" %d %d %d %d %.17g %d %.17g %d %d %d %d %d %d\n", pl.gray, pl.blur, pl.kh, pl.kw, pl.sigma,
               pl.solarize, p.solarize_threshold, pl.erase, pl.ei, pl.ej, pl.eh, pl.ew, (int)p.interpolation);
        fflush(stdout);
        free(src);
        free(tmp);
    } else if (strcmp(op, "resized_crop") == 0) {
        int64_t top = (int64_t)arg(argc, argv, 5), left = (int64_t)arg(argc, argv, 6);
        int64_t ch = (int64_t)arg(argc, argv, 7), cw = (int64_t)arg(argc, argv, 8);
        int oh = (int)arg(argc, argv, 9), ow = (int)arg(argc, argv, 10), interp = (int)arg(argc, argv, 11);
        if (top < 0 || left < 0 || ch < 1 || cw < 1 || top + ch > H || left + cw > W || oh < 1 || ow < 1) {
            fprintf(stderr, "tool_augment: box outside the image\n");
            return 2;
        }
        uint8_t *src = malloc((size_t)hw * C);
        out_n = (size_t)C * oh * ow;
        out = malloc(out_n * sizeof *out);
        float *tmp = malloc((size_t)simclr__aug_resize_scratch(ch, oh, ow) * sizeof(float));
        if (!src || !out || !tmp || read_all(src, (size_t)hw * C)) {
            fprintf(stderr, "tool_augment: short input\n");
            return 1;
        }
        simclr__aug_resized_crop(src, H, W, C, top, left, ch, cw, oh, ow, interp, out, tmp);
        free(src);
        free(tmp);
    } else {
        out_n = (size_t)C * hw;
        out = malloc(out_n * sizeof *out);
        if (!out || read_all(out, out_n * sizeof *out)) {
            fprintf(stderr, "tool_augment: short input\n");
            return 1;
        }
        if (strcmp(op, "hflip") == 0) {
            simclr__aug_hflip(out, C, H, W);
        } else if (strcmp(op, "brightness") == 0) {
            simclr__aug_brightness(out, C, hw, arg(argc, argv, 5));
        } else if (strcmp(op, "contrast") == 0) {
            simclr__aug_contrast(out, C, hw, arg(argc, argv, 5));
        } else if (strcmp(op, "saturation") == 0) {
            simclr__aug_saturation(out, C, hw, arg(argc, argv, 5));
        } else if (strcmp(op, "hue") == 0) {
            simclr__aug_hue(out, C, hw, arg(argc, argv, 5));
        } else if (strcmp(op, "grayscale") == 0) {
            simclr__aug_grayscale(out, C, hw);
        } else if (strcmp(op, "blur") == 0) {
            int kh = (int)arg(argc, argv, 5), kw = (int)arg(argc, argv, 6);
            if (kh < 1 || kw < 1 || kh % 2 == 0 || kw % 2 == 0 || kh > 2 * H - 1 || kw > 2 * W - 1) {
                fprintf(stderr, "tool_augment: bad kernel\n");
                return 2;
            }
            float *tmp = malloc((size_t)simclr__aug_blur_scratch(H, W) * sizeof(float));
            if (!tmp) return 1;
            simclr__aug_blur(out, C, H, W, kh, kw, arg(argc, argv, 7), tmp);
            free(tmp);
        } else if (strcmp(op, "solarize") == 0) {
            simclr__aug_solarize(out, C * hw, arg(argc, argv, 5));
        } else if (strcmp(op, "erase") == 0) {
            if (arg(argc, argv, 9) < 0) {
                fprintf(stderr, "tool_augment: erase value must be >= 0 (noise has no torchvision twin)\n");
                return 2;
            }
            simclr__aug_erase(out, C, H, W, (int)arg(argc, argv, 5), (int)arg(argc, argv, 6), (int)arg(argc, argv, 7),
                              (int)arg(argc, argv, 8), arg(argc, argv, 9), NULL);
        } else if (strcmp(op, "normalize") == 0) {
            float mean[3], std[3];
            for (int c = 0; c < 3; c++) mean[c] = (float)arg(argc, argv, 5 + c), std[c] = (float)arg(argc, argv, 8 + c);
            simclr__aug_normalize(out, C, hw, mean, std);
        } else {
            fprintf(stderr, "tool_augment: unknown op '%s'\n", op);
            return 2;
        }
    }
    if (fwrite(out, sizeof *out, out_n, stdout) != out_n) return 1;
    free(out);
    return 0;
}
