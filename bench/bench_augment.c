/* Augmentation throughput: views per second of simclr_augment_pair.
 *
 *   bench_augment PRESET SRC_SIDE OUT_SIDE N ITERS THREADS
 *
 * PRESET is cifar, v1, grayscale or none. Images are N synthetic SRC_SIDE^2
 * RGB images (the same formula as bench_augment.py); one untimed warm-up
 * call, then ITERS timed calls of pair (2N views each). Prints
 * "views_per_s <value>". Public API only. */
#include "bench_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simclr.h"

#define CHECK(expr)                                                               \
    do {                                                                          \
        simclr_status st_ = (expr);                                               \
        if (st_ != SIMCLR_OK) {                                                   \
            fprintf(stderr, "bench_augment: %s: %s\n", #expr, simclr_last_error()); \
            return 1;                                                             \
        }                                                                         \
    } while (0)

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: bench_augment cifar|v1|grayscale|none SRC_SIDE OUT_SIDE N ITERS THREADS\n");
        return 2;
    }
    simclr_aug_preset preset = !strcmp(argv[1], "cifar")       ? SIMCLR_AUG_PRESET_CIFAR
                               : !strcmp(argv[1], "v1")        ? SIMCLR_AUG_PRESET_SIMCLR_V1
                               : !strcmp(argv[1], "grayscale") ? SIMCLR_AUG_PRESET_GRAYSCALE
                                                               : SIMCLR_AUG_PRESET_NONE;
    int side = atoi(argv[2]), out = atoi(argv[3]), iters = atoi(argv[5]), threads = atoi(argv[6]);
    int64_t n = atoll(argv[4]);
    if (side < 1 || out < 1 || n < 1 || iters < 1 || threads < 0) {
        fprintf(stderr, "bench_augment: bad arguments\n");
        return 2;
    }
    simclr_context *ctx = NULL;
    CHECK(simclr_context_create(NULL, threads, NULL, &ctx));
    int64_t in_shape[4] = {n, side, side, 3}, out_shape[4] = {n, 3, out, out};
    simclr_tensor *images = NULL, *v0 = NULL, *v1 = NULL;
    CHECK(simclr_tensor_create(ctx, SIMCLR_U8, 4, in_shape, &images));
    CHECK(simclr_tensor_create(ctx, SIMCLR_F32, 4, out_shape, &v0));
    CHECK(simclr_tensor_create(ctx, SIMCLR_F32, 4, out_shape, &v1));
    uint8_t *p = simclr_tensor_data(images);
    for (int64_t i = 0; i < n; i++)
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++)
                for (int c = 0; c < 3; c++)
                    p[((i * side + y) * side + x) * 3 + c] = (uint8_t)((i * 7 + y * 3 + x * 5 + c * 11) % 256);
    simclr_augment *aug = NULL;
    CHECK(simclr_augment_create_v2(ctx, preset, out, out, &aug));
    CHECK(simclr_augment_pair(aug, images, 0, v0, v1));
    double t0 = bench_now();
    for (int it = 0; it < iters; it++) CHECK(simclr_augment_pair(aug, images, (uint64_t)it + 1, v0, v1));
    double dt = bench_now() - t0;
    printf("views_per_s %.1f\n", 2.0 * (double)n * iters / dt);
    simclr_augment_destroy(aug);
    simclr_tensor_destroy(images);
    simclr_tensor_destroy(v0);
    simclr_tensor_destroy(v1);
    simclr_context_destroy(ctx);
    return 0;
}
