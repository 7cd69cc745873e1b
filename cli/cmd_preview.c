/* simclr preview DIR -o grid.png: what the augmentation makes of images. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_preview(int argc, char **argv)
{
    const char *out = "preview.png";
    int64_t n = 8, views = 6, size = 96, channels = 3, seed = 1;
    double crop_min = 0.08;
    const cli_opt opts[] = {
        {"-o", OPT_STRING, &out, "output PNG (default preview.png)"},
        {"--images", OPT_INT, &n, "rows: the first N images (default 8)"},
        {"--views", OPT_INT, &views, "augmented views per image (default 6)"},
        {"--size", OPT_INT, &size, "side of each tile (default 96)"},
        {"--channels", OPT_INT, &channels, "1 or 3 (default 3)"},
        {"--crop-min", OPT_DOUBLE, &crop_min, "smallest crop area fraction (default 0.08)"},
        {"--seed", OPT_INT, &seed, "default 1"},
    };
    char *pos[4096];
    int n_pos;
    int rc = cli_parse(argc, argv, 2, "simclr preview DIR|FILES... [-o preview.png] [options]",
                       "A grid: each row is one image, the whole image first (resized to the tile, no crop: a\n"
                       "non-square image looks squashed), then views of SimCLR's augmentation (random resized\n"
                       "crop from full resolution, flip, color jitter, grayscale, blur), as `simclr train`\n"
                       "draws them. (`simclr embed` instead resizes and center crops.)",
                       opts, (int)(sizeof opts / sizeof opts[0]), pos, 4096, &n_pos);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if (n_pos < 1 || n < 1 || views < 1 || views > 15 || size < 8 || size > 1024 || (channels != 1 && channels != 3)) {
        fprintf(stderr, "simclr preview: give images; 1 <= --views <= 15, 8 <= --size <= 1024 (see --help)\n");
        return CLI_USAGE;
    }
    const char *CMD = "preview";
    simclr_context *ctx;
    simclr_status st = simclr_context_create(NULL, 0, NULL, &ctx);
    if (st != SIMCLR_OK) return cli_fail(CMD, "context", st);
    image_input in;
    rc = input_open(CMD, ctx, pos, n_pos, (int)channels, 0, 0, &in);
    if (rc) {
        simclr_context_destroy(ctx);
        return rc;
    }
    if (n > in.count) n = in.count;
    int64_t *idx = malloc((size_t)n * sizeof *idx);
    int64_t s = size, cols = views + 1, gw = cols * s + (cols + 1) * 4, gh = n * s + (n + 1) * 4;
    uint8_t *grid = malloc((size_t)(gw * gh * 3));
    float *v = malloc((size_t)(n * channels * s * s) * sizeof(float));
    simclr_image_list *list = NULL;
    simclr_augment *aug[2] = {NULL, NULL};
    simclr_tensor *t = NULL;
    if (!idx || !grid || !v) rc = cli_error(CMD, "no memory");
    if (!rc) memset(grid, 255, (size_t)(gw * gh * 3));
    for (int64_t i = 0; i < n && idx; i++) idx[i] = i;
    if (!rc && (st = simclr_image_list_create(ctx, (int)channels, &list))) rc = cli_fail(CMD, "list", st);
    if (!rc) rc = input_load(CMD, &in, idx, n, list, NULL, NULL);
    for (int k = 0; k < 2 && !rc; k++) {
        st = simclr_augment_create_v2(ctx, k ? (channels == 3 ? SIMCLR_AUG_PRESET_SIMCLR_V1 : SIMCLR_AUG_PRESET_GRAYSCALE)
                                          : SIMCLR_AUG_PRESET_NONE,
                                   s, s, &aug[k]);
        if (st == SIMCLR_OK) st = simclr_augment_set(aug[k], SIMCLR_AUG_ANTIALIAS, 1);
        if (st == SIMCLR_OK && k) st = simclr_augment_set(aug[k], SIMCLR_AUG_CROP_SCALE_MIN, crop_min);
        if (st != SIMCLR_OK) rc = cli_fail(CMD, "augmentation", st);
    }
    int64_t shape[4] = {simclr_image_list_count(list), channels, s, s};
    if (!rc && (st = simclr_tensor_wrap(ctx, SIMCLR_F32, 4, shape, v, &t))) rc = cli_fail(CMD, "views", st);
    for (int64_t col = 0; col < cols && !rc; col++) {
        /* column 0: the whole image resized (no crop); then views 0..views-1 */
        st = simclr_augment_apply_list(aug[col > 0], list, (uint64_t)seed, col > 0 ? (int)(col - 1) : 0, t);
        if (st != SIMCLR_OK) {
            rc = cli_fail(CMD, "augmentation", st);
            break;
        }
        for (int64_t r = 0; r < shape[0]; r++)
            for (int64_t y = 0; y < s; y++)
                for (int64_t x = 0; x < s; x++)
                    for (int c = 0; c < 3; c++) {
                        float f = v[((r * channels + (channels == 3 ? c : 0)) * s + y) * s + x];
                        int64_t gy = 4 + r * (s + 4) + y, gx = 4 + col * (s + 4) + x;
                        grid[(gy * gw + gx) * 3 + c] = (uint8_t)(f * 255.0f + 0.5f);
                    }
    }
    if (!rc && (st = simclr_image_write_png(out, grid, gh, gw, 3))) rc = cli_fail(CMD, out, st);
    if (!rc) printf("wrote %s (%lld images x %lld views, %lldx%lld px)\n", out, (long long)shape[0], (long long)views,
                    (long long)gw, (long long)gh);
    simclr_tensor_destroy(t);
    simclr_augment_destroy(aug[0]);
    simclr_augment_destroy(aug[1]);
    simclr_image_list_destroy(list);
    free(idx), free(grid), free(v);
    input_close(&in);
    simclr_context_destroy(ctx);
    return rc;
}
