/* Drives the full-resolution crop and the evaluation transform for the
 * torchvision cross-check (tests/python/test_torch_images.py).
 *
 *   tool_images cropbox H W scale_min scale_max ratio_min ratio_max attempts seed index
 *       prints "draws" and the 2*attempts values the crop's first draws would
 *       take from that (seed, view 0, index) sequence (area fraction, then
 *       log ratio, per attempt), then "box top left h w" as
 *       simclr__aug_crop_box returns it.
 *   tool_images resample C H W top left crop_h crop_w out_h out_w < U8 HWC > F32 CHW
 *       the antialiased resize of the box (SIMCLR_AUG_ANTIALIAS = 1).
 *   tool_images eval C H W resize out_h out_w < U8 HWC > F32 CHW
 *       the embedder's transform (shorter side to resize, center crop). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment/policy.h"
#include "augment/resample.h"

static int64_t num(int argc, char **argv, int i)
{
    if (i >= argc) {
        fprintf(stderr, "tool_images: missing argument %d\n", i);
        exit(2);
    }
    return atoll(argv[i]);
}

static int resample_out(const uint8_t *src, int64_t W, int C, int64_t top, int64_t left, const simclr__axis *ay,
                        const simclr__axis *ax)
{
    size_t n = (size_t)C * (size_t)ay->n_out * (size_t)ax->n_out;
    float *dst = malloc(n * sizeof *dst);
    float *tmp = malloc((size_t)simclr__resample_scratch(ay, ax) * sizeof(float));
    if (!dst || !tmp) return 1;
    simclr__resample(src, W, C, top, left, ay, ax, dst, tmp);
    fwrite(dst, sizeof *dst, n, stdout);
    free(dst);
    free(tmp);
    return 0;
}

static uint8_t *read_image(int C, int64_t H, int64_t W)
{
    size_t bytes = (size_t)C * (size_t)H * (size_t)W;
    uint8_t *src = malloc(bytes);
    if (!src || fread(src, 1, bytes, stdin) != bytes) {
        fprintf(stderr, "tool_images: short input\n");
        exit(1);
    }
    return src;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: tool_images cropbox|resample|eval ...\n");
        return 2;
    }
    if (strcmp(argv[1], "cropbox") == 0) {
        simclr__aug_params p;
        simclr__aug_preset(&p, SIMCLR_AUG_PRESET_SIMCLR_V1);
        int64_t H = num(argc, argv, 2), W = num(argc, argv, 3);
        p.scale_min = atof(argv[4]), p.scale_max = atof(argv[5]);
        p.ratio_min = atof(argv[6]), p.ratio_max = atof(argv[7]);
        p.attempts = (double)num(argc, argv, 8);
        uint64_t seed = strtoull(argv[9], NULL, 10);
        uint64_t index = (uint64_t)num(argc, argv, 10);
        simclr__rng r;
        simclr__rng_init(&r, seed, SIMCLR__STREAM_AUGMENT, index);
        printf("draws");
        for (int a = 0; a < (int)p.attempts; a++) {
            double s = simclr__rng_range(&r, p.scale_min, p.scale_max);
            double l = simclr__rng_range(&r, log(p.ratio_min), log(p.ratio_max));
            printf(" %.17g %.17g", s, l);
        }
        printf("\n");
        simclr__rng_init(&r, seed, SIMCLR__STREAM_AUGMENT, index);
        int64_t top, left, h, w;
        simclr__aug_crop_box(&p, H, W, &r, &top, &left, &h, &w);
        printf("box %lld %lld %lld %lld\n", (long long)top, (long long)left, (long long)h, (long long)w);
        return 0;
    }
    if (strcmp(argv[1], "resample") == 0) {
        int C = (int)num(argc, argv, 2);
        int64_t H = num(argc, argv, 3), W = num(argc, argv, 4), top = num(argc, argv, 5), left = num(argc, argv, 6);
        int64_t ch = num(argc, argv, 7), cw = num(argc, argv, 8);
        int oh = (int)num(argc, argv, 9), ow = (int)num(argc, argv, 10);
        uint8_t *src = read_image(C, H, W);
        simclr__axis ay = {ch, oh, 0, oh}, ax = {cw, ow, 0, ow};
        int rc = resample_out(src, W, C, top, left, &ay, &ax);
        free(src);
        return rc;
    }
    if (strcmp(argv[1], "eval") == 0) {
        int C = (int)num(argc, argv, 2);
        int64_t H = num(argc, argv, 3), W = num(argc, argv, 4), S = num(argc, argv, 5);
        int oh = (int)num(argc, argv, 6), ow = (int)num(argc, argv, 7);
        uint8_t *src = read_image(C, H, W);
        simclr__axis ay, ax;
        simclr__eval_axes(H, W, S, oh, ow, &ay, &ax);
        int rc = resample_out(src, W, C, 0, 0, &ay, &ax);
        free(src);
        return rc;
    }
    fprintf(stderr, "tool_images: unknown mode %s\n", argv[1]);
    return 2;
}
