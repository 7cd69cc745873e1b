/* libsimclr_image: PNG and JPEG files written here (with libpng and
 * libjpeg directly, so the decoder is not checked against itself), every
 * colour type, EXIF orientation, bad files, and the image folder. */
#include <png.h>
#include <jpeglib.h>
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "simclr_image.h"
#include "test_util.h"

static char dir[256];

static void path_of(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", dir, name); }

/* ---- writers ---- */

/* When set, write_png_raw adds a tRNS chunk with these palette alphas. */
static const png_byte *trns_alpha;
static int n_trns;

static void write_png_raw(const char *path, int w, int h, int color, int depth, const uint8_t *rows_data,
                          size_t stride, const png_color *palette, int n_palette, int interlace)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    if (palette && trns_alpha) png_set_tRNS(png, info, trns_alpha, n_trns, NULL);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)rows_data + (size_t)y * stride;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

/* A JPEG of w x h from `px` (components of color space cs); progressive
 * if asked; with an Exif APP1 holding `orientation` when > 0. */
static void write_jpeg(const char *path, int w, int h, const uint8_t *px, int comps, J_COLOR_SPACE cs, int progressive,
                       int orientation, int quality)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    if (orientation > 0) {
        /* "Exif\0\0", big-endian TIFF header, IFD0 with one entry: Orientation SHORT 1 */
        uint8_t exif[] = {'E', 'x', 'i', 'f', 0, 0, 'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1,
                          0, (uint8_t)orientation, 0, 0, 0, 0, 0, 0};
        jpeg_write_marker(&c, JPEG_APP0 + 1, exif, sizeof exif);
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    fclose(f);
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A smooth RGB test picture (JPEG-friendly): gradients. */
static uint8_t *smooth_rgb(int w, int h)
{
    uint8_t *p = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            p[(y * w + x) * 3 + 0] = (uint8_t)(x * 255 / (w - 1));
            p[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            p[(y * w + x) * 3 + 2] = 128;
        }
    return p;
}

static double mean_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += abs((int)a[i] - (int)b[i]);
    return s / (double)n;
}

static uint8_t *decode_ok(const char *name, int channels, int64_t *h, int64_t *w)
{
    char p[512];
    path_of(p, sizeof p, name);
    uint8_t *px = NULL;
    CHECK_OK(simclr_image_decode_file(p, channels, 0, 0, &px, h, w));
    return px;
}

static void expect_fail(const char *name, simclr_status want, const char *needle)
{
    char p[512];
    path_of(p, sizeof p, name);
    uint8_t *px = (uint8_t *)&px;
    int64_t h = -7, w = -7;
    CHECK_STATUS(simclr_image_decode_file(p, 3, 0, 0, &px, &h, &w), want);
    assert_true(px == (uint8_t *)&px && h == -7 && w == -7); /* outputs untouched */
    if (!strstr(simclr_last_error(), name) || (needle && !strstr(simclr_last_error(), needle)))
        fail_msg("message '%s' lacks '%s' / '%s'", simclr_last_error(), name, needle ? needle : "");
}

/* ---- PNG ---- */

static void test_png_color_types(void **state)
{
    (void)state;
    char p[512];
    const int W = 5, H = 3;
    uint8_t rgba[5 * 3 * 4], gray[5 * 3], rgb[5 * 3 * 3], idx[5 * 3];
    uint16_t deep[5 * 3 * 3];
    for (int i = 0; i < W * H; i++) {
        for (int c = 0; c < 4; c++) rgba[i * 4 + c] = (uint8_t)(i * 17 + c * 60);
        for (int c = 0; c < 3; c++) rgb[i * 3 + c] = rgba[i * 4 + c];
        gray[i] = (uint8_t)(i * 16);
        idx[i] = (uint8_t)(i % 4);
        for (int c = 0; c < 3; c++) {
            uint16_t v = (uint16_t)(rgb[i * 3 + c] * 257); /* exact in 8 bits */
            uint8_t *b = (uint8_t *)&deep[i * 3 + c];
            b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v; /* PNG is big-endian */
        }
    }
    png_color pal[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    path_of(p, sizeof p, "rgba.png");
    write_png_raw(p, W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, W * 4, NULL, 0, 0);
    path_of(p, sizeof p, "gray.png");
    write_png_raw(p, W, H, PNG_COLOR_TYPE_GRAY, 8, gray, W, NULL, 0, 1); /* interlaced */
    path_of(p, sizeof p, "pal.png");
    write_png_raw(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, W, pal, 4, 0);
    path_of(p, sizeof p, "deep.png");
    write_png_raw(p, W, H, PNG_COLOR_TYPE_RGB, 16, (uint8_t *)deep, W * 6, NULL, 0, 0);

    int64_t h, w;
    uint8_t *px = decode_ok("rgba.png", 3, &h, &w);
    assert_true(h == H && w == W);
    assert_memory_equal(px, rgb, sizeof rgb); /* alpha dropped */
    simclr_image_free(px);
    px = decode_ok("gray.png", 3, &h, &w);
    for (int i = 0; i < W * H; i++) assert_true(px[i * 3] == gray[i] && px[i * 3 + 1] == gray[i] && px[i * 3 + 2] == gray[i]);
    simclr_image_free(px);
    px = decode_ok("gray.png", 1, &h, &w);
    assert_memory_equal(px, gray, sizeof gray);
    simclr_image_free(px);
    px = decode_ok("pal.png", 3, &h, &w);
    for (int i = 0; i < W * H; i++) {
        const png_color *c = &pal[i % 4];
        assert_true(px[i * 3] == c->red && px[i * 3 + 1] == c->green && px[i * 3 + 2] == c->blue);
    }
    simclr_image_free(px);
    /* a palette with transparency (tRNS): alpha dropped as for RGBA, the
     * colours kept (it was refused: libpng expands tRNS to a 4th channel) */
    static const png_byte alphas[4] = {0, 128, 255, 7};
    trns_alpha = alphas, n_trns = 4;
    path_of(p, sizeof p, "pal_trns.png");
    write_png_raw(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, idx, W, pal, 4, 0);
    trns_alpha = NULL, n_trns = 0;
    px = decode_ok("pal_trns.png", 3, &h, &w);
    for (int i = 0; i < W * H; i++) {
        const png_color *c = &pal[i % 4];
        assert_true(px[i * 3] == c->red && px[i * 3 + 1] == c->green && px[i * 3 + 2] == c->blue);
    }
    simclr_image_free(px);
    px = decode_ok("deep.png", 3, &h, &w);
    assert_memory_equal(px, rgb, sizeof rgb);
    simclr_image_free(px);
    /* RGB to gray: PIL's L = (19595 R + 38470 G + 7471 B + 32768) >> 16 */
    px = decode_ok("rgba.png", 1, &h, &w);
    for (int i = 0; i < W * H; i++) {
        unsigned want = (19595u * rgb[i * 3] + 38470u * rgb[i * 3 + 1] + 7471u * rgb[i * 3 + 2] + 0x8000u) >> 16;
        assert_int_equal(px[i], want);
    }
    simclr_image_free(px);
}

/* Writes a smooth w x h RGB image as test folder file `name` with the
 * library's writer; returns its pixels (caller frees) and its path in p. */
static uint8_t *write_smooth_png(const char *name, int w, int h, char *p, size_t size)
{
    path_of(p, size, name);
    uint8_t *src = smooth_rgb(w, h);
    CHECK_OK(simclr_image_write_png(p, src, h, w, 3));
    return src;
}

static void test_png_writer_round_trip(void **state)
{
    (void)state;
    char p[512];
    uint8_t *src = write_smooth_png("written.png", 33, 17, p, sizeof p);
    int64_t h, w;
    uint8_t *px = decode_ok("written.png", 3, &h, &w);
    assert_true(h == 17 && w == 33);
    assert_memory_equal(px, src, 33 * 17 * 3);
    simclr_image_free(px);
    CHECK_STATUS(simclr_image_write_png(p, src, 17, 33, 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_write_png("/nonexistent-dir/x.png", src, 17, 33, 3), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), "/nonexistent-dir/x.png"));
    CHECK_STATUS(simclr_image_write_png(p, src, 0, 33, 3), SIMCLR_E_INVALID); /* a side out of range */
    CHECK_STATUS(simclr_image_write_png(NULL, src, 17, 33, 3), SIMCLR_E_INVALID);
    simclr_image_free(NULL); /* a no-op */
    free(src);
}

/* Temporary files the PNG writer left in the test folder. */
static int png_temporaries_left(void)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += strstr(e->d_name, ".png.tmp.") != NULL;
    closedir(d);
    return n;
}

/* The writer's promise, with real failures instead of a hook: a write
 * refused by the file-size limit (EFBIG) and a rename refused because the
 * target is a folder (EISDIR) each return SIMCLR_E_IO naming the path, keep
 * what was there and leave no temporary file. */
static void test_png_writer_failure_keeps_the_old_file(void **state)
{
    (void)state;
    char p[512];
    uint8_t *old = write_smooth_png("kept.png", 9, 7, p, sizeof p);
    enum { W = 64, H = 64 };
    uint8_t *noise = malloc(W * H * 3);
    assert_non_null(noise);
    uint32_t s = 12345;
    for (int i = 0; i < W * H * 3; i++) noise[i] = (uint8_t)((s = s * 1664525u + 1013904223u) >> 24);

    struct rlimit saved, small;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    small = saved;
    small.rlim_cur = 256; /* the noise compresses to ~12 KB: the write stops at 256 bytes */
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    simclr_status st = simclr_image_write_png(p, noise, H, W, 3);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(st, SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), p));
    int64_t h, w;
    uint8_t *px = decode_ok("kept.png", 3, &h, &w);
    assert_true(h == 7 && w == 9);
    assert_memory_equal(px, old, 9 * 7 * 3);
    simclr_image_free(px);
    assert_int_equal(png_temporaries_left(), 0);

    char folder[512];
    path_of(folder, sizeof folder, "a-folder.png");
    assert_int_equal(mkdir(folder, 0777), 0);
    CHECK_STATUS(simclr_image_write_png(folder, noise, H, W, 3), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), folder));
    struct stat sb;
    assert_int_equal(stat(folder, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(rmdir(folder), 0);
    assert_int_equal(png_temporaries_left(), 0);
    free(noise);
    free(old);
}

/* ---- JPEG ---- */

static void test_jpeg_baseline_progressive_gray_cmyk(void **state)
{
    (void)state;
    char p[512];
    const int W = 48, H = 32;
    uint8_t *src = smooth_rgb(W, H);
    path_of(p, sizeof p, "base.jpg");
    write_jpeg(p, W, H, src, 3, JCS_RGB, 0, 0, 95);
    path_of(p, sizeof p, "prog.jpg");
    write_jpeg(p, W, H, src, 3, JCS_RGB, 1, 0, 95);
    int64_t h, w;
    uint8_t *a = decode_ok("base.jpg", 3, &h, &w);
    assert_true(h == H && w == W);
    assert_true(mean_abs_diff(a, src, (size_t)W * H * 3) < 2.0);
    uint8_t *b = decode_ok("prog.jpg", 3, &h, &w);
    assert_true(mean_abs_diff(b, src, (size_t)W * H * 3) < 2.0);
    simclr_image_free(a);
    simclr_image_free(b);

    uint8_t *g = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) g[i] = src[i * 3];
    path_of(p, sizeof p, "gray.jpg");
    write_jpeg(p, W, H, g, 1, JCS_GRAYSCALE, 0, 0, 95);
    a = decode_ok("gray.jpg", 1, &h, &w);
    assert_true(mean_abs_diff(a, g, (size_t)W * H) < 2.0);
    simclr_image_free(a);

    /* CMYK, stored as Adobe's inverted values (libjpeg writes the Adobe
     * marker for CMYK): ink c = x ramp, k = 64 everywhere */
    uint8_t *cmyk = malloc((size_t)W * H * 4), *want = malloc((size_t)W * H * 3);
    for (int i = 0; i < W * H; i++) {
        uint8_t ink[4] = {src[i * 3], 0, 200, 64};
        for (int c = 0; c < 4; c++) cmyk[i * 4 + c] = (uint8_t)(255 - ink[c]);
        for (int c = 0; c < 3; c++) want[i * 3 + c] = (uint8_t)((255 - ink[c]) * (255 - ink[3]) / 255);
    }
    path_of(p, sizeof p, "cmyk.jpg");
    write_jpeg(p, W, H, cmyk, 4, JCS_CMYK, 0, 0, 95);
    a = decode_ok("cmyk.jpg", 3, &h, &w);
    assert_true(mean_abs_diff(a, want, (size_t)W * H * 3) < 3.0);
    simclr_image_free(a);
    free(cmyk);
    free(want);
    free(g);

    /* DCT downscaling: 48 x 32 with min side 8 decodes at 1/4: 12 x 8 */
    path_of(p, sizeof p, "base.jpg");
    CHECK_OK(simclr_image_decode_file(p, 3, 0, 8, &a, &h, &w));
    assert_true(h == 8 && w == 12);
    simclr_image_free(a);
    free(src);
}

/* Four flat quadrants (JPEG keeps flat blocks nearly exact): after each
 * orientation the corners must hold PIL's exif_transpose colours. */
static void test_exif_orientation(void **state)
{
    (void)state;
    const int W = 32, H = 16;
    const uint8_t colors[4][3] = {{250, 10, 10}, {10, 250, 10}, {10, 10, 250}, {250, 250, 10}}; /* TL TR BL BR */
    uint8_t *src = malloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) memcpy(src + (y * W + x) * 3, colors[(y >= H / 2) * 2 + (x >= W / 2)], 3);
    /* corner (TL, TR, BL, BR) of the result -> quadrant of the source */
    const int corners[9][4] = {{0}, {0, 1, 2, 3}, {1, 0, 3, 2}, {3, 2, 1, 0}, {2, 3, 0, 1},
                               {0, 2, 1, 3}, {2, 0, 3, 1}, {3, 1, 2, 0}, {1, 3, 0, 2}};
    for (int o = 1; o <= 8; o++) {
        char name[32], p[512];
        snprintf(name, sizeof name, "orient%d.jpg", o);
        path_of(p, sizeof p, name);
        write_jpeg(p, W, H, src, 3, JCS_RGB, 0, o, 100);
        int64_t h, w;
        uint8_t *px = decode_ok(name, 3, &h, &w);
        if (o >= 5) assert_true(h == W && w == H);
        else assert_true(h == H && w == W);
        const int64_t cy[4] = {1, 1, h - 2, h - 2}, cx[4] = {1, w - 2, 1, w - 2};
        for (int k = 0; k < 4; k++) {
            const uint8_t *got = px + (cy[k] * w + cx[k]) * 3, *exp = colors[corners[o][k]];
            for (int c = 0; c < 3; c++)
                if (abs(got[c] - exp[c]) > 12) fail_msg("orientation %d corner %d: %d vs %d", o, k, got[c], exp[c]);
        }
        simclr_image_free(px);
    }
    free(src);
}

/* ---- bad files ---- */

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG signature + IHDR of w x h with a valid CRC, then IEND (no data). */
static void write_png_header_only(const char *name, uint32_t w, uint32_t h)
{
    uint8_t b[8 + 25 + 12];
    memcpy(b, "\x89PNG\r\n\x1a\n", 8);
    be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    be32(b + 16, w);
    be32(b + 20, h);
    b[24] = 8, b[25] = 2, b[26] = b[27] = b[28] = 0;
    be32(b + 29, (uint32_t)crc32(0, b + 12, 17));
    be32(b + 33, 0);
    memcpy(b + 37, "IEND", 4);
    be32(b + 41, (uint32_t)crc32(0, b + 37, 4));
    char p[512];
    path_of(p, sizeof p, name);
    write_bytes(p, b, sizeof b);
}

static void test_bad_files(void **state)
{
    (void)state;
    char p[512], q[512];
    uint8_t *src = smooth_rgb(40, 30);
    path_of(p, sizeof p, "whole.jpg");
    write_jpeg(p, 40, 30, src, 3, JCS_RGB, 0, 0, 90);
    size_t n;
    uint8_t *bytes = read_bytes(p, &n);
    path_of(q, sizeof q, "truncated.jpg");
    write_bytes(q, bytes, n / 2);
    expect_fail("truncated.jpg", SIMCLR_E_FORMAT, "JPEG");
    path_of(q, sizeof q, "prog_trunc.jpg");
    write_jpeg(q, 40, 30, src, 3, JCS_RGB, 1, 0, 90);
    free(bytes);
    bytes = read_bytes(q, &n);
    write_bytes(q, bytes, n - n / 3);
    expect_fail("prog_trunc.jpg", SIMCLR_E_FORMAT, "JPEG");
    free(bytes);
    /* a JPEG whose SOF declares 65000 x 65000: refused at the header */
    bytes = read_bytes(p, &n);
    for (size_t i = 0; i + 8 < n; i++)
        if (bytes[i] == 0xff && bytes[i + 1] == 0xc0) {
            bytes[i + 5] = 0xfd, bytes[i + 6] = 0xe8, bytes[i + 7] = 0xfd, bytes[i + 8] = 0xe8;
            break;
        }
    path_of(q, sizeof q, "huge.jpg");
    write_bytes(q, bytes, n);
    expect_fail("huge.jpg", SIMCLR_E_FORMAT, "exceeds the limit");
    free(bytes);

    path_of(p, sizeof p, "whole.png");
    CHECK_OK(simclr_image_write_png(p, src, 30, 40, 3));
    bytes = read_bytes(p, &n);
    path_of(q, sizeof q, "truncated.png");
    write_bytes(q, bytes, n - 20);
    expect_fail("truncated.png", SIMCLR_E_FORMAT, "PNG");
    bytes[n / 2] ^= 0x55; /* a flipped byte in the compressed data: CRC error */
    path_of(q, sizeof q, "flipped.png");
    write_bytes(q, bytes, n);
    expect_fail("flipped.png", SIMCLR_E_FORMAT, "PNG");
    free(bytes);

    write_png_header_only("zero.png", 0, 5);
    expect_fail("zero.png", SIMCLR_E_FORMAT, NULL);
    write_png_header_only("huge.png", 100000, 100000);
    expect_fail("huge.png", SIMCLR_E_FORMAT, "exceeds the limit");
    /* 2^32 - 1 on both sides: the product overflows 64 signed bits */
    write_png_header_only("huge32.png", 0xffffffffu, 0xffffffffu);
    expect_fail("huge32.png", SIMCLR_E_FORMAT, "exceeds the limit");
    path_of(q, sizeof q, "empty.png");
    write_bytes(q, "", 0);
    expect_fail("empty.png", SIMCLR_E_FORMAT, "empty");
    path_of(q, sizeof q, "text.jpg");
    write_bytes(q, "hello, not an image\n", 20);
    expect_fail("text.jpg", SIMCLR_E_FORMAT, "not a PNG or JPEG");
    expect_fail("missing.png", SIMCLR_E_IO, "cannot open");
    /* the same bytes from memory name the buffer */
    uint8_t *px;
    int64_t h, w;
    CHECK_STATUS(simclr_image_decode_memory("xx", 2, "buf", 3, 0, 0, &px, &h, &w), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "buf"));
    CHECK_STATUS(simclr_image_decode_memory("xx", 2, NULL, 3, 0, 0, &px, &h, &w), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "<memory>")); /* name NULL */
    CHECK_STATUS(simclr_image_decode_memory("xx", 2, "buf", 2, 0, 0, &px, &h, &w), SIMCLR_E_INVALID);
    free(src);
}

/* ---- image folder ---- */

static void make_tree(const char *root)
{
    char p[600];
    uint8_t *src = smooth_rgb(20, 12);
    mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/cat", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/cat/sub", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/dog", root), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/cat/a.png", root);
    CHECK_OK(simclr_image_write_png(p, src, 12, 20, 3));
    snprintf(p, sizeof p, "%s/cat/sub/b.JPG", root);
    write_jpeg(p, 20, 12, src, 3, JCS_RGB, 0, 0, 90);
    snprintf(p, sizeof p, "%s/dog/c.png", root);
    CHECK_OK(simclr_image_write_png(p, src, 6, 40, 3));
    snprintf(p, sizeof p, "%s/dog/bad.jpg", root);
    write_bytes(p, "\xff\xd8\xff\xe0garbage", 11);
    snprintf(p, sizeof p, "%s/readme.txt", root);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/top.png", root);
    CHECK_OK(simclr_image_write_png(p, src, 12, 20, 3));
    free(src);
}

static void test_folder(void **state)
{
    (void)state;
    char root[400], p[600];
    snprintf(root, sizeof root, "%s/tree", dir);
    make_tree(root);
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, 2, NULL, &ctx));
    simclr_image_folder *f;
    CHECK_OK(simclr_image_folder_open(ctx, root, 3, 1, &f));
    assert_int_equal(simclr_image_folder_count(f), 4);
    assert_int_equal(simclr_image_folder_class_count(f), 2);
    assert_string_equal(simclr_image_folder_class_name(f, 0), "cat");
    assert_string_equal(simclr_image_folder_class_name(f, 1), "dog");
    const char *order[4] = {"cat/a.png", "cat/sub/b.JPG", "dog/bad.jpg", "dog/c.png"};
    const int32_t labels[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, order[i]);
        assert_string_equal(simclr_image_folder_path(f, i), p);
        assert_int_equal(simclr_image_folder_label(f, i), labels[i]);
    }
    simclr_image_list *l;
    CHECK_OK(simclr_image_list_create(ctx, 3, &l));
    int64_t idx[4] = {0, 1, 2, 3}, kept[4], n_kept = -1;
    CHECK_STATUS(simclr_image_folder_load(f, idx, 4, l, kept, &n_kept), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "dog/bad.jpg"));
    assert_int_equal(simclr_image_list_count(l), 0);
    CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_SKIP));
    CHECK_OK(simclr_image_folder_load(f, idx, 4, l, kept, &n_kept));
    assert_int_equal(n_kept, 3);
    assert_true(kept[0] == 0 && kept[1] == 1 && kept[2] == 3);
    assert_int_equal(simclr_image_list_count(l), 3);
    int64_t h, w;
    CHECK_OK(simclr_image_list_size(l, 2, &h, &w));
    assert_true(h == 6 && w == 40);
    assert_int_equal(simclr_image_folder_skipped(f), 1);
    assert_true(simclr_image_folder_is_bad(f, 2) && !simclr_image_folder_is_bad(f, 0));
    CHECK_OK(simclr_image_folder_load(f, idx + 2, 1, l, kept, &n_kept)); /* counted once */
    assert_int_equal(n_kept, 0);
    assert_int_equal(simclr_image_folder_skipped(f), 1);
    int64_t badidx = 4;
    CHECK_STATUS(simclr_image_folder_load(f, &badidx, 1, l, NULL, NULL), SIMCLR_E_INVALID);
    /* a list that cannot grow (its context's allocator refuses) after a
     * skipped image: SIMCLR_E_NOMEM with kept, *n_kept, the skip count and
     * the bad marks as they were (the header's promise) */
    {
        test_alloc ta = {0};
        simclr_allocator hook = test_allocator(&ta);
        simclr_context *ctx2;
        CHECK_OK(simclr_context_create("ref", 1, &hook, &ctx2));
        simclr_image_list *l2;
        CHECK_OK(simclr_image_list_create(ctx2, 3, &l2));
        simclr_image_folder *f2;
        CHECK_OK(simclr_image_folder_open(ctx, root, 3, 1, &f2));
        CHECK_OK(simclr_image_folder_set(f2, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_SKIP));
        int64_t order2[2] = {2, 0}, kept2[2] = {-5, -5}, n2 = -5; /* the bad image first */
        ta.fail_at = ta.allocs + 1;
        CHECK_STATUS(simclr_image_folder_load(f2, order2, 2, l2, kept2, &n2), SIMCLR_E_NOMEM);
        assert_true(kept2[0] == -5 && kept2[1] == -5 && n2 == -5);
        assert_int_equal(simclr_image_folder_skipped(f2), 0);
        assert_false(simclr_image_folder_is_bad(f2, 2));
        assert_int_equal(simclr_image_list_count(l2), 0);
        ta.fail_at = 0;
        CHECK_OK(simclr_image_folder_load(f2, order2, 2, l2, kept2, &n2));
        assert_true(n2 == 1 && kept2[0] == 0 && simclr_image_folder_skipped(f2) == 1);
        simclr_image_folder_destroy(f2);
        simclr_image_list_destroy(l2);
        simclr_context_destroy(ctx2);
        assert_int_equal(ta.live, 0);
    }
    simclr_image_list *gray;
    CHECK_OK(simclr_image_list_create(ctx, 1, &gray));
    CHECK_STATUS(simclr_image_folder_load(f, idx, 1, gray, NULL, NULL), SIMCLR_E_SHAPE);
    CHECK_STATUS(simclr_image_folder_set(f, SIMCLR_FOLDER_ON_ERROR, 5), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_folder_set(NULL, SIMCLR_FOLDER_ON_ERROR, 1), SIMCLR_E_INVALID);
    /* the refused settings changed nothing: still SKIP, the bad image skipped */
    CHECK_OK(simclr_image_folder_load(f, idx, 4, l, kept, &n_kept));
    assert_int_equal(n_kept, 3);
    simclr_image_list_destroy(gray);
    simclr_image_folder_destroy(f);

    /* no labels: every image below root, root's own files included */
    CHECK_OK(simclr_image_folder_open(ctx, root, 1, 0, &f));
    assert_int_equal(simclr_image_folder_count(f), 5);
    assert_int_equal(simclr_image_folder_label(f, 0), -1);
    snprintf(p, sizeof p, "%s/top.png", root);
    assert_string_equal(simclr_image_folder_path(f, 0), p);
    simclr_image_folder_destroy(f);

    /* missing, empty, a file, a class without images */
    snprintf(p, sizeof p, "%s/nope", dir);
    CHECK_STATUS(simclr_image_folder_open(ctx, p, 3, 1, &f), SIMCLR_E_IO);
    assert_non_null(strstr(simclr_last_error(), "nope"));
    snprintf(p, sizeof p, "%s/empty", dir);
    mkdir(p, 0755);
    CHECK_STATUS(simclr_image_folder_open(ctx, p, 3, 0, &f), SIMCLR_E_FORMAT);
    CHECK_STATUS(simclr_image_folder_open(ctx, p, 3, 1, &f), SIMCLR_E_FORMAT);
    snprintf(p, sizeof p, "%s/tree/readme.txt", dir);
    CHECK_STATUS(simclr_image_folder_open(ctx, p, 3, 1, &f), SIMCLR_E_INVALID);
    snprintf(p, sizeof p, "%s/tree/bird", dir);
    mkdir(p, 0755);
    CHECK_STATUS(simclr_image_folder_open(ctx, root, 3, 1, &f), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "bird"));
    simclr_image_list_destroy(l);
    simclr_context_destroy(ctx);
}

/* The images of `list`, resized whole to 16x16 (PRESET_NONE): equal
 * tensors mean equal images, as far as a test can see the borrowed pixels. */
static float *list_fingerprint(simclr_context *ctx, const simclr_image_list *list)
{
    int64_t n = simclr_image_list_count(list), shape[4] = {n, 3, 16, 16};
    simclr_augment *aug;
    simclr_tensor *t;
    CHECK_OK(simclr_augment_create(ctx, SIMCLR_AUG_PRESET_NONE, 16, 16, &aug));
    CHECK_OK(simclr_tensor_create(ctx, SIMCLR_F32, 4, shape, &t));
    CHECK_OK(simclr_augment_apply_list(aug, list, 7, 0, t));
    float *copy = malloc((size_t)n * 3 * 16 * 16 * sizeof *copy);
    assert_non_null(copy);
    memcpy(copy, simclr_tensor_data(t), (size_t)n * 3 * 16 * 16 * sizeof *copy);
    simclr_tensor_destroy(t);
    simclr_augment_destroy(aug);
    return copy;
}

static void assert_same_images(simclr_context *ctx, const simclr_image_list *a, const simclr_image_list *b)
{
    int64_t n = simclr_image_list_count(a);
    assert_int_equal(simclr_image_list_count(b), n);
    for (int64_t i = 0; i < n; i++) {
        int64_t ha, wa, hb, wb;
        CHECK_OK(simclr_image_list_size(a, i, &ha, &wa));
        CHECK_OK(simclr_image_list_size(b, i, &hb, &wb));
        assert_true(ha == hb && wa == wb);
    }
    float *fa = list_fingerprint(ctx, a), *fb = list_fingerprint(ctx, b);
    assert_memory_equal(fa, fb, (size_t)n * 3 * 16 * 16 * sizeof *fa);
    free(fa), free(fb);
}

/* simclr_image_folder_prefetch: the load that takes a prefetched batch gives
 * what a plain load gives (pixels, errors, skips), any other load ignores
 * it, a changed setting invalidates it, and the pixels of the last load stay
 * valid while the next batch decodes (ASan and TSan watch this test). */
static void test_folder_prefetch(void **state)
{
    (void)state;
    char root[400];
    snprintf(root, sizeof root, "%s/ptree", dir);
    make_tree(root);
    simclr_context *ctx;
    CHECK_OK(simclr_context_create(NULL, 2, NULL, &ctx));
    simclr_image_folder *f, *plain;
    CHECK_OK(simclr_image_folder_open(ctx, root, 3, 1, &f));
    CHECK_OK(simclr_image_folder_open(ctx, root, 3, 1, &plain));
    simclr_image_list *l, *ref;
    CHECK_OK(simclr_image_list_create(ctx, 3, &l));
    CHECK_OK(simclr_image_list_create(ctx, 3, &ref));
    int64_t kept[8], n_kept = -1;

    for (int threads = 1; threads <= 3; threads++) {
        CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_PREFETCH_THREADS, threads));
        int64_t a[5] = {3, 0, 1, 0, 3}, b[2] = {1, 3};
        CHECK_OK(simclr_image_folder_prefetch(f, a, 5));
        CHECK_OK(simclr_image_folder_load(f, a, 5, l, kept, &n_kept));
        CHECK_OK(simclr_image_folder_load(plain, a, 5, ref, NULL, NULL));
        assert_int_equal(n_kept, 5);
        for (int k = 0; k < 5; k++) assert_int_equal(kept[k], a[k]);
        assert_same_images(ctx, l, ref);
        /* the next batch decodes while l's pixels are in use */
        CHECK_OK(simclr_image_folder_prefetch(f, b, 2));
        assert_same_images(ctx, l, ref);
        CHECK_OK(simclr_image_folder_load(f, b, 2, l, NULL, &n_kept));
        CHECK_OK(simclr_image_folder_load(plain, b, 2, ref, NULL, NULL));
        assert_same_images(ctx, l, ref);
    }

    /* another batch than the prefetched one: the load decodes its own */
    int64_t one = 1, zero = 0;
    CHECK_OK(simclr_image_folder_prefetch(f, &one, 1));
    CHECK_OK(simclr_image_folder_load(f, &zero, 1, l, kept, &n_kept));
    CHECK_OK(simclr_image_folder_load(plain, &zero, 1, ref, NULL, NULL));
    assert_true(n_kept == 1 && kept[0] == 0);
    assert_same_images(ctx, l, ref);

    /* a bad image: the load that takes the batch fails as a plain load
     * does, naming the file, with the list empty and nothing marked */
    int64_t all[4] = {0, 1, 2, 3};
    CHECK_OK(simclr_image_folder_prefetch(f, all, 4));
    CHECK_STATUS(simclr_image_folder_load(f, all, 4, l, kept, &n_kept), SIMCLR_E_FORMAT);
    assert_non_null(strstr(simclr_last_error(), "dog/bad.jpg"));
    assert_int_equal(simclr_image_list_count(l), 0);
    assert_int_equal(simclr_image_folder_skipped(f), 0);
    /* skipped and counted once in SKIP mode */
    CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_SKIP));
    CHECK_OK(simclr_image_folder_prefetch(f, all, 4));
    CHECK_OK(simclr_image_folder_load(f, all, 4, l, kept, &n_kept));
    assert_true(n_kept == 3 && kept[0] == 0 && kept[1] == 1 && kept[2] == 3);
    assert_int_equal(simclr_image_folder_skipped(f), 1);
    assert_true(simclr_image_folder_is_bad(f, 2));
    CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_ON_ERROR, SIMCLR_FOLDER_FAIL));

    /* a setting changed after the prefetch: the load decodes again with it
     * (here: a pixel limit every image exceeds) */
    CHECK_OK(simclr_image_folder_prefetch(f, &zero, 1));
    CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_MAX_PIXELS, 10));
    CHECK_STATUS(simclr_image_folder_load(f, &zero, 1, l, NULL, NULL), SIMCLR_E_FORMAT);
    CHECK_OK(simclr_image_folder_set(f, SIMCLR_FOLDER_MAX_PIXELS, SIMCLR_IMAGE_DEFAULT_MAX_PIXELS));

    /* refused calls start nothing and keep the pending prefetch */
    int64_t out_of_range = 4;
    CHECK_OK(simclr_image_folder_prefetch(f, all, 2));
    CHECK_STATUS(simclr_image_folder_prefetch(NULL, all, 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_folder_prefetch(f, NULL, 2), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_folder_prefetch(f, all, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_folder_prefetch(f, &out_of_range, 1), SIMCLR_E_INVALID);
    assert_non_null(strstr(simclr_last_error(), "out of range"));
    CHECK_STATUS(simclr_image_folder_set(f, SIMCLR_FOLDER_PREFETCH_THREADS, 0), SIMCLR_E_INVALID);
    CHECK_STATUS(simclr_image_folder_set(f, SIMCLR_FOLDER_PREFETCH_THREADS, 65), SIMCLR_E_INVALID);
    CHECK_OK(simclr_image_folder_load(f, all, 2, l, NULL, NULL));
    CHECK_OK(simclr_image_folder_load(plain, all, 2, ref, NULL, NULL));
    assert_same_images(ctx, l, ref);

    /* destroyed with a batch in flight: the threads are joined, nothing leaks */
    CHECK_OK(simclr_image_folder_prefetch(f, all, 2));
    simclr_image_list_clear(l);
    simclr_image_folder_destroy(f);
    simclr_image_list_destroy(l);
    simclr_image_list_destroy(ref);
    simclr_image_folder_destroy(plain);
    simclr_context_destroy(ctx);
}

static int setup(void **state)
{
    (void)state;
    return test_tmpdir_make(dir, sizeof dir, "image");
}

static int teardown(void **state)
{
    (void)state;
    return test_tmpdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_color_types),
        cmocka_unit_test(test_png_writer_round_trip),
        cmocka_unit_test(test_png_writer_failure_keeps_the_old_file),
        cmocka_unit_test(test_jpeg_baseline_progressive_gray_cmyk),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_folder_prefetch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
