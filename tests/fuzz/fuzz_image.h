/* The image decoder's libFuzzer body, shared by fuzz_png.c and fuzz_jpeg.c:
 * simclr_image_decode_memory (libsimclr_image: PNG, JPEG, EXIF
 * orientation, conversion) on arbitrary bytes. The input is
 * [option byte][the file]; bits 0-1 of the option byte pick min_side
 * (0 = full size, 16, 64, 256: JPEG's DCT scaling). Each input is decoded
 * twice, to gray and to RGB, and the two results must agree: the same
 * status class, the same size, and gray[i] = PIL's L of rgb[i] (the
 * library converts to gray from RGB, so this holds for every source type).
 * On failure the outputs must be untouched; on success the size must be
 * within max_pixels and every byte readable. */
#ifndef SIMCLR_FUZZ_IMAGE_H
#define SIMCLR_FUZZ_IMAGE_H

#include "fuzz_util.h"
#include "simclr_image.h"

/* Small enough that a bomb is refused quickly under ASan, large enough for
 * every seed. */
#define FUZZ_MAX_PIXELS (1 << 16)

static simclr_status decode(const uint8_t *data, size_t size, int channels, int min_side, uint8_t **px, int64_t *h,
                            int64_t *w)
{
    uint8_t *const sentinel = (uint8_t *)&sentinel;
    *px = sentinel, *h = -7, *w = -7;
    simclr_status st = simclr_image_decode_memory(data, size, "fuzz", channels, FUZZ_MAX_PIXELS, min_side, px, h, w);
    if (st != SIMCLR_OK && st != SIMCLR_E_FORMAT && st != SIMCLR_E_NOMEM) {
        fprintf(stderr, "unexpected status %s: %s\n", simclr_status_string(st), simclr_last_error());
        abort();
    }
    if (st != SIMCLR_OK) {
        if (*px != sentinel || *h != -7 || *w != -7) {
            fprintf(stderr, "a failed decode wrote its outputs: %s\n", simclr_last_error());
            abort();
        }
        if (!simclr_last_error()[0]) abort(); /* a failure always says why */
        *px = NULL;
        return st;
    }
    if (*h < 1 || *w < 1 || *h * *w > FUZZ_MAX_PIXELS) {
        fprintf(stderr, "decoded size %lld x %lld out of bounds\n", (long long)*h, (long long)*w);
        abort();
    }
    return st;
}

static int fuzz_image_one(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const int min_sides[4] = {0, 16, 64, 256};
    int min_side = min_sides[data[0] & 3];
    uint8_t *gray, *rgb;
    int64_t gh, gw, ch, cw;
    simclr_status sg = decode(data + 1, size - 1, 1, min_side, &gray, &gh, &gw);
    simclr_status sc = decode(data + 1, size - 1, 3, min_side, &rgb, &ch, &cw);
    if ((sg == SIMCLR_OK) != (sc == SIMCLR_OK)) {
        fprintf(stderr, "gray and RGB decodes disagree: %s / %s\n", simclr_status_string(sg),
                simclr_status_string(sc));
        abort();
    }
    if (sg == SIMCLR_OK) {
        if (gh != ch || gw != cw) abort();
        for (int64_t i = 0; i < gh * gw; i++) {
            const uint8_t *p = rgb + 3 * i;
            unsigned l = (19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 0x8000u) >> 16;
            if (gray[i] != l) {
                fprintf(stderr, "pixel %lld: gray %u, L of RGB %u\n", (long long)i, gray[i], l);
                abort();
            }
        }
    }
    simclr_image_free(gray);
    simclr_image_free(rgb);
    return 0;
}

#endif
