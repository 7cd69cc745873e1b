/* Shows what an augmentation policy does: a PNG grid with one row per image,
 * the plain resize first and then several random views.
 *
 *   augment_grid [out.png] [train-images-idx3-ubyte.gz]
 *
 * Without an IDX file it draws a few colorful synthetic images and uses the
 * SimCLR v1 preset at 64 x 64; with one (e.g. Fashion-MNIST,
 * /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz) it uses the
 * GRAYSCALE preset at 28 x 28, tiles scaled up 3x. Public API; the PNG is
 * written by the image companion (simclr_image_write_png). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "simclr.h"
#include "simclr_image.h"

enum { ROWS = 6, VIEWS = 7, PAD = 4 };

#define CHECK(expr)                                                                       \
    do {                                                                                  \
        simclr_status st_ = (expr);                                                       \
        if (st_ != SIMCLR_OK) {                                                           \
            fprintf(stderr, "augment_grid: %s: %s\n", #expr, simclr_last_error());        \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)


/* ---- inputs ---- */

static uint8_t clamp_u8(double v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5); }

/* Gradients, discs, stripes and checkers in several colors, so crops, flips
 * and color changes are easy to see. */
static void synthetic(uint8_t *p, int n, int s)
{
    for (int i = 0; i < n; i++)
        for (int y = 0; y < s; y++)
            for (int x = 0; x < s; x++) {
                double u = (double)x / s, v = (double)y / s, r, g, b;
                switch (i % 6) {
                case 0: r = 255 * u, g = 255 * v, b = 128; break;
                case 1: {
                    double d = hypot(u - 0.35, v - 0.4);
                    r = d < 0.22 ? 230 : 30, g = d < 0.22 ? 60 : 150, b = d < 0.22 ? 40 : 220;
                    if (hypot(u - 0.75, v - 0.75) < 0.15) r = 250, g = 220, b = 30;
                    break;
                }
                case 2: r = ((x / 8) % 2) ? 240 : 20, g = 120 + 100 * v, b = ((y / 12) % 2) ? 200 : 40; break;
                case 3: r = ((x / 12 + y / 12) % 2) ? 250 : 60, g = ((x / 12 + y / 12) % 2) ? 200 : 20, b = 255 * u; break;
                case 4: r = 128 + 127 * sin(10 * u), g = 128 + 127 * sin(7 * v + 1), b = 128 + 127 * sin(5 * (u + v)); break;
                default: r = v < 0.6 ? 90 + 120 * v : 60, g = v < 0.6 ? 160 + 80 * v : 140, b = v < 0.6 ? 255 : 60;
                    if (fabs(u - 0.5) < 0.08 && v > 0.3) r = 120, g = 70, b = 30;
                    break;
                }
                uint8_t *px = p + (((size_t)i * s + y) * s + x) * 3;
                px[0] = clamp_u8(r), px[1] = clamp_u8(g), px[2] = clamp_u8(b);
            }
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The first n images of an IDX3 file (gzip or raw; gzread reads both). */
static int read_idx(const char *path, uint8_t *p, int n, int *side)
{
    gzFile f = gzopen(path, "rb");
    if (!f) return -1;
    unsigned char head[16];
    int ok = gzread(f, head, 16) == 16 && be32(head) == 0x00000803 && be32(head + 4) >= (uint32_t)n &&
             be32(head + 8) == be32(head + 12) && be32(head + 8) >= 1 && be32(head + 8) <= 256;
    if (ok) {
        *side = (int)be32(head + 8);
        unsigned bytes = (unsigned)n * (unsigned)*side * (unsigned)*side;
        ok = gzread(f, p, bytes) == (int)bytes;
    }
    gzclose(f);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *out_path = argc > 1 ? argv[1] : "augment_grid.png";
    const char *idx = argc > 2 ? argv[2] : NULL;
    int side = 96, channels = 3, out_side = 64, zoom = 1;
    simclr_aug_preset preset = SIMCLR_AUG_PRESET_SIMCLR_V1;
    uint8_t *src = malloc((size_t)ROWS * 256 * 256 * 3);
    if (!src) return 1;
    if (idx) {
        if (read_idx(idx, src, ROWS, &side) != 0) {
            fprintf(stderr, "augment_grid: %s is not a readable IDX image file\n", idx);
            return 1;
        }
        channels = 1, out_side = side, zoom = 3, preset = SIMCLR_AUG_PRESET_GRAYSCALE;
    } else {
        synthetic(src, ROWS, side);
    }

    simclr_context *ctx = NULL;
    CHECK(simclr_context_create(NULL, 0, NULL, &ctx));
    int64_t in_shape[4] = {ROWS, side, side, channels};
    int64_t out_shape[4] = {ROWS, channels, out_side, out_side};
    simclr_tensor *images = NULL, *view = NULL;
    CHECK(simclr_tensor_wrap(ctx, SIMCLR_U8, 4, in_shape, src, &images));
    CHECK(simclr_tensor_create(ctx, SIMCLR_F32, 4, out_shape, &view));
    simclr_augment *plain = NULL, *aug = NULL;
    CHECK(simclr_augment_create_v2(ctx, SIMCLR_AUG_PRESET_NONE, out_side, out_side, &plain));
    CHECK(simclr_augment_create_v2(ctx, preset, out_side, out_side, &aug));

    int tile = out_side * zoom, cols = 1 + VIEWS;
    int gw = cols * tile + (cols + 1) * PAD + PAD, gh = ROWS * tile + (ROWS + 1) * PAD;
    unsigned char *grid = malloc((size_t)gw * gh * 3);
    if (!grid) return 1;
    memset(grid, 255, (size_t)gw * gh * 3);
    for (int col = 0; col < cols; col++) {
        /* column 0: the evaluation transform; then one view number per column */
        if (col == 0)
            CHECK(simclr_augment_apply(plain, images, 0, 0, view));
        else
            CHECK(simclr_augment_apply(aug, images, 2024, col - 1, view));
        const float *v = simclr_tensor_data(view);
        int x0 = PAD + col * (tile + PAD) + (col > 0 ? PAD : 0); /* a wider gap after the original */
        for (int r = 0; r < ROWS; r++) {
            int y0 = PAD + r * (tile + PAD);
            for (int y = 0; y < tile; y++)
                for (int x = 0; x < tile; x++)
                    for (int c = 0; c < 3; c++) {
                        int k = channels == 3 ? c : 0;
                        float val = v[(((size_t)r * channels + k) * out_side + y / zoom) * out_side + x / zoom];
                        grid[(((size_t)y0 + y) * gw + x0 + x) * 3 + c] = clamp_u8(val * 255.0);
                    }
        }
    }
    CHECK(simclr_image_write_png(out_path, grid, gh, gw, 3));
    printf("wrote %s: %d images x (resize + %d views), %dx%d px each\n", out_path, ROWS, VIEWS, out_side, out_side);

    free(grid);
    simclr_augment_destroy(aug);
    simclr_augment_destroy(plain);
    simclr_tensor_destroy(view);
    simclr_tensor_destroy(images);
    simclr_context_destroy(ctx);
    free(src);
    return 0;
}
